//! `sqs://QUEUE?region=REGION&endpoint=URL`: Amazon SQS standard queues,
//! or any endpoint that speaks their protocol (moto, ElasticMQ,
//! LocalStack).
//!
//! # Queues
//!
//! `QUEUE` names the SQS queue of the wasq queue `default`; any other wasq
//! queue `q` is the SQS queue `QUEUE-q`. SQS allows letters, digits, `-`
//! and `_`, at most 80 characters: a wasq name made of those (not starting
//! with `_`) is used as is, any other is written `_` followed by the name
//! with every other byte escaped as `_XX` (hex), so that every wasq name has
//! its own SQS name and [`queues`](Broker::queues) can map them back
//! (`emails.high` → `QUEUE-_emails_2Ehigh`). A name too long for SQS is an
//! error naming the limit. Queues are looked up (`GetQueueUrl`) on first
//! use and created (`CreateQueue`, standard, SQS's default attributes) only
//! when missing, so a pre-made queue with its own settings (dead-letter
//! queue, encryption, a larger visibility timeout) is used as it is and the
//! credentials need no `sqs:CreateQueue` when queues exist. Queue URLs are
//! cached; a queue deleted behind the broker's back costs one failed call
//! (or, for reads, an empty answer), after which it is looked up anew.
//!
//! # Messages
//!
//! A payload travels as standard base64 in the message body (SQS bodies
//! are text); the empty payload, whose base64 is empty and which SQS
//! refuses, is sent as `=`, which is no other payload's base64. A body
//! that is not base64 (a message some other program put in the queue) is
//! delivered as its raw bytes, for the caller's signature check to refuse.
//! A body may not exceed the queue's `MaximumMessageSize` (read once per
//! queue; 1 MiB by default on AWS since 2025, 256 KiB before and on most
//! local endpoints, 256 KiB assumed when the queue does not say): with
//! base64's 4/3 that is 768 KiB or 192 KiB of payload. A batch holding a
//! bigger payload fails as a whole with [`BrokerError::Backend`] naming the
//! limit, before anything is sent.
//!
//! A lease is the message's visibility timeout, in whole seconds: rounded
//! up, at least 1 s, at most SQS's 12 h. The ack id of a delivery is its
//! receipt handle; its delivery count is SQS's `ApproximateReceiveCount`.
//! Enqueue, dequeue, acknowledge and renew go 10 messages a call
//! (`SendMessageBatch`, within its size limit; `ReceiveMessage`;
//! `DeleteMessageBatch`; `ChangeMessageVisibilityBatch`), up to 10 calls
//! at once. A dequeue starts with one receive and fans out only when that
//! one came back full (AWS bills every receive, empty ones too); should
//! two of its receives get the same message, it is answered once. Release
//! is `ChangeMessageVisibility` to 0.
//! [`dequeue_wait`](Broker::dequeue_wait) long-polls (`WaitTimeSeconds`,
//! the wait rounded up to whole seconds, 20 s a call); plain `dequeue`
//! never waits. [`wait`](Broker::wait) keeps the trait's default (a
//! sleep): SQS cannot tell anyone that a message arrived.
//!
//! `queue_size` and `lock_size` are `ApproximateNumberOfMessages` and
//! `ApproximateNumberOfMessagesNotVisible`. `purge_queue` receives the
//! visible messages and deletes them (SQS's `PurgeQueue` would also take
//! the leased ones), so it answers a count. `delete_queue` is
//! `PurgeQueue`, which keeps the queue and its settings; `DeleteQueue`
//! would lose them, break every other process's cached URL, and on AWS
//! forbid creating the queue again for 60 s.
//!
//! # What SQS does not promise, and how wasq copes
//!
//! - **Order**: a standard queue is not FIFO; messages come out roughly in
//!   enqueue order only. wasq tasks do not depend on order.
//! - **Fencing**: SQS keeps no fencing token a broker could check. On AWS,
//!   and on moto, deleting with a stale receipt handle (the message was
//!   delivered again since) may succeed and may even delete the message
//!   under its new holder; acknowledging a message already gone may
//!   answer `true`; renewing or releasing with a stale handle may act on
//!   the new delivery's lease. So `true` from acknowledge, renew, release
//!   or delete means "SQS took the request", not "this delivery held the
//!   message". wasq copes: task results are written first-write-wins in
//!   the store, so a stale acknowledge costs at most a duplicate run,
//!   never a lost or overwritten result; clusters renew well before the
//!   lease ends so stale deliveries are rare.
//! - **At least once**: a standard queue may hand out a message twice even
//!   within its visibility timeout, to two consumers at once (rarely on
//!   AWS; often on moto, whose receive takes no lock); the same store rule
//!   covers it.
//! - **Granularity**: leases are whole seconds (a 200 ms lease lasts 1 s).
//! - **Counts** are approximate on AWS and may lag by up to a minute, so
//!   may the "queues that have messages" of `queues`.
//! - **Short polls sample**: on AWS, a `dequeue` (no wait) of a small
//!   queue may answer fewer messages than are visible, even none; the
//!   clusters' long-polling `dequeue_wait` does not have this problem.
//!   `purge_queue` stops when a round of receives comes back empty, so on
//!   AWS it may leave a straggler.
//! - **Purge**: AWS allows one `PurgeQueue` per queue every 60 s (a second
//!   `delete_queue` within that time fails, naming the limit), and takes
//!   up to 60 s to finish, during which messages sent meanwhile may be
//!   deleted too.
//!
//! # Connecting
//!
//! `region` falls back to the AWS default chain (`AWS_REGION`, the
//! profile), then, with an `endpoint`, to `us-east-1` (local endpoints
//! ignore it); without either it is an error. Credentials come from the
//! AWS default chain (environment, profile, web identity, container,
//! instance role). With an `endpoint`, `connect` asks the chain at once,
//! and if it finds nothing within 2 s (off EC2 it may probe the instance
//! metadata service that long) static dummy credentials are used instead,
//! so a local endpoint needs no setup. Query values may be
//! percent-encoded (an endpoint with a `&` in it needs `%26`).
//!
//! HTTPS goes through rustls with the ring provider. A connection gets 2 s
//! to open and a call attempt 10 s to answer (a long poll gets its wait on
//! top); a failed attempt is retried twice with a short backoff, so an
//! endpoint that is down answers [`BrokerError::Unreachable`] within a few
//! seconds. [`SqsBroker::connect`] makes one call (`GetQueueUrl` of
//! `QUEUE`) to check that SQS answers and the credentials work.

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::ops::Range;
use std::pin::Pin;
use std::sync::{Mutex, PoisonError};
use std::task::Poll;
use std::time::{Duration, Instant};

use aws_config::BehaviorVersion;
use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_sdk_sqs::Client;
use aws_sdk_sqs::config::{Credentials, ProvideCredentials, Region, SharedCredentialsProvider};
use aws_sdk_sqs::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_sqs::types::{
    BatchResultErrorEntry, ChangeMessageVisibilityBatchRequestEntry,
    DeleteMessageBatchRequestEntry, Message, MessageSystemAttributeName, QueueAttributeName,
    SendMessageBatchRequestEntry,
};
use aws_smithy_http_client::tls::{Provider, rustls_provider::CryptoMode};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;

use crate::{AckId, Broker, BrokerError, BrokerInfo, Delivery};

