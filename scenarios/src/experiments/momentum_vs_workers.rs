//! Experiment E2 (001 §5.2, Figure 2): the optimal momentum falls as the
//! number of asynchronous workers grows.
//!
//! The paper tuned μ ∈ {0.1, 0.3, 0.5, 0.7, 0.9} for a ResNet on CIFAR-100
//! with 1 and 8 workers. Here a small MLP learns the 8×8 handwritten digits
//! through the virtual-time engine: M equal-speed workers with a constant
//! compute time, so every gradient after the first round is exactly M−1
//! versions stale. Every (η, workers, μ) cell runs several seeds for the
//! same number of server updates; the report is the held-out accuracy at
//! the end (mean and spread over seeds) and the best μ per worker count,
//! for each of several step sizes.
//!
//! The paper reads 0.9 at 1 worker and 0.5 at 8. Where the best μ drops is
//! not a property of the worker count alone: the staleness a given μ
//! tolerates shrinks as η grows (E1: the stable delay scales like 1/η; 001's
//! bound like (1−μ)²/η^{1−γ}), so a larger η moves the drop to fewer workers. What holds at every step size is the paper's trend: the best μ
//! never rises as workers are added, and μ = 0.9 loses accuracy between 1
//! and the most workers.

use crate::catalogue::{Scenario, ScenarioError};
use crate::executor::{Plan, Points};
use crate::output::OutputDir;
use crate::plot::{Plot, Series};
use crate::sweep::{run_plan, SweepError, SweepOptions, SweepResult};
use psim_common::{
    ClusterConfig, Consistency, Delay, EngineConfig, EngineKind, Experiment, Grid, MlpActivation,
    MlpConfig, ObjectiveConfig, RunConfig, Setting, VirtualTimeConfig,
};
use serde::Serialize;
use std::fmt::Write as _;

/// The settings of one E2 sweep; [`E2Settings::default`] is the scenario
/// `momentum-vs-workers`, [`E2Settings::quick`] a small version for tests.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct E2Settings {
    /// Worker counts M.
    pub workers: Vec<usize>,
    /// Momentum values μ.
    pub momenta: Vec<f64>,
    /// Seeds (independent runs) per cell.
    pub seeds: u32,
    /// Server updates per run (the same for every M: a fixed budget of
    /// gradients, as with a fixed number of epochs).
    pub steps: u64,
    /// Step sizes η: one table per η.
    pub step_sizes: Vec<f64>,
    /// The network and its mini-batch.
    pub mlp: MlpConfig,
    /// Master seed.
    pub seed: u64,
}

impl Default for E2Settings {
    /// workers {1,2,4,8,16} × μ {0.1,…,0.9} × η {0.01, 0.02, 0.05} × 8
    /// seeds; 64-32-10 ReLU MLP, batches of 16, 1500 updates.
    fn default() -> Self {
        Self {
            workers: vec![1, 2, 4, 8, 16],
            momenta: vec![0.1, 0.3, 0.5, 0.7, 0.9],
            seeds: 8,
            steps: 1500,
            step_sizes: vec![0.01, 0.02, 0.05],
            mlp: MlpConfig {
                hidden: vec![32],
                batch: 16,
                activation: MlpActivation::Relu,
                data: None,
            },
            seed: 2,
        }
    }
}

impl E2Settings {
    /// A small version for tests: workers {1, 16}, the same μ grid, η = 0.02, fewer seeds.
    pub fn quick() -> Self {
        Self {
            workers: vec![1, 16],
            seeds: 4,
            step_sizes: vec![0.02],
            ..Self::default()
        }
    }

    /// The experiment (a μ × η grid) at `workers` workers: what one row of
    /// the tables runs through [`run_sweep`].
    pub fn experiment(&self, workers: usize) -> Experiment {
        Experiment {
            name: "momentum-vs-workers".into(),
            base: self.config(workers, self.momenta[0], self.step_sizes[0]),
            grid: Grid {
                momentum: self.momenta.clone(),
                step_size: self.step_sizes.clone(),
                ..Grid::default()
            },
            tradeoff: None,
        }
    }

