//! The frame every dashboard page shares (head, navigation, who is
//! logged in), the login and error pages, how numbers, sizes, times and
//! outcomes are shown, and the stylesheet and script, which are compiled
//! into the binary.

use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use maud::{DOCTYPE, Markup, PreEscaped, html};

use super::{PageError, Viewer};

const STYLESHEET: &str = include_str!("assets/dashboard.css");
const SCRIPT: &str = include_str!("assets/dashboard.js");

/// The pages in the navigation: path and title.
const NAVIGATION: [(&str, &str); 6] = [
    ("/", "Overview"),
    ("/tasks", "Tasks"),
    ("/failures", "Failures"),
    ("/schedules", "Schedules"),
    ("/modules", "Modules"),
    ("/queues", "Queues"),
];

/// How often a page that refreshes itself does, ms.
pub(crate) const REFRESH_MS: u32 = 2000;

fn head(title: &str) -> Markup {
    html! {
        head {
            meta charset="utf-8";
            meta name="viewport" content="width=device-width, initial-scale=1";
            title { (title) " · wasq" }
            link rel="stylesheet" href="/assets/dashboard.css";
            script src="/assets/dashboard.js" defer {}
        }
    }
}

/// A page: `active` is the navigation entry it belongs to; with
/// `refresh`, its content reloads itself every [`REFRESH_MS`].
pub(crate) fn frame(
    viewer: &Viewer,
    active: &str,
    title: &str,
    refresh: bool,
    content: Markup,
) -> Response {
    let markup = html! {
        (DOCTYPE)
        html lang="en" {
            (head(title))
            body {
                header.top {
                    a.brand href="/" { "wasq" }
                    nav {
                        @for (path, name) in NAVIGATION {
                            a href=(path) class=[(path == active).then_some("active")] { (name) }
                        }
                    }
                    span.who {
                        @match viewer.tenant() {
                            Some(tenant) => { "tenant " b { (tenant) } },
                            None => { "admin: all tenants" },
                        }
                    }
                    form.logout method="post" action="/logout" {
                        (csrf_field(viewer))
                        button.link type="submit" { "Log out" }
                    }
                }
                main #main data-refresh=[refresh.then_some(REFRESH_MS)] data-csrf=(viewer.csrf()) {
                    h1 { (title) }
                    (content)
                }
            }
        }
    };
    html_response(markup)
}

/// The hidden field with the session's form token.
pub(crate) fn csrf_field(viewer: &Viewer) -> Markup {
    html! { input type="hidden" name="csrf" value=(viewer.csrf()); }
}

/// A button that posts to `action` (with the form token); with `confirm`,
/// the browser asks first.
pub(crate) fn post_button(
    viewer: &Viewer,
    action: &str,
    label: &str,
    class: &str,
    confirm: Option<&str>,
) -> Markup {
    html! {
        form.inline method="post" action=(action) data-confirm=[confirm] {
            (csrf_field(viewer))
            button type="submit" class=(class) { (label) }
        }
    }
}

fn html_response(markup: Markup) -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-store"),
            (
                header::CONTENT_SECURITY_POLICY,
                "default-src 'self'; style-src 'self'; script-src 'self'; img-src 'self' data:; frame-ancestors 'none'",
            ),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        markup.into_string(),
    )
        .into_response()
}

/// The login page: paste an API key.
pub(crate) fn login_page(next: &str, problem: Option<&str>) -> Response {
    html_response(html! {
        (DOCTYPE)
        html lang="en" {
            (head("Log in"))
            body.login {
                main {
                    h1 { "wasq" }
                    p { "Log in with an API key. An admin key sees every tenant; a tenant's key sees its own tasks, modules and schedules." }
                    @if let Some(problem) = problem { p.problem { (problem) } }
                    form method="post" action="/login" {
                        input type="hidden" name="next" value=(next);
                        label for="key" { "API key" }
                        input #key type="password" name="key" autocomplete="off" autofocus required placeholder="wasq_…";
                        button type="submit" { "Log in" }
                    }
                    p.hint { "No key yet? On the server: " code { "wasq key create --admin" } }
                }
            }
        }
    })
}

