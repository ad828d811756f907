//! The one implementation of the consistency models (ASP, SSP(s), BSP) and
//! server policies (Rennala, Ringmaster, m-sync, buffered), written as
//! non-blocking `try_` operations on plain data. Every engine that
//! has workers drives it: the lock, crossbeam-channel and tokio back-ends of
//! the threads and tasks engines, and the event loop of the virtual-time
//! engine (which owns a core directly, without a lock). They therefore apply
//! the same rules and count pushes the same way.

use crate::rule::UpdateRule;
use crate::state::ServerState;
use psim_common::{Consistency, StaleWork};
use std::collections::{BTreeSet, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// One flag per worker, raised when the policy cancels the worker's
/// computation and lowered at its next fetch: a worker of a real back-end
/// polls its flag while it computes and restarts at once when it rises.
pub type CancelFlags = Arc<[AtomicBool]>;

/// Why a run stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopReason {
    /// The configured number of updates was applied.
    StepsReached,
    /// The monitor saw the error fall to the target at this version.
    TargetErrorReached {
        /// Version at which the target was reached.
        step: u64,
    },
    /// The monitor saw the iterate diverge at this version.
    Diverged {
        /// Version at which divergence was detected.
        step: u64,
    },
    /// A worker failed and the run was configured to end.
    WorkerFailed {
        /// Index of the failed worker.
        worker: usize,
    },
    /// Every worker left (all failed under the `continue` policy).
    NoWorkers,
    /// Stopped from outside (a benchmark, a caller).
    Requested,
}

impl From<psim_common::Outcome> for StopReason {
    /// The stop a run's outcome asks for (step limit, target, divergence).
    fn from(outcome: psim_common::Outcome) -> Self {
        use psim_common::Outcome;
        match outcome {
            Outcome::StepsReached => StopReason::StepsReached,
            Outcome::TargetErrorReached { step } => StopReason::TargetErrorReached { step },
            Outcome::Diverged { step } => StopReason::Diverged { step },
            // The engine's monitor keeps the outcome itself (a caller's stop).
            Outcome::Stopped { .. } => StopReason::Requested,
        }
    }
}

/// Observes every update the server applies and decides when the run ends.
/// Called under the server's synchronisation, so it must be cheap.
pub trait Monitor: Send {
    /// Sees version `version` with parameters `params`; returns a reason to
    /// stop the run, if any.
    fn on_update(&mut self, version: u64, params: &[f64]) -> Option<StopReason>;
}

/// A monitor that only stops after a number of updates (benchmarks, tests).
#[derive(Debug, Clone, Copy)]
pub struct StepLimit(pub u64);

impl Monitor for StepLimit {
    #[inline]
    fn on_update(&mut self, version: u64, _params: &[f64]) -> Option<StopReason> {
        (version >= self.0).then_some(StopReason::StepsReached)
    }
}

/// The result of a non-blocking server operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Poll<T> {
    /// Done.
    Ready(T),
    /// The consistency model makes the caller wait; retry after the next update.
    Wait,
    /// The run has stopped; the caller should leave.
    Stopped,
}

/// What became of a push the core did not make wait.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pushed {
    /// Received and used: applied at once, or held for a round, a batch or
    /// a buffer (whose mean is applied later); `staleness` is the number of
    /// updates applied since its fetch (0 for a gradient of the current
    /// point, as Rennala, m-sync and BSP use).
    Accepted {
        /// Versions applied between its fetch and its arrival.
        staleness: u64,
    },
    /// The policy received the gradient and discarded it (Ringmaster:
    /// staleness ≥ R; Rennala with `discard`: computed at an older point),
    /// counted as `dropped_too_stale`. The worker fetches.
    Discarded,
    /// The computation had been cancelled by the policy (and counted as
    /// `cancelled` then); the push is not received. The worker fetches.
    Cancelled,
}

impl Pushed {
    /// The staleness of an accepted push.
    #[inline]
    pub fn staleness(self) -> Option<u64> {
        match self {
            Pushed::Accepted { staleness } => Some(staleness),
            _ => None,
        }
    }
}

