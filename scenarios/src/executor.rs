//! The one executor: every way of running an experiment (the CLI's `run`,
//! `sweep` and `reproduce`, every named scenario, the Python package) comes
//! here with a [`Plan`] (which points to run, and what to keep of each run),
//! an objective source, a store for finished points, and options (threads,
//! progress, cancellation). The executor alone
//!
//! - schedules the runs on a thread pool, in windows of [`WINDOW`] jobs
//!   (memory bounded in the number of runs), batched 8 to a job where the
//!   batched injected engine applies and the plan allows it;
//! - verifies every run (`psim_engine::verify`, batched runs included);
//! - folds runs into their point in run order as they finish and hands a
//!   point to the store the moment its last run is folded (so a point that
//!   finishes early is on disk early, whatever its window is doing);
//! - stops within one poll of the engines' cancel flag when cancelled,
//!   keeping every point already stored;
//! - runs dependent points (a point whose runs start where another point's
//!   runs ended) after the point they depend on.
//!
//! Like argmin's `Executor`: engines supply how a step happens, scenarios
//! supply the points and the analysis, nothing else.
//!
//! Determinism: a run depends only on (seed, point configuration, run
//! index, start), never on which thread ran it or in which window, and runs
//! are folded in run order, so the results are bit-identical whatever the
//! thread count, the shard or the number of interruptions.

use crate::catalogue::{Scenario, ScenarioError};
use crate::durable::{self, DiskStore, Progress, Shard};
use crate::output::OutputDir;
use crate::sweep::{PointAcc, PointResult, SweepError, SweepOptions, SweepResult};
use psim_common::{AnyObjective, ConfigError, Experiment, Objective, RunConfig, RunResult};
use psim_engine::{self as engine, batched, EngineError};
use rayon::prelude::*;
use std::collections::{BTreeMap, BTreeSet};
use std::time::Instant;

/// Jobs run between two hand-overs: bounds the [`RunResult`]s waiting to be
/// folded (trace and staleness histogram, ≈ 20 KB a run) to `WINDOW × 8`.
pub const WINDOW: usize = 256;

pub use crate::plan::{Plan, PlannedPoint, Points};

/// 64-bit FNV-1a: a stable (across builds and platforms) hash for
/// fingerprints and checksums; not cryptographic, it detects accidents and
/// edits, not adversaries with a hash-collision budget.
pub fn fnv1a(bytes: &[u8]) -> u64 {
    let mut h = Fnv1a::default();
    h.update(bytes);
    h.0
}

/// [`fnv1a`] over bytes written to it in pieces: a checksum of what a
/// serializer writes, without holding the whole text (a point of 10⁶
/// workers is ≈ 150 MB of JSON).
#[derive(Debug, Clone, Copy)]
pub struct Fnv1a(pub u64);

impl Default for Fnv1a {
    fn default() -> Self {
        Self(0xcbf2_9ce4_8422_2325)
    }
}

impl Fnv1a {
    /// Folds `bytes` in.
    #[inline]
    pub fn update(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 ^= b as u64;
            self.0 = self.0.wrapping_mul(0x0100_0000_01b3);
        }
    }
}

