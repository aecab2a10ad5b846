//! Store tests, each run against a temporary SQLite file and against a
//! fresh database on the PostgreSQL server `cargo xtask test` starts
//! (`WASQ_TEST_POSTGRES_URL`).

use std::any::Any;

use std::time::Duration;

use wasq_core::Digest;

use super::*;
use crate::backend::Backend;

/// `store_tests!(test, …)`: each test as `sqlite::test` and `postgres::test`.
macro_rules! store_tests {
    ($($test:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test]
                async fn $test() {
                    let (store, _guard) = super::sqlite_store().await;
                    super::$test(store).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test]
                async fn $test() {
                    let (store, _guard) = super::postgres_store().await;
                    super::$test(store).await;
                }
            )*
        }
    };
}

store_tests!(
    modules_by_name_and_digest,
    first_result_wins,
    save_limit_keeps_recent_successes_and_all_failures,
    a_batch_with_a_task_twice_saves_its_first,
    clusters_and_rejections,
    migrations_run_once,
    tenants_keys_modules_usage_and_audit,
    browsing_results_waiting_tasks_and_outcomes,
    schedules_pause_and_replace,
    backlog_takes_atomically_and_releases_once,
    runs_are_counted_per_attempt_and_forgotten_with_the_result,
);

async fn sqlite_store() -> (Store, Box<dyn Any>) {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("sub/store.db").display());
    (Store::connect(&url).await.unwrap(), Box::new(dir))
}

/// A store in a new database of its own on the test server.
async fn postgres_store() -> (Store, Box<dyn Any>) {
    let url = postgres_database().await;
    (Store::connect(&url).await.unwrap(), Box::new(()))
}

/// The URL of a new, empty database on the test server.
async fn postgres_database() -> String {
    let base = std::env::var("WASQ_TEST_POSTGRES_URL").unwrap_or_else(|_| {
        panic!("WASQ_TEST_POSTGRES_URL is not set: run the tests with `cargo xtask test`, which starts PostgreSQL")
    });
    let admin = sqlx::PgPool::connect(&base).await.unwrap();
    let name = format!("wasq_store_{}", wasq_core::package::new_task_id());
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&admin)
        .await
        .unwrap();
    admin.close().await;
    let (server, _db) = base.rsplit_once('/').unwrap();
    format!("{server}/{name}")
}

fn result(id: &str, success: bool, stopped_at_ms: i64) -> TaskResult {
    TaskResult {
        id: id.into(),
        module: Digest::of(b"m"),
        module_name: "m".into(),
        task: "t".into(),
        input: "{}".into(),
        queue: "default".into(),
        group: None,
        outcome: if success { "success" } else { "timeout" }.into(),
        success,
        result: success.then(|| b"42".to_vec()),
        stderr: String::new(),
        error: None,
        fuel: Some(1),
        cpu_us: 1,
        wall_us: 2,
        memory_peak: 3,
        attempts: 1,
        enqueued_at_ms: 0,
        started_at_ms: 0,
        stopped_at_ms,
        cluster: "c".into(),
        cached_secs: None,
        attempt_log: Vec::new(),
        record: None,
    }
}

async fn modules_by_name_and_digest(store: Store) {
    let info = store.put_module(b"bytes-a", Some("a")).await.unwrap();
    store.put_module(b"bytes-a", Some("alias")).await.unwrap();
    let (digest, name) = store.resolve_module("a").await.unwrap().unwrap();
    assert_eq!((digest, name.as_str()), (info.digest, "a"));
    let prefix = &info.digest.to_string()[..12];
    assert_eq!(
        store.resolve_module(prefix).await.unwrap().unwrap().0,
        info.digest
    );
    assert!(store.resolve_module("missing").await.unwrap().is_none());
    assert_eq!(
        store.module_bytes(&info.digest).await.unwrap().unwrap(),
        b"bytes-a"
    );
    let list = store.list_modules().await.unwrap();
    assert_eq!(list.len(), 1);
    assert_eq!(list[0].names, ["a", "alias"]);
    assert!(store.remove_module("a").await.unwrap());
    assert!(
        store.module_bytes(&info.digest).await.unwrap().is_some(),
        "alias still names it"
    );
    assert!(store.remove_module("alias").await.unwrap());
    assert!(store.module_bytes(&info.digest).await.unwrap().is_none());
    assert!(!store.remove_module("alias").await.unwrap());
}