/// What a push will meet, decided before its gradient is read (so that an
/// engine evaluates only gradients that will be used).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Verdict {
    Cancelled,
    Stopped,
    Discard,
    Accept,
}

/// An optional ticket or version in 8 bytes instead of `Option<u64>`'s 16
/// (so that a worker's [`WorkerSync`] is 32 bytes: the virtual-time engine
/// keeps 10⁶ of them): `u64::MAX` stands for none, a value no ticket or
/// version reaches (one is issued per fetch or update).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct MaybeU64(u64);

impl MaybeU64 {
    const NONE: Self = Self(u64::MAX);

    #[inline]
    fn some(v: u64) -> Self {
        debug_assert_ne!(v, u64::MAX, "a ticket or version of 2⁶⁴ − 1");
        Self(v)
    }

    #[inline]
    fn get(self) -> Option<u64> {
        (self.0 != u64::MAX).then_some(self.0)
    }

    #[inline]
    fn take(&mut self) -> Option<u64> {
        std::mem::replace(self, Self::NONE).get()
    }
}

impl Default for MaybeU64 {
    fn default() -> Self {
        Self::NONE
    }
}

// The virtual-time engine's memory per worker counts on it.
const _: () = assert!(std::mem::size_of::<WorkerSync>() == 32);

#[derive(Debug, Clone, Copy, Default)]
struct WorkerSync {
    /// SSP: position of this worker's next push in the update order.
    ticket: MaybeU64,
    /// BSP, m-sync: the round (version) this worker pushed into, not yet applied.
    round: MaybeU64,
    /// Version of the computation under way (meaningful while `computing`;
    /// `fetched`, `computing` and `cancelled` are kept only under a policy
    /// that cancels).
    fetched: u64,
    alive: bool,
    /// Fetched and not yet pushed nor cancelled.
    computing: bool,
    /// Its computation was cancelled; the push it may still send is refused.
    cancelled: bool,
}

/// Server state plus the consistency bookkeeping of ASP, SSP(s), BSP and
/// the policies of `docs/engines.md` (Rennala, Ringmaster, m-sync, buffered).
///
/// * ASP: every fetch and push proceeds at once.
/// * SSP(s): a fetch takes a ticket, the position of its push in the update
///   order; it waits until fewer than s+1 tickets are unresolved before its
///   own, and pushes are applied in ticket order (an early push waits). The
///   number of updates between a fetch and its push is then at most s, so
///   the measured staleness never exceeds s, and the oldest ticket can
///   always proceed, so nothing deadlocks.
/// * BSP: the gradients of one round (one version) are summed; when every
///   live worker has pushed, their mean is applied as one update; a worker
///   fetches again only once its round is applied.
/// * `ksync:K` (m-sync): BSP whose round closes at the first K gradients (or
///   every live worker's, if fewer are left); the computations still under
///   way are cancelled. `bsp` is `ksync:M` exactly (no computation is ever
///   under way when a BSP round closes).
/// * `rennala:B`: gradients computed at the current version are summed;
///   at the B-th their mean is applied as one update and every computation
///   under way is cancelled (`,discard`: left to finish; a gradient computed
///   at an older version is discarded on arrival). Nobody waits.
/// * `ringmaster:R`: a gradient of staleness ≥ R is discarded on arrival,
///   any other applied as under ASP (`,stop`: after each update the
///   computations that became R versions stale are cancelled instead).
/// * `buffered:K`: every arriving gradient is summed; at every K-th the
///   mean is applied with the buffer's largest staleness. Nobody waits.
///
/// A cancelled computation's worker must restart on the current point: an
/// engine that simulates computations ([`ServerCore::track_cancellations`])
/// takes the list of cancelled workers with
/// [`ServerCore::drain_cancelled`]; a worker of a real back-end learns it at
/// its push ([`Poll::Cancelled`]) and fetches.
///
/// Counting (see `ServerCounters`): the counters count *gradients* (worker
/// pushes), the version counts *updates*. Under ASP and SSP one applied
/// gradient is one update; under BSP one update applies the round's M
/// gradients, so `applied` = M × updates. A push that reaches the core after
/// the stop, or that an SSP order still held at the stop, is received and
/// counted as `dropped_after_stop`. A gradient a policy refuses is received
/// and counted as `dropped_too_stale`; a cancelled computation is counted as
/// `cancelled` when it is cancelled and never received.
///
/// Waking order, which a driver may rely on to retry waiting operations
/// without scanning them all: fetches that returned [`Poll::Wait`] become
/// ready in the order in which they first waited (SSP tickets are issued in
/// that order; a BSP round releases all of them at once), and pushes that
/// returned [`Poll::Wait`] become ready in the order of the fetches they were
/// computed on (SSP applies in ticket order; ASP and BSP pushes never wait).
#[derive(Debug)]
pub struct ServerCore<R: UpdateRule, M: Monitor> {
    state: ServerState<R>,
    monitor: M,
    consistency: Consistency,
    stop: Option<StopReason>,
    slots: Vec<WorkerSync>,
    live: usize,
    next_ticket: u64,
    cursor: u64,
    cancelled: BTreeSet<u64>,
    round_sum: Vec<f64>,
    round_count: u64,
    round_params: Vec<f64>,
    /// Buffered: the largest staleness among the buffered gradients.
    round_staleness: u64,
    /// Ringmaster with `stop`: (version, worker) of every fetch, in fetch
    /// order (versions never decrease), popped once R versions old.
    under_way: VecDeque<(u64, u32)>,
    /// Cancelled workers not yet taken by the engine (when tracked).
    cancelled_workers: Option<Vec<u32>>,
    /// Per-worker cancellation flags, for policies that cancel.
    flags: Option<CancelFlags>,
}

