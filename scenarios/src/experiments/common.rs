//! Helpers shared by E3–E6. Each of those runs on the injected engine,
//! computes its headline beside the theory of `psim_common::theory`, and
//! writes CSVs, SVG plots, `summary.json` and `report.txt`.
//!
//! Each study is a plain function from an [`Experiment`] to a result type
//! with a `report()` and a `headline_holds()`, so tests can run a reduced
//! size and assert the headline without going through the CLI.

use psim_common::RunResult;

/// Mean of a slice (NaN when empty).
pub(crate) fn mean(v: &[f64]) -> f64 {
    v.iter().sum::<f64>() / v.len() as f64
}

/// The q-quantile (0 ≤ q ≤ 1) of a slice, by sorting a copy (NaN when empty).
pub(crate) fn quantile(v: &[f64], q: f64) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    let mut s = v.to_vec();
    s.sort_by(|a, b| a.total_cmp(b));
    s[((s.len() - 1) as f64 * q).round() as usize]
}

/// The first step at which a run's trace reaches `level` (error ≤ level),
/// linearly interpolated between recorded points; `None` if it never does.
pub(crate) fn first_crossing(r: &RunResult, level: f64) -> Option<f64> {
    let t = &r.trace;
    for i in 0..t.len() {
        if t[i].error <= level {
            if i == 0 {
                return Some(t[0].step as f64);
            }
            let (a, b) = (&t[i - 1], &t[i]);
            let f = (a.error - level) / (a.error - b.error);
            return Some(a.step as f64 + f * (b.step - a.step) as f64);
        }
    }
    None
}