async fn first_result_wins(store: Store) {
    let first = result("t1", true, 10);
    let mut late = result("t1", false, 20);
    late.cluster = "other".into();
    assert_eq!(
        store
            .save_results(std::slice::from_ref(&first), 0)
            .await
            .unwrap(),
        [true]
    );
    assert_eq!(store.save_results(&[late], 0).await.unwrap(), [false]);
    assert_eq!(store.result("t1").await.unwrap().unwrap(), first);
    assert_eq!(store.result("t1").await.unwrap().unwrap().result_json(), 42);
}

async fn save_limit_keeps_recent_successes_and_all_failures(store: Store) {
    let batch: Vec<_> = (0..10)
        .map(|i| result(&format!("s{i}"), true, i))
        .chain((0..3).map(|i| result(&format!("f{i}"), false, i)))
        .collect();
    store.save_results(&batch, 4).await.unwrap();
    let counts = store.counts().await.unwrap();
    assert_eq!(counts.successes(), 4);
    assert_eq!(counts.failures(), 3);
    assert!(store.result("s9").await.unwrap().is_some());
    assert!(store.result("s0").await.unwrap().is_none());
}

async fn a_batch_with_a_task_twice_saves_its_first(store: Store) {
    let first = result("dup", true, 1);
    let mut second = result("dup", false, 2);
    second.cluster = "other".into();
    let other = result("other", true, 3);
    assert_eq!(
        store
            .save_results(&[first.clone(), second, other], 0)
            .await
            .unwrap(),
        [true, false, true]
    );
    assert_eq!(store.result("dup").await.unwrap().unwrap(), first);
    // save_limit -1 keeps no successes but still reports them handled.
    assert_eq!(
        store
            .save_results(&[result("gone", true, 4)], -1)
            .await
            .unwrap(),
        [true]
    );
    assert!(store.result("gone").await.unwrap().is_none());
}

async fn migrations_run_once(store: Store) {
    let versions: Vec<i64> = with_pool!(store, pool => {
        sqlx::query_scalar("SELECT version FROM wasq_store_migrations ORDER BY version")
            .fetch_all(pool)
            .await
            .unwrap()
    });
    let migrations = match &store.backend {
        Backend::Sqlite(_) => schema::SQLITE,
        Backend::Postgres(_) => schema::POSTGRES,
    };
    let want: Vec<i64> = migrations.iter().map(|(v, _)| *v).collect();
    assert_eq!(versions, want);
    assert_eq!(
        schema::SQLITE.len(),
        schema::POSTGRES.len(),
        "one list per database, same versions"
    );
}

