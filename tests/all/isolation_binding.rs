//! Every package is bound to its tenant, black box against `wasq serve`:
//! packages signed with the right secret (the one wasq generated for the
//! embedded setup, read from `.wasq/secret` as someone who can write to
//! the broker would) but claiming a module digest, a queue or a group their
//! tenant does not own are refused and recorded, and nothing of them runs;
//! there is no built-in secret, and a server broker without one is refused
//! in one line.

use std::os::unix::fs::PermissionsExt as _;
use std::time::Duration;

use serde_json::json;
use wasq::package::{PackageCodec, TaskRecord};
use wasq::tenant::tenant_queue;
use wasq_tests::{eventually, wasq_env};

use crate::service::Service;

/// The embedded store and broker of a service's directory.
fn database(service: &Service) -> String {
    format!(
        "sqlite://{}",
        service.path().join(".wasq/wasq.db").display()
    )
}

fn block<T, E: std::fmt::Debug>(f: impl std::future::Future<Output = Result<T, E>>) -> T {
    tokio::task::block_in_place(|| tokio::runtime::Handle::current().block_on(f))
        .expect("the store answers")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn packages_claiming_what_their_tenant_does_not_own_are_refused_and_recorded() {
    let service = Service::start(&["--workers", "2"], &[]);
    let victim = service.tenant("victim", &["--allow-grant", "env"]);
    let mallory = service.tenant("mallory", &[]);
    // The victim's module sees a secret of the victim's in its environment.
    assert_eq!(service.upload(&victim, "granted", "escape").await.0, 201);
    let (status, body) = service
        .put(
            &victim,
            "/v1/modules/granted/grants",
            json!({"env": {"VICTIM_TOKEN": "s3cr3t"}}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(service.upload(&mallory, "tool", "basics").await.0, 201);
    let (_, tool) = service.get(&mallory, "/v1/modules/tool").await;
    let (_, granted) = service.get(&victim, "/v1/modules/granted").await;
    let digest = |m: &serde_json::Value| -> wasq::Digest {
        m["digest"]
            .as_str()
            .and_then(|d| d.strip_prefix("sha256:"))
            .and_then(|d| d.parse().ok())
            .expect("a digest")
    };

    // The secret wasq generated for the embedded broker: private to its owner.
    let secret_file = service.path().join(".wasq/secret");
    let mode = std::fs::metadata(&secret_file)
        .expect("a generated secret")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600, "the secret file is private");
    let secret = std::fs::read_to_string(&secret_file).expect("readable by its owner");
    let codec = PackageCodec::new(secret.trim(), false);
    let broker = block(wasq_brokers::connect(&database(&service)));

    let forge = |module: wasq::Digest, name: &str, tenant: Option<&str>, queue: &str| {
        let mut record = TaskRecord::new(
            module,
            name,
            "env",
            r#"{"args":[],"kwargs":{}}"#.into(),
            queue,
        );
        record.tenant = tenant.map(str::to_owned);
        record
    };
    let victim_queue = tenant_queue("default", "victim");
    let mallory_queue = tenant_queue("default", "mallory");
    // 5. Into another tenant's group.
    let mut grouped = forge(digest(&tool), "tool", Some("mallory"), &mallory_queue);
    grouped.group = Some("victim/reports".into());
    let forged = vec![
        // 1. The victim's module name (and so its grants) over mallory's code.
        (
            victim_queue.clone(),
            forge(digest(&tool), "granted", Some("victim"), &victim_queue),
        ),
        // 2. Mallory's tenant over the victim's code.
        (
            mallory_queue.clone(),
            forge(digest(&granted), "granted", Some("mallory"), &mallory_queue),
        ),
        // 3. The victim's own task, dropped into mallory's queue (mallory's
        //    turn, the victim's grants).
        (
            mallory_queue.clone(),
            forge(digest(&granted), "granted", Some("victim"), &victim_queue),
        ),
        // 4. No tenant at all, in the victim's queue (no quotas, no turn).
        (
            victim_queue.clone(),
            forge(digest(&granted), "granted", None, &victim_queue),
        ),
        (mallory_queue.clone(), grouped),
    ];
    for (queue, record) in &forged {
        let package = codec.encode(record).expect("a package");
        block(broker.enqueue(queue, package));
    }

    // A task the victim enqueues the ordinary way still runs, with its grant.
    let id = service
        .enqueue(&victim, json!({"module": "granted", "task": "env"}))
        .await;
    let result = service.result(&victim, &id).await;
    assert_eq!(
        result["value"],
        json!({"VICTIM_TOKEN": "s3cr3t"}),
        "{result}"
    );

    let store = block(wasq::store::Store::connect(&database(&service)));
    // Verified and refused for what they claim: kept as failed packages,
    // with their task ids, out of the broker.
    let rejected = eventually(Duration::from_secs(30), "five refusals", || {
        let rejected = block(store.dead_letters(20));
        (rejected.len() >= forged.len()).then_some(rejected)
    });
    assert_eq!(rejected.len(), forged.len(), "{rejected:?}");
    for (_, record) in &forged {
        let found = rejected
            .iter()
            .find(|r| r.reason.contains(&record.id) && r.verified);
        assert!(found.is_some(), "{} not recorded: {rejected:?}", record.id);
        assert_eq!(
            found.and_then(|r| r.task_id.as_deref()),
            Some(record.id.as_str())
        );
        assert!(
            block(store.result(&record.id)).is_none(),
            "forged task {} ran",
            record.id
        );
    }
    let reasons: Vec<&str> = rejected.iter().map(|r| r.reason.as_str()).collect();
    assert!(
        reasons
            .iter()
            .any(|r| r.contains("has no module with digest")),
        "{reasons:?}"
    );
    assert!(
        reasons.iter().any(|r| r.contains("mallory's queue")),
        "{reasons:?}"
    );
    assert!(
        reasons.iter().any(|r| r.contains("untenanted package")),
        "{reasons:?}"
    );
    assert!(
        reasons.iter().any(|r| r.contains("namespace")),
        "{reasons:?}"
    );
    // Nothing forged is left waiting either.
    for queue in [&victim_queue, &mallory_queue] {
        assert_eq!(block(broker.queue_size(queue)), 0, "{queue}");
    }
}

#[test]
fn a_server_broker_without_a_secret_is_refused_in_one_line() {
    let dir = tempfile::tempdir().expect("a temp dir");
    for broker in [
        "redis://127.0.0.1:1",
        "postgres://wasq@127.0.0.1:1/wasq",
        "sqs://wasq?region=us-east-1&endpoint=http://127.0.0.1:1",
    ] {
        for command in [&["cluster"][..], &["enqueue", "basics", "noop"]] {
            let run = wasq_env(dir.path(), command, &[("WASQ_BROKER", broker)]);
            assert_eq!(run.code, 2, "{broker} {command:?}: {run:?}");
            let line = run.one_line_error();
            assert!(line.contains("no secret is set"), "{line}");
            assert!(line.contains("WASQ_SECRET"), "{line}");
        }
    }
    // The embedded default needs none: one is generated, once, privately.
    let run = wasq_env(dir.path(), &["queue", "size"], &[]);
    assert_eq!(run.code, 0, "{run:?}");
    let secret = dir.path().join(".wasq/secret");
    let first = std::fs::read_to_string(&secret).expect("a generated secret");
    assert!(first.trim().len() >= 64, "{first}");
    let run = wasq_env(dir.path(), &["queue", "size"], &[]);
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(
        std::fs::read_to_string(&secret).expect("still there"),
        first
    );
}
