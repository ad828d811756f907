//! Engines that drive whole runs, sweeps over grids of configurations, the
//! named scenarios of EXPERIMENTS.md, and the writers of their results.
//!
//! The CLI is a thin layer over this crate: `psim run` and `psim sweep` call
//! [`sweep::run_sweep`] and [`output::write_sweep`]; `psim reproduce NAME`
//! looks the scenario up in [`catalogue`].

pub mod catalogue;
pub mod engine;
pub mod momentum_vs_workers;
pub mod output;
pub mod plot;
pub mod report;
pub mod speedup;
pub mod studies;
pub mod sweep;
pub mod tradeoff;
