//! `psim advise`: predict, before simulating, how much asynchrony each
//! momentum tolerates on a problem, which momentum to use, and why; then,
//! on request, check the prediction with a short simulation.
//!
//! The prediction is the stability of the linearised delayed heavy ball of
//! the problem's stiffest mode (gain a = η·c_max): the root crossing for
//! constant delays and equal compute times, the expected recursion for
//! random delays and for exponential compute times (whose geometric
//! staleness carries the implicit momentum 1 − 1/M); see
//! [`psim_common::theory::stability`]. The confirmation runs a grid of
//! delays (or worker counts) around each prediction through the executor
//! and reads the measured edge with the phase diagram's rule
//! ([`crate::experiments::phase_diagram::measured_edge`]).

use crate::executor::Plan;
use crate::experiments::phase_diagram::{measured_edge, RADIAL_EDGE, RADIAL_FACTOR};
use crate::sweep::{run_plan, PointResult, SweepError, SweepOptions};
use psim_common::theory::{
    crossing_angle, max_stable_mean_delay, pca_stiffest_curvature, ClusterStaleness, DelayFamily,
};
use psim_common::{
    ClusterConfig, Consistency, Delay, EngineConfig, EngineKind, Experiment, Grid, ObjectiveConfig,
    PcaConfig, RunConfig, StreamingPca,
};
use serde::Serialize;
use std::fmt::Write;
use thiserror::Error;

/// The largest delay or worker count a prediction looks at.
pub const LIMIT: u64 = 1_000_000;

/// The μ grid advise predicts over when none is given.
pub const DEFAULT_MOMENTA: [f64; 9] = [0.5, 0.6, 0.7, 0.8, 0.85, 0.9, 0.925, 0.95, 0.975];

/// Grid values per confirmed row: the prediction's edge sits near the
/// middle of 0, s, 2s, …, (CONFIRM_POINTS − 1)·s.
pub const CONFIRM_POINTS: u64 = 16;

/// The smallest confirmation grid step: the measured edge of one run set
/// moves by a step or two between seeds, so a grid of single steps (a
/// prediction of a few steps) would test the noise, not the prediction.
pub const MIN_GRID_STEP: u64 = 2;

/// Why advice cannot be given.
#[derive(Debug, Error)]
pub enum AdviseError {
    /// An input outside its range, or a setting advise cannot take.
    #[error("invalid `{field}`: {message}")]
    Invalid {
        /// The flag or keyword.
        field: &'static str,
        /// What is wrong and what is allowed.
        message: String,
    },
    /// The confirming simulation failed.
    #[error(transparent)]
    Sweep(#[from] SweepError),
}

fn invalid(field: &'static str, message: impl Into<String>) -> AdviseError {
    AdviseError::Invalid {
        field,
        message: message.into(),
    }
}

/// The problem advice is about.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Problem {
    /// Streaming PCA with Σ = diag(spectrum), Gaussian data, saddle start
    /// (E1's problem for 4,3,2,1): stiffest mode the radial one, 2λ₁.
    Spectrum(Vec<f64>),
    /// A problem known only by its curvature range [min, max] (the top
    /// curvature limits; a Python objective's is estimated from gradient
    /// differences). Predicted only: psim cannot simulate it.
    Curvature {
        /// Smallest curvature (informative).
        min: Option<f64>,
        /// Largest curvature.
        max: f64,
    },
}

impl Problem {
    /// The stiffest curvature and a phrase saying which mode it is.
    fn stiffest(&self) -> Result<(f64, String), AdviseError> {
        match self {
            Problem::Spectrum(lam) => {
                let cfg = pca_config(lam);
                let pca =
                    StreamingPca::new(&cfg).map_err(|e| invalid("spectrum", e.to_string()))?;
                let lam = pca.eigenvalues();
                let c = pca_stiffest_curvature(lam);
                Ok((c, format!("the radial mode of streaming PCA (‖v‖ → 1), curvature 2λ₁ = {c}; the angular modes have λ₁ − λᵢ < λ₁ and tolerate more")))
            }
            Problem::Curvature { min, max } => {
                if !(max.is_finite() && *max > 0.0) {
                    return Err(invalid(
                        "curvature",
                        format!("{max}: the largest curvature must be finite and > 0"),
                    ));
                }
                if let Some(m) = min {
                    if !(m.is_finite() && *m > 0.0 && m <= max) {
                        return Err(invalid(
                            "curvature",
                            format!("min {m}: must be finite, > 0 and ≤ the largest {max}"),
                        ));
                    }
                }
                Ok((*max, format!("the stiffest direction, curvature {max}")))
            }
        }
    }
}