async fn clusters_and_rejections(store: Store) {
    let mut status = ClusterStatus {
        id: "c1".into(),
        name: "wasq".into(),
        label: "l".into(),
        host: "h".into(),
        pid: 1,
        workers: 2,
        started_at_ms: now_ms(),
        heartbeat_at_ms: now_ms(),
        in_flight: 0,
        done: 0,
        status: "running".into(),
        running: vec![RunningTask {
            id: "t".into(),
            module: "m".into(),
            task: "spin".into(),
            tenant: None,
            started_at_ms: 1,
            fuel_limit: 10,
        }],
    };
    store.heartbeat(&status).await.unwrap();
    status.done = 5;
    store.heartbeat(&status).await.unwrap();
    let clusters = store.clusters(Duration::from_secs(10)).await.unwrap();
    assert_eq!(clusters, [status]);
    store.remove_cluster("c1").await.unwrap();
    assert!(
        store
            .clusters(Duration::from_secs(10))
            .await
            .unwrap()
            .is_empty()
    );

    // A refused package: recorded per digest, buried with its bytes.
    let refusal = Refusal {
        digest: "ab".repeat(32),
        queue: "q".into(),
        broker_id: "7:1".into(),
        task_id: Some("t1".into()),
        verified: false,
        reason: "bad signature".into(),
        cluster: "c1".into(),
        size: 3,
    };
    let first = store.record_refusal(&refusal).await.unwrap();
    assert_eq!(
        (first.refusals, first.refusers.as_slice()),
        (1, ["c1".to_owned()].as_slice())
    );
    let again = store
        .record_refusal(&Refusal {
            cluster: "c2".into(),
            ..refusal.clone()
        })
        .await
        .unwrap();
    assert_eq!(again.refusals, 2);
    assert_eq!(again.refusers, ["c1", "c2"]);
    assert!(
        store.dead_letters(10).await.unwrap().is_empty(),
        "not buried yet"
    );
    assert_eq!(store.counts().await.unwrap().rejected, 0);
    store.bury(&refusal.digest, b"pkg").await.unwrap();
    let dead = store.dead_letters(10).await.unwrap();
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].task_id.as_deref(), Some("t1"));
    assert!(dead[0].dead_at_ms.is_some());
    let (found, bytes) = store.dead_letter("abababab").await.unwrap().unwrap();
    assert_eq!(
        (found.digest.as_str(), bytes.as_slice()),
        (refusal.digest.as_str(), &b"pkg"[..])
    );
    assert_eq!(store.counts().await.unwrap().rejected, 1);
    assert!(store.remove_dead_letter(&refusal.digest).await.unwrap());
    assert!(store.dead_letter(&refusal.digest).await.unwrap().is_none());
}

#[tokio::test]
async fn bad_urls_are_named() {
    assert!(matches!(
        Store::connect("mysql://x").await,
        Err(StoreError::BadUrl(_))
    ));
    let err = Store::connect("postgres://wasq:hunter2@127.0.0.1:1/wasq")
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Unreachable { .. }), "{err}");
    assert!(!err.to_string().contains("hunter2"), "{err}");
    let err = Store::connect("sqlite:///proc/no/such/dir/x.db")
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Unreachable { .. }), "{err}");
}

#[tokio::test]
async fn two_connections_to_one_postgres_database_migrate_once() {
    let url = postgres_database().await;
    let (a, b) = tokio::join!(Store::connect(&url), Store::connect(&url));
    let (a, b) = (a.unwrap(), b.unwrap());
    a.put_module(b"shared", Some("shared")).await.unwrap();
    assert!(b.resolve_module("shared").await.unwrap().is_some());
}

