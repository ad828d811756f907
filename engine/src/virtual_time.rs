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
//! Events sit in an [`EventQueue`] (a 4-ary heap, and from 4,096 workers
//! on a calendar of time buckets in front of it) keyed by (virtual time,
//! worker id): equal times are broken by the smaller worker id, so a run
//! depends only on (seed, run, configuration). Every worker draws its data and its durations
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
//! Memory: the M workers' parameter copies sit in one flat arena (d values
//! a worker, with its gradient buffer beside it only when a push can wait;
//! otherwise a gradient is computed into one shared buffer as its push is
//! applied; a worker's values are within one cache line at d = 4); what every
//! event touches of a worker (two generators, its version, generation and
//! staleness counts) is one 104-byte `SimWorker`, and what only some
//! settings need sits in side arrays left empty otherwise; the queue holds
//! one entry per worker, 16 bytes in the heap or at most 24 in the
//! calendar (at most two entries under a policy that cancels, whose stale
//! entries are swept out beyond 2M); the core keeps one small
//! sync record per worker (and, under `ringmaster:R,stop`, at most 2M + 16
//! fetch records of 16 bytes). Nothing is allocated per event. Where the
//! time goes at 10⁴–10⁶ workers: `docs/performance.md`.

use psim_common::profile::WorkerClock;
use psim_common::pushes::{PushRecord, MAX_RECORDED_PUSHES};
use psim_common::seed::Stream;
use psim_common::{
    ClusterConfig, Delay, Objective, Outcome, PsimRng, RunConfig, RunResult, SeedTree,
    StalenessHistogram, StalenessTally, WorkerStats,
};
use psim_server::backend::{Monitor, Poll, Pushed, ServerCore, StopReason};
use psim_server::{Rule, ServerState};
use psim_worker::gradient_into;
use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};
use std::sync::Arc;
use std::time::Instant;
use tracing::debug_span;

use crate::event_queue::{prefetch, Entry, EventQueue};
use crate::record::RunRecorder;

/// What every event reads and writes of one simulated worker, in 104
/// bytes: its data stream (the objective's samples, as a [`psim_worker::Worker`]
/// draws them), its duration stream, the version of its parameter copy, the
/// generation of its computation and its staleness counts. What only some
/// settings need (straggler factors, fetch order, push timings, replay
/// positions) sits in side arrays that are empty otherwise; its parameter
/// copy and gradient sit in [`Arena`].
#[derive(Debug)]
#[repr(C)]
struct SimWorker {
    /// Generation of its computation under way: bumped when the policy
    /// cancels it, so the heap entry of the cancelled one is skipped.
    generation: u32,
    fetched_version: u64,
    data_rng: PsimRng,
    delay_rng: PsimRng,
    /// Its applied gradients, their staleness summed and largest
    /// ([`WorkerStats`] without the mean compute time, set at the end).
    applied: u64,
    staleness_sum: u64,
    staleness_max: u64,
}

// The memory per worker the docs quote counts on it (64-bit targets, where
// the generators are xoshiro256++).
#[cfg(target_pointer_width = "64")]
const _: () = assert!(std::mem::size_of::<SimWorker>() == 104);

impl SimWorker {
    /// Records one applied gradient of staleness `s`, as [`WorkerStats::record`].
    #[inline]
    fn record(&mut self, s: u64) {
        self.applied += 1;
        self.staleness_sum = self.staleness_sum.saturating_add(s);
        self.staleness_max = self.staleness_max.max(s);
    }
}

/// The workers' parameter copies and the gradients they compute. A
/// gradient is evaluated when its push is applied, so one buffer serves
/// every worker, unless a push can wait (SSP's order, BSP and m-sync
/// rounds): then worker w's gradient stays beside its copy until the push
/// proceeds, in one block of 2d values. Blocks (d values, or 2d) are laid
/// from a 64-byte boundary, so that at d = 4 a worker's are within one
/// cache line: the events of 10⁶ workers touch them in random order.
#[derive(Debug)]
struct Arena {
    values: Vec<f64>,
    /// Index of worker 0's block (the first 64-byte boundary).
    start: usize,
    dim: usize,
    /// Values per worker: d, or 2d with its own gradient buffer.
    stride: usize,
    gradients: Gradients,
}

