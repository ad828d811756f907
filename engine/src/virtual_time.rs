//! The virtual-time engine: a deterministic discrete-event simulation of a
//! parameter server with M workers, in virtual seconds.
//!
//! Each simulated worker loops fetch → compute → push. A fetch copies the
//! server's parameters and version into the worker's slot; computing takes a
//! duration drawn from `cluster.compute_time` (× the worker's straggler
//! factor) and the push travels for a duration drawn from
//! `cluster.network_delay`. The push *arrives* at fetch time + compute +
//! network; that arrival is the one event of a step. The server applies it
//! with [`ServerState::push`], so the staleness is the number of versions
//! applied in between and emerges from the event order exactly as on a real
//! asynchronous server. The worker then fetches again at once (the reply that
//! carries the fresh parameters is taken to be instantaneous).
//!
//! Events sit in a binary heap keyed by (virtual time, worker id): equal
//! times are broken by the smaller worker id, so a run depends only on
//! (seed, run, configuration). Every worker draws its data and its durations
//! from its own streams of the [`SeedTree`].
//!
//! Consistency models:
//! - ASP: every push is applied when it arrives.
//! - SSP(s): pushes are applied in fetch order (a push that overtakes an
//!   earlier fetch is held until that one arrives), and a worker may fetch
//!   only while at most `s` other gradients are in flight; otherwise it waits
//!   until one is applied. Under fetch-order application a push's staleness
//!   is exactly the number of gradients in flight when it was fetched, so it
//!   never exceeds `s`, and the oldest push is never held, so the protocol
//!   cannot deadlock.
//! - BSP: a barrier per step: the M workers fetch the same version, their
//!   gradients are averaged when the last one arrives and applied as one
//!   update of staleness 0 (the server counts the aggregate as one push).
//!
//! Memory: the M workers' parameter copies sit in one flat arena (M·d
//! values), each worker owns its gradient buffer (d values) and two small
//! generators; the heap holds one 16-byte entry per worker. Nothing is
//! allocated per event.

use psim_common::delay::DelayModel;
use psim_common::seed::Stream;
use psim_common::{
    Consistency, Objective, Outcome, PsimRng, RunConfig, RunResult, SeedTree, StalenessHistogram,
};
use psim_server::{Rule, ServerState};
use psim_worker::Worker;
use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, VecDeque};
use std::time::Instant;
use tracing::debug_span;

use crate::record::RunRecorder;

/// One simulated worker besides its [`Worker`]: its duration stream, the
/// version of its parameter copy and its straggler factor.
#[derive(Debug, Clone)]
struct Slot {
    delay_rng: PsimRng,
    fetched_version: u64,
    speed: f64,
}

/// A pending arrival: (virtual time as ordered bits, worker id), min-first.
type Event = Reverse<(u64, u32)>;

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
/// `dim` (parameter copy, gradient buffer, worker and slot state, heap entry);
/// the figure the benchmark checks against a counting allocator.
pub fn bytes_per_worker(dim: usize) -> usize {
    2 * dim * std::mem::size_of::<f64>()
        + std::mem::size_of::<Worker>()
        + std::mem::size_of::<Slot>()
        + std::mem::size_of::<Event>()
        + std::mem::size_of::<u32>() // SSP wait queue / hold ring entry
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

/// The shared run bookkeeping plus this engine's staleness histogram and
/// the outcome that stopped the loop.
struct Recorder<'a, O: ?Sized> {
    run: RunRecorder<&'a O>,
    staleness: StalenessHistogram,
    outcome: Option<Outcome>,
}

impl<'a, O: Objective + ?Sized> Recorder<'a, O> {
    fn new(cfg: &'a RunConfig, objective: &'a O) -> Self {
        Self {
            run: RunRecorder::new(cfg, objective),
            staleness: StalenessHistogram::new(),
            outcome: None,
        }
    }

    /// Records the state before update `version` (trace, target); returns
    /// whether the run must stop.
    #[inline]
    fn before(&mut self, version: u64, params: &[f64], now: f64) -> bool {
        self.outcome = self.run.before(version, params, || Some(now));
        self.outcome.is_some()
    }

    /// Records an applied update that produced `version`; returns whether
    /// the run diverged.
    #[inline]
    fn after(&mut self, version: u64, staleness: u64, params: &[f64]) -> bool {
        self.staleness.record(staleness);
        self.outcome = self.run.after(version, params);
        self.outcome.is_some()
    }
}

