//! Sweeps: every (point, run) job of an [`Experiment`] in parallel across
//! cores, aggregated per point.
//!
//! Determinism: a job's result depends only on (seed, run index, point
//! configuration), jobs are collected in grid order, and aggregation is
//! sequential, so the output is bit-identical whatever the thread count.

use psim_common::result::{ServerCounters, StalenessSummary};
use psim_common::{
    AnyObjective, ConfigError, Experiment, Outcome, RunConfig, RunResult, StalenessHistogram,
};
use psim_engine::{self as engine, EngineError};
use rayon::prelude::*;
use serde::Serialize;
use std::time::Instant;
use thiserror::Error;

/// Why a sweep could not run.
#[derive(Debug, Error)]
pub enum SweepError {
    /// A configuration value is out of range.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// An engine failed.
    #[error(transparent)]
    Engine(#[from] EngineError),
    /// The sweep was stopped through [`SweepOptions::cancel`] (Ctrl-C from Python).
    #[error("interrupted: the sweep was cancelled before it finished")]
    Cancelled,
    /// The thread pool could not be built.
    #[error("cannot start {threads} worker threads: {message}")]
    Threads { threads: usize, message: String },
}

/// One run's scalars, as written to `runs.csv`.
#[derive(Debug, Clone, Serialize)]
pub struct RunRow {
    /// Run index within the point.
    pub run: u64,
    /// How the run ended.
    #[serde(flatten)]
    pub outcome: Outcome,
    /// Error at the end (NaN when diverged).
    pub final_error: f64,
    /// Mean error over the tail of the run (NaN when diverged).
    pub tail_error: f64,
    /// Mean staleness of the applied gradients.
    pub mean_staleness: f64,
    /// Largest staleness applied.
    pub max_staleness: u64,
    /// Server counters.
    pub counters: ServerCounters,
    /// Injected sleeps cut to 1 s (threads and tasks engines).
    pub capped_sleeps: u64,
    /// Wall-clock seconds.
    pub wall_seconds: f64,
    /// Simulated time of the run (virtual-time engine), in the compute-time model's units.
    pub virtual_time: Option<f64>,
}

/// Error statistics over the non-diverged runs of a point (NaN when all diverged).
#[derive(Debug, Clone, Copy, Serialize)]
pub struct ErrorStats {
    /// Mean of the runs' tail errors.
    pub mean: f64,
    /// Sample standard deviation across runs.
    pub std: f64,
    /// Standard error of the mean.
    pub sem: f64,
    /// 10th percentile across runs.
    pub p10: f64,
    /// Median across runs.
    pub p50: f64,
    /// 90th percentile across runs.
    pub p90: f64,
}

impl ErrorStats {
    /// Statistics of `values` (NaN fields when empty).
    pub fn of(values: &[f64]) -> Self {
        let n = values.len();
        if n == 0 {
            return Self {
                mean: f64::NAN,
                std: f64::NAN,
                sem: f64::NAN,
                p10: f64::NAN,
                p50: f64::NAN,
                p90: f64::NAN,
            };
        }
        let mean = values.iter().sum::<f64>() / n as f64;
        let var = if n > 1 {
            values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1) as f64
        } else {
            0.0
        };
        let mut sorted = values.to_vec();
        sorted.sort_by(f64::total_cmp);
        let q = |p: f64| sorted[((p * (n - 1) as f64).round() as usize).min(n - 1)];
        Self {
            mean,
            std: var.sqrt(),
            sem: (var / n as f64).sqrt(),
            p10: q(0.1),
            p50: q(0.5),
            p90: q(0.9),
        }
    }
}

/// Mean error trace of a point: at each recorded step, statistics over the
/// runs still going (non-diverged) at that step.
#[derive(Debug, Clone, Serialize)]
pub struct TraceRow {
    /// Step.
    pub step: u64,
    /// Runs contributing.
    pub runs: usize,
    /// Mean error.
    pub mean: f64,
    /// 10th percentile.
    pub p10: f64,
    /// 90th percentile.
    pub p90: f64,
}

