//! Nothing but a home for the criterion benchmarks in `benches/`: task packages
//! (`package.rs`), the sandbox's hot path (`sandbox.rs`), the guest languages
//! (`languages.rs`) and the brokers (`brokers.rs`). Run them with
//! `cargo xtask bench micro [FILTER]`; the figures are in BENCHMARKS.md.