/// Entries per batch call and messages per receive: SQS's limit.
const BATCH: usize = 10;
/// Calls one broker operation keeps in flight at once.
const IN_FLIGHT: usize = 10;
/// SQS's longest visibility timeout: 12 h, in seconds.
const MAX_LEASE_SECS: u64 = 43_200;
/// SQS's longest long poll, in seconds.
const MAX_WAIT_SECS: u64 = 20;
/// The body limit assumed when a queue does not report its
/// `MaximumMessageSize`: SQS's limit before 2025, and most local endpoints'.
const DEFAULT_MAX_BODY: usize = 256 * 1024;
/// SQS's longest queue name.
const MAX_NAME: usize = 80;
/// How long a TCP (and TLS) connection may take to open.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// How long one attempt of a call may take; a long poll gets its wait on
/// top.
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long the AWS credentials chain may look for credentials before a
/// broker with an `endpoint` settles for dummy ones.
const CREDENTIALS_TIMEOUT: Duration = Duration::from_secs(2);
/// Attempts per call (the first and two retries), with backoffs between
/// 100 ms and 1 s.
const ATTEMPTS: u32 = 3;
/// Lease of the messages `purge_queue` receives to delete: should a delete
/// fail, they are visible again after it.
const PURGE_LEASE_SECS: i32 = 30;
/// `purge_queue` stops after receiving this many more messages than were
/// visible when it started, should producers keep the queue full.
const PURGE_SLACK: u64 = 1000;
/// The body of the empty payload (see the module doc).
const EMPTY_BODY: &str = "=";
/// The URL options `sqs://` understands.
const OPTIONS: &str = "region, endpoint";

/// A broker on Amazon SQS standard queues. Cheap to share: an SDK client
/// (a connection pool) and two small caches.
#[derive(Debug)]
pub struct SqsBroker {
    client: Client,
    /// `client` with an attempt timeout long enough for a 20 s long poll.
    long_poll: Client,
    /// `QUEUE` of the URL: the SQS queue of wasq queue `default`, and the
    /// prefix of the others.
    prefix: String,
    /// The URL without secrets, for [`Broker::info`].
    location: String,
    /// Where requests go, for error messages: the endpoint, or the region.
    server: String,
    /// SQS queue URLs by wasq queue name.
    urls: Mutex<HashMap<String, String>>,
    /// Longest body each queue accepts, by queue URL, read at its first
    /// enqueue.
    limits: Mutex<HashMap<String, usize>>,
}

/// What an `sqs://` URL says.
#[derive(Debug, PartialEq, Eq)]
struct Target {
    /// `QUEUE`.
    queue: String,
    region: Option<String>,
    endpoint: Option<String>,
}

/// An SQS call that failed, sorted by what the broker does about it.
#[derive(Debug)]
enum CallError {
    /// The queue does not exist (any more).
    NoQueue,
    /// The receipt handle holds nothing: not one SQS made, stale, or its
    /// message not in flight.
    NotHeld,
    /// Anything else, as the broker reports it.
    Other(BrokerError),
}

impl CallError {
    /// The error, for calls where no answer stands for it.
    fn into_error(self) -> BrokerError {
        match self {
            CallError::NoQueue => BrokerError::Backend("SQS: the queue does not exist".into()),
            CallError::NotHeld => BrokerError::Backend("SQS: the receipt handle is invalid".into()),
            CallError::Other(e) => e,
        }
    }
}

/// A received message: its id, and the delivery.
type Received = (String, Delivery);

/// The two calls that take a batch of receipt handles.
#[derive(Debug, Clone, Copy)]
enum HandleCall {
    /// `DeleteMessageBatch`.
    Delete,
    /// `ChangeMessageVisibilityBatch` to this many seconds.
    Visibility(i32),
}

impl SqsBroker {
    /// Opens the broker of an `sqs://QUEUE?region=REGION&endpoint=URL` URL
    /// and checks that SQS answers (one `GetQueueUrl`).
    ///
    /// # Errors
    ///
    /// [`BrokerError::BadUrl`] for a URL that cannot be read (or no region
    /// anywhere), [`BrokerError::Unreachable`] when the endpoint does not
    /// answer, [`BrokerError::Backend`] when SQS refuses (bad credentials,
    /// no permission).
    pub async fn connect(url: &str) -> Result<Self, BrokerError> {
        let target = parse_url(url)?;
        let http = aws_smithy_http_client::Builder::new()
            .tls_provider(Provider::Rustls(CryptoMode::Ring))
            .build_https();
        let timeouts = |attempt: Duration| {
            TimeoutConfig::builder()
                .connect_timeout(CONNECT_TIMEOUT)
                .operation_attempt_timeout(attempt)
                .build()
        };
        let mut loader = aws_config::defaults(BehaviorVersion::latest())
            .http_client(http)
            .timeout_config(timeouts(ATTEMPT_TIMEOUT))
            .retry_config(
                RetryConfig::standard()
                    .with_max_attempts(ATTEMPTS)
                    .with_initial_backoff(Duration::from_millis(100))
                    .with_max_backoff(Duration::from_secs(1)),
            );
        if let Some(region) = &target.region {
            loader = loader.region(Region::new(region.clone()));
        }
        if let Some(endpoint) = &target.endpoint {
            loader = loader.endpoint_url(endpoint);
        }
        let shared = loader.load().await;
        let region = match (shared.region(), &target.endpoint) {
            (Some(region), _) => region.to_string(),
            (None, Some(_)) => "us-east-1".to_owned(),
            (None, None) => {
                return Err(bad_url(
                    url,
                    "no AWS region: add ?region=…, or set AWS_REGION or a profile's region".into(),
                ));
            }
        };
        let mut config =
            aws_sdk_sqs::config::Builder::from(&shared).region(Region::new(region.clone()));
        if target.endpoint.is_some() && !finds_credentials(shared.credentials_provider()).await {
            // A local endpoint takes any credentials: dummy ones rather
            // than none.
            config = config.credentials_provider(Credentials::new(
                "wasq-local",
                "wasq-local",
                None,
                None,
                "wasq dummy credentials for a local endpoint",
            ));
        }
        let client = Client::from_conf(config.clone().build());
        let long_poll = Client::from_conf(
            config
                .timeout_config(timeouts(
                    ATTEMPT_TIMEOUT + Duration::from_secs(MAX_WAIT_SECS),
                ))
                .build(),
        );
        let server = match &target.endpoint {
            Some(endpoint) => endpoint.clone(),
            None => format!("region {region}"),
        };
        let broker = Self {
            client,
            long_poll,
            prefix: target.queue,
            location: crate::redact(url),
            server,
            urls: Mutex::default(),
            limits: Mutex::default(),
        };
        broker.ping().await?;
        tracing::debug!(location = %broker.location, region, "SQS broker open");
        Ok(broker)
    }

    /// The SQS name of wasq queue `queue`.
    fn sqs_name(&self, queue: &str) -> Result<String, BrokerError> {
        sqs_name(&self.prefix, queue)
    }

    /// The URL of `queue`'s SQS queue, or `None` if it does not exist.
    async fn lookup(&self, queue: &str) -> Result<Option<String>, BrokerError> {
        if let Some(url) = self.cached(queue) {
            return Ok(Some(url));
        }
        let name = self.sqs_name(queue)?;
        match self.get_queue_url(&name).await {
            Ok(url) => Ok(Some(self.remember(queue, url))),
            Err(CallError::NoQueue | CallError::NotHeld) => Ok(None),
            Err(CallError::Other(e)) => Err(e),
        }
    }

    /// The URL of `queue`'s SQS queue, created if missing.
    async fn open(&self, queue: &str) -> Result<String, BrokerError> {
        if let Some(url) = self.lookup(queue).await? {
            return Ok(url);
        }
        let name = self.sqs_name(queue)?;
        let created = self
            .client
            .create_queue()
            .queue_name(&name)
            .send()
            .await
            .map_err(|e| self.call_error("CreateQueue", e));
        let url = match created {
            Ok(out) => out.queue_url().map(str::to_owned),
            Err(CallError::Other(e)) => return Err(e),
            Err(_) => None,
        };
        let Some(url) = url else {
            return Err(BrokerError::Backend(format!(
                "SQS CreateQueue `{name}` answered no queue URL"
            )));
        };
        tracing::debug!(queue, name, url, "SQS queue created");
        Ok(self.remember(queue, url))
    }

    async fn get_queue_url(&self, name: &str) -> Result<String, CallError> {
        let out = self
            .client
            .get_queue_url()
            .queue_name(name)
            .send()
            .await
            .map_err(|e| self.call_error("GetQueueUrl", e))?;
        out.queue_url().map(str::to_owned).ok_or(CallError::NoQueue)
    }