/// Aggregate of one grid point.
#[derive(Debug, Clone, Serialize)]
pub struct PointSummary {
    /// Index of the point in grid order.
    pub index: usize,
    /// Momentum μ.
    pub momentum: f64,
    /// Step size η.
    pub step_size: f64,
    /// Delay model, in its text syntax (injected engine).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub delay: Option<String>,
    /// Mean of the delay model (null when infinite, or on a cluster engine).
    pub mean_delay: Option<f64>,
    /// Worker count M (cluster engines).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub workers: Option<usize>,
    /// Compute-time model, in its text syntax (cluster engines).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub compute_time: Option<String>,
    /// Consistency model (cluster engines).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub consistency: Option<String>,
    /// Runs at this point.
    pub runs: usize,
    /// Runs that diverged.
    pub diverged: usize,
    /// Tail-error statistics over non-diverged runs.
    pub error: ErrorStats,
    /// Mean final error over non-diverged runs.
    pub mean_final_error: f64,
    /// Staleness of every applied gradient of every run.
    pub staleness: StalenessSummary,
    /// Server counters summed over runs.
    pub counters: ServerCounters,
    /// Injected sleeps cut to 1 s, summed over runs (threads and tasks engines).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub capped_sleeps: Option<u64>,
    /// Mean wall-clock seconds per run.
    pub mean_wall_seconds: f64,
    /// Mean simulated time per run (virtual-time engine).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mean_virtual_time: Option<f64>,
}

impl PointSummary {
    /// The point's engine setting in one label: the delay model on the
    /// injected engine, `M=…, compute …, consistency` on a cluster engine.
    pub fn setting(&self) -> String {
        match (&self.delay, self.workers) {
            (Some(d), _) => d.clone(),
            (None, Some(w)) => format!(
                "M={w} {} {}",
                self.compute_time.as_deref().unwrap_or(""),
                self.consistency.as_deref().unwrap_or("")
            ),
            (None, None) => String::new(),
        }
    }
}

/// One point: its configuration, summary, per-run rows, mean trace and
/// merged staleness histogram.
#[derive(Debug, Clone)]
pub struct PointResult {
    /// The point's configuration.
    pub config: RunConfig,
    /// Aggregates.
    pub summary: PointSummary,
    /// Per-run scalars.
    pub rows: Vec<RunRow>,
    /// Mean error trace.
    pub trace: Vec<TraceRow>,
    /// Merged staleness histogram.
    pub staleness: StalenessHistogram,
}

/// A finished sweep.
#[derive(Debug, Clone)]
pub struct SweepResult {
    /// The experiment that was run.
    pub experiment: Experiment,
    /// Points in grid order.
    pub points: Vec<PointResult>,
    /// Wall-clock seconds of the whole sweep.
    pub wall_seconds: f64,
    /// Threads used.
    pub threads: usize,
}

/// Options of a sweep that do not change its results.
#[derive(Default)]
pub struct SweepOptions<'a> {
    /// Worker threads (0 = one per core).
    pub threads: usize,
    /// Called after every finished run, from any thread.
    pub progress: Option<&'a (dyn Fn() + Sync)>,
    /// When set to true, runs not yet started are skipped and the sweep
    /// returns [`SweepError::Cancelled`] (runs under way finish first).
    pub cancel: Option<&'a std::sync::atomic::AtomicBool>,
}

/// Checks everything about `experiment` that can be checked without
/// running it: every value's range, every point's objective (built, so
/// a covariance that is not positive definite is caught) and every
/// point's engine limits ([`engine::check`]). Commands call it before they
/// create an output directory.
pub fn preflight(experiment: &Experiment) -> Result<(), SweepError> {
    experiment.validate()?;
    // Points differ in momentum, step size and delay only: the objective
    // and the engine settings are the base's.
    let o = AnyObjective::build(&experiment.base.objective)?;
    engine::check(&experiment.base, psim_common::Objective::dim(&o))?;
    Ok(())
}

/// Runs every point × run of `experiment`.
pub fn run_sweep(
    experiment: &Experiment,
    opts: &SweepOptions<'_>,
) -> Result<SweepResult, SweepError> {
    run_sweep_with(experiment, opts, |p| AnyObjective::build(&p.objective))
}