    /// Reads the settings back from an experiment (the scenario's defaults
    /// with command-line overrides): μ grid, runs (seeds), steps, η grid, seed and
    /// network from it; the worker counts are the powers of two up to
    /// `cluster.workers`.
    pub fn from_experiment(e: &Experiment) -> Result<Self, ScenarioError> {
        let b = &e.base;
        let ObjectiveConfig::Mlp(mlp) = &b.objective else {
            return Err(ScenarioError::Unsuitable(
                "momentum-vs-workers needs the MLP objective (kind = \"mlp\")".into(),
            ));
        };
        let workers = std::iter::successors(Some(1usize), |w| w.checked_mul(2))
            .take_while(|&w| w <= b.cluster().map_or(1, |c| c.workers).max(1))
            .collect();
        Ok(Self {
            workers,
            momenta: if e.grid.momentum.is_empty() {
                vec![b.momentum]
            } else {
                e.grid.momentum.clone()
            },
            seeds: b.runs,
            steps: b.steps,
            step_sizes: if e.grid.step_size.is_empty() {
                vec![b.step_size]
            } else {
                e.grid.step_size.clone()
            },
            mlp: mlp.clone(),
            seed: b.seed,
        })
    }

    /// The run configuration of one cell.
    pub fn config(&self, workers: usize, momentum: f64, step_size: f64) -> RunConfig {
        RunConfig {
            momentum,
            step_size,
            steps: self.steps,
            runs: self.seeds,
            seed: self.seed,
            record_every: self.steps,
            tail_fraction: 1.0 / self.steps as f64,
            divergence_norm: 1e6,
            engine: EngineConfig::VirtualTime(VirtualTimeConfig {
                cluster: ClusterConfig {
                    workers,
                    compute_time: Delay::Constant(1.0),
                    network_delay: Delay::Constant(0.0),
                    consistency: Consistency::Asp,
                    stragglers: None,
                    worker_compute: None,
                    record_pushes: false,
                },
            }),
            objective: ObjectiveConfig::Mlp(self.mlp.clone()),
            ..RunConfig::default()
        }
    }
}

/// The accuracy a diverged run is scored with: chance on 10 classes.
pub const CHANCE: f64 = 0.1;

/// One (η, workers, μ) cell of the tables.
#[derive(Debug, Clone, Serialize)]
pub struct E2Cell {
    /// Step size η.
    pub step_size: f64,
    /// Worker count M.
    pub workers: usize,
    /// Momentum μ.
    pub momentum: f64,
    /// Held-out accuracy of every seed (diverged runs score [`CHANCE`]).
    pub accuracies: Vec<f64>,
    /// Mean accuracy.
    pub mean: f64,
    /// Sample standard deviation over seeds.
    pub sd: f64,
    /// Runs that diverged.
    pub diverged: usize,
    /// Mean staleness of the applied gradients.
    pub mean_staleness: f64,
}

/// The whole E2 result.
#[derive(Debug, Clone, Serialize)]
pub struct E2Report {
    /// What was run.
    pub settings: E2Settings,
    /// Cells by worker count, then μ, then η (grid order of each sweep).
    pub cells: Vec<E2Cell>,
    /// Wall-clock seconds of all sweeps.
    pub wall_seconds: f64,
}

impl E2Settings {
    /// The plan: one μ × η grid per worker count, in the order of
    /// [`E2Settings::workers`] (runs read back by the analysis).
    pub fn plan(&self) -> Plan {
        let mut plan = Plan {
            points: Points::default(),
            columns: Vec::new(),
            rows: true,
            batch: true,
        };
        for &m in &self.workers {
            plan.points.extend(Plan::sweep(&self.experiment(m)).points);
        }
        plan
    }
}

/// Runs the E2 sweep through the executor (in memory): one μ × η grid per
/// worker count; deterministic.
pub fn run_e2(settings: &E2Settings, opts: &SweepOptions<'_>) -> Result<E2Report, SweepError> {
    let plan = settings.plan();
    let done = run_plan(&settings.experiment(settings.workers[0]), &plan, None, opts)?;
    Ok(analyse_e2(settings, &done))
}