impl<R: UpdateRule, M: Monitor> ServerCore<R, M> {
    /// A core for `workers` workers around `state`.
    pub fn new(
        state: ServerState<R>,
        monitor: M,
        consistency: Consistency,
        workers: usize,
    ) -> Self {
        let dim = state.params().len();
        let bsp = matches!(
            consistency,
            Consistency::Bsp
                | Consistency::KSync { .. }
                | Consistency::Rennala { .. }
                | Consistency::Buffered { .. }
        );
        Self {
            state,
            monitor,
            consistency,
            stop: None,
            slots: {
                // Touched in random worker order by the virtual-time
                // engine: on huge pages from a few MB on.
                let mut slots = psim_common::memory::vec_on_huge_pages(workers);
                slots.resize(
                    workers,
                    WorkerSync {
                        alive: true,
                        ..Default::default()
                    },
                );
                slots
            },
            live: workers,
            next_ticket: 0,
            cursor: 0,
            cancelled: BTreeSet::new(),
            round_sum: vec![0.0; if bsp { dim } else { 0 }],
            round_count: 0,
            round_params: vec![0.0; if bsp { dim } else { 0 }],
            round_staleness: 0,
            under_way: VecDeque::new(),
            cancelled_workers: None,
            flags: consistency
                .cancels()
                .then(|| (0..workers).map(|_| AtomicBool::new(false)).collect()),
        }
    }

    /// The workers' cancellation flags, under a policy that cancels.
    pub fn cancel_flags(&self) -> Option<CancelFlags> {
        self.flags.clone()
    }

    /// Lists the workers whose computation the policy cancels, for
    /// [`ServerCore::drain_cancelled`] (the virtual-time engine restarts
    /// them at once). Without it, a cancelled worker learns it at its push.
    pub fn track_cancellations(&mut self) {
        if self.consistency.cancels() {
            self.cancelled_workers = Some(Vec::with_capacity(self.slots.len()));
        }
    }

    /// Whether cancelled workers wait to be taken.
    #[inline]
    pub fn has_cancelled(&self) -> bool {
        self.cancelled_workers
            .as_ref()
            .is_some_and(|c| !c.is_empty())
    }

    /// Moves the workers cancelled since the last call into `out` (in the
    /// order they were cancelled); each must fetch again.
    pub fn drain_cancelled(&mut self, out: &mut Vec<u32>) {
        if let Some(c) = self.cancelled_workers.as_mut() {
            out.append(c);
        }
    }