async fn tenants_keys_modules_usage_and_audit(store: Store) {
    use wasq_core::tenant::{Grants, Quotas, Tenant};
    let mut quotas = Quotas::default();
    quotas.set("max_queued", 7).unwrap();
    quotas.allow_grants = vec!["scratch".into(), "env".into()];
    let tenant = Tenant {
        name: "acme".into(),
        weight: 2,
        quotas,
        created_at_ms: 1,
    };
    store.create_tenant(&tenant).await.unwrap();
    assert!(matches!(
        store.create_tenant(&tenant).await,
        Err(StoreError::Duplicate(_))
    ));
    assert_eq!(store.tenant("acme").await.unwrap(), Some(tenant.clone()));
    assert_eq!(store.tenants().await.unwrap().len(), 1);

    let key = store
        .create_key("0123456789ab", Some("acme"), "h", "ci")
        .await
        .unwrap();
    let admin = store
        .create_key("ba9876543210", None, "h2", "")
        .await
        .unwrap();
    assert_eq!(store.key("0123456789ab").await.unwrap(), Some(key));
    assert_eq!(store.keys(Some("acme")).await.unwrap().len(), 1);
    assert_eq!(store.keys(None).await.unwrap().len(), 2);
    assert!(store.revoke_key(&admin.id).await.unwrap());
    assert!(!store.revoke_key(&admin.id).await.unwrap(), "revoked twice");

    let module = store
        .put_tenant_module("acme", "m", b"\0asm\x01\0\0\0", None)
        .await
        .unwrap();
    assert_eq!(module.grants, Grants::default());
    let grants = Grants {
        scratch: true,
        ..Grants::default()
    };
    assert!(store.set_module_grants("acme", "m", &grants).await.unwrap());
    // A new upload keeps the grants; another tenant sees nothing.
    store
        .put_tenant_module("acme", "m", b"\0asm\x01\0\0\0", None)
        .await
        .unwrap();
    let found = store.tenant_module("acme", "m").await.unwrap().unwrap();
    assert!(found.grants.scratch);
    // Ownership of the digest: the uploader's, nobody else's.
    assert!(
        store
            .tenant_owns_digest("acme", &found.digest)
            .await
            .unwrap()
    );
    assert!(
        !store
            .tenant_owns_digest("other", &found.digest)
            .await
            .unwrap()
    );
    let by_digest = format!("sha256:{}", found.digest);
    assert!(
        store
            .tenant_module("acme", &by_digest)
            .await
            .unwrap()
            .is_some()
    );
    assert!(store.tenant_module("other", "m").await.unwrap().is_none());

    // Taking an allowance away takes that grant from the tenant's modules.
    let env = Grants {
        env: [("A".to_owned(), "1".to_owned())].into(),
        scratch: true,
    };
    assert!(store.set_module_grants("acme", "m", &env).await.unwrap());
    let mut denied = tenant.clone();
    denied.quotas.allow_grants = vec!["env".into()];
    assert_eq!(
        store.update_tenant_revoking(&denied).await.unwrap(),
        Some(vec!["m".to_owned()])
    );
    let found = store.tenant_module("acme", "m").await.unwrap().unwrap();
    assert!(!found.grants.scratch, "scratch revoked");
    assert_eq!(found.grants.env.len(), 1, "env kept");
    assert_eq!(
        store.update_tenant_revoking(&denied).await.unwrap(),
        Some(vec![]),
        "nothing left to revoke"
    );
    // A grant written past the allowance (a race with the admin) is not read.
    assert!(store.set_module_grants("acme", "m", &env).await.unwrap());
    assert!(
        !store
            .tenant_module("acme", "m")
            .await
            .unwrap()
            .unwrap()
            .grants
            .scratch
    );
    assert!(
        !store.tenant_modules("acme").await.unwrap()[0]
            .grants
            .scratch
    );
    let mut gone = denied.clone();
    gone.name = "nobody".into();
    assert_eq!(store.update_tenant_revoking(&gone).await.unwrap(), None);
    assert!(store.update_tenant(&tenant).await.unwrap());
    assert!(
        store
            .tenant_module("other", &by_digest)
            .await
            .unwrap()
            .is_none()
    );

    store.own_tasks("acme", &["t1".into()]).await.unwrap();
    assert_eq!(
        store.task_owner("t1").await.unwrap().as_deref(),
        Some("acme")
    );
    assert_eq!(store.task_owner("t2").await.unwrap(), None);

    store
        .add_usage(60_000, &[("acme".into(), 10, 1)])
        .await
        .unwrap();
    store
        .add_usage(60_000, &[("acme".into(), 5, 2)])
        .await
        .unwrap();
    assert_eq!(
        store.usage(60_000).await.unwrap().get("acme"),
        Some(&(15, 3))
    );

    store
        .audit(&AuditEntry {
            at_ms: 2,
            tenant: Some("acme".into()),
            actor: "cli".into(),
            action: "tenant.create".into(),
            detail: String::new(),
        })
        .await
        .unwrap();
    assert_eq!(store.audit_log(Some("acme"), 10).await.unwrap().len(), 1);
    assert_eq!(store.audit_log(Some("other"), 10).await.unwrap().len(), 0);
    assert_eq!(store.audit_log(None, 10).await.unwrap().len(), 1);

    assert!(store.remove_tenant("acme").await.unwrap());
    assert!(
        store
            .key("0123456789ab")
            .await
            .unwrap()
            .unwrap()
            .revoked_at_ms
            .is_some()
    );
    assert!(store.tenant_module("acme", "m").await.unwrap().is_none());
}

