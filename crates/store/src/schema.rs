//! The store's migrations, applied in order on connect, one list per
//! database with the same versions. Each runs once, recorded in
//! `wasq_store_migrations`; never edit a released one, add the next (to
//! both lists). Integers are 64-bit in both, so a row reads the same.

/// The table that records applied migrations.
pub(super) const MIGRATIONS_TABLE: &str = "CREATE TABLE IF NOT EXISTS wasq_store_migrations (version BIGINT PRIMARY KEY, applied_at BIGINT NOT NULL)";

/// SQLite: `(version, SQL)` pairs, oldest first.
pub(super) const SQLITE: &[(i64, &str)] = &[
    (
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
    ),
    (
        2,
        r#"
ALTER TABLE wasq_results ADD COLUMN attempt_log TEXT;
ALTER TABLE wasq_results ADD COLUMN record BLOB;
ALTER TABLE wasq_module_names ADD COLUMN retry TEXT;

CREATE TABLE wasq_deferred (
    id            TEXT PRIMARY KEY,
    task_id       TEXT NOT NULL,
    queue         TEXT NOT NULL,
    priority      BIGINT NOT NULL,
    due_at        BIGINT NOT NULL,
    claimed_until BIGINT NOT NULL DEFAULT 0,
    package       BLOB NOT NULL
);
CREATE INDEX wasq_deferred_due ON wasq_deferred (due_at);
CREATE INDEX wasq_deferred_task ON wasq_deferred (task_id);

CREATE TABLE wasq_unique (
    key        TEXT PRIMARY KEY,
    task_id    TEXT NOT NULL,
    expires_at BIGINT NOT NULL
);

CREATE TABLE wasq_cancelled (
    seq     INTEGER PRIMARY KEY AUTOINCREMENT,
    task_id TEXT NOT NULL UNIQUE,
    at      BIGINT NOT NULL
);

CREATE TABLE wasq_schedules (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    name       TEXT NOT NULL UNIQUE,
    module     TEXT NOT NULL,
    digest     TEXT NOT NULL,
    task       TEXT NOT NULL,
    input      TEXT NOT NULL,
    queue      TEXT,
    grp        TEXT,
    priority   BIGINT NOT NULL,
    kind       TEXT NOT NULL,
    minutes    BIGINT,
    cron       TEXT,
    tz         TEXT NOT NULL,
    anchor     BIGINT NOT NULL,
    next_run   BIGINT NOT NULL,
    repeats    BIGINT NOT NULL,
    catch_up   BIGINT NOT NULL,
    cluster    TEXT,
    last_run   BIGINT,
    last_task  TEXT,
    runs       BIGINT NOT NULL DEFAULT 0,
    created_at BIGINT NOT NULL
);
CREATE INDEX wasq_schedules_next ON wasq_schedules (next_run);
"#,
    ),
    (
        3,
        r#"
CREATE TABLE wasq_tenants (
    name       TEXT PRIMARY KEY,
    weight     BIGINT NOT NULL,
    quotas     TEXT NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE TABLE wasq_api_keys (
    id         TEXT PRIMARY KEY,
    tenant     TEXT,
    hash       TEXT NOT NULL,
    label      TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    revoked_at BIGINT
);
CREATE TABLE wasq_tenant_modules (
    tenant      TEXT NOT NULL,
    name        TEXT NOT NULL,
    digest      TEXT NOT NULL,
    size        BIGINT NOT NULL,
    grants      TEXT NOT NULL,
    uploaded_at BIGINT NOT NULL,
    PRIMARY KEY (tenant, name)
);
CREATE TABLE wasq_tenant_tasks (
    id     TEXT PRIMARY KEY,
    tenant TEXT NOT NULL,
    at     BIGINT NOT NULL
);
CREATE INDEX wasq_tenant_tasks_at ON wasq_tenant_tasks (at);
CREATE TABLE wasq_tenant_usage (
    tenant       TEXT NOT NULL,
    window_start BIGINT NOT NULL,
    fuel         BIGINT NOT NULL,
    tasks        BIGINT NOT NULL,
    PRIMARY KEY (tenant, window_start)
);
CREATE TABLE wasq_audit (
    seq    INTEGER PRIMARY KEY AUTOINCREMENT,
    at     BIGINT NOT NULL,
    tenant TEXT,
    actor  TEXT NOT NULL,
    action TEXT NOT NULL,
    detail TEXT NOT NULL
);
"#,
    ),
    (
        4,
        r#"
ALTER TABLE wasq_schedules ADD COLUMN tenant TEXT;
"#,
    ),
    (
        5,
        r#"
CREATE INDEX wasq_results_queue ON wasq_results (queue, success, stopped_at);
"#,
    ),
    (
        6,
        r#"
ALTER TABLE wasq_clusters ADD COLUMN running TEXT;
"#,
    ),
    (
        7,
        r#"
ALTER TABLE wasq_schedules ADD COLUMN paused BIGINT NOT NULL DEFAULT 0;
CREATE INDEX wasq_results_stopped ON wasq_results (stopped_at);
CREATE INDEX wasq_tenant_tasks_tenant ON wasq_tenant_tasks (tenant, at);
"#,
    ),
    (
        8,
        r#"
CREATE TABLE wasq_tenant_digests (
    tenant TEXT NOT NULL,
    digest TEXT NOT NULL,
    PRIMARY KEY (tenant, digest)
);
INSERT INTO wasq_tenant_digests (tenant, digest)
    SELECT DISTINCT tenant, digest FROM wasq_tenant_modules;
"#,
    ),
    (
        9,
        r#"
CREATE TABLE wasq_tenant_pending (
    task_id TEXT PRIMARY KEY,
    tenant  TEXT NOT NULL,
    queue   TEXT NOT NULL,
    at      BIGINT NOT NULL
);
CREATE INDEX wasq_tenant_pending_tenant ON wasq_tenant_pending (tenant);
CREATE INDEX wasq_tenant_pending_queue ON wasq_tenant_pending (queue);
"#,
    ),
    (
        10,
        r#"
CREATE TABLE wasq_runs (
    task_id    TEXT NOT NULL,
    attempt    BIGINT NOT NULL,
    runs       BIGINT NOT NULL,
    started_at BIGINT NOT NULL,
    PRIMARY KEY (task_id, attempt)
);
CREATE TABLE wasq_dead_letters (
    digest    TEXT PRIMARY KEY,
    queue     TEXT NOT NULL,
    broker_id TEXT NOT NULL,
    task_id   TEXT,
    verified  BIGINT NOT NULL,
    reason    TEXT NOT NULL,
    cluster   TEXT NOT NULL,
    refusers  TEXT NOT NULL,
    refusals  BIGINT NOT NULL,
    first_at  BIGINT NOT NULL,
    last_at   BIGINT NOT NULL,
    dead_at   BIGINT,
    size      BIGINT NOT NULL,
    package   BLOB
);
"#,
    ),
    (
        11,
        r#"
CREATE TABLE wasq_pruned (
    seq        INTEGER PRIMARY KEY AUTOINCREMENT,
    task_id    TEXT NOT NULL UNIQUE,
    outcome    TEXT NOT NULL,
    stopped_at BIGINT NOT NULL,
    pruned_at  BIGINT NOT NULL
);
"#,
    ),
];

/// PostgreSQL: `(version, SQL)` pairs, oldest first, matching [`SQLITE`].
pub(super) const POSTGRES: &[(i64, &str)] = &[
    (
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
    success     BIGINT NOT NULL,
    result      BYTEA,
    stderr      TEXT NOT NULL,
    error       TEXT,
    fuel        BIGINT,
    cpu_us      BIGINT NOT NULL,
    wall_us     BIGINT NOT NULL,
    memory_peak BIGINT NOT NULL,
    attempts    BIGINT NOT NULL,
    enqueued_at BIGINT NOT NULL,
    started_at  BIGINT NOT NULL,
    stopped_at  BIGINT NOT NULL,
    cluster     TEXT NOT NULL
);
CREATE INDEX wasq_results_success ON wasq_results (success, stopped_at);
CREATE INDEX wasq_results_group ON wasq_results (grp);

CREATE TABLE wasq_modules (
    digest      TEXT PRIMARY KEY,
    bytes       BYTEA NOT NULL,
    size        BIGINT NOT NULL,
    uploaded_at BIGINT NOT NULL
);
CREATE TABLE wasq_module_names (
    name       TEXT PRIMARY KEY,
    digest     TEXT NOT NULL REFERENCES wasq_modules (digest),
    updated_at BIGINT NOT NULL
);

CREATE TABLE wasq_rejected (
    id        BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    queue     TEXT NOT NULL,
    broker_id TEXT NOT NULL,
    reason    TEXT NOT NULL,
    size      BIGINT NOT NULL,
    at        BIGINT NOT NULL,
    cluster   TEXT NOT NULL
);

CREATE TABLE wasq_clusters (
    id           TEXT PRIMARY KEY,
    name         TEXT NOT NULL,
    label        TEXT NOT NULL,
    host         TEXT NOT NULL,
    pid          BIGINT NOT NULL,
    workers      BIGINT NOT NULL,
    started_at   BIGINT NOT NULL,
    heartbeat_at BIGINT NOT NULL,
    in_flight    BIGINT NOT NULL,
    done         BIGINT NOT NULL,
    status       TEXT NOT NULL
);
"#,
    ),
    (
        2,
        r#"
ALTER TABLE wasq_results ADD COLUMN attempt_log TEXT;
ALTER TABLE wasq_results ADD COLUMN record BYTEA;
ALTER TABLE wasq_module_names ADD COLUMN retry TEXT;

CREATE TABLE wasq_deferred (
    id            TEXT PRIMARY KEY,
    task_id       TEXT NOT NULL,
    queue         TEXT NOT NULL,
    priority      BIGINT NOT NULL,
    due_at        BIGINT NOT NULL,
    claimed_until BIGINT NOT NULL DEFAULT 0,
    package       BYTEA NOT NULL
);
CREATE INDEX wasq_deferred_due ON wasq_deferred (due_at);
CREATE INDEX wasq_deferred_task ON wasq_deferred (task_id);

CREATE TABLE wasq_unique (
    key        TEXT PRIMARY KEY,
    task_id    TEXT NOT NULL,
    expires_at BIGINT NOT NULL
);

CREATE TABLE wasq_cancelled (
    seq     BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    task_id TEXT NOT NULL UNIQUE,
    at      BIGINT NOT NULL
);

CREATE TABLE wasq_schedules (
    id         BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name       TEXT NOT NULL UNIQUE,
    module     TEXT NOT NULL,
    digest     TEXT NOT NULL,
    task       TEXT NOT NULL,
    input      TEXT NOT NULL,
    queue      TEXT,
    grp        TEXT,
    priority   BIGINT NOT NULL,
    kind       TEXT NOT NULL,
    minutes    BIGINT,
    cron       TEXT,
    tz         TEXT NOT NULL,
    anchor     BIGINT NOT NULL,
    next_run   BIGINT NOT NULL,
    repeats    BIGINT NOT NULL,
    catch_up   BIGINT NOT NULL,
    cluster    TEXT,
    last_run   BIGINT,
    last_task  TEXT,
    runs       BIGINT NOT NULL DEFAULT 0,
    created_at BIGINT NOT NULL
);
CREATE INDEX wasq_schedules_next ON wasq_schedules (next_run);
"#,
    ),
    (
        3,
        r#"
CREATE TABLE wasq_tenants (
    name       TEXT PRIMARY KEY,
    weight     BIGINT NOT NULL,
    quotas     TEXT NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE TABLE wasq_api_keys (
    id         TEXT PRIMARY KEY,
    tenant     TEXT,
    hash       TEXT NOT NULL,
    label      TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    revoked_at BIGINT
);
CREATE TABLE wasq_tenant_modules (
    tenant      TEXT NOT NULL,
    name        TEXT NOT NULL,
    digest      TEXT NOT NULL,
    size        BIGINT NOT NULL,
    grants      TEXT NOT NULL,
    uploaded_at BIGINT NOT NULL,
    PRIMARY KEY (tenant, name)
);
CREATE TABLE wasq_tenant_tasks (
    id     TEXT PRIMARY KEY,
    tenant TEXT NOT NULL,
    at     BIGINT NOT NULL
);
CREATE INDEX wasq_tenant_tasks_at ON wasq_tenant_tasks (at);
CREATE TABLE wasq_tenant_usage (
    tenant       TEXT NOT NULL,
    window_start BIGINT NOT NULL,
    fuel         BIGINT NOT NULL,
    tasks        BIGINT NOT NULL,
    PRIMARY KEY (tenant, window_start)
);
CREATE TABLE wasq_audit (
    seq    BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at     BIGINT NOT NULL,
    tenant TEXT,
    actor  TEXT NOT NULL,
    action TEXT NOT NULL,
    detail TEXT NOT NULL
);
"#,
    ),
    (
        4,
        r#"
ALTER TABLE wasq_schedules ADD COLUMN tenant TEXT;
"#,
    ),
    (
        5,
        r#"
CREATE INDEX wasq_results_queue ON wasq_results (queue, success, stopped_at);
"#,
    ),
    (
        6,
        r#"
ALTER TABLE wasq_clusters ADD COLUMN running TEXT;
"#,
    ),
    (
        7,
        r#"
ALTER TABLE wasq_schedules ADD COLUMN paused BIGINT NOT NULL DEFAULT 0;
CREATE INDEX wasq_results_stopped ON wasq_results (stopped_at);
CREATE INDEX wasq_tenant_tasks_tenant ON wasq_tenant_tasks (tenant, at);
"#,
    ),
    (
        8,
        r#"
CREATE TABLE wasq_tenant_digests (
    tenant TEXT NOT NULL,
    digest TEXT NOT NULL,
    PRIMARY KEY (tenant, digest)
);
INSERT INTO wasq_tenant_digests (tenant, digest)
    SELECT DISTINCT tenant, digest FROM wasq_tenant_modules;
"#,
    ),
    (
        9,
        r#"
CREATE TABLE wasq_tenant_pending (
    task_id TEXT PRIMARY KEY,
    tenant  TEXT NOT NULL,
    queue   TEXT NOT NULL,
    at      BIGINT NOT NULL
);
CREATE INDEX wasq_tenant_pending_tenant ON wasq_tenant_pending (tenant);
CREATE INDEX wasq_tenant_pending_queue ON wasq_tenant_pending (queue);
"#,
    ),
    (
        10,
        r#"
CREATE TABLE wasq_runs (
    task_id    TEXT NOT NULL,
    attempt    BIGINT NOT NULL,
    runs       BIGINT NOT NULL,
    started_at BIGINT NOT NULL,
    PRIMARY KEY (task_id, attempt)
);
CREATE TABLE wasq_dead_letters (
    digest    TEXT PRIMARY KEY,
    queue     TEXT NOT NULL,
    broker_id TEXT NOT NULL,
    task_id   TEXT,
    verified  BIGINT NOT NULL,
    reason    TEXT NOT NULL,
    cluster   TEXT NOT NULL,
    refusers  TEXT NOT NULL,
    refusals  BIGINT NOT NULL,
    first_at  BIGINT NOT NULL,
    last_at   BIGINT NOT NULL,
    dead_at   BIGINT,
    size      BIGINT NOT NULL,
    package   BYTEA
);
"#,
    ),
    (
        11,
        r#"
CREATE TABLE wasq_pruned (
    seq        BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    task_id    TEXT NOT NULL UNIQUE,
    outcome    TEXT NOT NULL,
    stopped_at BIGINT NOT NULL,
    pruned_at  BIGINT NOT NULL
);
"#,
    ),
];
