//! The phase diagram of momentum and asynchrony (`psim reproduce
//! phase-diagram`): heatmaps of the error ratio to τ = 0 over μ × constant
//! delay, μ × random delay of the same mean (uniform on 0…2τ) and μ ×
//! workers M on the virtual-time engine with exponential compute times,
//! each with its predicted stability boundary drawn over it:
//!
//! * constant delays: the root crossing of the linearised delayed heavy
//!   ball of the stiffest mode ([`max_stable_delay`]);
//! * random delays: 001 §4's reading (the condition moves to E[τ], so the
//!   constant boundary at the mean) and the expected recursion with the
//!   delay averaged out ([`max_stable_mean_delay`]);
//! * workers: the constant boundary at τ = M − 1 and the expected recursion
//!   of geometric staleness, which carries the implicit momentum 1 − 1/M
//!   ([`ClusterStaleness`]).
//!
//! What is measured: for streaming PCA the error (the angle to the top
//! eigenvector) does not see the stiffest mode, the radial one (‖v‖ → 1,
//! curvature 2λ₁). Past the boundary that mode oscillates with a growing
//! amplitude until the cubic term of Oja's drift bounds it (a Hopf
//! bifurcation): the runs rarely diverge, the norm oscillates. A cell is
//! therefore *unstable* when the median over runs of |‖v‖² − 1| at the end
//! is at least [`radial_edge`] (0.1, or 5× the row's first cell's), or
//! when more than half of its runs diverged; the measured edge of a μ row
//! is its first unstable cell.

use crate::catalogue::{Scenario, ScenarioError};
use crate::executor::Plan;
use crate::output::OutputDir;
use crate::sweep::{PointResult, SweepResult};
use psim_common::theory::{
    max_stable_delay, max_stable_mean_delay, pca_stiffest_curvature, ClusterStaleness, DelayFamily,
};
use psim_common::{
    ClusterConfig, Delay, EngineConfig, EngineKind, Experiment, Grid, ObjectiveConfig, PcaConfig,
    RunConfig, Setting, StreamingPca,
};
use serde::Serialize;
use std::fmt::Write;

/// The median |‖v‖² − 1| at which a cell counts as unstable (unless its
/// row's first cell already fluctuates more, see [`RADIAL_FACTOR`]). At
/// τ = 0 the radial fluctuation of E1's problem is 0.003–0.05 (μ = 0.5…
/// 0.975; it grows as η/(1−μ)) and, as the boundary nears, the stable
/// mode's stationary spread grows as 1/(distance to it), to about 0.05 one
/// grid step before it; past the boundary the oscillation saturates at
/// 0.2–0.6. 0.1 sits between the two.
pub const RADIAL_EDGE: f64 = 0.1;

/// A cell is also stable while its radial deviation is below this multiple
/// of its row's first cell's (τ = 0, M = 1): for μ → 1 the stationary
/// spread alone reaches [`RADIAL_EDGE`] / 2.
pub const RADIAL_FACTOR: f64 = 5.0;

/// The agreement the headline asks for: the predicted and the measured
/// edge within one grid step for at least this share of the μ rows.
pub const AGREEMENT_SHARE: f64 = 0.9;

/// The largest delay or worker count the predictions look at.
pub const PREDICTION_LIMIT: u64 = 1_000_000;

/// The worker counts of the cluster panel.
pub const WORKERS: [usize; 12] = [1, 2, 4, 8, 12, 16, 24, 32, 48, 64, 96, 128];

/// The cluster panel runs `runs / CLUSTER_RUNS_DIVISOR` runs per point (at
/// least 1): the virtual-time engine is not batched.
pub const CLUSTER_RUNS_DIVISOR: u32 = 4;

/// Which heatmap a point belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Panel {
    /// μ × constant delay τ (injected).
    Constant,
    /// μ × uniform delay on 0…2τ (injected, mean τ).
    Uniform,
    /// μ × workers M (virtual time, exponential compute times).
    Workers,
}

impl Panel {
    fn title(self) -> &'static str {
        match self {
            Panel::Constant => "μ × constant delay τ",
            Panel::Uniform => "μ × random delay uniform:0..2τ (mean τ)",
            Panel::Workers => "μ × workers M (virtual time, exponential compute times)",
        }
    }
    fn file(self) -> &'static str {
        match self {
            Panel::Constant => "phase-constant.svg",
            Panel::Uniform => "phase-uniform.svg",
            Panel::Workers => "phase-workers.svg",
        }
    }
    fn axis(self) -> &'static str {
        match self {
            Panel::Workers => "M",
            _ => "τ",
        }
    }
}