/// The E2 tables from the finished points of [`E2Settings::plan`].
pub fn analyse_e2(settings: &E2Settings, done: &SweepResult) -> E2Report {
    let _span = tracing::info_span!("momentum_vs_workers").entered();
    let mut cells = Vec::with_capacity(settings.workers.len() * settings.momenta.len());
    let per = done.points.len() / settings.workers.len().max(1);
    for (i, &m) in settings.workers.iter().enumerate() {
        for p in &done.points[i * per..(i + 1) * per] {
            let accuracies: Vec<f64> = p
                .rows
                .iter()
                .map(|r| {
                    if r.outcome.diverged() {
                        CHANCE
                    } else {
                        1.0 - r.final_error
                    }
                })
                .collect();
            let (mean, sd) = mean_sd(&accuracies);
            cells.push(E2Cell {
                step_size: p.summary.step_size,
                workers: m,
                momentum: p.summary.momentum,
                mean,
                sd,
                accuracies,
                diverged: p.summary.diverged,
                mean_staleness: p.summary.staleness.mean,
            });
        }
    }
    E2Report {
        settings: settings.clone(),
        cells,
        wall_seconds: done.wall_seconds,
    }
}

fn mean_sd(x: &[f64]) -> (f64, f64) {
    let n = x.len() as f64;
    let mean = x.iter().sum::<f64>() / n;
    let var = if x.len() > 1 {
        x.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1.0)
    } else {
        0.0
    };
    (mean, var.sqrt())
}

impl E2Report {
    /// The cell of (workers, μ) at the first step size.
    pub fn cell(&self, workers: usize, momentum: f64) -> Option<&E2Cell> {
        self.cell_at(self.settings.step_sizes[0], workers, momentum)
    }

    /// The cell of (η, workers, μ).
    pub fn cell_at(&self, step_size: f64, workers: usize, momentum: f64) -> Option<&E2Cell> {
        self.cells
            .iter()
            .find(|c| c.step_size == step_size && c.workers == workers && c.momentum == momentum)
    }

    /// The μ of highest mean accuracy for every worker count, in order, at
    /// the first step size.
    pub fn best_momentum(&self) -> Vec<(usize, f64)> {
        self.best_momentum_at(self.settings.step_sizes[0])
    }

    /// The μ of highest mean accuracy for every worker count at `step_size`.
    pub fn best_momentum_at(&self, step_size: f64) -> Vec<(usize, f64)> {
        self.settings
            .workers
            .iter()
            .map(|&m| {
                let best = self
                    .cells
                    .iter()
                    .filter(|c| c.workers == m && c.step_size == step_size)
                    .max_by(|a, b| a.mean.total_cmp(&b.mean))
                    .expect("every (η, workers) has cells");
                (m, best.momentum)
            })
            .collect()
    }

    /// The paper's trend at `step_size`: the best μ never rises with M,
    /// and μ = 0.9 is worse at the most workers than at one.
    pub fn trend_holds_at(&self, step_size: f64) -> bool {
        let best = self.best_momentum_at(step_size);
        let monotone = best.windows(2).all(|w| w[1].1 <= w[0].1);
        let (lo, hi) = (
            *self.settings.workers.first().expect("workers"),
            *self.settings.workers.last().expect("workers"),
        );
        let worse = match (
            self.cell_at(step_size, lo, 0.9),
            self.cell_at(step_size, hi, 0.9),
        ) {
            (Some(a), Some(b)) => lo == hi || b.mean < a.mean,
            _ => true,
        };
        monotone && worse
    }

    /// Acceptance of 001 §5.2 at every step size: see [`Self::trend_holds_at`].
    pub fn trend_holds(&self) -> bool {
        self.settings
            .step_sizes
            .iter()
            .all(|&eta| self.trend_holds_at(eta))
    }

