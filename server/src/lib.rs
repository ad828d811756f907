//! The parameter server's state: parameters, momentum state, version,
//! a bounded history of past versions and the counters that prove no push
//! is lost.
//!
//! [`ServerState`] is plain data with `&mut self` methods: it does no
//! locking and spawns nothing. The engines wrap it: the injected-staleness
//! and virtual-time engines own it in one thread; the concurrent back-ends
//! (a lock, a server thread fed by channels, a tokio task) put it behind
//! their own synchronisation. That way every engine applies exactly the same
//! update, and a bug in the update shows up in the fast deterministic tests.
//!
//! The [`backend`] module holds the concurrent servers of the threads and
//! tasks engines: the same state behind a lock, a server thread fed by
//! crossbeam channels, or a tokio task, with the ASP/SSP/BSP rules.
//!
//! Not for: choosing what staleness a push has (engines decide) or deciding
//! when a run ends (engines again).

pub mod backend;
pub mod history;
pub mod rule;
pub mod state;

pub use history::History;
pub use rule::{HeavyBall, Rule, StepContext, UpdateRule};
pub use state::{Served, ServerState};
