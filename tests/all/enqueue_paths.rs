//! One enqueue, every path: each `wasq enqueue` option given on the store
//! directly and through `wasq enqueue --server` (a `wasq serve` and a
//! tenant key) ends in the same stored record (the deferred row or the
//! broker's package, decoded) and the same behaviour (retries, hooks,
//! cached results, unique keys); what the server cannot honour is refused
//! in one line, never dropped.

use std::collections::HashMap;
use std::time::Duration;

use serde_json::{Value, json};
use wasq::OutcomeKind;
use wasq::package::{PackageCodec, TaskRecord};
use wasq::tenant::tenant_queue;
use wasq::workflow::{RetryPolicy, hook_id};
use wasq_tests::{Run, eventually, wasm};

use crate::service::Service;

/// The tenant the server path enqueues for.
const TENANT: &str = "alpha";

/// A `wasq serve` and its tenant's key, `basics` uploaded on both paths:
/// as an admin module (the direct path) and as the tenant's.
struct Paths {
    service: Service,
    key: String,
}

impl Paths {
    async fn start(args: &[&str], env: &[(&str, &str)]) -> Self {
        let service = Service::start(args, env);
        let key = service.tenant(TENANT, &[]);
        let (status, body) = service.upload(&key, "basics", "basics").await;
        assert_eq!(status, 201, "{body}");
        let basics = wasm("basics");
        let path = basics.to_str().expect("a UTF-8 path");
        let run = service.wasq(&["module", "upload", path, "--name", "basics"]);
        assert_eq!(run.code, 0, "{run:?}");
        Self { service, key }
    }

    /// `wasq enqueue ARGS --json` on the store directly.
    fn direct(&self, args: &[&str]) -> Run {
        let mut all = vec!["enqueue"];
        all.extend_from_slice(args);
        all.push("--json");
        self.service.wasq(&all)
    }

    /// `wasq --server URL --key KEY enqueue ARGS --json`.
    fn remote(&self, args: &[&str]) -> Run {
        let mut all = vec![
            "--server",
            self.service.url.as_str(),
            "--key",
            self.key.as_str(),
            "enqueue",
        ];
        all.extend_from_slice(args);
        all.push("--json");
        self.service.wasq(&all)
    }

    /// Enqueues `args` on both paths; the two task ids (direct, remote).
    fn both(&self, args: &[&str]) -> (String, String) {
        let id = |run: Run| {
            assert_eq!(run.code, 0, "{args:?}: {run:?}");
            run.json()["id"].as_str().expect("an id").to_owned()
        };
        (id(self.direct(args)), id(self.remote(args)))
    }

    /// `wasq result ID --wait --json` on the store, and through the server
    /// (whose answer wraps the result as `{"id", "status", "result"}`).
    fn results(&self, direct: &str, remote: &str) -> (Value, Value) {
        let run = self
            .service
            .wasq(&["result", direct, "--wait", "--timeout", "60s", "--json"]);
        assert!(!run.stdout.is_empty(), "no result for {direct}: {run:?}");
        let direct = run.json();
        let run = self.service.wasq(&[
            "--server",
            self.service.url.as_str(),
            "--key",
            self.key.as_str(),
            "result",
            remote,
            "--wait",
            "--timeout",
            "60s",
            "--json",
        ]);
        assert!(!run.stdout.is_empty(), "no result for {remote}: {run:?}");
        (direct, run.json()["result"].clone())
    }

    fn database(&self) -> String {
        format!(
            "sqlite://{}",
            self.service.path().join(".wasq/wasq.db").display()
        )
    }

    /// Every task waiting, decoded by id with whether it is deferred: the
    /// broker's packages are taken (leased for an hour) and the deferred
    /// rows claimed, so call it once, after enqueueing.
    async fn stored(&self, queues: &[String]) -> HashMap<String, (bool, TaskRecord)> {
        let secret = std::fs::read_to_string(self.service.path().join(".wasq/secret"))
            .expect("the generated secret");
        let codec = PackageCodec::new(secret.trim(), false);
        let broker = wasq_brokers::connect(&self.database())
            .await
            .expect("the broker");
        let store = wasq::store::Store::connect(&self.database())
            .await
            .expect("the store");
        let mut found = HashMap::new();
        for queue in queues {
            let taken = broker
                .dequeue(queue, 1000, Duration::from_secs(3600))
                .await
                .expect("the broker answers");
            for delivery in taken {
                let record = codec.decode(&delivery.payload).expect("a package");
                found.insert(record.id.clone(), (false, record));
            }
        }
        // Due by 2100: every deferred row.
        let rows = store
            .claim_due(4_102_444_800_000, 1000, 1000)
            .await
            .expect("the store answers");
        for row in rows {
            let record = codec.decode(&row.package).expect("a package");
            found.insert(row.task_id.clone(), (true, record));
        }
        found
    }
}

