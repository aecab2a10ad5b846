//! Real servers for wasq's tests: Redis, PostgreSQL and moto (a local SQS endpoint), each a
//! child process on a free port of 127.0.0.1 with its files in a directory the caller chooses,
//! stopped when dropped — also when a test panics.
//!
//! - [`RedisServer`], [`PostgresServer`], [`MotoServer`]: `start(dir)` returns once the server
//!   answers; `url()` / `endpoint()` say where. Redis and PostgreSQL persist to `dir`, and
//!   `restart()` brings them back on the same port with their data, for tests of a broker
//!   that loses its server.
//! - [`find_redis_server`], [`find_postgres_bin`], [`find_moto_server`]: where the binaries
//!   are (`WASQ_REDIS_SERVER`, `WASQ_PG_BIN`, `WASQ_MOTO_SERVER` override each). Tests use
//!   these through `start`, and fail saying to run `cargo xtask test` when one is missing.
//! - [`ensure_redis`], [`ensure_postgres`], [`ensure_moto`]: the same, installing what is
//!   missing (apt-get, pip into a venv) and printing one line for each install. For
//!   `cargo xtask` only: tests never install anything.
//!
//! `cargo xtask test` starts one server of each kind for the whole run and passes their
//! addresses in `WASQ_TEST_REDIS_URL`, `WASQ_TEST_POSTGRES_URL` and `WASQ_TEST_SQS_ENDPOINT`;
//! a test starts a private server of its own when it needs to stop or restart it:
//!
//! ```no_run
//! use wasq_testkit::RedisServer;
//!
//! # fn main() -> anyhow::Result<()> {
//! let dir = tempfile::tempdir()?;
//! let mut redis = RedisServer::start(dir.path())?;
//! redis.command(&["SET", "key", "kept"])?;
//! redis.restart()?; // same port, same data
//! assert_eq!(redis.command(&["GET", "key"])?.as_text().as_deref(), Some("kept"));
//! # Ok(())
//! # }
//! ```
//!
//! PostgreSQL refuses to run as root; when the tests run as root (a CI container), `initdb`
//! and `postgres` run as the user `postgres`, who is given the server's directory.

mod install;
mod moto;
mod postgres;
mod process;
mod redis;

pub use install::{
    MOTO_SERVER_VAR, PG_BIN_VAR, REDIS_SERVER_VAR, default_venv, ensure_chromium, ensure_moto,
    ensure_postgres, ensure_redis, ensure_tmux, ensure_venv_requirements, find_moto_server,
    find_postgres_bin, find_redis_server,
};
pub use moto::MotoServer;
pub use postgres::PostgresServer;
pub use process::{free_port, is_root, port_answers};
pub use redis::{RedisServer, Reply};
