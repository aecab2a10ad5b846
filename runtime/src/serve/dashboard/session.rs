//! Dashboard sessions: logging in with an API key gives the browser a
//! random session token in an `HttpOnly`, `SameSite=Strict` cookie; the
//! key stays on the server, is checked again on every page (a revoked key
//! ends its sessions), and each session has its own token that every form
//! must send back (cross-site request forgery).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rand::RngCore as _;

/// The session cookie's name.
pub(crate) const COOKIE: &str = "wasq_session";
/// How long a session lasts.
pub(crate) const LIFETIME: Duration = Duration::from_secs(12 * 3600);
/// The most sessions kept; the oldest go first beyond this.
const MOST_SESSIONS: usize = 10_000;

/// One logged-in browser.
#[derive(Debug, Clone)]
pub(crate) struct Session {
    /// The API key it acts with.
    pub(crate) key: String,
    /// The token its forms carry.
    pub(crate) csrf: String,
    expires: Instant,
}

/// The sessions of one `wasq serve` process (a restart logs everyone out).
#[derive(Debug, Clone, Default)]
pub struct Sessions {
    inner: Arc<Mutex<HashMap<String, Session>>>,
}

/// 32 random bytes, hex.
fn random_token() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    hex::encode(bytes)
}

impl Sessions {
    /// Starts a session acting with `key`; answers its token.
    pub(crate) fn open(&self, key: String) -> String {
        let token = random_token();
        let now = Instant::now();
        let mut sessions = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        sessions.retain(|_, s| s.expires > now);
        if sessions.len() >= MOST_SESSIONS
            && let Some(oldest) = sessions
                .iter()
                .min_by_key(|(_, s)| s.expires)
                .map(|(t, _)| t.clone())
        {
            sessions.remove(&oldest);
        }
        sessions.insert(
            token.clone(),
            Session {
                key,
                csrf: random_token(),
                expires: now + LIFETIME,
            },
        );
        token
    }

    /// The live session of `token`.
    pub(crate) fn get(&self, token: &str) -> Option<Session> {
        let sessions = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        sessions
            .get(token)
            .filter(|s| s.expires > Instant::now())
            .cloned()
    }

    /// Ends a session.
    pub(crate) fn close(&self, token: &str) {
        let mut sessions = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        sessions.remove(token);
    }
}

/// The session token in a `Cookie` header.
pub(crate) fn token_in(cookies: &str) -> Option<&str> {
    cookies
        .split(';')
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE)
        .map(|(_, value)| value)
}

/// `Set-Cookie` for a new session.
pub(crate) fn set_cookie(token: &str) -> String {
    format!(
        "{COOKIE}={token}; Path=/; HttpOnly; SameSite=Strict; Max-Age={}",
        LIFETIME.as_secs()
    )
}

/// `Set-Cookie` that removes the session cookie.
pub(crate) fn clear_cookie() -> String {
    format!("{COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0")
}

/// Whether a form's token is the session's, compared in constant time.
pub(crate) fn csrf_matches(session: &Session, sent: &str) -> bool {
    use subtle::ConstantTimeEq as _;
    session.csrf.as_bytes().ct_eq(sent.as_bytes()).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sessions_open_find_and_close() {
        let sessions = Sessions::default();
        let token = sessions.open("wasq_k_s".into());
        let session = sessions.get(&token).expect("the session");
        assert_eq!(session.key, "wasq_k_s");
        assert!(csrf_matches(&session, &session.csrf));
        assert!(!csrf_matches(&session, "forged"));
        assert!(sessions.get("other").is_none());
        sessions.close(&token);
        assert!(sessions.get(&token).is_none());
    }

    #[test]
    fn the_cookie_is_found_among_others() {
        assert_eq!(token_in("a=1; wasq_session=abc; b=2"), Some("abc"));
        assert_eq!(token_in("wasq_sessionx=1"), None);
        assert!(set_cookie("t").contains("HttpOnly; SameSite=Strict"));
    }
}