    /// The accuracy table at `step_size`: mean ± sd held-out accuracy (%)
    /// per (M, μ), the best μ per row marked with `*`.
    fn accuracy_table(&self, t: &mut String, step_size: f64) {
        let _ = write!(t, "| workers | staleness |");
        for mu in &self.settings.momenta {
            let _ = write!(t, " μ = {mu} |");
        }
        let _ = writeln!(t, " best μ |");
        let _ = write!(t, "|---|---|");
        for _ in &self.settings.momenta {
            let _ = write!(t, "---|");
        }
        let _ = writeln!(t, "---|");
        for (m, best) in self.best_momentum_at(step_size) {
            let row: Vec<&E2Cell> = self
                .cells
                .iter()
                .filter(|c| c.workers == m && c.step_size == step_size)
                .collect();
            let _ = write!(t, "| {m} | {:.2} |", row[0].mean_staleness);
            for c in &row {
                let star = if c.momentum == best { "*" } else { "" };
                let div = if c.diverged > 0 {
                    format!(" ({} div.)", c.diverged)
                } else {
                    String::new()
                };
                let _ = write!(
                    t,
                    " {:.1} ± {:.1}{star}{div} |",
                    100.0 * c.mean,
                    100.0 * c.sd
                );
            }
            let _ = writeln!(t, " {best} |");
        }
    }

    /// The headline tables: one accuracy table per η, the best μ versus
    /// workers for every η, the settings and the verdict.
    pub fn table(&self) -> String {
        let mut t = String::new();
        let s = &self.settings;
        for &eta in &s.step_sizes {
            let _ = writeln!(t, "\nη = {eta}:\n");
            self.accuracy_table(&mut t, eta);
        }
        let _ = writeln!(
            t,
            "\nbest μ versus workers (paper, ResNet on CIFAR-100: 0.9 at 1 worker, 0.5 at 8):\n"
        );
        let _ = write!(t, "| workers |");
        for eta in &s.step_sizes {
            let _ = write!(t, " η = {eta} |");
        }
        let _ = writeln!(t);
        let _ = write!(t, "|---|");
        for _ in &s.step_sizes {
            let _ = write!(t, "---|");
        }
        let _ = writeln!(t);
        let bests: Vec<Vec<(usize, f64)>> = s
            .step_sizes
            .iter()
            .map(|&eta| self.best_momentum_at(eta))
            .collect();
        for (i, m) in s.workers.iter().enumerate() {
            let _ = write!(t, "| {m} |");
            for b in &bests {
                let _ = write!(t, " {} |", b[i].1);
            }
            let _ = writeln!(t);
        }
        let _ = write!(t, "| trend holds |");
        for &eta in &s.step_sizes {
            let _ = write!(
                t,
                " {} |",
                if self.trend_holds_at(eta) {
                    "yes"
                } else {
                    "no"
                }
            );
        }
        let _ = writeln!(t);
        let _ = writeln!(
            t,
            "\nran {} runs in {:.1} s wall-clock",
            self.cells.len() * s.seeds as usize,
            self.wall_seconds
        );
        let _ = writeln!(
            t,
            "held-out accuracy in % (mean ± sd over {} seeds; * = best μ); MLP 64-{}-10 {:?}, \
             batch {}, η ∈ {:?}, {} updates per run, equal-speed workers (compute time 1 s, \
             no network delay) on the virtual-time engine, ASP; diverged runs score {}%.",
            s.seeds,
            s.mlp
                .hidden
                .iter()
                .map(|h| h.to_string())
                .collect::<Vec<_>>()
                .join("-"),
            s.mlp.activation,
            s.mlp.batch,
            s.step_sizes,
            s.steps,
            100.0 * CHANCE
        );
        let _ = writeln!(
            t,
            "where the best μ drops moves with η (the staleness a given μ tolerates shrinks as η grows, ∝ 1/η in E1); the paper's claim that holds is the trend."
        );
        let _ = writeln!(
            t,
            "headline (at every η the best μ is non-increasing in workers, and μ = 0.9 is worse at {} than at {} workers): {}",
            s.workers.last().unwrap_or(&0),
            s.workers.first().unwrap_or(&0),
            crate::verdict::verdict_word(self.trend_holds())
        );
        t
    }

