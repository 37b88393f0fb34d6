//! Sampling benchmarks (placeholder until the rules engine lands).
use criterion::{Criterion, criterion_group, criterion_main};

fn bench(c: &mut Criterion) {
    let sampler = xray_sdk::sampling::DefaultSampler::default();
    let req = xray_sdk::SamplingRequest::default();
    c.bench_function("sampling/default", |b| {
        b.iter(|| xray_sdk::Sampler::should_sample(&sampler, &req))
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