async fn browsing_results_waiting_tasks_and_outcomes(store: Store) {
    let mut a1 = result("a1-x", true, 60_000);
    a1.module_name = "fib".into();
    a1.group = Some("acme/g".into());
    let mut a2 = result("a2-x", false, 61_000);
    a2.task = "boom".into();
    let b1 = result("b1-x", true, 125_000);
    let free = result("free", false, 130_000);
    store.save_results(&[a1, a2, b1, free], 0).await.unwrap();
    store
        .own_tasks("acme", &["a1-x".into(), "a2-x".into(), "a3-x".into()])
        .await
        .unwrap();
    store.own_tasks("beta", &["b1-x".into()]).await.unwrap();
    let ids = |results: Vec<TaskResult>| results.into_iter().map(|r| r.id).collect::<Vec<_>>();
    let search = |filter: ResultFilter| {
        let store = store.clone();
        async move {
            ids(store
                .search_results(&ResultFilter {
                    limit: 50,
                    ..filter
                })
                .await
                .unwrap())
        }
    };
    assert_eq!(
        search(ResultFilter::default()).await,
        ["free", "b1-x", "a2-x", "a1-x"]
    );
    let acme = || ResultFilter {
        tenant: Some("acme".into()),
        ..ResultFilter::default()
    };
    assert_eq!(search(acme()).await, ["a2-x", "a1-x"]);
    for (filter, expected) in [
        (
            ResultFilter {
                outcome: Some("failed".into()),
                ..acme()
            },
            vec!["a2-x"],
        ),
        (
            ResultFilter {
                outcome: Some("success".into()),
                ..acme()
            },
            vec!["a1-x"],
        ),
        (
            ResultFilter {
                outcome: Some("timeout".into()),
                ..ResultFilter::default()
            },
            vec!["free", "a2-x"],
        ),
        (
            ResultFilter {
                module: Some("fib".into()),
                ..ResultFilter::default()
            },
            vec!["a1-x"],
        ),
        (
            ResultFilter {
                task: Some("boom".into()),
                ..ResultFilter::default()
            },
            vec!["a2-x"],
        ),
        (
            ResultFilter {
                group: Some("acme/g".into()),
                ..ResultFilter::default()
            },
            vec!["a1-x"],
        ),
        (
            ResultFilter {
                id: Some("a".into()),
                ..ResultFilter::default()
            },
            vec!["a2-x", "a1-x"],
        ),
        (
            ResultFilter {
                id: Some("%".into()),
                tenant: Some("beta".into()),
                ..ResultFilter::default()
            },
            vec!["b1-x"],
        ),
        (
            ResultFilter {
                before_ms: Some(61_000),
                ..ResultFilter::default()
            },
            vec!["a1-x"],
        ),
    ] {
        assert_eq!(search(filter.clone()).await, expected, "{filter:?}");
    }
    let waiting = store.waiting_tasks(Some("acme"), 10).await.unwrap();
    assert_eq!(
        waiting.iter().map(|w| w.id.as_str()).collect::<Vec<_>>(),
        ["a3-x"]
    );
    assert_eq!(store.waiting_tasks(Some("beta"), 10).await.unwrap(), []);
    assert_eq!(store.waiting_tasks(None, 10).await.unwrap().len(), 1);

    let buckets = store.outcome_buckets(None, 60_000, 60_000).await.unwrap();
    let counted: Vec<_> = buckets
        .iter()
        .map(|b| (b.start_ms, b.outcome.as_str(), b.count))
        .collect();
    assert_eq!(
        counted,
        [
            (60_000, "success", 1),
            (60_000, "timeout", 1),
            (120_000, "success", 1),
            (120_000, "timeout", 1),
        ]
    );
    let acme_buckets = store
        .outcome_buckets(Some("acme"), 0, 60_000)
        .await
        .unwrap();
    assert_eq!(acme_buckets.iter().map(|b| b.count).sum::<u64>(), 2);

    // A resubmitted failure's new id belongs to the same tenant.
    assert_eq!(
        store.hand_on_task("a2-x", "a4-x").await.unwrap().as_deref(),
        Some("acme")
    );
    assert_eq!(
        store.task_owner("a4-x").await.unwrap().as_deref(),
        Some("acme")
    );
    assert_eq!(store.task_owner("a2-x").await.unwrap(), None);
    assert_eq!(store.hand_on_task("free", "free2").await.unwrap(), None);
    store.disown_task("a4-x").await.unwrap();
    assert_eq!(store.task_owner("a4-x").await.unwrap(), None);
}

