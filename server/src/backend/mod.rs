//! Concurrent parameter servers: many workers fetch and push at once.
//!
//! Every back-end wraps the same [`ServerCore`] (the [`ServerState`] of the
//! other engines plus the consistency rules of ASP, SSP(s) and BSP), so they
//! differ only in how workers reach it:
//!
//! * [`LockServer`]: the core behind a `parking_lot` mutex; a worker applies
//!   its own push while holding the lock, and waits on a condvar.
//! * [`ChannelServer`]: a dedicated server thread owns the core and serves
//!   requests from a crossbeam channel; waiting requests are parked in the
//!   server thread and answered when they can proceed.
//! * [`TaskServer`]: the same server loop as a tokio task fed by a tokio
//!   mpsc channel, for workers that are tokio tasks.
//!
//! A worker talks to a back-end through a per-worker client that owns its
//! copy of the parameters, so neither side allocates per step: the channel
//! back-ends pass the buffers back and forth inside the messages.
//!
//! [`ServerState`]: crate::ServerState

mod channel;
mod core;
pub(crate) mod dispatch;
mod lock;
mod task;

pub use self::channel::{ChannelClient, ChannelServer};
pub use self::core::{CancelFlags, Monitor, Poll, Pushed, ServerCore, StepLimit, StopReason};
pub use self::lock::{LockClient, LockServer};
pub use self::task::{TaskClient, TaskServer};

/// What a fetch returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FetchReply {
    /// Version of the parameters now in the client's copy (meaningless
    /// when `stopped`).
    pub version: u64,
    /// Nanoseconds the consistency model made the worker wait (SSP, BSP).
    pub waited_ns: u64,
    /// The run has stopped: the worker should leave.
    pub stopped: bool,
}

/// What a push returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PushReply {
    /// Updates applied between the fetch and this push (0 under BSP,
    /// m-sync and Rennala; meaningless unless `outcome` is accepted).
    pub staleness: u64,
    /// Accepted, or discarded or cancelled by the policy (meaningless when
    /// `stopped`). A cancelled push was not received: the worker does not
    /// count it as sent.
    pub outcome: Pushed,
    /// Nanoseconds the consistency model made the worker wait (SSP order).
    pub waited_ns: u64,
    /// The run had stopped: the push was counted as `dropped_after_stop`.
    pub stopped: bool,
}

/// One worker's connection to a blocking back-end: a fetch fills the
/// client's own copy of the parameters; a push sends a gradient computed on
/// that copy, with its version.
pub trait ServerClient: Send {
    /// Fetches the current parameters (waiting as the consistency model says).
    fn fetch(&mut self) -> FetchReply;
    /// The client's copy of the parameters, as of the last fetch.
    fn params(&self) -> &[f64];
    /// Pushes `gradient`, computed on [`ServerClient::params`].
    fn push(&mut self, gradient: &[f64]) -> PushReply;
    /// Pushes `gradient` and fetches the parameters after it in one
    /// operation (one round trip, or one lock hold): the usual step.
    fn push_fetch(&mut self, gradient: &[f64]) -> (PushReply, FetchReply) {
        let push = self.push(gradient);
        let fetch = self.fetch();
        (push, fetch)
    }
    /// Leaves the run (after the stop, or on failure): releases whatever the
    /// consistency model holds for this worker.
    fn leave(&mut self);
}

#[inline]
fn elapsed_ns(since: Option<std::time::Instant>) -> u64 {
    since.map_or(0, |t| t.elapsed().as_nanos() as u64)
}
