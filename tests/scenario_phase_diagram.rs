//! The phase diagram: on E1's problem the drawn constant-delay boundary
//! (the delayed heavy-ball roots) agrees with the measured edge within one
//! grid step for at least 90 % of the μ rows.

use psim_scenarios::catalogue::Scenario;
use psim_scenarios::experiments::phase_diagram::{
    analyse, plan, Panel, PhaseDiagramScenario, AGREEMENT_SHARE,
};
use psim_scenarios::sweep::{run_plan, SweepOptions};

/// The full default scenario (3 panels, 20 μ rows each) at its default
/// seed. The tolerance is the acceptance's: one grid step (5 delays), for
/// ≥ 90 % of the rows (2 of 20 may miss). On the random-delay panel the
/// expected recursion must beat 001 §4's constant-at-E[τ] reading, which
/// cannot see that a random delay is tolerated longer than a constant one.
#[test]
fn boundary_agrees_with_the_measured_edge_on_e1s_problem() {
    let e = PhaseDiagramScenario.experiment();
    let p = plan(&e).unwrap();
    assert_eq!(p.points.len(), 20 * 40 * 2 + 20 * 12);
    let done = run_plan(&e, &p, None, &SweepOptions::default()).unwrap();
    let d = analyse(&e, &done).unwrap();
    let constant = d
        .panels
        .iter()
        .find(|p| p.panel == Panel::Constant)
        .unwrap();
    assert_eq!(constant.rows.len(), 20);
    assert!(
        constant.agreement(0) >= AGREEMENT_SHARE,
        "constant-delay agreement {}",
        constant.agreement(0)
    );
    assert!(d.headline_holds());
    let uniform = d.panels.iter().find(|p| p.panel == Panel::Uniform).unwrap();
    assert!(
        uniform.agreement(0) > uniform.agreement(1),
        "expected recursion {} vs 001 §4 {}",
        uniform.agreement(0),
        uniform.agreement(1)
    );
}

/// Another delay grid than constant delays, and a grid of step sizes, are refused by name.
#[test]
fn random_delay_grids_are_refused() {
    let mut e = PhaseDiagramScenario.experiment();
    e.grid.delay = vec!["uniform:0..10".parse().unwrap()];
    let err = plan(&e).unwrap_err().to_string();
    assert!(err.contains("constant delays"), "{err}");
    let mut e = PhaseDiagramScenario.experiment();
    e.grid.step_size = vec![5e-4, 1e-3];
    let err = plan(&e).unwrap_err().to_string();
    assert!(err.contains("one step size"), "{err}");
}

/// A reduced run through the CLI writes the three heatmaps, and `psim
/// report` shows them as images.
#[test]
fn the_report_shows_the_heatmaps() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("pd");
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_psim"))
        .args([
            "reproduce",
            "phase-diagram",
            "--momentum",
            "0.8,0.9",
            "--taus",
            "0:60:20",
            "--runs",
            "4",
            "--steps",
            "4000",
            "-q",
            "--out",
        ])
        .arg(&out)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    for f in [
        "phase-constant.svg",
        "phase-uniform.svg",
        "phase-workers.svg",
        "edges.csv",
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
    assert_eq!(html.matches("data:image/svg+xml").count(), 3);
}
