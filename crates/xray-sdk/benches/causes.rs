//! What a stack in a cause costs, and where: capturing it on the request path (return
//! addresses only) against resolving it to names, files and lines, which the emitter's thread
//! does when it writes the document. `capture+resolve` is what every recorded error paid on
//! the request path before, whenever `RUST_BACKTRACE` was set.
//!
//! ```text
//! cargo bench -p xray-sdk --bench causes -- --warm-up-time 1 --measurement-time 3
//! ```
//!
//! The bench profile keeps line tables (`debug = 1`), as a release build with
//! `debug = "line-tables-only"` does; without them resolution finds names only and is cheaper.
//! The first resolution in a process also loads the debug information: it is timed once at
//! start and printed, since criterion only sees the warm case.

#![allow(clippy::unwrap_used, clippy::print_stderr)]

use std::hint::black_box;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use criterion::{BatchSize, BenchmarkId, Criterion, criterion_group, criterion_main};
use xray_sdk::model::CapturedStack;
use xray_sdk::{Cause, Recorder};

/// Extra frames above the benchmark's own (about 20), as a handler's stack under a server and
/// an async runtime has.
const DEPTHS: [usize; 2] = [0, 40];

#[inline(never)]
fn at_depth<R>(n: usize, f: &dyn Fn() -> R) -> R {
    if n == 0 {
        f()
    } else {
        black_box(at_depth(n - 1, f))
    }
}

fn error() -> std::io::Error {
    std::io::Error::other("table not found")
}

fn bench(c: &mut Criterion) {
    let cold = Instant::now();
    let frames = CapturedStack::capture().resolve().0.len();
    eprintln!(
        "first resolution in the process (loads debug information): {:?} for {frames} frames",
        cold.elapsed()
    );

    let mut g = c.benchmark_group("causes");
    let err = error();
    g.bench_function("from_error/no stack", |b| {
        b.iter(|| Cause::from_error(black_box(&err)))
    });
    for depth in DEPTHS {
        g.bench_with_input(
            BenchmarkId::new("capture (request path)", depth),
            &depth,
            |b, &d| b.iter(|| at_depth(d, &CapturedStack::capture)),
        );
        g.bench_with_input(
            BenchmarkId::new("resolve (emitter thread)", depth),
            &depth,
            |b, &d| {
                b.iter_batched(
                    || at_depth(d, &CapturedStack::capture),
                    |s| {
                        black_box(s.resolve().0.len());
                        s
                    },
                    BatchSize::SmallInput,
                )
            },
        );
        g.bench_with_input(
            BenchmarkId::new("capture+resolve (request path before)", depth),
            &depth,
            |b, &d| {
                b.iter(|| {
                    let s = at_depth(d, &CapturedStack::capture);
                    black_box(s.resolve().0.len());
                    s
                })
            },
        );
    }

    // With `error_stacks(true)`, building a cause captures: the request path's whole cost.
    let recorder = Recorder::builder()
        .ignore_env()
        .centralized_sampling(false)
        .panic_stacks(false)
        .error_stacks(true)
        .build()
        .unwrap();
    g.bench_function("from_error/error_stacks on", |b| {
        b.iter(|| Cause::from_error(black_box(&err)))
    });
    drop(recorder);

    // The capture takes the standard library's backtrace lock, which resolution holds for a
    // whole stack: a capture made while the emitter resolves waits for it.
    let stop = Arc::new(AtomicBool::new(false));
    let resolver = {
        let stop = Arc::clone(&stop);
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                let s = at_depth(40, &CapturedStack::capture);
                black_box(s.resolve().0.len());
            }
        })
    };
    g.bench_function("capture while another thread resolves", |b| {
        b.iter(|| at_depth(0, &CapturedStack::capture))
    });
    stop.store(true, Ordering::Relaxed);
    resolver.join().unwrap();
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
