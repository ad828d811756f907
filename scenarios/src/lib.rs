//! Engines that drive whole runs, sweeps over grids of configurations, the
//! named scenarios of EXPERIMENTS.md, and the writers of their results.

pub mod engine;
pub mod momentum_vs_workers;
