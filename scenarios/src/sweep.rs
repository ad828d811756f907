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
use serde::{Deserialize, Deserializer, Serialize};
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
    /// A finished point could not be written.
    #[error(transparent)]
    Output(#[from] crate::output::OutputError),
    /// A durable sweep's directory is not what it should be.
    #[error("{0}")]
    Durable(String),
    /// The sweep was stopped through [`SweepOptions::cancel`] (Ctrl-C from Python).
    #[error("interrupted: the sweep was cancelled before it finished")]
    Cancelled,
    /// The thread pool could not be built.
    #[error("cannot start {threads} worker threads: {message}")]
    Threads { threads: usize, message: String },
}

/// JSON writes a NaN (an error over no run) as `null`; this reads it back.
fn nan_null<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
    Ok(Option::<f64>::deserialize(d)?.unwrap_or(f64::NAN))
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
    /// The scenario's measured columns ([`crate::executor::Plan::columns`]).
    #[serde(skip)]
    pub extras: Vec<f64>,
    /// The run's final parameters, when its point keeps them.
    #[serde(skip)]
    pub params: Vec<f64>,
}

/// Error statistics over the non-diverged runs of a point (NaN when all diverged).
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct ErrorStats {
    /// Mean of the runs' tail errors.
    #[serde(deserialize_with = "nan_null")]
    pub mean: f64,
    /// Sample standard deviation across runs.
    #[serde(deserialize_with = "nan_null")]
    pub std: f64,
    /// Standard error of the mean.
    #[serde(deserialize_with = "nan_null")]
    pub sem: f64,
    /// 10th percentile across runs.
    #[serde(deserialize_with = "nan_null")]
    pub p10: f64,
    /// Median across runs.
    #[serde(deserialize_with = "nan_null")]
    pub p50: f64,
    /// 90th percentile across runs.
    #[serde(deserialize_with = "nan_null")]
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
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TraceRow {
    /// Step.
    pub step: u64,
    /// Runs contributing.
    pub runs: usize,
    /// Mean error.
    #[serde(deserialize_with = "nan_null")]
    pub mean: f64,
    /// 10th percentile.
    #[serde(deserialize_with = "nan_null")]
    pub p10: f64,
    /// 90th percentile.
    #[serde(deserialize_with = "nan_null")]
    pub p90: f64,
}

/// Aggregate of one grid point.
#[derive(Debug, Clone, Serialize, Deserialize)]
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
    #[serde(deserialize_with = "nan_null")]
    pub mean_final_error: f64,
    /// Staleness of every applied gradient of every run.
    pub staleness: StalenessSummary,
    /// Server counters summed over runs.
    pub counters: ServerCounters,
    /// Injected sleeps cut to 1 s, summed over runs (threads and tasks engines).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub capped_sleeps: Option<u64>,
    /// Mean wall-clock seconds per run.
    #[serde(deserialize_with = "nan_null")]
    pub mean_wall_seconds: f64,
    /// Mean simulated time per run (virtual-time engine).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mean_virtual_time: Option<f64>,
    /// Who contributed what (cluster engines): one entry per worker.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub per_worker: Vec<WorkerSummary>,
}

/// One worker's contribution at a point, over its runs.
#[derive(Debug, Clone, Serialize, Deserialize)]
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
    /// Merged staleness histogram, as its (value, count) pairs.
    pub staleness: psim_common::result::StalenessCounts,
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
    /// When raised, runs under way stop within a few thousand steps, runs
    /// not yet started are skipped, finished points are kept, and the
    /// executor returns [`SweepError::Cancelled`].
    pub cancel: Option<&'a std::sync::Arc<std::sync::atomic::AtomicBool>>,
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

/// Runs every point × run of `experiment` through the executor, keeping
/// every point in memory (tests, benchmarks, analyses of a few points).
pub fn run_sweep(
    experiment: &Experiment,
    opts: &SweepOptions<'_>,
) -> Result<SweepResult, SweepError> {
    experiment.validate()?;
    let plan = crate::executor::Plan::sweep(experiment);
    run_plan(experiment, &plan, None, opts)
}

