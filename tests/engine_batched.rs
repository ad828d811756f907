//! The batched path of the injected engine against the scalar reference:
//! the same law on every E1 point, the same bookkeeping semantics, and
//! results that depend only on (seed, configuration, run index).

use psim_common::{
    AnyObjective, Delay, EngineConfig, Experiment, HistoryConfig, HistoryPolicy, InjectedConfig,
    ObjectiveConfig, Outcome, PcaConfig, RunConfig, RunResult,
};
use psim_engine::batched::{self, Simd};
use psim_engine::{run_injected, run_runs};
use psim_scenarios::catalogue::Scenario;
use psim_scenarios::experiments::tradeoff::Tradeoff;
use psim_scenarios::sweep::{run_sweep, SweepOptions, SweepResult};

/// Every number of a run, as bits, in one comparable string.
fn bits(r: &RunResult) -> String {
    format!(
        "{:?}",
        (
            r.final_error.to_bits(),
            r.tail_error.to_bits(),
            format!("{:?}", r.outcome),
            r.trace
                .iter()
                .map(|t| (t.step, t.error.to_bits()))
                .collect::<Vec<_>>(),
            r.staleness.iter().collect::<Vec<_>>(),
            format!("{:?}", r.counters),
        )
    )
}

fn sweep_bits(s: &SweepResult) -> Vec<(u64, u64, String, u64)> {
    s.points
        .iter()
        .flat_map(|p| {
            p.rows.iter().map(|r| {
                (
                    r.final_error.to_bits(),
                    r.tail_error.to_bits(),
                    format!("{:?}", r.outcome),
                    r.counters.applied,
                )
            })
        })
        .collect()
}

/// Every E1 point (5 μ × 17 τ, 100 runs × 2·10⁴ steps, E1's own seed) on
/// both engines. Per point, with SEMs s_a, s_b over the non-diverged runs,
/// z = (mean_a − mean_b)/√(s_a² + s_b²) is ≈ N(0, 1) when both engines
/// draw from the same law. With 85 points, |z| > 3 happens at
/// 85 × 0.0027 ≈ 0.23 points on average: we allow at most 2 (P(≥ 3) ≈ 0.001
/// for independent points), and none above 4.5 (Bonferroni: 85 × 6.8·10⁻⁶
/// ≈ 6·10⁻⁴). Diverged counts k_a, k_b of n runs are compared the same way
/// (two-proportion z with the pooled rate p, SE √(2p(1−p)/n)), allowing
/// one run of slack for the discrete counts: |k_a − k_b| ≤ 4.5·n·SE + 1.
#[test]
fn batched_and_scalar_agree_on_every_e1_point() {
    let e1 = Tradeoff.experiment();
    let mut on_scalar = e1.clone();
    on_scalar.base.engine.injected_mut().unwrap().scalar = true;
    let scalar = run_sweep(&on_scalar, &SweepOptions::default()).unwrap();
    let batched = run_sweep(&e1, &SweepOptions::default()).unwrap();
    let mut beyond3 = Vec::new();
    for (a, b) in scalar.points.iter().zip(&batched.points) {
        let (sa, sb) = (&a.summary, &b.summary);
        let n = sa.runs as f64;
        let p = (sa.diverged + sb.diverged) as f64 / (2.0 * n);
        let se_div = (2.0 * p * (1.0 - p) / n).sqrt();
        assert!(
            (sa.diverged as f64 - sb.diverged as f64).abs() <= 4.5 * n * se_div + 1.0,
            "μ = {}, τ = {}: diverged {} (scalar) vs {} (batched)",
            sa.momentum,
            sa.setting(),
            sa.diverged,
            sb.diverged
        );
        // A mean needs at least 2 surviving runs on each side.
        if sa.runs - sa.diverged < 2 || sb.runs - sb.diverged < 2 {
            continue;
        }
        let se = (sa.error.sem.powi(2) + sb.error.sem.powi(2)).sqrt();
        let z = (sa.error.mean - sb.error.mean) / se;
        assert!(
            z.abs() < 4.5,
            "μ = {}, τ = {}: mean error {} ± {} (scalar) vs {} ± {} (batched), z = {z:.2}",
            sa.momentum,
            sa.setting(),
            sa.error.mean,
            sa.error.sem,
            sb.error.mean,
            sb.error.sem
        );
        if z.abs() > 3.0 {
            beyond3.push((sa.momentum, sa.delay.clone(), z));
        }
    }
    assert!(beyond3.len() <= 2, "points beyond 3 SEM: {beyond3:?}");
}

fn small_e1(runs: u32) -> Experiment {
    let mut e = Tradeoff.experiment();
    e.base.runs = runs;
    e.base.steps = 4_000;
    e.grid.momentum = vec![0.7, 0.95];
    e.grid.delay = [0, 12, 14, 16, 18, 150].map(Delay::constant).to_vec();
    e
}

