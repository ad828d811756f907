//! The catalogue of named scenarios (`psim reproduce NAME`): the one
//! [`Scenario`] trait every experiment of `crate::experiments` implements.
//!
//! A scenario is an [`Experiment`] with embedded defaults (the paper's
//! parameters, and stated choices where the paper is silent) plus the
//! analysis and terminal report that show its headline.

use crate::executor::Plan;
use crate::output::{OutputDir, OutputError};
use crate::sweep::{SweepError, SweepResult};
use psim_common::config::setting::list;
use psim_common::{EngineKind, Experiment, RunConfig, RunResult, Setting};
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
    /// A setting the scenario does not use was given a value.
    #[error("`{key}` is not used by scenario `{scenario}`, so it is refused rather than ignored; {scenario} accepts: {accepts}")]
    Refused {
        /// The config key.
        key: &'static str,
        /// The scenario.
        scenario: &'static str,
        /// What it accepts.
        accepts: String,
    },
    /// The scenario cannot run on that engine.
    #[error("`--engine {engine}` (config `base.engine.kind`): scenario `{scenario}` runs on {engines} only")]
    Engine {
        /// The scenario.
        scenario: &'static str,
        /// The engine asked for.
        engine: EngineKind,
        /// The engines it runs on.
        engines: String,
    },
}

/// A named, reproducible experiment.
pub trait Scenario: Sync {
    /// The name used on the command line.
    fn name(&self) -> &'static str;
    /// One line for `psim reproduce --list`.
    fn title(&self) -> &'static str;
    /// The experiment with its embedded defaults, on its default engine.
    fn experiment(&self) -> Experiment;
    /// The settings the scenario honours: a flag or config key outside
    /// this set is refused with its name (see [`check`]).
    fn accepts(&self) -> &'static [Setting];
    /// The engines the scenario runs on (the first is its default).
    fn engines(&self) -> &'static [EngineKind] {
        &[EngineKind::Injected]
    }
    /// The experiment with its embedded defaults on `engine`, one of
    /// [`Scenario::engines`].
    fn experiment_on(&self, engine: EngineKind) -> Result<Experiment, ScenarioError> {
        let e = self.experiment();
        if e.base.engine_kind() == engine {
            Ok(e)
        } else {
            Err(self.wrong_engine(engine))
        }
    }
    /// The error for an engine the scenario does not run on.
    fn wrong_engine(&self, engine: EngineKind) -> ScenarioError {
        ScenarioError::Engine {
            scenario: self.name(),
            engine,
            engines: self
                .engines()
                .iter()
                .map(|k| k.to_string())
                .collect::<Vec<_>>()
                .join(", "),
        }
    }
    /// How many runs `experiment` will execute (for the progress bar).
    fn total_runs(&self, experiment: &Experiment) -> u64 {
        self.plan(experiment).map_or(0, |p| p.total_runs())
    }
    /// The points to run for `experiment` (the defaults, possibly
    /// overridden) and what the analysis needs of each run. The executor
    /// runs them, durably, resumably and by shards; the scenario has no
    /// run loop of its own.
    fn plan(&self, experiment: &Experiment) -> Result<Plan, ScenarioError> {
        Ok(Plan::sweep(experiment))
    }
    /// The values of [`Plan::columns`] for a finished run of plan point
    /// `point` (computed as the run finishes, stored in the point's runs
    /// file, read back by the analysis).
    fn measure(
        &self,
        _experiment: &Experiment,
        _point: usize,
        _config: &RunConfig,
        _run: &RunResult,
    ) -> Vec<f64> {
        Vec::new()
    }
    /// The analysis over the finished points (in plan order, read back
    /// from the store): writes the scenario's outputs to `out` and returns
    /// the report to print.
    fn analyse(
        &self,
        experiment: &Experiment,
        done: &SweepResult,
        out: &OutputDir,
    ) -> Result<String, ScenarioError>;

    /// The analysis for a study that reads each point once, in grid order
    /// (plain sweeps): `points` reads them back from disk one at a time, so
    /// memory does not grow with the number of points. `None`: the study
    /// needs all points at once ([`Scenario::analyse`]).
    fn analyse_streamed(
        &self,
        _experiment: &Experiment,
        _points: &mut dyn Iterator<
            Item = Result<crate::sweep::PointResult, crate::sweep::SweepError>,
        >,
        _run: (f64, usize),
        _out: &OutputDir,
    ) -> Option<Result<String, ScenarioError>> {
        None
    }
}

/// Checks that `e` changes, against the scenario's defaults on its engine,
/// only settings the scenario accepts; names the first key that it does not.
pub fn check(scenario: &dyn Scenario, e: &Experiment) -> Result<(), ScenarioError> {
    let kind = e.base.engine_kind();
    if !scenario.engines().contains(&kind) {
        return Err(scenario.wrong_engine(kind));
    }
    let defaults = scenario.experiment_on(kind)?;
    for s in Setting::ALL {
        if !scenario.accepts().contains(&s) && s.value(e) != s.value(&defaults) {
            return Err(ScenarioError::Refused {
                key: s.key(),
                scenario: scenario.name(),
                accepts: list(scenario.accepts()),
            });
        }
    }
    Ok(())
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
        &crate::experiments::speedup::Speedup,
        &crate::experiments::heterogeneous::Heterogeneous,
        &crate::experiments::phase_diagram::PhaseDiagramScenario,
    ]
}

/// The scenario called `name`.
pub fn find(name: &str) -> Option<&'static dyn Scenario> {
    catalogue().into_iter().find(|s| s.name() == name)
}

/// What runs `e` and analyses it: the named scenario its name refers to,
/// the tradeoff analysis when it has one (`psim sweep --optimal-delay`),
/// otherwise a plain sweep.
pub fn study_of(e: &Experiment) -> &'static dyn Scenario {
    match find(&e.name) {
        Some(s) => s,
        None if e.tradeoff.is_some() => &crate::experiments::tradeoff::Tradeoff,
        None => &crate::experiments::plain::PlainSweep,
    }
}

/// The plan of `e` (see [`study_of`]).
pub fn plan_of(e: &Experiment) -> Result<Plan, ScenarioError> {
    study_of(e).plan(e)
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
