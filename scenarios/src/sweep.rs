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
use psim_engine::{self as engine, batched, EngineError};
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
    /// Each worker's own compute time, when workers differ (cluster engines).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub worker_compute: Option<String>,
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
    /// Who contributed what (cluster engines): one entry per worker.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub per_worker: Vec<WorkerSummary>,
}

/// One worker's contribution at a point, over its runs.
#[derive(Debug, Clone, Serialize)]
pub struct WorkerSummary {
    /// Worker index.
    pub worker: usize,
    /// Mean compute time of its model (seconds, its factors included),
    /// averaged over runs; null when infinite.
    pub mean_compute: Option<f64>,
    /// Its applied gradients, mean per run.
    pub applied_per_run: f64,
    /// Its share of all applied gradients.
    pub share: f64,
    /// Mean staleness of its applied gradients.
    pub mean_staleness: f64,
    /// Staleness quantiles (null beyond 256 workers, where no per-worker
    /// histogram is kept).
    pub p50: Option<u64>,
    /// 90th percentile.
    pub p90: Option<u64>,
    /// 99th percentile.
    pub p99: Option<u64>,
    /// Largest staleness.
    pub max: u64,
}

/// Per-worker table of a point's runs (empty on the injected engine).
pub fn per_worker(runs: &[RunResult]) -> Vec<WorkerSummary> {
    let m = runs.iter().map(|r| r.workers.len()).max().unwrap_or(0);
    let n = runs.len().max(1) as f64;
    let total: u64 = runs
        .iter()
        .flat_map(|r| r.workers.iter().map(|w| w.applied))
        .sum();
    (0..m)
        .map(|w| {
            let mut st = psim_common::WorkerStats::default();
            let mut compute = Some(0.0);
            let mut hist: Option<StalenessHistogram> = None;
            for r in runs {
                if let Some(x) = r.workers.get(w) {
                    st.applied += x.applied;
                    st.staleness_sum = st.staleness_sum.saturating_add(x.staleness_sum);
                    st.staleness_max = st.staleness_max.max(x.staleness_max);
                    compute = compute.zip(x.mean_compute).map(|(a, b)| a + b / n);
                }
                if let Some(h) = r.histograms.get(&format!("staleness.worker{w}")) {
                    hist.get_or_insert_with(StalenessHistogram::new).merge(h);
                }
            }
            WorkerSummary {
                worker: w,
                mean_compute: compute,
                applied_per_run: st.applied as f64 / n,
                share: st.applied as f64 / total.max(1) as f64,
                mean_staleness: st.mean_staleness(),
                p50: hist.as_ref().map(|h| h.quantile(0.5)),
                p90: hist.as_ref().map(|h| h.quantile(0.9)),
                p99: hist.as_ref().map(|h| h.quantile(0.99)),
                max: st.staleness_max,
            }
        })
        .collect()
}

impl PointSummary {
    /// The point's engine setting in one label: the delay model on the
    /// injected engine, `M=…, compute …, consistency` on a cluster engine.
    pub fn setting(&self) -> String {
        match (&self.delay, self.workers) {
            (Some(d), _) => d.clone(),
            (None, Some(w)) => format!(
                "M={w} {}{} {}",
                self.compute_time.as_deref().unwrap_or(""),
                self.worker_compute
                    .as_deref()
                    .map_or(String::new(), |x| format!(" × {x}")),
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
    /// Every recorded push of every run, in run order (`--record-pushes`).
    pub pushes: Vec<(u64, Vec<psim_common::pushes::PushRecord>)>,
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
    /// Run every point on the scalar engine, even where the batched path of
    /// the injected engine applies (the reference; results then differ in
    /// their random numbers, not in their law).
    pub scalar: bool,
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
    experiment.validate()?;
    let points = experiment.points();
    let objectives: Vec<AnyObjective> = points
        .iter()
        .map(|p| AnyObjective::build(&p.objective))
        .collect::<Result<_, _>>()?;
    let runs = experiment.base.runs as u64;
    // A job is a group of runs of one point: a batch of lanes where the
    // batched path applies, one run elsewhere. Grid order throughout.
    let jobs: Vec<(usize, std::ops::Range<u64>, bool)> = points
        .iter()
        .enumerate()
        .flat_map(|(p, cfg)| {
            let batch = !opts.scalar && batched::unsupported(cfg).is_none();
            let width = if batch { batched::L as u64 } else { 1 };
            (0..runs)
                .step_by(width as usize)
                .map(move |r| (p, r..(r + width).min(runs), batch))
        })
        .collect();
    let span = tracing::info_span!("sweep", name = %experiment.name, points = points.len(), runs);
    let _guard = span.enter();
    let started = Instant::now();
    let work = || -> Result<Vec<Vec<RunResult>>, EngineError> {
        jobs.par_iter()
            .map(|(p, r, batch)| {
                let results = if *batch {
                    engine::run_runs(&points[*p], &objectives[*p], r.clone())
                } else {
                    engine::run(&points[*p], &objectives[*p], r.start).map(|x| vec![x])
                };
                if let Some(progress) = opts.progress {
                    (r.start..r.end).for_each(|_| progress());
                }
                results
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
    let wall_seconds = started.elapsed().as_secs_f64();
    let mut it = results.into_iter().flatten();
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
pub fn aggregate(index: usize, config: RunConfig, mut runs: Vec<RunResult>) -> PointResult {
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
        worker_compute: config
            .cluster()
            .and_then(|c| c.worker_compute.as_ref().map(|w| w.to_string())),
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
        per_worker: per_worker(&runs),
    };
    let pushes = runs
        .iter_mut()
        .filter_map(|r| r.pushes.take().map(|p| (r.run, p)))
        .collect();
    PointResult {
        config,
        summary,
        rows,
        trace,
        staleness,
        pushes,
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
