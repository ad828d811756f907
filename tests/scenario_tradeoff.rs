//! E1, the momentum–delay tradeoff, against the paper and the theory.

use psim_common::{Experiment, ObjectiveConfig};
use psim_scenarios::catalogue::Scenario;
use psim_scenarios::experiments::tradeoff::{analyse, TradeoffRow};
use psim_scenarios::experiments::tradeoff::{Tradeoff, PAPER_OPTIMAL_DELAYS};
use psim_scenarios::sweep::{run_sweep, SweepOptions};

fn analysed(e: &Experiment) -> Vec<TradeoffRow> {
    let s = run_sweep(e, &SweepOptions::default()).unwrap();
    analyse(&s, &e.tradeoff.unwrap())
}

/// The full default scenario (100 runs × 2·10⁴ steps × 85 points) gives the
/// paper's optimal delays within ±10 (±20 for μ = 0.7), the acceptance
/// tolerance. The measured values sit on the grid of 10.
#[test]
fn e1_defaults_reproduce_the_papers_optimal_delays() {
    let rows = analysed(&Tradeoff.experiment());
    assert_eq!(rows.len(), 5);
    for (r, (mu, paper)) in rows.iter().zip(PAPER_OPTIMAL_DELAYS) {
        assert_eq!(r.momentum, mu);
        let got = r.optimal_delay.expect("some delay is tolerated");
        let tol = if mu == 0.7 { 20.0 } else { 10.0 };
        assert!(
            (got - paper).abs() <= tol,
            "μ = {mu}: optimal delay {got}, paper {paper}"
        );
    }
}

/// A reduced E1 (20 runs × 10⁴ steps): optimal delays fall strictly as μ grows.
#[test]
fn optimal_delay_falls_as_momentum_grows() {
    let mut e = Tradeoff.experiment();
    e.base.runs = 20;
    e.base.steps = 10_000;
    let rows = analysed(&e);
    let d: Vec<f64> = rows.iter().map(|r| r.optimal_delay.unwrap()).collect();
    assert!(d.windows(2).all(|w| w[0] > w[1]), "{d:?}");
}

/// Halving η should roughly double the tolerated delay (the stability bound
/// scales as (1−μ)/(ηλ₁)); we assert it moves up for both μ. Twice the
/// steps keep the runs equally stationary.
#[test]
fn halving_the_step_size_moves_optimal_delays_up() {
    let mut e = Tradeoff.experiment();
    e.base.runs = 20;
    e.base.steps = 40_000;
    e.grid.momentum = vec![0.8, 0.9];
    e.grid.step_size = vec![5e-4, 2.5e-4];
    e.grid.delay = (0..=24)
        .map(|k| psim_common::Delay::constant(10 * k))
        .collect();
    let rows = analysed(&e);
    for mu in [0.8, 0.9] {
        let at = |eta: f64| {
            rows.iter()
                .find(|r| r.momentum == mu && r.step_size == eta)
                .unwrap()
                .optimal_delay
                .unwrap()
        };
        assert!(
            at(2.5e-4) >= at(5e-4) + 20.0,
            "μ = {mu}: {} at η/2 vs {} at η",
            at(2.5e-4),
            at(5e-4)
        );
    }
}

/// A larger spectrum (λ₁ doubled) stiffens the radial mode: delays fall.
#[test]
fn a_larger_top_eigenvalue_moves_optimal_delays_down() {
    let mut e = Tradeoff.experiment();
    e.base.runs = 20;
    e.base.steps = 10_000;
    e.grid.momentum = vec![0.8];
    let base = analysed(&e)[0].optimal_delay.unwrap();
    let ObjectiveConfig::Pca(p) = &mut e.base.objective else {
        panic!("E1 is streaming PCA")
    };
    p.spectrum = vec![8.0, 3.0, 2.0, 1.0];
    let stiff = analysed(&e)[0].optimal_delay.unwrap();
    assert!(stiff < base, "{stiff} vs {base}");
}

/// With 1000 runs, the mean stationary error at τ = 0 matches the
/// Ornstein–Uhlenbeck value within 10% (the acceptance bound). The
/// statistical error is far smaller: each run averages ~8 correlation times
/// of an error with relative spread ~0.8, so the mean over 1000 runs has a
/// relative standard error of about 1%; the rest of the budget covers the
/// O(η/(1−μ)) bias of the diffusion approximation.
#[test]
fn stationary_error_matches_the_ou_prediction() {
    let mut e = Tradeoff.experiment();
    e.base.runs = 1000;
    e.grid.delay = vec![psim_common::Delay::constant(0)];
    for r in analysed(&e) {
        let ou = r.theory_ou_error.unwrap();
        let rel = r.baseline_error / ou - 1.0;
        assert!(
            rel.abs() < 0.10,
            "μ = {}: measured {} vs OU {ou} ({:+.1}%)",
            r.momentum,
            r.baseline_error,
            rel * 100.0
        );
    }
}