/// Runs `plan` (of `experiment`) through the executor into memory and
/// returns its points in plan order, with their rows.
pub fn run_plan(
    experiment: &Experiment,
    plan: &crate::executor::Plan,
    measure: Option<crate::executor::Measure<'_>>,
    opts: &SweepOptions<'_>,
) -> Result<SweepResult, SweepError> {
    use crate::executor::PointStore as _;
    let mut store = crate::executor::MemoryStore::default();
    let all: Vec<usize> = (0..plan.points.len()).collect();
    let (wall_seconds, threads) = crate::executor::execute(
        plan,
        &all,
        &crate::executor::BuiltIn,
        measure,
        &mut store,
        opts,
    )?;
    let points = all
        .iter()
        .map(|&p| store.load(plan, p, true))
        .collect::<Result<_, _>>()?;
    Ok(SweepResult {
        experiment: experiment.clone(),
        points,
        wall_seconds,
        threads,
    })
}

/// The memory a durable sweep of `e` needs at its peak, in bytes: one
/// point's running aggregate (per run: its `runs.csv` row and scalars,
/// ≈ 256 B, plus 16 B per recorded trace point, `steps / record_every + 2`)
/// and a window of [`crate::executor::WINDOW`] jobs of 8 runs in flight
/// (per run ≈ 8 KiB of staleness histogram plus 16 B per trace point), over
/// a 64 MiB base. It grows with the runs of one point, not with the number
/// of points.
pub fn memory_bytes(e: &Experiment) -> u64 {
    let trace = e.base.steps / e.base.record_every.max(1) + 2;
    let runs = e.base.runs as u64;
    let in_flight = runs.min(crate::executor::WINDOW as u64 * 8);
    (64 << 20) + runs * (256 + 16 * trace) + in_flight * ((8 << 10) + 16 * trace)
}

/// Summarises the runs of one point.
pub fn aggregate(index: usize, config: RunConfig, mut runs: Vec<RunResult>) -> PointResult {
    let mut acc = PointAcc::new(index, config, runs.len());
    for r in &mut runs {
        acc.add(r, Vec::new(), Vec::new());
    }
    acc.finish()
}

/// The running aggregate of one point: what [`aggregate`] needs of each
/// run, folded in run order as the runs finish.
pub(crate) struct PointAcc {
    index: usize,
    config: RunConfig,
    pub(crate) n: usize,
    tails: Vec<f64>,
    finals: Vec<f64>,
    walls: Vec<f64>,
    virtuals: Vec<Option<f64>>,
    capped: u64,
    staleness: StalenessHistogram,
    counters: ServerCounters,
    by_step: std::collections::BTreeMap<u64, Vec<f64>>,
    rows: Vec<RunRow>,
    workers: WorkerAcc,
    pushes: Vec<(u64, Vec<psim_common::pushes::PushRecord>)>,
}

/// Per-worker totals of a point's runs (cluster engines), folded run by run.
///
/// A worker's mean compute time is the mean over the runs of its per-run
/// mean; it is known (`Some`) only if every run so far reported it for that
/// worker: a worker absent from an earlier run, or a run without a compute
/// time for it, makes it `None` (never a sum over fewer runs).
#[derive(Default)]
struct WorkerAcc {
    /// Runs folded so far.
    runs: usize,
    stats: Vec<psim_common::WorkerStats>,
    compute: Vec<Option<f64>>,
    hists: Vec<Option<StalenessHistogram>>,
}

impl WorkerAcc {
    fn add(&mut self, r: &RunResult) {
        let n = r.workers.len();
        if self.stats.len() < n {
            self.stats.resize(n, Default::default());
            // New slots: known (sum 0) only if no earlier run could have
            // left them out, i.e. this is the first run.
            let fresh = if self.runs == 0 { Some(0.0) } else { None };
            self.compute.resize(n, fresh);
            self.hists.resize(n, None);
        }
        for (w, x) in r.workers.iter().enumerate() {
            let st = &mut self.stats[w];
            st.applied += x.applied;
            st.staleness_sum = st.staleness_sum.saturating_add(x.staleness_sum);
            st.staleness_max = st.staleness_max.max(x.staleness_max);
            self.compute[w] = self.compute[w].zip(x.mean_compute).map(|(a, b)| a + b);
            if let Some(h) = r.histograms.get(&format!("staleness.worker{w}")) {
                self.hists[w]
                    .get_or_insert_with(StalenessHistogram::new)
                    .merge(h);
            }
        }
        for c in self.compute.iter_mut().skip(n) {
            *c = None;
        }
        self.runs += 1;
    }

