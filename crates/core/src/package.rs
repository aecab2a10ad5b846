//! Task packages: what travels through a broker.
//!
//! `version (1 byte) | flags (1 byte) | payload | HMAC-SHA256 (32 bytes)`.
//! The payload is the postcard encoding of a [`TaskRecord`], zstd-compressed
//! when compression is on and the payload is over [`COMPRESS_THRESHOLD`].
//! The MAC covers version, flags and payload, with a key derived from the
//! configured secret, so a package made with another secret, or changed in
//! transit, is refused before anything in it is decoded. The cluster name
//! is not part of the key: clusters of different names share one queue.

use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use crate::Digest;
pub use crate::limits::TaskLimits;
use crate::workflow::{AttemptRecord, ChainLink, HookTarget, RetryPolicy};

/// The package format written by this version (2: records carry retry,
/// chain, hook, priority and unique-key fields).
pub const VERSION: u8 = 2;
/// Payloads at least this large are compressed when compression is on.
pub const COMPRESS_THRESHOLD: usize = 512;
/// The largest package or decompressed payload accepted (16 MiB): a bound on
/// the memory a hostile package can make a worker allocate.
pub const MAX_PACKAGE_SIZE: usize = 16 << 20;

const FLAG_ZSTD: u8 = 1;
const MAC_LEN: usize = 32;
const HEADER_LEN: usize = 2;

type HmacSha256 = Hmac<Sha256>;

/// Everything a worker needs to run a task, as enqueued.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskRecord {
    /// Unique, unguessable task id (32 hex digits).
    pub id: String,
    /// The module's content address.
    pub module: Digest,
    /// The module's name (the guest's `argv[0]`).
    pub module_name: String,
    /// The task inside the module (`argv[1]`).
    pub task: String,
    /// The guest's stdin: `{"args":[…],"kwargs":{…}}` as JSON text.
    pub input: String,
    /// The queue it was sent to.
    pub queue: String,
    /// Group name, if any.
    pub group: Option<String>,
    /// Limits for this task.
    pub limits: TaskLimits,
    /// Tenant, if any.
    pub tenant: Option<String>,
    /// When it was enqueued, milliseconds since the Unix epoch.
    pub enqueued_at_ms: u64,
    /// Keep the result this many seconds in the result cache (`cache`)
    /// instead of the store — Django Q2's `cached`.
    pub cached_secs: Option<u32>,
    /// Priority in its queue: higher runs first where the broker can.
    pub priority: i32,
    /// Not before this time, ms since the epoch (ETA); `None`: at once.
    pub eta_ms: Option<u64>,
    /// This attempt, from 1 (a retry after a failure is the next one).
    pub attempt: u32,
    /// How failures are retried; `None`: the cluster's default.
    pub retry: Option<RetryPolicy>,
    /// The failed attempts before this one.
    pub earlier: Vec<AttemptRecord>,
    /// The tasks of its chain still to run after it, in order.
    pub chain: Vec<ChainLink>,
    /// Pass this task's result to the next link as its first argument.
    pub pass_result: bool,
    /// Run this task with the finished task's record.
    pub hook: Option<HookTarget>,
    /// A unique key this task holds while queued or running.
    pub unique_key: Option<String>,
}

impl TaskRecord {
    /// A record for a task of `module` with `input`, id and time fresh,
    /// everything else default.
    pub fn new(module: Digest, module_name: &str, task: &str, input: String, queue: &str) -> Self {
        Self {
            id: new_task_id(),
            module,
            module_name: module_name.to_owned(),
            task: task.to_owned(),
            input,
            queue: queue.to_owned(),
            group: None,
            limits: TaskLimits::default(),
            tenant: None,
            enqueued_at_ms: crate::time::now_ms() as u64,
            cached_secs: None,
            priority: 0,
            eta_ms: None,
            attempt: 1,
            retry: None,
            earlier: Vec::new(),
            chain: Vec::new(),
            pass_result: false,
            hook: None,
            unique_key: None,
        }
    }
}

