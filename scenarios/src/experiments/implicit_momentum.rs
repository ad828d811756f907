//! `psim reproduce implicit-momentum`: asynchrony begets momentum
//! (Mitliagkas, Zhang, Hadjis & Ré 2016), measured on the virtual-time
//! engine.
//!
//! Under the paper's queueing model — M workers with exponential compute
//! times — asynchronous SGD behaves in expectation like momentum SGD with
//! an implicit momentum of 1 − 1/M. Three tables:
//!
//! 1. **Implicit momentum.** For every M (default 1, 2, 4, …, 32) at
//!    explicit μ = 0, on a noiseless quadratic (the staleness is the only
//!    randomness), every run's path x₀ … x_T is kept and the mean path is
//!    fitted with the momentum recursion y_{t+1} − y_t = μ(y_t − y_{t−1}) −
//!    η·κ·H y_t ([`fit_momentum`], derivation in
//!    `psim_common::theory::implicit`). μ̂ is printed beside 1 − 1/M with a
//!    standard error from [`BATCHES`] batches of runs (SE = sd/√10). For
//!    exponential compute times the recursion of the mean is exact (no model
//!    bias: the completion order is i.i.d. uniform over the workers), so the
//!    verdict asks |μ̂ − (1 − 1/M)| ≤ [`T_QUANTILE`]·SE + [`FIT_FLOOR`]. The
//!    cross-check p̂ is the geometric law fitted to the staleness histogram
//!    alone (its mean, truncated at the start: [`geometric_p_from_mean`]).
//! 2. **Explicit plus implicit.** For every M and every explicit μ of the
//!    grid (negative ones included), the median number of server updates
//!    (steps) until ‖∇f‖² ≤ ε; the fastest μ per M beside the prediction
//!    of the expected recursion (the grid's μ of smallest spectral radius,
//!    [`fastest_expected_momentum`]) and the sum μ_best + (1 − 1/M), which
//!    the paper's rule of thumb keeps constant. Verdict: 001's E2
//!    observation — the best μ falls as M grows (never up by more than
//!    [`RISE_SLACK`] spacing from one M to the next, at least
//!    [`FALL_STEPS`] spacings lower at the largest M). The sum is printed
//!    with what it does: at fixed η it is not constant (the rule reads the
//!    expected recursion as a heavy ball of momentum μ + 1 − 1/M, exact
//!    only while μ(1 − 1/M) ≈ 0).
//! 3. **Other compute-time models** (constant, uniform, log-normal, … as
//!    `--compute-time` lists them): the same fit where the queueing
//!    assumption fails, with the fit's misfit against the Monte Carlo noise
//!    of the mean path. Descriptive, no verdict.

use crate::catalogue::{Scenario, ScenarioError};
use crate::executor::Plan;
use crate::output::OutputDir;
use crate::plan::{PlannedPoint, Points};
use crate::plot::{Plot, Series};
use crate::sweep::{PointResult, SweepResult};
use psim_common::quadratic::QuadraticConfig;
use psim_common::theory::implicit::{
    fastest_expected_momentum, fit_momentum, geometric_p_from_mean, MomentumFit,
};
use psim_common::theory::implicit_momentum;
use psim_common::{
    ClusterConfig, Consistency, Delay, EngineConfig, EngineKind, Experiment, Grid, ObjectiveConfig,
    RunConfig, RunResult, Setting,
};
use serde::Serialize;
use std::fmt::Write;

/// Batches of runs the standard errors are computed from (runs split in
/// order into this many near-equal groups; SE = sd of the batch estimates
/// / √[`BATCHES`]).
pub const BATCHES: usize = 10;

/// The verdict's multiple of SE: the two-sided 99.9% quantile of Student's
/// t with [`BATCHES`] − 1 = 9 degrees of freedom (the SE is itself
/// estimated from 10 batches). With 5 worker counts a seed then fails by
/// chance with probability about 0.5%.
pub const T_QUANTILE: f64 = 4.781;

/// Added to the tolerance: the fit's own rounding (at M = 1 every run is
/// the same, so SE = 0 and μ̂ = 0 up to rounding).
pub const FIT_FLOOR: f64 = 1e-9;

/// The explicit-μ runs use `runs / EXPLICIT_RUNS_DIVISOR` runs per point
/// (at least 3): a median time, not a mean path, is read off them.
pub const EXPLICIT_RUNS_DIVISOR: u32 = 5;

/// Table 3's points run `runs / MODELS_RUNS_DIVISOR` runs (at least
/// [`BATCHES`]): descriptive, and every run's path is stored.
pub const MODELS_RUNS_DIVISOR: u32 = 2;

/// The explicit-μ runs' step budget is this multiple of `steps`.
pub const EXPLICIT_STEPS_FACTOR: u64 = 20;

/// The explicit-μ runs record their error every this many steps; the
/// crossing of ε is interpolated log-linearly between trace points.
pub const EXPLICIT_RECORD_EVERY: u64 = 10;

/// Table 2's verdict: the best μ may rise by at most this many grid
/// spacings from one M to the next (the median of 20 runs moves the
/// argmin by one spacing between seeds where two μ are within a few
/// percent).
pub const RISE_SLACK: f64 = 1.0;

/// Table 2's verdict: the best μ at the largest M is at least this many
/// grid spacings below its value at the smallest.
pub const FALL_STEPS: f64 = 2.0;

/// Table 2 counts the M whose measured best μ is within this many grid
/// spacings of the expected recursion's (descriptive).
pub const PREDICTION_STEPS: f64 = 2.0;