async fn schedules_pause_and_replace(store: Store) {
    let spec = ScheduleSpec {
        name: "acme/tick".into(),
        module: "fib".into(),
        digest: Digest::of(b"m"),
        task: "fib".into(),
        input: r#"{"args":[1],"kwargs":{}}"#.into(),
        queue: None,
        group: None,
        priority: 0,
        kind: "minutes".into(),
        minutes: Some(1),
        cron: None,
        tz: "UTC".into(),
        next_run_ms: 1_000,
        repeats: -1,
        catch_up: false,
        cluster: None,
        tenant: Some("acme".into()),
    };
    store.add_schedule(&spec).await.unwrap();
    assert_eq!(store.next_schedule_due("wasq").await.unwrap(), Some(1_000));
    assert!(store.set_schedule_paused("acme/tick", true).await.unwrap());
    assert!(store.schedule("acme/tick").await.unwrap().unwrap().paused);
    assert_eq!(store.next_schedule_due("wasq").await.unwrap(), None);
    let fired = store
        .fire_due_schedules(10_000, "wasq", 10, |_, _| ScheduleFire {
            next_run_ms: None,
            task: None,
        })
        .await
        .unwrap();
    assert!(fired.is_empty(), "a paused schedule fired: {fired:?}");
    assert!(!store.set_schedule_paused("nope", true).await.unwrap());

    let changed = ScheduleSpec {
        task: "boom".into(),
        kind: "cron".into(),
        minutes: None,
        cron: Some("*/5 * * * *".into()),
        next_run_ms: 5_000,
        ..spec.clone()
    };
    let replaced = store.replace_schedule(&changed).await.unwrap().unwrap();
    assert_eq!(replaced.spec, changed);
    assert_eq!(replaced.anchor_ms, 5_000);
    assert!(replaced.paused, "an edit keeps the pause");
    let other_tenant = ScheduleSpec {
        tenant: Some("beta".into()),
        ..changed.clone()
    };
    assert_eq!(store.replace_schedule(&other_tenant).await.unwrap(), None);
    assert!(store.set_schedule_paused("acme/tick", false).await.unwrap());
    assert_eq!(store.next_schedule_due("wasq").await.unwrap(), Some(5_000));
}

