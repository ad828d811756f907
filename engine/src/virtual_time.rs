//! The virtual-time engine: a deterministic discrete-event simulation of a
//! parameter server with M workers, in virtual seconds.
//!
//! Each simulated worker loops fetch → compute → push. A fetch copies the
//! server's parameters and version into the worker's copy; computing takes a
//! duration drawn from `cluster.compute_time` or the worker's own model
//! (`cluster.worker_compute`; × the worker's straggler and per-worker
//! factors; under `profile:` the worker's [`WorkerClock`] adds the noise,
//! the download and upload times and stretches the computation by the
//! worker's power and outages at the current virtual time) and the push
//! travels for a duration drawn from `cluster.network_delay`. The push *arrives* at fetch time + compute +
//! network; that arrival is the one event of a step. The worker then fetches
//! again at once (the reply that carries the fresh parameters is taken to be
//! instantaneous).
//!
//! The server is the [`ServerCore`] of the threads and tasks engines, owned
//! directly (no lock): an arrival is its `try_push`, a fetch its `try_fetch`,
//! so ASP, SSP(s), BSP and the server policies are the core's rules, not a
//! copy of them, and the counters mean the same on every engine. A push or
//! fetch the core answers
//! with [`Poll::Wait`] is parked and retried after the next applied update,
//! in the order the core guarantees (fetches in the order they first waited,
//! pushes in the order of their fetches), so a retry costs O(1) per woken
//! worker. The staleness is the number of updates applied between a fetch and
//! its push and emerges from the event order as on a real server.
//!
//! Events sit in a binary heap keyed by (virtual time, worker id): equal
//! times are broken by the smaller worker id, so a run depends only on
//! (seed, run, configuration). Every worker draws its data and its durations
//! from its own streams of the [`SeedTree`].
//!
//! The gradient is evaluated lazily: at its arrival, on the worker's copy
//! of the version it fetched, and only when the core will use it
//! ([`ServerCore::wants_gradient`]); a computation the policy discards or
//! cancels costs no evaluation. A computation the policy cancels (Rennala,
//! m-sync, Ringmaster with `stop`) restarts at once: its worker fetches the
//! new point at the update, and the heap entry of the cancelled computation,
//! which carries an older generation, is skipped when it surfaces.
//!
//! At the stop, the pushes still travelling and the pushes the core still
//! holds are delivered and counted as `dropped_after_stop`, as on the
//! threads engine (whose sleeping workers push once more after the stop).
//!
//! Memory: the M workers' parameter copies sit in one flat arena (M·d
//! values), each worker owns its gradient buffer (d values) and two small
//! generators; the heap holds one 16-byte entry per worker (at most two
//! under a policy that cancels, whose stale entries are swept out beyond
//! 2M); the core keeps one small sync record per worker (and, under
//! `ringmaster:R,stop`, at most 2M + 16 fetch records of 16 bytes). Nothing
//! is allocated per event.

use psim_common::delay::DelayModel;
use psim_common::profile::WorkerClock;
use psim_common::pushes::{PushRecord, MAX_RECORDED_PUSHES};
use psim_common::seed::Stream;
use psim_common::{
    ClusterConfig, Delay, Objective, Outcome, PsimRng, RunConfig, RunResult, SeedTree,
    StalenessHistogram, WorkerStats,
};
use psim_server::backend::{Monitor, Poll, Pushed, ServerCore, StopReason};
use psim_server::{Rule, ServerState};
use psim_worker::Worker;
use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};
use std::sync::Arc;
use std::time::Instant;
use tracing::debug_span;

use crate::record::RunRecorder;

