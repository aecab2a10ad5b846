# Shortcuts for the same commands as `cargo xtask …`.

# Build the example guests into target/wasm/
build:
    cargo xtask build

# Build everything and run a real workload
demo:
    cargo xtask demo

# Every check and test, as CI runs them
test *ARGS:
    cargo xtask test {{ARGS}}

# The benchmarks (see BENCHMARKS.md)
bench *ARGS:
    cargo xtask bench {{ARGS}}