/// [`run_sweep`] with the objective of each point built by `objective`
/// (the built-in objectives use [`AnyObjective::build`]; the Python
/// package passes a user's objective).
pub fn run_sweep_with<O, F>(
    experiment: &Experiment,
    opts: &SweepOptions<'_>,
    objective: F,
) -> Result<SweepResult, SweepError>
where
    O: psim_common::Objective + Clone + 'static,
    F: Fn(&RunConfig) -> Result<O, ConfigError>,
{
    experiment.validate()?;
    let points = experiment.points();
    let objectives: Vec<O> = points.iter().map(&objective).collect::<Result<_, _>>()?;
    let runs = experiment.base.runs as u64;
    let jobs: Vec<(usize, u64)> = (0..points.len())
        .flat_map(|p| (0..runs).map(move |r| (p, r)))
        .collect();
    let span = tracing::info_span!("sweep", name = %experiment.name, points = points.len(), runs);
    let _guard = span.enter();
    let started = Instant::now();
    let cancelled = || {
        opts.cancel
            .is_some_and(|c| c.load(std::sync::atomic::Ordering::Relaxed))
    };
    let work = || -> Result<Vec<RunResult>, SweepError> {
        jobs.par_iter()
            .map(|&(p, r)| {
                if cancelled() {
                    return Err(SweepError::Cancelled);
                }
                let result = engine::run(&points[p], &objectives[p], r)?;
                if let Some(progress) = opts.progress {
                    progress();
                }
                Ok(result)
            })
            .collect()
    };
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(opts.threads)
        .build()
        .map_err(|e| SweepError::Threads {
            threads: opts.threads,
            message: e.to_string(),
        })?;
    let threads = pool.current_num_threads();
    let results = pool.install(work)?;
    if cancelled() {
        return Err(SweepError::Cancelled);
    }
    let wall_seconds = started.elapsed().as_secs_f64();
    let mut it = results.into_iter();
    let points = points
        .into_iter()
        .enumerate()
        .map(|(index, config)| {
            let runs: Vec<RunResult> = it.by_ref().take(runs as usize).collect();
            aggregate(index, config, runs)
        })
        .collect();
    tracing::info!(wall_seconds, threads, "sweep finished");
    Ok(SweepResult {
        experiment: experiment.clone(),
        points,
        wall_seconds,
        threads,
    })
}

/// Summarises the runs of one point.
pub fn aggregate(index: usize, config: RunConfig, runs: Vec<RunResult>) -> PointResult {
    let ok: Vec<&RunResult> = runs.iter().filter(|r| !r.outcome.diverged()).collect();
    let tails: Vec<f64> = ok.iter().map(|r| r.tail_error).collect();
    let mut staleness = StalenessHistogram::new();
    let mut counters = ServerCounters::default();
    for r in &runs {
        staleness.merge(&r.staleness);
        counters.add(&r.counters);
    }
    let mean_final_error = if ok.is_empty() {
        f64::NAN
    } else {
        ok.iter().map(|r| r.final_error).sum::<f64>() / ok.len() as f64
    };
    let trace = mean_trace(&runs);
    let rows = runs
        .iter()
        .map(|r| RunRow {
            run: r.run,
            outcome: r.outcome,
            final_error: r.final_error,
            tail_error: r.tail_error,
            mean_staleness: r.staleness.mean(),
            max_staleness: r.staleness.max(),
            counters: r.counters,
            capped_sleeps: r.capped_sleeps,
            wall_seconds: r.wall_seconds,
            virtual_time: r.virtual_seconds,
        })
        .collect();
    let summary = PointSummary {
        index,
        momentum: config.momentum,
        step_size: config.step_size,
        delay: config.injected().map(|i| i.delay.to_string()),
        mean_delay: config.injected().and_then(|i| i.delay.mean()),
        workers: config.cluster().map(|c| c.workers),
        compute_time: config.cluster().map(|c| c.compute_time.to_string()),
        consistency: config.cluster().map(|c| c.consistency.to_string()),
        runs: runs.len(),
        diverged: runs.len() - ok.len(),
        error: ErrorStats::of(&tails),
        mean_final_error,
        staleness: staleness.summary(),
        counters,
        capped_sleeps: config
            .engine
            .is_wall_clock()
            .then(|| runs.iter().map(|r| r.capped_sleeps).sum()),
        mean_wall_seconds: runs.iter().map(|r| r.wall_seconds).sum::<f64>()
            / runs.len().max(1) as f64,
        mean_virtual_time: runs
            .iter()
            .map(|r| r.virtual_seconds)
            .sum::<Option<f64>>()
            .map(|t| t / runs.len().max(1) as f64),
    };
    PointResult {
        config,
        summary,
        rows,
        trace,
        staleness,
    }
}

fn mean_trace(runs: &[RunResult]) -> Vec<TraceRow> {
    let mut by_step: std::collections::BTreeMap<u64, Vec<f64>> = Default::default();
    for r in runs {
        for t in r.trace.iter().filter(|t| t.error.is_finite()) {
            by_step.entry(t.step).or_default().push(t.error);
        }
    }
    by_step
        .into_iter()
        .map(|(step, vals)| {
            let s = ErrorStats::of(&vals);
            TraceRow {
                step,
                runs: vals.len(),
                mean: s.mean,
                p10: s.p10,
                p90: s.p90,
            }
        })
        .collect()
}
