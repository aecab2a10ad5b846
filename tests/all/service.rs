//! `wasq serve`, black box through HTTP: tenants cannot see each other's
//! objects, revoked keys are refused, quotas answer 429/403 naming the
//! quota, a huge upload is refused before it is read, a small tenant is
//! served before a big backlog, a fuel budget holds back only its tenant,
//! grants open exactly what they say, and schemathesis finds no server
//! errors or answers that contradict the OpenAPI document.

use std::io::{Read as _, Write as _};
use std::net::TcpStream;
use std::path::Path;
use std::time::Duration;

use serde_json::{Value, json};
use wasq_tests::{ClusterProcess, Run, eventually, wasm, wasq_env};

/// A `wasq serve` in a temporary directory (embedded SQLite broker and
/// store in `dir/.wasq`).
pub(crate) struct Service {
    dir: tempfile::TempDir,
    pub(crate) url: String,
    env: Vec<(String, String)>,
    _server: ClusterProcess,
    http: reqwest::Client,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

impl Service {
    /// Starts `wasq serve` with `args` and extra environment.
    pub(crate) fn start(args: &[&str], env: &[(&str, &str)]) -> Self {
        let dir = tempfile::tempdir().expect("a temp dir");
        let port = free_port();
        let listen = format!("127.0.0.1:{port}");
        let mut all = vec!["--listen", listen.as_str()];
        all.extend_from_slice(args);
        let server = ClusterProcess::start_command(dir.path(), "serve", &all, env);
        let url = format!("http://{listen}");
        eventually(Duration::from_secs(30), "wasq serve to answer", || {
            TcpStream::connect(&listen).ok()
        });
        Self {
            dir,
            url,
            env: env
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
            _server: server,
            http: reqwest::Client::new(),
        }
    }

    pub(crate) fn path(&self) -> &Path {
        self.dir.path()
    }

    /// The server's process id.
    pub(crate) fn pid(&self) -> u32 {
        self._server.id()
    }

    /// The logs of the processes started in its directory, for failure
    /// messages.
    pub(crate) fn logs(&self) -> String {
        let mut logs = String::new();
        for entry in std::fs::read_dir(self.path())
            .into_iter()
            .flatten()
            .flatten()
        {
            let path = entry.path();
            if path.extension().is_some_and(|e| e == "log") {
                let text = std::fs::read_to_string(&path).unwrap_or_default();
                logs.push_str(&format!("--- {}\n{text}\n", path.display()));
            }
        }
        logs
    }

    pub(crate) fn wasq(&self, args: &[&str]) -> Run {
        let env: Vec<(&str, &str)> = self
            .env
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        wasq_env(self.path(), args, &env)
    }

    /// Creates tenant `name` (with extra `wasq tenant create` flags) and
    /// returns a key for it.
    pub(crate) fn tenant(&self, name: &str, flags: &[&str]) -> String {
        let mut args = vec!["tenant", "create", name];
        args.extend_from_slice(flags);
        let run = self.wasq(&args);
        assert_eq!(run.code, 0, "{run:?}");
        self.key(&["--tenant", name])
    }

    pub(crate) fn key(&self, flags: &[&str]) -> String {
        let mut args = vec!["key", "create", "--json"];
        args.extend_from_slice(flags);
        let run = self.wasq(&args);
        assert_eq!(run.code, 0, "{run:?}");
        run.json()["key"].as_str().expect("a key").to_owned()
    }

