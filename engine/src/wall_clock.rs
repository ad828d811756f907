//! What the threads and tasks engines share: the monitor that records the
//! error trace and decides when a run ends, the per-worker setup, and the
//! assembly of a [`RunResult`] from the server and the workers' reports.

use crate::record::RunRecorder;
use crate::EngineError;
use psim_common::pushes::MAX_RECORDED_PUSHES;
use psim_common::seed::Stream;
use psim_common::{
    ClusterConfig, ConfigError, FailurePolicy, Objective, Outcome, RunConfig, RunResult, SeedTree,
    StalenessHistogram, WorkerStats,
};
use psim_server::backend::{Monitor, ServerCore, StopReason};
use psim_server::{Rule, ServerState};
use psim_worker::runner::{WorkerPlan, WorkerReport, WorkerSetup, MAX_SLEEP};
use psim_worker::Worker;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

/// Per-worker staleness histograms are kept in the result up to this many
/// workers (each costs a few KiB; thousands of tasks share the merged one).
pub const PER_WORKER_HISTOGRAMS: usize = 256;

/// Records the error every `record_every` versions with the wall-clock
/// time, and ends the run at the step limit, the target error or divergence
/// (the shared [`RunRecorder`]), raising the workers' stop flag.
#[derive(Debug)]
pub struct RunMonitor<O: ?Sized> {
    rec: RunRecorder<Arc<O>>,
    started: Instant,
    stop: Arc<AtomicBool>,
    /// The objective's stop ([`Outcome::Stopped`]), which the server sees
    /// as [`StopReason::Requested`]; one asked at v_0 ends the run at the
    /// first update.
    stopped: Option<Outcome>,
}

impl<O: Objective + ?Sized> RunMonitor<O> {
    fn new(cfg: &RunConfig, objective: Arc<O>, initial: &[f64], stop: Arc<AtomicBool>) -> Self {
        let mut rec = RunRecorder::new(cfg, objective);
        // Records v_0 on the trace; a run of at least one step cannot stop
        // here, except by the objective's request (kept for the first update).
        let stopped = rec
            .before(0, initial, || Some(0.0))
            .filter(|o| matches!(o, Outcome::Stopped { .. }));
        Self {
            rec,
            started: Instant::now(),
            stop,
            stopped,
        }
    }

    fn check(&mut self, version: u64, params: &[f64]) -> Option<StopReason> {
        if let Some(o) = self.stopped {
            return Some(o.into());
        }
        let started = self.started;
        let outcome = self
            .rec
            .on_update(version, params, || Some(started.elapsed().as_secs_f64()))?;
        if matches!(outcome, Outcome::Stopped { .. }) {
            self.stopped = Some(outcome);
        }
        Some(outcome.into())
    }
}

impl<O: Objective + ?Sized> Monitor for RunMonitor<O> {
    fn on_update(&mut self, version: u64, params: &[f64]) -> Option<StopReason> {
        let reason = self.check(version, params);
        if reason.is_some() {
            self.stop.store(true, Ordering::Relaxed);
        }
        reason
    }
}

/// Everything a cluster engine needs before it starts its workers.
pub struct Prepared<O: Objective + ?Sized> {
    /// The server core, at v_0.
    pub core: ServerCore<Rule, RunMonitor<O>>,
    /// One setup per worker.
    pub setups: Vec<WorkerSetup>,
    /// Delays and the stop flag.
    pub plan: WorkerPlan,
    /// When the run started.
    pub started: Instant,
}

