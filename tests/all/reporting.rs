//! Error reporters, logs and traces: a failed task reaches a local endpoint
//! standing in for Sentry's ingest URL, with its task id and error (a task
//! that succeeds does not); the debug log names the task id at enqueue,
//! start, end and save; the spans of enqueue, run and save reach a stand-in
//! OpenTelemetry collector, each with the task id.

use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use wasq_tests::{ClusterProcess, dir_with_module, eventually, wasq_in};

/// The requests a stand-in server received: path and body.
type Received = Arc<Mutex<Vec<(String, String)>>>;

/// A stand-in for Sentry: answers every POST with 200 and keeps its path
/// and body.
fn fake_sentry() -> (String, Received) {
    let (port, received) = stand_in_server();
    (format!("http://publickey@127.0.0.1:{port}/42"), received)
}

/// A server on a free port that answers every request with 200 and `{}`
/// and keeps its path and body.
fn stand_in_server() -> (u16, Received) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("a port");
    let port = listener.local_addr().expect("an address").port();
    let received = Arc::new(Mutex::new(Vec::new()));
    let kept = received.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let mut reader = BufReader::new(stream);
            let mut request_line = String::new();
            if reader.read_line(&mut request_line).is_err() {
                continue;
            }
            let mut length = 0usize;
            loop {
                let mut header = String::new();
                if reader.read_line(&mut header).is_err() || header.trim().is_empty() {
                    break;
                }
                if let Some((name, value)) = header.split_once(':')
                    && name.eq_ignore_ascii_case("content-length")
                {
                    length = value.trim().parse().unwrap_or(0);
                }
            }
            let mut body = vec![0u8; length];
            let _ = reader.read_exact(&mut body);
            let path = request_line
                .split_whitespace()
                .nth(1)
                .unwrap_or("")
                .to_owned();
            kept.lock()
                .expect("the log")
                .push((path, String::from_utf8_lossy(&body).into_owned()));
            let mut stream = reader.into_inner();
            let _ = stream
                .write_all(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}");
        }
    });
    (port, received)
}