/// Why a package was refused. Nothing in a refused package is trusted, not
/// even its task id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PackageError {
    /// Shorter than a header and a MAC.
    #[error("package is truncated ({0} bytes)")]
    Truncated(usize),
    /// Over [`MAX_PACKAGE_SIZE`].
    #[error("package is too large ({0} bytes)")]
    TooLarge(usize),
    /// A format this version does not read.
    #[error("unknown package version {0}")]
    UnknownVersion(u8),
    /// Flags this version does not know.
    #[error("unknown package flags {0:#04x}")]
    UnknownFlags(u8),
    /// The MAC does not match: tampered, or signed with another secret or
    /// cluster name.
    #[error("bad signature: the package was altered or signed with another secret or cluster name")]
    BadSignature,
    /// Signed correctly but undecodable (a bug, or a newer writer).
    #[error("undecodable package: {0}")]
    Undecodable(String),
}

/// Signs and verifies packages with one key.
#[derive(Clone)]
pub struct PackageCodec {
    key: [u8; 32],
    compress: bool,
}

impl std::fmt::Debug for PackageCodec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PackageCodec")
            .field("compress", &self.compress)
            .finish_non_exhaustive()
    }
}

impl PackageCodec {
    /// A codec whose key derives from `secret`.
    pub fn new(secret: &str, compress: bool) -> Self {
        let mut mac = HmacSha256::new_from_slice(secret.as_bytes())
            .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
        mac.update(b"wasq-package-key:v1");
        Self {
            key: mac.finalize().into_bytes().into(),
            compress,
        }
    }

    fn mac(&self) -> HmacSha256 {
        HmacSha256::new_from_slice(&self.key)
            .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"))
    }

    /// Encodes and signs a record.
    pub fn encode(&self, record: &TaskRecord) -> Result<Vec<u8>, PackageError> {
        let raw =
            postcard::to_stdvec(record).map_err(|e| PackageError::Undecodable(e.to_string()))?;
        let (flags, payload) = if self.compress && raw.len() >= COMPRESS_THRESHOLD {
            let packed = zstd::bulk::compress(&raw, 3)
                .map_err(|e| PackageError::Undecodable(e.to_string()))?;
            (FLAG_ZSTD, packed)
        } else {
            (0, raw)
        };
        let mut out = Vec::with_capacity(HEADER_LEN + payload.len() + MAC_LEN);
        out.push(VERSION);
        out.push(flags);
        out.extend_from_slice(&payload);
        let mut mac = self.mac();
        mac.update(&out);
        out.extend_from_slice(&mac.finalize().into_bytes());
        if out.len() > MAX_PACKAGE_SIZE {
            return Err(PackageError::TooLarge(out.len()));
        }
        Ok(out)
    }

    /// Checks size, version and signature, then decodes. Never panics,
    /// whatever the bytes.
    pub fn decode(&self, bytes: &[u8]) -> Result<TaskRecord, PackageError> {
        if bytes.len() > MAX_PACKAGE_SIZE {
            return Err(PackageError::TooLarge(bytes.len()));
        }
        if bytes.len() < HEADER_LEN + MAC_LEN {
            return Err(PackageError::Truncated(bytes.len()));
        }
        let (signed, tag) = bytes.split_at(bytes.len() - MAC_LEN);
        let (version, flags) = (signed[0], signed[1]);
        if version != VERSION {
            return Err(PackageError::UnknownVersion(version));
        }
        let mut mac = self.mac();
        mac.update(signed);
        mac.verify_slice(tag)
            .map_err(|_| PackageError::BadSignature)?;
        read_payload(flags, &signed[HEADER_LEN..])
    }
}

/// Reads a package's record WITHOUT checking its signature: for showing
/// what a package no cluster could verify claims to be (`wasq failed
/// list`) and for re-signing it once an operator vouches for it (`wasq
/// failed resubmit`). Never run what this answers without re-signing.
/// Never panics, whatever the bytes.
pub fn read_unverified(bytes: &[u8]) -> Result<TaskRecord, PackageError> {
    if bytes.len() > MAX_PACKAGE_SIZE {
        return Err(PackageError::TooLarge(bytes.len()));
    }
    if bytes.len() < HEADER_LEN + MAC_LEN {
        return Err(PackageError::Truncated(bytes.len()));
    }
    let signed = &bytes[..bytes.len() - MAC_LEN];
    if signed[0] != VERSION {
        return Err(PackageError::UnknownVersion(signed[0]));
    }
    read_payload(signed[1], &signed[HEADER_LEN..])
}