/// Most values of a kept path per run ((steps + 1) × dim): each is a
/// column of the points' runs files.
pub const MAX_PATH_VALUES: u64 = 20_000;

/// A path noise or residual below this is rounding (the path's values
/// are O(1)): the runs are all the same path.
pub const IDENTICAL_RUNS: f64 = 1e-12;

/// The measured columns before the path: steps and virtual seconds to ε.
const HEAD: usize = 2;

/// What the scenario runs, read from its experiment (defaults plus
/// command-line overrides).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Settings {
    /// Worker counts M.
    pub workers: Vec<usize>,
    /// Explicit momenta of table 2.
    pub momenta: Vec<f64>,
    /// Step size η.
    pub step_size: f64,
    /// Steps of the fitted runs (the path x₀ … x_T).
    pub steps: u64,
    /// Runs per fitted point.
    pub runs: u32,
    /// Master seed.
    pub seed: u64,
    /// The quadratic.
    pub quadratic: QuadraticConfig,
    /// ε of table 2 (on ‖∇f‖²).
    pub target_error: f64,
    /// Compute-time models of table 3.
    pub models: Vec<Delay>,
}

/// The queueing model of tables 1 and 2: exponential compute times, mean 1.
pub fn queueing_model() -> Delay {
    Delay::Exponential { mean: 1.0 }
}

impl Settings {
    /// Reads the settings, refusing what the scenario cannot run by name.
    pub fn from_experiment(e: &Experiment) -> Result<Self, ScenarioError> {
        let b = &e.base;
        let ObjectiveConfig::Quadratic(q) = &b.objective else {
            return Err(ScenarioError::Unsuitable(
                "implicit-momentum needs the quadratic objective (kind = \"quadratic\"): the mean path follows the momentum recursion on a quadratic only".into(),
            ));
        };
        let step_size = match e.grid.step_size.as_slice() {
            [] => b.step_size,
            [eta] => *eta,
            more => {
                return Err(ScenarioError::Unsuitable(format!(
                    "implicit-momentum takes one step size (`--step-size`: the fit's κ is a fraction of it); got a grid of {}",
                    more.len()
                )))
            }
        };
        if (b.runs as usize) < BATCHES {
            return Err(ScenarioError::Unsuitable(format!(
                "implicit-momentum needs runs ≥ {BATCHES} (`--runs`, config `runs`: its standard errors come from {BATCHES} batches of runs); got {}",
                b.runs
            )));
        }
        if b.steps < 4 {
            return Err(ScenarioError::Unsuitable(format!(
                "implicit-momentum needs steps ≥ 4 (`--steps`, config `steps`: the fit needs a path of at least 4 points); got {}",
                b.steps
            )));
        }
        if (b.steps + 1).saturating_mul(q.dim as u64) > MAX_PATH_VALUES {
            return Err(ScenarioError::Unsuitable(format!(
                "implicit-momentum keeps each run's path, (steps + 1) × objective.dim = {} values; at most {MAX_PATH_VALUES} (lower `--steps` or objective.dim)",
                (b.steps + 1).saturating_mul(q.dim as u64)
            )));
        }
        let cluster = b.cluster().ok_or_else(|| {
            ScenarioError::Unsuitable("implicit-momentum runs on the virtual-time engine".into())
        })?;
        let workers = if e.grid.workers.is_empty() {
            vec![cluster.workers]
        } else {
            e.grid.workers.clone()
        };
        let momenta = if e.grid.momentum.is_empty() {
            vec![b.momentum]
        } else {
            e.grid.momentum.clone()
        };
        let models = if e.grid.compute_time.is_empty() {
            vec![cluster.compute_time.clone()]
        } else {
            e.grid.compute_time.clone()
        };
        Ok(Self {
            workers,
            momenta,
            step_size,
            steps: b.steps,
            runs: b.runs,
            seed: b.seed,
            quadratic: q.clone(),
            target_error: b.target_error.unwrap_or(DEFAULT_TARGET),
            models,
        })
    }

    /// The run configuration of one point.
    fn config(&self, e: &Experiment, workers: usize, compute: Delay) -> RunConfig {
        RunConfig {
            momentum: 0.0,
            step_size: self.step_size,
            steps: self.steps,
            runs: self.runs,
            seed: self.seed,
            record_every: 1,
            target_error: None,
            record_params: true,
            record_trace_params: true,
            engine: EngineConfig::new(
                EngineKind::VirtualTime,
                ClusterConfig {
                    workers,
                    compute_time: compute,
                    network_delay: Delay::Constant(0.0),
                    consistency: Consistency::Asp,
                    ..ClusterConfig::default()
                },
            ),
            objective: ObjectiveConfig::Quadratic(self.quadratic.clone()),
            ..e.base.clone()
        }
    }

    /// A fitted point: μ = 0, every path kept.
    pub fn fit_config(&self, e: &Experiment, workers: usize, compute: Delay) -> RunConfig {
        self.config(e, workers, compute)
    }

    /// A point of table 2: explicit μ, stopped at ε.
    pub fn explicit_config(&self, e: &Experiment, workers: usize, momentum: f64) -> RunConfig {
        RunConfig {
            momentum,
            steps: self.steps.saturating_mul(EXPLICIT_STEPS_FACTOR),
            runs: (self.runs / EXPLICIT_RUNS_DIVISOR).max(3),
            record_every: EXPLICIT_RECORD_EVERY,
            target_error: Some(self.target_error),
            record_params: false,
            record_trace_params: false,
            ..self.config(e, workers, queueing_model())
        }
    }