/// Builds the server and the workers of run `run` of `cfg`, with the same
/// seeding as the injected engine (worker 0's data stream is its stream).
pub fn prepare<O: Objective + ?Sized>(
    cfg: &RunConfig,
    objective: &Arc<O>,
    run: u64,
) -> Prepared<O> {
    let started = Instant::now();
    let seeds = SeedTree::new(cfg.seed);
    let dim = objective.dim();
    let mut initial = vec![0.0; dim];
    objective.initial_point(&mut seeds.rng(run, 0, Stream::Init), &mut initial);
    // The configured update rule, as in every engine.
    let rule = Rule::from_config(cfg);
    let stop = Arc::new(AtomicBool::new(false));
    let monitor = RunMonitor::new(cfg, objective.clone(), &initial, stop.clone());
    let cluster = cfg
        .cluster()
        .expect("the threads and tasks engines run cluster configurations");
    let workers = cluster.workers;
    let core = ServerCore::new(
        ServerState::without_history(&initial, rule),
        monitor,
        cluster.consistency,
        workers,
    );
    let own_models = matches!(
        cluster.worker_compute,
        Some(psim_common::WorkerCompute::Models(_))
    );
    let mut clocks = cluster
        .worker_clocks(cfg.seed, run)
        .map(|c| c.into_iter().map(Some).collect::<Vec<_>>());
    let setups = cluster
        .worker_times(cfg.seed, run)
        .into_iter()
        .enumerate()
        .map(|(w, (model, factor))| WorkerSetup {
            worker: Worker::new(w as u64, seeds.rng(run, w as u64, Stream::Data), dim),
            delay_rng: seeds.rng(run, w as u64, Stream::Delay),
            speed_factor: factor,
            compute_time: own_models.then_some(model),
            clock: clocks.as_mut().and_then(|c| c[w].take()),
        })
        .collect();
    let cancel = core.cancel_flags();
    let plan = WorkerPlan {
        cancel,
        compute_time: cluster.compute_time.clone(),
        network_delay: cluster.network_delay.clone(),
        max_sleep: MAX_SLEEP,
        stop,
        stagger: true,
        epoch: Instant::now(),
        record_pushes: if cluster.record_pushes {
            MAX_RECORDED_PUSHES.div_ceil(workers)
        } else {
            0
        },
    };
    Prepared {
        core,
        setups,
        plan,
        started,
    }
}

/// Turns the finished server and the workers' reports into the result,
/// checking that no push was lost.
pub fn finish<O: Objective + ?Sized>(
    cfg: &RunConfig,
    run: u64,
    core: ServerCore<Rule, RunMonitor<O>>,
    reports: Vec<WorkerReport>,
    started: Instant,
) -> Result<RunResult, EngineError> {
    let (state, monitor, reason) = core.into_parts();
    let counters = *state.counters();
    let final_params = cfg.record_params.then(|| state.params().to_vec());
    counters.check().map_err(EngineError::Invariant)?;
    let sent: u64 = reports.iter().map(|r| r.pushes).sum();
    if sent != counters.received {
        return Err(EngineError::Invariant(format!(
            "workers sent {sent} pushes but the server received {}",
            counters.received
        )));
    }
    let failures: Vec<(usize, String)> = reports
        .iter()
        .filter_map(|r| r.failure.clone().map(|m| (r.worker, m)))
        .collect();
    for (w, m) in &failures {
        tracing::warn!(worker = w, message = %m, "worker failed");
    }
    let first_failure = || {
        let (worker, message) = failures
            .first()
            .cloned()
            .unwrap_or((0, "unknown failure".into()));
        EngineError::WorkerFailed { worker, message }
    };
    let outcome = match reason {
        Some(StopReason::TargetErrorReached { step }) => Outcome::TargetErrorReached { step },
        Some(StopReason::Diverged { step }) => Outcome::Diverged { step },
        Some(StopReason::WorkerFailed { .. }) | Some(StopReason::NoWorkers) => {
            return Err(first_failure())
        }
        Some(StopReason::Requested) if monitor.stopped.is_some() => {
            monitor.stopped.unwrap_or(Outcome::StepsReached)
        }
        Some(StopReason::StepsReached) | Some(StopReason::Requested) | None => {
            Outcome::StepsReached
        }
    };
    if !failures.is_empty() && cfg.engine.on_worker_failure() == Some(FailurePolicy::Stop) {
        return Err(first_failure());
    }
    let wall_seconds = started.elapsed().as_secs_f64();
    let seconds = Some(monitor.started.elapsed().as_secs_f64());
    let (trace, final_error, tail_error) =
        monitor
            .rec
            .finish(outcome, state.version(), state.params(), seconds);
    let mut staleness = StalenessHistogram::new();
    let mut histograms = BTreeMap::new();
    let mut fetch = StalenessHistogram::new();
    let mut push_fetch = StalenessHistogram::new();
    let mut wait = StalenessHistogram::new();
    let mut capped = 0;
    let per_worker = reports.len() <= PER_WORKER_HISTOGRAMS;
    let cluster = cfg.cluster().expect("a cluster engine");
    let times = cluster.worker_times(cfg.seed, run);
    let mut workers = vec![WorkerStats::default(); reports.len()];
    let mut records = cluster.record_pushes.then(Vec::new);
    // A worker that hit its share of the cap cut the log: keep the
    // complete prefix (every push applied before its first unrecorded one).
    let mut complete_until = u64::MAX;
    for mut r in reports {
        if let Some(st) = workers.get_mut(r.worker) {
            for (v, c) in r.staleness.iter() {
                st.applied += c;
                st.staleness_sum = st.staleness_sum.saturating_add(v.saturating_mul(c));
            }
            st.staleness_max = r.staleness.max();
            st.mean_compute = times
                .get(r.worker)
                .and_then(|(m, f)| cluster.mean_compute(r.worker, m, *f));
        }
        if let Some(all) = records.as_mut() {
            if r.records_truncated {
                let next = r.records.last().map_or(0, |p| p.applied_version + 1);
                complete_until = complete_until.min(next);
            }
            all.append(&mut r.records);
        }
        staleness.merge(&r.staleness);
        fetch.merge(&r.fetch_ns);
        push_fetch.merge(&r.push_fetch_ns);
        wait.merge(&r.wait_ns);
        capped += r.capped_sleeps;
        if per_worker {
            histograms.insert(format!("staleness.worker{}", r.worker), r.staleness);
        }
    }
    if capped > 0 {
        tracing::warn!(capped, "injected sleeps capped at {:?}", MAX_SLEEP);
    }
    histograms.insert("fetch_ns".into(), fetch);
    histograms.insert("push_fetch_ns".into(), push_fetch);
    histograms.insert("wait_ns".into(), wait);
    if !failures.is_empty() {
        let mut failed = StalenessHistogram::new();
        failures.iter().for_each(|(w, _)| failed.record(*w as u64));
        histograms.insert("failed_workers".into(), failed);
    }
    Ok(RunResult {
        run,
        outcome,
        final_error,
        tail_error,
        trace,
        staleness,
        histograms,
        counters,
        wall_seconds,
        virtual_seconds: None,
        capped_sleeps: capped,
        workers,
        final_params,
        pushes: records.map(|mut all| {
            // The server's order: the version each push produced.
            all.sort_by_key(|p| (p.applied_version, p.worker));
            all.retain(|p| p.applied_version < complete_until);
            all
        }),
    })
}