    pub(crate) async fn send(&self, request: reqwest::RequestBuilder, key: &str) -> (u16, Value) {
        let response = request.bearer_auth(key).send().await.expect("a response");
        let status = response.status().as_u16();
        let bytes = response.bytes().await.expect("a body");
        let body = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes)
                .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&bytes)))
        };
        (status, body)
    }

    pub(crate) async fn get(&self, key: &str, path: &str) -> (u16, Value) {
        self.send(self.http.get(format!("{}{path}", self.url)), key)
            .await
    }

    pub(crate) async fn delete(&self, key: &str, path: &str) -> (u16, Value) {
        self.send(self.http.delete(format!("{}{path}", self.url)), key)
            .await
    }

    pub(crate) async fn post(&self, key: &str, path: &str, body: Value) -> (u16, Value) {
        self.send(
            self.http.post(format!("{}{path}", self.url)).json(&body),
            key,
        )
        .await
    }

    pub(crate) async fn put(&self, key: &str, path: &str, body: Value) -> (u16, Value) {
        self.send(
            self.http.put(format!("{}{path}", self.url)).json(&body),
            key,
        )
        .await
    }

    pub(crate) async fn upload(&self, key: &str, name: &str, module: &str) -> (u16, Value) {
        let bytes = std::fs::read(wasm(module)).expect("the module");
        self.send(
            self.http
                .put(format!("{}/v1/modules/{name}", self.url))
                .body(bytes),
            key,
        )
        .await
    }

    pub(crate) async fn enqueue(&self, key: &str, body: Value) -> String {
        let (status, answer) = self.post(key, "/v1/tasks", body).await;
        assert_eq!(status, 201, "{answer}");
        answer["id"].as_str().expect("an id").to_owned()
    }

    /// Waits for task `id`'s result.
    pub(crate) async fn result(&self, key: &str, id: &str) -> Value {
        for _ in 0..10 {
            let (status, task) = self.get(key, &format!("/v1/tasks/{id}?wait=10")).await;
            assert_eq!(status, 200, "{task}");
            if task["status"] == "finished" {
                return task["result"].clone();
            }
        }
        panic!("no result for {id}");
    }

    /// The results of a group so far.
    pub(crate) async fn group(&self, key: &str, group: &str) -> Vec<Value> {
        let (status, body) = self.get(key, &format!("/v1/groups/{group}")).await;
        assert_eq!(status, 200, "{body}");
        body["results"].as_array().cloned().unwrap_or_default()
    }
}

