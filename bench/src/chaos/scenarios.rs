//! The scenarios: where the broker and store live, the clusters, the tasks, the fault and how
//! often it strikes; each in a full form and a `--quick` one (fewer tasks and faults, shorter
//! outages) for CI.

use std::time::Duration;

use crate::backends::Layout;
use crate::faults::Fault;

/// One scenario.
#[derive(Debug, Clone)]
pub(crate) struct Scenario {
    pub(crate) name: &'static str,
    /// What it shows, one line (for `--list`).
    pub(crate) about: &'static str,
    pub(crate) layout: Layout,
    /// Clusters with the right secret (named a, b, …).
    pub(crate) clusters: usize,
    /// A cluster with a wrong secret beside them.
    pub(crate) wrong_secret: bool,
    pub(crate) workers: usize,
    /// `retry`: the lease.
    pub(crate) lease: Duration,
    pub(crate) tasks: usize,
    /// How long each task sleeps, ms.
    pub(crate) task_ms: (u64, u64),
    pub(crate) fault: Fault,
    /// Faults to inject (fewer when the work ends first).
    pub(crate) faults: usize,
    /// Pause before each fault, ms.
    pub(crate) gap_ms: (u64, u64),
    /// Whether a task may run more than once (it may after a kill; a long task past its lease
    /// must not).
    pub(crate) reruns_allowed: bool,
}

/// Every scenario, in the order they run.
pub(crate) fn all(quick: bool) -> Vec<Scenario> {
    // Full form, quick form.
    let pick = |full: usize, short: usize| if quick { short } else { full };
    // Enough work (about 20 s full, 5 s quick, on 8 workers) for the faults to strike it.
    let tasks = pick(600, 160);
    let task_ms = if quick { (150, 350) } else { (100, 400) };
    let lease = Duration::from_secs(3);
    let base = Scenario {
        name: "",
        about: "",
        layout: Layout::RedisSqlite,
        clusters: 2,
        wrong_secret: false,
        workers: 4,
        lease,
        tasks,
        task_ms,
        fault: Fault::None,
        faults: 0,
        gap_ms: if quick { (200, 700) } else { (300, 1500) },
        reruns_allowed: true,
    };
    let kill = Fault::KillCluster { down: (200, 1500) };
    let outage = if quick { (3500, 4500) } else { (6500, 9000) };
    vec![
        Scenario {
            name: "kill9-redis",
            about: "kill -9 one of two clusters, repeatedly (Redis broker)",
            fault: kill,
            faults: pick(10, 3),
            ..base.clone()
        },
        Scenario {
            name: "kill9-postgres",
            about: "kill -9 one of two clusters, repeatedly (PostgreSQL broker)",
            layout: Layout::Postgres,
            fault: kill,
            faults: pick(10, 3),
            ..base.clone()
        },
        Scenario {
            name: "kill9-sqlite",
            about: "kill -9 one of two clusters, repeatedly (SQLite broker)",
            layout: Layout::Sqlite,
            fault: kill,
            faults: pick(10, 3),
            ..base.clone()
        },
        Scenario {
            name: "rolling-restarts",
            about: "SIGTERM every cluster in turn and start its replacement, many rounds",
            fault: Fault::RollingRestart,
            faults: pick(6, 2),
            gap_ms: (200, 800),
            ..base.clone()
        },
        Scenario {
            name: "redis-restart-term",
            about: "Redis stopped with SIGTERM and started again",
            fault: Fault::RedisRestart {
                kill: false,
                down: (100, 1000),
            },
            faults: pick(4, 1),
            gap_ms: (800, 2000),
            ..base.clone()
        },
        Scenario {
            name: "redis-restart-kill",
            about: "Redis killed with SIGKILL and started again",
            fault: Fault::RedisRestart {
                kill: true,
                down: (100, 1000),
            },
            faults: pick(4, 1),
            gap_ms: (1200, 2500),
            ..base.clone()
        },
        Scenario {
            name: "redis-down-past-lease",
            about: "Redis down for longer than the lease, then back",
            fault: Fault::RedisRestart {
                kill: false,
                down: outage,
            },
            faults: pick(2, 1),
            gap_ms: (800, 1500),
            ..base.clone()
        },
        Scenario {
            name: "postgres-restart-fast",
            about: "PostgreSQL (broker and store) fast shutdown and start",
            layout: Layout::Postgres,
            fault: Fault::PostgresRestart {
                crash: false,
                down: (100, 1000),
            },
            faults: pick(4, 1),
            gap_ms: (800, 2000),
            ..base.clone()
        },
        Scenario {
            name: "postgres-restart-crash",
            about: "PostgreSQL immediate shutdown (as after a crash: recovery on start)",
            layout: Layout::Postgres,
            fault: Fault::PostgresRestart {
                crash: true,
                down: (100, 1000),
            },
            faults: pick(4, 1),
            gap_ms: (800, 2000),
            ..base.clone()
        },
        Scenario {
            name: "postgres-down-past-lease",
            about: "PostgreSQL (broker and store) down for longer than the lease, then back",
            layout: Layout::Postgres,
            fault: Fault::PostgresRestart {
                crash: false,
                down: outage,
            },
            faults: pick(2, 1),
            gap_ms: (800, 1500),
            ..base.clone()
        },
        Scenario {
            name: "store-down",
            about: "the PostgreSQL store stopped for 10-20 s under a Redis broker",
            layout: Layout::RedisPostgres,
            fault: Fault::PostgresRestart {
                crash: false,
                down: if quick {
                    (4000, 5000)
                } else {
                    (10_000, 20_000)
                },
            },
            faults: pick(2, 1),
            gap_ms: (800, 1500),
            ..base.clone()
        },
        Scenario {
            name: "pg-terminate-backend",
            about: "pg_terminate_backend of every wasq connection, repeatedly",
            layout: Layout::Postgres,
            fault: Fault::TerminateBackends,
            faults: pick(10, 3),
            gap_ms: (300, 1200),
            ..base.clone()
        },
        Scenario {
            name: "sqlite-full-disk",
            about: "SQLite on a small tmpfs filled up under a working cluster, then freed",
            layout: Layout::SqliteTmpfs(24),
            clusters: 1,
            fault: Fault::FullDisk {
                hold: if quick { (2000, 3000) } else { (3000, 8000) },
            },
            faults: pick(3, 1),
            gap_ms: (500, 1500),
            ..base.clone()
        },
        Scenario {
            name: "long-tasks",
            about: "5 s tasks with a 2 s lease on two clusters: each runs once",
            lease: Duration::from_secs(2),
            tasks: pick(24, 8),
            task_ms: (5000, 5000),
            reruns_allowed: false,
            ..base.clone()
        },
        Scenario {
            name: "wrong-secret",
            about: "a cluster with the wrong secret beside one with the right secret",
            clusters: 1,
            wrong_secret: true,
            tasks: pick(400, 160),
            ..base
        },
    ]
}