    fn cached(&self, queue: &str) -> Option<String> {
        lock(&self.urls).get(queue).cloned()
    }

    fn remember(&self, queue: &str, url: String) -> String {
        lock(&self.urls).insert(queue.to_owned(), url.clone());
        url
    }

    /// Forgets the URL of `queue`, whose SQS queue turned out not to exist.
    fn forget(&self, queue: &str) {
        if lock(&self.urls).remove(queue).is_some() {
            tracing::debug!(queue, "SQS queue gone; it will be looked up again");
        }
    }

    /// `result` as the broker answers it: `gone` if the queue (or the
    /// receipt handle) holds nothing.
    fn settle<T>(
        &self,
        queue: &str,
        result: Result<T, CallError>,
        gone: T,
    ) -> Result<T, BrokerError> {
        match result {
            Ok(value) => Ok(value),
            Err(CallError::NoQueue) => {
                self.forget(queue);
                Ok(gone)
            }
            Err(CallError::NotHeld) => Ok(gone),
            Err(CallError::Other(e)) => Err(e),
        }
    }

    /// Sorts a failed SDK call.
    fn call_error<E>(&self, call: &str, error: SdkError<E>) -> CallError
    where
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    {
        match &error {
            SdkError::ServiceError(service) => {
                let (code, message) = (service.err().code(), service.err().message());
                if is_no_queue(code.unwrap_or_default()) {
                    return CallError::NoQueue;
                }
                if is_not_held(code.unwrap_or_default(), message.unwrap_or_default()) {
                    return CallError::NotHeld;
                }
                let text = match (code, message) {
                    (Some(code), Some(message)) => format!("{code}: {message}"),
                    (Some(code), None) => code.to_owned(),
                    // Not SQS answering, perhaps: say what came back.
                    _ => format!(
                        "HTTP {}: {}",
                        service.raw().status().as_u16(),
                        error_chain(&error)
                    ),
                };
                CallError::Other(BrokerError::Backend(format!("SQS {call}: {text}")))
            }
            SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) => {
                CallError::Other(BrokerError::Unreachable(format!(
                    "SQS at {}: {call}: {}",
                    self.server,
                    error_chain(&error)
                )))
            }
            _ => CallError::Other(BrokerError::Backend(format!(
                "SQS {call}: {}",
                error_chain(&error)
            ))),
        }
    }

    /// The sum of the counting attributes `names` of the queue at `url`.
    async fn count(&self, url: &str, names: &[QueueAttributeName]) -> Result<u64, CallError> {
        let mut call = self.client.get_queue_attributes().queue_url(url);
        for name in names {
            call = call.attribute_names(name.clone());
        }
        let out = call
            .send()
            .await
            .map_err(|e| self.call_error("GetQueueAttributes", e))?;
        let attributes = out.attributes();
        Ok(names
            .iter()
            .filter_map(|name| attributes?.get(name)?.parse::<u64>().ok())
            .sum())
    }

    /// The longest body the queue at `url` accepts.
    async fn max_body(&self, url: &str) -> Result<usize, BrokerError> {
        if let Some(&limit) = lock(&self.limits).get(url) {
            return Ok(limit);
        }
        let read = self
            .client
            .get_queue_attributes()
            .queue_url(url)
            .attribute_names(QueueAttributeName::MaximumMessageSize)
            .send()
            .await
            .map_err(|e| self.call_error("GetQueueAttributes", e));
        let limit = match read {
            Ok(out) => out
                .attributes()
                .and_then(|a| a.get(&QueueAttributeName::MaximumMessageSize))
                .and_then(|size| size.parse().ok())
                .unwrap_or(DEFAULT_MAX_BODY),
            Err(CallError::Other(BrokerError::Backend(e))) => {
                // No permission to read attributes: assume the smaller
                // limit rather than refuse to send.
                tracing::warn!(url, "cannot read MaximumMessageSize, assuming 256 KiB: {e}");
                DEFAULT_MAX_BODY
            }
            Err(CallError::Other(e)) => return Err(e),
            Err(CallError::NoQueue | CallError::NotHeld) => DEFAULT_MAX_BODY,
        };
        lock(&self.limits).insert(url.to_owned(), limit);
        Ok(limit)
    }

    /// Sends `bodies` in one `SendMessageBatch`, resending the entries SQS
    /// failed through no fault of the sender (twice at most).
    async fn send_batch(&self, url: &str, bodies: &[String]) -> Result<(), CallError> {
        let mut pending: Vec<usize> = (0..bodies.len()).collect();
        for attempt in 1..=ATTEMPTS {
            let mut entries = Vec::with_capacity(pending.len());
            for &i in &pending {
                let entry = SendMessageBatchRequestEntry::builder()
                    .id(i.to_string())
                    .message_body(bodies.get(i).map_or("", String::as_str))
                    .build()
                    .map_err(|e| CallError::Other(BrokerError::Backend(format!("SQS: {e}"))))?;
                entries.push(entry);
            }
            let out = self
                .client
                .send_message_batch()
                .queue_url(url)
                .set_entries(Some(entries))
                .send()
                .await
                .map_err(|e| self.call_error("SendMessageBatch", e))?;
            let failed = out.failed();
            if failed.is_empty() {
                return Ok(());
            }
            if let Some(refused) = failed
                .iter()
                .find(|f| f.sender_fault() || attempt == ATTEMPTS)
            {
                return Err(CallError::Other(BrokerError::Backend(format!(
                    "SQS SendMessageBatch: {} of {} messages refused: {}",
                    failed.len(),
                    pending.len(),
                    entry_error(refused)
                ))));
            }
            tracing::debug!(failed = failed.len(), "SQS SendMessageBatch: resending");
            pending = failed.iter().filter_map(|f| f.id().parse().ok()).collect();
        }
        Ok(())
    }

    /// One `ReceiveMessage` of up to `max` (≤ 10) messages.
    async fn receive(
        &self,
        url: &str,
        max: usize,
        lease_secs: i32,
        wait_secs: i32,
    ) -> Result<Vec<Received>, CallError> {
        let client = if wait_secs > 0 {
            &self.long_poll
        } else {
            &self.client
        };
        let out = client
            .receive_message()
            .queue_url(url)
            .max_number_of_messages(i32::try_from(max.min(BATCH)).unwrap_or(1))
            .visibility_timeout(lease_secs)
            .wait_time_seconds(wait_secs)
            .message_system_attribute_names(MessageSystemAttributeName::ApproximateReceiveCount)
            .send()
            .await
            .map_err(|e| self.call_error("ReceiveMessage", e))?;
        Ok(out.messages().iter().filter_map(delivery).collect())
    }

    /// Takes up to `max` visible messages without waiting: rounds of up to
    /// [`IN_FLIGHT`] receives at once, until `max` are taken or a receive
    /// comes back short.
    async fn take(
        &self,
        url: &str,
        max: usize,
        lease_secs: i32,
    ) -> Result<Vec<Delivery>, CallError> {
        Ok(unique(self.take_received(url, max, lease_secs, 1).await?))
    }

    /// [`take`](Self::take), starting with `first` receives at once (the
    /// first round of a plain dequeue is one receive: no point in paying
    /// for ten on a queue that holds three).
    async fn take_received(
        &self,
        url: &str,
        max: usize,
        lease_secs: i32,
        first: usize,
    ) -> Result<Vec<Received>, CallError> {
        let mut taken = Vec::new();
        let mut fan_out = first;
        while taken.len() < max {
            let want = max - taken.len();
            let sizes: Vec<usize> = (0..want.div_ceil(BATCH).min(fan_out))
                .map(|i| (want - i * BATCH).min(BATCH))
                .collect();
            fan_out = IN_FLIGHT;
            let receives = sizes
                .iter()
                .map(|&n| self.receive(url, n, lease_secs, 0))
                .collect();
            let mut short = false;
            let mut failure = None;
            for (&asked, result) in sizes.iter().zip(join_limited(receives, IN_FLIGHT).await) {
                match result {
                    Ok(got) => {
                        short |= got.len() < asked;
                        taken.extend(got);
                    }
                    Err(e) => {
                        short = true;
                        failure.get_or_insert(e);
                    }
                }
            }
            if let Some(e) = failure {
                if taken.is_empty() {
                    return Err(e);
                }
                // Keep what was received: its leases run out if dropped.
                tracing::warn!(
                    taken = taken.len(),
                    "SQS ReceiveMessage failed, answering what came: {e:?}"
                );
                break;
            }
            if short {
                break;
            }
        }
        Ok(taken)
    }

    /// One batch call on `handles` (at most 10): whether each succeeded.
    async fn handle_batch(
        &self,
        url: &str,
        call: HandleCall,
        handles: &[&str],
    ) -> Result<Vec<bool>, CallError> {
        let build_error = |e: aws_sdk_sqs::error::BuildError| {
            CallError::Other(BrokerError::Backend(format!("SQS: {e}")))
        };
        let (succeeded, failed): (Vec<String>, Vec<BatchResultErrorEntry>) = match call {
            HandleCall::Delete => {
                let mut entries = Vec::with_capacity(handles.len());
                for (i, handle) in handles.iter().enumerate() {
                    entries.push(
                        DeleteMessageBatchRequestEntry::builder()
                            .id(i.to_string())
                            .receipt_handle(*handle)
                            .build()
                            .map_err(build_error)?,
                    );
                }
                let out = self
                    .client
                    .delete_message_batch()
                    .queue_url(url)
                    .set_entries(Some(entries))
                    .send()
                    .await
                    .map_err(|e| self.call_error("DeleteMessageBatch", e))?;
                (
                    out.successful().iter().map(|s| s.id().to_owned()).collect(),
                    out.failed().to_vec(),
                )
            }
            HandleCall::Visibility(secs) => {
                let mut entries = Vec::with_capacity(handles.len());
                for (i, handle) in handles.iter().enumerate() {
                    entries.push(
                        ChangeMessageVisibilityBatchRequestEntry::builder()
                            .id(i.to_string())
                            .receipt_handle(*handle)
                            .visibility_timeout(secs)
                            .build()
                            .map_err(build_error)?,
                    );
                }
                let out = self
                    .client
                    .change_message_visibility_batch()
                    .queue_url(url)
                    .set_entries(Some(entries))
                    .send()
                    .await
                    .map_err(|e| self.call_error("ChangeMessageVisibilityBatch", e))?;
                (
                    out.successful().iter().map(|s| s.id().to_owned()).collect(),
                    out.failed().to_vec(),
                )
            }
        };
        for entry in &failed {
            if !is_not_held(entry.code(), entry.message().unwrap_or_default()) {
                tracing::warn!(
                    ?call,
                    "SQS refused a receipt handle: {}",
                    entry_error(entry)
                );
            }
        }
        let mut held = vec![false; handles.len()];
        for id in succeeded {
            if let Some(slot) = id.parse::<usize>().ok().and_then(|i| held.get_mut(i)) {
                *slot = true;
            }
        }
        Ok(held)
    }

    /// `call` on the receipt handles of `ack_ids`, 10 a call: whether each
    /// succeeded. An ack id that is empty, or repeats an earlier one,
    /// answers `false` without a call.
    async fn on_handles(
        &self,
        queue: &str,
        ack_ids: &[AckId],
        call: HandleCall,
    ) -> Result<Vec<bool>, BrokerError> {
        let mut answers = vec![false; ack_ids.len()];
        let mut seen = HashSet::new();
        let picked: Vec<usize> = ack_ids
            .iter()
            .enumerate()
            .filter(|(_, ack)| !ack.as_str().is_empty() && seen.insert(ack.as_str()))
            .map(|(i, _)| i)
            .collect();
        if picked.is_empty() {
            return Ok(answers);
        }
        let Some(url) = self.lookup(queue).await? else {
            return Ok(answers);
        };
        let chunks: Vec<(&[usize], Vec<&str>)> = picked
            .chunks(BATCH)
            .map(|chunk| {
                let handles = chunk
                    .iter()
                    .filter_map(|&i| ack_ids.get(i).map(AckId::as_str))
                    .collect();
                (chunk, handles)
            })
            .collect();
        let calls = chunks
            .iter()
            .map(|(_, handles)| self.handle_batch(&url, call, handles))
            .collect();
        for ((chunk, _), result) in chunks.iter().zip(join_limited(calls, IN_FLIGHT).await) {
            let held = self.settle(queue, result, Vec::new())?;
            for (&i, held) in chunk.iter().zip(held) {
                if let Some(answer) = answers.get_mut(i) {
                    *answer = held;
                }
            }
        }
        Ok(answers)
    }

    /// Receives the visible messages of the queue at `url` and deletes
    /// them; answers how many were deleted.
    async fn purge_visible(&self, url: &str) -> Result<u64, CallError> {
        let visible = self
            .count(url, &[QueueAttributeName::ApproximateNumberOfMessages])
            .await?;
        let (mut received, mut deleted) = (0_u64, 0_u64);
        loop {
            let batch = self.take(url, BATCH * IN_FLIGHT, PURGE_LEASE_SECS).await?;
            if batch.is_empty() {
                break;
            }
            received += batch.len() as u64;
            let handles: Vec<&str> = batch.iter().map(|d| d.ack_id.as_str()).collect();
            let calls = handles
                .chunks(BATCH)
                .map(|chunk| self.handle_batch(url, HandleCall::Delete, chunk))
                .collect();
            for result in join_limited(calls, IN_FLIGHT).await {
                deleted += result?.into_iter().filter(|&held| held).count() as u64;
            }
            if received > visible + PURGE_SLACK {
                tracing::warn!(url, deleted, "purge stopped: messages keep arriving");
                break;
            }
        }
        Ok(deleted)
    }
}

