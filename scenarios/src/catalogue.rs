//! The catalogue of named scenarios (`psim reproduce NAME`): the one
//! [`Scenario`] trait every experiment of `crate::experiments` implements.
//!
//! A scenario is an [`Experiment`] with embedded defaults (the paper's
//! parameters, and stated choices where the paper is silent) plus the
//! analysis and terminal report that show its headline.

use crate::output::{OutputDir, OutputError};
use crate::sweep::{SweepError, SweepOptions};
use psim_common::Experiment;
use thiserror::Error;

/// Why a scenario failed.
#[derive(Debug, Error)]
pub enum ScenarioError {
    /// The sweep failed.
    #[error(transparent)]
    Sweep(#[from] SweepError),
    /// Results could not be written.
    #[error(transparent)]
    Output(#[from] OutputError),
    /// The experiment does not fit the scenario.
    #[error("{0}")]
    Unsuitable(String),
}

/// A named, reproducible experiment.
pub trait Scenario: Sync {
    /// The name used on the command line.
    fn name(&self) -> &'static str;
    /// One line for `psim reproduce --list`.
    fn title(&self) -> &'static str;
    /// The experiment with its embedded defaults.
    fn experiment(&self) -> Experiment;
    /// How many runs `experiment` will execute (for the progress bar).
    fn total_runs(&self, experiment: &Experiment) -> u64 {
        experiment.points().len() as u64 * experiment.base.runs as u64
    }
    /// Runs `experiment` (the defaults, possibly overridden), writes its
    /// results to `out` and returns the report to print.
    fn run(
        &self,
        experiment: &Experiment,
        out: &OutputDir,
        opts: &SweepOptions<'_>,
    ) -> Result<String, ScenarioError>;
}

/// Every scenario psim knows.
pub fn catalogue() -> Vec<&'static dyn Scenario> {
    vec![
        &crate::experiments::tradeoff::Tradeoff,
        &crate::experiments::three_phases::ThreePhasesScenario,
        &crate::experiments::escape::SaddleEscapeScenario,
        &crate::experiments::spiky::SpikyScenario,
        &crate::experiments::escape::EscapeTimesScenario,
        &crate::experiments::momentum_vs_workers::MomentumVsWorkers,
    ]
}

/// The scenario called `name`.
pub fn find(name: &str) -> Option<&'static dyn Scenario> {
    catalogue().into_iter().find(|s| s.name() == name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_scenario_passes_preflight_at_its_defaults() {
        for s in catalogue() {
            crate::sweep::preflight(&s.experiment())
                .unwrap_or_else(|e| panic!("{}: {e}", s.name()));
        }
    }
}