    /// The values one kept path has.
    fn path_len(&self) -> usize {
        (self.steps as usize + 1) * self.quadratic.dim
    }

    /// The plan: table 1's points (one per M), table 2's (M × μ), table
    /// 3's (model × M), in that order.
    pub fn plan(&self, e: &Experiment) -> Plan {
        let mut points: Vec<PlannedPoint> = Vec::new();
        for &m in &self.workers {
            points.push(PlannedPoint::new(self.fit_config(e, m, queueing_model())));
        }
        for &m in &self.workers {
            for &mu in &self.momenta {
                points.push(PlannedPoint::new(self.explicit_config(e, m, mu)));
            }
        }
        for model in &self.models {
            for &m in &self.workers {
                let mut cfg = self.fit_config(e, m, model.clone());
                cfg.runs = (self.runs / MODELS_RUNS_DIVISOR).max(BATCHES as u32);
                points.push(PlannedPoint::new(cfg));
            }
        }
        let d = self.quadratic.dim;
        let mut columns = vec!["steps_to_eps".to_string(), "virtual_to_eps".to_string()];
        for t in 0..=self.steps {
            for i in 0..d {
                columns.push(format!("x{t}_{i}"));
            }
        }
        Plan {
            points: Points::from(points),
            columns,
            rows: true,
            batch: false,
        }
    }
}

/// The default ε of table 2 (on ‖∇f‖², which starts at Σλ² ≈ 1.06).
pub const DEFAULT_TARGET: f64 = 1e-6;

/// The default explicit-μ grid: −0.5, −0.45, …, 0.95.
pub fn default_momenta() -> Vec<f64> {
    (0..30)
        .map(|i| ((-0.5 + 0.05 * i as f64) * 1000.0).round() / 1000.0)
        .collect()
}

/// The first step (and virtual second) at which a run's error is ≤ `eps`,
/// log-linearly interpolated between its trace points; NaN when it never is.
pub fn crossing(run: &RunResult, eps: f64) -> (f64, f64) {
    let t = &run.trace;
    if run.outcome.diverged() {
        return (f64::NAN, f64::NAN);
    }
    let Some(i) = t.iter().position(|p| p.error <= eps) else {
        return (f64::NAN, f64::NAN);
    };
    if i == 0 {
        return (t[0].step as f64, t[0].seconds.unwrap_or(f64::NAN));
    }
    let (a, b) = (&t[i - 1], &t[i]);
    let frac = if b.error > 0.0 && a.error > b.error {
        ((a.error.ln() - eps.ln()) / (a.error.ln() - b.error.ln())).clamp(0.0, 1.0)
    } else {
        1.0
    };
    let lerp = |x: f64, y: f64| x + frac * (y - x);
    (
        lerp(a.step as f64, b.step as f64),
        match (a.seconds, b.seconds) {
            (Some(x), Some(y)) => lerp(x, y),
            _ => f64::NAN,
        },
    )
}

/// One fitted point (a row of table 1 or 3).
#[derive(Debug, Clone, Serialize)]
pub struct FitRow {
    /// Worker count M.
    pub workers: usize,
    /// Compute-time model.
    pub compute_time: String,
    /// 1 − 1/M.
    pub theory: f64,
    /// The fit of the mean path of all runs (`None`: no fit, e.g. diverged runs).
    pub fit: Option<MomentumFit>,
    /// Standard error of μ̂ over the batches.
    pub se: f64,
    /// Standard error of κ̂ over the batches.
    pub step_fraction_se: f64,
    /// The geometric p fitted to the staleness histogram's mean.
    pub p_staleness: f64,
    /// Its standard error over the batches.
    pub p_staleness_se: f64,
    /// Mean staleness of the applied gradients.
    pub mean_staleness: f64,
    /// Root-mean-square Monte Carlo noise of the mean path (sd over runs /
    /// √runs, over every step and coordinate from t = 2).
    pub path_noise: f64,
    /// The tolerance of the verdict, T_QUANTILE·SE + FIT_FLOOR.
    pub tolerance: f64,
    /// Runs that diverged.
    pub diverged: usize,
}

impl FitRow {
    /// |μ̂ − (1 − 1/M)| within the tolerance.
    pub fn holds(&self) -> bool {
        self.fit
            .is_some_and(|f| (f.momentum - self.theory).abs() <= self.tolerance)
    }

    /// The fit's misfit against the noise of the mean path (≈ 1 when the
    /// recursion describes the mean; ∞ when every run is the same path).
    pub fn misfit(&self) -> f64 {
        match self.fit {
            None => f64::NAN,
            // Every run the same path (M = 1, constant compute times):
            // no noise to compare with; a residual above rounding is a misfit.
            Some(f) if self.path_noise <= IDENTICAL_RUNS => {
                if f.rms_residual <= IDENTICAL_RUNS {
                    f64::NAN
                } else {
                    f64::INFINITY
                }
            }
            Some(f) => f.rms_residual / self.path_noise,
        }
    }
}

fn mean_sd(x: &[f64]) -> (f64, f64) {
    let n = x.len() as f64;
    let m = x.iter().sum::<f64>() / n;
    let v = if x.len() > 1 {
        x.iter().map(|v| (v - m).powi(2)).sum::<f64>() / (n - 1.0)
    } else {
        0.0
    };
    (m, v.sqrt())
}