/// One cell of a heatmap.
#[derive(Debug, Clone, Serialize)]
pub struct Cell {
    /// The axis value (τ, or M).
    pub x: f64,
    /// Mean tail error over the non-diverged runs / the row's first cell's.
    pub ratio: f64,
    /// Diverged runs.
    pub diverged: usize,
    /// Runs.
    pub runs: usize,
    /// Median over runs of |‖v‖² − 1| at the end (∞ when half or more diverged).
    pub radial: f64,
    /// Whether the cell counts as unstable (module documentation).
    pub unstable: bool,
}

/// A predicted boundary of one row: the largest stable axis value.
#[derive(Debug, Clone, Serialize)]
pub struct Boundary {
    /// What predicts it.
    pub name: &'static str,
    /// Largest stable τ (or M); `None` when even the smallest is unstable.
    pub largest_stable: Option<f64>,
    /// Grid index of the first cell beyond it (the row length when none is).
    pub edge_index: usize,
    /// Whether it is within one grid step of the measured edge.
    pub agrees: bool,
}

/// One μ row of a heatmap.
#[derive(Debug, Clone, Serialize)]
pub struct Row {
    /// Momentum μ.
    pub momentum: f64,
    /// Cells in ascending axis order.
    pub cells: Vec<Cell>,
    /// Grid index of the first unstable cell (the row length when none is).
    pub measured_edge_index: usize,
    /// The predictions, the first being the one the panel's verdict uses.
    pub boundaries: Vec<Boundary>,
}

/// One heatmap.
#[derive(Debug, Clone, Serialize)]
pub struct PanelResult {
    /// Which one.
    pub panel: Panel,
    /// Its axis values.
    pub axis: Vec<f64>,
    /// Its rows, μ ascending.
    pub rows: Vec<Row>,
}

impl PanelResult {
    /// The share of rows whose boundary `b` (index into `boundaries`) agrees.
    pub fn agreement(&self, b: usize) -> f64 {
        let n = self.rows.len().max(1) as f64;
        self.rows
            .iter()
            .filter(|r| r.boundaries.get(b).is_some_and(|x| x.agrees))
            .count() as f64
            / n
    }
}

/// The phase diagram's result (`summary.json`).
#[derive(Debug, Clone, Serialize)]
pub struct PhaseDiagram {
    /// Step size η.
    pub step_size: f64,
    /// Curvature of the stiffest mode (2λ₁).
    pub curvature: f64,
    /// The three heatmaps.
    pub panels: Vec<PanelResult>,
    /// Wall seconds of the runs.
    pub wall_seconds: f64,
    /// Threads.
    pub threads: usize,
}

impl PhaseDiagram {
    /// The headline: on the constant-delay panel the root-crossing boundary
    /// agrees with the measured edge within one grid step for at least
    /// [`AGREEMENT_SHARE`] of the μ rows.
    pub fn headline_holds(&self) -> bool {
        self.panels
            .iter()
            .find(|p| p.panel == Panel::Constant)
            .is_some_and(|p| p.agreement(0) >= AGREEMENT_SHARE)
    }
}

/// The radial deviation |‖v‖² − 1| of a run's final parameters.
fn radial(params: &[f64]) -> f64 {
    (params.iter().map(|x| x * x).sum::<f64>() - 1.0).abs()
}

/// The median radial deviation of a finished point (∞ for diverged runs)
/// and whether more than half of its runs diverged.
pub fn point_radial(p: &PointResult) -> (f64, bool) {
    let runs = p.rows.len().max(1);
    let mut r: Vec<f64> = p
        .rows
        .iter()
        .map(|row| {
            if row.outcome.diverged() || row.params.is_empty() {
                f64::INFINITY
            } else {
                radial(&row.params)
            }
        })
        .collect();
    r.sort_by(|a, b| a.total_cmp(b));
    let median = r.get(r.len() / 2).copied().unwrap_or(f64::NAN);
    (median, 2 * p.summary.diverged > runs)
}