/// `max_queued`: concurrent takes never overshoot, a result releases its
/// task's place once however often it is saved, a purge releases its
/// queue's places but not deferred tasks'.
async fn backlog_takes_atomically_and_releases_once(store: Store) {
    let quotas = wasq_core::tenant::Quotas {
        max_queued: Some(10),
        ..Default::default()
    };
    let tenant = wasq_core::tenant::Tenant {
        name: "acme".into(),
        weight: 1,
        quotas,
        created_at_ms: 0,
    };
    store.create_tenant(&tenant).await.unwrap();
    let queue = wasq_core::tenant::tenant_queue("default", "acme");
    let place = |id: String| vec![(id, queue.clone())];
    let first: Vec<_> = (0..4).map(|i| (format!("t{i}"), queue.clone())).collect();
    assert_eq!(store.take_backlog("acme", &first).await.unwrap(), Ok(()));
    // The same ids again take nothing more.
    assert_eq!(store.take_backlog("acme", &first).await.unwrap(), Ok(()));
    assert_eq!(store.backlog("acme").await.unwrap(), 4);

    let racing = (0..20).map(|i| {
        let (store, place) = (store.clone(), place(format!("r{i}")));
        tokio::spawn(async move { store.take_backlog("acme", &place).await.unwrap() })
    });
    let mut taken = 0;
    for task in racing {
        match task.await.unwrap() {
            Ok(()) => taken += 1,
            Err(full) => assert_eq!(full.max_queued, 10),
        }
    }
    assert_eq!(taken, 6);
    assert_eq!(store.backlog("acme").await.unwrap(), 10);
    let full = store
        .take_backlog("acme", &place("x".into()))
        .await
        .unwrap();
    assert!(full.is_err_and(|f| f.queued == 10 && f.message().contains("max_queued")));

    // A result releases its task's place, once.
    let mut done = result("t0", true, 1);
    done.queue = queue.clone();
    store.save_results(&[done.clone()], 0).await.unwrap();
    store.save_results(&[done], 0).await.unwrap();
    assert_eq!(store.backlog("acme").await.unwrap(), 9);

    // A purge releases the places of what was queued, not of deferred tasks.
    store
        .defer(&[Deferred {
            id: "t1".into(),
            task_id: "t1".into(),
            queue: queue.clone(),
            priority: 0,
            due_at_ms: i64::MAX,
            package: Vec::new(),
        }])
        .await
        .unwrap();
    assert_eq!(store.release_queue_backlog(&queue).await.unwrap(), 8);
    assert_eq!(store.backlog("acme").await.unwrap(), 1);
    // A batch is all or none.
    let many: Vec<_> = (0..10).map(|i| (format!("b{i}"), queue.clone())).collect();
    assert!(store.take_backlog("acme", &many).await.unwrap().is_err());
    assert_eq!(store.backlog("acme").await.unwrap(), 1);
    assert_eq!(
        store.take_backlog("acme", &many[..9]).await.unwrap(),
        Ok(())
    );
}

async fn runs_are_counted_per_attempt_and_forgotten_with_the_result(store: Store) {
    assert_eq!(
        store.mark_runs(&[("t1", 1), ("t2", 1)]).await.unwrap(),
        [1, 1]
    );
    assert_eq!(
        store.mark_runs(&[("t2", 1), ("t1", 2)]).await.unwrap(),
        [2, 1]
    );
    assert_eq!(store.runs_started("t2", 1).await.unwrap(), 2);
    assert_eq!(store.runs_started("t1", 1).await.unwrap(), 1);
    assert_eq!(store.runs_started("nobody", 1).await.unwrap(), 0);
    // A saved result forgets every attempt's runs of its task.
    store
        .save_results(&[result("t1", true, 1)], 0)
        .await
        .unwrap();
    assert_eq!(store.runs_started("t1", 1).await.unwrap(), 0);
    assert_eq!(store.runs_started("t1", 2).await.unwrap(), 0);
    assert_eq!(store.runs_started("t2", 1).await.unwrap(), 2);
}

/// Truthful answers: exact `save_limit`, tombstones, task states.
mod outcomes;
