//! URLs as logs and errors show them: passwords hidden.

/// Query parameters whose values are hidden by [`redact`].
const SECRET_PARAMS: &[&str] = &[
    "password",
    "passwd",
    "pass",
    "pwd",
    "secret",
    "token",
    "auth_token",
    "access_token",
    "sslpassword",
    "secret_access_key",
];

/// `url` with any password replaced by `***`: the one of the user info
/// (`redis://user:pw@host` → `redis://user:***@host`) and the values of
/// query parameters such as `password=` or `token=`. Anything else is left
/// as written, so the result still says where the broker is.
///
/// ```
/// assert_eq!(wasq_brokers::redact("redis://:hunter2@cache:6379/0"), "redis://:***@cache:6379/0");
/// assert_eq!(wasq_brokers::redact("sqlite://.wasq/wasq.db"), "sqlite://.wasq/wasq.db");
/// ```
pub fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    let authority = match authority.rsplit_once('@') {
        Some((user_info, host)) => match user_info.split_once(':') {
            Some((user, _password)) => format!("{user}:***@{host}"),
            None => format!("{user_info}@{host}"),
        },
        None => authority.to_owned(),
    };
    let tail = match tail.split_once('?') {
        Some((path, query)) => {
            let (query, fragment) = match query.split_once('#') {
                Some((query, fragment)) => (query, Some(fragment)),
                None => (query, None),
            };
            let query: Vec<String> = query
                .split('&')
                .map(|pair| match pair.split_once('=') {
                    Some((key, _)) if SECRET_PARAMS.iter().any(|s| key.eq_ignore_ascii_case(s)) => {
                        format!("{key}=***")
                    }
                    _ => pair.to_owned(),
                })
                .collect();
            let fragment = fragment.map(|f| format!("#{f}")).unwrap_or_default();
            format!("{path}?{}{fragment}", query.join("&"))
        }
        None => tail.to_owned(),
    };
    format!("{scheme}://{authority}{tail}")
}