#[test]
fn a_failed_task_reaches_sentry_with_its_id_and_error() {
    let (dsn, received) = fake_sentry();
    let dir = dir_with_module("basics");
    let _cluster = ClusterProcess::start(
        dir.path(),
        &["--workers", "2"],
        &[("WASQ_SENTRY_DSN", &dsn)],
    );
    let ok = wasq_in(
        dir.path(),
        &[
            "enqueue", "basics", "add", "--args", "[1, 2]", "--wait", "--json",
        ],
    );
    assert_eq!(ok.code, 0, "{ok:?}");
    let ok_id = ok.json()["id"].as_str().expect("an id").to_owned();
    let failed = wasq_in(
        dir.path(),
        &["enqueue", "basics", "fail", "--wait", "--json"],
    );
    assert_eq!(failed.code, 1, "{failed:?}");
    let failed_id = failed.json()["id"].as_str().expect("an id").to_owned();

    let (path, body) = eventually(Duration::from_secs(30), "the report", || {
        received
            .lock()
            .expect("the log")
            .iter()
            .find(|(_, body)| body.contains(&failed_id))
            .cloned()
    });
    assert_eq!(path, "/api/42/envelope/");
    assert!(body.contains("this task always fails"), "{body}");
    assert!(body.contains(r#""outcome":"guest_error""#), "{body}");
    assert!(body.contains(r#""task":"fail""#), "{body}");
    // Only failures are reported.
    std::thread::sleep(Duration::from_millis(500));
    assert!(
        received
            .lock()
            .expect("the log")
            .iter()
            .all(|(_, body)| !body.contains(&ok_id)),
        "a successful task was reported"
    );
}

#[test]
fn a_bad_sentry_dsn_is_a_one_line_error() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let run = wasq_tests::wasq_env(
        dir.path(),
        &["cluster", "--workers", "1"],
        &[("WASQ_SENTRY_DSN", "not a dsn")],
    );
    assert_eq!(run.code, 2, "{run:?}");
    assert!(run.one_line_error().contains("sentry_dsn"), "{run:?}");
}

#[test]
fn logs_from_enqueue_to_result_carry_the_task_id() {
    let dir = dir_with_module("basics");
    let debug = [("WASQ_LOG", "wasq=debug")];
    let _cluster = ClusterProcess::start(dir.path(), &["--workers", "1"], &debug);
    let run = wasq_tests::wasq_env(
        dir.path(),
        &["enqueue", "basics", "add", "--args", "[1, 2]"],
        &debug,
    );
    assert_eq!(run.code, 0, "{run:?}");
    let id = run.stdout.trim().to_owned();
    let needle = format!("task_id={id}");
    assert!(
        run.stderr
            .lines()
            .any(|l| l.contains("enqueued") && l.contains(&needle)),
        "{run:?}"
    );
    let waited = wasq_in(dir.path(), &["result", &id, "--wait"]);
    assert_eq!(waited.code, 0, "{waited:?}");
    // The cluster's log: the run's span and the saved result name the task.
    let log = eventually(
        Duration::from_secs(30),
        "the cluster's log of the task",
        || {
            let log: String = std::fs::read_dir(dir.path())
                .ok()?
                .flatten()
                .filter(|e| e.file_name().to_string_lossy().starts_with("cluster-"))
                .filter_map(|e| std::fs::read_to_string(e.path()).ok())
                .collect();
            log.lines()
                .any(|l| l.contains("result saved") && l.contains(&needle))
                .then_some(log)
        },
    );
    for event in ["started", "ended"] {
        assert!(
            log.lines()
                .any(|l| l.contains(&needle) && l.contains(&format!(": {event}"))),
            "no `{event}` with {needle} in\n{log}"
        );
    }
}

/// The spans in OTLP/JSON export bodies: `(service, span name, task_id)`.
fn exported_spans(bodies: &[(String, String)]) -> Vec<(String, String, String)> {
    let text = |value: &serde_json::Value| value["stringValue"].as_str().unwrap_or("").to_owned();
    let attribute = |attributes: &serde_json::Value, key: &str| {
        attributes
            .as_array()
            .into_iter()
            .flatten()
            .find(|a| a["key"] == key)
            .map(|a| text(&a["value"]))
            .unwrap_or_default()
    };
    let mut spans = Vec::new();
    for (path, body) in bodies {
        assert_eq!(path, "/v1/traces", "OTLP/HTTP posts traces there");
        let export: serde_json::Value = serde_json::from_str(body).expect("an OTLP/JSON body");
        for resource in export["resourceSpans"].as_array().into_iter().flatten() {
            let service = attribute(&resource["resource"]["attributes"], "service.name");
            for scope in resource["scopeSpans"].as_array().into_iter().flatten() {
                for span in scope["spans"].as_array().into_iter().flatten() {
                    spans.push((
                        service.clone(),
                        span["name"].as_str().unwrap_or("").to_owned(),
                        attribute(&span["attributes"], "task_id"),
                    ));
                }
            }
        }
    }
    spans
}

#[test]
fn spans_from_enqueue_to_result_reach_an_opentelemetry_collector() {
    let (port, received) = stand_in_server();
    let endpoint = format!("http://127.0.0.1:{port}");
    let env = [("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint.as_str())];
    let dir = dir_with_module("basics");
    let mut cluster = ClusterProcess::start(dir.path(), &["--workers", "1"], &env);
    let run = wasq_tests::wasq_env(
        dir.path(),
        &[
            "enqueue", "basics", "add", "--args", "[1, 2]", "--wait", "--json",
        ],
        &env,
    );
    assert_eq!(run.code, 0, "{run:?}");
    let id = run.json()["id"].as_str().expect("an id").to_owned();
    // A graceful stop flushes the cluster's spans (the CLI's went at exit).
    assert_eq!(cluster.terminate(), Some(0));
    let spans = eventually(Duration::from_secs(30), "the spans of the task", || {
        let spans = exported_spans(&received.lock().expect("the log"));
        ["enqueue", "task", "result"]
            .iter()
            .all(|name| spans.iter().any(|(_, n, task)| n == name && *task == id))
            .then_some(spans)
    });
    assert!(
        spans.iter().all(|(service, _, _)| service == "wasq"),
        "{spans:?}"
    );
    // Without the variable nothing is exported.
    let before = received.lock().expect("the log").len();
    let quiet = wasq_in(
        dir.path(),
        &["enqueue", "basics", "add", "--args", "[3, 4]"],
    );
    assert_eq!(quiet.code, 0, "{quiet:?}");
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(received.lock().expect("the log").len(), before);
}
