//! The application API: upload modules, enqueue tasks, read and wait for
//! results — Django Q2's `async_task` and `result` for WebAssembly tasks.

use std::path::Path;
use std::time::{Duration, Instant};

use wasq_brokers::{BrokerError, SharedBroker};

use crate::config::Config;
use crate::package::{PackageCodec, PackageError, TaskLimits, TaskRecord};
use crate::store::{ModuleInfo, Store, StoreError, TaskResult};
use crate::{Digest, SandboxError, TaskCall};

/// Why a client call failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// No module by that name or digest.
    #[error(
        "unknown module `{0}`: upload it with `wasq module upload FILE.wasm --name {0}`, or pass a path to a .wasm file"
    )]
    UnknownModule(String),
    /// The bytes are not a WebAssembly module.
    #[error("{0}")]
    InvalidModule(String),
    /// Arguments are not a JSON array/object.
    #[error(transparent)]
    Arguments(#[from] SandboxError),
    /// A module file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// The broker failed.
    #[error(transparent)]
    Broker(#[from] BrokerError),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The package could not be made.
    #[error(transparent)]
    Package(#[from] PackageError),
    /// A cached result was asked for with no result cache configured.
    #[error(
        "cached results need a result cache: set `cache = \"redis://HOST\"` in wasq.toml or WASQ_CACHE"
    )]
    NoCache,
}

/// What to run.
#[derive(Debug, Clone)]
pub struct TaskRequest {
    /// Module: an uploaded name, a digest (or a unique prefix), or a path
    /// to a `.wasm` file (uploaded on the fly).
    pub module: String,
    /// Task name inside the module.
    pub task: String,
    /// Positional arguments (a JSON array).
    pub args: serde_json::Value,
    /// Named arguments (a JSON object).
    pub kwargs: serde_json::Value,
    /// Queue; `None` is the configured default.
    pub queue: Option<String>,
    /// Group name.
    pub group: Option<String>,
    /// Per-task limits.
    pub limits: TaskLimits,
    /// Keep the result in the result cache for this long instead of the
    /// store (needs `cache` in the configuration).
    pub cached: Option<Duration>,
}

impl TaskRequest {
    /// A request with no arguments, on the default queue.
    pub fn new(module: impl Into<String>, task: impl Into<String>) -> Self {
        Self {
            module: module.into(),
            task: task.into(),
            args: serde_json::json!([]),
            kwargs: serde_json::json!({}),
            queue: None,
            group: None,
            limits: TaskLimits::default(),
            cached: None,
        }
    }

    /// Sets the positional arguments.
    pub fn args(mut self, args: serde_json::Value) -> Self {
        self.args = args;
        self
    }
}

/// Talks to a broker and a store.
#[derive(Clone)]
pub struct Client {
    config: Config,
    broker: SharedBroker,
    store: Store,
    codec: PackageCodec,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("broker", &self.broker.info())
            .field("store", &self.store)
            .finish_non_exhaustive()
    }
}

impl Client {
    /// Connects to the configured broker and store.
    pub async fn connect(config: &Config) -> Result<Self, ClientError> {
        let broker = wasq_brokers::connect(&config.broker).await?;
        let mut store = Store::connect(&config.store).await?;
        if let Some(cache) = &config.cache {
            store = store.with_cache(cache).await?;
        }
        Ok(Self::new(config.clone(), broker, store))
    }

    /// A client over an existing broker and store.
    pub fn new(config: Config, broker: SharedBroker, store: Store) -> Self {
        let codec = PackageCodec::new(&config.secret, config.compress);
        Self {
            config,
            broker,
            store,
            codec,
        }
    }

    /// The broker.
    pub fn broker(&self) -> &SharedBroker {
        &self.broker
    }

    /// The store.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Uploads a module after checking it is WebAssembly.
    pub async fn upload(
        &self,
        bytes: &[u8],
        name: Option<&str>,
    ) -> Result<ModuleInfo, ClientError> {
        validate(bytes)?;
        Ok(self.store.put_module(bytes, name).await?)
    }

    /// Resolves a module reference to its digest and name.
    pub async fn resolve(&self, reference: &str) -> Result<(Digest, String), ClientError> {
        if let Some(found) = self.store.resolve_module(reference).await? {
            return Ok(found);
        }
        let path = Path::new(reference);
        if reference.ends_with(".wasm") || reference.ends_with(".wat") || path.is_file() {
            let bytes = std::fs::read(path).map_err(|source| ClientError::Read {
                path: reference.to_owned(),
                source,
            })?;
            let name = path
                .file_stem()
                .map_or_else(|| "module".to_owned(), |s| s.to_string_lossy().into_owned());
            let info = self.upload(&bytes, None).await?;
            return Ok((info.digest, name));
        }
        Err(ClientError::UnknownModule(reference.to_owned()))
    }