    fn finish(self, runs: usize) -> Vec<WorkerSummary> {
        let n = runs.max(1) as f64;
        let total: u64 = self.stats.iter().map(|s| s.applied).sum();
        self.stats
            .iter()
            .zip(self.compute)
            .zip(self.hists)
            .enumerate()
            .map(|(w, ((st, compute), hist))| WorkerSummary {
                worker: w,
                mean_compute: compute.map(|c| c / n),
                applied_per_run: st.applied as f64 / n,
                share: st.applied as f64 / total.max(1) as f64,
                mean_staleness: st.mean_staleness(),
                p50: hist.as_ref().map(|h| h.quantile(0.5)),
                p90: hist.as_ref().map(|h| h.quantile(0.9)),
                p99: hist.as_ref().map(|h| h.quantile(0.99)),
                max: st.staleness_max,
            })
            .collect()
    }
}

impl PointAcc {
    pub(crate) fn new(index: usize, config: RunConfig, runs: usize) -> Self {
        Self {
            index,
            config,
            n: 0,
            tails: Vec::with_capacity(runs),
            finals: Vec::with_capacity(runs),
            walls: Vec::with_capacity(runs),
            virtuals: Vec::with_capacity(runs),
            capped: 0,
            staleness: StalenessHistogram::new(),
            counters: ServerCounters::default(),
            by_step: Default::default(),
            rows: Vec::with_capacity(runs),
            workers: WorkerAcc::default(),
            pushes: Vec::new(),
        }
    }

    pub(crate) fn add(&mut self, r: &mut RunResult, extras: Vec<f64>, params: Vec<f64>) {
        self.n += 1;
        self.workers.add(r);
        if let Some(p) = r.pushes.take() {
            self.pushes.push((r.run, p));
        }
        if !r.outcome.diverged() {
            self.tails.push(r.tail_error);
            self.finals.push(r.final_error);
        }
        self.walls.push(r.wall_seconds);
        self.virtuals.push(r.virtual_seconds);
        self.capped += r.capped_sleeps;
        self.staleness.merge(&r.staleness);
        self.counters.add(&r.counters);
        for t in r.trace.iter().filter(|t| t.error.is_finite()) {
            self.by_step.entry(t.step).or_default().push(t.error);
        }
        self.rows.push(RunRow {
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
            extras,
            params,
        });
    }

    pub(crate) fn finish(self) -> PointResult {
        let Self {
            index,
            config,
            n,
            tails,
            finals,
            walls,
            virtuals,
            capped,
            staleness,
            counters,
            by_step,
            rows,
            workers,
            pushes,
        } = self;
        let mean_final_error = if finals.is_empty() {
            f64::NAN
        } else {
            finals.iter().sum::<f64>() / finals.len() as f64
        };
        let trace = by_step
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
            .collect();
        let summary = PointSummary {
            index,
            momentum: config.momentum,
            step_size: config.step_size,
            delay: config.injected().map(|i| i.delay.to_string()),
            mean_delay: config.injected().and_then(|i| i.delay.mean_steps()),
            workers: config.cluster().map(|c| c.workers),
            compute_time: config.cluster().map(|c| c.compute_time.to_string()),
            consistency: config.cluster().map(|c| c.consistency.to_string()),
            worker_compute: config
                .cluster()
                .and_then(|c| c.worker_compute.as_ref().map(|w| w.to_string())),
            runs: n,
            diverged: n - tails.len(),
            error: ErrorStats::of(&tails),
            mean_final_error,
            staleness: staleness.summary(),
            counters,
            capped_sleeps: config.engine.is_wall_clock().then_some(capped),
            mean_wall_seconds: walls.iter().sum::<f64>() / n.max(1) as f64,
            mean_virtual_time: virtuals
                .iter()
                .copied()
                .sum::<Option<f64>>()
                .map(|t| t / n.max(1) as f64),
            per_worker: workers.finish(n),
        };
        PointResult {
            config,
            summary,
            rows,
            trace,
            staleness: (&staleness).into(),
            pushes,
        }
    }
}