/// One simulated worker: its [`Worker`] (data stream, gradient buffer), its
/// duration stream, the version of its parameter copy, its straggler factor
/// and the sequence number of its last fetch (the order of parked pushes).
#[derive(Debug)]
struct SimWorker {
    worker: Worker,
    delay_rng: PsimRng,
    fetched_version: u64,
    fetch_seq: u64,
    speed: f64,
    /// Position in its recorded compute times (`replay:`).
    replay_at: usize,
    /// Seconds its current push takes from fetch to arrival.
    compute: f64,
    /// Virtual time of its current fetch.
    fetched_at: f64,
    /// Generation of its computation under way: bumped when the policy
    /// cancels it, so the heap entry of the cancelled one is skipped.
    generation: u32,
}

/// Per-worker staleness histograms are kept up to this many workers.
pub const PER_WORKER_HISTOGRAMS: usize = 256;

/// A pending arrival: (virtual time as ordered bits, worker id, generation
/// of the worker's computation), min-first. An entry whose generation is
/// not the worker's current one belongs to a cancelled computation and is
/// skipped (the same 16 bytes as without it).
type Event = Reverse<(u64, u32, u32)>;

/// A parked push: (fetch sequence number, worker id), min-first.
type ParkedPush = Reverse<(u64, u32)>;

/// Orders non-negative times by their bit pattern (monotone for f64 ≥ 0,
/// +∞ last). Negative zero and NaN cannot occur: delays are never negative.
#[inline]
fn time_key(t: f64) -> u64 {
    debug_assert!(t >= 0.0 || t.is_nan());
    if t.is_nan() {
        f64::INFINITY.to_bits()
    } else {
        (t + 0.0).to_bits()
    }
}

/// The cluster of a virtual-time configuration.
///
/// # Panics
/// When `cfg` names another engine: a programming error, since
/// [`crate::run`] dispatches on the engine.
fn cluster_of(cfg: &RunConfig) -> &psim_common::ClusterConfig {
    cfg.cluster()
        .expect("the virtual-time engine runs cluster configurations")
}

/// Bytes the engine holds per simulated worker for a problem of dimension
/// `dim` (parameter copy, gradient buffer, worker state, heap entry, the
/// core's sync record, parked-fetch and parked-push entries); the figure the
/// benchmark checks against a counting allocator.
pub fn bytes_per_worker(dim: usize) -> usize {
    2 * dim * std::mem::size_of::<f64>()
        + std::mem::size_of::<SimWorker>()
        + std::mem::size_of::<Event>()
        + ServerCore::<Rule, SimMonitor<'static, psim_common::AnyObjective>>::bytes_per_worker()
        + std::mem::size_of::<u32>()
        + std::mem::size_of::<ParkedPush>()
        + std::mem::size_of::<WorkerStats>()
}

/// Most bytes the workers' state may take (4 GiB): a guard against a
/// configuration that would exhaust memory instead of running.
pub const MAX_WORKER_BYTES: usize = 4 << 30;

/// Checks that `workers` simulated workers of dimension `dim` fit in
/// [`MAX_WORKER_BYTES`], naming `cluster.workers` and the largest count that fits.
pub fn check_memory(workers: usize, dim: usize) -> Result<(), psim_common::ConfigError> {
    let per = bytes_per_worker(dim);
    if workers.saturating_mul(per) > MAX_WORKER_BYTES {
        return Err(psim_common::ConfigError::new(
            "engine.cluster.workers",
            workers,
            format!(
                "at most {} for a problem of dimension {dim} ({per} B per worker, {} GiB in all)",
                MAX_WORKER_BYTES / per,
                MAX_WORKER_BYTES >> 30
            ),
        ));
    }
    Ok(())
}

/// The core's monitor in virtual time: the shared [`RunRecorder`] with the
/// simulation clock (set by the event loop before every push), and the
/// outcome that stopped the run.
struct SimMonitor<'a, O: ?Sized> {
    rec: RunRecorder<&'a O>,
    now: f64,
    outcome: Option<Outcome>,
}

impl<O: Objective + ?Sized> Monitor for SimMonitor<'_, O> {
    #[inline]
    fn on_update(&mut self, version: u64, params: &[f64]) -> Option<StopReason> {
        let now = self.now;
        let outcome = self.rec.on_update(version, params, || Some(now))?;
        self.outcome = Some(outcome);
        Some(outcome.into())
    }
}