/// Fits one point of table 1 or 3 from its runs' kept paths.
pub fn fit_point(p: &PointResult, s: &Settings) -> FitRow {
    let cluster = p.config.cluster().expect("a virtual-time point");
    let m = cluster.workers;
    let curv = s.quadratic.curvatures();
    let len = s.path_len();
    let paths: Vec<&[f64]> = p
        .rows
        .iter()
        .map(|r| &r.extras[HEAD.min(r.extras.len())..])
        .collect();
    let mean_of = |idx: &[usize]| -> Vec<f64> {
        let mut y = vec![0.0; len];
        for &r in idx {
            for (a, v) in y.iter_mut().zip(paths[r].iter()) {
                *a += v;
            }
            if paths[r].len() < len {
                y[paths[r].len()..].fill(f64::NAN);
            }
        }
        y.iter_mut().for_each(|a| *a /= idx.len() as f64);
        y
    };
    let n = paths.len();
    let all: Vec<usize> = (0..n).collect();
    let y = mean_of(&all);
    let fit = fit_momentum(&y, &curv, s.step_size);
    let batch = |b: usize| -> Vec<usize> { (b * n / BATCHES..(b + 1) * n / BATCHES).collect() };
    let fits: Vec<Option<MomentumFit>> = (0..BATCHES)
        .map(|b| fit_momentum(&mean_of(&batch(b)), &curv, s.step_size))
        .collect();
    let (se, step_fraction_se) = if fits.iter().all(Option::is_some) {
        let mus: Vec<f64> = fits.iter().flatten().map(|f| f.momentum).collect();
        let ks: Vec<f64> = fits.iter().flatten().map(|f| f.step_fraction).collect();
        let root = (BATCHES as f64).sqrt();
        (mean_sd(&mus).1 / root, mean_sd(&ks).1 / root)
    } else {
        (f64::NAN, f64::NAN)
    };
    // The staleness cross-check: each batch's mean staleness → p.
    let stale: Vec<f64> = p.rows.iter().map(|r| r.mean_staleness).collect();
    let p_of = |idx: &[usize]| {
        let mean = idx.iter().map(|&r| stale[r]).sum::<f64>() / idx.len() as f64;
        geometric_p_from_mean(mean, s.steps)
    };
    let p_staleness = p_of(&all);
    let ps: Vec<f64> = (0..BATCHES).map(|b| p_of(&batch(b))).collect();
    // The Monte Carlo noise of the mean path, from t = 2 (what the fit's
    // residuals are made of when the recursion holds).
    let d = curv.len();
    let mut noise = 0.0;
    let mut count = 0usize;
    for k in 2 * d..len {
        let vals: Vec<f64> = paths.iter().filter_map(|x| x.get(k).copied()).collect();
        let (_, sd) = mean_sd(&vals);
        noise += sd * sd / n as f64;
        count += 1;
    }
    FitRow {
        workers: m,
        compute_time: cluster.compute_time.to_string(),
        theory: implicit_momentum(m as u64),
        fit,
        se,
        step_fraction_se,
        p_staleness,
        p_staleness_se: mean_sd(&ps).1 / (BATCHES as f64).sqrt(),
        mean_staleness: stale.iter().sum::<f64>() / n.max(1) as f64,
        path_noise: (noise / count.max(1) as f64).sqrt(),
        tolerance: T_QUANTILE * se + FIT_FLOOR,
        diverged: p.summary.diverged,
    }
}

/// One (M, μ) cell of table 2.
#[derive(Debug, Clone, Serialize)]
pub struct ExplicitCell {
    /// Worker count M.
    pub workers: usize,
    /// Explicit momentum μ.
    pub momentum: f64,
    /// Median over runs of the steps to ε (∞ when half or more never reach it).
    pub median_steps: f64,
    /// Median over runs of the virtual seconds to ε.
    pub median_seconds: f64,
    /// Runs that reached ε.
    pub reached: usize,
    /// Runs.
    pub runs: usize,
}

/// The fastest explicit μ of one M.
#[derive(Debug, Clone, Serialize)]
pub struct ExplicitBest {
    /// Worker count M.
    pub workers: usize,
    /// The μ of the smallest median steps to ε (`None`: no μ reached it).
    pub momentum: Option<f64>,
    /// Its median steps.
    pub steps: f64,
    /// μ_best + (1 − 1/M).
    pub sum: Option<f64>,
    /// The best μ is the grid's smallest (the sum cannot be read).
    pub bottomed_out: bool,
    /// The μ of the grid whose expected recursion converges fastest
    /// ([`fastest_expected_momentum`]): the prediction of the implicit
    /// momentum for the mean path.
    pub predicted: Option<f64>,
}

fn median(mut v: Vec<f64>) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(|a, b| a.total_cmp(b));
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        0.5 * (v[n / 2 - 1] + v[n / 2])
    }
}

/// The whole result (`summary.json`).
#[derive(Debug, Clone, Serialize)]
pub struct ImplicitMomentum {
    /// What was run.
    pub settings: Settings,
    /// Table 1: exponential compute times, one row per M.
    pub implicit: Vec<FitRow>,
    /// Table 2's cells, by M then μ.
    pub explicit: Vec<ExplicitCell>,
    /// Table 2's best μ per M.
    pub best: Vec<ExplicitBest>,
    /// The explicit grid's spacing (its smallest gap).
    pub spacing: f64,
    /// Table 3: one row per (model, M).
    pub models: Vec<FitRow>,
    /// Wall seconds of the runs.
    pub wall_seconds: f64,
}

