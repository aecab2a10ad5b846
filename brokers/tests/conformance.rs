//! The broker conformance suite, `tests/all/broker_conformance.rs` (its
//! home, run by the workspace's integration tests), compiled here as well
//! so that `cargo test -p wasq-brokers` checks every broker it was built
//! with against it without building the runtime. It needs the `sqlite`
//! feature (default); the Redis, PostgreSQL and SQS brokers (features
//! `redis`, `postgres`, `sqs`) need the servers `cargo xtask test` starts.

#![cfg(feature = "sqlite")]

#[path = "../../tests/all/broker_conformance.rs"]
mod broker_conformance;