impl Broker for SqsBroker {
    async fn enqueue(&self, queue: &str, payload: Vec<u8>) -> Result<(), BrokerError> {
        self.enqueue_batch(queue, vec![payload]).await
    }

    async fn enqueue_batch(&self, queue: &str, payloads: Vec<Vec<u8>>) -> Result<(), BrokerError> {
        if payloads.is_empty() {
            return Ok(());
        }
        let url = self.open(queue).await?;
        let limit = self.max_body(&url).await?;
        let bodies: Vec<String> = payloads.iter().map(|p| encode_body(p)).collect();
        // Check every size first: a batch is sent whole or not at all.
        if let Some((payload, body)) = payloads
            .iter()
            .zip(&bodies)
            .find(|(_, body)| body.len() > limit)
        {
            return Err(BrokerError::Backend(format!(
                "a payload of {} bytes is too big for SQS: its base64 body is {} bytes, over the \
                 queue's limit of {limit} bytes (MaximumMessageSize; payloads up to {} bytes fit)",
                payload.len(),
                body.len(),
                max_payload(limit)
            )));
        }
        let batches = batches(&bodies, limit);
        let sends = batches
            .iter()
            .map(|range| self.send_batch(&url, bodies.get(range.clone()).unwrap_or_default()))
            .collect();
        for result in join_limited(sends, IN_FLIGHT).await {
            match result {
                Ok(()) => {}
                Err(CallError::Other(e)) => return Err(e),
                Err(CallError::NoQueue | CallError::NotHeld) => {
                    self.forget(queue);
                    return Err(BrokerError::Backend(format!(
                        "SQS queue `{}` vanished while sending; it is created again on the next enqueue",
                        self.sqs_name(queue)?
                    )));
                }
            }
        }
        tracing::trace!(
            queue,
            count = bodies.len(),
            batches = batches.len(),
            "enqueued"
        );
        Ok(())
    }

    async fn dequeue(
        &self,
        queue: &str,
        max: usize,
        lease: Duration,
    ) -> Result<Vec<Delivery>, BrokerError> {
        if max == 0 {
            return Ok(Vec::new());
        }
        let url = self.open(queue).await?;
        let taken = self.take(&url, max, lease_secs(lease)).await;
        self.settle(queue, taken, Vec::new())
    }

