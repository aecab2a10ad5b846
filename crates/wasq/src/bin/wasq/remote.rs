//! The command line as a client of `wasq serve`: with `--server URL --key
//! KEY` (or WASQ_SERVER and WASQ_KEY), `enqueue`, `result`, `cancel` and
//! `module` go through the HTTP API instead of the broker and store.

use std::process::ExitCode;
use std::time::Duration;

use serde_json::Value;

use crate::cli_error::CliError;

/// A connection to a wasq server.
#[derive(Debug, Clone)]
pub(crate) struct Remote {
    base: String,
    key: String,
    http: reqwest::Client,
}

impl Remote {
    pub(crate) fn new(server: &str, key: Option<&str>) -> Result<Self, CliError> {
        let key = key.filter(|k| !k.is_empty()).ok_or_else(|| {
            CliError::usage(anyhow::anyhow!(
                "--server needs an API key: pass --key KEY or set WASQ_KEY (an admin makes one with `wasq key create --tenant NAME`)"
            ))
        })?;
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .build()
            .map_err(CliError::other)?;
        Ok(Self {
            base: server.trim_end_matches('/').to_owned(),
            key: key.to_owned(),
            http,
        })
    }

    /// Sends a request and returns the JSON body of a success; an error
    /// response becomes its one-line message.
    async fn send(&self, request: reqwest::RequestBuilder) -> Result<Value, CliError> {
        let (status, json) = self.exchange(request).await?;
        if status.is_success() {
            return Ok(json);
        }
        Err(refusal(status, &json))
    }

    /// Sends a request: the status and JSON body of the answer.
    async fn exchange(
        &self,
        request: reqwest::RequestBuilder,
    ) -> Result<(reqwest::StatusCode, Value), CliError> {
        let response = request.bearer_auth(&self.key).send().await.map_err(|e| {
            CliError::other(anyhow::anyhow!(
                "cannot reach the wasq server at {}: {e}; is `wasq serve` running there?",
                self.base
            ))
        })?;
        let status = response.status();
        let body = response.bytes().await.map_err(CliError::other)?;
        let json: Value = if body.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&body)
                .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&body).into_owned()))
        };
        Ok((status, json))
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Queues a task; its id. A held unique key exits 1 with the server's
    /// message, as `wasq enqueue` without `--server` does.
    pub(crate) async fn enqueue(&self, body: &Value) -> Result<String, CliError> {
        let (status, answer) = self
            .exchange(self.http.post(self.url("/v1/tasks")).json(body))
            .await?;
        if status == reqwest::StatusCode::CONFLICT
            && let Some(message) = answer["error"]["message"].as_str()
        {
            return Err(CliError::other(anyhow::anyhow!("{message}")));
        }
        if !status.is_success() {
            return Err(refusal(status, &answer));
        }
        answer["id"].as_str().map(str::to_owned).ok_or_else(|| {
            CliError::other(anyhow::anyhow!("the server answered no task id: {answer}"))
        })
    }

    /// The task (`{"id","status","result"}`), waiting up to `wait`.
    pub(crate) async fn task(&self, id: &str, wait: Duration) -> Result<Value, CliError> {
        let deadline = std::time::Instant::now() + wait;
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            let secs = left.as_secs().min(60);
            let url = self.url(&format!("/v1/tasks/{id}?wait={secs}"));
            let task = self.send(self.http.get(url)).await?;
            if task["status"] == "finished" || left.as_secs() <= 60 {
                return Ok(task);
            }
        }
    }

    pub(crate) async fn cancel(&self, id: &str) -> Result<Value, CliError> {
        self.send(self.http.delete(self.url(&format!("/v1/tasks/{id}"))))
            .await
    }

    pub(crate) async fn upload(&self, name: &str, bytes: Vec<u8>) -> Result<Value, CliError> {
        self.send(
            self.http
                .put(self.url(&format!("/v1/modules/{name}")))
                .header("content-type", "application/wasm")
                .body(bytes),
        )
        .await
    }

    pub(crate) async fn module(&self, name: &str) -> Result<Value, CliError> {
        self.send(self.http.get(self.url(&format!("/v1/modules/{name}"))))
            .await
    }

    pub(crate) async fn modules(&self) -> Result<Value, CliError> {
        self.send(self.http.get(self.url("/v1/modules"))).await
    }

    pub(crate) async fn remove_module(&self, name: &str) -> Result<Value, CliError> {
        self.send(self.http.delete(self.url(&format!("/v1/modules/{name}"))))
            .await
    }
}

/// The one-line error of an error answer: a usage error (exit 2) for what
/// the caller can fix, else exit 1.
fn refusal(status: reqwest::StatusCode, json: &Value) -> CliError {
    let message = json["error"]["message"]
        .as_str()
        .map_or_else(|| json.to_string(), str::to_owned);
    let message = match status.as_u16() {
        401 => format!("the server refused the key: {message}"),
        _ => format!("the server answered {status}: {message}"),
    };
    if status.is_client_error() && status.as_u16() != 429 {
        CliError::usage(anyhow::anyhow!(message))
    } else {
        CliError::other(anyhow::anyhow!(message))
    }
}

/// Prints a task's result as `wasq result` does, or the one line (with
/// `json`, the server's JSON, whose `state` says it) of a task without
/// one: queued, running, pruned; its exit code (1 without a result).
pub(crate) fn print_task(task: &Value, json: bool) -> Result<ExitCode, CliError> {
    let id = task["id"].as_str().unwrap_or_default();
    let result = &task["result"];
    if result.is_null() {
        if json {
            println!("{task}");
            return Ok(ExitCode::from(1));
        }
        let state = remote_state(task);
        return Err(CliError::other(anyhow::anyhow!(
            crate::task_state::state_line(id, &state, None).unwrap_or_default()
        )));
    }
    let outcome = result["outcome"].as_str().unwrap_or("unknown");
    let code = wasq::OutcomeKind::ALL
        .into_iter()
        .find(|k| k.as_str() == outcome)
        .map_or(1, wasq::OutcomeKind::exit_code);
    if json {
        println!("{task}");
    } else if result["success"] == true {
        match &result["value"] {
            Value::String(text) => println!("{text}"),
            value => println!("{value}"),
        }
    } else {
        let log = result["log"].as_str().unwrap_or_default().trim_end();
        let detail = result["error"]
            .as_str()
            .map(|e| format!(": {e}"))
            .unwrap_or_default();
        if !log.is_empty() {
            eprintln!("{log}");
        }
        let task_name = result["task"].as_str().unwrap_or_default();
        eprintln!("error: task `{task_name}` ended with {outcome}{detail}");
    }
    Ok(ExitCode::from(code))
}

/// The state of a task without a result, as the server's JSON tells it.
fn remote_state(task: &Value) -> wasq::store::TaskState {
    use wasq::store::{TaskState, Tombstone};
    match task["state"].as_str() {
        Some("pruned") => TaskState::Pruned(Tombstone {
            id: task["id"].as_str().unwrap_or_default().to_owned(),
            outcome: task["pruned"]["outcome"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
            stopped_at_ms: task["pruned"]["stopped_at_ms"].as_i64().unwrap_or_default(),
            pruned_at_ms: task["pruned"]["pruned_at_ms"].as_i64().unwrap_or_default(),
        }),
        Some("running") => TaskState::Running {
            cluster: String::new(),
            started_at_ms: task["started_at_ms"].as_i64().unwrap_or_default(),
        },
        Some("queued") => TaskState::Queued {
            due_at_ms: task["due_at_ms"].as_i64(),
        },
        _ => TaskState::Unknown,
    }
}