    /// Held-out accuracy against workers at the middle step size, one line
    /// per μ with a ±sd band.
    pub fn plot(&self) -> Plot {
        let etas = &self.settings.step_sizes;
        let eta = etas[etas.len() / 2];
        let series = self
            .settings
            .momenta
            .iter()
            .map(|&mu| {
                let cells: Vec<&E2Cell> = self
                    .cells
                    .iter()
                    .filter(|c| c.momentum == mu && c.step_size == eta)
                    .collect();
                Series {
                    label: format!("μ = {mu}"),
                    points: cells
                        .iter()
                        .map(|c| (c.workers as f64, 100.0 * c.mean))
                        .collect(),
                    band: cells
                        .iter()
                        .map(|c| {
                            let x = c.workers as f64;
                            (x, 100.0 * (c.mean - c.sd), 100.0 * (c.mean + c.sd))
                        })
                        .collect(),
                    markers: true,
                    dashed: false,
                    color: None,
                }
            })
            .collect();
        Plot {
            title: format!(
                "E2 · held-out accuracy vs workers at η = {eta} (MLP on 8×8 digits, virtual time)"
            ),
            x_label: "workers M (staleness M − 1)".into(),
            y_label: "held-out accuracy, % (mean ± sd over seeds)".into(),
            log_x: true,
            log_y: false,
            series,
            vlines: vec![],
        }
    }

    /// The best μ against workers, one line per η.
    pub fn best_plot(&self) -> Plot {
        Plot {
            title: "E2 · best momentum vs workers, one line per step size".into(),
            x_label: "workers M".into(),
            y_label: "best μ (highest mean held-out accuracy)".into(),
            log_x: true,
            log_y: false,
            series: self
                .settings
                .step_sizes
                .iter()
                .map(|&eta| Series {
                    label: format!("η = {eta}"),
                    points: self
                        .best_momentum_at(eta)
                        .into_iter()
                        .map(|(m, mu)| (m as f64, mu))
                        .collect(),
                    markers: true,
                    ..Default::default()
                })
                .chain(std::iter::once(Series {
                    label: "paper (ResNet, CIFAR-100)".into(),
                    points: vec![(1.0, 0.9), (8.0, 0.5)],
                    markers: true,
                    dashed: true,
                    ..Default::default()
                }))
                .collect(),
            vlines: vec![],
        }
    }

    /// One CSV row per run: step size, workers, momentum, seed, accuracy.
    pub fn csv(&self) -> String {
        let mut t = String::from("step_size,workers,momentum,seed,accuracy\n");
        for c in &self.cells {
            for (r, a) in c.accuracies.iter().enumerate() {
                let _ = writeln!(
                    t,
                    "{},{},{},{},{}",
                    c.step_size, c.workers, c.momentum, r, a
                );
            }
        }
        t
    }
}

/// The scenario `momentum-vs-workers` (E2) for `psim reproduce`.
pub struct MomentumVsWorkers;

impl Scenario for MomentumVsWorkers {
    fn name(&self) -> &'static str {
        "momentum-vs-workers"
    }

    fn title(&self) -> &'static str {
        "E2 · the best momentum falls as workers grow: MLP on 8×8 digits (001 §5.2, Figure 2)"
    }

    fn experiment(&self) -> Experiment {
        let s = E2Settings::default();
        s.experiment(*s.workers.last().expect("workers"))
    }

    /// The cluster is the scenario's own (compute time 1, no network delay,
    /// ASP); `workers` is the largest count of the powers-of-two axis.
    fn accepts(&self) -> &'static [Setting] {
        use Setting::*;
        &[Momentum, StepSize, Steps, Runs, Seed, Workers, Objective]
    }

    fn engines(&self) -> &'static [EngineKind] {
        &[EngineKind::VirtualTime]
    }

    /// One μ × η grid per power-of-two worker count up to `workers` (the
    /// defaults at the largest; `--workers N` sets the largest).
    fn plan(&self, experiment: &Experiment) -> Result<Plan, ScenarioError> {
        Ok(E2Settings::from_experiment(experiment)?.plan())
    }

    fn analyse(
        &self,
        experiment: &Experiment,
        done: &SweepResult,
        out: &OutputDir,
    ) -> Result<String, ScenarioError> {
        let settings = E2Settings::from_experiment(experiment)?;
        let report = analyse_e2(&settings, done);
        out.write("runs.csv", report.csv())?;
        out.write_json("summary.json", &report)?;
        let table = report.table();
        out.write("table.md", &table)?;
        out.write("accuracy.svg", report.plot().to_svg())?;
        out.write("best-momentum.svg", report.best_plot().to_svg())?;
        Ok(format!(
            "E2 · momentum vs workers (001 §5.2, Figure 2)\n{table}"
        ))
    }
}