fn pca_config(spectrum: &[f64]) -> PcaConfig {
    PcaConfig {
        spectrum: spectrum.to_vec(),
        ..PcaConfig::default()
    }
}

/// Where the staleness comes from.
#[derive(Debug, Clone, PartialEq)]
pub enum Asynchrony {
    /// An injected delay model: its family (constant, uniform 0..2s,
    /// geometric, Poisson, exponential) is the axis, its mean the delay asked about.
    Delay(Delay),
    /// A cluster of workers (asynchronous, no network delay).
    Cluster {
        /// The worker count asked about, if any.
        workers: Option<u64>,
        /// Compute time per gradient: constant (staleness M − 1) or
        /// exponential (geometric staleness, implicit momentum 1 − 1/M).
        compute_time: Delay,
        /// Only ASP is predicted.
        consistency: Consistency,
    },
}

/// A request for advice.
#[derive(Debug, Clone)]
pub struct Request {
    /// The problem.
    pub problem: Problem,
    /// Step size η.
    pub step_size: f64,
    /// Where staleness comes from.
    pub asynchrony: Asynchrony,
    /// The momenta to predict for (μ ∈ (−1, 1)); empty: [`DEFAULT_MOMENTA`].
    pub momenta: Vec<f64>,
}

/// The prediction for one μ.
#[derive(Debug, Clone, Serialize)]
pub struct Row {
    /// Momentum μ.
    pub momentum: f64,
    /// Largest tolerated mean delay (or worker count); `None` when even
    /// none is tolerated (the step is too large for this μ); [`LIMIT`] when
    /// stable throughout.
    pub largest: Option<u64>,
    /// Whether the delay or worker count asked about is tolerated.
    pub tolerates_asked: Option<bool>,
    /// Period in steps of the oscillation that loses stability (constant delays).
    pub period: Option<f64>,
}

/// The advice.
#[derive(Debug, Clone, Serialize)]
pub struct Advice {
    /// Stiffest curvature c.
    pub curvature: f64,
    /// Gain a = η·c.
    pub gain: f64,
    /// Step size η.
    pub step_size: f64,
    /// The axis: `delay` or `workers`.
    pub axis: &'static str,
    /// The staleness law, in words.
    pub law: String,
    /// The delay or worker count asked about.
    pub asked: Option<u64>,
    /// One row per μ, ascending.
    pub rows: Vec<Row>,
    /// The largest μ that tolerates what was asked (or, when nothing was
    /// asked, the μ with the largest tolerance).
    pub best_momentum: Option<f64>,
    /// One paragraph: which mode limits, and why.
    pub explanation: String,
}

/// The staleness axis of a request.
#[derive(Debug, Clone, Copy)]
enum Axis {
    Delay(DelayFamily),
    Workers(ClusterStaleness),
}

fn axis_of(a: &Asynchrony) -> Result<(Axis, Option<u64>, String), AdviseError> {
    match a {
        Asynchrony::Delay(d) => {
            let family = DelayFamily::of(d).ok_or_else(|| {
                invalid("delay", format!("{d}: advise predicts the families const:N, uniform:0..B, geometric:P, poisson:L and exp:MEAN (scanned by their mean); {d} has no such family"))
            })?;
            let mean = d.mean_steps().unwrap_or(f64::NAN);
            let law = match family {
                DelayFamily::Constant => "constant delays τ".to_string(),
                f => format!(
                    "random delays {}, by their mean τ (expected recursion)",
                    f.name()
                ),
            };
            Ok((Axis::Delay(family), Some(mean.round() as u64), law))
        }
        Asynchrony::Cluster {
            workers,
            compute_time,
            consistency,
        } => {
            if *consistency != Consistency::Asp {
                return Err(invalid(
                    "consistency",
                    format!("{consistency}: advise predicts asynchronous clusters (asp) only"),
                ));
            }
            let law = ClusterStaleness::of(compute_time).ok_or_else(|| {
                invalid("compute-time", format!("{compute_time}: advise predicts constant compute times (staleness M − 1) and exponential ones (geometric staleness, implicit momentum 1 − 1/M)"))
            })?;
            if workers == &Some(0) {
                return Err(invalid("workers", "0: must be ≥ 1"));
            }
            let words = match law {
                ClusterStaleness::Constant => "workers M with equal constant compute times (staleness M − 1)".to_string(),
                ClusterStaleness::Exponential => "workers M with exponential compute times (geometric staleness of mean M − 1, implicit momentum 1 − 1/M)".to_string(),
            };
            Ok((Axis::Workers(law), *workers, words))
        }
    }
}