#[test]
fn batched_sweeps_are_bit_identical_at_one_and_two_threads() {
    let mut e = small_e1(20);
    // A tight divergence threshold: lanes of one batch stop at different steps.
    e.base.divergence_norm = 1.1;
    let one = run_sweep(
        &e,
        &SweepOptions {
            threads: 1,
            ..SweepOptions::default()
        },
    )
    .unwrap();
    let two = run_sweep(
        &e,
        &SweepOptions {
            threads: 2,
            ..SweepOptions::default()
        },
    )
    .unwrap();
    assert_eq!((one.threads, two.threads), (1, 2));
    assert_eq!(sweep_bits(&one), sweep_bits(&two));
    // Some lanes diverge and others do not within one batch.
    let div: Vec<usize> = one.points.iter().map(|p| p.summary.diverged).collect();
    assert!(
        div.iter().any(|&d| d > 0 && d < 20),
        "diverged per point: {div:?}"
    );
}

/// A run's numbers depend on (seed, configuration, run index) only: not on
/// the other runs of its batch, nor on the SIMD level.
#[test]
fn a_run_does_not_depend_on_its_batch_or_the_vector_width() {
    for delay in ["const:10", "uniform:0..30", "exp:20"] {
        let cfg = RunConfig {
            momentum: 0.9,
            steps: 3_000,
            engine: EngineConfig::Injected(InjectedConfig {
                delay: delay.parse().unwrap(),
                ..Default::default()
            }),
            ..RunConfig::default()
        };
        let all = batched::run_batched(&cfg, 0..11).unwrap();
        let some = batched::run_batched(&cfg, 5..7).unwrap();
        assert_eq!(bits(&all[5]), bits(&some[0]), "{delay}");
        assert_eq!(bits(&all[6]), bits(&some[1]), "{delay}");
        for simd in [Simd::Avx512, Simd::Avx2, Simd::Portable] {
            if simd.available() {
                let other = batched::run_batched_with(&cfg, 0..11, simd).unwrap();
                for (a, b) in all.iter().zip(&other) {
                    assert_eq!(bits(a), bits(b), "{delay} at {simd:?}");
                }
            }
        }
    }
}

/// Constant delays and the delay stream (shared with the scalar engine)
/// make the staleness histogram, the counters and the trace steps equal to
/// the scalar engine's as long as neither run stops early.
#[test]
fn bookkeeping_matches_the_scalar_engine() {
    for (delay, cap, policy) in [
        ("const:7", 1024, HistoryPolicy::Clamp),
        ("const:40", 16, HistoryPolicy::Clamp),
        ("const:40", 16, HistoryPolicy::Drop),
        ("uniform:0..30", 1024, HistoryPolicy::Clamp),
        ("uniform:0..30", 1024, HistoryPolicy::Drop),
        ("pareto:1,1.1", 64, HistoryPolicy::Clamp),
        ("0.9*const:3+0.1*geometric:0.05", 1024, HistoryPolicy::Clamp),
    ] {
        let cfg = RunConfig {
            momentum: 0.5,
            steps: 2_345,
            record_every: 50,
            engine: EngineConfig::Injected(InjectedConfig {
                delay: delay.parse().unwrap(),
                history: HistoryConfig {
                    capacity: cap,
                    policy,
                },
                scalar: false,
            }),
            ..RunConfig::default()
        };
        assert_eq!(batched::unsupported(&cfg), None, "{delay}");
        let obj = AnyObjective::build(&cfg.objective).unwrap();
        let b = batched::run_batched(&cfg, 0..3).unwrap();
        for r in 0..3 {
            let s = run_injected(&cfg, &obj, r);
            let b = &b[r as usize];
            assert_eq!(b.run, r);
            assert_eq!(b.outcome, s.outcome, "{delay}");
            assert_eq!(b.counters, s.counters, "{delay}");
            b.counters.check().unwrap();
            assert_eq!(
                b.staleness.iter().collect::<Vec<_>>(),
                s.staleness.iter().collect::<Vec<_>>(),
                "{delay}"
            );
            let steps = |r: &RunResult| r.trace.iter().map(|t| t.step).collect::<Vec<_>>();
            assert_eq!(steps(b), steps(&s), "{delay}");
            assert!(b.final_error.is_finite() && b.tail_error.is_finite());
        }
    }
}

