//! Sweeps over grids of configurations, the named scenarios of
//! EXPERIMENTS.md, and the writers of their results (CSV/JSON, SVG, HTML).
//! The engines that drive single runs live in `psim-engine`.
//!
//! The CLI is a thin layer over this crate: `psim run` and `psim sweep` call
//! [`durable::run_durable`] (each point written as it finishes) and
//! [`output::write_sweep`]; `psim reproduce NAME` looks the scenario up in
//! [`catalogue`].

pub mod catalogue;
pub mod durable;
pub mod experiments;
pub mod output;
pub mod plot;
pub mod report;
pub mod sweep;
pub mod verdict;
