//! The named scenarios of EXPERIMENTS.md: `psim reproduce NAME`.
//!
//! A scenario is an [`Experiment`] with embedded defaults (the paper's
//! parameters, and stated choices where the paper is silent) plus the
//! analysis and terminal report that show its headline.

use crate::output::{write_sweep, OutputDir, OutputError};
use crate::sweep::{run_sweep, SweepError, SweepOptions};
use crate::tradeoff::{analyse, TradeoffRow};
use psim_common::{Delay, Experiment, Grid, ObjectiveConfig, PcaConfig, RunConfig, TradeoffRule};
use std::fmt::Write;
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
        &Tradeoff,
        &crate::studies::three_phases::ThreePhasesScenario,
        &crate::studies::escape::SaddleEscapeScenario,
        &crate::studies::spiky::SpikyScenario,
        &crate::studies::escape::EscapeTimesScenario,
        &crate::momentum_vs_workers::MomentumVsWorkers,
    ]
}

/// The scenario called `name`.
pub fn find(name: &str) -> Option<&'static dyn Scenario> {
    catalogue().into_iter().find(|s| s.name() == name)
}

/// E1: the momentum–delay tradeoff of 001 §5.1, Figure 1.
pub struct Tradeoff;

/// The paper's reading of Figure 1: (μ, optimal delay).
pub const PAPER_OPTIMAL_DELAYS: [(f64, f64); 5] = [
    (0.7, 120.0),
    (0.8, 80.0),
    (0.85, 60.0),
    (0.9, 30.0),
    (0.95, 10.0),
];

impl Scenario for Tradeoff {
    fn name(&self) -> &'static str {
        "tradeoff"
    }

    fn title(&self) -> &'static str {
        "E1 · momentum–delay tradeoff: optimal delay per μ (001 §5.1, Figure 1)"
    }

    fn experiment(&self) -> Experiment {
        Experiment {
            name: "tradeoff".into(),
            base: RunConfig {
                momentum: 0.9,
                step_size: 5e-4,
                steps: 20_000,
                delay: Delay::constant(0),
                runs: 100,
                seed: 2018,
                record_every: 100,
                tail_fraction: 0.25,
                objective: ObjectiveConfig::Pca(PcaConfig::default()),
                ..RunConfig::default()
            },
            grid: Grid {
                momentum: vec![0.7, 0.8, 0.85, 0.9, 0.95],
                step_size: vec![],
                delay: (0..=16).map(|k| Delay::constant(10 * k)).collect(),
            },
            tradeoff: Some(TradeoffRule::default()),
        }
    }

    fn run(
        &self,
        experiment: &Experiment,
        out: &OutputDir,
        opts: &SweepOptions<'_>,
    ) -> Result<String, ScenarioError> {
        let rule = experiment.tradeoff.unwrap_or_default();
        let sweep = run_sweep(experiment, opts)?;
        let rows = analyse(&sweep, &rule);
        write_sweep(out, &sweep, Some(&rows))?;
        Ok(tradeoff_report(
            experiment,
            &rows,
            &rule,
            sweep.wall_seconds,
            sweep.threads,
        ))
    }
}

/// The terminal report of a tradeoff experiment.
pub fn tradeoff_report(
    e: &Experiment,
    rows: &[TradeoffRow],
    rule: &TradeoffRule,
    wall: f64,
    threads: usize,
) -> String {
    let b = &e.base;
    let mut s = String::new();
    let _ = writeln!(s, "E1 · momentum–delay tradeoff (001 §5.1, Figure 1)");
    let problem = match &b.objective {
        ObjectiveConfig::Pca(p) => match &p.covariance {
            Some(_) => format!(
                "streaming PCA, full covariance (d = {}), {:?} data, start {}",
                p.dim(),
                p.data,
                p.init
            ),
            None => format!(
                "streaming PCA, Σ = diag({}), {:?} data, start {}",
                p.spectrum
                    .iter()
                    .map(|x| x.to_string())
                    .collect::<Vec<_>>()
                    .join(", "),
                p.data,
                p.init
            ),
        },
        #[allow(unreachable_patterns)]
        _ => "objective as configured".into(),
    };
    let _ = writeln!(s, "{problem}");
    let _ = writeln!(
        s,
        "{} runs × {} steps per point, error = mean over the last {}% of steps; seed {}",
        b.runs,
        b.steps,
        b.tail_fraction * 100.0,
        b.seed
    );
    let _ = writeln!(s, "rule: optimal delay = largest τ such that it and every smaller τ has no diverged run and mean error ≤ {}× the τ = {} error", rule.factor, rows.first().and_then(|r| r.errors.first()).map_or(0.0, |e| e.delay));
    let _ = writeln!(s, "theory: OU stationary error at τ = 0; largest stable delay of the linearised delayed heavy ball of the stiffest mode (curvature 2λ₁)");
    let _ = writeln!(s, "ran in {wall:.2} s on {threads} threads\n");
    let _ = writeln!(
        s,
        "{:>6} {:>9} | {:>11} {:>11} {:>7} | {:>9} {:>7} {:>12}",
        "μ", "η", "τ=0 error", "OU theory", "ratio", "optimal τ", "paper", "stable τ <="
    );
    for r in rows {
        let paper = PAPER_OPTIMAL_DELAYS
            .iter()
            .find(|(m, _)| (m - r.momentum).abs() < 1e-9 && (r.step_size - 5e-4).abs() < 1e-12)
            .map_or("–".to_string(), |(_, d)| d.to_string());
        let ou = r.theory_ou_error.unwrap_or(f64::NAN);
        let _ = writeln!(
            s,
            "{:>6} {:>9} | {:>11.5} {:>11.5} {:>7.3} | {:>9} {:>7} {:>12}",
            r.momentum,
            r.step_size,
            r.baseline_error,
            ou,
            r.baseline_error / ou,
            r.optimal_delay.map_or("none".into(), |d| d.to_string()),
            paper,
            r.theory_max_stable_delay
                .map_or("unstable".into(), |d| d.to_string())
        );
    }
    let _ = writeln!(s, "\nmean error per delay (ratio to τ = 0 in parentheses; † = some runs diverged, count after it)");
    let _ = write!(s, "{:>6}", "τ");
    for r in rows {
        let _ = write!(s, " {:>18}", format!("μ={} η={}", r.momentum, r.step_size));
    }
    let _ = writeln!(s);
    let n = rows.iter().map(|r| r.errors.len()).max().unwrap_or(0);
    for i in 0..n {
        let tau = rows
            .iter()
            .find_map(|r| r.errors.get(i))
            .map_or(f64::NAN, |e| e.delay);
        let _ = write!(s, "{tau:>6}");
        for r in rows {
            let cell = match r.errors.get(i) {
                Some(e) if e.diverged > 0 => format!("† {}/{}", e.diverged, b.runs),
                Some(e) => format!("{:.5} ({:.2})", e.mean_error, e.ratio),
                None => String::new(),
            };
            let _ = write!(s, " {cell:>18}");
        }
        let _ = writeln!(s);
    }
    s
}