    async fn dequeue_wait(
        &self,
        queue: &str,
        max: usize,
        lease: Duration,
        wait: Duration,
    ) -> Result<Vec<Delivery>, BrokerError> {
        if max == 0 || wait.is_zero() {
            return self.dequeue(queue, max, lease).await;
        }
        let url = self.open(queue).await?;
        let lease = lease_secs(lease);
        let deadline = Instant::now() + wait;
        loop {
            // A long poll answers as soon as a message is visible, so one
            // receive both takes what is there and waits when nothing is.
            let left = deadline.saturating_duration_since(Instant::now());
            let wait_secs = i32::try_from(ceil_secs(left).clamp(1, MAX_WAIT_SECS)).unwrap_or(1);
            let first = self.receive(&url, max, lease, wait_secs).await;
            let mut got = self.settle(queue, first, Vec::new())?;
            if !got.is_empty() {
                if got.len() == max.min(BATCH) && max > got.len() {
                    // A full receive: there may be more to take at once.
                    match self
                        .take_received(&url, max - got.len(), lease, IN_FLIGHT)
                        .await
                    {
                        Ok(more) => got.extend(more),
                        Err(e) => {
                            tracing::warn!("SQS ReceiveMessage failed, answering what came: {e:?}")
                        }
                    }
                }
                return Ok(unique(got));
            }
            if Instant::now() >= deadline {
                return Ok(Vec::new());
            }
        }
    }

    async fn acknowledge(&self, queue: &str, ack_ids: &[AckId]) -> Result<Vec<bool>, BrokerError> {
        self.on_handles(queue, ack_ids, HandleCall::Delete).await
    }

    async fn renew(
        &self,
        queue: &str,
        ack_ids: &[AckId],
        lease: Duration,
    ) -> Result<Vec<bool>, BrokerError> {
        self.on_handles(queue, ack_ids, HandleCall::Visibility(lease_secs(lease)))
            .await
    }

    async fn release(&self, queue: &str, ack_id: &AckId) -> Result<bool, BrokerError> {
        if ack_id.as_str().is_empty() {
            return Ok(false);
        }
        let Some(url) = self.lookup(queue).await? else {
            return Ok(false);
        };
        let released = self
            .client
            .change_message_visibility()
            .queue_url(url)
            .receipt_handle(ack_id.as_str())
            .visibility_timeout(0)
            .send()
            .await
            .map(|_| true)
            .map_err(|e| self.call_error("ChangeMessageVisibility", e));
        self.settle(queue, released, false)
    }

    async fn delete(&self, queue: &str, ack_id: &AckId) -> Result<bool, BrokerError> {
        if ack_id.as_str().is_empty() {
            return Ok(false);
        }
        let Some(url) = self.lookup(queue).await? else {
            return Ok(false);
        };
        let deleted = self
            .client
            .delete_message()
            .queue_url(url)
            .receipt_handle(ack_id.as_str())
            .send()
            .await
            .map(|_| true)
            .map_err(|e| self.call_error("DeleteMessage", e));
        self.settle(queue, deleted, false)
    }

    async fn purge_queue(&self, queue: &str) -> Result<u64, BrokerError> {
        let Some(url) = self.lookup(queue).await? else {
            return Ok(0);
        };
        let purged = self.purge_visible(&url).await;
        self.settle(queue, purged, 0)
    }

    async fn delete_queue(&self, queue: &str) -> Result<(), BrokerError> {
        let Some(url) = self.lookup(queue).await? else {
            return Ok(());
        };
        let purged = self
            .client
            .purge_queue()
            .queue_url(url)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| self.call_error("PurgeQueue", e));
        self.settle(queue, purged, ())
    }

    async fn queue_size(&self, queue: &str) -> Result<u64, BrokerError> {
        let Some(url) = self.lookup(queue).await? else {
            return Ok(0);
        };
        let count = self
            .count(&url, &[QueueAttributeName::ApproximateNumberOfMessages])
            .await;
        self.settle(queue, count, 0)
    }

    async fn lock_size(&self, queue: &str) -> Result<u64, BrokerError> {
        let Some(url) = self.lookup(queue).await? else {
            return Ok(0);
        };
        let count = self
            .count(
                &url,
                &[QueueAttributeName::ApproximateNumberOfMessagesNotVisible],
            )
            .await;
        self.settle(queue, count, 0)
    }

    async fn queues(&self) -> Result<Vec<String>, BrokerError> {
        let mut urls = Vec::new();
        let mut token = None;
        loop {
            let out = self
                .client
                .list_queues()
                .queue_name_prefix(&self.prefix)
                .max_results(1000)
                .set_next_token(token.take())
                .send()
                .await
                .map_err(|e| self.call_error("ListQueues", e).into_error())?;
            urls.extend(out.queue_urls().iter().cloned());
            match out.next_token() {
                Some(next) if !next.is_empty() => token = Some(next.to_owned()),
                _ => break,
            }
        }
        let named: Vec<(String, String)> = urls
            .into_iter()
            .filter_map(|url| {
                let name = url.trim_end_matches('/').rsplit('/').next()?;
                Some((wasq_name(&self.prefix, name)?, url))
            })
            .collect();
        let counts: Vec<_> = named
            .iter()
            .map(|(_, url)| {
                self.count(
                    url,
                    &[
                        QueueAttributeName::ApproximateNumberOfMessages,
                        QueueAttributeName::ApproximateNumberOfMessagesNotVisible,
                        QueueAttributeName::ApproximateNumberOfMessagesDelayed,
                    ],
                )
            })
            .collect();
        let counts = join_limited(counts, IN_FLIGHT).await;
        let mut names = Vec::new();
        for ((name, url), count) in named.into_iter().zip(counts) {
            match count {
                Ok(0) | Err(CallError::NoQueue | CallError::NotHeld) => {}
                Ok(_) => {
                    self.remember(&name, url);
                    names.push(name);
                }
                Err(CallError::Other(e)) => return Err(e),
            }
        }
        names.sort_unstable();
        names.dedup();
        Ok(names)
    }

    async fn ping(&self) -> Result<(), BrokerError> {
        match self.get_queue_url(&self.prefix).await {
            Ok(_) | Err(CallError::NoQueue | CallError::NotHeld) => Ok(()),
            Err(CallError::Other(e)) => Err(e),
        }
    }

    fn info(&self) -> BrokerInfo {
        BrokerInfo {
            kind: "sqs",
            location: self.location.clone(),
            priorities: false,
        }
    }
}

// ---- URLs and names ----

fn bad_url(url: &str, reason: String) -> BrokerError {
    BrokerError::BadUrl {
        url: crate::redact(url),
        reason,
    }
}

