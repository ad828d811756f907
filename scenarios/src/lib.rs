//! Sweeps over grids of configurations, the named scenarios of
//! EXPERIMENTS.md, and the writers of their results (CSV/JSON, SVG, HTML).
//! The engines that drive single runs live in `psim-engine`.
//!
//! Every face (the CLI's commands, the Python package) runs an experiment
//! the same way: [`catalogue::study_of`] names what runs and analyses it (a
//! named scenario, the tradeoff, or a plain sweep), its
//! [`catalogue::Scenario::plan`] lists the points, and
//! [`executor::run_in_dir`] runs them (each point written as it finishes)
//! and hands the finished points to the scenario's analysis.

pub mod advise;
pub mod catalogue;
pub mod durable;
pub mod executor;
pub mod experiments;
pub mod output;
pub mod parquet;
pub mod plan;
pub mod plot;
pub mod report;
pub mod sweep;
pub mod verdict;