/// The record of `id`, and whether it is deferred.
fn record<'a>(stored: &'a HashMap<String, (bool, TaskRecord)>, id: &str) -> &'a (bool, TaskRecord) {
    stored
        .get(id)
        .unwrap_or_else(|| panic!("task {id} is neither queued nor deferred: {stored:?}"))
}

#[tokio::test(flavor = "multi_thread")]
async fn every_enqueue_option_reaches_the_record_with_and_without_server() {
    let redis = wasq_tests::server_url("WASQ_TEST_REDIS_URL");
    // No workers: what is enqueued stays where it was put.
    let paths = Paths::start(&[], &[("WASQ_CACHE", &redis)]).await;
    let tenant = |queue: &str| tenant_queue(queue, TENANT);

    let delay = paths.both(&["basics", "add", "--args", "[1, 2]", "--in", "1h"]);
    let at = paths.both(&[
        "basics",
        "add",
        "--at",
        "2099-06-01 09:00",
        "--tz",
        "Europe/Amsterdam",
    ]);
    let priority = paths.both(&["basics", "add", "--priority", "7"]);
    let retry = paths.both(&[
        "basics",
        "flaky",
        "--max-attempts",
        "4",
        "--backoff",
        "2s",
        "--backoff-factor",
        "3",
        "--backoff-max",
        "1m",
        "--jitter",
        "0.5",
        "--retry-on",
        "trap,timeout",
    ]);
    let hook = paths.both(&["basics", "fib", "--args", "[5]", "--hook", "basics:record"]);
    let cached = paths.both(&["basics", "add", "--args", "[1, 1]", "--cached", "10m"]);
    let placed = paths.both(&[
        "basics",
        "add",
        "--queue",
        "q",
        "--group",
        "g",
        "--fuel",
        "1000000",
        "--memory",
        "16MiB",
        "--task-timeout",
        "5s",
    ]);

    // A unique key is held on both paths, each path in its own name space
    // (the tenant's key does not collide with the admin's equal one).
    let unique = paths.both(&["basics", "add", "--unique-key", "sync:42"]);
    for (run, holder) in [
        (
            paths.direct(&["basics", "add", "--unique-key", "sync:42"]),
            &unique.0,
        ),
        (
            paths.remote(&["basics", "add", "--unique-key", "sync:42"]),
            &unique.1,
        ),
    ] {
        assert_eq!(run.code, 1, "the second task was not refused: {run:?}");
        let line = run.one_line_error();
        assert!(
            line.contains("skipped")
                && line.contains("`sync:42`")
                && line.contains(holder.as_str()),
            "{line}"
        );
    }
    // --unique-for lets the key go while the first task still waits.
    let brief = paths.both(&[
        "basics",
        "add",
        "--unique-key",
        "brief",
        "--unique-for",
        "1s",
    ]);
    for (name, enqueue) in [
        (
            "direct",
            Box::new(|a: &[&str]| paths.direct(a)) as Box<dyn Fn(&[&str]) -> Run>,
        ),
        ("remote", Box::new(|a: &[&str]| paths.remote(a))),
    ] {
        eventually(
            Duration::from_secs(30),
            &format!("the {name} path to let the key `brief` go"),
            || (enqueue(&["basics", "add", "--unique-key", "brief"]).code == 0).then_some(()),
        );
    }

    let stored = paths
        .stored(&["default".into(), tenant("default"), "q".into(), tenant("q")])
        .await;
    let pairs =
        |(direct, remote): &(String, String)| (record(&stored, direct), record(&stored, remote));

    let ((d_deferred, d), (r_deferred, r)) = pairs(&delay);
    assert!(*d_deferred && *r_deferred, "--in defers on both paths");
    for record in [d, r] {
        let eta = record.eta_ms.expect("an ETA") as i64;
        let ahead = eta - record.enqueued_at_ms as i64;
        assert!(
            (3_540_000..=3_600_000).contains(&ahead),
            "an hour ahead: {record:?}"
        );
    }

    let ((d_deferred, d), (r_deferred, r)) = pairs(&at);
    assert!(*d_deferred && *r_deferred, "--at defers on both paths");
    // 09:00 in Amsterdam's summer time is 07:00 UTC.
    assert_eq!(d.eta_ms, Some(4_083_980_400_000));
    assert_eq!(r.eta_ms, d.eta_ms);

    let ((_, d), (_, r)) = pairs(&priority);
    assert_eq!((d.priority, r.priority), (7, 7));

    let ((_, d), (_, r)) = pairs(&retry);
    let policy = RetryPolicy {
        max_attempts: 4,
        backoff_ms: 2000,
        factor: 3.0,
        backoff_max_ms: 60_000,
        jitter: 0.5,
        retry_on: vec![OutcomeKind::Trap, OutcomeKind::Timeout],
    };
    assert_eq!(d.retry.as_ref(), Some(&policy));
    assert_eq!(r.retry.as_ref(), Some(&policy));

    let ((_, d), (_, r)) = pairs(&hook);
    let target = d.hook.as_ref().expect("a hook on the direct path");
    assert_eq!(
        (target.module_name.as_str(), target.task.as_str()),
        ("basics", "record")
    );
    assert_eq!(r.hook.as_ref(), Some(target), "the same module and task");

    let ((_, d), (_, r)) = pairs(&cached);
    assert_eq!((d.cached_secs, r.cached_secs), (Some(600), Some(600)));

    let ((_, d), (_, r)) = pairs(&placed);
    assert_eq!(d.queue, "q");
    assert_eq!(r.queue, tenant("q"));
    assert_eq!(d.group.as_deref(), Some("g"));
    assert_eq!(r.group.as_deref(), Some("alpha/g"));
    assert_eq!(d.limits.fuel, Some(1_000_000));
    assert_eq!(d.limits.memory, Some(16 << 20));
    assert_eq!(d.limits.timeout_ms, Some(5000));
    assert_eq!(r.limits, d.limits);

    let ((_, d), (_, r)) = pairs(&unique);
    assert_eq!(d.unique_key.as_deref(), Some("sync:42"));
    assert_eq!(r.unique_key.as_deref(), Some("alpha/sync:42"));
    let ((_, d), (_, r)) = pairs(&brief);
    assert_eq!(d.unique_key.as_deref(), Some("brief"));
    assert_eq!(r.unique_key.as_deref(), Some("alpha/brief"));

    // Nothing else differs between the paths but what makes a task the
    // tenant's.
    for pair in [&priority, &retry, &hook, &cached] {
        let ((_, d), (_, r)) = pairs(pair);
        assert_eq!(r.tenant.as_deref(), Some(TENANT));
        let same = TaskRecord {
            id: d.id.clone(),
            enqueued_at_ms: d.enqueued_at_ms,
            tenant: d.tenant.clone(),
            queue: d.queue.clone(),
            ..r.clone()
        };
        assert_eq!(&same, d, "the records differ");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn retries_hooks_and_cached_results_behave_alike_with_and_without_server() {
    let redis = wasq_tests::server_url("WASQ_TEST_REDIS_URL");
    let paths = Paths::start(&["--workers", "2"], &[("WASQ_CACHE", &redis)]).await;

    // Retries: the third attempt succeeds on both paths.
    let (direct, remote) = paths.both(&[
        "basics",
        "flaky",
        "--kwargs",
        r#"{"succeed_on": 3}"#,
        "--max-attempts",
        "3",
        "--backoff",
        "100ms",
        "--jitter",
        "0",
    ]);
    let (d, r) = paths.results(&direct, &remote);
    assert_eq!(
        (&d["outcome"], &d["result"], &d["attempts"]),
        (&json!("success"), &json!(3), &json!(3)),
        "{d}"
    );
    assert_eq!(
        (&r["outcome"], &r["value"], &r["attempts"]),
        (&json!("success"), &json!(3), &json!(3)),
        "{r}"
    );

    // Hooks: each path's hook ran with its task's record, and the tenant
    // reads its hook's result.
    let (direct, remote) =
        paths.both(&["basics", "fib", "--args", "[10]", "--hook", "basics:record"]);
    let (d, r) = paths.results(&hook_id(&direct), &hook_id(&remote));
    assert_eq!(d["outcome"], "success", "{d}");
    assert_eq!(d["result"]["seen"], direct.as_str(), "{d}");
    assert_eq!(d["result"]["result"], 55, "{d}");
    assert_eq!(r["outcome"], "success", "{r}");
    assert_eq!(r["value"]["seen"], remote.as_str(), "{r}");
    assert_eq!(r["value"]["result"], 55, "{r}");

    // Cached: both results come from the result cache, neither from the
    // database.
    let (direct, remote) = paths.both(&["basics", "add", "--args", "[20, 22]", "--cached", "10m"]);
    let (d, r) = paths.results(&direct, &remote);
    assert_eq!(d["result"], 42, "{d}");
    assert_eq!(r["value"], 42, "{r}");
    let database = wasq::store::Store::connect(&paths.database())
        .await
        .expect("the store");
    for id in [&direct, &remote] {
        let kept = database.result(id).await.expect("the store answers");
        assert!(kept.is_none(), "{id}'s result is in the database: {kept:?}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn options_the_server_cannot_honour_are_refused_in_one_line() {
    // No result cache here.
    let paths = Paths::start(&[], &[]).await;
    let service = &paths.service;

    let run = paths.remote(&["basics", "add", "--cached", "1m"]);
    assert_eq!(run.code, 2, "{run:?}");
    assert!(run.one_line_error().contains("result cache"), "{run:?}");
    let run = paths.direct(&["basics", "add", "--cached", "1m"]);
    assert_eq!(run.code, 2, "{run:?}");
    assert!(run.one_line_error().contains("WASQ_CACHE"), "{run:?}");

    // A hook module the tenant does not have.
    let run = paths.remote(&["basics", "add", "--hook", "elsewhere:record"]);
    assert_eq!(run.code, 2, "{run:?}");
    assert!(
        run.one_line_error().contains("hook: no module `elsewhere`"),
        "{run:?}"
    );

    // A module file: only uploaded modules run on a server.
    let file = wasm("basics");
    let run = paths.remote(&[file.to_str().expect("a UTF-8 path"), "add"]);
    assert_eq!(run.code, 2, "{run:?}");
    assert!(run.one_line_error().contains("module upload"), "{run:?}");

    // Straight to the API: unknown fields, here and in nested objects, and
    // fields that do not go together.
    let key = &paths.key;
    for (body, named) in [
        (
            json!({"module": "basics", "task": "add", "colour": "red"}),
            "colour",
        ),
        (
            json!({"module": "basics", "task": "add", "retry": {"max_attempts": 2, "tries": 3}}),
            "tries",
        ),
        (
            json!({"module": "basics", "task": "add", "hook": {"module": "basics", "task": "record", "when": "now"}}),
            "when",
        ),
        (
            json!({"module": "basics", "task": "add", "retry": {"max_attempts": 2, "retry_on": ["sometimes"]}}),
            "retry.retry_on",
        ),
        (
            json!({"module": "basics", "task": "add", "retry": {"max_attempts": 0}}),
            "max_attempts",
        ),
        (
            json!({"module": "basics", "task": "add", "eta_ms": 1, "delay_secs": 1}),
            "eta_ms and delay_secs",
        ),
        (
            json!({"module": "basics", "task": "add", "unique_for_ms": 1000}),
            "unique_for_ms",
        ),
        (
            json!({"module": "basics", "task": "add", "cached_secs": 60}),
            "result cache",
        ),
    ] {
        let (status, answer) = service.post(key, "/v1/tasks", body.clone()).await;
        assert_eq!(status, 400, "{body}: {answer}");
        let message = answer["error"]["message"].as_str().unwrap_or_default();
        assert!(message.contains(named), "{body}: {message}");
        assert!(!message.contains('\n'), "{message}");
    }
    let (status, answer) = service
        .post(
            key,
            "/v1/tasks/batch",
            json!({"tasks": [{"module": "basics", "task": "add", "unique_key": "k"}]}),
        )
        .await;
    assert_eq!(status, 400, "{answer}");
    assert!(
        answer["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("tasks[0].unique_key")),
        "{answer}"
    );
    // Nothing of it was queued.
    let run = service.wasq(&[
        "queue",
        "size",
        "--queue",
        &tenant_queue("default", TENANT),
        "--json",
    ]);
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(run.json()["queued"], 0, "{run:?}");
}
