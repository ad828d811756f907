//! Fixed work for instruction-count profiles of one engine step:
//! `profile_step scalar|batched|avx2|portable STEPS TAU` runs 8 runs of
//! E1's problem (μ = 0.7) for STEPS steps at constant delay TAU. Profile
//! two step counts under `valgrind --tool=callgrind` and divide the
//! difference of the totals by 8 × the difference of the steps: the
//! instructions of one run-step, set-up excluded.
use psim_common::{AnyObjective, Delay, RunConfig};
use psim_engine::batched::{self, Simd};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let path = args.get(1).map_or("batched", String::as_str);
    let steps: u64 = args.get(2).map_or(50_000, |s| s.parse().unwrap());
    let tau: u64 = args.get(3).map_or(10, |s| s.parse().unwrap());
    let mut cfg = RunConfig {
        momentum: 0.7,
        steps,
        ..RunConfig::default()
    }
    .with_delay(Delay::constant(tau));
    // `uniform` as a fourth argument: uniform data instead of Gaussian (the
    // cost of the step without the normal transform).
    if args.get(4).map(String::as_str) == Some("uniform") {
        if let psim_common::ObjectiveConfig::Pca(p) = &mut cfg.objective {
            p.data = psim_common::DataDistribution::Uniform;
        }
    }
    let t = std::time::Instant::now();
    let applied: u64 = match path {
        "scalar" => {
            let o = AnyObjective::build(&cfg.objective).unwrap();
            (0..8)
                .map(|r| psim_engine::run_injected(&cfg, &o, r).counters.applied)
                .sum()
        }
        level => {
            let simd = match level {
                "avx2" => Simd::Avx2,
                "portable" => Simd::Portable,
                _ => Simd::detect(),
            };
            batched::run_batched_with(&cfg, 0..8, simd)
                .unwrap()
                .iter()
                .map(|r| r.counters.applied)
                .sum()
        }
    };
    let secs = t.elapsed().as_secs_f64();
    println!(
        "{path}: {applied} run-steps, {:.1} M run-steps/s (wall)",
        applied as f64 / secs / 1e6
    );
}