impl std::io::Write for Fnv1a {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.update(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Where a plan's objectives come from: the configuration's built-in
/// objective ([`BuiltIn`]) or a user's (the Python package's adapter).
pub trait ObjectiveSource: Sync {
    /// The objective type the engines run.
    type Objective: Objective + Clone + 'static;
    /// The objective of a point.
    fn build(&self, cfg: &RunConfig) -> Result<Self::Objective, ConfigError>;
    /// Whether the batched engine may run these points: only for the
    /// built-in objectives it implements itself.
    fn batchable(&self) -> bool;
    /// The `config.toml` text to record for `e` when the source records
    /// its objective itself (a user's objective, by its reference), so a
    /// replay or a resume runs the same objective; `None`: `e` as it is.
    fn recorded_config(&self, _e: &Experiment) -> Option<Result<String, String>> {
        None
    }
    /// Told, on the thread that will run them, that runs `runs` of point
    /// `point` start (one job: one run, or a batch of up to 8); the Python
    /// package names the run its callback sees with it. The default does
    /// nothing.
    fn runs_starting(&self, _point: usize, _runs: std::ops::Range<u64>) {}
    /// Sees run `run` of point `point` once it finished (not cut short by
    /// a cancel), on the thread that ran it, before it is folded: the Python
    /// package keeps per-run traces with it. The default does nothing.
    fn run_finished(&self, _point: usize, _run: u64, _result: &RunResult) {}
}

/// The objective each configuration names.
pub struct BuiltIn;

impl ObjectiveSource for BuiltIn {
    type Objective = AnyObjective;
    fn build(&self, cfg: &RunConfig) -> Result<AnyObjective, ConfigError> {
        AnyObjective::build(&cfg.objective)
    }
    fn batchable(&self) -> bool {
        true
    }
}

/// A scenario's per-run measurement: the values of [`Plan::columns`] for a
/// finished run of point `p` (NaN for "none").
pub type Measure<'a> = &'a (dyn Fn(usize, &RunConfig, &RunResult) -> Vec<f64> + Sync);

/// Where finished points go, and come back from.
pub trait PointStore {
    /// The points already finished.
    fn done(&self) -> BTreeSet<usize>;
    /// Stores finished point `p.summary.index`.
    fn put(&mut self, plan: &Plan, p: PointResult) -> Result<(), SweepError>;
    /// Reads finished point `index` back, with its rows when `rows`.
    fn load(&self, plan: &Plan, index: usize, rows: bool) -> Result<PointResult, SweepError>;
}

/// Points kept in memory (tests, benchmarks, library callers that want no
/// directory).
#[derive(Default)]
pub struct MemoryStore {
    points: BTreeMap<usize, PointResult>,
}

impl PointStore for MemoryStore {
    fn done(&self) -> BTreeSet<usize> {
        self.points.keys().copied().collect()
    }
    fn put(&mut self, _plan: &Plan, p: PointResult) -> Result<(), SweepError> {
        self.points.insert(p.summary.index, p);
        Ok(())
    }
    fn load(&self, _plan: &Plan, index: usize, _rows: bool) -> Result<PointResult, SweepError> {
        self.points
            .get(&index)
            .cloned()
            .ok_or_else(|| SweepError::Durable(format!("point {index} is not finished")))
    }
}

/// One job: runs `runs` of point `point`, batched or one by one.
struct Job {
    point: usize,
    runs: std::ops::Range<u64>,
    batch: bool,
}

/// What a job sends back: its runs with their measured columns and final
/// parameters, or that it was cancelled.
type JobResult = Result<Option<Vec<(RunResult, Vec<f64>, Vec<f64>)>>, EngineError>;

/// Runs the points `todo` of `plan` that `store` does not hold yet, storing
/// each as soon as its last run is folded; returns the wall-clock seconds
/// and the threads used. Dependent points run after the point they start
/// from (stage by stage).
pub fn execute<S: ObjectiveSource>(
    plan: &Plan,
    todo: &[usize],
    source: &S,
    measure: Option<Measure<'_>>,
    store: &mut dyn PointStore,
    opts: &SweepOptions<'_>,
) -> Result<(f64, usize), SweepError> {
    plan.validate()?;
    let started = Instant::now();
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(opts.threads)
        .build()
        .map_err(|e| SweepError::Threads {
            threads: opts.threads,
            message: e.to_string(),
        })?;
    let threads = pool.current_num_threads();
    let mut left: Vec<usize> = {
        let done = store.done();
        todo.iter().copied().filter(|p| !done.contains(p)).collect()
    };
    let span = tracing::info_span!("execute", points = left.len());
    let _guard = span.enter();
    while !left.is_empty() {
        // A stage: every point whose start is available.
        let done = store.done();
        let (ready, wait): (Vec<usize>, Vec<usize>) = left.iter().partition(|&&p| {
            plan.points
                .start_from(p)
                .is_none_or(|from| done.contains(&from))
        });
        if ready.is_empty() {
            let p = wait[0];
            return Err(SweepError::Durable(format!(
                "point {p} starts from point {}, which is neither finished nor part of this run (another shard's?)",
                plan.points.start_from(p).unwrap_or(p)
            )));
        }
        run_stage(plan, &ready, source, measure, store, opts, &pool)?;
        left = wait;
    }
    let wall_seconds = started.elapsed().as_secs_f64();
    tracing::info!(wall_seconds, threads, "executed");
    Ok((wall_seconds, threads))
}

fn cancelled(opts: &SweepOptions<'_>) -> bool {
    opts.cancel
        .is_some_and(|c| c.load(std::sync::atomic::Ordering::Relaxed))
}

#[allow(clippy::too_many_arguments)]
fn run_stage<S: ObjectiveSource>(
    plan: &Plan,
    ready: &[usize],
    source: &S,
    measure: Option<Measure<'_>>,
    store: &mut dyn PointStore,
    opts: &SweepOptions<'_>,
    pool: &rayon::ThreadPool,
) -> Result<(), SweepError> {
    // Start points of dependent points, from the stored points they follow.
    let mut starts: BTreeMap<usize, Vec<Vec<f64>>> = BTreeMap::new();
    for &p in ready {
        if let Some(from) = plan.points.start_from(p) {
            let prev = store.load(plan, from, true)?;
            starts.insert(p, prev.rows.into_iter().map(|r| r.params).collect());
        }
    }
    // Jobs and objectives are made a window at a time: memory in the
    // window, not in the number of points.
    let mut jobs = ready.iter().flat_map(|&p| {
        let point = plan.points.get(p);
        let cfg = &point.config;
        let runs = cfg.runs as u64;
        let batch = plan.batch
            && source.batchable()
            && point.start_from.is_none()
            && (!point.keep_params || cfg.record_params)
            && batched::unsupported(cfg).is_none();
        let width = if batch { batched::L as u64 } else { 1 };
        (0..runs).step_by(width as usize).map(move |r| Job {
            point: p,
            runs: r..(r + width).min(runs),
            batch,
        })
    });
    let window = WINDOW.max(pool.current_num_threads() * 4);
    let mut acc: Option<PointAcc> = None;
    let mut objectives: BTreeMap<usize, S::Objective> = BTreeMap::new();
    let run_job = |job: &Job, objectives: &BTreeMap<usize, S::Objective>| -> JobResult {
        if cancelled(opts) {
            return Ok(None);
        }
        let point = plan.points.get(job.point);
        let cfg = &point.config;
        let objective = &objectives[&job.point];
        source.runs_starting(job.point, job.runs.clone());
        let results: Vec<(RunResult, Vec<f64>)> =
            engine::cancel::with_cancel(opts.cancel, || -> Result<_, EngineError> {
                if job.batch {
                    Ok(engine::run_runs(cfg, objective, job.runs.clone())?
                        .into_iter()
                        .map(|mut r| {
                            let params = r.final_params.take().unwrap_or_default();
                            (r, params)
                        })
                        .collect())
                } else if point.start_from.is_some() || (point.keep_params && !cfg.record_params) {
                    let start = starts
                        .get(&job.point)
                        .map(|s| s[job.runs.start as usize].as_slice());
                    engine::check(cfg, objective.dim())?;
                    let (r, params) =
                        engine::run_injected_from(cfg, objective, job.runs.start, start);
                    let params = if point.keep_params {
                        params
                    } else {
                        Vec::new()
                    };
                    Ok(vec![(engine::verify(r)?, params)])
                } else {
                    let mut r = engine::run(cfg, objective, job.runs.start)?;
                    let params = match (point.keep_params, r.final_params.take()) {
                        (true, Some(p)) => p,
                        // Kept by the plan, not recorded by the configuration.
                        (true, None) => {
                            return Err(EngineError::Invariant(
                                "a point keeps its parameters but its runs do not record them"
                                    .into(),
                            ))
                        }
                        (false, _) => Vec::new(),
                    };
                    Ok(vec![(r, params)])
                }
            })?;
        // A run under way when the flag was raised stopped early: discard
        // the job (the flag is never lowered, so a cut run always sees it).
        if cancelled(opts) {
            return Ok(None);
        }
        for (run, (r, _)) in (job.runs.start..).zip(&results) {
            source.run_finished(job.point, run, r);
        }
        if let Some(progress) = opts.progress {
            (job.runs.start..job.runs.end).for_each(|_| progress());
        }
        Ok(Some(
            results
                .into_iter()
                .map(|(r, params)| {
                    let extras = measure.map_or_else(Vec::new, |m| m(job.point, cfg, &r));
                    (r, extras, params)
                })
                .collect(),
        ))
    };
    loop {
        let chunk: Vec<Job> = jobs.by_ref().take(window).collect();
        if chunk.is_empty() {
            break;
        }
        if cancelled(opts) {
            return Err(SweepError::Cancelled);
        }
        // The objectives of this window's points (a point that spans two
        // windows keeps its objective).
        let needed: BTreeSet<usize> = chunk.iter().map(|j| j.point).collect();
        objectives.retain(|p, _| needed.contains(p));
        for &p in &needed {
            if let std::collections::btree_map::Entry::Vacant(slot) = objectives.entry(p) {
                slot.insert(source.build(&plan.points.get(p).config)?);
            }
        }
        let objectives = &objectives;
        let (tx, rx) = std::sync::mpsc::channel::<(usize, JobResult)>();
        let mut stop: Option<SweepError> = None;
        std::thread::scope(|scope| -> Result<(), SweepError> {
            scope.spawn(|| {
                pool.install(|| {
                    chunk
                        .par_iter()
                        .enumerate()
                        .for_each_with(tx, |tx, (i, job)| {
                            let _ = tx.send((i, run_job(job, objectives)));
                        })
                })
            });
            // Fold in job order as results arrive; a point goes to the
            // store the moment its last run is folded.
            let mut pending: BTreeMap<usize, JobResult> = BTreeMap::new();
            let mut next = 0;
            for (i, result) in rx.iter() {
                pending.insert(i, result);
                while let Some(result) = pending.remove(&next) {
                    if stop.is_some() {
                        next += 1;
                        continue;
                    }
                    match result {
                        Err(e) => stop = Some(e.into()),
                        Ok(None) => stop = Some(SweepError::Cancelled),
                        Ok(Some(runs)) => {
                            let job = &chunk[next];
                            let point = plan.points.get(job.point);
                            let cfg = &point.config;
                            for (mut run, extras, params) in runs {
                                let a = acc.get_or_insert_with(|| {
                                    PointAcc::new(job.point, cfg.clone(), cfg.runs as usize)
                                });
                                a.add(&mut run, extras, params);
                                if a.n == cfg.runs as usize {
                                    let done = acc.take().expect("just filled");
                                    if let Err(e) = store.put(plan, done.finish()) {
                                        stop = Some(e);
                                    }
                                }
                            }
                        }
                    }
                    next += 1;
                }
            }
            Ok(())
        })?;
        if let Some(e) = stop {
            return Err(e);
        }
    }
    Ok(())
}

/// Runs `e` as `study` into the output directory `out`: the points of
/// `shard` that `out` does not hold yet, each written the moment it
/// finishes; then, when every point of the plan is on disk, reads them back
/// and runs the analysis (which writes the outputs and `report.txt`).
/// The one path of every face: a fresh run, `--resume`, a shard and a
/// retried shard differ only in what `out` already holds.
pub fn run_in_dir<S: ObjectiveSource>(
    study: &dyn Scenario,
    e: &Experiment,
    source: &S,
    out: &OutputDir,
    shard: Shard,
    opts: &SweepOptions<'_>,
) -> Result<Progress, ScenarioError> {
    let plan = study.plan(e)?;
    durable::remove_temporaries(out.path());
    let total = plan.points.len();
    let done = durable::done_points(out.path());
    if let Some(p) = done.iter().find(|&&p| p >= total) {
        return Err(SweepError::Durable(format!(
            "`{}` holds point {p}, but the experiment has {total} points",
            out.path().display()
        ))
        .into());
    }
    // Push logs (`--record-pushes`) are kept from this attempt's points,
    // not in the point files: a resume would lose the finished ones'.
    let records = plan
        .points
        .iter()
        .any(|p| p.config.cluster().is_some_and(|c| c.record_pushes));
    if records && !done.is_empty() {
        return Err(SweepError::Durable(format!(
            "`{}` was run with --record-pushes (engine.cluster.record_pushes); its finished points' push logs are not kept on disk, so it cannot be resumed: rerun it whole",
            out.path().display()
        ))
        .into());
    }
    // Every finished point must still belong to this plan (fingerprint,
    // rows checksum): checked before any new run, so nothing is mixed.
    for &p in &done {
        durable::load_point(out.path(), &e.name, &plan, p, false)?;
    }
    let todo = plan.share(shard);
    let measure = |p: usize, cfg: &RunConfig, r: &RunResult| study.measure(e, p, cfg, r);
    let mut store = DiskStore::new(out, &e.name);
    let ran = execute(&plan, &todo, source, Some(&measure), &mut store, opts);
    // The points written since the last group commit, cancelled or not.
    store.sync()?;
    let (wall_seconds, threads) = ran?;
    let logs = store.take_logs();
    finish(study, e, &plan, out, (wall_seconds, threads), logs)
}

/// Reads every point of `plan` from `out` when all are there and runs the
/// analysis of `study`; otherwise says how many are missing.
pub fn finish(
    study: &dyn Scenario,
    e: &Experiment,
    plan: &Plan,
    out: &OutputDir,
    (wall_seconds, threads): (f64, usize),
    mut logs: BTreeMap<usize, Vec<(u64, Vec<psim_common::pushes::PushRecord>)>>,
) -> Result<Progress, ScenarioError> {
    let total = plan.points.len();
    let done = durable::done_points(out.path());
    if (0..total).any(|p| !done.contains(&p)) {
        return Ok(Progress::Partial {
            done: done.len(),
            total,
            wall_seconds,
            threads,
        });
    }
    if logs.is_empty() {
        let mut points =
            (0..total).map(|p| durable::load_point(out.path(), &e.name, plan, p, plan.rows));
        if let Some(report) = study.analyse_streamed(e, &mut points, (wall_seconds, threads), out) {
            // No number in hundreds of digits (a float printed with `{}`).
            let report = psim_common::num::shorten(&report?);
            out.write("report.txt", &report)?;
            return Ok(Progress::Complete(report));
        }
    }
    let points = (0..total)
        .map(|p| {
            let mut point = durable::load_point(out.path(), &e.name, plan, p, plan.rows)?;
            if let Some(log) = logs.remove(&p) {
                point.pushes = log;
            }
            Ok(point)
        })
        .collect::<Result<_, SweepError>>()?;
    let sweep = SweepResult {
        experiment: e.clone(),
        points,
        wall_seconds,
        threads,
    };
    let report = psim_common::num::shorten(&study.analyse(e, &sweep, out)?);
    out.write("report.txt", &report)?;
    Ok(Progress::Complete(report))
}

#[cfg(test)]
mod fnv_tests {
    use super::*;
    use std::io::Write as _;

    /// The published FNV-1a 64 vectors, and any split of the bytes into
    /// writes gives the whole text's hash (what `content_checksum` relies
    /// on to hash a serializer's output as it is written).
    #[test]
    fn fnv1a_matches_the_reference_vectors_and_ignores_how_bytes_are_split() {
        assert_eq!(fnv1a(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(fnv1a(b"foobar"), 0x8594_4171_f739_67e8);
        let text: Vec<u8> = (0..1000u32)
            .flat_map(|i| (i * 7919).to_le_bytes())
            .collect();
        for piece in [1, 3, 64, 999] {
            let mut h = Fnv1a::default();
            for chunk in text.chunks(piece) {
                h.write_all(chunk).unwrap();
            }
            assert_eq!(h.0, fnv1a(&text), "pieces of {piece}");
        }
    }
}