/// Where [`Arena`]'s gradients go.
#[derive(Debug)]
enum Gradients {
    /// Each worker's beside its copy (a push that waits keeps its own).
    Beside,
    /// One buffer for all, holding the last gradient computed.
    Shared(Vec<f64>),
}

impl Arena {
    /// The copies of `workers` workers of dimension `dim`, each with its
    /// own gradient buffer when `keep_gradients`.
    fn new(workers: usize, dim: usize, keep_gradients: bool) -> Self {
        let stride = if keep_gradients { 2 * dim } else { dim };
        // Zeroed pages are not touched until written: advised first.
        let values = vec![0.0; workers * stride + 8];
        psim_common::memory::advise_huge_pages(&values);
        let start = (values.as_ptr() as usize).wrapping_neg() % 64 / std::mem::size_of::<f64>();
        Self {
            values,
            start,
            dim,
            stride,
            gradients: if keep_gradients {
                Gradients::Beside
            } else {
                Gradients::Shared(vec![0.0; dim])
            },
        }
    }

    /// Worker `w`'s parameter copy.
    #[inline]
    fn copy(&self, w: usize) -> &[f64] {
        let at = self.start + self.stride * w;
        &self.values[at..at + self.dim]
    }

    #[inline]
    fn copy_mut(&mut self, w: usize) -> &mut [f64] {
        let at = self.start + self.stride * w;
        &mut self.values[at..at + self.dim]
    }

    /// Worker `w`'s gradient (the shared buffer, holding the last one
    /// computed, when workers have none of their own).
    #[inline]
    fn gradient(&self, w: usize) -> &[f64] {
        match &self.gradients {
            Gradients::Beside => {
                let at = self.start + self.stride * w + self.dim;
                &self.values[at..at + self.dim]
            }
            Gradients::Shared(g) => g,
        }
    }

    /// Worker `w`'s copy and the buffer its gradient goes to.
    #[inline]
    fn both_mut(&mut self, w: usize) -> (&[f64], &mut [f64]) {
        let at = self.start + self.stride * w;
        match &mut self.gradients {
            Gradients::Beside => {
                let (copy, gradient) = self.values[at..at + 2 * self.dim].split_at_mut(self.dim);
                (copy, gradient)
            }
            Gradients::Shared(g) => (&self.values[at..at + self.dim], g),
        }
    }

    /// Asks the processor to fetch worker `w`'s block ahead of its event.
    #[inline]
    fn prefetch(&self, w: usize) {
        prefetch(self.values[self.start + self.stride * w..].as_ptr());
    }
}

/// From this many workers on, the event loop prefetches the next event's
/// worker state (below, the ≈ 200 B of each of the workers fit in the L2
/// cache, and the prefetch would only cost instructions).
const PREFETCH_FROM: usize = 4096;

/// Per-worker staleness histograms are kept up to this many workers.
pub const PER_WORKER_HISTOGRAMS: usize = 256;

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
/// `dim`, at most: parameter copy and gradient buffer (the buffer kept only
/// when the consistency model can wait), worker state, queue entry, the
/// core's sync record, the straggler factor, the parked-fetch and
/// parked-push entries and fetch order (also only when the model can wait)
/// and the result's [`WorkerStats`] (built as the workers' state is freed).
/// `record_pushes` adds 16 B and `replay:` 8 B. The figure the benchmark
/// checks against a counting allocator.
pub fn bytes_per_worker(dim: usize) -> usize {
    2 * dim * std::mem::size_of::<f64>()
        + std::mem::size_of::<SimWorker>()
        + EventQueue::BYTES_PER_ENTRY
        + ServerCore::<Rule, SimMonitor<'static, psim_common::AnyObjective>>::bytes_per_worker()
        + std::mem::size_of::<f64>()
        + std::mem::size_of::<u32>()
        + std::mem::size_of::<ParkedPush>()
        + std::mem::size_of::<u64>()
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
    /// Each worker's straggler × `worker_compute` factor; empty when all are 1.
    speeds: Vec<f64>,
    /// Each worker's position in its recorded compute times (`replay:`).
    replay_at: Vec<usize>,
    /// Each worker's last fetch's sequence number (the order of parked
    /// pushes), when pushes can wait; else empty.
    fetch_seq: Vec<u64>,
    /// Each worker's (fetch time, seconds from fetch to arrival) of its
    /// current push, when pushes are recorded; else empty.
    timing: Vec<(f64, f64)>,
    worker_staleness: Vec<StalenessHistogram>,
    pushes: Option<Vec<PushRecord>>,
    network_delay: &'a Delay,
    objective: &'a O,
    core: ServerCore<Rule, SimMonitor<'a, O>>,
    workers: Vec<SimWorker>,
    arena: Arena,
    events: EventQueue,
    /// Workers whose fetch waits, in the order they first waited.
    parked_fetches: VecDeque<u32>,
    /// Workers whose push waits, by the order of their fetches.
    parked_pushes: BinaryHeap<ParkedPush>,
    /// Workers whose computation the policy cancelled, to restart.
    restart: Vec<u32>,
    fetches: u64,
    /// Whether to prefetch the next event's worker: from
    /// [`PREFETCH_FROM`] workers on, below which their state stays cached.
    prefetch: bool,
    /// The workers' first fetches are under way (their arrivals are added
    /// to the queue unsorted).
    starting: bool,
    /// Every applied gradient's staleness.
    staleness: StalenessTally,
    now: f64,
}

