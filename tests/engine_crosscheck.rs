//! Cross-check: the virtual-time engine and real OS threads agree on the
//! staleness distribution for the same cluster model (M ≤ 8 workers with
//! exponential compute times), measured by the Kolmogorov–Smirnov distance.

use psim_common::stats::{ks_critical, ks_distance};
use psim_common::{AnyObjective, ClusterConfig, Delay, EngineConfig, EngineKind, RunConfig};
use psim_engine::{run_threads, run_virtual_time};
use std::sync::Arc;

fn cfg(workers: usize, steps: u64, engine: EngineKind) -> RunConfig {
    RunConfig {
        steps,
        engine: EngineConfig::new(
            engine,
            ClusterConfig {
                workers,
                compute_time: Delay::Exponential { mean: 2e-3 },
                ..ClusterConfig::default()
            },
        ),
        ..RunConfig::default()
    }
}

/// Tolerance: with n ≈ 1200 real pushes the iid two-sample KS critical value
/// at α = 0.001 is about 0.06; consecutive stalenesses of a real run are
/// correlated (fewer effective samples) and OS sleeps overshoot by tens of
/// µs on 2 ms (a few % of the clock), so we allow twice the iid critical value.
/// A wrong model (e.g. staleness M−1 constant, or a server serialising
/// workers) gives distances above 0.3.
#[test]
fn staleness_distributions_of_virtual_time_and_threads_agree() {
    let objective = AnyObjective::build(&RunConfig::default().objective).unwrap();
    for workers in [2usize, 4, 8] {
        let vt = run_virtual_time(
            &cfg(workers, 20_000, EngineKind::VirtualTime),
            &objective,
            0,
        );
        let th = run_threads(
            &cfg(workers, 1_200, EngineKind::Threads),
            Arc::new(objective.clone()),
            0,
        )
        .unwrap();
        let d = ks_distance(&vt.staleness, &th.staleness);
        let crit = ks_critical(vt.staleness.count(), th.staleness.count(), 0.001);
        eprintln!(
            "M = {workers}: KS distance {d:.4}, iid critical {crit:.4}, means {:.2} vs {:.2}",
            vt.staleness.mean(),
            th.staleness.mean()
        );
        assert!(
            d < 2.0 * crit,
            "M = {workers}: KS distance {d} ≥ 2 × {crit}"
        );
    }
}
