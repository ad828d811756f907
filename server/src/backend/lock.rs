//! The lock back-end: the core behind a `parking_lot` mutex.

use super::core::{Monitor, Poll, Pushed, ServerCore, StopReason};
use super::{elapsed_ns, FetchReply, PushReply, ServerClient};
use crate::rule::UpdateRule;
use parking_lot::{Condvar, Mutex, MutexGuard};
use std::time::Instant;

/// Shared state under one lock. A push applies the update while holding
/// it, so throughput is bounded by one update at a time, with no hand-off
/// between threads. Waiting workers (SSP, BSP) sleep on a condvar.
#[derive(Debug)]
pub struct LockServer<R: UpdateRule, M: Monitor> {
    core: Mutex<ServerCore<R, M>>,
    progress: Condvar,
    can_wait: bool,
}

impl<R: UpdateRule, M: Monitor> LockServer<R, M> {
    /// Wraps `core`.
    pub fn new(core: ServerCore<R, M>) -> Self {
        let can_wait = core.can_wait();
        Self {
            core: Mutex::new(core),
            progress: Condvar::new(),
            can_wait,
        }
    }

    /// The client of worker `worker` (one per worker).
    pub fn client(&self, worker: usize) -> LockClient<'_, R, M> {
        let dim = self.core.lock().state().params().len();
        LockClient {
            server: self,
            worker,
            params: vec![0.0; dim],
            version: 0,
        }
    }

    /// Stops the run and wakes every waiting worker.
    pub fn halt(&self, reason: StopReason) {
        self.core.lock().halt(reason);
        self.progress.notify_all();
    }

    /// Runs `f` on the core under the lock (for engines and tests).
    pub fn with_core<T>(&self, f: impl FnOnce(&ServerCore<R, M>) -> T) -> T {
        f(&self.core.lock())
    }

    /// The core, once every client is gone.
    pub fn into_core(self) -> ServerCore<R, M> {
        self.core.into_inner()
    }
}

/// A worker's connection to a [`LockServer`].
#[derive(Debug)]
pub struct LockClient<'a, R: UpdateRule, M: Monitor> {
    server: &'a LockServer<R, M>,
    worker: usize,
    params: Vec<f64>,
    version: u64,
}

impl<R: UpdateRule, M: Monitor> LockClient<'_, R, M> {
    fn fetch_locked(&mut self, core: &mut MutexGuard<'_, ServerCore<R, M>>) -> FetchReply {
        let mut since = None;
        loop {
            match core.try_fetch(self.worker, &mut self.params) {
                Poll::Ready(version) => {
                    self.version = version;
                    return FetchReply {
                        version,
                        waited_ns: elapsed_ns(since),
                        stopped: false,
                    };
                }
                Poll::Stopped => {
                    return FetchReply {
                        version: self.version,
                        waited_ns: elapsed_ns(since),
                        stopped: true,
                    }
                }
                Poll::Wait => {
                    since.get_or_insert_with(Instant::now);
                    self.server.progress.wait(core);
                }
            }
        }
    }

    fn push_locked(
        &mut self,
        core: &mut MutexGuard<'_, ServerCore<R, M>>,
        gradient: &[f64],
    ) -> PushReply {
        let mut since = None;
        loop {
            match core.try_push(self.worker, gradient, &self.params, self.version) {
                Poll::Ready(outcome) => {
                    if self.server.can_wait || core.stopped().is_some() {
                        self.server.progress.notify_all();
                    }
                    return PushReply {
                        staleness: outcome.staleness().unwrap_or(0),
                        outcome,
                        waited_ns: elapsed_ns(since),
                        stopped: false,
                    };
                }
                Poll::Stopped => {
                    return PushReply {
                        staleness: 0,
                        outcome: Pushed::Accepted { staleness: 0 },
                        waited_ns: elapsed_ns(since),
                        stopped: true,
                    }
                }
                Poll::Wait => {
                    since.get_or_insert_with(Instant::now);
                    self.server.progress.wait(core);
                }
            }
        }
    }
}

impl<R: UpdateRule, M: Monitor> ServerClient for LockClient<'_, R, M> {
    fn fetch(&mut self) -> FetchReply {
        let mut core = self.server.core.lock();
        self.fetch_locked(&mut core)
    }

    fn params(&self) -> &[f64] {
        &self.params
    }

    fn push(&mut self, gradient: &[f64]) -> PushReply {
        let mut core = self.server.core.lock();
        self.push_locked(&mut core, gradient)
    }

    fn push_fetch(&mut self, gradient: &[f64]) -> (PushReply, FetchReply) {
        let mut core = self.server.core.lock();
        let push = self.push_locked(&mut core, gradient);
        let fetch = self.fetch_locked(&mut core);
        (push, fetch)
    }

    fn leave(&mut self) {
        self.server.core.lock().leave(self.worker);
        self.server.progress.notify_all();
    }
}