fn largest(axis: Axis, momentum: f64, gain: f64) -> Option<u64> {
    match axis {
        Axis::Delay(f) => max_stable_mean_delay(momentum, gain, f, LIMIT),
        Axis::Workers(law) => law.max_stable_workers(momentum, gain, LIMIT),
    }
}

/// Checks a request's numbers, naming the field.
fn validate(r: &Request) -> Result<Vec<f64>, AdviseError> {
    if !(r.step_size.is_finite() && r.step_size > 0.0) {
        return Err(invalid(
            "step-size",
            format!("{}: must be finite and > 0", r.step_size),
        ));
    }
    let momenta = if r.momenta.is_empty() {
        DEFAULT_MOMENTA.to_vec()
    } else {
        r.momenta.clone()
    };
    for &m in &momenta {
        if !(m.is_finite() && m > -1.0 && m < 1.0) {
            return Err(invalid("momentum", format!("{m}: must be in (−1, 1)")));
        }
    }
    let mut sorted = momenta;
    sorted.sort_by(|a, b| a.total_cmp(b));
    sorted.dedup();
    if sorted.len() > 1000 {
        return Err(invalid(
            "momentum",
            format!("{} values: at most 1000", sorted.len()),
        ));
    }
    Ok(sorted)
}

/// Predicts, per μ, the largest tolerated delay or worker count, the best
/// μ, and explains which mode limits it.
pub fn advise(r: &Request) -> Result<Advice, AdviseError> {
    let momenta = validate(r)?;
    let (c, mode) = r.problem.stiffest()?;
    let gain = r.step_size * c;
    if !gain.is_finite() {
        return Err(invalid(
            "step-size",
            format!("{}: η·c = {gain} is not finite", r.step_size),
        ));
    }
    let (axis, asked, law) = axis_of(&r.asynchrony)?;
    if let Some(a) = asked.filter(|&a| a > LIMIT) {
        // The prediction scans up to LIMIT: beyond it "tolerates" is unknown.
        let field = match axis {
            Axis::Delay(_) => "delay",
            Axis::Workers(_) => "workers",
        };
        return Err(invalid(
            field,
            format!("{a}: the prediction scans delays and worker counts up to {LIMIT}; ask about at most that"),
        ));
    }
    let rows: Vec<Row> = momenta
        .iter()
        .map(|&m| {
            let l = largest(axis, m, gain);
            Row {
                momentum: m,
                largest: l,
                tolerates_asked: asked.map(|a| l.is_some_and(|l| a <= l)),
                period: matches!(
                    axis,
                    Axis::Delay(DelayFamily::Constant) | Axis::Workers(ClusterStaleness::Constant)
                )
                .then(|| crossing_angle(m, gain).map(|t| 2.0 * std::f64::consts::PI / t))
                .flatten(),
            }
        })
        .collect();
    let best = match asked {
        Some(_) => rows
            .iter()
            .filter(|r| r.tolerates_asked == Some(true))
            .map(|r| r.momentum)
            .next_back(),
        None => rows
            .iter()
            .filter(|r| r.largest.is_some())
            .max_by(|a, b| {
                a.largest
                    .cmp(&b.largest)
                    .then(b.momentum.total_cmp(&a.momentum))
            })
            .map(|r| r.momentum),
    };
    let axis_name = match axis {
        Axis::Delay(_) => "delay",
        Axis::Workers(_) => "workers",
    };
    let explanation = explain(r, c, &mode, gain, axis, asked, &rows, best);
    Ok(Advice {
        curvature: c,
        gain,
        step_size: r.step_size,
        axis: axis_name,
        law,
        asked,
        rows,
        best_momentum: best,
        explanation,
    })
}