/// The whole simulation of one run: the server core, the workers, the event
/// heap and the parked operations.
struct Simulation<'a, O: Objective + ?Sized> {
    /// One model for all workers, or one per worker (`models:`).
    models: Vec<Delay>,
    /// Recorded compute times per worker (`replay:`), else empty.
    replay: Vec<Arc<[f64]>>,
    /// Each worker's clock (`profile:`), else empty.
    clocks: Vec<WorkerClock>,
    stats: Vec<WorkerStats>,
    worker_staleness: Vec<StalenessHistogram>,
    pushes: Option<Vec<PushRecord>>,
    network_delay: &'a Delay,
    objective: &'a O,
    dim: usize,
    core: ServerCore<Rule, SimMonitor<'a, O>>,
    workers: Vec<SimWorker>,
    copies: Vec<f64>,
    events: BinaryHeap<Event>,
    /// Workers whose fetch waits, in the order they first waited.
    parked_fetches: VecDeque<u32>,
    /// Workers whose push waits, by the order of their fetches.
    parked_pushes: BinaryHeap<ParkedPush>,
    /// Workers whose computation the policy cancelled, to restart.
    restart: Vec<u32>,
    fetches: u64,
    staleness: StalenessHistogram,
    now: f64,
}

impl<'a, O: Objective + ?Sized> Simulation<'a, O> {
    fn new(cfg: &'a RunConfig, cluster: &'a ClusterConfig, objective: &'a O, run: u64) -> Self {
        let seeds = SeedTree::new(cfg.seed);
        let dim = objective.dim();
        let m = cluster.workers;
        let mut initial = vec![0.0; dim];
        objective.initial_point(&mut seeds.rng(run, 0, Stream::Init), &mut initial);
        // The configured update rule, as in every engine; the workers' copies
        // carry the stale parameters, so the server keeps no history.
        let rule = Rule::from_config(cfg);
        let mut rec = RunRecorder::new(cfg, objective);
        let start = rec.before(0, &initial, || Some(0.0));
        let monitor = SimMonitor {
            rec,
            now: 0.0,
            outcome: start,
        };
        let mut core = ServerCore::new(
            ServerState::without_history(&initial, rule),
            monitor,
            cluster.consistency,
            m,
        );
        if let Some(outcome) = start {
            core.halt(outcome.into());
        }
        // Cancelled computations are restarted at once (Rennala, m-sync,
        // Ringmaster with `stop`).
        core.track_cancellations();
        // Each worker's model and factor (straggler × `worker_compute`);
        // without `worker_compute` every worker shares `compute_time`.
        let times = cluster.worker_times(cfg.seed, run);
        let mut stats = vec![WorkerStats::default(); m];
        let replay: Vec<Arc<[f64]>> = (0..m)
            .filter_map(|w| cluster.replay_times(w).cloned())
            .collect();
        let clocks = cluster.worker_clocks(cfg.seed, run).unwrap_or_default();
        for (w, st) in stats.iter_mut().enumerate() {
            st.mean_compute = match replay.get(w) {
                Some(t) => Some(t.iter().sum::<f64>() / t.len() as f64 * times[w].1),
                None => cluster.mean_compute(w, &times[w].0, times[w].1),
            };
        }
        let workers = (0..m)
            .map(|w| SimWorker {
                worker: Worker::new(w as u64, seeds.rng(run, w as u64, Stream::Data), dim),
                delay_rng: seeds.rng(run, w as u64, Stream::Delay),
                fetched_version: 0,
                fetch_seq: 0,
                speed: times[w].1,
                replay_at: 0,
                compute: 0.0,
                fetched_at: 0.0,
                generation: 0,
            })
            .collect();
        let models = match &cluster.worker_compute {
            Some(psim_common::WorkerCompute::Models(_)) => {
                times.into_iter().map(|(d, _)| d).collect()
            }
            _ => vec![cluster.compute_time.clone()],
        };
        let parked = if core.can_wait() { m } else { 0 };
        Self {
            models,
            replay,
            clocks,
            stats,
            worker_staleness: if m <= PER_WORKER_HISTOGRAMS {
                vec![StalenessHistogram::new(); m]
            } else {
                Vec::new()
            },
            pushes: cluster.record_pushes.then(Vec::new),
            network_delay: &cluster.network_delay,
            objective,
            dim,
            core,
            workers,
            restart: Vec::new(),
            copies: vec![0.0; m * dim],
            events: BinaryHeap::with_capacity(m),
            parked_fetches: VecDeque::with_capacity(parked),
            parked_pushes: BinaryHeap::with_capacity(parked),
            fetches: 0,
            staleness: StalenessHistogram::new(),
            now: 0.0,
        }
    }