impl<'a, O: Objective + ?Sized> Simulation<'a, O> {
    /// The simulation of run `run`, its events in the queue `queue` makes
    /// for the workers (any form pops the same order; see [`EventQueue`]).
    fn new(
        cfg: &'a RunConfig,
        cluster: &'a ClusterConfig,
        objective: &'a O,
        run: u64,
        queue: fn(usize) -> EventQueue,
        own_gradients: bool,
    ) -> Self {
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
        // without `models:` every worker shares `compute_time`.
        let (models, speeds) = match &cluster.worker_compute {
            Some(psim_common::WorkerCompute::Models(_)) => {
                cluster.worker_times(cfg.seed, run).into_iter().unzip()
            }
            _ => (
                vec![cluster.compute_time.clone()],
                cluster.worker_speeds(cfg.seed, run),
            ),
        };
        // A factor of 1 multiplies exactly: keep none.
        let speeds = if speeds.iter().all(|&s| s == 1.0) {
            Vec::new()
        } else {
            speeds
        };
        let replay: Vec<Arc<[f64]>> = (0..m)
            .filter_map(|w| cluster.replay_times(w).cloned())
            .collect();
        let clocks = cluster.worker_clocks(cfg.seed, run).unwrap_or_default();
        let mut workers = psim_common::memory::vec_on_huge_pages(m);
        workers.extend((0..m).map(|w| SimWorker {
            generation: 0,
            fetched_version: 0,
            data_rng: seeds.rng(run, w as u64, Stream::Data),
            delay_rng: seeds.rng(run, w as u64, Stream::Delay),
            applied: 0,
            staleness_sum: 0,
            staleness_max: 0,
        }));
        let parked = if core.can_wait() { m } else { 0 };
        Self {
            models,
            replay_at: vec![0; if replay.is_empty() { 0 } else { m }],
            replay,
            clocks,
            speeds,
            fetch_seq: vec![0; parked],
            timing: vec![(0.0, 0.0); if cluster.record_pushes { m } else { 0 }],
            worker_staleness: if m <= PER_WORKER_HISTOGRAMS {
                vec![StalenessHistogram::new(); m]
            } else {
                Vec::new()
            },
            pushes: cluster.record_pushes.then(Vec::new),
            network_delay: &cluster.network_delay,
            objective,
            core,
            workers,
            restart: Vec::new(),
            arena: Arena::new(m, dim, own_gradients || parked > 0),
            events: queue(m),
            parked_fetches: VecDeque::with_capacity(parked),
            parked_pushes: BinaryHeap::with_capacity(parked),
            fetches: 0,
            prefetch: m >= PREFETCH_FROM,
            starting: false,
            // ASP's staleness is about the number of workers (its counts
            // stay in the tally's window).
            staleness: StalenessTally::new(2 * m + 1024),
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
        match self.core.try_fetch(w, self.arena.copy_mut(w)) {
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
        if let Some(seq) = self.fetch_seq.get_mut(w) {
            *seq = self.fetches;
        }
        self.fetches += 1;
        let speed = self.speeds.get(w).copied().unwrap_or(1.0);
        let compute = if let Some(t) = self.replay.get(w) {
            let at = &mut self.replay_at[w];
            let c = t[*at];
            *at = (*at + 1) % t.len();
            c * speed
        } else {
            let model = &self.models[if self.models.len() == 1 { 0 } else { w }];
            let c = model.sample_inline(&mut sw.delay_rng) * speed;
            match self.clocks.get_mut(w) {
                // Download, compute (power and outages), upload.
                Some(clock) => clock.step(self.now, c, &mut sw.delay_rng).total(),
                None => c,
            }
        };
        let network = self.network_delay.sample_inline(&mut sw.delay_rng);
        if let Some(t) = self.timing.get_mut(w) {
            *t = (self.now, compute + network);
        }
        self.now + compute + network
    }

    /// Retries parked fetches in the order they first waited, up to the first
    /// that still waits (the core wakes them in that order).
    fn wake_fetches(&mut self) {
        while let Some(&w) = self.parked_fetches.front() {
            let w = w as usize;
            match self.core.try_fetch(w, self.arena.copy_mut(w)) {
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
        let fetched_version = self.workers[w].fetched_version;
        let poll = self.core.try_push(
            w,
            self.arena.gradient(w),
            self.arena.copy(w),
            fetched_version,
        );
        if let Poll::Ready(Pushed::Accepted { staleness: s }) = poll {
            self.staleness.record(s);
            self.workers[w].record(s);
            if let Some(h) = self.worker_staleness.get_mut(w) {
                h.record(s);
            }
            if let Some(p) = self
                .pushes
                .as_mut()
                .filter(|p| p.len() < MAX_RECORDED_PUSHES)
            {
                let (fetched_at, compute) = self.timing[w];
                // Arrived at fetch + compute; applied now (later if it was
                // parked by SSP's order).
                p.push(PushRecord {
                    worker: w as u32,
                    fetched_version,
                    applied_version: self.core.state().version(),
                    staleness: s,
                    compute_seconds: compute,
                    wait_seconds: wait_of(self.now, fetched_at, compute),
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
        let e = Entry {
            key: time_key(arrival),
            worker: w as u32,
            generation: self.workers[w].generation,
        };
        if self.starting {
            self.events.push_unsorted([e]);
        } else {
            self.events.push(e);
        }
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
                .retain(|e| workers[e.worker as usize].generation == e.generation);
        }
    }

    /// Whether a heap entry belongs to its worker's computation under way.
    #[inline]
    fn current(&self, w: u32, generation: u32) -> bool {
        self.workers[w as usize].generation == generation
    }

    /// Every worker's first fetch: the first events go into the queue
    /// unsorted and are spread once.
    fn start(&mut self) {
        self.starting = true;
        for w in 0..self.workers.len() {
            self.fetch(w);
        }
        self.starting = false;
        self.events.settle();
    }

    /// Runs the event loop until the core stops or no event is left.
    fn run(&mut self) {
        while self.core.stopped().is_none() {
            let Some(Entry {
                key: t,
                worker: w,
                generation,
            }) = self.events.peek()
            else {
                break;
            };
            if !self.current(w, generation) {
                self.events.pop();
                continue;
            }
            // The next event is almost always the runner-up of this one (an
            // arrival scheduled now comes after it but for a tie in a
            // handful of ulps): start loading its worker's state, which at
            // 10⁵–10⁶ workers is out of the caches, while this one runs.
            if self.prefetch {
                if let Some(next) = self.events.runner_up() {
                    prefetch_worker(&self.workers, &self.arena, &self.core, next.worker as usize);
                }
                // And the events a few buckets ahead (their queue nodes
                // too): loads that overlap instead of one miss after another.
                let (workers, arena, core) = (&self.workers, &self.arena, &self.core);
                self.events
                    .lookahead(|ahead| prefetch_worker(workers, arena, core, ahead as usize));
            }
            self.now = f64::from_bits(t);
            self.core.monitor_mut().now = self.now;
            let w = w as usize;
            // Lazy evaluation: a gradient the policy will not use (cancelled,
            // discarded, after the stop) is never computed.
            if self.core.wants_gradient(w, self.workers[w].fetched_version) {
                let (copy, gradient) = self.arena.both_mut(w);
                gradient_into(
                    self.objective,
                    w as u64,
                    copy,
                    &mut self.workers[w].data_rng,
                    gradient,
                );
            }
            let version = self.core.state().version();
            match self.try_push(w) {
                Poll::Ready(_) if self.parked_fetches.is_empty() => match self.try_fetch(w) {
                    Some(arrival) => {
                        // Replace the top entry: one sift-down, not a pop and a push.
                        let generation = self.workers[w].generation;
                        self.events.replace_top(Entry {
                            key: time_key(arrival),
                            worker: w as u32,
                            generation,
                        });
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
                    let seq = self.fetch_seq[w];
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
    }

    /// Each worker's [`WorkerStats`]: its staleness counts and its mean
    /// compute time (its model's mean × its factor, or its recorded times'
    /// mean × its factor under `replay:`). Frees the workers' state.
    fn worker_stats(&mut self, cluster: &ClusterConfig) -> Vec<WorkerStats> {
        let workers = std::mem::take(&mut self.workers);
        let mut stats = psim_common::memory::vec_on_huge_pages(workers.len());
        for (w, sw) in workers.into_iter().enumerate() {
            let speed = self.speeds.get(w).copied().unwrap_or(1.0);
            let model = &self.models[if self.models.len() == 1 { 0 } else { w }];
            stats.push(WorkerStats {
                applied: sw.applied,
                staleness_sum: sw.staleness_sum,
                staleness_max: sw.staleness_max,
                mean_compute: match self.replay.get(w) {
                    Some(t) => Some(t.iter().sum::<f64>() / t.len() as f64 * speed),
                    None => cluster.mean_compute(w, model, speed),
                },
            });
        }
        stats
    }

    /// Delivers what is still in flight or held at the stop (the core counts
    /// it as `dropped_after_stop`); the clock stays at the stop.
    fn deliver_after_stop(&mut self) {
        while let Some(Reverse((_, w))) = self.parked_pushes.pop() {
            let p = self.try_push(w as usize);
            debug_assert_eq!(p, Poll::Stopped);
        }
        // After the stop every push is only counted, so their order does
        // not matter: take them as they lie in the queue.
        let mut events = std::mem::take(&mut self.events);
        for e in events.drain_unordered() {
            if self.current(e.worker, e.generation) {
                let p = self.try_push(e.worker as usize);
                debug_assert!(p == Poll::Stopped, "{p:?}");
            }
        }
    }
}

/// Asks the processor to load what worker `n`'s event will touch: its
/// record, its block of the arena, its sync record in the core.
#[inline]
fn prefetch_worker<R: psim_server::UpdateRule, M: Monitor>(
    workers: &[SimWorker],
    arena: &Arena,
    core: &ServerCore<R, M>,
    n: usize,
) {
    // The record's 104 bytes span two or three cache lines: one address in
    // each (steps of at most 64 bytes).
    let sw: *const SimWorker = &workers[n];
    let bytes = sw.cast::<u8>();
    let size = std::mem::size_of::<SimWorker>();
    prefetch(bytes);
    prefetch(bytes.wrapping_add(size / 2));
    prefetch(bytes.wrapping_add(size - 1));
    arena.prefetch(n);
    if let Some(record) = core.worker_record_addr(n) {
        prefetch(record);
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
    run_with_queue(cfg, objective, run, EventQueue::with_capacity, false)
}

/// [`run_virtual_time`] with the event queue `queue` makes (the engine's
/// choice by size, or the tests' calendar or heap, to compare the two),
/// every worker keeping its own gradient buffer when `own_gradients` (as
/// when a push can wait; the tests compare that layout with the shared
/// buffer's).
fn run_with_queue<O: Objective + ?Sized>(
    cfg: &RunConfig,
    objective: &O,
    run: u64,
    queue: fn(usize) -> EventQueue,
    own_gradients: bool,
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
    // The phases as spans: `RUST_LOG=psim_engine::virtual_time=debug` prints
    // each one's time as it closes (docs/performance.md).
    let mut sim = {
        let _setup = debug_span!("setup").entered();
        let mut sim = Simulation::new(cfg, cluster, objective, run, queue, own_gradients);
        sim.start();
        sim
    };
    {
        let _events = debug_span!("events").entered();
        sim.run();
    }
    let stats = {
        let _stop = debug_span!("stop").entered();
        sim.deliver_after_stop();
        sim.worker_stats(cluster)
    };
    let Simulation {
        core,
        staleness,
        now,
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
        staleness: staleness.finish(),
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
    fn arena_blocks_are_aligned_and_disjoint() {
        for keep in [true, false] {
            for dim in [1, 4, 7] {
                let mut a = Arena::new(100, dim, keep);
                for w in 0..100 {
                    a.copy_mut(w).fill(w as f64);
                    let (copy, gradient) = a.both_mut(w);
                    assert_eq!(copy, vec![w as f64; dim].as_slice());
                    gradient.fill(-(w as f64));
                }
                let stride = if keep { 2 * dim } else { dim };
                for w in 0..100 {
                    assert_eq!(a.copy(w), vec![w as f64; dim].as_slice());
                    // Each worker's own buffer, or the shared one's last.
                    let g = if keep { w } else { 99 };
                    assert_eq!(a.gradient(w), vec![-(g as f64); dim].as_slice());
                    assert_eq!(a.copy(w).as_ptr() as usize % 64, (w * stride * 8) % 64);
                }
                assert_eq!(a.copy(0).as_ptr() as usize % 64, 0, "d = {dim}");
            }
        }
    }

    /// The calendar queue and the heap alone give the same run, bit for
    /// bit (wall time aside), and so do one shared gradient buffer and one
    /// per worker, over the settings that stress the queue and the policies:
    /// ties (constant times), cancellations (stale entries, sweeps),
    /// parked pushes, heavy tails, outages, recorded pushes, and a stop
    /// before the steps. 600 workers, so that buckets and rebuilds are
    /// many; the engine uses the calendar from 4,096 on.
    #[test]
    fn queues_and_arena_layouts_give_the_same_runs() {
        let pca = psim_common::StreamingPca::new(&psim_common::PcaConfig::default()).unwrap();
        let cases: [(&str, &str, &str, Option<&str>); 10] = [
            ("asp", "exp:1", "exp:0.1", None),
            ("asp", "1", "0", None),
            ("ssp:2", "exp:1", "0", None),
            ("bsp", "exp:1", "0", None),
            ("ksync:500", "exp:1", "0", None),
            ("rennala:16", "1", "0", Some("linear:1,1")),
            ("rennala:16,discard", "exp:1", "0", None),
            ("ringmaster:20,stop", "1", "0", Some("draw:exp:1")),
            ("buffered:8", "pareto:1,1.1", "0", None),
            (
                "ringmaster:50",
                "1",
                "0",
                Some("profile:1+1*i^0.5;noise=exp:0.1*i^0.5;up=exp:200;down=exp:20"),
            ),
        ];
        for (consistency, compute, network, per_worker) in cases {
            let mut cfg = RunConfig {
                steps: 6_000,
                runs: 1,
                record_every: 500,
                record_params: true,
                engine: psim_common::EngineConfig::new(
                    psim_common::EngineKind::VirtualTime,
                    ClusterConfig {
                        workers: 600,
                        compute_time: compute.parse().unwrap(),
                        network_delay: network.parse().unwrap(),
                        consistency: consistency.parse().unwrap(),
                        worker_compute: per_worker.map(|w| w.parse().unwrap()),
                        record_pushes: true,
                        ..Default::default()
                    },
                ),
                ..RunConfig::default()
            };
            cfg.step_size = 0.01;
            cfg.validate().unwrap();
            let show = |queue, own_gradients| {
                let mut r = run_with_queue(&cfg, &pca, 0, queue, own_gradients);
                r.wall_seconds = 0.0;
                format!("{r:?}")
            };
            let heap = show(EventQueue::heap, false);
            assert!(heap.contains("applied"), "{consistency}");
            assert!(
                heap == show(EventQueue::calendar, false),
                "{consistency} {compute} {per_worker:?}: the queues' runs differ"
            );
            assert!(
                heap == show(EventQueue::heap, true),
                "{consistency} {compute} {per_worker:?}: the arena layouts' runs differ"
            );
        }
    }

    #[test]
    fn time_keys_order_like_times() {
        let ts = [0.0, 1e-300, 0.5, 1.0, 3.0, 1e300, f64::INFINITY];
        for p in ts.windows(2) {
            assert!(time_key(p[0]) < time_key(p[1]), "{p:?}");
        }
        assert_eq!(time_key(-0.0), time_key(0.0));
    }
}