/// Lanes stop on their own: a target error stops each lane at its own step
/// (the others go on), and divergence leaves NaN errors and the step.
#[test]
fn lanes_stop_independently() {
    let cfg = RunConfig {
        momentum: 0.9,
        steps: 50_000,
        target_error: Some(0.05),
        ..RunConfig::default()
    };
    let res = batched::run_batched(&cfg, 0..8).unwrap();
    let mut stops = Vec::new();
    for r in &res {
        let Outcome::TargetErrorReached { step } = r.outcome else {
            panic!("{:?}", r.outcome)
        };
        assert_eq!(r.trace.last().unwrap().step, step);
        assert!(r.final_error <= 0.05);
        assert_eq!(r.counters.applied, step);
        assert_eq!(r.staleness.count(), step);
        stops.push(step);
    }
    stops.dedup();
    assert!(stops.len() > 1, "lanes stopped together: {stops:?}");

    let cfg = RunConfig {
        momentum: 0.95,
        steps: 20_000,
        engine: EngineConfig::Injected(InjectedConfig {
            delay: Delay::constant(160),
            ..Default::default()
        }),
        ..RunConfig::default()
    };
    let res = batched::run_batched(&cfg, 0..8).unwrap();
    for r in &res {
        let Outcome::Diverged { step } = r.outcome else {
            panic!("{:?}", r.outcome)
        };
        assert!(r.final_error.is_nan() && r.tail_error.is_nan());
        assert_eq!(r.counters.applied, step);
        assert!(r.trace.iter().all(|t| t.step < step));
    }
}

/// Every rule and a schedule run batched and agree with the scalar engine
/// in mean (at 64 runs; the same 4.5-SEM bound as above).
#[test]
fn rules_and_schedules_agree_with_the_scalar_engine() {
    for (rule, schedule) in [
        ("sgd", "constant"),
        ("nesterov", "constant"),
        ("staleness-aware", "anneal:3000:0.5"),
        ("dc-asgd:0.5", "constant"),
    ] {
        let cfg = RunConfig {
            momentum: 0.8,
            steps: 6_000,
            runs: 64,
            engine: EngineConfig::Injected(InjectedConfig {
                delay: "uniform:0..20".parse().unwrap(),
                ..Default::default()
            }),
            rule: rule.parse().unwrap(),
            schedule: schedule.parse().unwrap(),
            ..RunConfig::default()
        };
        let obj = AnyObjective::build(&cfg.objective).unwrap();
        let b = batched::run_batched(&cfg, 0..64).unwrap();
        let s: Vec<RunResult> = (0..64).map(|r| run_injected(&cfg, &obj, r)).collect();
        let stats = |v: &[RunResult]| {
            let x: Vec<f64> = v.iter().map(|r| r.tail_error).collect();
            let n = x.len() as f64;
            let m = x.iter().sum::<f64>() / n;
            let var = x.iter().map(|t| (t - m).powi(2)).sum::<f64>() / (n - 1.0);
            (m, var / n)
        };
        let ((ma, va), (mb, vb)) = (stats(&s), stats(&b));
        let z = (ma - mb) / (va + vb).sqrt();
        assert!(z.abs() < 4.5, "{rule} {schedule}: {ma} vs {mb}, z = {z:.2}");
    }
}

/// Full covariance, uniform data and d = 3 are batched; the MLP, d = 10
/// and unbounded delays under `drop` fall back to the scalar engine, and
/// `run_runs` then returns exactly the scalar results.
#[test]
fn coverage_and_fallback() {
    let pca = |spectrum: Vec<f64>| {
        ObjectiveConfig::Pca(PcaConfig {
            spectrum,
            ..PcaConfig::default()
        })
    };
    let rotated = ObjectiveConfig::Pca(PcaConfig {
        spectrum: vec![],
        covariance: Some(vec![vec![3.0, 1.0], vec![1.0, 2.0]]),
        data: psim_common::DataDistribution::Uniform,
        ..PcaConfig::default()
    });
    let base = RunConfig {
        steps: 3_000,
        ..RunConfig::default()
    };
    for objective in [rotated, pca(vec![3.0, 2.0, 1.0])] {
        let cfg = RunConfig {
            objective,
            ..base.clone()
        };
        assert_eq!(batched::unsupported(&cfg), None);
        let r = batched::run_batched(&cfg, 0..4).unwrap();
        assert!(
            r.iter().all(|r| r.final_error < 0.2),
            "{:?}",
            r[0].final_error
        );
    }
    let unbatched = [
        RunConfig {
            objective: pca((1..=10).rev().map(f64::from).collect()),
            ..base.clone()
        },
        RunConfig {
            engine: EngineConfig::Injected(InjectedConfig {
                delay: "exp:5".parse().unwrap(),
                history: HistoryConfig {
                    capacity: 8,
                    policy: HistoryPolicy::Drop,
                },
                scalar: false,
            }),
            ..base.clone()
        },
    ];
    for cfg in unbatched {
        assert!(batched::unsupported(&cfg).is_some());
        let obj = AnyObjective::build(&cfg.objective).unwrap();
        let r = run_runs(&cfg, &obj, 0..3).unwrap();
        for (i, r) in r.iter().enumerate() {
            let s = run_injected(&cfg, &obj, i as u64);
            assert_eq!(
                (r.final_error.to_bits(), r.counters),
                (s.final_error.to_bits(), s.counters)
            );
        }
    }
}