/// The radial deviation at which a cell of a row whose first cell (τ = 0,
/// or M = 1) has `baseline` counts as unstable: [`RADIAL_EDGE`], or
/// [`RADIAL_FACTOR`] × the baseline where that is larger (μ → 1, where the
/// stationary radial spread grows as η/(1−μ)).
pub fn radial_edge(baseline: f64) -> f64 {
    if baseline.is_finite() {
        RADIAL_EDGE.max(RADIAL_FACTOR * baseline)
    } else {
        RADIAL_EDGE
    }
}

/// The measured edge of a row of points in ascending axis order: the index
/// of its first unstable point (more than half the runs diverged, or the
/// median radial deviation at least [`radial_edge`] of the first point's;
/// the first point itself only by divergence), the row length when none is.
/// Returns the per-point (radial deviation, unstable) too.
pub fn measured_edge(points: &[&PointResult]) -> (usize, Vec<(f64, bool)>) {
    let marks: Vec<(f64, bool)> = points.iter().map(|p| point_radial(p)).collect();
    let edge = radial_edge(marks.first().map_or(f64::NAN, |m| m.0));
    let marks: Vec<(f64, bool)> = marks
        .iter()
        .enumerate()
        .map(|(i, &(r, diverged))| (r, diverged || (i > 0 && r >= edge)))
        .collect();
    let first = marks.iter().position(|m| m.1).unwrap_or(marks.len());
    (first, marks)
}

/// The first grid index whose value exceeds `largest` (all of them when
/// `largest` is `None`).
fn edge_of(axis: &[f64], largest: Option<f64>) -> usize {
    match largest {
        None => 0,
        Some(l) => axis.iter().position(|&x| x > l).unwrap_or(axis.len()),
    }
}

fn boundary(name: &'static str, axis: &[f64], largest: Option<f64>, measured: usize) -> Boundary {
    let edge_index = edge_of(axis, largest);
    Boundary {
        name,
        largest_stable: largest,
        edge_index,
        agrees: edge_index.abs_diff(measured) <= 1,
    }
}

/// The stiffest curvature of the experiment's streaming PCA.
fn stiffest(e: &Experiment) -> Result<f64, ScenarioError> {
    match &e.base.objective {
        ObjectiveConfig::Pca(cfg) => StreamingPca::new(cfg)
            .map(|p| pca_stiffest_curvature(p.eigenvalues()))
            .map_err(|err| ScenarioError::Unsuitable(err.to_string())),
        _ => Err(ScenarioError::Unsuitable(
            "phase-diagram needs a streaming PCA objective: what it measures is the radial mode ‖v‖ → 1".into(),
        )),
    }
}

/// The constant delays of the grid, refusing other models by name.
fn taus(e: &Experiment) -> Result<Vec<u64>, ScenarioError> {
    e.grid
        .delay
        .iter()
        .map(|d| match d {
            Delay::Constant(c) if c.fract() == 0.0 => Ok(*c as u64),
            other => Err(ScenarioError::Unsuitable(format!(
                "phase-diagram's delay grid is constant delays τ (the random-delay panel uses uniform:0..2τ of each); got {other}"
            ))),
        })
        .collect()
}

/// The three sub-experiments, in plan order: constant delays, uniform
/// delays of the same means, workers on virtual time.
pub fn panels(e: &Experiment) -> Result<[Experiment; 3], ScenarioError> {
    let taus = taus(e)?;
    let constant = e.clone();
    let uniform = Experiment {
        grid: Grid {
            delay: taus.iter().map(|&t| DelayFamily::Uniform.at(t)).collect(),
            ..e.grid.clone()
        },
        ..e.clone()
    };
    let workers = Experiment {
        base: RunConfig {
            runs: (e.base.runs / CLUSTER_RUNS_DIVISOR).max(1),
            engine: EngineConfig::new(
                EngineKind::VirtualTime,
                ClusterConfig {
                    workers: 1,
                    compute_time: Delay::Exponential { mean: 1.0 },
                    ..ClusterConfig::default()
                },
            ),
            ..e.base.clone()
        },
        grid: Grid {
            momentum: e.grid.momentum.clone(),
            workers: WORKERS.to_vec(),
            ..Grid::default()
        },
        ..e.clone()
    };
    Ok([constant, uniform, workers])
}