/// Reads `sqs://QUEUE?region=REGION&endpoint=URL`.
fn parse_url(url: &str) -> Result<Target, BrokerError> {
    let rest = match url.split_once("://") {
        Some((scheme, rest)) if scheme.eq_ignore_ascii_case("sqs") => rest,
        _ => return Err(bad_url(url, "expected sqs://QUEUE?region=REGION".into())),
    };
    if rest.contains('#') {
        return Err(bad_url(url, "a fragment (`#…`) means nothing here".into()));
    }
    let (queue, query) = rest.split_once('?').unwrap_or((rest, ""));
    let queue = queue.strip_suffix('/').unwrap_or(queue);
    if queue.is_empty() {
        return Err(bad_url(
            url,
            "no queue name: use sqs://QUEUE?region=REGION, e.g. sqs://wasq?region=eu-west-1".into(),
        ));
    }
    if queue.ends_with(".fifo") {
        return Err(bad_url(
            url,
            "FIFO queues are not supported: name a standard queue".into(),
        ));
    }
    if let Some(bad) = queue.chars().find(|&c| !is_sqs_char(c)) {
        return Err(bad_url(
            url,
            format!(
                "an SQS queue name has only letters, digits, `-` and `_`, not {bad:?} (the \
                 endpoint goes in ?endpoint=URL)"
            ),
        ));
    }
    if queue.len() > MAX_NAME {
        return Err(bad_url(
            url,
            format!(
                "the queue name is {} characters, SQS allows {MAX_NAME}",
                queue.len()
            ),
        ));
    }
    let mut target = Target {
        queue: queue.to_owned(),
        region: None,
        endpoint: None,
    };
    for pair in query.split('&').filter(|pair| !pair.is_empty()) {
        let Some((key, value)) = pair.split_once('=') else {
            return Err(bad_url(url, format!("option `{pair}` has no value")));
        };
        let value = percent_decode(value)
            .ok_or_else(|| bad_url(url, format!("option `{key}`: bad percent-encoding")))?;
        let slot = match key {
            "region" => {
                if value.is_empty() || !value.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
                {
                    return Err(bad_url(url, format!("`{value}` is not an AWS region")));
                }
                &mut target.region
            }
            "endpoint" => {
                let lower = value.to_ascii_lowercase();
                let host = lower
                    .strip_prefix("http://")
                    .or_else(|| lower.strip_prefix("https://"));
                if host.is_none_or(str::is_empty) {
                    return Err(bad_url(
                        url,
                        format!("endpoint `{value}` is not an http:// or https:// URL"),
                    ));
                }
                &mut target.endpoint
            }
            _ => {
                return Err(bad_url(
                    url,
                    format!("unknown option `{key}` (known: {OPTIONS})"),
                ));
            }
        };
        if slot.replace(value).is_some() {
            return Err(bad_url(url, format!("option `{key}` given twice")));
        }
    }
    Ok(target)
}

/// `%XX` escapes decoded; `None` for a broken escape or text that is not
/// UTF-8.
fn percent_decode(text: &str) -> Option<String> {
    let mut bytes = Vec::with_capacity(text.len());
    let mut rest = text.as_bytes();
    while let Some((&byte, tail)) = rest.split_first() {
        if byte == b'%' {
            let hex = std::str::from_utf8(tail.get(..2)?).ok()?;
            bytes.push(u8::from_str_radix(hex, 16).ok()?);
            rest = tail.get(2..)?;
        } else {
            bytes.push(byte);
            rest = tail;
        }
    }
    String::from_utf8(bytes).ok()
}

/// Whether SQS allows `c` in a queue name.
fn is_sqs_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '-' || c == '_'
}

/// The SQS queue of wasq queue `queue`, for the broker of `prefix`
/// (`QUEUE`): `prefix` itself for `default`, else `prefix-NAME`, NAME
/// escaped as the module doc says.
fn sqs_name(prefix: &str, queue: &str) -> Result<String, BrokerError> {
    if queue == "default" {
        return Ok(prefix.to_owned());
    }
    if queue.is_empty() {
        return Err(BrokerError::Backend(
            "an empty queue name cannot be an SQS queue".into(),
        ));
    }
    let plain = !queue.starts_with('_') && queue.chars().all(is_sqs_char);
    let name = if plain {
        format!("{prefix}-{queue}")
    } else {
        let mut name = format!("{prefix}-_");
        for byte in queue.bytes() {
            if byte.is_ascii_alphanumeric() || byte == b'-' {
                name.push(char::from(byte));
            } else {
                name.push_str(&format!("_{byte:02X}"));
            }
        }
        name
    };
    if name.len() > MAX_NAME {
        return Err(BrokerError::Backend(format!(
            "queue `{queue}` is too long for SQS: its SQS name `{name}` has {} characters, SQS \
             allows {MAX_NAME}",
            name.len()
        )));
    }
    Ok(name)
}

/// The wasq queue whose SQS queue (for the broker of `prefix`) is `name`,
/// if any.
fn wasq_name(prefix: &str, name: &str) -> Option<String> {
    if name == prefix {
        return Some("default".to_owned());
    }
    let encoded = name.strip_prefix(prefix)?.strip_prefix('-')?;
    let queue = match encoded.strip_prefix('_') {
        None => encoded.to_owned(),
        Some(escaped) => {
            let mut bytes = Vec::with_capacity(escaped.len());
            let mut rest = escaped.as_bytes();
            while let Some((&byte, tail)) = rest.split_first() {
                if byte == b'_' {
                    let hex = std::str::from_utf8(tail.get(..2)?).ok()?;
                    bytes.push(u8::from_str_radix(hex, 16).ok()?);
                    rest = tail.get(2..)?;
                } else {
                    bytes.push(byte);
                    rest = tail;
                }
            }
            String::from_utf8(bytes).ok()?
        }
    };
    // Only names this broker would make: one SQS queue per wasq queue.
    (sqs_name(prefix, &queue).ok()? == name).then_some(queue)
}

// ---- messages ----

/// The body that carries `payload`.
fn encode_body(payload: &[u8]) -> String {
    if payload.is_empty() {
        EMPTY_BODY.to_owned()
    } else {
        BASE64.encode(payload)
    }
}

/// The payload a body carries; a body that is not base64 is its own bytes.
fn decode_body(body: &str) -> Vec<u8> {
    if body == EMPTY_BODY {
        return Vec::new();
    }
    BASE64.decode(body).unwrap_or_else(|_| {
        tracing::warn!(
            len = body.len(),
            "SQS message body is not base64: delivering its raw bytes"
        );
        body.as_bytes().to_vec()
    })
}

/// The largest payload whose body fits in `max_body` bytes.
fn max_payload(max_body: usize) -> usize {
    max_body / 4 * 3
}

/// `bodies` cut into `SendMessageBatch` calls: at most 10 entries, and at
/// most `max_total` bytes of bodies, each (SQS's batch limit is its message
/// limit). Every body fits `max_total` on its own.
fn batches(bodies: &[String], max_total: usize) -> Vec<Range<usize>> {
    let mut out = Vec::new();
    let (mut start, mut total) = (0, 0);
    for (i, body) in bodies.iter().enumerate() {
        if i > start && (i - start == BATCH || total + body.len() > max_total) {
            out.push(start..i);
            (start, total) = (i, 0);
        }
        total += body.len();
    }
    if start < bodies.len() {
        out.push(start..bodies.len());
    }
    out
}

/// The deliveries of `received`, each message once: SQS may hand out a
/// message twice at once (at least once delivery), even to the receives of
/// one call. The later copy (the higher count) is kept: its receipt handle
/// is the current one.
fn unique(received: Vec<Received>) -> Vec<Delivery> {
    let mut at: HashMap<String, usize> = HashMap::new();
    let mut out: Vec<Delivery> = Vec::with_capacity(received.len());
    for (id, delivery) in received {
        match at.get(&id).and_then(|&i| out.get_mut(i)) {
            Some(kept) => {
                tracing::debug!(id, "SQS handed out a message twice at once");
                if delivery.deliveries > kept.deliveries {
                    *kept = delivery;
                }
            }
            None => {
                at.insert(id, out.len());
                out.push(delivery);
            }
        }
    }
    out
}

/// The message id (the receipt handle if there is none) and the delivery
/// of a received message.
fn delivery(message: &Message) -> Option<Received> {
    let Some(handle) = message.receipt_handle() else {
        tracing::warn!("SQS message without a receipt handle: skipped");
        return None;
    };
    let deliveries = message
        .attributes()
        .and_then(|a| a.get(&MessageSystemAttributeName::ApproximateReceiveCount))
        .and_then(|count| count.parse().ok())
        .unwrap_or(1);
    let id = message.message_id().unwrap_or(handle).to_owned();
    Some((
        id,
        Delivery {
            ack_id: AckId(handle.to_owned()),
            payload: decode_body(message.body().unwrap_or_default()),
            deliveries,
        },
    ))
}

/// A lease in whole seconds, as SQS takes it: rounded up, 1 s to 12 h.
fn lease_secs(lease: Duration) -> i32 {
    i32::try_from(ceil_secs(lease).clamp(1, MAX_LEASE_SECS)).unwrap_or(i32::MAX)
}

/// `duration` in seconds, rounded up.
fn ceil_secs(duration: Duration) -> u64 {
    duration
        .as_secs()
        .saturating_add(u64::from(duration.subsec_nanos() > 0))
}

