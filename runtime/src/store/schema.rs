//! The store's migrations, applied in order on connect. Each runs once,
//! recorded in `wasq_store_migrations`; never edit a released one, add the
//! next.

/// `(version, SQL)` pairs, oldest first.
pub(crate) const MIGRATIONS: &[(i64, &str)] = &[(
    1,
    r#"
CREATE TABLE wasq_results (
    id          TEXT PRIMARY KEY,
    module      TEXT NOT NULL,
    module_name TEXT NOT NULL,
    task        TEXT NOT NULL,
    input       TEXT NOT NULL,
    queue       TEXT NOT NULL,
    grp         TEXT,
    outcome     TEXT NOT NULL,
    success     INTEGER NOT NULL,
    result      BLOB,
    stderr      TEXT NOT NULL,
    error       TEXT,
    fuel        INTEGER,
    cpu_us      INTEGER NOT NULL,
    wall_us     INTEGER NOT NULL,
    memory_peak INTEGER NOT NULL,
    attempts    INTEGER NOT NULL,
    enqueued_at INTEGER NOT NULL,
    started_at  INTEGER NOT NULL,
    stopped_at  INTEGER NOT NULL,
    cluster     TEXT NOT NULL
);
CREATE INDEX wasq_results_success ON wasq_results (success, stopped_at);
CREATE INDEX wasq_results_group ON wasq_results (grp);

CREATE TABLE wasq_modules (
    digest      TEXT PRIMARY KEY,
    bytes       BLOB NOT NULL,
    size        INTEGER NOT NULL,
    uploaded_at INTEGER NOT NULL
);
CREATE TABLE wasq_module_names (
    name       TEXT PRIMARY KEY,
    digest     TEXT NOT NULL REFERENCES wasq_modules (digest),
    updated_at INTEGER NOT NULL
);

CREATE TABLE wasq_rejected (
    id        INTEGER PRIMARY KEY AUTOINCREMENT,
    queue     TEXT NOT NULL,
    broker_id TEXT NOT NULL,
    reason    TEXT NOT NULL,
    size      INTEGER NOT NULL,
    at        INTEGER NOT NULL,
    cluster   TEXT NOT NULL
);

CREATE TABLE wasq_clusters (
    id           TEXT PRIMARY KEY,
    name         TEXT NOT NULL,
    label        TEXT NOT NULL,
    host         TEXT NOT NULL,
    pid          INTEGER NOT NULL,
    workers      INTEGER NOT NULL,
    started_at   INTEGER NOT NULL,
    heartbeat_at INTEGER NOT NULL,
    in_flight    INTEGER NOT NULL,
    done         INTEGER NOT NULL,
    status       TEXT NOT NULL
);
"#,
)];
