//! The one implementation of the consistency models (ASP, SSP(s), BSP),
//! written as non-blocking `try_` operations on plain data. Every engine that
//! has workers drives it: the lock, crossbeam-channel and tokio back-ends of
//! the threads and tasks engines, and the event loop of the virtual-time
//! engine (which owns a core directly, without a lock). They therefore apply
//! the same rules and count pushes the same way.

use crate::rule::UpdateRule;
use crate::state::ServerState;
use psim_common::Consistency;
use std::collections::BTreeSet;

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

#[derive(Debug, Clone, Copy, Default)]
struct WorkerSync {
    /// SSP: position of this worker's next push in the update order.
    ticket: Option<u64>,
    /// BSP: the round (version) this worker pushed into, not yet applied.
    round: Option<u64>,
    alive: bool,
}

/// Server state plus the consistency bookkeeping of ASP, SSP(s) and BSP.
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
///
/// Counting (see `ServerCounters`): the counters count *gradients* (worker
/// pushes), the version counts *updates*. Under ASP and SSP one applied
/// gradient is one update; under BSP one update applies the round's M
/// gradients, so `applied` = M × updates. A push that reaches the core after
/// the stop, or that an SSP order still held at the stop, is received and
/// counted as `dropped_after_stop`.
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
        let bsp = consistency == Consistency::Bsp;
        Self {
            state,
            monitor,
            consistency,
            stop: None,
            slots: vec![
                WorkerSync {
                    alive: true,
                    ..Default::default()
                };
                workers
            ],
            live: workers,
            next_ticket: 0,
            cursor: 0,
            cancelled: BTreeSet::new(),
            round_sum: vec![0.0; if bsp { dim } else { 0 }],
            round_count: 0,
            round_params: vec![0.0; if bsp { dim } else { 0 }],
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
        self.consistency != Consistency::Asp
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
            Consistency::Asp => {}
            Consistency::Ssp { bound } => {
                let ticket = *self.slots[worker].ticket.get_or_insert_with(|| {
                    let t = self.next_ticket;
                    self.next_ticket += 1;
                    t
                });
                if ticket > self.cursor.saturating_add(bound) {
                    return Poll::Wait;
                }
            }
            Consistency::Bsp => {
                if let Some(round) = self.slots[worker].round {
                    if self.state.version() <= round {
                        return Poll::Wait;
                    }
                    self.slots[worker].round = None;
                }
            }
        }
        buf.copy_from_slice(self.state.params());
        Poll::Ready(self.state.version())
    }

    /// Receives `gradient` computed by `worker` at `stale_params` (version
    /// `version`). Returns the staleness it is applied with, or asks the
    /// caller to wait (SSP ordering); after the stop the push is counted as
    /// `dropped_after_stop`.
    #[inline]
    pub fn try_push(
        &mut self,
        worker: usize,
        gradient: &[f64],
        stale_params: &[f64],
        version: u64,
    ) -> Poll<u64> {
        if self.stop.is_some() {
            self.state.drop_push(false);
            return Poll::Stopped;
        }
        match self.consistency {
            Consistency::Asp => {
                let s = self.state.push(gradient, stale_params, version);
                self.after_update();
                Poll::Ready(s)
            }
            Consistency::Ssp { bound } => {
                let ticket = self.slots[worker]
                    .ticket
                    .expect("an SSP push follows a fetch that took a ticket");
                if ticket != self.cursor {
                    return Poll::Wait;
                }
                let s = self.state.push(gradient, stale_params, version);
                debug_assert!(s <= bound, "SSP staleness {s} > {bound}");
                self.slots[worker].ticket = None;
                self.advance_cursor();
                self.after_update();
                Poll::Ready(s)
            }
            Consistency::Bsp => {
                let round = self.state.version();
                debug_assert_eq!(version, round, "BSP computes on the round's version");
                for (acc, g) in self.round_sum.iter_mut().zip(gradient) {
                    *acc += g;
                }
                self.round_count += 1;
                self.slots[worker].round = Some(round);
                self.maybe_close_round();
                Poll::Ready(0)
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
            } else if self.consistency == Consistency::Bsp {
                self.maybe_close_round();
            }
        }
    }

    /// Stops the run (first reason wins); gradients of an unfinished BSP
    /// round are counted as `dropped_after_stop`.
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

    fn maybe_close_round(&mut self) {
        if self.round_count == 0 || self.round_count < self.live as u64 {
            return;
        }
        self.round_params.copy_from_slice(self.state.params());
        self.state
            .push_mean(&mut self.round_sum, self.round_count, &self.round_params);
        self.round_sum.iter_mut().for_each(|g| *g = 0.0);
        self.round_count = 0;
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