/// The whole simulated cluster of one run.
struct Cluster<'a, O: ?Sized> {
    cfg: &'a RunConfig,
    objective: &'a O,
    dim: usize,
    server: ServerState<Rule>,
    workers: Vec<Worker>,
    slots: Vec<Slot>,
    copies: Vec<f64>,
    events: BinaryHeap<Event>,
    now: f64,
}

impl<'a, O: Objective + ?Sized> Cluster<'a, O> {
    fn new(cfg: &'a RunConfig, objective: &'a O, run: u64) -> Self {
        let seeds = SeedTree::new(cfg.seed);
        let dim = objective.dim();
        let m = cluster_of(cfg).workers;
        let mut initial = vec![0.0; dim];
        objective.initial_point(&mut seeds.rng(run, 0, Stream::Init), &mut initial);
        // The configured update rule, as in every engine.
        let rule = Rule::from_config(cfg);
        // The worker copies carry the stale parameters: the server keeps
        // no history beyond the current version.
        let server = ServerState::without_history(&initial, rule);
        let workers = (0..m)
            .map(|w| Worker::new(w as u64, seeds.rng(run, w as u64, Stream::Data), dim))
            .collect();
        let slots = (0..m)
            .map(|w| Slot {
                delay_rng: seeds.rng(run, w as u64, Stream::Delay),
                fetched_version: 0,
                speed: cluster_of(cfg).speed_factor(w),
            })
            .collect();
        Self {
            cfg,
            objective,
            dim,
            server,
            workers,
            slots,
            copies: vec![0.0; m * dim],
            events: BinaryHeap::with_capacity(m),
            now: 0.0,
        }
    }

    /// Worker `w` fetches now and schedules the arrival of its push.
    #[inline]
    fn fetch(&mut self, w: usize) {
        let arrival = self.fetch_at(w);
        self.events.push(Reverse((time_key(arrival), w as u32)));
    }

    /// Like [`Cluster::fetch`] for the worker whose arrival is at the top of
    /// the heap: replaces that entry (one sift-down instead of a pop and a push).
    #[inline]
    fn refetch_top(&mut self, w: usize) {
        let arrival = self.fetch_at(w);
        if let Some(mut top) = self.events.peek_mut() {
            debug_assert_eq!(top.0 .1 as usize, w);
            *top = Reverse((time_key(arrival), w as u32));
        }
    }

    /// Copies the parameters into worker `w`'s slot and returns the virtual
    /// time its push will arrive.
    #[inline]
    fn fetch_at(&mut self, w: usize) -> f64 {
        let at = w * self.dim;
        self.copies[at..at + self.dim].copy_from_slice(self.server.params());
        let slot = &mut self.slots[w];
        slot.fetched_version = self.server.version();
        let c = cluster_of(self.cfg);
        let compute = c.compute_time.sample(&mut slot.delay_rng) * slot.speed;
        let network = c.network_delay.sample(&mut slot.delay_rng);
        self.now + compute + network
    }

    /// Looks at the next arrival (leaving it on the heap) and advances the
    /// clock to it.
    #[inline]
    fn peek_arrival(&mut self) -> Option<usize> {
        let &Reverse((t, w)) = self.events.peek()?;
        self.now = f64::from_bits(t);
        Some(w as usize)
    }

    /// Pops the next arrival and advances the clock to it.
    #[inline]
    fn next_arrival(&mut self) -> Option<usize> {
        let Reverse((t, w)) = self.events.pop()?;
        self.now = f64::from_bits(t);
        Some(w as usize)
    }