/// The one step size of the experiment (a grid of step sizes would put
/// two gains in one μ row, so it is refused by name).
fn step_size(e: &Experiment) -> Result<f64, ScenarioError> {
    match e.grid.step_size.as_slice() {
        [] => Ok(e.base.step_size),
        [eta] => Ok(*eta),
        more => Err(ScenarioError::Unsuitable(format!(
            "phase-diagram takes one step size (its boundaries depend on η); got a grid of {}",
            more.len()
        ))),
    }
}

/// The plan: the three panels' grids, one after the other.
pub fn plan(e: &Experiment) -> Result<Plan, ScenarioError> {
    stiffest(e)?;
    step_size(e)?;
    let mut plan = Plan {
        points: crate::plan::Points::default(),
        columns: Vec::new(),
        rows: true,
        batch: true,
    };
    for mut sub in panels(e)? {
        // Every run's final iterate is kept (the grid's points keep what
        // their configuration records).
        sub.base.record_params = true;
        plan.points.extend(Plan::sweep(&sub).points);
    }
    Ok(plan)
}

/// Builds one panel from its points.
fn panel(
    which: Panel,
    points: &[PointResult],
    axis_of: impl Fn(&PointResult) -> f64,
    predict: impl Fn(f64, &[f64], usize) -> Vec<Boundary>,
) -> PanelResult {
    let mut mus: Vec<f64> = points.iter().map(|p| p.summary.momentum).collect();
    mus.sort_by(|a, b| a.total_cmp(b));
    mus.dedup();
    let mut axis: Vec<f64> = points.iter().map(&axis_of).collect();
    axis.sort_by(|a, b| a.total_cmp(b));
    axis.dedup();
    let rows = mus
        .iter()
        .map(|&mu| {
            let mut pts: Vec<&PointResult> =
                points.iter().filter(|p| p.summary.momentum == mu).collect();
            pts.sort_by(|a, b| axis_of(a).total_cmp(&axis_of(b)));
            let base = pts.first().map_or(f64::NAN, |p| p.summary.error.mean);
            let (measured, marks) = measured_edge(&pts);
            let cells: Vec<Cell> = pts
                .iter()
                .zip(marks)
                .map(|(p, (radial, unstable))| Cell {
                    x: axis_of(p),
                    ratio: p.summary.error.mean / base,
                    diverged: p.summary.diverged,
                    runs: p.rows.len(),
                    radial,
                    unstable,
                })
                .collect();
            Row {
                momentum: mu,
                boundaries: predict(mu, &axis, measured),
                cells,
                measured_edge_index: measured,
            }
        })
        .collect();
    PanelResult {
        panel: which,
        axis,
        rows,
    }
}

/// The analysis over the finished points of [`plan`].
pub fn analyse(e: &Experiment, done: &SweepResult) -> Result<PhaseDiagram, ScenarioError> {
    let c = stiffest(e)?;
    let eta = step_size(e)?;
    let gain = eta * c;
    let subs = panels(e)?;
    let n: Vec<usize> = subs.iter().map(|s| s.points().len()).collect();
    let (a, rest) = done.points.split_at(n[0].min(done.points.len()));
    let (b, w) = rest.split_at(n[1].min(rest.len()));
    let mean_delay = |p: &PointResult| {
        p.config
            .injected()
            .and_then(|i| i.delay.mean_steps())
            .unwrap_or(f64::NAN)
    };
    let constant = panel(Panel::Constant, a, mean_delay, |mu, axis, m| {
        let t = max_stable_delay(mu, gain).map(|t| t as f64);
        vec![boundary("delayed heavy-ball roots", axis, t, m)]
    });
    let limit = PREDICTION_LIMIT;
    let uniform = panel(Panel::Uniform, b, mean_delay, |mu, axis, m| {
        let mean = max_stable_mean_delay(mu, gain, DelayFamily::Uniform, limit).map(|t| t as f64);
        let e_tau = max_stable_delay(mu, gain).map(|t| t as f64);
        vec![
            boundary("expected recursion", axis, mean, m),
            boundary("001 §4: E[τ] at the constant boundary", axis, e_tau, m),
        ]
    });
    let workers = panel(
        Panel::Workers,
        w,
        |p| p.summary.workers.unwrap_or(0) as f64,
        |mu, axis, m| {
            let implicit = ClusterStaleness::Exponential
                .max_stable_workers(mu, gain, limit)
                .map(|x| x as f64);
            let constant = ClusterStaleness::Constant
                .max_stable_workers(mu, gain, limit)
                .map(|x| x as f64);
            vec![
                boundary("implicit momentum (geometric staleness)", axis, implicit, m),
                boundary("constant delay τ = M − 1", axis, constant, m),
            ]
        },
    );
    Ok(PhaseDiagram {
        step_size: eta,
        curvature: c,
        panels: vec![constant, uniform, workers],
        wall_seconds: done.wall_seconds,
        threads: done.threads,
    })
}