    /// Worker `w` asks the core for the parameters and, when it gets them,
    /// schedules the arrival of its push; otherwise it is parked (or the run
    /// has stopped).
    fn fetch(&mut self, w: usize) {
        if self.parked_fetches.is_empty() {
            if let Some(arrival) = self.try_fetch(w) {
                self.schedule(w, arrival);
            }
        } else {
            // Others wait before it: keep the order the core wakes them in.
            self.parked_fetches.push_back(w as u32);
            self.wake_fetches();
        }
    }

    /// One `try_fetch` of worker `w`: `Some(arrival)` when ready, `None`
    /// when it waits (then parked) or the run has stopped.
    #[inline]
    fn try_fetch(&mut self, w: usize) -> Option<f64> {
        let at = w * self.dim;
        match self.core.try_fetch(w, &mut self.copies[at..at + self.dim]) {
            Poll::Ready(version) => Some(self.fetched(w, version)),
            Poll::Wait => {
                self.parked_fetches.push_back(w as u32);
                None
            }
            Poll::Stopped => None,
        }
    }

    /// Worker `w` got the parameters of `version`: draws its compute time
    /// and network delay and returns the virtual time its push arrives.
    #[inline]
    fn fetched(&mut self, w: usize, version: u64) -> f64 {
        let sw = &mut self.workers[w];
        sw.fetched_version = version;
        sw.fetch_seq = self.fetches;
        self.fetches += 1;
        let compute = if let Some(t) = self.replay.get(w) {
            let c = t[sw.replay_at];
            sw.replay_at = (sw.replay_at + 1) % t.len();
            c * sw.speed
        } else {
            let model = &self.models[if self.models.len() == 1 { 0 } else { w }];
            let c = model.sample(&mut sw.delay_rng) * sw.speed;
            match self.clocks.get_mut(w) {
                // Download, compute (power and outages), upload.
                Some(clock) => clock.step(self.now, c, &mut sw.delay_rng).total(),
                None => c,
            }
        };
        let network = self.network_delay.sample(&mut sw.delay_rng);
        sw.compute = compute + network;
        sw.fetched_at = self.now;
        self.now + compute + network
    }

    /// Retries parked fetches in the order they first waited, up to the first
    /// that still waits (the core wakes them in that order).
    fn wake_fetches(&mut self) {
        while let Some(&w) = self.parked_fetches.front() {
            let w = w as usize;
            let at = w * self.dim;
            match self.core.try_fetch(w, &mut self.copies[at..at + self.dim]) {
                Poll::Wait => return,
                Poll::Stopped => {
                    self.parked_fetches.pop_front();
                }
                Poll::Ready(version) => {
                    self.parked_fetches.pop_front();
                    let arrival = self.fetched(w, version);
                    self.schedule(w, arrival);
                }
            }
        }
    }