    /// Computes worker `w`'s gradient on its copy and applies it; returns
    /// the staleness.
    #[inline]
    fn apply(&mut self, w: usize) -> u64 {
        let at = w * self.dim;
        let copy = &self.copies[at..at + self.dim];
        let gradient = self.workers[w].compute(self.objective, copy);
        self.server
            .push(gradient, copy, self.slots[w].fetched_version)
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
    let _span = debug_span!(
        "virtual_time",
        run,
        workers = cluster_of(cfg).workers,
        consistency = %cluster_of(cfg).consistency
    )
    .entered();
    let started = Instant::now();
    let mut cluster = Cluster::new(cfg, objective, run);
    let mut rec = Recorder::new(cfg, objective);
    match cluster_of(cfg).consistency {
        Consistency::Asp => run_asp(&mut cluster, &mut rec),
        Consistency::Ssp { bound } => run_ssp(&mut cluster, &mut rec, bound),
        Consistency::Bsp => run_bsp(&mut cluster, &mut rec),
    }
    let outcome = rec.outcome.unwrap_or(Outcome::StepsReached);
    let (trace, final_error, tail_error) = rec.run.finish(
        outcome,
        cluster.server.version(),
        cluster.server.params(),
        Some(cluster.now),
    );
    // The accounting is checked on every engine by `engine::run` (`verify`).
    let counters = *cluster.server.counters();
    RunResult {
        run,
        outcome,
        final_error,
        tail_error,
        trace,
        staleness: rec.staleness,
        histograms: BTreeMap::new(),
        counters,
        wall_seconds: started.elapsed().as_secs_f64(),
        virtual_seconds: Some(cluster.now),
        capped_sleeps: 0,
    }
}

fn run_asp<O: Objective + ?Sized>(c: &mut Cluster<'_, O>, rec: &mut Recorder<'_, O>) {
    for w in 0..c.workers.len() {
        c.fetch(w);
    }
    loop {
        if rec.before(c.server.version(), c.server.params(), c.now) {
            return;
        }
        let Some(w) = c.peek_arrival() else { return };
        let staleness = c.apply(w);
        if rec.after(c.server.version(), staleness, c.server.params()) {
            return;
        }
        c.refetch_top(w);
    }
}

fn run_ssp<O: Objective + ?Sized>(c: &mut Cluster<'_, O>, rec: &mut Recorder<'_, O>, bound: u64) {
    let m = c.workers.len();
    // Gradients in flight form the window [next_apply, next_fetch) of fetch
    // sequence numbers, at most `window` long, so `seq % window` indexes a
    // ring without collisions.
    let window = bound.saturating_add(1).min(m as u64);
    let mut seq_of = vec![0u64; m];
    let mut held: Vec<Option<u32>> = vec![None; window as usize];
    let mut waiting: VecDeque<u32> = VecDeque::with_capacity(m);
    let (mut next_fetch, mut next_apply) = (0u64, 0u64);
    for (w, seq) in seq_of.iter_mut().enumerate() {
        if next_fetch - next_apply < window {
            *seq = next_fetch;
            next_fetch += 1;
            c.fetch(w);
        } else {
            waiting.push_back(w as u32);
        }
    }
    if rec.before(c.server.version(), c.server.params(), c.now) {
        return;
    }
    while let Some(w) = c.next_arrival() {
        held[(seq_of[w] % window) as usize] = Some(w as u32);
        // Apply every held push that is next in fetch order.
        while let Some(h) = held[(next_apply % window) as usize].take() {
            let h = h as usize;
            let staleness = c.apply(h);
            next_apply += 1;
            if rec.after(c.server.version(), staleness, c.server.params())
                || rec.before(c.server.version(), c.server.params(), c.now)
            {
                return drop_held(c, &held);
            }
            waiting.push_back(h as u32);
            while next_fetch - next_apply < window {
                let Some(v) = waiting.pop_front() else { break };
                seq_of[v as usize] = next_fetch;
                next_fetch += 1;
                c.fetch(v as usize);
            }
        }
    }
}

/// Counts pushes that arrived but were still held when the run stopped.
fn drop_held<O: Objective + ?Sized>(c: &mut Cluster<'_, O>, held: &[Option<u32>]) {
    for _ in held.iter().flatten() {
        c.server.drop_push(false);
    }
}

fn run_bsp<O: Objective + ?Sized>(c: &mut Cluster<'_, O>, rec: &mut Recorder<'_, O>) {
    let m = c.workers.len();
    let dim = c.dim;
    let mut sum = vec![0.0; dim];
    let scale = 1.0 / m as f64;
    loop {
        if rec.before(c.server.version(), c.server.params(), c.now) {
            return;
        }
        for w in 0..m {
            c.fetch(w);
        }
        sum.iter_mut().for_each(|s| *s = 0.0);
        for _ in 0..m {
            let Some(w) = c.next_arrival() else { return };
            let copy = &c.copies[w * dim..(w + 1) * dim];
            let g = c.workers[w].compute(c.objective, copy);
            for (s, x) in sum.iter_mut().zip(g) {
                *s += x;
            }
        }
        sum.iter_mut().for_each(|s| *s *= scale);
        let version = c.server.version();
        // Every worker fetched `version`; the barrier makes the staleness 0.
        let copy = &c.copies[..dim];
        let staleness = c.server.push(&sum, copy, version);
        if rec.after(c.server.version(), staleness, c.server.params()) {
            return;
        }
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