// ---- errors ----

fn is_no_queue(code: &str) -> bool {
    matches!(
        code,
        "AWS.SimpleQueueService.NonExistentQueue" | "QueueDoesNotExist"
    )
}

/// Whether SQS refused a receipt handle because it holds nothing. AWS says
/// `InvalidParameterValue` for some malformed handles.
fn is_not_held(code: &str, message: &str) -> bool {
    match code {
        "ReceiptHandleIsInvalid"
        | "InvalidIdFormat"
        | "MessageNotInflight"
        | "AWS.SimpleQueueService.MessageNotInflight" => true,
        "InvalidParameterValue" => {
            let message = message.to_ascii_lowercase();
            message.contains("receipthandle") || message.contains("receipt handle")
        }
        _ => false,
    }
}

/// `error` and its sources on one line, each said once. (The SDK's
/// `DisplayErrorContext` appends a multi-kilobyte debug dump.)
fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let part = cause.to_string();
        if !text.contains(&part) {
            text.push_str(": ");
            text.push_str(&part);
        }
        source = cause.source();
    }
    text.replace('\n', " ")
}

/// Whether the AWS credentials chain finds credentials, within
/// [`CREDENTIALS_TIMEOUT`] (off EC2 it may probe the instance metadata
/// service for seconds).
async fn finds_credentials(chain: Option<SharedCredentialsProvider>) -> bool {
    let Some(chain) = chain else { return false };
    match tokio::time::timeout(CREDENTIALS_TIMEOUT, chain.provide_credentials()).await {
        Ok(Ok(_)) => true,
        Ok(Err(e)) => {
            tracing::debug!("no AWS credentials, using dummy ones: {}", error_chain(&e));
            false
        }
        Err(_) => {
            tracing::debug!("no AWS credentials within {CREDENTIALS_TIMEOUT:?}, using dummy ones");
            false
        }
    }
}

