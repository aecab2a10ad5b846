//! Logging in and out of the dashboard: the login page and form, limited
//! per client and per key, and the session cookie.

use axum::extract::{Request, State};
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};

use super::viewer::{NoFields, PageError, Submitted, same_origin};
use super::{page, session, throttle};
use crate::AppState;
use crate::auth::caller_for_key;

/// Where login sends the browser afterwards: a path of this site only.
///
/// Browsers read `//host`, `/\host` and `/<tab>/host` (they drop tabs and
/// newlines and treat `\` as `/`) as another site, so `next` must be a
/// single `/` followed by something other than `/` or `\`, with no
/// backslash anywhere and nothing but printable ASCII (which is also all a
/// `Location` header may hold); anything else goes to `/`.
fn safe_next(next: Option<&str>) -> &str {
    match next {
        Some(n) if is_local_path(n) => n,
        _ => "/",
    }
}

/// Whether `path` is a path of this site and nothing a browser could read
/// as another one (see [`safe_next`]).
fn is_local_path(path: &str) -> bool {
    let mut chars = path.chars();
    chars.next() == Some('/')
        && !matches!(chars.next(), Some('/' | '\\'))
        && path.len() <= 2048
        && path.bytes().all(|b| b.is_ascii_graphic() && b != b'\\')
}

#[derive(serde::Deserialize)]
pub(crate) struct LoginQuery {
    next: Option<String>,
}

pub(super) async fn login_page(
    axum::extract::Query(query): axum::extract::Query<LoginQuery>,
) -> Response {
    page::login_page(safe_next(query.next.as_deref()), None).into_response()
}

#[derive(serde::Deserialize)]
pub(crate) struct LoginForm {
    key: String,
    next: Option<String>,
}

/// Whether the browser reached us over HTTPS, so the session cookie gets
/// `Secure`: always with `wasq serve --secure-cookies`, else when a proxy in
/// front says so (`X-Forwarded-Proto: https` or `Forwarded: proto=https`).
///
/// Believing those headers is safe because they can only add `Secure`,
/// never take it away: a client that sends one over plain HTTP only gets a
/// cookie its browser will not send back over plain HTTP, and a page of
/// another site cannot add headers to a form it submits.
pub(crate) fn secure_request(parts: &Parts, state: &AppState) -> bool {
    let says_https = |name: &str, find: fn(&str) -> bool| {
        parts
            .headers
            .get_all(name)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .any(find)
    };
    state.secure_cookies
        || says_https("x-forwarded-proto", |v| {
            v.split(',')
                .next()
                .is_some_and(|p| p.trim().eq_ignore_ascii_case("https"))
        })
        || says_https("forwarded", |v| {
            v.split([';', ','])
                .filter_map(|pair| pair.split_once('='))
                .any(|(k, v)| {
                    k.trim().eq_ignore_ascii_case("proto")
                        && v.trim().trim_matches('"').eq_ignore_ascii_case("https")
                })
        })
}

/// The peer address of a request, when the server was started with it
/// ([`crate::serve`] does).
fn peer(parts: &Parts) -> Option<std::net::IpAddr> {
    parts
        .extensions
        .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
        .map(|info| info.0.ip())
}

/// The answer to a login over its limit: 429, when to try again.
fn too_many_logins(next: &str, wait: std::time::Duration) -> Response {
    let seconds = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    let seconds = seconds.max(1);
    let message = format!(
        "Too many failed logins from your address or for that key; try again in {seconds} s."
    );
    (
        StatusCode::TOO_MANY_REQUESTS,
        [(header::RETRY_AFTER, seconds.to_string())],
        page::login_page(next, Some(&message)),
    )
        .into_response()
}

/// Logs in with an API key (checked as the API checks it), at most as
/// often as [`throttle`] allows.
pub(super) async fn login(State(state): State<AppState>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    if !same_origin(&parts) {
        return PageError::forbidden("a form of another site was refused").into_response();
    }
    let Ok(bytes) = axum::body::to_bytes(body, 64 << 10).await else {
        return PageError::bad_request("the form is too large").into_response();
    };
    let Ok(form) = serde_urlencoded::from_bytes::<LoginForm>(&bytes) else {
        return PageError::bad_request("the login form needs a key").into_response();
    };
    let next = safe_next(form.next.as_deref()).to_owned();
    let key = form.key.trim().to_owned();
    let attempt = throttle::Attempt::new(peer(&parts), &key);
    if let Err(wait) = state.logins.try_take(&attempt, std::time::Instant::now()) {
        return too_many_logins(&next, wait);
    }
    match caller_for_key(&state, &key).await {
        Ok(_) => {
            state.logins.give_back(&attempt, std::time::Instant::now());
            let token = match state.sessions.open(key) {
                Ok(token) => token,
                Err(full) => {
                    return (
                        StatusCode::SERVICE_UNAVAILABLE,
                        page::login_page(&next, Some(&full.to_string())),
                    )
                        .into_response();
                }
            };
            let secure = secure_request(&parts, &state);
            (
                [(header::SET_COOKIE, session::set_cookie(&token, secure))],
                Redirect::to(&next),
            )
                .into_response()
        }
        Err(error) if error.status() == StatusCode::UNAUTHORIZED => (
            StatusCode::UNAUTHORIZED,
            page::login_page(
                &next,
                Some("That key is unknown or revoked. Make one with `wasq key create --admin` (or `--tenant NAME`)."),
            ),
        )
            .into_response(),
        Err(error) => {
            // The store failed, not the key: that attempt does not count.
            state.logins.give_back(&attempt, std::time::Instant::now());
            PageError::from(error).into_response()
        }
    }
}

pub(super) async fn logout(
    State(state): State<AppState>,
    Submitted(viewer, NoFields {}): Submitted<NoFields>,
) -> Response {
    state.sessions.close(&viewer.token);
    (
        [(
            header::SET_COOKIE,
            session::clear_cookie(state.secure_cookies),
        )],
        Redirect::to("/login"),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_is_a_local_path_or_home() {
        for local in [
            "/",
            "/tasks",
            "/tasks?state=failed&page=2",
            "/tasks/%2F%2Fx",
        ] {
            assert_eq!(safe_next(Some(local)), local);
        }
        for hostile in [
            "//evil.com",
            "/\\evil.com",
            "/\\/evil.com",
            "/\t/evil.com",
            "/\t\t//evil.com",
            "/\n/evil.com",
            "/\r/evil.com",
            "/ /evil.com",
            "/tasks\\..\\",
            "/a\u{0}b",
            "/\u{7f}/evil.com",
            "/\u{e9}",
            "https://evil.com",
            "evil.com",
            "\\\\evil.com",
            " /tasks",
            "",
        ] {
            assert_eq!(safe_next(Some(hostile)), "/", "{hostile:?}");
        }
        assert_eq!(safe_next(None), "/");
        assert_eq!(safe_next(Some(&format!("/{}", "a".repeat(5000)))), "/");
    }
}
