//! Error reporters: told of every task that ends in failure, in the spirit
//! of Django Q2's `error_reporter`. [`ErrorReporter`] is the plug;
//! [`SentryReporter`] (feature `sentry`, `sentry_dsn` in the
//! configuration) is the first one. Reports are sent in the background:
//! a slow or absent Sentry never holds up a cluster.

use wasq_store::TaskResult;

/// Something told of failed tasks.
pub trait ErrorReporter: Send + Sync + std::fmt::Debug {
    /// A task ended in failure (its last attempt: retries are reported
    /// when they run out). Must not block.
    fn report(&self, failure: &TaskResult, tenant: Option<&str>);

    /// Sends what is pending before the process exits.
    fn flush(&self) {}
}

/// The reporters a configuration asks for.
pub fn from_config(
    config: &wasq_client::Config,
) -> Result<Vec<std::sync::Arc<dyn ErrorReporter>>, String> {
    #[cfg_attr(not(feature = "sentry"), allow(unused_mut))]
    let mut reporters: Vec<std::sync::Arc<dyn ErrorReporter>> = Vec::new();
    if let Some(dsn) = config.sentry_dsn.as_deref().filter(|d| !d.is_empty()) {
        #[cfg(feature = "sentry")]
        reporters.push(std::sync::Arc::new(SentryReporter::new(dsn, &config.name)?));
        #[cfg(not(feature = "sentry"))]
        {
            let _ = dsn;
            return Err(
                "sentry_dsn is set but this wasq was built without the `sentry` feature".into(),
            );
        }
    }
    Ok(reporters)
}

/// Reports failed tasks to Sentry as error events, tagged with the task
/// id, module, task, outcome, queue, cluster and tenant; the task's log
/// and arguments go along as extra data (capped).
#[cfg(feature = "sentry")]
#[derive(Debug)]
pub struct SentryReporter {
    client: std::sync::Arc<sentry::Client>,
}

#[cfg(feature = "sentry")]
impl SentryReporter {
    /// A reporter for `dsn` (`https://KEY@HOST/PROJECT`), naming the
    /// cluster `cluster` as the server.
    pub fn new(dsn: &str, cluster: &str) -> Result<Self, String> {
        let dsn: sentry::types::Dsn = dsn.parse().map_err(|e| {
            format!("sentry_dsn is not a Sentry DSN ({e}): use https://KEY@HOST/PROJECT")
        })?;
        let options = sentry::ClientOptions {
            dsn: Some(dsn),
            release: Some(concat!("wasq@", env!("CARGO_PKG_VERSION")).into()),
            server_name: Some(cluster.to_owned().into()),
            ..Default::default()
        };
        Ok(Self {
            client: std::sync::Arc::new(sentry::Client::from(sentry::apply_defaults(options))),
        })
    }
}

#[cfg(feature = "sentry")]
impl ErrorReporter for SentryReporter {
    fn report(&self, failure: &TaskResult, tenant: Option<&str>) {
        use sentry::protocol::{Event, Level, Value};
        let cap = |text: &str, most: usize| -> String {
            let mut end = text.len().min(most);
            while !text.is_char_boundary(end) {
                end -= 1;
            }
            text[..end].to_owned()
        };
        let detail = failure
            .error
            .clone()
            .or_else(|| failure.stderr.lines().last().map(str::to_owned))
            .unwrap_or_default();
        let mut tags = std::collections::BTreeMap::new();
        for (key, value) in [
            ("task_id", failure.id.as_str()),
            ("module", failure.module_name.as_str()),
            ("task", failure.task.as_str()),
            ("outcome", failure.outcome.as_str()),
            ("queue", failure.queue.as_str()),
            ("cluster", failure.cluster.as_str()),
            ("tenant", tenant.unwrap_or("")),
        ] {
            if !value.is_empty() {
                tags.insert(key.to_owned(), value.to_owned());
            }
        }
        let mut extra = std::collections::BTreeMap::new();
        extra.insert("log".to_owned(), Value::from(cap(&failure.stderr, 8192)));
        extra.insert("input".to_owned(), Value::from(cap(&failure.input, 4096)));
        extra.insert("attempts".to_owned(), Value::from(failure.attempts));
        if let Some(fuel) = failure.fuel {
            extra.insert("fuel".to_owned(), Value::from(fuel));
        }
        extra.insert("wall_us".to_owned(), Value::from(failure.wall_us));
        let event = Event {
            level: Level::Error,
            message: Some(format!(
                "task `{}` of `{}` ended with {}: {detail}",
                failure.task, failure.module_name, failure.outcome
            )),
            fingerprint: vec![
                failure.module_name.clone().into(),
                failure.task.clone().into(),
                failure.outcome.clone().into(),
            ]
            .into(),
            tags,
            extra,
            ..Default::default()
        };
        self.client.capture_event(event, None);
    }

    fn flush(&self) {
        self.client.flush(Some(std::time::Duration::from_secs(2)));
    }
}