#[allow(clippy::too_many_arguments)]
fn explain(
    r: &Request,
    c: f64,
    mode: &str,
    gain: f64,
    axis: Axis,
    asked: Option<u64>,
    rows: &[Row],
    best: Option<f64>,
) -> String {
    let mut s = String::new();
    let _ = write!(
        s,
        "What limits the asynchrony is {mode}: with η = {} its gain is a = η·c = {gain:.4}, and heavy ball without delay is stable only for a < 2(1+μ). A stale gradient feeds back the mode's state of τ steps ago; the mode loses stability when a root of z^(τ+1) − (1+μ)z^τ + μz^(τ−1) + a = 0 crosses the unit circle, an oscillation whose period is 2π/θ steps with |e^(iθ) − 1|·|e^(iθ) − μ| = a. ",
        r.step_size
    );
    let _ = c;
    let _ = write!(s, "Momentum lengthens the memory of the update to about 1/(1−μ) steps, so the tolerated delay falls as μ grows (roughly as (1−μ)·π/(2a) for small a). ");
    match axis {
        Axis::Delay(DelayFamily::Constant) => {}
        Axis::Delay(f) => {
            let _ = write!(s, "For random delays ({}) the expected update averages the delayed gradients over the law, which damps the oscillation: the prediction is that expected recursion's stability, so a random delay tolerates a larger mean than a constant one (001 §4 only moves its condition to E[τ]); a wide law also adds variance, which the expected recursion does not see, so near the edge the measured edge can come a grid step early. ", f.name());
        }
        Axis::Workers(ClusterStaleness::Constant) => {
            let _ = write!(s, "With equal constant compute times the M workers push in a fixed cycle and every staleness is M − 1, so the largest tolerated M is the constant-delay boundary plus one. ");
        }
        Axis::Workers(ClusterStaleness::Exponential) => {
            let _ = write!(s, "With exponential compute times the staleness is geometric with mean M − 1, and in expectation asynchrony acts as an implicit momentum 1 − 1/M with the step divided by M (Mitliagkas et al. 2016): the expected update is stable far beyond τ = M − 1 for moderate μ, and the explicit μ and the implicit 1 − 1/M add up, so the limit appears when μ is near 1. This is a first-moment prediction: the variance of the staleness can destabilise earlier, which `--confirm` measures. ");
        }
    }
    if let Some(m) = best {
        let row = rows.iter().find(|r| r.momentum == m);
        let lim = row.and_then(|r| r.largest);
        match asked {
            Some(a) => {
                let _ = write!(s, "The best μ is {m}: the largest μ of the grid that tolerates {a} (its limit is {}); larger μ converges faster (phases I and II shrink by 1−μ) but settles at an error that grows as 1/(1−μ), and any larger μ here would oscillate.",
                    lim.map_or("–".into(), show_limit));
            }
            None => {
                let _ = write!(s, "Without a delay or worker count to meet, the μ that tolerates the most is {m} (limit {}).", lim.map_or("–".into(), show_limit));
            }
        }
    } else if let Some(a) = asked {
        let _ = write!(s, "No μ of the grid tolerates {a}: reduce the step size (the tolerated delay grows roughly as 1/√η) or the asynchrony.");
    }
    s
}

fn show_limit(l: u64) -> String {
    if l >= LIMIT {
        format!("≥ {LIMIT}")
    } else {
        l.to_string()
    }
}

