//! The server loop shared by the channel back-ends (a thread, a task):
//! requests carry the workers' buffers; requests that must wait are parked
//! and retried after every change of the core.

use super::core::{Monitor, Poll, Pushed, ServerCore, StopReason};
use super::{FetchReply, PushReply};
use crate::rule::UpdateRule;
use std::time::Instant;

/// A worker's request; buffers travel with it and come back in the [`Reply`].
#[derive(Debug)]
pub enum Request {
    /// Fill `buf` with the current parameters.
    Fetch { worker: usize, buf: Vec<f64> },
    /// Apply `gradient`, computed on `params` of `version`.
    Push {
        worker: usize,
        gradient: Vec<f64>,
        params: Vec<f64>,
        version: u64,
    },
    /// A push followed at once by a fetch into `params` (the usual step:
    /// one round trip); `pushed` is set once the push part is done.
    PushFetch {
        worker: usize,
        gradient: Vec<f64>,
        params: Vec<f64>,
        version: u64,
        pushed: Option<PushReply>,
    },
    /// The worker leaves.
    Leave { worker: usize },
    /// Stop the run.
    Halt(StopReason),
}

/// The server's answer, with the buffers of the request.
#[derive(Debug)]
pub enum Reply {
    /// Answer to a fetch.
    Fetched { buf: Vec<f64>, reply: FetchReply },
    /// Answer to a push-and-fetch.
    PushedFetched {
        gradient: Vec<f64>,
        params: Vec<f64>,
        push: PushReply,
        fetch: FetchReply,
    },
    /// Answer to a push.
    Pushed {
        gradient: Vec<f64>,
        params: Vec<f64>,
        reply: PushReply,
    },
}

/// The core plus the requests parked by the consistency model.
#[derive(Debug)]
pub struct Dispatcher<R: UpdateRule, M: Monitor> {
    core: ServerCore<R, M>,
    parked: Vec<(Request, Instant)>,
    spare: Vec<(Request, Instant)>,
}

impl<R: UpdateRule, M: Monitor> Dispatcher<R, M> {
    /// Serves `core`.
    pub fn new(core: ServerCore<R, M>) -> Self {
        let workers = core.workers();
        Self {
            core,
            parked: Vec::with_capacity(workers),
            spare: Vec::with_capacity(workers),
        }
    }

    /// The core, when the loop ends.
    pub fn into_core(self) -> ServerCore<R, M> {
        self.core
    }

    /// Handles one request, answering through `send(worker, reply)`.
    pub fn handle(&mut self, req: Request, send: &mut impl FnMut(usize, Reply)) {
        let before = (self.core.state().version(), self.core.stopped());
        let leave = matches!(req, Request::Leave { .. } | Request::Halt(_));
        if let Some(req) = self.attempt(req, None, send) {
            self.parked.push((req, Instant::now()));
        }
        if self.parked.is_empty() {
            return;
        }
        let mut changed = leave || (self.core.state().version(), self.core.stopped()) != before;
        while changed && !self.parked.is_empty() {
            let before = (self.core.state().version(), self.core.stopped());
            std::mem::swap(&mut self.parked, &mut self.spare);
            let mut spare = std::mem::take(&mut self.spare);
            for (req, since) in spare.drain(..) {
                if let Some(req) = self.attempt(req, Some(since), send) {
                    self.parked.push((req, since));
                }
            }
            self.spare = spare;
            changed = (self.core.state().version(), self.core.stopped()) != before;
        }
    }

    /// Tries a request; gives it back when it must wait.
    fn attempt(
        &mut self,
        req: Request,
        since: Option<Instant>,
        send: &mut impl FnMut(usize, Reply),
    ) -> Option<Request> {
        let waited = || since.map_or(0, |t| t.elapsed().as_nanos() as u64);
        match req {
            Request::Fetch { worker, mut buf } => match self.core.try_fetch(worker, &mut buf) {
                Poll::Wait => Some(Request::Fetch { worker, buf }),
                p => {
                    let (version, stopped) = match p {
                        Poll::Ready(v) => (v, false),
                        _ => (0, true),
                    };
                    let reply = FetchReply {
                        version,
                        waited_ns: waited(),
                        stopped,
                    };
                    send(worker, Reply::Fetched { buf, reply });
                    None
                }
            },
            Request::Push {
                worker,
                gradient,
                params,
                version,
            } => match self.core.try_push(worker, &gradient, &params, version) {
                Poll::Wait => Some(Request::Push {
                    worker,
                    gradient,
                    params,
                    version,
                }),
                p => {
                    let (outcome, stopped) = match p {
                        Poll::Ready(o) => (o, false),
                        _ => (Pushed::Accepted { staleness: 0 }, true),
                    };
                    let reply = PushReply {
                        staleness: outcome.staleness().unwrap_or(0),
                        outcome,
                        waited_ns: waited(),
                        stopped,
                    };
                    send(
                        worker,
                        Reply::Pushed {
                            gradient,
                            params,
                            reply,
                        },
                    );
                    None
                }
            },
            Request::PushFetch {
                worker,
                gradient,
                mut params,
                version,
                pushed,
            } => {
                let push = match pushed {
                    Some(p) => p,
                    None => match self.core.try_push(worker, &gradient, &params, version) {
                        Poll::Wait => {
                            return Some(Request::PushFetch {
                                worker,
                                gradient,
                                params,
                                version,
                                pushed: None,
                            })
                        }
                        Poll::Ready(outcome) => PushReply {
                            staleness: outcome.staleness().unwrap_or(0),
                            outcome,
                            waited_ns: waited(),
                            stopped: false,
                        },
                        Poll::Stopped => PushReply {
                            staleness: 0,
                            outcome: Pushed::Accepted { staleness: 0 },
                            waited_ns: waited(),
                            stopped: true,
                        },
                    },
                };
                let fetch = match self.core.try_fetch(worker, &mut params) {
                    Poll::Wait => {
                        return Some(Request::PushFetch {
                            worker,
                            gradient,
                            params,
                            version,
                            pushed: Some(push),
                        })
                    }
                    Poll::Ready(v) => FetchReply {
                        version: v,
                        waited_ns: waited().saturating_sub(push.waited_ns),
                        stopped: false,
                    },
                    Poll::Stopped => FetchReply {
                        version,
                        waited_ns: 0,
                        stopped: true,
                    },
                };
                send(
                    worker,
                    Reply::PushedFetched {
                        gradient,
                        params,
                        push,
                        fetch,
                    },
                );
                None
            }
            Request::Leave { worker } => {
                self.core.leave(worker);
                None
            }
            Request::Halt(reason) => {
                self.core.halt(reason);
                None
            }
        }
    }
}