    /// Whether a push of `worker`'s computation on `version` arriving now
    /// would read its gradient: false when it would be refused (cancelled,
    /// stopped, discarded by the policy), so an engine that evaluates
    /// gradients lazily skips the evaluation.
    #[inline]
    pub fn wants_gradient(&self, worker: usize, version: u64) -> bool {
        self.verdict(worker, version) == Verdict::Accept
    }

    /// The address of `worker`'s sync record, for an engine that knows
    /// which worker comes next to ask the processor to load it early (a
    /// hint: nothing is read through it). `None` when its fetches and
    /// pushes do not touch the record (ASP, buffered, and Rennala and
    /// Ringmaster without cancellations), where loading it would only
    /// crowd the caches.
    #[inline]
    pub fn worker_record_addr(&self, worker: usize) -> Option<*const u8> {
        if self.flags.is_none() && !self.can_wait() {
            return None;
        }
        self.slots.get(worker).map(|s| std::ptr::from_ref(s).cast())
    }

    #[inline]
    fn verdict(&self, worker: usize, version: u64) -> Verdict {
        if self.flags.is_some() && self.slots[worker].cancelled {
            return Verdict::Cancelled;
        }
        if self.stop.is_some() {
            return Verdict::Stopped;
        }
        let now = self.state.version();
        match self.consistency {
            Consistency::Rennala { .. } if version != now => Verdict::Discard,
            Consistency::Ringmaster { bound, .. } if now.saturating_sub(version) >= bound => {
                Verdict::Discard
            }
            _ => Verdict::Accept,
        }
    }

    /// The wrapped server state.
    #[inline]
    pub fn state(&self) -> &ServerState<R> {
        &self.state
    }

    /// The monitor (an engine may keep its clock in it).
    #[inline]
    pub fn monitor_mut(&mut self) -> &mut M {
        &mut self.monitor
    }

    /// Bytes of consistency bookkeeping the core keeps per worker.
    pub const fn bytes_per_worker() -> usize {
        std::mem::size_of::<WorkerSync>()
    }

    /// Why the run stopped, once it has.
    pub fn stopped(&self) -> Option<StopReason> {
        self.stop
    }

    /// Whether an operation can ever return [`Poll::Wait`].
    pub fn can_wait(&self) -> bool {
        matches!(
            self.consistency,
            Consistency::Ssp { .. } | Consistency::Bsp | Consistency::KSync { .. }
        )
    }

    /// Number of workers.
    pub fn workers(&self) -> usize {
        self.slots.len()
    }

    /// Splits the core into its state, its monitor and the stop reason.
    pub fn into_parts(self) -> (ServerState<R>, M, Option<StopReason>) {
        (self.state, self.monitor, self.stop)
    }

    /// Copies the current parameters into `buf` and returns their version,
    /// unless the consistency model makes `worker` wait.
    #[inline]
    pub fn try_fetch(&mut self, worker: usize, buf: &mut [f64]) -> Poll<u64> {
        if self.stop.is_some() {
            return Poll::Stopped;
        }
        match self.consistency {
            Consistency::Asp
            | Consistency::Rennala { .. }
            | Consistency::Ringmaster { .. }
            | Consistency::Buffered { .. } => {}
            Consistency::Ssp { bound } => {
                let ticket = match self.slots[worker].ticket.get() {
                    Some(t) => t,
                    None => {
                        let t = self.next_ticket;
                        self.next_ticket += 1;
                        self.slots[worker].ticket = MaybeU64::some(t);
                        t
                    }
                };
                if ticket > self.cursor.saturating_add(bound) {
                    return Poll::Wait;
                }
            }
            Consistency::Bsp | Consistency::KSync { .. } => {
                if let Some(round) = self.slots[worker].round.get() {
                    if self.state.version() <= round {
                        return Poll::Wait;
                    }
                    self.slots[worker].round = MaybeU64::NONE;
                }
            }
        }
        buf.copy_from_slice(self.state.params());
        let version = self.state.version();
        if let Some(f) = &self.flags {
            // Only a policy that cancels follows computations under way (the
            // others touch no per-worker record on the hot path).
            let slot = &mut self.slots[worker];
            slot.fetched = version;
            slot.computing = true;
            if std::mem::take(&mut slot.cancelled) {
                f[worker].store(false, Ordering::Relaxed);
            }
        }
        if let Consistency::Ringmaster {
            stale: StaleWork::Cancel,
            ..
        } = self.consistency
        {
            self.under_way.push_back((version, worker as u32));
            if self.under_way.len() > 2 * self.slots.len() + 16 {
                // Entries of finished computations: keep one per live one.
                let slots = &self.slots;
                self.under_way.retain(|&(v, w)| {
                    let s = &slots[w as usize];
                    s.computing && s.fetched == v
                });
            }
        }
        Poll::Ready(version)
    }

