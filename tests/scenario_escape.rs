//! E4 (saddle escape vs momentum) and E6 (escape-time law, batch size) at reduced size.

use psim_scenarios::catalogue::Scenario;
use psim_scenarios::experiments::escape::{
    run_escape_times, run_saddle_escape, EscapeTimesScenario, SaddleEscapeScenario,
};
use psim_scenarios::sweep::SweepOptions;

/// 40 runs per μ (fixed seed). Neighbouring μ differ in mean escape steps by
/// ≥ 30 % in theory (4436, 2980, 2045, 1150, 726, 328), while the mean of 40
/// escape times (coefficient of variation ≈ 0.3) has a relative standard
/// error ≈ 5 %: an inversion would need a 3-σ swing.
#[test]
fn e4_larger_momentum_escapes_faster() {
    let mut e = SaddleEscapeScenario.experiment();
    e.base.runs = 40;
    let r = run_saddle_escape(&e, &SweepOptions::default()).unwrap();
    assert!(r.headline_holds(), "{}", r.report(&e));
    // The verdict includes every mean within 3 measured standard errors of
    // the discrete-recurrence theory; also a fixed band: within 20 % (3 × the
    // ≈ 5 % relative standard error of 40 runs, plus the recurrence's ≈ 1 %).
    for row in &r.rows {
        let q = row.mean_steps / row.theory_steps;
        assert!((0.8..1.2).contains(&q), "{}: {q}", row.label);
    }
}

/// 30 runs per point, η down to 10⁻³ (the full scenario goes to 3·10⁻⁴).
#[test]
fn e6_escape_follows_the_log_law_and_batches_slow_escape() {
    let mut e = EscapeTimesScenario.experiment();
    e.base.runs = 30;
    e.grid.step_size = vec![0.1, 0.01, 1e-3];
    let r = run_escape_times(&e, &SweepOptions::default()).unwrap();
    let report = r.report(&e);
    assert!(r.headline_holds(), "{report}");
    let ratios = r.law_ratios();
    assert!(
        ratios.windows(2).all(|w| w[1] < w[0]),
        "{ratios:?}\n{report}"
    );
}