/// Checks that the injected sleeps of the threads and tasks engines fit
/// the longest single sleep, [`MAX_SLEEP`] (1 s): a bounded compute-time
/// (× the straggler slowdown) or network-delay model whose largest value
/// exceeds it is refused, naming the field. Unbounded models (exponential,
/// Pareto, …) are accepted: a draw beyond the cap sleeps 1 s and is counted
/// in [`RunResult::capped_sleeps`] (and `runs.csv`, `summary.json`, the
/// printed report).
pub fn check_sleeps(cluster: &ClusterConfig) -> Result<(), ConfigError> {
    let cap = MAX_SLEEP.as_secs_f64();
    let slowdown = cluster.stragglers.map_or(1.0, |s| s.slowdown.max(1.0));
    let compute = cluster.compute_upper_bound();
    let network = cluster.network_delay.upper_bound();
    let allowed = |what: &str| {
        format!("a model whose largest value{what} is at most {cap} s, the longest sleep of the threads and tasks engines (unbounded models are capped per sleep and the capped sleeps counted)")
    };
    if let Some(c) = compute.filter(|&c| c > cap) {
        let c = psim_common::num::show(c);
        // Name the setting that makes it too long: the per-worker rule
        // when it is what pushes the base model past the cap.
        let base = cluster.compute_time.upper_bound().unwrap_or(f64::INFINITY) * slowdown;
        return Err(match &cluster.worker_compute {
            Some(w) if base <= cap => ConfigError::new(
                "cluster.worker_compute",
                w,
                allowed(&format!(
                    " (its slowest worker, with compute_time {} × straggler slowdown {slowdown}: here {c} s)",
                    cluster.compute_time
                )),
            ),
            _ => ConfigError::new(
                "cluster.compute_time",
                &cluster.compute_time,
                allowed(&format!(" (× straggler slowdown {slowdown}, here {c} s)")),
            ),
        });
    }
    if let Some(n) = network.filter(|&n| n > cap) {
        return Err(ConfigError::new(
            "cluster.network_delay",
            &cluster.network_delay,
            allowed(&format!(" (here {n} s)")),
        ));
    }
    if let (Some(c), Some(n)) = (compute, network) {
        if c + n > cap {
            return Err(ConfigError::new(
                "cluster.network_delay",
                &cluster.network_delay,
                allowed(&format!(" plus the compute time's (here {c} + {n} s)")),
            ));
        }
    }
    Ok(())
}

/// Seconds from the start to the first trace point at or below the target,
/// for a run that reached its target error.
pub fn time_to_target(result: &RunResult) -> Option<f64> {
    match result.outcome {
        Outcome::TargetErrorReached { step } => result
            .trace
            .iter()
            .find(|p| p.step == step)
            .and_then(|p| p.seconds),
        _ => None,
    }
}

/// Updates applied per wall-clock second.
pub fn throughput(result: &RunResult) -> f64 {
    result.counters.applied as f64 / result.wall_seconds.max(f64::MIN_POSITIVE)
}
