//! E5 (spiky function): the verdict at the defaults, and margins at reduced size.

use psim_scenarios::catalogue::Scenario;
use psim_scenarios::experiments::spiky::{run, SpikyScenario};
use psim_scenarios::sweep::SweepOptions;

/// The defaults (100 runs × 5000 steps, < 1 s): the verdict holds, and the
/// report says so. Its comparisons carry their own 3-standard-error margins
/// (see `Spiky::headline_holds`); `tests/verdicts_across_seeds.rs` checks
/// it over master seeds 1–10.
#[test]
fn spiky_verdict_holds_at_the_defaults() {
    let e = SpikyScenario.experiment();
    let r = run(&e, &SweepOptions::default()).unwrap();
    let report = r.report(&e);
    assert!(r.headline_holds(), "{report}");
    assert_eq!(psim_scenarios::verdict::verdict(&report), Some(true));
}

/// 60 runs, 3000 steps (fixed seed). At full size GD ends in the central
/// basin in 6 % of runs, the moderate width in 58 %: with 60 runs a
/// proportion near 0.58 has a standard error of 0.064, so this test
/// asserts wide margins: GD below 25 % (3 standard errors above 6 %), the
/// moderate width at least twice GD, and medians on either side of the
/// basin by a factor ≥ 2.
#[test]
fn moderate_noise_gathers_runs_near_zero_and_gd_does_not() {
    let mut e = SpikyScenario.experiment();
    e.base.runs = 60;
    e.base.steps = 3_000;
    let r = run(&e, &SweepOptions::default()).unwrap();
    let report = r.report(&e);
    let gd = &r.rows[0];
    let moderate = &r.rows[2];
    let staged = r.rows.last().unwrap();
    assert!(gd.near_zero < 0.25, "{report}");
    assert!(moderate.near_zero > 2.0 * gd.near_zero, "{report}");
    assert!(moderate.median_abs < 0.5 && gd.median_abs > 1.0, "{report}");
    assert!(staged.mean_abs < moderate.mean_abs, "{report}");
}
