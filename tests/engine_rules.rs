//! The update rules inside the engines, on E1's problem.

use psim_common::{AnyObjective, Delay, RuleKind, RunConfig};
use psim_engine::run_injected;

fn diverged(rule: RuleKind, tau: u64) -> usize {
    let cfg = RunConfig {
        momentum: 0.9,
        steps: 20_000,
        runs: 5,
        rule,
        ..RunConfig::default()
    }
    .with_delay(Delay::constant(tau));
    let o = AnyObjective::build(&cfg.objective).unwrap();
    (0..cfg.runs as u64)
        .filter(|&r| run_injected(&cfg, &o, r).outcome.diverged())
        .count()
}

/// At μ = 0.9, η = 5·10⁻⁴ the linearised delayed heavy ball is stable up to
/// τ = 32 (theory::max_stable_delay with curvature 2λ₁ = 8): heavy ball
/// diverges at τ = 100 in every run (E1 shows every run diverging from τ = 90), while dividing the step by τ
/// (staleness-aware) gives gain 8η/100 and stays stable (its largest stable
/// delay at that gain is far above 100). Deterministic, not statistical:
/// the growth rate of the unstable mode is large.
#[test]
fn staleness_aware_step_survives_a_delay_that_breaks_heavy_ball() {
    assert_eq!(diverged(RuleKind::HeavyBall, 100), 5);
    assert_eq!(diverged(RuleKind::StalenessAware, 100), 0);
    assert_eq!(diverged(RuleKind::HeavyBall, 10), 0);
}

/// Every engine applies the configured rule, not a hard-coded heavy ball:
/// on the deterministic virtual-time engine, SGD at μ = 0.9 (momentum
/// ignored) reproduces heavy ball at μ = 0 and differs from heavy ball at
/// μ = 0.9.
#[test]
fn the_virtual_time_engine_honours_the_rule() {
    use psim_common::{ClusterConfig, Delay, EngineConfig, EngineKind, RunConfig};
    use psim_engine::run_virtual_time;
    let base = RunConfig {
        steps: 3_000,
        engine: EngineConfig::new(
            EngineKind::VirtualTime,
            ClusterConfig {
                workers: 4,
                compute_time: Delay::Exponential { mean: 1e-3 },
                ..ClusterConfig::default()
            },
        ),
        ..RunConfig::default()
    };
    let obj = psim_common::AnyObjective::build(&base.objective).unwrap();
    let sgd = run_virtual_time(
        &RunConfig {
            rule: RuleKind::Sgd,
            momentum: 0.9,
            ..base.clone()
        },
        &obj,
        0,
    );
    let hb0 = run_virtual_time(
        &RunConfig {
            rule: RuleKind::HeavyBall,
            momentum: 0.0,
            ..base.clone()
        },
        &obj,
        0,
    );
    let hb9 = run_virtual_time(
        &RunConfig {
            rule: RuleKind::HeavyBall,
            momentum: 0.9,
            ..base.clone()
        },
        &obj,
        0,
    );
    assert!(
        (sgd.final_error - hb0.final_error).abs() < 1e-12,
        "{} vs {}",
        sgd.final_error,
        hb0.final_error
    );
    assert!((sgd.final_error - hb9.final_error).abs() > 1e-6);
}
