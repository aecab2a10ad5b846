//! Store tests against a temporary SQLite file.

use super::*;

async fn store() -> (Store, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("sub/store.db").display());
    (Store::connect(&url).await.unwrap(), dir)
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
    }
}

#[tokio::test]
async fn modules_by_name_and_digest() {
    let (store, _dir) = store().await;
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

#[tokio::test]
async fn first_result_wins() {
    let (store, _dir) = store().await;
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

#[tokio::test]
async fn save_limit_keeps_recent_successes_and_all_failures() {
    let (store, _dir) = store().await;
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

#[tokio::test]
async fn clusters_and_rejections() {
    let (store, _dir) = store().await;
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

    let rejected = Rejected {
        queue: "q".into(),
        broker_id: "7:1".into(),
        reason: "bad signature".into(),
        size: 10,
        at_ms: 1,
        cluster: "c1".into(),
    };
    store.record_rejected(&rejected).await.unwrap();
    assert_eq!(store.rejected(10).await.unwrap(), [rejected]);
    assert_eq!(store.counts().await.unwrap().rejected, 1);
}

#[tokio::test]
async fn bad_urls_are_named() {
    assert!(matches!(
        Store::connect("postgres://x").await,
        Err(StoreError::BadUrl(_))
    ));
    let err = Store::connect("sqlite:///proc/no/such/dir/x.db")
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Unreachable { .. }), "{err}");
}
