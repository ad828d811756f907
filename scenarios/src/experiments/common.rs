//! Helpers shared by E3–E6. Each of those runs on the injected engine,
//! computes its headline beside the theory of `psim_common::theory`, and
//! writes CSVs, SVG plots, `summary.json` and `report.txt`.
//!
//! Each study is a plain function from an [`Experiment`] to a result type
//! with a `report()` and a `headline_holds()`, so tests can run a reduced
//! size and assert the headline without going through the CLI.

use crate::catalogue::ScenarioError;
use crate::sweep::{SweepError, SweepOptions};
use psim_common::{AnyObjective, RunConfig, RunResult};
use psim_engine::run_injected_from;
use rayon::prelude::*;

/// Runs `cfg.runs` runs of `cfg` in parallel (run r from `starts[r]` when
/// given), returning each result with its final parameters, in run order.
pub(crate) fn run_all(
    cfg: &RunConfig,
    opts: &SweepOptions<'_>,
    starts: Option<&[Vec<f64>]>,
) -> Result<Vec<(RunResult, Vec<f64>)>, ScenarioError> {
    cfg.validate().map_err(SweepError::from)?;
    let objective = AnyObjective::build(&cfg.objective).map_err(SweepError::from)?;
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(opts.threads)
        .build()
        .map_err(|e| SweepError::Threads {
            threads: opts.threads,
            message: e.to_string(),
        })?;
    let out = pool.install(|| {
        (0..cfg.runs as u64)
            .into_par_iter()
            .map(|r| {
                let start = starts.map(|s| s[r as usize].as_slice());
                let res = run_injected_from(cfg, &objective, r, start);
                if let Some(p) = opts.progress {
                    p();
                }
                // The accounting check of every engine (`engine::run` does it
                // for the others).
                let (result, params) = res;
                psim_engine::verify(result).map(|r| (r, params))
            })
            .collect::<Result<Vec<_>, _>>()
    });
    Ok(out.map_err(SweepError::from)?)
}

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