    /// Makes the signed package of a request (resolving its module).
    pub async fn package(
        &self,
        request: &TaskRequest,
    ) -> Result<(String, String, Vec<u8>), ClientError> {
        let (digest, module_name) = self.resolve(&request.module).await?;
        self.package_resolved(request, digest, module_name)
    }

    /// Makes the signed package of a request whose module is resolved.
    fn package_resolved(
        &self,
        request: &TaskRequest,
        digest: Digest,
        module_name: String,
    ) -> Result<(String, String, Vec<u8>), ClientError> {
        if request.cached.is_some() && self.config.cache.is_none() {
            return Err(ClientError::NoCache);
        }
        let call = TaskCall::new(&module_name, &request.task, &request.args, &request.kwargs)?;
        let queue = request
            .queue
            .clone()
            .unwrap_or_else(|| self.config.queue.clone());
        let record = TaskRecord {
            group: request.group.clone(),
            limits: request.limits.clone(),
            cached_secs: request
                .cached
                .map(|d| d.as_secs().clamp(1, u64::from(u32::MAX)) as u32),
            ..TaskRecord::new(
                digest,
                &module_name,
                &request.task,
                String::from_utf8_lossy(&call.input).into_owned(),
                &queue,
            )
        };
        let bytes = self.codec.encode(&record)?;
        Ok((record.id, queue, bytes))
    }

    /// Enqueues a task; returns its id.
    pub async fn enqueue(&self, request: &TaskRequest) -> Result<String, ClientError> {
        let (id, queue, bytes) = self.package(request).await?;
        self.broker.enqueue(&queue, bytes).await?;
        Ok(id)
    }

    /// Enqueues many tasks on the default queue in one broker transaction;
    /// returns their ids in order. Modules are resolved once each.
    pub async fn enqueue_many(&self, requests: &[TaskRequest]) -> Result<Vec<String>, ClientError> {
        let mut ids = Vec::with_capacity(requests.len());
        let mut batches: std::collections::BTreeMap<String, Vec<Vec<u8>>> = Default::default();
        let mut resolved: std::collections::HashMap<String, (Digest, String)> = Default::default();
        for request in requests {
            let (digest, name) = match resolved.get(&request.module) {
                Some(found) => found.clone(),
                None => {
                    let found = self.resolve(&request.module).await?;
                    resolved.insert(request.module.clone(), found.clone());
                    found
                }
            };
            let (id, queue, bytes) = self.package_resolved(request, digest, name)?;
            ids.push(id);
            batches.entry(queue).or_default().push(bytes);
        }
        for (queue, payloads) in batches {
            self.broker.enqueue_batch(&queue, payloads).await?;
        }
        Ok(ids)
    }

    /// The result of a task, if it has one.
    pub async fn result(&self, id: &str) -> Result<Option<TaskResult>, ClientError> {
        Ok(self.store.result(id).await?)
    }

    /// Waits up to `timeout` for a task's result.
    pub async fn wait(
        &self,
        id: &str,
        timeout: Duration,
    ) -> Result<Option<TaskResult>, ClientError> {
        let deadline = Instant::now() + timeout;
        let mut pause = Duration::from_millis(5);
        loop {
            if let Some(result) = self.result(id).await? {
                return Ok(Some(result));
            }
            let now = Instant::now();
            if now >= deadline {
                return Ok(None);
            }
            tokio::time::sleep(pause.min(deadline - now)).await;
            pause = (pause * 2).min(Duration::from_millis(100));
        }
    }
}

/// Checks that bytes are a WebAssembly module (binary or text) before they
/// are stored; compiling happens on the workers.
fn validate(bytes: &[u8]) -> Result<(), ClientError> {
    let binary;
    let bytes = if bytes.starts_with(b"\0asm") {
        bytes
    } else {
        binary = wat::parse_bytes(bytes).map_err(|e| {
            ClientError::InvalidModule(format!(
                "not a WebAssembly module: {}",
                e.to_string().lines().next().unwrap_or("")
            ))
        })?;
        &binary[..]
    };
    wasmparser::validate(bytes)
        .map(drop)
        .map_err(|e| ClientError::InvalidModule(format!("invalid WebAssembly: {e}")))
}
