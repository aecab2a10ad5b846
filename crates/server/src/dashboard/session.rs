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
/// The most sessions one key may have; a new login of that key ends its
/// oldest beyond this (and no one else's).
pub(crate) const MOST_PER_KEY: usize = 16;
/// The most sessions kept in all. Keys are made only by admins, so this is
/// reached only with hundreds of keys logged in at once; a login past it is
/// refused (expired sessions are dropped first) rather than ending another
/// key's session.
const MOST_SESSIONS: usize = 10_000;

/// One logged-in browser.
#[derive(Debug, Clone)]
pub(crate) struct Session {
    /// The API key it acts with.
    pub(crate) key: String,
    /// The token its forms carry.
    pub(crate) csrf: String,
    expires: Instant,
    /// Order of opening (instants may tie).
    opened: u64,
}

/// The sessions of one `wasq serve` process (a restart logs everyone out).
#[derive(Debug, Clone)]
pub struct Sessions {
    inner: Arc<Mutex<HashMap<String, Session>>>,
    opened: Arc<std::sync::atomic::AtomicU64>,
    most: usize,
    most_per_key: usize,
}

impl Default for Sessions {
    fn default() -> Self {
        Self::with_caps(MOST_SESSIONS, MOST_PER_KEY)
    }
}

/// Why a login got no session.
#[derive(Debug, thiserror::Error)]
#[error("the dashboard has {0} sessions open, its most; try again later or restart `wasq serve`")]
pub(crate) struct SessionsFull(usize);

/// 32 random bytes, hex.
fn random_token() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    hex::encode(bytes)
}

impl Sessions {
    fn with_caps(most: usize, most_per_key: usize) -> Self {
        Self {
            inner: Arc::default(),
            opened: Arc::default(),
            most: most.max(1),
            most_per_key: most_per_key.max(1),
        }
    }

    /// Starts a session acting with `key`; answers its token. The key's
    /// oldest sessions end beyond [`MOST_PER_KEY`]; when the whole table is
    /// full of live sessions the login is refused.
    pub(crate) fn open(&self, key: String) -> Result<String, SessionsFull> {
        let now = Instant::now();
        let mut sessions = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        sessions.retain(|_, s| s.expires > now);
        let mut own: Vec<(u64, String)> = sessions
            .iter()
            .filter(|(_, s)| s.key == key)
            .map(|(t, s)| (s.opened, t.clone()))
            .collect();
        if own.len() >= self.most_per_key {
            own.sort_unstable();
            for (_, token) in &own[..=own.len() - self.most_per_key] {
                sessions.remove(token);
            }
        } else if sessions.len() >= self.most {
            return Err(SessionsFull(sessions.len()));
        }
        let token = random_token();
        sessions.insert(
            token.clone(),
            Session {
                key,
                csrf: random_token(),
                expires: now + LIFETIME,
                opened: self
                    .opened
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed),
            },
        );
        Ok(token)
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

/// `Set-Cookie` for a new session; `Secure` when the browser reached us
/// over HTTPS (see [`super::login::secure_request`]).
pub(crate) fn set_cookie(token: &str, secure: bool) -> String {
    format!(
        "{COOKIE}={token}; Path=/; HttpOnly; SameSite=Strict; Max-Age={}{}",
        LIFETIME.as_secs(),
        if secure { "; Secure" } else { "" }
    )
}

/// `Set-Cookie` that removes the session cookie.
pub(crate) fn clear_cookie(secure: bool) -> String {
    format!(
        "{COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0{}",
        if secure { "; Secure" } else { "" }
    )
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
        let token = sessions.open("wasq_k_s".into()).expect("room");
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
        assert!(set_cookie("t", false).contains("HttpOnly; SameSite=Strict"));
        assert!(!set_cookie("t", false).contains("Secure"));
        assert!(set_cookie("t", true).ends_with("; Secure"));
        assert!(clear_cookie(true).ends_with("; Secure"));
    }

    #[test]
    fn one_key_ends_only_its_own_oldest_sessions() {
        let sessions = Sessions::with_caps(10, 3);
        let other = sessions.open("b".into()).expect("room");
        let first: Vec<String> = (0..3)
            .map(|_| sessions.open("a".into()).expect("room"))
            .collect();
        for _ in 0..20 {
            sessions.open("a".into()).expect("room: a's own are ended");
        }
        let live_a = sessions
            .inner
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .filter(|s| s.key == "a")
            .count();
        assert_eq!(live_a, 3);
        assert!(sessions.get(&other).is_some(), "b's session survives");
        assert!(
            first.iter().all(|t| sessions.get(t).is_none()),
            "a's oldest ended"
        );
    }

    #[test]
    fn a_full_table_refuses_new_keys_instead_of_ending_others() {
        let sessions = Sessions::with_caps(4, 2);
        let kept: Vec<String> = ["a", "b", "c", "d"]
            .iter()
            .map(|k| sessions.open((*k).into()).expect("room"))
            .collect();
        let refused = sessions.open("e".into()).expect_err("full");
        assert!(refused.to_string().contains("4 sessions open"), "{refused}");
        // A key that has sessions may still replace its own.
        let a2 = sessions.open("a".into());
        assert!(a2.is_err(), "a has 1 of its 2, the table is full");
        assert!(kept.iter().all(|t| sessions.get(t).is_some()));
    }
}
