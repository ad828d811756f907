//! Scratch timing: where does an engine step's time go? (not a benchmark; see `psim bench`)
use psim_common::{AnyObjective, Objective, PcaConfig, PsimRng, RunConfig, StreamingPca};
use rand::{Rng, SeedableRng};
use rand_distr::{Distribution, StandardNormal};
use std::hint::black_box;
use std::time::Instant;
fn main() {
    let n = 20_000_000u64;
    for _ in 0..2 {
        let mut rng = PsimRng::seed_from_u64(1);
        let t = Instant::now();
        let mut acc = 0.0;
        for _ in 0..n {
            acc += rng.random::<u64>() as f64;
        }
        black_box(acc);
        let u = t.elapsed().as_secs_f64() / n as f64 * 1e9;
        let t = Instant::now();
        let mut acc = 0.0f64;
        for _ in 0..n {
            let z: f64 = StandardNormal.sample(&mut rng);
            acc += z;
        }
        black_box(acc);
        let z = t.elapsed().as_secs_f64() / n as f64 * 1e9;
        let p = StreamingPca::new(&PcaConfig::default()).unwrap();
        let mut g = [0.0; 4];
        let s = [0.1, 0.9, 0.1, 0.1];
        let t = Instant::now();
        for _ in 0..n / 4 {
            p.gradient(black_box(&s), &mut rng, &mut g);
            black_box(&g);
        }
        let gr = t.elapsed().as_secs_f64() / (n / 4) as f64 * 1e9;
        let cfg = RunConfig {
            momentum: 0.7,
            steps: 200_000,
            ..Default::default()
        }
        .with_delay(psim_common::Delay::constant(10));
        let o = AnyObjective::build(&cfg.objective).unwrap();
        let t = Instant::now();
        let mut steps = 0;
        for r in 0..25 {
            steps += psim_engine::run_injected(&cfg, &o, r).counters.applied;
        }
        let st = t.elapsed().as_secs_f64() / steps as f64 * 1e9;
        println!(
            "u64 {u:.2} ns | normal {z:.2} ns | pca gradient {gr:.2} ns | engine step {st:.2} ns"
        );
        let _ = o.dim();
    }
}
