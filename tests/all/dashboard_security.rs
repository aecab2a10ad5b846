//! The dashboard's login and the tenants' grants under attack, black box
//! through plain HTTP (no browser, redirects not followed): hostile `next`
//! values never send the browser off-site; failed logins are limited per
//! client and per key, and the limit does not shut out other clients or
//! keys; one key's logins end only that key's oldest sessions; the cookie
//! is `Secure` when asked or when a proxy says HTTPS; an admin's
//! `--deny-grant` takes the grant from the tenant's modules and their next
//! tasks.
//!
//! Other clients are other loopback addresses (`127.0.0.2`…): Linux routes
//! all of `127.0.0.0/8` to the loopback device.

use std::net::IpAddr;

use reqwest::StatusCode;
use reqwest::header::{LOCATION, RETRY_AFTER, SET_COOKIE};
use serde_json::{Value, json};

use crate::service::Service;

/// A client that does not follow redirects, from loopback address
/// `127.0.0.last`.
fn client_from(last: u8) -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .local_address(IpAddr::from([127, 0, 0, last]))
        .build()
        .expect("a client")
}

/// What a login answered: status, `Location`, `Set-Cookie`, `Retry-After`
/// and body.
struct Login {
    status: StatusCode,
    location: Option<String>,
    cookie: Option<String>,
    retry_after: Option<String>,
    body: String,
}

async fn log_in(client: &reqwest::Client, service: &Service, key: &str, next: &str) -> Login {
    log_in_with(client, service, key, next, &[]).await
}