/// `psim reproduce phase-diagram`.
pub struct PhaseDiagramScenario;

/// The default μ grid: 0.5, 0.525, …, 0.975.
pub fn default_momenta() -> Vec<f64> {
    (0..20)
        .map(|i| 0.5 + 0.025 * i as f64)
        .map(round3)
        .collect()
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

impl Scenario for PhaseDiagramScenario {
    fn name(&self) -> &'static str {
        "phase-diagram"
    }

    fn title(&self) -> &'static str {
        "phase diagram · μ × delay and μ × workers heatmaps with predicted stability boundaries"
    }

    fn experiment(&self) -> Experiment {
        Experiment {
            name: "phase-diagram".into(),
            base: RunConfig {
                momentum: 0.9,
                step_size: 5e-4,
                steps: 20_000,
                runs: 32,
                seed: 2016,
                record_every: 1000,
                tail_fraction: 0.25,
                record_params: true,
                objective: ObjectiveConfig::Pca(PcaConfig::default()),
                ..RunConfig::default()
            },
            grid: Grid {
                momentum: default_momenta(),
                delay: (0..40).map(|k| Delay::constant(5 * k)).collect(),
                ..Grid::default()
            },
            tradeoff: None,
        }
    }

    fn accepts(&self) -> &'static [Setting] {
        &[
            Setting::Momentum,
            Setting::StepSize,
            Setting::Steps,
            Setting::Runs,
            Setting::Seed,
            Setting::TailFraction,
            Setting::DivergenceNorm,
            Setting::Objective,
            Setting::Delay,
        ]
    }

    fn plan(&self, e: &Experiment) -> Result<Plan, ScenarioError> {
        plan(e)
    }

    fn analyse(
        &self,
        experiment: &Experiment,
        done: &SweepResult,
        out: &OutputDir,
    ) -> Result<String, ScenarioError> {
        let d = analyse(experiment, done)?;
        out.write_json("summary.json", &d)?;
        let mut csv = String::from("panel,momentum,x,ratio,diverged,runs,radial,unstable\n");
        for p in &d.panels {
            for r in &p.rows {
                for c in &r.cells {
                    let _ = writeln!(
                        csv,
                        "{:?},{},{},{},{},{},{},{}",
                        p.panel, r.momentum, c.x, c.ratio, c.diverged, c.runs, c.radial, c.unstable
                    );
                }
            }
        }
        out.write("cells.csv", csv)?;
        let mut edges = String::from(
            "panel,momentum,measured_edge,boundary,largest_stable,predicted_edge,agrees\n",
        );
        for p in &d.panels {
            for r in &p.rows {
                let measured = p
                    .axis
                    .get(r.measured_edge_index)
                    .map_or("none".into(), |x| x.to_string());
                for b in &r.boundaries {
                    let _ = writeln!(
                        edges,
                        "{:?},{},{},{},{},{},{}",
                        p.panel,
                        r.momentum,
                        measured,
                        b.name,
                        b.largest_stable.map_or("none".into(), |x| x.to_string()),
                        p.axis
                            .get(b.edge_index)
                            .map_or("none".into(), |x| x.to_string()),
                        b.agrees
                    );
                }
            }
        }
        out.write("edges.csv", edges)?;
        for p in &d.panels {
            out.write(p.panel.file(), heatmap_svg(p))?;
        }
        Ok(report(experiment, &d))
    }
}