impl ImplicitMomentum {
    /// Table 1's verdict: every M's μ̂ within its tolerance of 1 − 1/M.
    pub fn implicit_holds(&self) -> bool {
        !self.implicit.is_empty() && self.implicit.iter().all(FitRow::holds)
    }

    /// Table 2's verdict, 001's E2 observation: the best explicit μ falls
    /// as workers are added — it never rises by more than [`RISE_SLACK`]
    /// grid spacings from one M to the next (the medians of a few runs
    /// are noisy), and at the largest M it is at least [`FALL_STEPS`]
    /// spacings below its value at the smallest.
    pub fn falls(&self) -> bool {
        let best: Option<Vec<f64>> = self.best.iter().map(|b| b.momentum).collect();
        let Some(best) = best else {
            return false;
        };
        let sp = self.spacing;
        best.len() >= 2
            && best
                .windows(2)
                .all(|w| w[1] <= w[0] + RISE_SLACK * sp + 1e-9)
            && best[best.len() - 1] <= best[0] - FALL_STEPS * sp + 1e-9
    }

    /// How many M have their measured best μ within [`PREDICTION_STEPS`]
    /// grid spacings of the expected recursion's.
    pub fn predicted_agree(&self) -> usize {
        self.best
            .iter()
            .filter(|b| match (b.momentum, b.predicted) {
                (Some(m), Some(p)) => (m - p).abs() <= PREDICTION_STEPS * self.spacing + 1e-9,
                _ => false,
            })
            .count()
    }
}

/// Runs `e` in memory through the executor (its plan, measured as the
/// scenario measures) and analyses it: what tests call.
pub fn run(
    e: &Experiment,
    opts: &crate::sweep::SweepOptions<'_>,
) -> Result<ImplicitMomentum, ScenarioError> {
    let plan = ImplicitMomentumScenario.plan(e)?;
    let measure =
        |p: usize, c: &RunConfig, r: &RunResult| ImplicitMomentumScenario.measure(e, p, c, r);
    let done = crate::sweep::run_plan(e, &plan, Some(&measure), opts)?;
    analyse(e, &done)
}

/// The analysis over the finished points of [`Settings::plan`].
pub fn analyse(e: &Experiment, done: &SweepResult) -> Result<ImplicitMomentum, ScenarioError> {
    let s = Settings::from_experiment(e)?;
    let nm = s.workers.len();
    let n2 = nm * s.momenta.len();
    let pts = &done.points;
    if pts.len() != nm + n2 + s.models.len() * nm {
        return Err(ScenarioError::Unsuitable(format!(
            "implicit-momentum: {} finished points for a plan of {}",
            pts.len(),
            nm + n2 + s.models.len() * nm
        )));
    }
    let implicit: Vec<FitRow> = pts[..nm].iter().map(|p| fit_point(p, &s)).collect();
    let models: Vec<FitRow> = pts[nm + n2..].iter().map(|p| fit_point(p, &s)).collect();
    let explicit: Vec<ExplicitCell> = pts[nm..nm + n2]
        .iter()
        .map(|p| {
            let steps: Vec<f64> = p
                .rows
                .iter()
                .map(|r| r.extras.first().copied().unwrap_or(f64::NAN))
                .map(|x| if x.is_nan() { f64::INFINITY } else { x })
                .collect();
            let secs: Vec<f64> = p
                .rows
                .iter()
                .map(|r| r.extras.get(1).copied().unwrap_or(f64::NAN))
                .map(|x| if x.is_nan() { f64::INFINITY } else { x })
                .collect();
            ExplicitCell {
                workers: p.summary.workers.unwrap_or(0),
                momentum: p.summary.momentum,
                reached: steps.iter().filter(|x| x.is_finite()).count(),
                runs: steps.len(),
                median_steps: median(steps),
                median_seconds: median(secs),
            }
        })
        .collect();
    let mut sorted = s.momenta.clone();
    sorted.sort_by(|a, b| a.total_cmp(b));
    sorted.dedup();
    let spacing = sorted
        .windows(2)
        .map(|w| w[1] - w[0])
        .fold(f64::INFINITY, f64::min);
    let bottom = sorted.first().copied().unwrap_or(f64::NAN);
    let gains: Vec<f64> = s
        .quadratic
        .curvatures()
        .iter()
        .map(|h| s.step_size * h)
        .collect();
    let best: Vec<ExplicitBest> = s
        .workers
        .iter()
        .map(|&m| {
            let b = explicit
                .iter()
                .filter(|c| c.workers == m && c.median_steps.is_finite())
                .min_by(|a, b| a.median_steps.total_cmp(&b.median_steps));
            let momentum = b.map(|c| c.momentum);
            ExplicitBest {
                workers: m,
                momentum,
                steps: b.map_or(f64::INFINITY, |c| c.median_steps),
                sum: momentum.map(|mu| mu + implicit_momentum(m as u64)),
                bottomed_out: momentum.is_none_or(|mu| mu <= bottom),
                predicted: fastest_expected_momentum(&sorted, &gains, implicit_momentum(m as u64)),
            }
        })
        .collect();
    Ok(ImplicitMomentum {
        settings: s,
        implicit,
        explicit,
        best,
        spacing,
        models,
        wall_seconds: done.wall_seconds,
    })
}

