//! Engines: what drives a whole run. Each produces a [`psim_common::RunResult`].

pub mod injected;

pub use injected::run_injected;