/// The terminal report.
pub fn report(e: &Experiment, d: &PhaseDiagram) -> String {
    let b = &e.base;
    let mut s = String::new();
    let _ = writeln!(s, "Phase diagram of momentum and asynchrony");
    let _ = writeln!(
        s,
        "streaming PCA as configured (stiffest curvature 2λ₁ = {}), η = {}, gain η·2λ₁ = {}; {} runs × {} steps per delay cell, {} per worker cell; seed {}",
        d.curvature,
        d.step_size,
        d.step_size * d.curvature,
        b.runs,
        b.steps,
        (b.runs / CLUSTER_RUNS_DIVISOR).max(1),
        b.seed
    );
    let _ = writeln!(s, "unstable cell: median |‖v‖² − 1| at the end ≥ max({RADIAL_EDGE}, {RADIAL_FACTOR}× the row's first cell) (the radial mode oscillates), or more than half the runs diverged; edge = first unstable cell of a row");
    let _ = writeln!(
        s,
        "ran in {:.2} s on {} threads\n",
        d.wall_seconds, d.threads
    );
    for p in &d.panels {
        let _ = writeln!(s, "{}", p.panel.title());
        let ax = p.panel.axis();
        let names: Vec<&str> = p
            .rows
            .first()
            .map(|r| r.boundaries.iter().map(|b| b.name).collect())
            .unwrap_or_default();
        let _ = write!(s, "{:>7} | {:>14}", "μ", format!("measured edge {ax}"));
        for n in &names {
            let _ = write!(s, " | {n:>28}");
        }
        let _ = writeln!(s);
        for r in &p.rows {
            let measured = p.axis.get(r.measured_edge_index).map_or(
                format!("> {}", p.axis.last().copied().unwrap_or(0.0)),
                |x| x.to_string(),
            );
            let _ = write!(s, "{:>7} | {:>14}", r.momentum, measured);
            for bd in &r.boundaries {
                let largest = match bd.largest_stable {
                    None => "unstable".into(),
                    Some(x) if x >= PREDICTION_LIMIT as f64 => "stable throughout".into(),
                    Some(x) => format!("≤ {x}"),
                };
                let _ = write!(
                    s,
                    " | {:>28}",
                    format!("{largest} {}", if bd.agrees { "✓" } else { "✗" })
                );
            }
            let _ = writeln!(s);
        }
        let _ = write!(s, "agreement within one grid step:");
        for (i, n) in names.iter().enumerate() {
            let _ = write!(s, " {n} {:.0}%;", 100.0 * p.agreement(i));
        }
        let _ = writeln!(s, "\n");
    }
    let _ = writeln!(
        s,
        "headline (constant delays: the root-crossing boundary within one grid step of the measured edge for ≥ {:.0}% of the μ rows): {}",
        100.0 * AGREEMENT_SHARE,
        crate::verdict::verdict_word(d.headline_holds())
    );
    s
}