    /// Pushes worker `w`'s gradient (already computed, when the core
    /// [wants it](ServerCore::wants_gradient)) to the core.
    #[inline]
    fn try_push(&mut self, w: usize) -> Poll<Pushed> {
        let at = w * self.dim;
        let copy = &self.copies[at..at + self.dim];
        let sw = &self.workers[w];
        let poll = self
            .core
            .try_push(w, sw.worker.gradient(), copy, sw.fetched_version);
        if let Poll::Ready(Pushed::Accepted { staleness: s }) = poll {
            self.staleness.record(s);
            self.stats[w].record(s);
            if let Some(h) = self.worker_staleness.get_mut(w) {
                h.record(s);
            }
            if let Some(p) = self
                .pushes
                .as_mut()
                .filter(|p| p.len() < MAX_RECORDED_PUSHES)
            {
                let sw = &self.workers[w];
                // Arrived at fetch + compute; applied now (later if it was
                // parked by SSP's order).
                p.push(PushRecord {
                    worker: w as u32,
                    fetched_version: sw.fetched_version,
                    applied_version: self.core.state().version(),
                    staleness: s,
                    compute_seconds: sw.compute,
                    wait_seconds: wait_of(self.now, sw.fetched_at, sw.compute),
                });
            }
        }
        poll
    }

    /// After an applied update: wakes parked fetches, then the parked push
    /// that is next (if it can proceed now), its worker's fetch, and so on.
    fn wake(&mut self) {
        loop {
            self.wake_fetches();
            let Some(&Reverse((_, w))) = self.parked_pushes.peek() else {
                return;
            };
            let w = w as usize;
            match self.try_push(w) {
                Poll::Wait => return,
                Poll::Stopped => {
                    self.parked_pushes.pop();
                }
                Poll::Ready(_) => {
                    self.parked_pushes.pop();
                    self.fetch(w);
                }
            }
        }
    }

    /// Schedules the arrival of worker `w`'s current computation.
    #[inline]
    fn schedule(&mut self, w: usize, arrival: f64) {
        let generation = self.workers[w].generation;
        self.events
            .push(Reverse((time_key(arrival), w as u32, generation)));
    }

    /// Restarts the workers whose computation the policy cancelled: each
    /// fetches the current point now; the heap entries of the cancelled
    /// computations are skipped when they surface (and swept out when they
    /// outnumber the workers).
    fn restart_cancelled(&mut self) {
        let mut restart = std::mem::take(&mut self.restart);
        self.core.drain_cancelled(&mut restart);
        for &w in &restart {
            let sw = &mut self.workers[w as usize];
            sw.generation = sw.generation.wrapping_add(1);
        }
        for &w in &restart {
            self.fetch(w as usize);
        }
        restart.clear();
        self.restart = restart;
        if self.events.len() > 2 * self.workers.len() {
            let workers = &self.workers;
            self.events
                .retain(|&Reverse((_, w, g))| workers[w as usize].generation == g);
        }
    }

    /// Whether a heap entry belongs to its worker's computation under way.
    #[inline]
    fn current(&self, w: u32, generation: u32) -> bool {
        self.workers[w as usize].generation == generation
    }

    /// Runs the event loop until the core stops or no event is left.
    fn run(&mut self) {
        for w in 0..self.workers.len() {
            self.fetch(w);
        }
        while self.core.stopped().is_none() {
            let Some(&Reverse((t, w, generation))) = self.events.peek() else {
                break;
            };
            if !self.current(w, generation) {
                self.events.pop();
                continue;
            }
            self.now = f64::from_bits(t);
            self.core.monitor_mut().now = self.now;
            let w = w as usize;
            let at = w * self.dim;
            // Lazy evaluation: a gradient the policy will not use (cancelled,
            // discarded, after the stop) is never computed.
            if self.core.wants_gradient(w, self.workers[w].fetched_version) {
                self.workers[w]
                    .worker
                    .compute(self.objective, &self.copies[at..at + self.dim]);
            }
            let version = self.core.state().version();
            match self.try_push(w) {
                Poll::Ready(_) if self.parked_fetches.is_empty() => match self.try_fetch(w) {
                    Some(arrival) => {
                        // Replace the top entry: one sift-down, not a pop and a push.
                        let generation = self.workers[w].generation;
                        if let Some(mut top) = self.events.peek_mut() {
                            *top = Reverse((time_key(arrival), w as u32, generation));
                        }
                    }
                    None => {
                        self.events.pop();
                    }
                },
                Poll::Ready(_) => {
                    // Off the top first: the fetches it wakes schedule arrivals.
                    self.events.pop();
                    self.fetch(w);
                }
                Poll::Wait => {
                    self.events.pop();
                    let seq = self.workers[w].fetch_seq;
                    self.parked_pushes.push(Reverse((seq, w as u32)));
                }
                Poll::Stopped => {
                    self.events.pop();
                }
            }
            if self.core.state().version() != version
                && !(self.parked_fetches.is_empty() && self.parked_pushes.is_empty())
            {
                self.wake();
            }
            if self.core.has_cancelled() {
                self.restart_cancelled();
            }
        }
        self.deliver_after_stop();
    }