async fn log_in_with(
    client: &reqwest::Client,
    service: &Service,
    key: &str,
    next: &str,
    headers: &[(&str, &str)],
) -> Login {
    let mut request = client
        .post(format!("{}/login", service.url))
        .form(&[("key", key), ("next", next)]);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = request.send().await.expect("a response");
    let header = |name| {
        response
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let (location, cookie, retry_after) =
        (header(LOCATION), header(SET_COOKIE), header(RETRY_AFTER));
    Login {
        status: response.status(),
        location,
        cookie,
        retry_after,
        body: response.text().await.unwrap_or_default(),
    }
}

/// `wasq_session=…` of a `Set-Cookie`.
fn session_of(login: &Login) -> String {
    let cookie = login.cookie.as_deref().expect("a session cookie");
    cookie.split(';').next().expect("a pair").to_owned()
}

/// Whether the session cookie still opens the overview (not sent to
/// `/login`).
async fn session_works(client: &reqwest::Client, service: &Service, cookie: &str) -> bool {
    let response = client
        .get(format!("{}/", service.url))
        .header("cookie", cookie)
        .send()
        .await
        .expect("a response");
    match response.status() {
        StatusCode::OK => true,
        StatusCode::SEE_OTHER | StatusCode::FOUND | StatusCode::TEMPORARY_REDIRECT => false,
        other => panic!("the overview answered {other}"),
    }
}

/// `key` with its secret replaced: the right shape, the wrong key.
fn wrong_secret(key: &str) -> String {
    let (id, _) = key.rsplit_once('_').expect("a key");
    format!("{id}_{}", "0".repeat(64))
}

const HOSTILE_NEXT: [&str; 12] = [
    "//evil.com",
    "/\\evil.com",
    "/\\/evil.com",
    "/\t/evil.com",
    "/\t\t//evil.com",
    "/\n/evil.com",
    "/\r\n/evil.com",
    "/ /evil.com",
    "https://evil.com/",
    "evil.com",
    "\\\\evil.com",
    "/%09/x\\y",
];

#[tokio::test(flavor = "multi_thread")]
async fn hostile_next_values_never_produce_an_off_site_location() {
    let service = Service::start(&[], &[]);
    let key = service.tenant("alpha", &[]);
    let client = client_from(1);
    for next in HOSTILE_NEXT {
        // The login page carries only a local path on to its form.
        let page = client
            .get(format!("{}/login", service.url))
            .query(&[("next", next)])
            .send()
            .await
            .expect("a response");
        assert_eq!(page.status(), StatusCode::OK, "{next:?}");
        let html = page.text().await.expect("a body");
        assert!(
            html.contains(r#"name="next" value="/""#),
            "{next:?}: {html}"
        );
        assert!(!html.contains("evil.com"), "{next:?}: {html}");

        // Logging in with it goes home.
        let login = log_in(&client, &service, &key, next).await;
        assert_eq!(
            login.status,
            StatusCode::SEE_OTHER,
            "{next:?}: {}",
            login.body
        );
        assert_eq!(login.location.as_deref(), Some("/"), "{next:?}");
    }
    // A local path is kept.
    let login = log_in(&client, &service, &key, "/tasks?state=failed").await;
    assert_eq!(login.location.as_deref(), Some("/tasks?state=failed"));
}

#[tokio::test(flavor = "multi_thread")]
async fn failed_logins_from_one_client_get_429_and_other_clients_still_log_in() {
    let service = Service::start(&[], &[]);
    let key = service.tenant("alpha", &[]);
    let attacker = client_from(1);
    // The limit is 10 failures at once and one more every 6 s: the first
    // refusal comes after 10 failures and long before 40.
    let mut failures = 0;
    let mut refused = None;
    for _ in 0..40 {
        let login = log_in(&attacker, &service, "wasq_guess", "/").await;
        match login.status {
            StatusCode::UNAUTHORIZED => failures += 1,
            StatusCode::TOO_MANY_REQUESTS => {
                refused = Some(login);
                break;
            }
            other => panic!("a login answered {other}: {}", login.body),
        }
    }
    let refused = refused.expect("a 429 within 40 failed logins");
    assert!(
        (10..=20).contains(&failures),
        "refused after {failures} failures"
    );
    let retry: u64 = refused
        .retry_after
        .as_deref()
        .and_then(|s| s.parse().ok())
        .expect("a Retry-After in seconds");
    assert!((1..=6).contains(&retry), "Retry-After: {retry}");
    assert!(
        refused.body.contains(&format!("try again in {retry} s")),
        "{}",
        refused.body
    );
    assert!(refused.cookie.is_none());

    // That client is held back even with the right key (it cannot tell
    // a guess from a key) …
    let held = log_in(&attacker, &service, &key, "/").await;
    assert_eq!(held.status, StatusCode::TOO_MANY_REQUESTS);
    // … but another client logs in with it.
    let other = log_in(&client_from(2), &service, &key, "/").await;
    assert_eq!(other.status, StatusCode::SEE_OTHER, "{}", other.body);
    assert!(session_works(&client_from(2), &service, &session_of(&other)).await);
}

#[tokio::test(flavor = "multi_thread")]
async fn guesses_at_one_key_from_many_clients_get_429_and_other_keys_still_log_in() {
    let service = Service::start(&[], &[]);
    let a = service.tenant("alpha", &[]);
    let b = service.tenant("beta", &[]);
    let guess = wrong_secret(&a);
    // Five guesses per address, under each client's limit: the key's limit
    // (20 at once, one more every 3 s) is what refuses them.
    let mut failures = 0;
    let mut refused = false;
    'clients: for last in 10..30 {
        let client = client_from(last);
        for _ in 0..5 {
            let login = log_in(&client, &service, &guess, "/").await;
            match login.status {
                StatusCode::UNAUTHORIZED => failures += 1,
                StatusCode::TOO_MANY_REQUESTS => {
                    assert!(login.retry_after.is_some());
                    refused = true;
                    break 'clients;
                }
                other => panic!("a login answered {other}: {}", login.body),
            }
        }
    }
    assert!(refused, "no 429 after {failures} guesses at one key");
    assert!(
        (20..=40).contains(&failures),
        "refused after {failures} guesses"
    );
    // Another key, from a fresh address, is not held back.
    let login = log_in(&client_from(100), &service, &b, "/").await;
    assert_eq!(login.status, StatusCode::SEE_OTHER, "{}", login.body);
}

#[tokio::test(flavor = "multi_thread")]
async fn many_logins_of_one_key_end_only_its_own_oldest_sessions() {
    const MOST_PER_KEY: usize = 16;
    let service = Service::start(&[], &[]);
    let a = service.tenant("alpha", &[]);
    let b = service.tenant("beta", &[]);
    let client = client_from(1);
    let login = log_in(&client, &service, &b, "/").await;
    assert_eq!(login.status, StatusCode::SEE_OTHER, "{}", login.body);
    let b_session = session_of(&login);

    let mut a_sessions = Vec::new();
    for _ in 0..MOST_PER_KEY + 4 {
        let login = log_in(&client, &service, &a, "/").await;
        assert_eq!(login.status, StatusCode::SEE_OTHER, "{}", login.body);
        a_sessions.push(session_of(&login));
    }
    let mut live = Vec::new();
    for cookie in &a_sessions {
        live.push(session_works(&client, &service, cookie).await);
    }
    assert_eq!(
        live.iter().filter(|l| **l).count(),
        MOST_PER_KEY,
        "{live:?}"
    );
    assert!(
        live[..4].iter().all(|l| !l) && live[4..].iter().all(|l| *l),
        "the oldest end: {live:?}"
    );
    assert!(
        session_works(&client, &service, &b_session).await,
        "the other key's session survives"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_session_cookie_is_secure_when_asked_or_behind_https() {
    let plain = Service::start(&[], &[]);
    let key = plain.tenant("alpha", &[]);
    let client = client_from(1);
    let login = log_in(&client, &plain, &key, "/").await;
    let cookie = login.cookie.expect("a cookie");
    assert!(cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"));
    assert!(!cookie.contains("Secure"), "{cookie}");
    let login = log_in_with(
        &client,
        &plain,
        &key,
        "/",
        &[("x-forwarded-proto", "https")],
    )
    .await;
    assert!(login.cookie.expect("a cookie").contains("; Secure"));
    let login = log_in_with(
        &client,
        &plain,
        &key,
        "/",
        &[("forwarded", "for=192.0.2.1;proto=https")],
    )
    .await;
    assert!(login.cookie.expect("a cookie").contains("; Secure"));

    let secure = Service::start(&["--secure-cookies"], &[]);
    let key = secure.tenant("alpha", &[]);
    let login = log_in(&client, &secure, &key, "/").await;
    assert!(login.cookie.expect("a cookie").contains("; Secure"));

    let by_env = Service::start(&[], &[("WASQ_SECURE_COOKIES", "true")]);
    let key = by_env.tenant("alpha", &[]);
    let login = log_in(&client, &by_env, &key, "/").await;
    assert!(login.cookie.expect("a cookie").contains("; Secure"));
}

#[tokio::test(flavor = "multi_thread")]
async fn denying_a_grant_revokes_it_from_the_tenants_modules_and_their_tasks() {
    let scratch_root = tempfile::tempdir().expect("a temp dir");
    let root = scratch_root.path().to_str().expect("a path").to_owned();
    let service = Service::start(&["--workers", "2"], &[("WASQ_SCRATCH_DIR", &root)]);
    let key = service.tenant(
        "alpha",
        &["--allow-grant", "scratch", "--allow-grant", "env"],
    );
    assert_eq!(service.upload(&key, "granted", "escape").await.0, 201);
    let (status, body) = service
        .put(
            &key,
            "/v1/modules/granted/grants",
            json!({"scratch": true, "env": {"GREETING": "hello"}}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let run = |task: &'static str, args: Value| {
        let service = &service;
        let key = key.clone();
        async move {
            let id = service
                .enqueue(
                    &key,
                    json!({"module": "granted", "task": task, "args": args}),
                )
                .await;
            service.result(&key, &id).await
        }
    };
    let result = run("env", json!([])).await;
    assert_eq!(result["value"], json!({"GREETING": "hello"}), "{result}");
    let result = run("write_file", json!(["/scratch/a.txt"])).await;
    assert_eq!(result["outcome"], "success", "{result}");

    // Allowing and denying one grant at once is a usage error.
    let both = service.wasq(&[
        "tenant",
        "set",
        "alpha",
        "--allow-grant",
        "env",
        "--deny-grant",
        "env",
    ]);
    assert_ne!(both.code, 0, "{both:?}");

    let denied = service.wasq(&[
        "tenant",
        "set",
        "alpha",
        "--deny-grant",
        "scratch",
        "--deny-grant",
        "env",
    ]);
    assert_eq!(denied.code, 0, "{denied:?}");
    assert!(denied.stdout.contains("granted"), "{denied:?}");

    // The module's record no longer has them …
    let (status, module) = service.get(&key, "/v1/modules/granted").await;
    assert_eq!(status, 200, "{module}");
    assert_eq!(module["grants"], json!({"env": {}, "scratch": false}));
    // … the tenant cannot give them back …
    let (status, body) = service
        .put(&key, "/v1/modules/granted/grants", json!({"scratch": true}))
        .await;
    assert_eq!(status, 403, "{body}");
    // … and its tasks stop seeing them (a cluster rereads grants within
    // seconds; each try is a whole task, for at most a minute).
    let mut gone = false;
    let tried = std::time::Instant::now();
    while tried.elapsed() < std::time::Duration::from_secs(60) {
        let result = run("env", json!([])).await;
        if result["outcome"] == "guest_error"
            && result["log"]
                .as_str()
                .is_some_and(|l| l.contains("no host environment visible"))
        {
            gone = true;
            break;
        }
        assert_eq!(result["value"], json!({"GREETING": "hello"}), "{result}");
    }
    assert!(gone, "the environment is still granted");
    let result = run("write_file", json!(["/scratch/a.txt"])).await;
    assert_eq!(result["outcome"], "guest_error", "{result}");
    let audit = service.wasq(&["audit", "--tenant", "alpha", "--json"]);
    assert!(
        audit.stdout.contains("module.grants") && audit.stdout.contains("revoked"),
        "{audit:?}"
    );
}