impl Advice {
    /// The terminal report.
    pub fn report(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "psim advise · stiffest curvature c = {}, η = {}, gain a = η·c = {:.6}",
            self.curvature, self.step_size, self.gain
        );
        let _ = writeln!(s, "asynchrony: {}", self.law);
        let what = if self.axis == "workers" {
            "largest tolerated M"
        } else {
            "largest tolerated τ"
        };
        let _ = write!(s, "{:>7} | {:>20} | {:>12}", "μ", what, "period (steps)");
        if let Some(a) = self.asked {
            let _ = write!(s, " | {:>12}", format!("tolerates {a}"));
        }
        let _ = writeln!(s);
        for r in &self.rows {
            let _ = write!(
                s,
                "{:>7} | {:>20} | {:>12}",
                r.momentum,
                r.largest.map_or("none".into(), show_limit),
                r.period.map_or("–".into(), |p| format!("{p:.1}"))
            );
            if let Some(t) = r.tolerates_asked {
                let _ = write!(s, " | {:>12}", if t { "yes" } else { "no" });
            }
            let _ = writeln!(s);
        }
        let _ = writeln!(
            s,
            "best μ: {}\n",
            self.best_momentum.map_or("none".into(), |m| m.to_string())
        );
        let _ = writeln!(s, "{}", self.explanation);
        s
    }
}

/// How the confirming simulation runs.
#[derive(Debug, Clone)]
pub struct ConfirmSettings {
    /// Runs per grid point.
    pub runs: u32,
    /// Steps (gradients, or server updates) per run.
    pub steps: u64,
    /// Master seed.
    pub seed: u64,
}

impl Default for ConfirmSettings {
    fn default() -> Self {
        Self {
            runs: 16,
            steps: 20_000,
            seed: 1,
        }
    }
}

/// One confirmed μ.
#[derive(Debug, Clone, Serialize)]
pub struct ConfirmRow {
    /// Momentum μ.
    pub momentum: f64,
    /// The grid step s of 0, s, 2s, … (delays, or M − 1).
    pub grid_step: u64,
    /// Predicted largest tolerated value.
    pub predicted: Option<u64>,
    /// Measured largest tolerated grid value (the one before the measured
    /// edge); `None` when the first is not tolerated.
    pub measured: Option<u64>,
    /// Grid index of the predicted edge (first value beyond the prediction).
    pub predicted_edge: usize,
    /// Grid index of the measured edge.
    pub measured_edge: usize,
    /// Within one grid step.
    pub agrees: bool,
}

/// The confirmation.
#[derive(Debug, Clone, Serialize)]
pub struct Confirmation {
    /// Rows that could be checked (a prediction beyond [`LIMIT`] cannot).
    pub rows: Vec<ConfirmRow>,
    /// μ rows not checked, with why.
    pub skipped: Vec<(f64, String)>,
    /// Wall seconds of the simulation.
    pub wall_seconds: f64,
}

impl Confirmation {
    /// Whether every checked row agrees within one grid step.
    pub fn agrees(&self) -> bool {
        !self.rows.is_empty() && self.rows.iter().all(|r| r.agrees)
    }

    /// The terminal report.
    pub fn report(&self, axis: &str) -> String {
        let mut s = String::new();
        let unit = if axis == "workers" { "M" } else { "τ" };
        let _ = writeln!(s, "confirmation · predicted beside measured (measured: the largest grid {unit} before the first unstable cell: median |‖v‖² − 1| ≥ max({RADIAL_EDGE}, {RADIAL_FACTOR}× its value at the first cell), or most runs diverged); ran in {:.2} s", self.wall_seconds);
        let _ = writeln!(
            s,
            "{:>7} | {:>9} | {:>10} | {:>10} | {:>6}",
            "μ", "grid step", "predicted", "measured", "agrees"
        );
        for r in &self.rows {
            let shown = |v: Option<u64>| v.map_or("none".into(), |x| x.to_string());
            let _ = writeln!(
                s,
                "{:>7} | {:>9} | {:>10} | {:>10} | {:>6}",
                r.momentum,
                r.grid_step,
                shown(r.predicted),
                shown(r.measured),
                if r.agrees { "yes" } else { "no" }
            );
        }
        for (m, why) in &self.skipped {
            let _ = writeln!(s, "{m:>7} | not checked: {why}");
        }
        let _ = writeln!(
            s,
            "predicted and measured within one grid step for every checked μ: {}",
            crate::verdict::verdict_word(self.agrees())
        );
        s
    }
}