fn num(x: f64, digits: usize) -> String {
    if x.is_finite() {
        format!("{x:.digits$}")
    } else if x.is_nan() {
        "—".into()
    } else {
        "∞".into()
    }
}

fn fit_table(s: &mut String, rows: &[FitRow], with_verdict: bool) {
    let _ = writeln!(
        s,
        "| M | compute time | 1 − 1/M | μ̂ ± SE | κ̂ = ĉ/η ± SE (1/M) | p̂ from staleness ± SE | misfit/noise |{}",
        if with_verdict { " |μ̂ − (1 − 1/M)| ≤ tol |" } else { "" }
    );
    let _ = writeln!(
        s,
        "|---|---|---|---|---|---|---|{}",
        if with_verdict { "---|" } else { "" }
    );
    for r in rows {
        let (mu, kappa) = r
            .fit
            .map_or((f64::NAN, f64::NAN), |f| (f.momentum, f.step_fraction));
        let _ = write!(
            s,
            "| {} | {} | {:.5} | {} ± {} | {} ± {} ({:.5}) | {} ± {} | {} |",
            r.workers,
            r.compute_time,
            r.theory,
            num(mu, 5),
            num(r.se, 5),
            num(kappa, 5),
            num(r.step_fraction_se, 5),
            1.0 - r.theory,
            num(r.p_staleness, 4),
            num(r.p_staleness_se, 4),
            num(r.misfit(), 2),
        );
        if with_verdict {
            let _ = write!(
                s,
                " {} ≤ {} {} |",
                num((mu - r.theory).abs(), 5),
                num(r.tolerance, 5),
                if r.holds() { "✓" } else { "✗" }
            );
        }
        let _ = writeln!(s);
    }
}

/// The terminal report.
pub fn report(d: &ImplicitMomentum) -> String {
    let s = &d.settings;
    let q = &s.quadratic;
    let mut t = String::new();
    let _ = writeln!(
        t,
        "Asynchrony begets momentum (Mitliagkas, Zhang, Hadjis & Ré 2016) on the virtual-time engine"
    );
    let _ = writeln!(
        t,
        "quadratic: dim {}, curvatures {:?}, gradient noise σ² = {}, start {}; η = {}; ASP, no network delay; seed {}; ran in {:.2} s",
        q.dim,
        q.curvatures(),
        q.noise_variance,
        q.start,
        s.step_size,
        s.seed,
        d.wall_seconds
    );
    let _ = writeln!(
        t,
        "\n1. implicit momentum at explicit μ = 0, exponential compute times: the mean path of {} runs × {} steps fitted with y_{{t+1}} − y_t = μ(y_t − y_{{t−1}}) − η·κ·H y_t (output least squares from y₀, y₁); SE from {BATCHES} batches; tol = {T_QUANTILE}·SE (t₉, 99.9%) + {FIT_FLOOR:e}, no model bias (the recursion of the mean is exact for exponential workers); p̂: the geometric law fitted to the staleness histogram's mean (start-up truncation included); misfit/noise: the fit's rms residual over the Monte Carlo noise of the mean path (≈ 1 when the recursion describes the mean)\n",
        s.runs, s.steps
    );
    fit_table(&mut t, &d.implicit, true);
    let _ = writeln!(
        t,
        "\nheadline (implicit momentum μ̂ within {T_QUANTILE}·SE of 1 − 1/M for every M): {}",
        crate::verdict::verdict_word(d.implicit_holds())
    );
    let runs2 = d.explicit.first().map_or(0, |c| c.runs);
    let _ = writeln!(
        t,
        "\n2. the explicit μ that reaches ‖∇f‖² ≤ {} fastest (median over {} runs of the server updates (steps) to ε, budget {} steps; virtual seconds beside), exponential compute times\n",
        s.target_error,
        runs2,
        s.steps * EXPLICIT_STEPS_FACTOR
    );
    let _ = writeln!(
        t,
        "| M | best explicit μ | median steps to ε | median virtual s | expected recursion's best μ | 1 − 1/M | best μ + (1 − 1/M) |"
    );
    let _ = writeln!(t, "|---|---|---|---|---|---|---|");
    for b in &d.best {
        let secs = b.momentum.and_then(|mu| {
            d.explicit
                .iter()
                .find(|c| c.workers == b.workers && c.momentum == mu)
                .map(|c| c.median_seconds)
        });
        let _ = writeln!(
            t,
            "| {} | {}{} | {} | {} | {} | {:.4} | {} |",
            b.workers,
            b.momentum
                .map_or("none reached ε".into(), |m| m.to_string()),
            if b.bottomed_out && b.momentum.is_some() {
                " (grid's bottom)"
            } else {
                ""
            },
            num(b.steps, 1),
            num(secs.unwrap_or(f64::NAN), 2),
            b.predicted.map_or("—".into(), |m| m.to_string()),
            implicit_momentum(b.workers as u64),
            b.sum.map_or("—".into(), |x| format!("{x:.3}")),
        );
    }
    let sums: Vec<f64> = d.best.iter().filter_map(|b| b.sum).collect();
    let (lo, hi) = sums
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), &x| {
            (a.min(x), b.max(x))
        });
    let _ = writeln!(
        t,
        "\nexplicit μ grid: {:?} (spacing {:.3}); median steps to ε per (M, μ) in explicit.csv",
        s.momenta, d.spacing
    );
    let _ = writeln!(
        t,
        "expected recursion's best μ: the grid's μ of smallest spectral radius of (r² − (1+μ)r + μ)(r − q) + ηh(1 − q)r², q = 1 − 1/M, over the curvatures h; the measured best μ is within {PREDICTION_STEPS} spacings of it for {} of {} M",
        d.predicted_agree(),
        d.best.len()
    );
    let _ = writeln!(
        t,
        "explicit + implicit momentum (the paper's rule: constant): ranges over [{}, {}] here, {} — the rule is the expected recursion read as a heavy ball of momentum μ + q, exact only while μ·q ≈ 0; at fixed η the slow mode's root is 1 − ηh/(1 − μ) whatever q, so the implicit momentum does not replace explicit momentum one for one: it lowers the best μ, as E2 saw, by less than 1 − 1/M",
        num(lo, 3),
        num(hi, 3),
        if hi - lo <= 2.0 * d.spacing + 1e-9 {
            "within two grid spacings"
        } else {
            "not constant"
        }
    );
    let _ = writeln!(
        t,
        "headline (001's E2 observation: the best explicit μ falls as workers are added — never up by more than {RISE_SLACK} spacing from one M to the next, and at least {FALL_STEPS} spacings lower at M = {} than at M = {}): {}",
        s.workers.last().copied().unwrap_or(0),
        s.workers.first().copied().unwrap_or(0),
        crate::verdict::verdict_word(d.falls())
    );
    let _ = writeln!(
        t,
        "\n3. other compute-time models (no verdict): the same fit where the queueing assumption fails — constant compute times make every staleness M − 1 after the start (a delay, not a momentum: every run is the same path, so misfit/noise is ∞ and SE 0), and the staleness histogram's p̂ cannot tell the models apart while the path can\n"
    );
    fit_table(&mut t, &d.models, false);
    t
}