/// Decompresses (per `flags`) and decodes a package's payload.
fn read_payload(flags: u8, payload: &[u8]) -> Result<TaskRecord, PackageError> {
    let raw;
    let payload = match flags {
        0 => payload,
        FLAG_ZSTD => {
            raw = zstd::bulk::decompress(payload, MAX_PACKAGE_SIZE)
                .map_err(|e| PackageError::Undecodable(format!("zstd: {e}")))?;
            &raw[..]
        }
        other => return Err(PackageError::UnknownFlags(other)),
    };
    postcard::from_bytes(payload).map_err(|e| PackageError::Undecodable(e.to_string()))
}

/// A new random task id: 128 bits as 32 hex digits.
pub fn new_task_id() -> String {
    hex::encode(rand::random::<[u8; 16]>())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn record(input: &str) -> TaskRecord {
        TaskRecord {
            group: Some("g".into()),
            limits: TaskLimits {
                timeout_ms: Some(1000),
                fuel: None,
                memory: Some(1 << 20),
            },
            enqueued_at_ms: 1_700_000_000_000,
            priority: 3,
            chain: vec![crate::workflow::ChainLink {
                id: new_task_id(),
                module: Digest::of(b"next"),
                module_name: "basics".into(),
                task: "add".into(),
                input: "{}".into(),
                queue: "default".into(),
                limits: TaskLimits::default(),
            }],
            ..TaskRecord::new(
                Digest::of(b"module"),
                "basics",
                "fib",
                input.into(),
                "default",
            )
        }
    }

    #[test]
    fn round_trips_with_and_without_compression() {
        let big = format!(r#"{{"args":["{}"],"kwargs":{{}}}}"#, "word ".repeat(500));
        for compress in [false, true] {
            let codec = PackageCodec::new("s3cret", compress);
            for rec in [record(r#"{"args":[25],"kwargs":{}}"#), record(&big)] {
                let bytes = codec.encode(&rec).unwrap();
                assert_eq!(codec.decode(&bytes).unwrap(), rec);
            }
        }
        let codec = PackageCodec::new("s3cret", true);
        let packed = codec.encode(&record(&big)).unwrap();
        assert_eq!(packed[1], FLAG_ZSTD);
        assert!(
            packed.len() < big.len() / 4,
            "compressed to {}",
            packed.len()
        );
    }

    #[test]
    fn refuses_other_secrets_and_tampering() {
        let rec = record("{}");
        let bytes = PackageCodec::new("a", false).encode(&rec).unwrap();
        assert_eq!(
            PackageCodec::new("b", false).decode(&bytes),
            Err(PackageError::BadSignature)
        );
        let codec = PackageCodec::new("a", false);
        for i in 0..bytes.len() {
            let mut bad = bytes.clone();
            bad[i] ^= 0x01;
            assert!(
                codec.decode(&bad).is_err(),
                "flipping byte {i} went unnoticed"
            );
        }
        assert_eq!(codec.decode(&bytes[..10]), Err(PackageError::Truncated(10)));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        #[test]
        fn decoding_random_bytes_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let codec = PackageCodec::new("s", true);
            prop_assert!(codec.decode(&bytes).is_err());
        }

        #[test]
        fn decoding_mutated_packages_never_panics(
            flips in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..8),
            cut in any::<usize>(),
        ) {
            let codec = PackageCodec::new("s", true);
            let mut bytes = codec.encode(&record(&"x".repeat(700))).unwrap();
            for (at, with) in flips {
                let at = at % bytes.len();
                bytes[at] ^= with.max(1);
            }
            bytes.truncate(cut % (bytes.len() + 1));
            prop_assert!(codec.decode(&bytes).is_err());
        }
    }
}