fn error_code(body: &Value) -> &str {
    body["error"]["code"].as_str().unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread")]
async fn tenants_see_only_their_own_modules_tasks_and_results() {
    let service = Service::start(&["--workers", "2"], &[]);
    let a = service.tenant("alpha", &[]);
    let b = service.tenant("beta", &[]);
    let (status, module) = service.upload(&a, "basics", "basics").await;
    assert_eq!(status, 201, "{module}");
    let digest = module["digest"].as_str().expect("a digest").to_owned();
    let id = service
        .enqueue(
            &a,
            json!({"module": "basics", "task": "fib", "args": [10], "group": "g"}),
        )
        .await;
    let result = service.result(&a, &id).await;
    assert_eq!(result["value"], 55, "{result}");
    assert_eq!(result["group"], "g", "{result}");

    // Every way B could reach A's objects is a 404, like an id that never
    // existed.
    for path in [
        "/v1/modules/basics".to_owned(),
        format!("/v1/tasks/{id}"),
        format!("/v1/tasks/{id}?wait=1"),
    ] {
        let (status, body) = service.get(&b, &path).await;
        assert_eq!(status, 404, "{path}: {body}");
        assert_eq!(error_code(&body), "not_found");
    }
    let (status, _) = service.delete(&b, &format!("/v1/tasks/{id}")).await;
    assert_eq!(status, 404);
    let (status, _) = service.delete(&b, "/v1/modules/basics").await;
    assert_eq!(status, 404);
    for module in ["basics", digest.as_str()] {
        let (status, body) = service
            .post(
                &b,
                "/v1/tasks",
                json!({"module": module, "task": "fib", "args": [1]}),
            )
            .await;
        assert_eq!(status, 404, "{module}: {body}");
    }
    let (status, listed) = service.get(&b, "/v1/modules").await;
    assert_eq!((status, listed), (200, json!([])));
    assert!(service.group(&b, "g").await.is_empty());
    assert_eq!(service.group(&a, "g").await.len(), 1);
    // A still has all of it.
    let (status, _) = service.get(&a, "/v1/modules/basics").await;
    assert_eq!(status, 200);
    let (status, _) = service.get(&a, &format!("/v1/tasks/{id}")).await;
    assert_eq!(status, 200);

    // The audit log recorded the upload, and B does not see it.
    let (_, log) = service.get(&a, "/v1/audit").await;
    assert!(
        log.as_array()
            .is_some_and(|l| l.iter().any(|e| e["action"] == "module.upload")),
        "{log}"
    );
    let (_, log) = service.get(&b, "/v1/audit").await;
    assert!(
        log.as_array()
            .is_some_and(|l| l.iter().all(|e| e["tenant"] == "beta")),
        "{log}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn unknown_revoked_and_missing_keys_get_401() {
    let service = Service::start(&[], &[]);
    let key = service.tenant("alpha", &[]);
    let (status, _) = service.get(&key, "/v1/usage").await;
    assert_eq!(status, 200);

    let id = key.split('_').nth(1).expect("a key id");
    let run = service.wasq(&["key", "revoke", id]);
    assert_eq!(run.code, 0, "{run:?}");
    let (status, body) = service.get(&key, "/v1/usage").await;
    assert_eq!(status, 401, "{body}");
    assert_eq!(error_code(&body), "unauthorized");

    // A made-up key of the right shape, garbage, and no header at all.
    let forged = format!("wasq_{id}_{}", "0".repeat(64));
    for bad in [forged.as_str(), "not-a-key"] {
        let (status, _) = service.get(bad, "/v1/modules").await;
        assert_eq!(status, 401, "{bad}");
    }
    let response = service
        .http
        .get(format!("{}/v1/modules", service.url))
        .send()
        .await
        .expect("a response");
    assert_eq!(response.status().as_u16(), 401);
    assert!(response.headers().contains_key("www-authenticate"));

    // Removing a tenant revokes its keys.
    let other = service.tenant("gamma", &[]);
    assert_eq!(service.wasq(&["tenant", "remove", "gamma"]).code, 0);
    let (status, _) = service.get(&other, "/v1/usage").await;
    assert_eq!(status, 401);

    // An admin key owns nothing.
    let admin = service.key(&["--admin"]);
    let (status, body) = service.get(&admin, "/v1/modules").await;
    assert_eq!(status, 403, "{body}");
    let (status, _) = service.get(&admin, "/v1/audit").await;
    assert_eq!(status, 200);

    // The command line says what happened in one line.
    let run = service.wasq(&["--server", &service.url, "--key", &key, "module", "list"]);
    assert_ne!(run.code, 0);
    assert!(run.one_line_error().contains("refused the key"), "{run:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn requests_over_a_quota_are_refused_naming_it() {
    // No cluster: queued tasks stay queued.
    let service = Service::start(&[], &[]);
    let key = service.tenant(
        "alpha",
        &[
            "--quota",
            "max_queued=2",
            "--quota",
            "max_fuel=1000000",
            "--quota",
            "max_modules=1",
        ],
    );
    assert_eq!(service.upload(&key, "basics", "basics").await.0, 201);
    let task = json!({"module": "basics", "task": "fib", "args": [5]});
    service.enqueue(&key, task.clone()).await;
    service.enqueue(&key, task.clone()).await;
    let (status, body) = service.post(&key, "/v1/tasks", task.clone()).await;
    assert_eq!(status, 429, "{body}");
    assert_eq!(body["error"]["quota"], "max_queued", "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("max_queued")),
        "{body}"
    );
    let (status, body) = service
        .post(&key, "/v1/tasks/batch", json!({"tasks": [task.clone()]}))
        .await;
    assert_eq!(
        (status, &body["error"]["quota"]),
        (429, &json!("max_queued")),
        "{body}"
    );

    let (status, body) = service
        .post(
            &key,
            "/v1/tasks",
            json!({"module": "basics", "task": "fib", "args": [5], "fuel": 2000000}),
        )
        .await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(body["error"]["quota"], "max_fuel", "{body}");

    let (status, body) = service.upload(&key, "second", "escape").await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(body["error"]["quota"], "max_modules", "{body}");

    // Nothing queued was lost to the refusals.
    let (_, queues) = service.get(&key, "/v1/queues").await;
    assert_eq!(queues, json!([{"queue": "default", "size": 2}]));

    // Through the command line: a one-line error naming the quota.
    let run = service.wasq(&[
        "--server",
        &service.url,
        "--key",
        &key,
        "enqueue",
        "basics",
        "fib",
        "--args",
        "[5]",
    ]);
    assert_ne!(run.code, 0, "{run:?}");
    assert!(run.one_line_error().contains("max_queued"), "{run:?}");
}

/// Sends a PUT of a module with `headers`, then up to `total` body bytes
/// (as they are: give chunk framing in `frame`); returns the status line
/// and how many body bytes went out before the server answered or closed.
fn raw_upload(
    address: &str,
    key: &str,
    headers: &str,
    total: u64,
    frame: fn(&[u8]) -> Vec<u8>,
) -> (String, u64) {
    let mut stream = TcpStream::connect(address).expect("a connection");
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .expect("a timeout");
    let head = format!(
        "PUT /v1/modules/huge HTTP/1.1\r\nHost: {address}\r\nAuthorization: Bearer {key}\r\n{headers}\r\n"
    );
    stream.write_all(head.as_bytes()).expect("the head");
    let mut writer = stream.try_clone().expect("a second handle");
    let sender = std::thread::spawn(move || {
        let chunk = vec![0u8; 64 << 10];
        let mut sent = 0u64;
        while sent < total {
            if writer.write_all(&frame(&chunk)).is_err() {
                break;
            }
            sent += chunk.len() as u64;
        }
        sent
    });
    let mut answer = Vec::new();
    let mut buffer = [0u8; 4096];
    while !answer.windows(4).any(|w| w == b"\r\n\r\n") {
        match stream.read(&mut buffer) {
            Ok(0) | Err(_) => break,
            Ok(n) => answer.extend_from_slice(&buffer[..n]),
        }
    }
    let _ = stream.shutdown(std::net::Shutdown::Both);
    let sent = sender.join().expect("the sender");
    let text = String::from_utf8_lossy(&answer);
    (text.lines().next().unwrap_or_default().to_owned(), sent)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_100_mb_upload_is_refused_without_being_read_into_memory() {
    let service = Service::start(&["--max-upload", "1MiB"], &[]);
    let key = service.tenant("alpha", &[]);
    let address = service.url.trim_start_matches("http://").to_owned();
    const HUNDRED_MB: u64 = 100 << 20;

    // Declared length over the limit: refused on the headers; the body is
    // never read (only 64 KiB of it is even sent before the answer).
    let (status, sent) = raw_upload(
        &address,
        &key,
        &format!("Content-Length: {HUNDRED_MB}\r\nContent-Type: application/wasm\r\n"),
        64 << 10,
        |chunk| chunk.to_vec(),
    );
    assert!(status.contains(" 413 "), "{status}");
    assert!(sent <= 64 << 10);

    // No declared length (chunked): cut off at the limit; the server
    // answers and closes long before 100 MB went out.
    let (status, sent) = raw_upload(
        &address,
        &key,
        "Transfer-Encoding: chunked\r\nContent-Type: application/wasm\r\n",
        HUNDRED_MB,
        |chunk| {
            let mut framed = format!("{:x}\r\n", chunk.len()).into_bytes();
            framed.extend_from_slice(chunk);
            framed.extend_from_slice(b"\r\n");
            framed
        },
    );
    assert!(status.contains(" 413 "), "{status}");
    assert!(sent < HUNDRED_MB / 2, "{sent} bytes went out");

    // The server is fine and held nothing: no module, and its peak memory
    // stayed far below 100 MB.
    let (status, listed) = service.get(&key, "/v1/modules").await;
    assert_eq!((status, listed), (200, json!([])));
    let pid = service._server.id();
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("/proc");
    let peak_kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmHWM");
    assert!(peak_kib < 80 * 1024, "peak RSS {peak_kib} KiB");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_small_tenant_is_served_before_a_big_backlog() {
    small_tenant_first(&[]).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_small_tenant_is_served_before_a_big_backlog_on_redis_and_postgres() {
    // A key prefix of its own on the shared Redis server.
    let broker = format!(
        "{}/?prefix=fair{}",
        wasq_tests::server_url("WASQ_TEST_REDIS_URL").trim_end_matches('/'),
        &wasq::package::new_task_id()[..8]
    );
    let store = wasq_tests::postgres_database().await;
    small_tenant_first(&[
        ("WASQ_BROKER", &broker),
        ("WASQ_STORE", &store),
        ("WASQ_SECRET", "service-test-secret-0123456789abcdef"),
    ])
    .await;
}

/// Tenant A queues 10,000 tasks, then tenant B 10, then a cluster starts:
/// B's are done before A has done a tenth of its own.
async fn small_tenant_first(env: &[(&str, &str)]) {
    // The API alone first: both tenants' tasks are queued before a
    // cluster starts.
    let service = Service::start(&[], env);
    let a = service.tenant("alpha", &[]);
    let b = service.tenant("beta", &[]);
    assert_eq!(service.upload(&a, "basics", "basics").await.0, 201);
    assert_eq!(service.upload(&b, "basics", "basics").await.0, 201);
    let task = json!({"module": "basics", "task": "fib", "args": [18], "group": "bulk"});
    for _ in 0..10 {
        let tasks: Vec<Value> = (0..1000).map(|_| task.clone()).collect();
        let (status, body) = service
            .post(&a, "/v1/tasks/batch", json!({ "tasks": tasks }))
            .await;
        assert_eq!(status, 201, "{body}");
    }
    for _ in 0..10 {
        service
            .enqueue(
                &b,
                json!({"module": "basics", "task": "fib", "args": [18], "group": "few"}),
            )
            .await;
    }
    let (_, queues) = service.get(&a, "/v1/queues").await;
    assert_eq!(queues, json!([{"queue": "default", "size": 10000}]));
    let _cluster = ClusterProcess::start(service.path(), &["--workers", "2"], env);
    let mut b_done = 0;
    for _ in 0..600 {
        b_done = service.group(&b, "few").await.len();
        if b_done == 10 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(b_done, 10, "B's tasks did not finish\n{}", service.logs());
    let a_done = service.group(&a, "bulk").await.len();
    assert!(
        a_done < 1000,
        "A had {a_done} of 10,000 done when B's 10 were: B waited behind A's backlog"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_tenant_over_its_fuel_budget_waits_and_others_do_not() {
    const WINDOW_MS: i64 = 2000;
    // What one task burns (fuel is deterministic).
    let run = wasq_env(
        Path::new("."),
        &[
            "run",
            wasm("basics").to_str().expect("a path"),
            "fib",
            "--args",
            "[24]",
            "--json",
        ],
        &[],
    );
    let fuel = run.json()["fuel_consumed"].as_u64().expect("fuel");
    let budget = fuel * 5 / 2;
    let service = Service::start(&["--workers", "2"], &[("WASQ_FUEL_WINDOW", "2s")]);
    let c = service.tenant(
        "capped",
        &[
            "--quota",
            &format!("fuel_per_minute={budget}"),
            "--quota",
            "max_running=1",
        ],
    );
    let b = service.tenant("free", &[]);
    assert_eq!(service.upload(&c, "basics", "basics").await.0, 201);
    assert_eq!(service.upload(&b, "basics", "basics").await.0, 201);
    let task =
        |group: &str| json!({"module": "basics", "task": "fib", "args": [24], "group": group});
    let tasks: Vec<Value> = (0..9).map(|_| task("capped")).collect();
    let (status, body) = service
        .post(&c, "/v1/tasks/batch", json!({ "tasks": tasks }))
        .await;
    assert_eq!(status, 201, "{body}");
    let tasks: Vec<Value> = (0..6).map(|_| task("free")).collect();
    let (status, body) = service
        .post(&b, "/v1/tasks/batch", json!({ "tasks": tasks }))
        .await;
    assert_eq!(status, 201, "{body}");

    // The other tenant's tasks all run while the capped one waits.
    let mut free_done = 0;
    for _ in 0..600 {
        free_done = service.group(&b, "free").await.len();
        if free_done == 6 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(free_done, 6);
    let capped_then = service.group(&c, "capped").await.len();
    assert!(capped_then < 9, "the capped tenant did not wait");

    // It finishes over the following windows, never burning more per window
    // than its budget plus the one task it had running.
    let mut capped = Vec::new();
    for _ in 0..600 {
        capped = service.group(&c, "capped").await;
        if capped.len() == 9 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(capped.len(), 9, "the capped tenant's tasks never finished");
    let mut per_window = std::collections::BTreeMap::<i64, u64>::new();
    for result in &capped {
        let stopped = result["stopped_at_ms"].as_i64().expect("a time");
        *per_window.entry(stopped.div_euclid(WINDOW_MS)).or_default() +=
            result["fuel"].as_u64().expect("fuel");
    }
    assert!(per_window.len() >= 3, "{per_window:?}");
    for (window, used) in &per_window {
        assert!(
            *used <= budget + fuel,
            "window {window}: {used} fuel, budget {budget} (+{fuel})"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn escape_wasm_reaches_nothing_without_grants_and_only_its_scratch_dir_with_one() {
    let scratch_root = tempfile::tempdir().expect("a temp dir");
    let root = scratch_root.path().to_str().expect("a path").to_owned();
    let service = Service::start(&["--workers", "2"], &[("WASQ_SCRATCH_DIR", &root)]);
    let key = service.tenant(
        "alpha",
        &["--allow-grant", "scratch", "--allow-grant", "env"],
    );
    let plain = service.tenant("beta", &[]);
    assert_eq!(service.upload(&key, "escape", "escape").await.0, 201);
    assert_eq!(service.upload(&key, "granted", "escape").await.0, 201);
    assert_eq!(service.upload(&plain, "escape", "escape").await.0, 201);

    let run = |module: &'static str, task: &'static str, args: Value| {
        let service = &service;
        let key = key.clone();
        async move {
            let id = service
                .enqueue(&key, json!({"module": module, "task": task, "args": args}))
                .await;
            service.result(&key, &id).await
        }
    };
    // No grants: no files, no environment, no scratch directory.
    for (task, args, says) in [
        ("read_file", json!([]), "reading /etc/passwd failed"),
        ("env", json!([]), "no host environment visible"),
        (
            "write_file",
            json!(["/scratch/a.txt"]),
            "writing /scratch/a.txt failed",
        ),
    ] {
        let result = run("escape", task, args).await;
        assert_eq!(result["outcome"], "guest_error", "{task}: {result}");
        assert!(
            result["log"].as_str().is_some_and(|l| l.contains(says)),
            "{task}: {result}"
        );
    }

    // A tenant may only give grants an admin allowed it.
    let (status, body) = service
        .put(
            &plain,
            "/v1/modules/escape/grants",
            json!({"scratch": true}),
        )
        .await;
    assert_eq!(status, 403, "{body}");

    let (status, body) = service
        .put(
            &key,
            "/v1/modules/granted/grants",
            json!({"scratch": true, "env": {"GREETING": "hello"}}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let result = run("granted", "write_file", json!(["/scratch/a.txt"])).await;
    assert_eq!(result["outcome"], "success", "{result}");
    // Each task gets a fresh directory: the last one's file is gone.
    let result = run("granted", "list_path", json!(["/scratch"])).await;
    assert_eq!(result["value"], json!([]), "{result}");
    let outside = format!("{root}/escaped.txt");
    for path in [
        "/scratch/../escaped.txt",
        "/escaped.txt",
        outside.as_str(),
        "/tmp/escaped.txt",
    ] {
        let result = run("granted", "write_file", json!([path])).await;
        assert_eq!(result["outcome"], "guest_error", "{path}: {result}");
    }
    let result = run("granted", "env", json!([])).await;
    assert_eq!(result["value"], json!({"GREETING": "hello"}), "{result}");
    let result = run("granted", "read_file", json!([])).await;
    assert_eq!(result["outcome"], "guest_error", "{result}");

    // Nothing was written outside, and every scratch directory is gone.
    assert!(!Path::new(&outside).exists());
    // The cluster's private root (`wasq-scratch-<random>`) holds only its
    // lock file once the tasks ended.
    let roots: Vec<_> = std::fs::read_dir(scratch_root.path())
        .expect("the scratch root")
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("wasq-scratch-"))
        })
        .collect();
    assert_eq!(roots.len(), 1, "{roots:?}");
    let left: Vec<_> = std::fs::read_dir(&roots[0])
        .expect("the cluster's root")
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.file_name().is_some_and(|n| n != ".lock"))
        .collect();
    assert!(left.is_empty(), "scratch directories left: {left:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn schemathesis_finds_no_server_errors_or_answers_off_the_schema() {
    let schemathesis = std::env::var("WASQ_TEST_SCHEMATHESIS").unwrap_or_else(|_| {
        panic!("WASQ_TEST_SCHEMATHESIS is not set: run the tests with `cargo xtask test`, which installs schemathesis")
    });
    let service = Service::start(&["--workers", "2", "--max-upload", "4MiB"], &[]);
    let key = service.tenant("alpha", &["--quota", "max_queued=50"]);
    assert_eq!(service.upload(&key, "basics", "basics").await.0, 201);
    service
        .enqueue(
            &key,
            json!({"module": "basics", "task": "fib", "args": [5]}),
        )
        .await;
    let url = service.url.clone();
    let output = tokio::task::spawn_blocking(move || {
        std::process::Command::new(&schemathesis)
            .args([
                "run",
                &format!("{url}/openapi.json"),
                "--checks",
                "not_a_server_error,response_schema_conformance,content_type_conformance",
                "--header",
                &format!("Authorization: Bearer {key}"),
                "--max-examples",
                "25",
                "--phases",
                "examples,coverage,fuzzing",
                "--no-color",
            ])
            .env("SCHEMATHESIS_HOOKS", "")
            .output()
            .expect("schemathesis runs")
    })
    .await
    .expect("the run");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "schemathesis failed:\n{stdout}\n{stderr}"
    );
    assert!(
        stdout.contains("passed") || stdout.contains("PASSED"),
        "{stdout}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_tenants_schedule_fires_for_it_alone() {
    let service = Service::start(&["--workers", "2"], &[]);
    let a = service.tenant("alpha", &[]);
    let b = service.tenant("beta", &[]);
    assert_eq!(service.upload(&a, "basics", "basics").await.0, 201);
    let (status, body) = service
        .post(
            &a,
            "/v1/schedules",
            json!({"name": "tick", "module": "basics", "task": "add", "args": [2, 3], "kind": "cron", "cron": "61 * * * *"}),
        )
        .await;
    assert_eq!(status, 400, "{body}");
    let (status, body) = service
        .post(
            &a,
            "/v1/schedules",
            json!({"name": "tick", "module": "basics", "task": "add", "args": [2, 3], "kind": "once"}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["name"], "tick");
    let (status, _) = service
        .post(
            &b,
            "/v1/schedules",
            json!({"name": "tick", "module": "basics", "task": "add", "kind": "once"}),
        )
        .await;
    assert_eq!(status, 404, "B has no module basics");

    let mut last_task = Value::Null;
    for _ in 0..300 {
        let (status, schedule) = service.get(&a, "/v1/schedules/tick").await;
        assert_eq!(status, 200, "{schedule}");
        last_task = schedule["last_task"].clone();
        if !last_task.is_null() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let task = last_task.as_str().expect("the schedule fired");
    let result = service.result(&a, task).await;
    assert_eq!(result["value"], 5, "{result}");

    // Tenant B sees neither the schedule nor its task.
    for path in ["/v1/schedules/tick".to_owned(), format!("/v1/tasks/{task}")] {
        let (status, _) = service.get(&b, &path).await;
        assert_eq!(status, 404, "{path}");
    }
    let (_, listed) = service.get(&b, "/v1/schedules").await;
    assert_eq!(listed, json!([]));
    let (status, _) = service.delete(&b, "/v1/schedules/tick").await;
    assert_eq!(status, 404);
    let (status, _) = service.delete(&a, "/v1/schedules/tick").await;
    assert_eq!(status, 204);
    let (status, _) = service.get(&a, "/v1/schedules/tick").await;
    assert_eq!(status, 404);
}

/// Parses Prometheus text with the Prometheus client's own parser (from
/// PyPI, in the venv `cargo xtask test` makes): `name{labels}` → value.
fn parse_metrics(text: &str) -> std::collections::BTreeMap<String, f64> {
    let schemathesis = std::env::var("WASQ_TEST_SCHEMATHESIS").unwrap_or_else(|_| {
        panic!("WASQ_TEST_SCHEMATHESIS is not set: run the tests with `cargo xtask test`")
    });
    let python = Path::new(&schemathesis).with_file_name("python");
    let script = r#"
import json, sys
from prometheus_client.parser import text_string_to_metric_families
out = {}
for family in text_string_to_metric_families(sys.stdin.read()):
    for s in family.samples:
        labels = ",".join(f'{k}="{v}"' for k, v in sorted(s.labels.items()))
        out[f"{s.name}{{{labels}}}"] = s.value
print(json.dumps(out))
"#;
    let mut child = std::process::Command::new(python)
        .args(["-c", script])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("python runs");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(text.as_bytes())
        .expect("the text");
    let output = child.wait_with_output().expect("the parse");
    assert!(
        output.status.success(),
        "the Prometheus parser refused /metrics: {}\n{text}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("the parsed samples")
}

#[tokio::test(flavor = "multi_thread")]
async fn metrics_parse_as_prometheus_text_and_count_the_tasks_run() {
    // The API alone: what is enqueued shows as queue depth.
    let service = Service::start(&[], &[]);
    let key = service.tenant("alpha", &[]);
    let admin = service.key(&["--admin"]);
    assert_eq!(service.upload(&key, "basics", "basics").await.0, 201);
    let mut ids = Vec::new();
    for (task, args) in [
        ("fib", json!([10])),
        ("fib", json!([12])),
        ("fail", json!([])),
    ] {
        ids.push(
            service
                .enqueue(
                    &key,
                    json!({"module": "basics", "task": task, "args": args}),
                )
                .await,
        );
    }
    let (status, _) = service.get(&key, "/metrics").await;
    assert_eq!(
        status, 403,
        "a tenant's key may not read every tenant's metrics"
    );
    let response = service
        .http
        .get(format!("{}/metrics", service.url))
        .bearer_auth(&admin)
        .send()
        .await
        .expect("a response");
    assert_eq!(response.status().as_u16(), 200);
    let text = response.text().await.expect("the text");
    let served = parse_metrics(&text);
    assert_eq!(
        served[r#"wasq_queue_depth{queue="default__t_alpha"}"#], 3.0,
        "{text}"
    );
    assert_eq!(
        served[r#"wasq_tasks_enqueued_total{tenant="alpha"}"#], 3.0,
        "{text}"
    );

    // A cluster with its own /metrics runs them.
    let port = free_port();
    let address = format!("127.0.0.1:{port}");
    let _cluster = ClusterProcess::start(
        service.path(),
        &["--workers", "2", "--metrics", &address],
        &[],
    );
    for id in &ids {
        service.result(&key, id).await;
    }
    let text = eventually(Duration::from_secs(30), "the cluster's metrics", || {
        let mut stream = TcpStream::connect(&address).ok()?;
        stream
            .write_all(
                format!("GET /metrics HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n")
                    .as_bytes(),
            )
            .ok()?;
        let mut answer = String::new();
        stream.read_to_string(&mut answer).ok()?;
        let body = answer.split_once("\r\n\r\n")?.1.to_owned();
        body.contains("wasq_task_duration_seconds_count")
            .then_some(body)
    });
    let ran = parse_metrics(&text);
    let sample = |name: &str| {
        ran.get(name)
            .copied()
            .unwrap_or_else(|| panic!("no sample {name} in\n{text}"))
    };
    assert_eq!(sample(r#"wasq_tasks_started_total{tenant="alpha"}"#), 3.0);
    assert_eq!(
        sample(r#"wasq_tasks_finished_total{outcome="success",tenant="alpha"}"#),
        2.0
    );
    assert_eq!(
        sample(r#"wasq_tasks_finished_total{outcome="guest_error",tenant="alpha"}"#),
        1.0
    );
    assert_eq!(
        sample(r#"wasq_task_duration_seconds_count{tenant="alpha"}"#),
        3.0
    );
    assert_eq!(
        sample(r#"wasq_task_duration_seconds_bucket{le="+Inf",tenant="alpha"}"#),
        3.0
    );
    assert_eq!(sample(r#"wasq_task_fuel_count{tenant="alpha"}"#), 3.0);
    // One lookup per task; tasks arriving together before the first
    // compile ended are all misses, so either counter may be absent.
    let counted = |name: &str| ran.get(name).copied().unwrap_or(0.0);
    assert_eq!(
        counted("wasq_compile_cache_hits_total{}") + counted("wasq_compile_cache_misses_total{}"),
        3.0
    );
    assert_eq!(sample("wasq_pool_slots_in_use{}"), 0.0);
}