/// μ̂ − (1 − 1/M) against M: table 1 with ±2 SE, the staleness
/// histogram's p̂, and table 3's models (where the queueing assumption
/// fails). On a deviation scale: the momenta themselves (0 … 0.97) would
/// lie on one line.
pub fn implicit_plot(d: &ImplicitMomentum) -> Plot {
    let deviation = |rows: &[FitRow], label: String| Series {
        label,
        points: rows
            .iter()
            .map(|r| {
                (
                    r.workers as f64,
                    r.fit.map_or(f64::NAN, |f| f.momentum - r.theory),
                )
            })
            .collect(),
        band: rows
            .iter()
            .filter_map(|r| {
                let dev = r.fit?.momentum - r.theory;
                let w = 2.0 * r.se;
                w.is_finite()
                    .then_some((r.workers as f64, dev - w, dev + w))
            })
            .collect(),
        markers: true,
        ..Default::default()
    };
    let mut series = vec![
        deviation(&d.implicit, "μ̂, exponential compute (±2 SE)".into()),
        Series {
            label: "1 − 1/M (paper)".into(),
            points: d.implicit.iter().map(|r| (r.workers as f64, 0.0)).collect(),
            dashed: true,
            color: Some(0),
            ..Default::default()
        },
        Series {
            label: "p̂ from the staleness histogram (exponential)".into(),
            points: d
                .implicit
                .iter()
                .map(|r| (r.workers as f64, r.p_staleness - r.theory))
                .collect(),
            markers: true,
            ..Default::default()
        },
    ];
    for model in &d.settings.models {
        let name = model.to_string();
        let rows: Vec<FitRow> = d
            .models
            .iter()
            .filter(|r| r.compute_time == name)
            .cloned()
            .collect();
        series.push(deviation(&rows, format!("μ̂, compute {name}")));
    }
    Plot {
        title: "implicit momentum of asynchrony: fitted μ̂ − (1 − 1/M) vs workers".into(),
        x_label: "workers M".into(),
        y_label: "μ̂ − (1 − 1/M)".into(),
        log_x: true,
        log_y: false,
        series,
        vlines: vec![],
    }
}

/// The best explicit μ and the sum against M.
pub fn explicit_plot(d: &ImplicitMomentum) -> Plot {
    let first = d.best.first().and_then(|b| b.sum);
    Plot {
        title: "best explicit μ (fastest to ε) and explicit + implicit momentum vs workers".into(),
        x_label: "workers M".into(),
        y_label: "momentum".into(),
        log_x: true,
        log_y: false,
        series: vec![
            Series {
                label: "best explicit μ".into(),
                points: d
                    .best
                    .iter()
                    .map(|b| (b.workers as f64, b.momentum.unwrap_or(f64::NAN)))
                    .collect(),
                markers: true,
                ..Default::default()
            },
            Series {
                label: "best μ + (1 − 1/M)".into(),
                points: d
                    .best
                    .iter()
                    .map(|b| (b.workers as f64, b.sum.unwrap_or(f64::NAN)))
                    .collect(),
                markers: true,
                ..Default::default()
            },
            Series {
                label: "expected recursion's best μ".into(),
                points: d
                    .best
                    .iter()
                    .map(|b| (b.workers as f64, b.predicted.unwrap_or(f64::NAN)))
                    .collect(),
                dashed: true,
                ..Default::default()
            },
            Series {
                label: "constant-sum rule: μ_best(first M) − (1 − 1/M)".into(),
                points: d
                    .best
                    .iter()
                    .map(|b| {
                        (
                            b.workers as f64,
                            first.map_or(f64::NAN, |f| f - implicit_momentum(b.workers as u64)),
                        )
                    })
                    .collect(),
                dashed: true,
                color: Some(0),
                ..Default::default()
            },
        ],
        vlines: vec![],
    }
}