    /// Receives `gradient` computed by `worker` at `stale_params` (version
    /// `version`). Returns what became of it ([`Pushed`]: accepted with its
    /// staleness, discarded or cancelled by the policy), or asks the caller
    /// to wait (SSP ordering); after the stop the push is counted as
    /// `dropped_after_stop`. The gradient is read only when
    /// [`ServerCore::wants_gradient`] says so.
    #[inline]
    pub fn try_push(
        &mut self,
        worker: usize,
        gradient: &[f64],
        stale_params: &[f64],
        version: u64,
    ) -> Poll<Pushed> {
        let verdict = self.verdict(worker, version);
        if let Some(f) = &self.flags {
            let slot = &mut self.slots[worker];
            slot.computing = false;
            if verdict == Verdict::Cancelled {
                slot.cancelled = false;
                f[worker].store(false, Ordering::Relaxed);
            }
        }
        match verdict {
            Verdict::Cancelled => return Poll::Ready(Pushed::Cancelled),
            Verdict::Stopped => {
                self.state.drop_push(false);
                return Poll::Stopped;
            }
            Verdict::Discard => {
                self.state.drop_push(true);
                return Poll::Ready(Pushed::Discarded);
            }
            Verdict::Accept => {}
        }
        match self.consistency {
            Consistency::Asp => {
                let s = self.state.push(gradient, stale_params, version);
                self.after_update();
                Poll::Ready(Pushed::Accepted { staleness: s })
            }
            Consistency::Ssp { bound } => {
                let ticket = self.slots[worker]
                    .ticket
                    .get()
                    .expect("an SSP push follows a fetch that took a ticket");
                if ticket != self.cursor {
                    return Poll::Wait;
                }
                let s = self.state.push(gradient, stale_params, version);
                debug_assert!(s <= bound, "SSP staleness {s} > {bound}");
                self.slots[worker].ticket = MaybeU64::NONE;
                self.advance_cursor();
                self.after_update();
                Poll::Ready(Pushed::Accepted { staleness: s })
            }
            Consistency::Bsp | Consistency::KSync { .. } => {
                let round = self.state.version();
                debug_assert_eq!(version, round, "BSP computes on the round's version");
                self.add_to_round(gradient, 0);
                self.slots[worker].round = MaybeU64::some(round);
                self.maybe_close_round();
                Poll::Ready(Pushed::Accepted { staleness: 0 })
            }
            Consistency::Rennala { batch, stale } => {
                self.add_to_round(gradient, 0);
                if self.round_count >= batch {
                    self.close_round();
                    if stale == StaleWork::Cancel {
                        self.cancel_all_under_way();
                    }
                }
                Poll::Ready(Pushed::Accepted { staleness: 0 })
            }
            Consistency::Ringmaster { stale, .. } => {
                let s = self.state.push(gradient, stale_params, version);
                self.after_update();
                if stale == StaleWork::Cancel {
                    self.cancel_too_stale();
                }
                Poll::Ready(Pushed::Accepted { staleness: s })
            }
            Consistency::Buffered { size } => {
                let s = self.state.version() - version;
                self.add_to_round(gradient, s);
                if self.round_count >= size {
                    self.close_round();
                }
                Poll::Ready(Pushed::Accepted { staleness: s })
            }
        }
    }

    #[inline]
    fn add_to_round(&mut self, gradient: &[f64], staleness: u64) {
        for (acc, g) in self.round_sum.iter_mut().zip(gradient) {
            *acc += g;
        }
        self.round_count += 1;
        self.round_staleness = self.round_staleness.max(staleness);
    }

