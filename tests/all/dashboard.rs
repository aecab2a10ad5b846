//! The web dashboard in headless Chromium against a live `wasq serve
//! --workers 2` on the embedded default: a tenant logs in with its key,
//! sees the tasks it enqueued, resubmits a failed task and sees it
//! succeed, creates a schedule and sees it fire, edits, pauses and deletes
//! it, uploads a module, purges a queue; another tenant sees none of it;
//! an admin sees everyone's. Each page is saved as a PNG under
//! `target/dashboard-screenshots/`.

use std::path::PathBuf;
use std::time::Duration;

use serde_json::json;
use wasq_tests::webdriver::Browser;

use crate::service::Service;

fn screenshot(name: &str) -> PathBuf {
    wasq_tests::root()
        .join("target/dashboard-screenshots")
        .join(format!("{name}.png"))
}

/// Logs `browser` in with `key`, starting from `path`.
async fn log_in(browser: &Browser, service: &Service, key: &str, path: &str) {
    browser.goto(&format!("{}{path}", service.url)).await;
    assert!(
        browser.url().await.contains("/login"),
        "not sent to the login page"
    );
    browser.fill("#key", key).await;
    browser
        .click_to_load("body.login button[type=submit]")
        .await;
    browser.find("header.top").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_dashboard_shows_tasks_resubmits_failures_and_runs_schedules() {
    let service = Service::start(&["--workers", "2"], &[]);
    let tenant = service.tenant("acme", &["--quota", "max_fuel=200000"]);
    let other = service.tenant("globex", &[]);
    let admin = service.key(&["--admin"]);
    let (status, module) = service.upload(&tenant, "basics", "basics").await;
    assert_eq!(status, 201, "{module}");
    let mut enqueued = Vec::new();
    for n in 1..=8 {
        let body = json!({"module": "basics", "task": "fib", "args": [n]});
        enqueued.push(service.enqueue(&tenant, body).await);
    }
    // fib(30) needs more fuel than the tenant's quota lets a task burn.
    let failing = service
        .enqueue(
            &tenant,
            json!({"module": "basics", "task": "fib", "args": [30]}),
        )
        .await;
    enqueued.push(failing.clone());
    let failed = service.result(&tenant, &failing).await;
    assert_eq!(failed["outcome"], "fuel_exhausted", "{failed}");

    let browser = Browser::start(1280, 1000).await;
    let base = service.url.clone();
    let url = |path: &str| format!("{base}{path}");

    // Wrong keys are refused on the login page.
    browser.goto(&url("/login")).await;
    browser.fill("#key", "wasq_000000000000_nope").await;
    browser
        .click_to_load("body.login button[type=submit]")
        .await;
    assert!(
        browser
            .text(".problem")
            .await
            .contains("unknown or revoked")
    );

    log_in(&browser, &service, &tenant, "/tasks").await;
    assert!(browser.url().await.ends_with("/tasks"), "login went back");
    assert!(browser.text("header.top").await.contains("tenant acme"));

    // The tasks it enqueued, each with its outcome.
    let mut table = String::new();
    for id in &enqueued {
        table = browser
            .wait_for_text(&url("/tasks"), "#results", id, Duration::from_secs(30))
            .await;
    }
    assert!(table.contains("fuel_exhausted"), "{table}");
    assert_eq!(table.matches("success").count(), 8, "{table}");
    browser.screenshot(&screenshot("tasks")).await;
    // Search by outcome.
    browser.goto(&url("/tasks?outcome=fuel_exhausted")).await;
    let found = browser.text("#results").await;
    assert!(
        found.contains(&failing) && !found.contains(&enqueued[0]),
        "{found}"
    );

    // One task: its arguments, fuel and memory.
    browser.goto(&url(&format!("/tasks/{}", enqueued[7]))).await;
    let fields = browser.text("#task").await;
    assert!(
        fields.contains("success") && fields.contains("Memory peak"),
        "{fields}"
    );
    assert!(browser.text("#args").await.contains('8'));
    assert_eq!(browser.text("#result").await.trim(), "21");
    browser.screenshot(&screenshot("task")).await;

    // The failure, resubmitted once the quota allows it, succeeds.
    browser.goto(&url("/failures")).await;
    assert!(browser.text("#results").await.contains(&failing));
    browser.screenshot(&screenshot("failures")).await;
    let raised = service.wasq(&["tenant", "set", "acme", "--quota", "max_fuel=1000000000"]);
    assert_eq!(raised.code, 0, "{raised:?}");
    // The cluster reads tenants' quotas every 250 ms.
    tokio::time::sleep(Duration::from_secs(1)).await;
    browser
        .click_to_load(&format!(
            "form[action=\"/tasks/{failing}/resubmit\"] button"
        ))
        .await;
    let resubmitted = browser.url().await;
    let new_id = resubmitted
        .rsplit('/')
        .next()
        .expect("a task id")
        .to_owned();
    assert_ne!(new_id, failing, "resubmit makes a new task");
    let fields = browser
        .wait_for_text(&resubmitted, "#task", "success", Duration::from_secs(30))
        .await;
    assert!(fields.contains(&new_id), "{fields}");
    assert_eq!(browser.text("#result").await.trim(), "832040");
    browser.goto(&url("/failures")).await;
    assert!(
        !browser.text("main").await.contains(&failing),
        "the resubmitted failure is gone"
    );

    // A schedule, made in the form, fires; then edit, pause, delete.
    browser.goto(&url("/schedules")).await;
    browser
        .fill("#schedule-form input[name=name]", "tick")
        .await;
    browser
        .fill("#schedule-form input[name=module]", "basics")
        .await;
    browser.fill("#schedule-form input[name=task]", "add").await;
    browser
        .fill("#schedule-form textarea[name=args]", "[2, 3]")
        .await;
    browser
        .click_to_load("#schedule-form button[type=submit]")
        .await;
    let row = "tr[data-schedule=\"tick\"]";
    assert!(
        browser
            .text(&format!("{row} td.every"))
            .await
            .contains("every minute")
    );
    let last_run = format!("{row} td.last-run a");
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while browser.find_all(&last_run).await.is_empty() {
        assert!(
            std::time::Instant::now() < deadline,
            "the schedule never fired"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
        browser.goto(&url("/schedules")).await;
    }
    browser.click_to_load(&last_run).await;
    let fired = browser.url().await;
    browser
        .wait_for_text(&fired, "#task", "success", Duration::from_secs(30))
        .await;
    assert_eq!(browser.text("#result").await.trim(), "5");
    browser.goto(&url("/schedules")).await;
    browser.screenshot(&screenshot("schedules")).await;
    browser
        .click_to_load(&format!("{row} a[href^=\"/schedules/edit\"]"))
        .await;
    browser
        .fill("#schedule-form input[name=minutes]", "5")
        .await;
    browser
        .click_to_load("#schedule-form button[type=submit]")
        .await;
    assert_eq!(
        browser.text(&format!("{row} td.every")).await,
        "every 5 minutes"
    );
    let state = format!("{row} td.state");
    browser
        .click_to_load(&format!("{row} form:has(input[value=pause]) button"))
        .await;
    assert_eq!(browser.text(&state).await, "paused");
    browser
        .click_to_load(&format!("{row} form:has(input[value=resume]) button"))
        .await;
    assert_eq!(browser.text(&state).await, "active");
    browser.script("window.wasqOldPage = true").await;
    browser
        .click_on(&format!("{row} form:has(input[value=delete]) button"))
        .await;
    browser.accept_dialog().await;
    browser.wait_for_new_page("delete").await;
    let (_, schedules) = service.get(&tenant, "/v1/schedules").await;
    assert_eq!(schedules, json!([]), "the schedule is deleted");

    // A module uploaded through the page.
    browser.goto(&url("/modules")).await;
    browser
        .fill(
            "#upload input[type=file]",
            &wasq_tests::wasm("escape").display().to_string(),
        )
        .await;
    browser.fill("#upload input[name=name]", "escape2").await;
    browser.click_on("#upload button[type=submit]").await;
    let modules = browser
        .wait_for_text(
            &url("/modules"),
            "#modules",
            "escape2",
            Duration::from_secs(10),
        )
        .await;
    assert!(modules.contains("sha256:"), "{modules}");
    browser.screenshot(&screenshot("modules")).await;

    // A queue no worker takes from, purged after typing its name.
    for _ in 0..3 {
        let body = json!({"module": "basics", "task": "noop", "queue": "bulk"});
        service.enqueue(&tenant, body).await;
    }
    let waiting = "tr[data-queue=bulk] td.waiting";
    browser.goto(&url("/queues")).await;
    assert_eq!(browser.text(waiting).await, "3");
    browser.screenshot(&screenshot("queues")).await;
    browser.goto(&url("/queues/purge?queue=bulk")).await;
    browser.fill("#purge input[name=confirm]", "bulk").await;
    browser.click_to_load("#purge button[type=submit]").await;
    // An emptied queue may be gone from the broker's list altogether.
    let left = browser.text(waiting).await;
    assert!(left.is_empty() || left == "0", "{left} tasks left");

    // The session cookie is out of the page's reach; a form without the
    // session's token, or sent from another site, is refused and changes
    // nothing.
    assert_eq!(browser.script("return document.cookie").await, "");
    let session = format!("wasq_session={}", browser.cookie("wasq_session").await);
    let csrf = browser
        .script("return document.getElementById('main').dataset.csrf")
        .await
        .as_str()
        .unwrap_or_default()
        .to_owned();
    for _ in 0..2 {
        let body = json!({"module": "basics", "task": "noop", "queue": "bulk"});
        service.enqueue(&tenant, body).await;
    }
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("a client");
    let purge = |csrf: &str, origin: &str| {
        http.post(url("/queues/purge"))
            .header("cookie", &session)
            .header("origin", origin)
            .form(&[("queue", "bulk"), ("confirm", "bulk"), ("csrf", csrf)])
            .send()
    };
    let forged = purge("x", &base).await.expect("an answer");
    assert_eq!(forged.status(), 403, "a wrong token");
    let cross_site = purge(&csrf, "http://evil.example")
        .await
        .expect("an answer");
    assert_eq!(cross_site.status(), 403, "another site");
    browser.goto(&url("/queues")).await;
    assert_eq!(browser.text(waiting).await, "2", "nothing was purged");
    let genuine = purge(&csrf, &base).await.expect("an answer");
    assert_eq!(genuine.status(), 303, "the page's own form goes through");

    // Another tenant sees none of it.
    browser.click_to_load("form.logout button").await;
    log_in(&browser, &service, &other, "/").await;
    browser.goto(&url("/tasks")).await;
    assert!(browser.text("main").await.contains("No task matches"));
    browser.goto(&url(&format!("/tasks/{new_id}"))).await;
    assert!(browser.text("main").await.contains("404"));
    browser.goto(&url("/")).await;

    // An admin sees every tenant's tasks and the overview of the cluster.
    browser.click_to_load("form.logout button").await;
    log_in(&browser, &service, &admin, "/").await;
    assert!(
        browser
            .text("header.top")
            .await
            .contains("admin: all tenants")
    );
    assert_eq!(browser.text("[data-tile=Workers] .value").await, "2");
    assert_eq!(browser.text("[data-tile=Clusters] .value").await, "1");
    browser.goto(&url("/tasks")).await;
    assert!(browser.text("#results").await.contains(&new_id));
    browser.goto(&url("/")).await;
    browser.screenshot(&screenshot("overview")).await;
    browser.quit().await;
}