    /// Delivers what is still in flight or held at the stop (the core counts
    /// it as `dropped_after_stop`); the clock stays at the stop.
    fn deliver_after_stop(&mut self) {
        while let Some(Reverse((_, w))) = self.parked_pushes.pop() {
            let p = self.try_push(w as usize);
            debug_assert_eq!(p, Poll::Stopped);
        }
        while let Some(Reverse((_, w, generation))) = self.events.pop() {
            if self.current(w, generation) {
                let p = self.try_push(w as usize);
                debug_assert!(p == Poll::Stopped, "{p:?}");
            }
        }
    }
}

/// Virtual seconds a push arriving at `fetched_at + compute` waited until
/// `now`; rounding noise of the sum (a push applied on arrival) is 0.
fn wait_of(now: f64, fetched_at: f64, compute: f64) -> f64 {
    let w = now - fetched_at - compute;
    if w <= 1e-9 * now.abs().max(1.0) {
        0.0
    } else {
        w
    }
}

/// Runs run `run` of `cfg` on `objective` in virtual time; `cfg.steps`
/// counts server updates. Deterministic: the result depends only on
/// (seed, run, configuration).
pub fn run_virtual_time<O: Objective + ?Sized>(
    cfg: &RunConfig,
    objective: &O,
    run: u64,
) -> RunResult {
    let cluster = cluster_of(cfg);
    let _span = debug_span!(
        "virtual_time",
        run,
        workers = cluster.workers,
        consistency = %cluster.consistency
    )
    .entered();
    let started = Instant::now();
    let mut sim = Simulation::new(cfg, cluster, objective, run);
    sim.run();
    let Simulation {
        core,
        staleness,
        now,
        stats,
        worker_staleness,
        pushes,
        ..
    } = sim;
    let histograms = worker_staleness
        .into_iter()
        .enumerate()
        .map(|(w, h)| (format!("staleness.worker{w}"), h))
        .collect();
    let (state, monitor, _) = core.into_parts();
    let outcome = monitor.outcome.unwrap_or(Outcome::StepsReached);
    let crate::record::Finished {
        trace,
        final_error,
        tail_error,
        trace_params,
    } = monitor
        .rec
        .finish(outcome, state.version(), state.params(), Some(now));
    let counters = *state.counters();
    let final_params = cfg.record_params.then(|| state.params().to_vec());
    RunResult {
        run,
        outcome,
        final_error,
        tail_error,
        trace,
        staleness,
        histograms,
        counters,
        wall_seconds: started.elapsed().as_secs_f64(),
        virtual_seconds: Some(now),
        capped_sleeps: 0,
        workers: stats,
        pushes,
        final_params,
        trace_params,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_keys_order_like_times() {
        let ts = [0.0, 1e-300, 0.5, 1.0, 3.0, 1e300, f64::INFINITY];
        for p in ts.windows(2) {
            assert!(time_key(p[0]) < time_key(p[1]), "{p:?}");
        }
        assert_eq!(time_key(-0.0), time_key(0.0));
    }
}