    /// Cancels `worker`'s computation under way.
    #[inline]
    fn cancel(&mut self, worker: usize) {
        let slot = &mut self.slots[worker];
        slot.computing = false;
        slot.cancelled = true;
        self.state.count_cancelled(1);
        if let Some(c) = self.cancelled_workers.as_mut() {
            c.push(worker as u32);
        }
        if let Some(f) = &self.flags {
            f[worker].store(true, Ordering::Relaxed);
        }
    }

    /// Rennala and m-sync after an update: every computation under way is
    /// cancelled (its worker restarts on the new point).
    fn cancel_all_under_way(&mut self) {
        if self.stop.is_some() {
            return;
        }
        for w in 0..self.slots.len() {
            if self.slots[w].alive && self.slots[w].computing {
                self.cancel(w);
            }
        }
    }

    /// Ringmaster with `stop` after an update: the computations now R
    /// versions stale are cancelled.
    fn cancel_too_stale(&mut self) {
        let Consistency::Ringmaster { bound, .. } = self.consistency else {
            return;
        };
        if self.stop.is_some() {
            return;
        }
        let now = self.state.version();
        while let Some(&(v, w)) = self.under_way.front() {
            if now - v < bound {
                break;
            }
            self.under_way.pop_front();
            let s = &self.slots[w as usize];
            if s.alive && s.computing && s.fetched == v {
                self.cancel(w as usize);
            }
        }
    }

    /// `worker` leaves the run (it finished after the stop, or it failed):
    /// its SSP ticket is released and BSP rounds stop waiting for it.
    pub fn leave(&mut self, worker: usize) {
        let slot = &mut self.slots[worker];
        if !slot.alive {
            return;
        }
        slot.alive = false;
        self.live -= 1;
        if let Some(t) = slot.ticket.take() {
            if t == self.cursor {
                self.advance_cursor();
            } else {
                self.cancelled.insert(t);
            }
        }
        if self.stop.is_none() {
            if self.live == 0 {
                self.halt(StopReason::NoWorkers);
            } else if matches!(
                self.consistency,
                Consistency::Bsp | Consistency::KSync { .. }
            ) {
                self.maybe_close_round();
            }
        }
    }

    /// Stops the run (first reason wins); gradients of an unfinished BSP,
    /// m-sync or Rennala round or of a partial buffer are counted as
    /// `dropped_after_stop`.
    pub fn halt(&mut self, reason: StopReason) {
        if self.stop.is_some() {
            return;
        }
        self.stop = Some(reason);
        for _ in 0..self.round_count {
            self.state.drop_push(false);
        }
        self.round_count = 0;
    }

    fn advance_cursor(&mut self) {
        self.cursor += 1;
        while self.cancelled.remove(&self.cursor) {
            self.cursor += 1;
        }
    }

    /// BSP and m-sync: closes the round once it has its quorum (every live
    /// worker's gradient under BSP, the first K under `ksync:K`); m-sync then
    /// cancels the round's computations still under way.
    fn maybe_close_round(&mut self) {
        let quorum = match self.consistency {
            Consistency::KSync { quorum } => quorum.min(self.live as u64),
            _ => self.live as u64,
        };
        if self.round_count == 0 || self.round_count < quorum {
            return;
        }
        self.close_round();
        if let Consistency::KSync { .. } = self.consistency {
            self.cancel_all_under_way();
        }
    }

    /// Applies the mean of the round's (or buffer's) gradients as one update.
    fn close_round(&mut self) {
        self.round_params.copy_from_slice(self.state.params());
        self.state.push_mean(
            &mut self.round_sum,
            self.round_count,
            &self.round_params,
            self.round_staleness,
        );
        self.round_sum.iter_mut().for_each(|g| *g = 0.0);
        self.round_count = 0;
        self.round_staleness = 0;
        self.after_update();
    }

    #[inline]
    fn after_update(&mut self) {
        if let Some(reason) = self
            .monitor
            .on_update(self.state.version(), self.state.params())
        {
            self.halt(reason);
        }
    }
}
