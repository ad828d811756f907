//! The injected-staleness engine: determinism, history policies,
//! divergence handling, and eq. (2.1)'s staleness semantics.

use psim_common::{
    AnyObjective, Delay, Experiment, Grid, HistoryConfig, HistoryPolicy, Outcome, RunConfig,
};
use psim_engine::run_injected;
use psim_scenarios::sweep::{run_sweep, SweepOptions, SweepResult};

fn small(delay: &str) -> RunConfig {
    RunConfig {
        steps: 5_000,
        runs: 1,
        ..RunConfig::default()
    }
    .with_delay(delay.parse().unwrap())
}

fn with_history(mut cfg: RunConfig, capacity: usize, policy: HistoryPolicy) -> RunConfig {
    cfg.engine.injected_mut().unwrap().history = HistoryConfig { capacity, policy };
    cfg
}

fn fingerprint(s: &SweepResult) -> Vec<(u64, u64, u64, String)> {
    s.points
        .iter()
        .flat_map(|p| {
            p.rows.iter().map(|r| {
                (
                    r.final_error.to_bits(),
                    r.tail_error.to_bits(),
                    r.counters.applied,
                    format!("{:?}", r.outcome),
                )
            })
        })
        .collect()
}

#[test]
fn sweeps_are_bit_identical_whatever_the_thread_count() {
    let e = Experiment {
        name: "det".into(),
        base: RunConfig {
            steps: 3_000,
            runs: 6,
            ..RunConfig::default()
        },
        grid: Grid {
            momentum: vec![0.5, 0.9],
            delay: vec![
                Delay::constant(0),
                "uniform:0..30".parse().unwrap(),
                "pareto:1,1.1".parse().unwrap(),
            ],
            ..Grid::default()
        },
        tradeoff: None,
    };
    let one = run_sweep(
        &e,
        &SweepOptions {
            threads: 1,
            progress: None,
            cancel: None,
        },
    )
    .unwrap();
    let two = run_sweep(
        &e,
        &SweepOptions {
            threads: 2,
            progress: None,
            cancel: None,
        },
    )
    .unwrap();
    let three = run_sweep(
        &e,
        &SweepOptions {
            threads: 3,
            progress: None,
            cancel: None,
        },
    )
    .unwrap();
    assert_eq!(one.threads, 1);
    assert_eq!(fingerprint(&one), fingerprint(&two));
    assert_eq!(fingerprint(&one), fingerprint(&three));
    // And the seed matters.
    let other = run_sweep(
        &Experiment {
            base: RunConfig {
                seed: 99,
                ..e.base.clone()
            },
            ..e.clone()
        },
        &SweepOptions::default(),
    )
    .unwrap();
    assert_ne!(fingerprint(&one), fingerprint(&other));
}

#[test]
fn constant_delay_is_served_exactly() {
    let cfg = small("const:25");
    let obj = AnyObjective::build(&cfg.objective).unwrap();
    let r = run_injected(&cfg, &obj, 0);
    let s = r.staleness.summary();
    // The first 25 steps read v_0, which is k versions back at step k.
    assert_eq!(s.max, 25);
    assert_eq!(s.count, 5_000);
    assert_eq!(s.p50, 25);
    assert_eq!(r.counters.clamped, 0);
    r.counters.check().unwrap();
}

/// uniform:0..100 against a history of 16 versions: P(τ ≥ 16) = 85/101.
/// After the first 16 steps every such draw is clamped (or dropped), so the
/// count is Binomial(n − 16, 85/101) and we allow 5 standard deviations.
#[test]
fn history_policies_count_every_out_of_range_staleness() {
    for policy in [HistoryPolicy::Clamp, HistoryPolicy::Drop] {
        let cfg = with_history(small("uniform:0..100"), 16, policy);
        let obj = AnyObjective::build(&cfg.objective).unwrap();
        let r = run_injected(&cfg, &obj, 0);
        let c = r.counters;
        c.check().unwrap();
        assert_eq!(c.received, 5_000);
        let n = (5_000 - 16) as f64;
        let p = 85.0 / 101.0;
        let events = match policy {
            HistoryPolicy::Clamp => c.clamped,
            HistoryPolicy::Drop => c.dropped_too_stale,
        } as f64;
        assert!(
            (events - n * p).abs() < 5.0 * (n * p * (1.0 - p)).sqrt() + 16.0,
            "{policy:?}: {events} vs {}",
            n * p
        );
        assert!(
            r.staleness.max() <= 15,
            "nothing beyond the history is applied"
        );
        match policy {
            HistoryPolicy::Clamp => assert_eq!(c.applied, 5_000),
            HistoryPolicy::Drop => assert_eq!(c.applied + c.dropped_too_stale, 5_000),
        }
    }
}

#[test]
fn divergence_is_an_outcome_and_the_sweep_goes_on() {
    let e = Experiment {
        name: "div".into(),
        base: RunConfig {
            steps: 10_000,
            runs: 3,
            ..RunConfig::default()
        },
        grid: Grid {
            momentum: vec![0.5],
            step_size: vec![5e-4, 0.5],
            ..Grid::default()
        },
        tradeoff: None,
    };
    let s = run_sweep(&e, &SweepOptions::default()).unwrap();
    assert_eq!(s.points[0].summary.diverged, 0);
    assert_eq!(s.points[1].summary.diverged, 3);
    for r in &s.points[1].rows {
        match r.outcome {
            Outcome::Diverged { step } => assert!(step > 0 && step < 10_000, "stopped at {step}"),
            other => panic!("expected divergence, got {other:?}"),
        }
        assert!(r.final_error.is_nan());
        r.counters.check().unwrap();
    }
    assert!(s.points[0].summary.error.mean < 0.1);
}

#[test]
fn heavy_tailed_delays_with_infinite_mean_still_run() {
    let cfg = with_history(small("pareto:1,0.5"), 64, HistoryPolicy::Clamp);
    let obj = AnyObjective::build(&cfg.objective).unwrap();
    let r = run_injected(&cfg, &obj, 3);
    r.counters.check().unwrap();
    assert!(r.counters.clamped > 0);
    assert!(r.staleness.max() <= 63);
}

#[test]
fn target_error_stops_early() {
    let cfg = RunConfig {
        target_error: Some(0.05),
        ..small("const:0")
    };
    let obj = AnyObjective::build(&cfg.objective).unwrap();
    let r = run_injected(&cfg, &obj, 0);
    match r.outcome {
        Outcome::TargetErrorReached { step } => assert!(step < 5_000 && r.final_error <= 0.05),
        other => panic!("expected target reached, got {other:?}"),
    }
}
