//! Engine throughput: run-steps per second of the injected-staleness engine
//! on streaming PCA (d = 4, E1's problem), and the cost of its parts
//! measured side by side (one Gaussian draw, one stochastic gradient).
//!
//! `cargo bench --bench engine`; `psim bench` reports the same engine rates
//! (scalar and batched) and the wall time of the whole E1 sweep.

use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use psim_common::{AnyObjective, Delay, Objective, PsimRng, RunConfig};
use psim_engine::{run_batched, run_injected};
use rand::SeedableRng;
use rand_distr::{Distribution, StandardNormal};

fn engine(c: &mut Criterion) {
    let mut g = c.benchmark_group("injected_engine_d4");
    let steps = 20_000u64;
    g.throughput(Throughput::Elements(steps));
    for (name, delay) in [
        ("tau0", "const:0"),
        ("tau10", "const:10"),
        ("uniform0..20", "uniform:0..20"),
    ] {
        let cfg = RunConfig {
            momentum: 0.7,
            steps,
            runs: 1,
            ..RunConfig::default()
        }
        .with_delay(delay.parse::<Delay>().unwrap());
        let obj = AnyObjective::build(&cfg.objective).unwrap();
        let mut run = 0;
        g.bench_function(name, |b| {
            b.iter(|| {
                run += 1;
                black_box(run_injected(&cfg, &obj, run).final_error)
            })
        });
    }
    g.finish();

    // The batched path: 8 runs in SIMD lockstep per iteration.
    let mut g = c.benchmark_group("batched_engine_d4");
    g.throughput(Throughput::Elements(8 * steps));
    for (name, delay) in [
        ("tau0", "const:0"),
        ("tau10", "const:10"),
        ("uniform0..20", "uniform:0..20"),
    ] {
        let cfg = RunConfig {
            momentum: 0.7,
            steps,
            runs: 8,
            ..RunConfig::default()
        }
        .with_delay(delay.parse::<Delay>().unwrap());
        let mut run = 0;
        g.bench_function(name, |b| {
            b.iter(|| {
                run += 8;
                black_box(run_batched(&cfg, run..run + 8).unwrap()[0].final_error)
            })
        });
    }
    g.finish();

    let mut g = c.benchmark_group("parts");
    g.throughput(Throughput::Elements(1));
    let mut rng = PsimRng::seed_from_u64(1);
    g.bench_function("standard_normal", |b| {
        b.iter(|| black_box::<f64>(StandardNormal.sample(&mut rng)))
    });
    let obj = AnyObjective::build(&RunConfig::default().objective).unwrap();
    let point = [0.1, 0.9, 0.1, 0.1];
    let mut out = [0.0; 4];
    g.bench_function("pca_gradient_d4", |b| {
        b.iter(|| {
            obj.gradient(black_box(&point), &mut rng, &mut out);
            black_box(out[0])
        })
    });
    g.finish();
}

criterion_group!(benches, engine);
criterion_main!(benches);