/// Checks `advice` with a short simulation: per μ, a grid of 16 delays
/// (or worker counts) around the prediction, `settings.runs` runs each,
/// through the executor; the measured edge by the phase diagram's rule.
pub fn confirm(
    r: &Request,
    advice: &Advice,
    settings: &ConfirmSettings,
    opts: &SweepOptions<'_>,
) -> Result<Confirmation, AdviseError> {
    let Problem::Spectrum(spectrum) = &r.problem else {
        return Err(invalid("confirm", "needs `--spectrum` (streaming PCA, a problem psim simulates); a curvature range or a Python objective's estimated curvature is predicted only"));
    };
    if settings.runs == 0 || settings.steps == 0 {
        return Err(invalid("runs", "confirm needs ≥ 1 run of ≥ 1 step"));
    }
    let (axis, _, _) = axis_of(&r.asynchrony)?;
    let base = RunConfig {
        step_size: r.step_size,
        steps: settings.steps,
        runs: settings.runs,
        seed: settings.seed,
        record_every: (settings.steps / 20).max(1),
        record_params: true,
        objective: ObjectiveConfig::Pca(pca_config(spectrum)),
        ..RunConfig::default()
    };
    let mut plan = Plan {
        points: crate::plan::Points::default(),
        columns: Vec::new(),
        rows: true,
        batch: true,
    };
    let mut checked = Vec::new();
    let mut skipped = Vec::new();
    for row in &advice.rows {
        let step = match row.largest {
            Some(l) if l >= LIMIT => {
                skipped.push((row.momentum, "predicted stable throughout".to_string()));
                continue;
            }
            // The edge near the middle of the grid.
            Some(l) => (l + 1).div_ceil(CONFIRM_POINTS / 2).max(MIN_GRID_STEP),
            None => MIN_GRID_STEP,
        };
        let values: Vec<u64> = (0..CONFIRM_POINTS).map(|k| k * step).collect();
        let e = Experiment {
            name: "advise".into(),
            base: RunConfig {
                momentum: row.momentum,
                ..base.clone()
            },
            grid: Grid::default(),
            tradeoff: None,
        };
        let sub = match axis {
            Axis::Delay(f) => Experiment {
                grid: Grid {
                    delay: values.iter().map(|&v| f.at(v)).collect(),
                    ..Grid::default()
                },
                ..e
            },
            Axis::Workers(law) => {
                let compute_time = match law {
                    ClusterStaleness::Constant => Delay::Constant(1.0),
                    ClusterStaleness::Exponential => Delay::Exponential { mean: 1.0 },
                };
                Experiment {
                    base: RunConfig {
                        engine: EngineConfig::new(
                            EngineKind::VirtualTime,
                            ClusterConfig {
                                workers: 1,
                                compute_time,
                                ..ClusterConfig::default()
                            },
                        ),
                        ..e.base
                    },
                    grid: Grid {
                        workers: values.iter().map(|&v| v as usize + 1).collect(),
                        ..Grid::default()
                    },
                    ..e
                }
            }
        };
        sub.validate().map_err(SweepError::from)?;
        let first = plan.points.len();
        plan.points.extend(Plan::sweep(&sub).points);
        checked.push((row, step, values, first));
    }
    let whole = Experiment {
        name: "advise".into(),
        base: base.clone(),
        grid: Grid::default(),
        tradeoff: None,
    };
    let done = run_plan(&whole, &plan, None, opts)?;
    let offset = match axis {
        Axis::Delay(_) => 0,
        Axis::Workers(_) => 1,
    };
    let rows = checked
        .into_iter()
        .map(|(row, step, values, first)| {
            let pts: Vec<&PointResult> = done.points[first..first + values.len()].iter().collect();
            let (measured_edge, _) = measured_edge(&pts);
            let predicted_edge = match row.largest {
                None => 0,
                Some(l) => values
                    .iter()
                    .position(|&v| v + offset > l)
                    .unwrap_or(values.len()),
            };
            ConfirmRow {
                momentum: row.momentum,
                grid_step: step,
                predicted: row.largest,
                measured: measured_edge.checked_sub(1).map(|i| values[i] + offset),
                predicted_edge,
                measured_edge,
                agrees: predicted_edge.abs_diff(measured_edge) <= 1,
            }
        })
        .collect();
    Ok(Confirmation {
        rows,
        skipped,
        wall_seconds: done.wall_seconds,
    })
}