/// `psim reproduce implicit-momentum`.
pub struct ImplicitMomentumScenario;

impl Scenario for ImplicitMomentumScenario {
    fn name(&self) -> &'static str {
        "implicit-momentum"
    }

    fn title(&self) -> &'static str {
        "asynchrony begets momentum: implicit momentum 1 − 1/M measured, explicit + implicit constant (Mitliagkas et al. 2016)"
    }

    fn experiment(&self) -> Experiment {
        let momenta = default_momenta();
        Experiment {
            name: "implicit-momentum".into(),
            base: RunConfig {
                momentum: momenta[0],
                step_size: 0.02,
                steps: 200,
                runs: 100,
                seed: 2016,
                record_every: 1,
                target_error: Some(DEFAULT_TARGET),
                record_params: true,
                engine: EngineConfig::new(
                    EngineKind::VirtualTime,
                    ClusterConfig {
                        workers: 1,
                        compute_time: Delay::Constant(1.0),
                        network_delay: Delay::Constant(0.0),
                        consistency: Consistency::Asp,
                        ..ClusterConfig::default()
                    },
                ),
                objective: ObjectiveConfig::Quadratic(QuadraticConfig {
                    dim: 2,
                    smoothness: 1.0,
                    condition: 4.0,
                    noise_variance: 0.0,
                    start: 1.0,
                }),
                ..RunConfig::default()
            },
            grid: Grid {
                momentum: momenta,
                workers: vec![1, 2, 4, 8, 16, 32],
                compute_time: default_models(),
                ..Grid::default()
            },
            tradeoff: None,
        }
    }

    /// `workers` is the M list, `momentum` the explicit grid of table 2,
    /// `compute-time` the models of table 3, `target-error` table 2's ε.
    fn accepts(&self) -> &'static [Setting] {
        use Setting::*;
        &[
            Momentum,
            StepSize,
            Steps,
            Runs,
            Seed,
            TargetError,
            Objective,
            Workers,
            ComputeTime,
        ]
    }

    fn engines(&self) -> &'static [EngineKind] {
        &[EngineKind::VirtualTime]
    }

    fn plan(&self, e: &Experiment) -> Result<Plan, ScenarioError> {
        Ok(Settings::from_experiment(e)?.plan(e))
    }

    fn measure(
        &self,
        e: &Experiment,
        _point: usize,
        config: &RunConfig,
        run: &RunResult,
    ) -> Vec<f64> {
        let Ok(s) = Settings::from_experiment(e) else {
            return Vec::new();
        };
        let mut v = vec![f64::NAN; HEAD + s.path_len()];
        if let Some(path) = &run.trace_params {
            if !run.outcome.diverged() {
                let n = path.len().min(s.path_len());
                v[HEAD..HEAD + n].copy_from_slice(&path[..n]);
            }
        } else if let Some(eps) = config.target_error {
            let (steps, secs) = crossing(run, eps);
            v[0] = steps;
            v[1] = secs;
        }
        v
    }

    fn analyse(
        &self,
        experiment: &Experiment,
        done: &SweepResult,
        out: &OutputDir,
    ) -> Result<String, ScenarioError> {
        let d = analyse(experiment, done)?;
        out.write_json("summary.json", &d)?;
        let mut csv = String::from(
            "table,workers,compute_time,theory,momentum,se,step_fraction,step_fraction_se,p_staleness,p_staleness_se,mean_staleness,rms_residual,path_noise,tolerance,diverged\n",
        );
        for (table, rows) in [("implicit", &d.implicit), ("models", &d.models)] {
            for r in rows.iter() {
                let (mu, k, rms) = r.fit.map_or((f64::NAN, f64::NAN, f64::NAN), |f| {
                    (f.momentum, f.step_fraction, f.rms_residual)
                });
                let f = crate::output::f;
                let _ = writeln!(
                    csv,
                    "{table},{},{},{},{},{},{},{},{},{},{},{},{},{},{}",
                    r.workers,
                    r.compute_time,
                    f(r.theory),
                    f(mu),
                    f(r.se),
                    f(k),
                    f(r.step_fraction_se),
                    f(r.p_staleness),
                    f(r.p_staleness_se),
                    f(r.mean_staleness),
                    f(rms),
                    f(r.path_noise),
                    f(r.tolerance),
                    r.diverged
                );
            }
        }
        out.write("implicit.csv", csv)?;
        let mut csv =
            String::from("workers,momentum,median_steps,median_virtual_seconds,reached,runs\n");
        for c in &d.explicit {
            let f = crate::output::f;
            let _ = writeln!(
                csv,
                "{},{},{},{},{},{}",
                c.workers,
                c.momentum,
                f(c.median_steps),
                f(c.median_seconds),
                c.reached,
                c.runs
            );
        }
        out.write("explicit.csv", csv)?;
        out.write("implicit.svg", implicit_plot(&d).to_svg())?;
        out.write("explicit.svg", explicit_plot(&d).to_svg())?;
        Ok(report(&d))
    }
}

/// The default models of table 3: constant, uniform on 0..2, log-normal
/// with σ = 0.5 and σ = 1.5 (all of mean near 1, from no spread to a
/// heavy tail).
pub fn default_models() -> Vec<Delay> {
    [
        "const:1",
        "uniform:0..2",
        "lognormal:0,0.5",
        "lognormal:0,1.5",
    ]
    .iter()
    .map(|m| m.parse().expect("a valid compute-time model"))
    .collect()
}
