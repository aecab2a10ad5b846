//! Store tests of truthful answers: `save_limit` keeps exactly its number
//! of successes when many tie on `stopped_at`, what it prunes leaves a
//! bounded tombstone, and a task's state tells finished, pruned, running,
//! queued (deferred, with its due time; a tenant's backlog) and unknown
//! apart. Each runs on SQLite and PostgreSQL.

use super::*;

store_tests!(
    save_limit_is_exact_when_successes_tie,
    what_save_limit_prunes_leaves_a_tombstone,
    tombstones_keep_the_newest,
    task_state_tells_each_state_apart,
);

/// A success of queue `queue` stopped at `stopped_at_ms`.
fn success_in(queue: &str, id: &str, stopped_at_ms: i64) -> TaskResult {
    TaskResult {
        queue: queue.into(),
        ..result(id, true, stopped_at_ms)
    }
}

async fn successes(store: &Store, queue: &str) -> i64 {
    with_pool!(store, pool => {
        sqlx::query_scalar("SELECT COUNT(*) FROM wasq_results WHERE success = 1 AND queue = $1")
            .bind(queue)
            .fetch_one(pool)
            .await
            .unwrap()
    })
}

async fn save_limit_is_exact_when_successes_tie(store: Store) {
    // One batch of 20 in the same millisecond: 5 kept, not 20.
    let batch: Vec<_> = (0..20)
        .map(|i| success_in("tied", &format!("a{i:02}"), 1_000))
        .collect();
    store.save_results(&batch, 5).await.unwrap();
    assert_eq!(successes(&store, "tied").await, 5);
    // Batches of 7 that tie with each other and with the cut-off.
    for round in 0..4 {
        let batch: Vec<_> = (0..7)
            .map(|i| success_in("tied", &format!("b{round}{i}"), 1_000))
            .collect();
        store.save_results(&batch, 5).await.unwrap();
        assert_eq!(successes(&store, "tied").await, 5, "after batch {round}");
    }
    // Ties among older rows, one newer row: the newer one is kept.
    let mut batch: Vec<_> = (0..9)
        .map(|i| success_in("mixed", &format!("m{i}"), 2_000))
        .collect();
    batch.push(success_in("mixed", "newest", 3_000));
    store.save_results(&batch, 3).await.unwrap();
    assert_eq!(successes(&store, "mixed").await, 3);
    assert!(store.result("newest").await.unwrap().is_some());
    // Failures are never pruned, and other queues are untouched.
    let failures: Vec<_> = (0..4)
        .map(|i| TaskResult {
            queue: "tied".into(),
            ..result(&format!("f{i}"), false, 1_000)
        })
        .collect();
    store.save_results(&failures, 5).await.unwrap();
    assert_eq!(store.counts().await.unwrap().failures(), 4);
    assert_eq!(successes(&store, "tied").await, 5);
    assert_eq!(successes(&store, "mixed").await, 3);
}

async fn what_save_limit_prunes_leaves_a_tombstone(store: Store) {
    let batch: Vec<_> = (0..6)
        .map(|i| success_in("q", &format!("s{i}"), 100 + i))
        .collect();
    store.save_results(&batch, 2).await.unwrap();
    for i in 0..4 {
        let id = format!("s{i}");
        let tombstone = store.tombstone(&id).await.unwrap();
        let tombstone = tombstone.unwrap_or_else(|| panic!("no tombstone for {id}"));
        assert_eq!(tombstone.outcome, "success");
        assert_eq!(tombstone.stopped_at_ms, 100 + i);
        assert!(tombstone.pruned_at_ms > 0);
        assert!(matches!(
            store.task_state(&id).await.unwrap(),
            TaskState::Pruned(t) if t == tombstone
        ));
    }
    for id in ["s4", "s5"] {
        assert!(store.tombstone(id).await.unwrap().is_none(), "{id} is kept");
        assert!(matches!(
            store.task_state(id).await.unwrap(),
            TaskState::Finished(r) if r.id == id
        ));
    }
    // save_limit -1 keeps no success: each leaves a tombstone only.
    store
        .save_results(&[success_in("q", "dropped", 500)], -1)
        .await
        .unwrap();
    assert!(store.result("dropped").await.unwrap().is_none());
    assert_eq!(
        store
            .tombstone("dropped")
            .await
            .unwrap()
            .map(|t| t.stopped_at_ms),
        Some(500)
    );
    // A pruned tenant's task is not listed as waiting.
    store.own_tasks("acme", &["s0".to_owned()]).await.unwrap();
    assert!(
        store
            .waiting_tasks(Some("acme"), 10)
            .await
            .unwrap()
            .is_empty()
    );
}

