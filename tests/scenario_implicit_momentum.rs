//! `psim reproduce implicit-momentum`: the implicit momentum fitted from the
//! mean path agrees with 1 − 1/M within its derived tolerance under the
//! queueing model (exponential compute times), and a wrong model (constant
//! compute times) is told apart.

use psim_common::theory::implicit_momentum;
use psim_common::Experiment;
use psim_scenarios::catalogue::Scenario;
use psim_scenarios::experiments::implicit_momentum::{run, ImplicitMomentumScenario, T_QUANTILE};
use psim_scenarios::sweep::SweepOptions;

/// A small configuration: M ∈ {1, 2, 4, 8}, 50 runs × 150 steps, a short
/// explicit grid, constant compute times as the other model.
fn small() -> Experiment {
    let mut e = ImplicitMomentumScenario.experiment();
    e.grid.workers = vec![1, 2, 4, 8];
    e.grid.momentum = vec![0.0, 0.45, 0.9];
    e.grid.compute_time = vec!["const:1".parse().unwrap()];
    e.base.runs = 50;
    e.base.steps = 150;
    e
}

/// Under exponential compute times the recursion of the mean is exact, so
/// μ̂ − (1 − 1/M) is the fit's noise: within t₉,0.999 · SE (the batch SE
/// has 9 degrees of freedom; a fixed seed, so the test is deterministic,
/// and it fails by chance with probability ≈ 0.4% over the 4 M). The
/// staleness histogram's p̂ agrees too (its SE is not the verdict's, so a
/// wider 0.01). And the misfit of the fitted path is the Monte Carlo noise
/// (ratio ≈ 1; 2.5 allows the correlation of the residuals over steps).
#[test]
fn the_fitted_momentum_is_one_minus_one_over_m() {
    let d = run(&small(), &SweepOptions::default()).unwrap();
    assert_eq!(d.implicit.len(), 4);
    for r in &d.implicit {
        let f = r.fit.expect("a fit");
        assert_eq!(r.theory, implicit_momentum(r.workers as u64));
        assert!(
            (f.momentum - r.theory).abs() <= T_QUANTILE * r.se + 1e-9,
            "M = {}: μ̂ = {} ± {}",
            r.workers,
            f.momentum,
            r.se
        );
        assert!(
            (f.step_fraction - (1.0 - r.theory)).abs() <= T_QUANTILE * r.step_fraction_se + 1e-9
        );
        assert!((r.p_staleness - r.theory).abs() < 0.01, "{r:?}");
        if r.workers > 1 {
            assert!(r.se > 0.0 && r.se < 1e-3, "{r:?}");
            assert!(r.misfit() < 2.5, "M = {}: misfit {}", r.workers, r.misfit());
        }
    }
    assert!(d.implicit_holds());
}

/// Constant compute times make the staleness a constant delay M − 1, not a
/// geometric law: the momentum recursion no longer describes the mean path.
/// Every run is then the same path, so the misfit against the (zero) noise
/// is infinite where the exponential's is ≈ 1; and the fitted step fraction
/// κ̂ is off 1/M by more than twice the exponential fit's tolerance from
/// M = 4 on (at M = 2 a delay of 1 and a geometric law of mean 1 give
/// nearly the same mean path), while the staleness histogram alone (p̂)
/// cannot tell the two apart.
#[test]
fn constant_compute_times_are_told_apart() {
    let d = run(&small(), &SweepOptions::default()).unwrap();
    for (exp, cst) in d.implicit.iter().zip(&d.models).skip(1) {
        assert_eq!(exp.workers, cst.workers);
        assert_eq!(cst.compute_time, "const:1");
        assert!(cst.misfit().is_infinite(), "{cst:?}");
        assert!((cst.p_staleness - exp.p_staleness).abs() < 0.01);
        if exp.workers < 4 {
            continue;
        }
        let k = cst.fit.unwrap().step_fraction;
        let tol = T_QUANTILE * exp.step_fraction_se;
        assert!(
            (k - (1.0 - exp.theory)).abs() > 2.0 * tol,
            "M = {}: κ̂ = {k}, tolerance {tol}",
            exp.workers
        );
    }
}

/// The explicit-μ table: the fastest μ of the grid is 0.9 at M = 1 (the
/// deterministic heavy ball, critically damped near (1 − √(ηλ_min))² =
/// 0.86) and lower at M = 16, as the expected recursion predicts (0.7).
#[test]
fn the_best_explicit_momentum_falls_with_workers() {
    let mut e = small();
    e.grid.workers = vec![1, 16];
    e.grid.momentum = vec![0.6, 0.7, 0.8, 0.9];
    let d = run(&e, &SweepOptions::default()).unwrap();
    let best: Vec<f64> = d.best.iter().map(|b| b.momentum.unwrap()).collect();
    assert_eq!(best[0], 0.9, "{best:?}");
    assert!(best[1] < best[0], "{best:?}");
    assert_eq!(d.best[1].predicted, Some(0.7));
}

/// Settings the fit cannot use are refused by name.
#[test]
fn unusable_settings_are_refused() {
    let mut e = small();
    e.base.runs = 5;
    let err = run(&e, &SweepOptions::default()).unwrap_err().to_string();
    assert!(err.contains("runs"), "{err}");
    let mut e = small();
    e.grid.step_size = vec![0.01, 0.02];
    let err = run(&e, &SweepOptions::default()).unwrap_err().to_string();
    assert!(err.contains("one step size"), "{err}");
    let mut e = small();
    e.base.objective = Default::default();
    let err = run(&e, &SweepOptions::default()).unwrap_err().to_string();
    assert!(err.contains("quadratic"), "{err}");
}

/// A reduced run through the CLI writes the tables and plots, and `psim
/// report` shows both plots.
#[test]
fn the_cli_writes_the_tables_and_the_report_shows_the_plots() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("im");
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_psim"))
        .args([
            "reproduce",
            "implicit-momentum",
            "--workers",
            "1,4",
            "--momentum",
            "0,0.9",
            "--compute-time",
            "const:1",
            "--runs",
            "20",
            "--steps",
            "80",
            "-q",
            "--out",
        ])
        .arg(&out)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    for f in [
        "implicit.csv",
        "explicit.csv",
        "implicit.svg",
        "explicit.svg",
        "report.txt",
    ] {
        assert!(out.join(f).is_file(), "{f}");
    }
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_psim"))
        .arg("report")
        .arg(&out)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let html = std::fs::read_to_string(out.join("report.html")).unwrap();
    assert_eq!(html.matches("data:image/svg+xml").count(), 2);
}