/// The SVG heatmap of one panel: cells coloured by log₁₀ of the error
/// ratio (1 → 100), diverged cells dark with a cross, measured-unstable
/// cells outlined, each boundary a step line.
pub fn heatmap_svg(p: &PanelResult) -> String {
    let (cw, ch) = (14.0, 14.0);
    let (left, top) = (70.0, 40.0);
    let cols = p.axis.len();
    let rows = p.rows.len();
    let width = left + cw * cols as f64 + 220.0;
    let height = top + ch * rows as f64 + 60.0;
    let mut s = String::new();
    let _ = write!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="10">"#
    );
    let _ = write!(
        s,
        r#"<text x="{left}" y="16" font-size="12">{}</text>"#,
        xml(p.panel.title())
    );
    let mut ticks = String::new();
    // Rows: μ descending from the top.
    for (ri, r) in p.rows.iter().rev().enumerate() {
        let y = top + ri as f64 * ch;
        let _ = write!(
            s,
            r#"<text x="{}" y="{}" text-anchor="end">{}</text>"#,
            left - 4.0,
            y + ch * 0.75,
            r.momentum
        );
        for (ci, c) in r.cells.iter().enumerate() {
            let x = left + ci as f64 * cw;
            let fill = if 2 * c.diverged > c.runs.max(1) {
                "#222".to_string()
            } else {
                colour(c.ratio)
            };
            let _ = write!(
                s,
                r#"<rect x="{x}" y="{y}" width="{cw}" height="{ch}" fill="{fill}"/>"#
            );
            if c.diverged > 0 {
                let _ = write!(
                    s,
                    r##"<path d="M{} {}L{} {}M{} {}L{} {}" stroke="#fff" stroke-width="1"/>"##,
                    x + 3.0,
                    y + 3.0,
                    x + cw - 3.0,
                    y + ch - 3.0,
                    x + cw - 3.0,
                    y + 3.0,
                    x + 3.0,
                    y + ch - 3.0
                );
            }
        }
        // Measured edge: a black tick at the left of the first unstable
        // cell, drawn over the boundaries.
        let mx = left + r.measured_edge_index as f64 * cw;
        let _ = write!(
            ticks,
            r##"<rect x="{}" y="{}" width="3" height="{ch}" fill="#000"/>"##,
            mx - 1.5,
            y
        );
    }
    // Boundaries: step lines at the left edge of the first predicted-unstable cell.
    let colours = ["#d00", "#06c", "#080"];
    for bi in 0..p.rows.first().map_or(0, |r| r.boundaries.len()) {
        let mut d = String::new();
        for (ri, r) in p.rows.iter().rev().enumerate() {
            let y = top + ri as f64 * ch;
            let x = left + r.boundaries[bi].edge_index as f64 * cw;
            let _ = write!(
                d,
                "{}{x} {y}L{x} {}",
                if ri == 0 { "M" } else { "L" },
                y + ch
            );
        }
        let dash = if bi == 0 {
            ""
        } else {
            r#" stroke-dasharray="4 3""#
        };
        let _ = write!(
            s,
            r#"<path d="{d}" fill="none" stroke="{}" stroke-width="2"{dash}/>"#,
            colours[bi % colours.len()]
        );
        let ly = top + 14.0 * bi as f64;
        let lx = left + cw * cols as f64 + 10.0;
        let _ = write!(
            s,
            r#"<line x1="{lx}" y1="{ly}" x2="{}" y2="{ly}" stroke="{}" stroke-width="2"{dash}/><text x="{}" y="{}">{}</text>"#,
            lx + 20.0,
            colours[bi % colours.len()],
            lx + 24.0,
            ly + 3.0,
            xml(p.rows[0].boundaries[bi].name)
        );
    }
    s.push_str(&ticks);
    let lx = left + cw * cols as f64 + 10.0;
    let ly = top + 50.0;
    let _ = write!(
        s,
        r##"<rect x="{lx}" y="{}" width="20" height="3" fill="#000"/><text x="{}" y="{}">measured edge</text>"##,
        ly - 1.5,
        lx + 24.0,
        ly + 3.0
    );
    for (i, (label, ratio)) in [("ratio 1", 1.0), ("10", 10.0), ("≥ 100", 100.0)]
        .iter()
        .enumerate()
    {
        let y = ly + 14.0 * (i as f64 + 1.0);
        let _ = write!(
            s,
            r#"<rect x="{lx}" y="{}" width="20" height="10" fill="{}"/><text x="{}" y="{}">{label}</text>"#,
            y - 5.0,
            colour(*ratio),
            lx + 24.0,
            y + 3.0
        );
    }
    let y = ly + 14.0 * 4.0;
    let _ = write!(
        s,
        r##"<rect x="{lx}" y="{}" width="20" height="10" fill="#222"/><text x="{}" y="{}">most runs diverged (× = some)</text>"##,
        y - 5.0,
        lx + 24.0,
        y + 3.0
    );
    // x labels, every few columns.
    let every = (cols / 10).max(1);
    for (ci, x) in p.axis.iter().enumerate().step_by(every) {
        let _ = write!(
            s,
            r#"<text x="{}" y="{}" text-anchor="middle">{x}</text>"#,
            left + (ci as f64 + 0.5) * cw,
            top + ch * rows as f64 + 14.0
        );
    }
    let _ = write!(
        s,
        r#"<text x="{}" y="{}" text-anchor="middle">{}</text><text x="14" y="{}" transform="rotate(-90 14 {})" text-anchor="middle">μ</text></svg>"#,
        left + cw * cols as f64 / 2.0,
        top + ch * rows as f64 + 32.0,
        p.panel.axis(),
        top + ch * rows as f64 / 2.0,
        top + ch * rows as f64 / 2.0
    );
    s
}

/// A colour for an error ratio: pale yellow at 1 through orange to dark
/// red at ≥ 100 (log scale); grey for NaN.
fn colour(ratio: f64) -> String {
    if !ratio.is_finite() {
        return "#999".into();
    }
    let t = (ratio.max(1.0).log10() / 2.0).clamp(0.0, 1.0);
    let lerp = |a: f64, b: f64| (a + (b - a) * t).round() as u8;
    format!(
        "#{:02x}{:02x}{:02x}",
        lerp(255.0, 128.0),
        lerp(250.0, 0.0),
        lerp(205.0, 38.0)
    )
}

fn xml(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}