async fn tombstones_keep_the_newest(store: Store) {
    // An old tombstone far behind the newest: trimmed at the next prune.
    let (old, newer) = (1_i64, 10 + TOMBSTONES);
    let insert = match &store.backend {
        Backend::Sqlite(_) => {
            "INSERT INTO wasq_pruned (seq, task_id, outcome, stopped_at, pruned_at) VALUES ($1, $2, 'success', 1, 1)"
        }
        Backend::Postgres(_) => {
            "INSERT INTO wasq_pruned (seq, task_id, outcome, stopped_at, pruned_at) OVERRIDING SYSTEM VALUE VALUES ($1, $2, 'success', 1, 1)"
        }
    };
    for (seq, id) in [(old, "ancient"), (newer, "recent")] {
        with_pool!(store, pool => {
            sqlx::query(insert).bind(seq).bind(id).execute(pool).await.unwrap();
        });
    }
    if let Backend::Postgres(pool) = &store.backend {
        // The identity continues after the rows placed by hand.
        sqlx::query("SELECT setval(pg_get_serial_sequence('wasq_pruned', 'seq'), $1)")
            .bind(newer)
            .execute(pool)
            .await
            .unwrap();
    }
    let batch: Vec<_> = (0..3)
        .map(|i| success_in("q", &format!("n{i}"), 10 + i))
        .collect();
    store.save_results(&batch, 1).await.unwrap();
    assert!(store.tombstone("ancient").await.unwrap().is_none());
    for id in ["recent", "n0", "n1"] {
        assert!(store.tombstone(id).await.unwrap().is_some(), "{id}");
    }
}

async fn task_state_tells_each_state_apart(store: Store) {
    store
        .save_results(&[result("done", false, 5)], 0)
        .await
        .unwrap();
    assert!(matches!(
        store.task_state("done").await.unwrap(),
        TaskState::Finished(r) if r.outcome == "timeout"
    ));

    // Deferred (an ETA, a retry's backoff): queued, with its due time.
    store
        .defer(&[Deferred {
            id: "later:2".into(),
            task_id: "later".into(),
            queue: "q".into(),
            priority: 0,
            due_at_ms: 4_102_444_800_000,
            package: b"p".to_vec(),
        }])
        .await
        .unwrap();
    assert_eq!(
        store.task_state("later").await.unwrap(),
        TaskState::Queued {
            due_at_ms: Some(4_102_444_800_000)
        }
    );

    // A tenant's task in the broker holds a place in its backlog.
    store
        .take_backlog("acme", &[("waiting".into(), "acme/q".into())])
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        store.task_state("waiting").await.unwrap(),
        TaskState::Queued { due_at_ms: None }
    );

    // Running: a fresh heartbeat lists it (ahead of its backlog place).
    store
        .take_backlog("acme", &[("busy".into(), "acme/q".into())])
        .await
        .unwrap()
        .unwrap();
    let status = ClusterStatus {
        id: "c1".into(),
        name: "wasq".into(),
        label: "l".into(),
        host: "h".into(),
        pid: 1,
        workers: 2,
        started_at_ms: now_ms(),
        heartbeat_at_ms: now_ms(),
        in_flight: 1,
        done: 0,
        status: "running".into(),
        running: vec![RunningTask {
            id: "busy".into(),
            module: "m".into(),
            task: "spin".into(),
            tenant: Some("acme".into()),
            started_at_ms: 77,
            fuel_limit: 10,
        }],
    };
    store.heartbeat(&status).await.unwrap();
    assert_eq!(
        store.task_state("busy").await.unwrap(),
        TaskState::Running {
            cluster: "c1".into(),
            started_at_ms: 77
        }
    );

    // Nothing known: unknown.
    assert_eq!(store.task_state("never").await.unwrap(), TaskState::Unknown);
    assert!(store.ended("never").await.unwrap().is_none());
    assert!(!TaskState::Unknown.has_ended());
}
