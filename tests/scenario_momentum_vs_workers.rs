//! E2 in small: the best momentum falls as workers (and so staleness) grow.

use psim_scenarios::experiments::momentum_vs_workers::{run_e2, E2Settings};
use psim_scenarios::sweep::SweepOptions;

#[test]
fn best_momentum_falls_with_workers_quick() {
    let s = E2Settings {
        workers: vec![1, 4, 16],
        seeds: 3,
        step_sizes: vec![0.02],
        ..E2Settings::default()
    };
    let r = run_e2(&s, &SweepOptions::default()).unwrap();
    let best = r.best_momentum();
    assert!(
        best.windows(2).all(|w| w[1].1 <= w[0].1),
        "best μ must not rise with workers: {best:?}\n{}",
        r.table()
    );
    assert!(
        best[0].1 > best[2].1,
        "1 worker prefers more momentum than 16: {best:?}"
    );
    let (one, many) = (r.cell(1, 0.9).unwrap(), r.cell(16, 0.9).unwrap());
    // The gap must exceed the seed-to-seed spread, not just the means.
    assert!(
        many.mean + 2.0 * many.sd < one.mean - 2.0 * one.sd,
        "μ = 0.9: {} ± {} at 16 workers vs {} ± {} at 1",
        many.mean,
        many.sd,
        one.mean,
        one.sd
    );
    // Equal-speed workers: the staleness is M−1 after the first round.
    let c = r.cell(16, 0.1).unwrap();
    assert!(
        (c.mean_staleness - 15.0).abs() < 0.1,
        "{}",
        c.mean_staleness
    );
    assert!(r.trend_holds() && psim_scenarios::verdict::verdict(&r.table()) == Some(true));
    assert_eq!(r.csv().lines().count(), 1 + 3 * 5 * 3);
}

#[test]
fn scenario_round_trips_its_settings_through_the_experiment() {
    let s = E2Settings::default();
    let e = s.experiment(16);
    e.validate().unwrap();
    assert_eq!(E2Settings::from_experiment(&e).unwrap(), s);
    let mut pca = e.clone();
    pca.base.objective = psim_common::ObjectiveConfig::default();
    let err = E2Settings::from_experiment(&pca).err().unwrap().to_string();
    assert!(err.contains("MLP"), "{err}");
}

/// The step-size axis: one accuracy table per η and the best-μ-versus-workers
/// table with a column per η (2 seeds × 200 updates: only the layout is tested).
#[test]
fn one_table_per_step_size_and_the_best_momentum_table() {
    let s = E2Settings {
        workers: vec![1, 2],
        momenta: vec![0.5, 0.9],
        seeds: 2,
        steps: 200,
        step_sizes: vec![0.01, 0.05],
        ..E2Settings::default()
    };
    let r = run_e2(&s, &SweepOptions::default()).unwrap();
    let t = r.table();
    for h in [
        "\nη = 0.01:",
        "\nη = 0.05:",
        "| workers | η = 0.01 | η = 0.05 |",
    ] {
        assert!(t.contains(h), "missing {h:?}:\n{t}");
    }
    assert_eq!(r.cells.len(), 2 * 2 * 2);
    assert_eq!(r.best_momentum_at(0.05).len(), 2);
    assert_eq!(r.csv().lines().count(), 1 + 8 * 2);
}