fn entry_error(entry: &BatchResultErrorEntry) -> String {
    match entry.message() {
        Some(message) => format!("{}: {message}", entry.code()),
        None => entry.code().to_owned(),
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A map of cached names: nothing a panic could leave half done.
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Runs `futures` concurrently on the current task, at most `limit` at a
/// time (in order: a future starts when one before it is done), and
/// answers their outputs in order.
async fn join_limited<F: Future>(futures: Vec<F>, limit: usize) -> Vec<F::Output> {
    let limit = limit.max(1);
    let mut futures: Vec<Pin<Box<F>>> = futures.into_iter().map(Box::pin).collect();
    let mut outputs: Vec<Option<F::Output>> = futures.iter().map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut running = 0;
        for (future, output) in futures.iter_mut().zip(outputs.iter_mut()) {
            if output.is_some() {
                continue;
            }
            if running == limit {
                break;
            }
            match future.as_mut().poll(cx) {
                Poll::Ready(value) => *output = Some(value),
                Poll::Pending => running += 1,
            }
        }
        // Every future polled Pending has registered the waker.
        if outputs.iter().all(Option::is_some) {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    })
    .await;
    outputs.into_iter().flatten().collect()
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    /// The endpoint `cargo xtask test` started.
    fn endpoint() -> String {
        match std::env::var("WASQ_TEST_SQS_ENDPOINT") {
            Ok(endpoint) if !endpoint.is_empty() => endpoint,
            _ => panic!(
                "WASQ_TEST_SQS_ENDPOINT is not set: run the tests with `cargo xtask test`, which \
                 starts an SQS endpoint and sets it"
            ),
        }
    }

    /// A broker on the test endpoint, on a `QUEUE` of its own.
    async fn broker(tag: &str) -> SqsBroker {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .subsec_nanos();
        let url = format!(
            "sqs://unit-{tag}-{}-{nanos}?region=us-east-1&endpoint={}",
            std::process::id(),
            endpoint()
        );
        SqsBroker::connect(&url).await.unwrap()
    }

    #[test]
    fn urls_parse() {
        assert_eq!(
            parse_url("sqs://wasq?region=eu-west-1").unwrap(),
            Target {
                queue: "wasq".into(),
                region: Some("eu-west-1".into()),
                endpoint: None,
            }
        );
        assert_eq!(
            parse_url("SQS://my_q-1/?endpoint=http%3A%2F%2Flocalhost%3A4566%2F%3Fa%3Db%26c&region=us-east-1")
                .unwrap(),
            Target {
                queue: "my_q-1".into(),
                region: Some("us-east-1".into()),
                endpoint: Some("http://localhost:4566/?a=b&c".into()),
            }
        );
        assert_eq!(
            parse_url("sqs://q?endpoint=https://sqs.eu-west-1.amazonaws.com")
                .unwrap()
                .endpoint
                .as_deref(),
            Some("https://sqs.eu-west-1.amazonaws.com")
        );
        assert_eq!(parse_url("sqs://q").unwrap().region, None);
        let reason = |url: &str| match parse_url(url) {
            Err(BrokerError::BadUrl { reason, .. }) => reason,
            other => panic!("{url}: {other:?}"),
        };
        assert!(reason("sqs://").contains("no queue name"));
        assert!(reason("sqs://?region=x").contains("no queue name"));
        assert!(reason("sqs://a.b").contains("'.'"));
        assert!(reason("sqs://host:4566/q").contains("?endpoint="));
        assert!(reason("sqs://q.fifo").contains("FIFO"));
        assert!(reason(&format!("sqs://{}", "q".repeat(81))).contains("80"));
        assert!(reason("sqs://q?regoin=x").contains("known: region, endpoint"));
        assert!(reason("sqs://q?region").contains("no value"));
        assert!(reason("sqs://q?region=a&region=b").contains("twice"));
        assert!(reason("sqs://q?region=eu west").contains("not an AWS region"));
        assert!(reason("sqs://q?endpoint=localhost:4566").contains("http://"));
        assert!(reason("sqs://q?endpoint=http://").contains("http://"));
        assert!(reason("sqs://q?endpoint=%zz").contains("percent"));
        assert!(reason("sqs://q#x").contains("fragment"));
        assert!(reason("redis://q").contains("sqs://QUEUE"));
    }

    #[test]
    fn queue_names_map_both_ways() {
        let cases = [
            ("default", "wasq"),
            ("emails", "wasq-emails"),
            ("high_priority-2", "wasq-high_priority-2"),
            ("emails.high", "wasq-_emails_2Ehigh"),
            ("_private", "wasq-__5Fprivate"),
            ("a b/ç", "wasq-_a_20b_2F_C3_A7"),
            ("Default", "wasq-Default"),
        ];
        for (queue, name) in cases {
            assert_eq!(sqs_name("wasq", queue).unwrap(), name, "{queue}");
            assert_eq!(wasq_name("wasq", name).as_deref(), Some(queue), "{name}");
        }
        // Queues of other brokers, and names this one would not make.
        for foreign in [
            "wasqx",
            "other",
            "wasq-",
            "wasq-_",
            "wasq-_zz",
            "wasq-_a_6",
            "wasq-_abc",
            "wasq-_a_61",
            "wasq-default",
        ] {
            assert_eq!(wasq_name("wasq", foreign), None, "{foreign}");
        }
        assert!(sqs_name("wasq", "").is_err());
        assert!(sqs_name("wasq", &"q".repeat(75)).is_ok());
        let e = sqs_name("wasq", &"q".repeat(76)).unwrap_err().to_string();
        assert!(e.contains("81 characters") && e.contains("80"), "{e}");
        let e = sqs_name("wasq", &".".repeat(30)).unwrap_err().to_string();
        assert!(e.contains("too long for SQS"), "{e}");
    }

    #[test]
    fn bodies_are_base64() {
        for payload in [
            Vec::new(),
            vec![0],
            vec![0, 255, 0xC3, 0x28],
            b"=".to_vec(),
            (0..=255).collect::<Vec<u8>>(),
        ] {
            let body = encode_body(&payload);
            assert!(!body.is_empty(), "SQS refuses empty bodies");
            assert_eq!(decode_body(&body), payload, "{body}");
        }
        assert_eq!(encode_body(b"hi"), "aGk=");
        assert_eq!(encode_body(b""), "=");
        // Not base64: delivered as is, for the caller to refuse.
        assert_eq!(decode_body("plain text!"), b"plain text!");
        // The largest payload that fits a limit, fits it; one more does not.
        for limit in [1024, 256 * 1024, 1024 * 1024, 1000] {
            let max = max_payload(limit);
            assert!(encode_body(&vec![1; max]).len() <= limit, "{limit}");
            assert!(encode_body(&vec![1; max + 1]).len() > limit, "{limit}");
        }
    }

    #[test]
    fn batches_respect_count_and_size() {
        let bodies = |sizes: &[usize]| sizes.iter().map(|&n| "x".repeat(n)).collect::<Vec<_>>();
        assert!(batches(&[], 100).is_empty());
        assert_eq!(batches(&bodies(&[1; 25]), 100), [0..10, 10..20, 20..25]);
        assert_eq!(
            batches(&bodies(&[60, 40, 1, 100, 100]), 100),
            [0..2, 2..3, 3..4, 4..5]
        );
        assert_eq!(batches(&bodies(&[100]), 100), vec![0..1_usize]);
    }

    #[test]
    fn leases_are_whole_seconds() {
        assert_eq!(lease_secs(Duration::ZERO), 1);
        assert_eq!(lease_secs(Duration::from_millis(200)), 1);
        assert_eq!(lease_secs(Duration::from_millis(1001)), 2);
        assert_eq!(lease_secs(Duration::from_secs(600)), 600);
        assert_eq!(lease_secs(Duration::from_secs(13 * 3600)), 43_200);
        assert_eq!(lease_secs(Duration::MAX), 43_200);
        assert_eq!(ceil_secs(Duration::from_millis(2500)), 3);
    }

    #[test]
    fn handle_errors_are_sorted() {
        assert!(is_not_held("ReceiptHandleIsInvalid", ""));
        assert!(is_not_held("AWS.SimpleQueueService.MessageNotInflight", ""));
        assert!(is_not_held(
            "InvalidParameterValue",
            "Value x for parameter ReceiptHandle is invalid. Reason: The receipt handle provided is not valid."
        ));
        assert!(!is_not_held(
            "InvalidParameterValue",
            "VisibilityTimeout is invalid"
        ));
        assert!(!is_not_held("InternalError", ""));
        assert!(is_no_queue("AWS.SimpleQueueService.NonExistentQueue"));
    }

    #[test]
    fn a_message_received_twice_at_once_is_answered_once() {
        let received = |id: &str, handle: &str, deliveries| {
            let delivery = Delivery {
                ack_id: AckId(handle.into()),
                payload: id.as_bytes().to_vec(),
                deliveries,
            };
            (id.to_owned(), delivery)
        };
        let got = unique(vec![
            received("a", "a1", 1),
            received("b", "b1", 1),
            received("a", "a2", 2),
            received("c", "c1", 3),
        ]);
        let handles: Vec<&str> = got.iter().map(|d| d.ack_id.as_str()).collect();
        assert_eq!(
            handles,
            ["a2", "b1", "c1"],
            "the later copy, in first place"
        );
    }

    #[tokio::test]
    async fn join_limited_keeps_order_and_limit() {
        let running = Arc::new(AtomicUsize::new(0));
        let most = Arc::new(AtomicUsize::new(0));
        let futures = (0..25_u64)
            .map(|i| {
                let (running, most) = (Arc::clone(&running), Arc::clone(&most));
                async move {
                    let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                    most.fetch_max(now, Ordering::SeqCst);
                    tokio::task::yield_now().await;
                    tokio::time::sleep(Duration::from_millis(25 - i)).await;
                    running.fetch_sub(1, Ordering::SeqCst);
                    i
                }
            })
            .collect();
        assert_eq!(join_limited(futures, 4).await, (0..25).collect::<Vec<_>>());
        assert_eq!(most.load(Ordering::SeqCst), 4);
        assert!(
            join_limited(Vec::<std::future::Ready<()>>::new(), 4)
                .await
                .is_empty()
        );
    }

    #[tokio::test]
    async fn an_unreachable_endpoint_fails_fast_in_one_line() {
        let url = "sqs://q?region=us-east-1&endpoint=http://127.0.0.1:1";
        let e = SqsBroker::connect(url).await.unwrap_err();
        assert!(matches!(e, BrokerError::Unreachable(_)), "{e:?}");
        let text = e.to_string();
        assert!(text.contains("http://127.0.0.1:1"), "{text}");
        assert!(!text.contains('\n'), "{text}");
    }

    #[tokio::test]
    async fn an_endpoint_needs_no_region() {
        // Not a bad URL: the region defaults, and the endpoint is tried.
        match SqsBroker::connect("sqs://q?endpoint=http://127.0.0.1:1").await {
            Err(BrokerError::Unreachable(_)) => {}
            other => panic!("{other:?}"),
        }
    }

    // ---- against the test endpoint ----

    #[tokio::test]
    async fn queue_names_survive_the_round_trip() {
        let b = broker("names").await;
        for queue in ["default", "emails.high", "_x", "ünï"] {
            b.enqueue(queue, b"x".to_vec()).await.unwrap();
        }
        assert_eq!(
            b.queues().await.unwrap(),
            ["_x", "default", "emails.high", "ünï"]
        );
        assert_eq!(b.info().kind, "sqs");
        assert!(b.info().location.starts_with("sqs://unit-names-"));
    }

    #[tokio::test]
    async fn oversized_payloads_fail_whole_and_clearly() {
        let b = broker("big").await;
        let too_big = vec![7; 4 << 20];
        let e = b
            .enqueue_batch("q", vec![b"small".to_vec(), too_big])
            .await
            .unwrap_err();
        assert!(matches!(e, BrokerError::Backend(_)), "{e:?}");
        let text = e.to_string();
        assert!(
            text.contains("too big for SQS") && text.contains("MaximumMessageSize"),
            "{text}"
        );
        assert_eq!(b.queue_size("q").await.unwrap(), 0, "nothing was sent");
    }

    #[tokio::test]
    async fn bulk_calls_go_ten_at_a_time() {
        let b = broker("bulk").await;
        let sent: Vec<Vec<u8>> = (0..35_u8).map(|i| vec![i]).collect();
        b.enqueue_batch("q", sent.clone()).await.unwrap();
        let mut got = b.dequeue("q", 100, Duration::from_secs(600)).await.unwrap();
        assert_eq!(got.len(), 35, "several receives at once take them all");
        let mut payloads: Vec<Vec<u8>> = got.iter().map(|d| d.payload.clone()).collect();
        payloads.sort();
        assert_eq!(payloads, sent);
        // Answers per ack id, in order, across batches, whatever is mixed in.
        let mut ack_ids: Vec<AckId> = got.drain(..).map(|d| d.ack_id).collect();
        ack_ids.insert(12, AckId("garbage".into()));
        ack_ids.insert(20, AckId(String::new()));
        ack_ids.push(ack_ids[0].clone());
        let held = b
            .renew("q", &ack_ids, Duration::from_secs(600))
            .await
            .unwrap();
        let want: Vec<bool> = (0..ack_ids.len())
            .map(|i| i != 12 && i != 20 && i != 37)
            .collect();
        assert_eq!(held, want);
        assert_eq!(b.acknowledge("q", &ack_ids).await.unwrap(), want);
        assert_eq!(
            b.queue_size("q").await.unwrap() + b.lock_size("q").await.unwrap(),
            0
        );
    }

    #[tokio::test]
    async fn dequeue_wait_on_a_new_queue_times_out_empty() {
        let b = broker("wait").await;
        let got = b
            .dequeue_wait("q", 10, Duration::from_secs(60), Duration::from_millis(300))
            .await
            .unwrap();
        assert!(got.is_empty());
    }
}