/// A page that says what went wrong.
pub(crate) fn error_page(status: StatusCode, message: &str) -> Response {
    html_response(html! {
        (DOCTYPE)
        html lang="en" {
            (head("Error"))
            body.login {
                main {
                    h1 { (status.as_u16()) " " (status.canonical_reason().unwrap_or("")) }
                    p.problem { (message) }
                    p { a href="/" { "Back to the overview" } }
                }
            }
        }
    })
}

pub(crate) async fn stylesheet() -> Response {
    asset("text/css; charset=utf-8", STYLESHEET)
}

pub(crate) async fn script() -> Response {
    asset("text/javascript; charset=utf-8", SCRIPT)
}

fn asset(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "public, max-age=300"),
        ],
        body,
    )
        .into_response()
}

// ---- how things are shown ----

/// `1,234,567`.
pub(crate) fn count(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// A time as `2026-11-28 07:45:12` (UTC).
pub(crate) fn time(ms: i64) -> String {
    jiff::Timestamp::from_millisecond(ms)
        .map(|t| t.strftime("%Y-%m-%d %H:%M:%S").to_string())
        .unwrap_or_else(|_| ms.to_string())
}

/// A length of time given in µs: `850 µs`, `12.3 ms`, `1.20 s`, `3m 05s`.
pub(crate) fn micros(us: u64) -> String {
    match us {
        0..1_000 => format!("{us} µs"),
        1_000..1_000_000 => format!("{:.1} ms", us as f64 / 1e3),
        1_000_000..60_000_000 => format!("{:.2} s", us as f64 / 1e6),
        _ => {
            let secs = us / 1_000_000;
            format!("{}m {:02}s", secs / 60, secs % 60)
        }
    }
}

/// A size: `512 B`, `64.0 KiB`, `1.2 MiB`.
pub(crate) fn bytes(n: u64) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    if n < 1024 {
        return format!("{n} B");
    }
    let mut value = n as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

/// An outcome as a coloured badge.
pub(crate) fn outcome(outcome: &str) -> Markup {
    let class = match outcome {
        "success" => "badge ok",
        "cancelled" => "badge muted",
        _ => "badge bad",
    };
    html! { span class=(class) { (outcome) } }
}

/// A JSON text shown indented (as it is when it is not JSON).
pub(crate) fn pretty_json(text: &str) -> String {
    serde_json::from_str::<serde_json::Value>(text)
        .ok()
        .and_then(|v| serde_json::to_string_pretty(&v).ok())
        .unwrap_or_else(|| text.to_owned())
}

/// A link to a task.
pub(crate) fn task_link(id: &str) -> Markup {
    html! { a.mono href={ "/tasks/" (id) } { (id) } }
}

/// Marks text as already HTML (the chart's SVG is built from numbers).
pub(crate) fn trusted(svg: String) -> PreEscaped<String> {
    PreEscaped(svg)
}

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        let status = self.0.status();
        if status.is_server_error() {
            tracing::warn!(%status, message = self.0.message(), "dashboard page failed");
        }
        (status, error_page(status, self.0.message())).into_response()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_sizes_and_durations_read_well() {
        assert_eq!(count(0), "0");
        assert_eq!(count(1234567), "1,234,567");
        assert_eq!(count(999), "999");
        assert_eq!(bytes(512), "512 B");
        assert_eq!(bytes(65536), "64.0 KiB");
        assert_eq!(bytes(3 << 20), "3.0 MiB");
        assert_eq!(micros(850), "850 µs");
        assert_eq!(micros(12_340), "12.3 ms");
        assert_eq!(micros(1_200_000), "1.20 s");
        assert_eq!(micros(185_000_000), "3m 05s");
        assert_eq!(time(0), "1970-01-01 00:00:00");
    }

    #[test]
    fn task_output_is_escaped() {
        let markup = html! { pre { (pretty_json("<script>alert(1)</script>")) } };
        assert_eq!(
            markup.into_string(),
            "<pre>&lt;script&gt;alert(1)&lt;/script&gt;</pre>"
        );
    }
}
