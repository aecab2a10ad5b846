//! Micro-benchmarks of task packages, run with `cargo xtask bench micro` (or `cargo bench -p
//! wasq-micro-benches --bench package`): encode and decode (postcard, HMAC-SHA256 signature and check) of a
//! small no-op task and of a task carrying a 16 KiB document, with and without zstd; and the
//! HMAC alone over the same bytes.

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use hmac::{Hmac, Mac as _};
use sha2::Sha256;
use wasq_core::Digest;
use wasq_core::package::{PackageCodec, TaskRecord};

fn record(input: String) -> TaskRecord {
    TaskRecord::new(Digest::of(b"basics"), "basics", "noop", input, "default")
}

/// A Markdown-like document of about 16 KiB: text that compresses the way real arguments do.
fn document() -> String {
    let paragraph = "## Section\n\nWorkers run each task in a fresh sandbox with fuel, memory and \
                     time limits; results go to the store in batches. | a | b |\n|---|---|\n| 1 | 2 |\n\n";
    let text = paragraph.repeat(16 * 1024 / paragraph.len() + 1);
    serde_json::json!({ "args": [text], "kwargs": {} }).to_string()
}

fn packages(c: &mut Criterion) {
    let cases = [
        ("noop", record(r#"{"args":[],"kwargs":{}}"#.into())),
        ("16KiB-doc", record(document())),
    ];
    let mut group = c.benchmark_group("package");
    for (name, record) in &cases {
        for compress in [false, true] {
            let codec = PackageCodec::new("bench-secret", compress);
            let zstd = if compress { "zstd" } else { "plain" };
            let bytes = codec.encode(record).expect("encodes");
            group.throughput(Throughput::Bytes(bytes.len() as u64));
            group.bench_function(format!("encode/{name}/{zstd}"), |b| {
                b.iter(|| codec.encode(std::hint::black_box(record)).expect("encodes"))
            });
            group.bench_function(format!("decode/{name}/{zstd}"), |b| {
                b.iter(|| codec.decode(std::hint::black_box(&bytes)).expect("decodes"))
            });
        }
    }
    group.finish();

    let mut group = c.benchmark_group("hmac-sha256");
    for (name, record) in &cases {
        let bytes = PackageCodec::new("bench-secret", false)
            .encode(record)
            .expect("encodes");
        group.throughput(Throughput::Bytes(bytes.len() as u64));
        group.bench_function(*name, |b| {
            b.iter(|| {
                let mut mac =
                    Hmac::<Sha256>::new_from_slice(b"bench-secret").expect("any key length");
                mac.update(std::hint::black_box(&bytes));
                mac.finalize().into_bytes()
            })
        });
    }
    group.finish();
}

criterion_group!(benches, packages);
criterion_main!(benches);
