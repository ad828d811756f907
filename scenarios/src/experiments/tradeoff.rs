//! The momentum–delay tradeoff (E1): reading the "optimal delay" off a
//! sweep over momentum × constant delay, beside the theory; and, on the
//! cluster engines (virtual time, threads, tasks), where staleness comes
//! from the number of workers, the largest tolerated worker count.
//!
//! The rule (documented in the README and configurable): a grid value (a
//! delay τ, or a worker count M) is *tolerated* when no run diverged and the
//! mean error is at most `factor` × the error at the grid's smallest value
//! (τ = 0, M = 1); the answer is the largest value such that it and every
//! smaller value of the grid are tolerated. [`tolerated_prefix`] is that rule,
//! written once for both axes.

use crate::catalogue::{Scenario, ScenarioError};
use crate::executor::Plan;
use crate::output::{write_sweep, OutputDir};
use crate::sweep::{PointResult, SweepResult};
use psim_common::theory::{max_stable_delay, ou_stationary_error, pca_stiffest_curvature};
use psim_common::{
    ClusterConfig, Delay, EngineConfig, EngineKind, Experiment, Grid, ObjectiveConfig, PcaConfig,
    RunConfig, Setting, StreamingPca, Tolerance,
};
use serde::Serialize;
use std::fmt::Write;

/// The mean error at one grid value of a tradeoff curve and the rule's
/// reading of it; shared by the delay and the worker-count axes.
#[derive(Debug, Clone, Serialize)]
pub struct CurvePoint {
    /// Mean tail error over non-diverged runs.
    pub mean_error: f64,
    /// Standard deviation across runs.
    pub std_error: f64,
    /// 10th percentile across runs.
    pub p10: f64,
    /// 90th percentile across runs.
    pub p90: f64,
    /// Diverged runs.
    pub diverged: usize,
    /// Mean error / mean error at the grid's smallest value.
    pub ratio: f64,
    /// Whether the rule tolerates this value.
    pub tolerated: bool,
}

impl CurvePoint {
    fn of(p: &PointResult, (ratio, tolerated): (f64, bool)) -> Self {
        let s = &p.summary;
        Self {
            mean_error: s.error.mean,
            std_error: s.error.std,
            p10: s.error.p10,
            p90: s.error.p90,
            diverged: s.diverged,
            ratio,
            tolerated,
        }
    }
}

/// Mean error at one delay, as listed in `summary.json`.
#[derive(Debug, Clone, Serialize)]
pub struct DelayError {
    /// Delay (the constant, or the model's mean for random delays).
    pub delay: f64,
    /// The error there.
    #[serde(flatten)]
    pub at: CurvePoint,
}

/// The tradeoff for one (μ, η).
#[derive(Debug, Clone, Serialize)]
pub struct TradeoffRow {
    /// Momentum μ.
    pub momentum: f64,
    /// Step size η.
    pub step_size: f64,
    /// Largest tolerated delay (null when even the smallest is not).
    pub optimal_delay: Option<f64>,
    /// Largest constant delay for which the linearised delayed heavy ball
    /// of the stiffest mode (curvature 2λ₁) is stable.
    pub theory_max_stable_delay: Option<u64>,
    /// OU stationary error at τ = 0, η Σ α²_{i1}/(2(1−μ)(λ₁−λ_i)).
    pub theory_ou_error: Option<f64>,
    /// Mean error at the smallest delay.
    pub baseline_error: f64,
    /// Error per delay, ascending.
    pub errors: Vec<DelayError>,
}

/// The tolerance rule on one curve: `points` are (grid value, mean error,
/// diverged runs) in ascending grid order. Returns the largest tolerated
/// value (every smaller one tolerated too) and, per point, its ratio to the
/// first point's error and whether it is tolerated.
pub fn tolerated_prefix(
    points: &[(f64, f64, usize)],
    rule: &Tolerance,
) -> (Option<f64>, Vec<(f64, bool)>) {
    let baseline = points.first().map_or(f64::NAN, |p| p.1);
    let mut still = true;
    let mut best = None;
    let marks = points
        .iter()
        .map(|&(x, mean, diverged)| {
            let ratio = mean / baseline;
            let tolerated = diverged == 0 && ratio <= rule.factor;
            still &= tolerated;
            if still {
                best = Some(x);
            }
            (ratio, tolerated)
        })
        .collect();
    (best, marks)
}

/// Groups a sweep's points by (μ, η), in grid order, each group sorted by `x`.
fn curves(
    sweep: &SweepResult,
    x: impl Fn(&PointResult) -> f64,
) -> Vec<((f64, f64), Vec<&PointResult>)> {
    let mut groups: Vec<((f64, f64), Vec<&PointResult>)> = Vec::new();
    for p in &sweep.points {
        let key = (p.summary.momentum, p.summary.step_size);
        match groups.iter_mut().find(|(k, _)| *k == key) {
            Some((_, v)) => v.push(p),
            None => groups.push((key, vec![p])),
        }
    }
    for (_, pts) in &mut groups {
        pts.sort_by(|a, b| x(a).total_cmp(&x(b)));
    }
    groups
}

/// The theory beside a (μ, η) curve of streaming PCA: the largest stable
/// constant delay of the stiffest mode and the OU error at τ = 0.
fn theory(
    objective: &ObjectiveConfig,
    momentum: f64,
    step_size: f64,
) -> (Option<u64>, Option<f64>) {
    match objective {
        ObjectiveConfig::Pca(cfg) => match StreamingPca::new(cfg) {
            Ok(pca) => {
                let lam = pca.eigenvalues();
                let gain = step_size * pca_stiffest_curvature(lam);
                (
                    max_stable_delay(momentum, gain),
                    Some(ou_stationary_error(step_size, momentum, lam, |i| {
                        pca.alpha_sq(i, 0)
                    })),
                )
            }
            Err(_) => (None, None),
        },
        _ => (None, None),
    }
}

/// Analyses a momentum × delay sweep with `rule`.
pub fn analyse(sweep: &SweepResult, rule: &Tolerance) -> Vec<TradeoffRow> {
    curves(sweep, delay_of)
        .into_iter()
        .map(|((momentum, step_size), pts)| {
            let baseline = pts[0].summary.error.mean;
            let curve: Vec<(f64, f64, usize)> = pts
                .iter()
                .map(|p| (delay_of(p), p.summary.error.mean, p.summary.diverged))
                .collect();
            let (optimal, marks) = tolerated_prefix(&curve, rule);
            let errors = pts
                .iter()
                .zip(marks)
                .map(|(p, mark)| DelayError {
                    delay: delay_of(p),
                    at: CurvePoint::of(p, mark),
                })
                .collect();
            let (theory_max_stable_delay, theory_ou_error) =
                theory(&pts[0].config.objective, momentum, step_size);
            TradeoffRow {
                momentum,
                step_size,
                optimal_delay: optimal,
                theory_max_stable_delay,
                theory_ou_error,
                baseline_error: baseline,
                errors,
            }
        })
        .collect()
}

/// Mean error at one worker count, as listed in `summary.json`.
#[derive(Debug, Clone, Serialize)]
pub struct WorkersError {
    /// Worker count M.
    pub workers: usize,
    /// Mean measured staleness of the applied gradients.
    pub mean_staleness: f64,
    /// The error there.
    #[serde(flatten)]
    pub at: CurvePoint,
}

/// The tradeoff on a cluster engine for one (μ, η): the largest tolerated
/// worker count, beside the injected engine's optimal delay on the matching
/// grid τ = M − 1.
#[derive(Debug, Clone, Serialize)]
pub struct WorkersRow {
    /// Momentum μ.
    pub momentum: f64,
    /// Step size η.
    pub step_size: f64,
    /// Largest tolerated worker count (null when even the smallest is not).
    pub max_workers: Option<usize>,
    /// Mean measured staleness at `max_workers`.
    pub staleness_at_max: Option<f64>,
    /// The injected engine's optimal delay τ* on the grid τ = M − 1, by the same rule.
    pub injected_optimal_delay: Option<f64>,
    /// Largest stable constant delay of the linearised delayed heavy ball (theory).
    pub theory_max_stable_delay: Option<u64>,
    /// Mean error at the smallest worker count.
    pub baseline_error: f64,
    /// Error per worker count, ascending.
    pub errors: Vec<WorkersError>,
    /// The other cluster axes' values of this curve (`compute exp:1`,
    /// `consistency ssp:2`, …), when the grid varies them: each value is
    /// its own curve and row.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub setting: Option<String>,
}

/// Analyses a momentum × workers sweep on a cluster engine with `rule`;
/// `injected` is the analysis of the matching injected sweep (τ = M − 1).
pub fn analyse_workers(
    sweep: &SweepResult,
    rule: &Tolerance,
    injected: &[TradeoffRow],
) -> Vec<WorkersRow> {
    let workers_of = |p: &PointResult| p.summary.workers.unwrap_or(0) as f64;
    // One curve per (μ, η) *and* per setting of the other cluster axes
    // (compute time, consistency, per-worker compute): points that differ
    // there are different curves, never merged into one (which showed M
    // twice and took ratios against another curve's baseline).
    let mut split: Vec<((f64, f64), Vec<&PointResult>)> = Vec::new();
    for (key, pts) in curves(sweep, workers_of) {
        let mut sub: Vec<(String, Vec<&PointResult>)> = Vec::new();
        for p in pts {
            let s = &p.summary;
            let axes = format!(
                "{:?}|{:?}|{:?}",
                s.compute_time, s.consistency, s.worker_compute
            );
            match sub.iter_mut().find(|(k, _)| *k == axes) {
                Some((_, v)) => v.push(p),
                None => sub.push((axes, vec![p])),
            }
        }
        split.extend(sub.into_iter().map(|(_, v)| (key, v)));
    }
    // Which of the other axes vary between curves: those label the rows.
    let varies = |f: &dyn Fn(&PointResult) -> Option<String>| {
        let first = split.first().map(|(_, v)| f(v[0]));
        split.iter().any(|(_, v)| Some(f(v[0])) != first)
    };
    type Axis = (&'static str, fn(&PointResult) -> Option<String>);
    let labels: Vec<Axis> = vec![
        ("compute", |p| p.summary.compute_time.clone()),
        ("consistency", |p| p.summary.consistency.clone()),
        ("per-worker compute", |p| p.summary.worker_compute.clone()),
    ];
    let shown: Vec<Axis> = labels.into_iter().filter(|(_, f)| varies(f)).collect();
    split
        .into_iter()
        .map(|((momentum, step_size), pts)| {
            let setting = (!shown.is_empty()).then(|| {
                shown
                    .iter()
                    .map(|(name, f)| format!("{name} {}", f(pts[0]).unwrap_or_default()))
                    .collect::<Vec<_>>()
                    .join(", ")
            });
            let curve: Vec<(f64, f64, usize)> = pts
                .iter()
                .map(|p| (workers_of(p), p.summary.error.mean, p.summary.diverged))
                .collect();
            let (best, marks) = tolerated_prefix(&curve, rule);
            let errors: Vec<WorkersError> = pts
                .iter()
                .zip(marks)
                .map(|(p, mark)| WorkersError {
                    workers: p.summary.workers.unwrap_or(0),
                    mean_staleness: p.summary.staleness.mean,
                    at: CurvePoint::of(p, mark),
                })
                .collect();
            let max_workers = best.map(|w| w as usize);
            WorkersRow {
                momentum,
                step_size,
                max_workers,
                staleness_at_max: max_workers.and_then(|m| {
                    errors
                        .iter()
                        .find(|e| e.workers == m)
                        .map(|e| e.mean_staleness)
                }),
                injected_optimal_delay: injected
                    .iter()
                    .find(|r| r.momentum == momentum && r.step_size == step_size)
                    .and_then(|r| r.optimal_delay),
                theory_max_stable_delay: theory(&pts[0].config.objective, momentum, step_size).0,
                baseline_error: pts[0].summary.error.mean,
                errors,
                setting,
            }
        })
        .collect()
}

/// A tradeoff analysis as written to `summary.json` under `tradeoff`.
#[derive(Debug, Clone, Serialize)]
#[serde(untagged)]
pub enum TradeoffTable {
    /// Optimal delay per (μ, η) (injected engine).
    Delays(Vec<TradeoffRow>),
    /// Largest tolerated worker count per (μ, η) (cluster engines).
    Workers(Vec<WorkersRow>),
}

/// The injected sweep matching a cluster engine's worker grid: the same
/// problem, μ, η, runs, steps and seed, with constant delays τ = M − 1.
pub fn matching_injected(e: &Experiment) -> Experiment {
    let workers: Vec<usize> = if e.grid.workers.is_empty() {
        e.base
            .cluster()
            .map(|c| vec![c.workers])
            .unwrap_or_default()
    } else {
        e.grid.workers.clone()
    };
    Experiment {
        name: e.name.clone(),
        base: RunConfig {
            engine: EngineConfig::default(),
            ..e.base.clone()
        },
        grid: Grid {
            momentum: e.grid.momentum.clone(),
            step_size: e.grid.step_size.clone(),
            delay: workers
                .iter()
                .map(|&m| Delay::constant(m.saturating_sub(1) as u64))
                .collect(),
            ..Grid::default()
        },
        tradeoff: e.tradeoff,
    }
}

/// The plan of a tradeoff experiment: its grid's points; on a cluster
/// engine followed by the matching injected sweep's points (τ = M − 1), so
/// the cluster points keep the indices 0…n−1 of a plain sweep.
pub fn tradeoff_plan(experiment: &Experiment) -> Plan {
    let mut plan = Plan::sweep(experiment);
    if experiment.base.cluster().is_some() {
        plan.points
            .extend(Plan::sweep(&matching_injected(experiment)).points);
    }
    plan
}

/// The analysis of a finished tradeoff experiment on its engine: the
/// optimal delay per μ on the injected engine; on a cluster engine the
/// largest tolerated worker count, beside the matching injected sweep's
/// τ* + 1 (whose points follow the cluster ones in the plan and are not
/// written to the output files). Writes the outputs, returns the report.
pub fn analyse_tradeoff(done: &SweepResult, out: &OutputDir) -> Result<String, ScenarioError> {
    let experiment = &done.experiment;
    if experiment.base.cluster().is_none() {
        return write_delays(out, done);
    }
    let rule = experiment.tradeoff.unwrap_or_default();
    let n = experiment.points().len();
    let injected = SweepResult {
        experiment: matching_injected(experiment),
        points: done.points[n..].to_vec(),
        wall_seconds: 0.0,
        threads: done.threads,
    };
    let injected_rows = analyse(&injected, &rule);
    let sweep = SweepResult {
        experiment: experiment.clone(),
        points: done.points[..n].to_vec(),
        wall_seconds: done.wall_seconds,
        threads: done.threads,
    };
    let rows = analyse_workers(&sweep, &rule, &injected_rows);
    write_sweep(out, &sweep, Some(&TradeoffTable::Workers(rows.clone())))?;
    Ok(workers_report(
        experiment,
        &rows,
        &rule,
        done.wall_seconds,
        done.threads,
    ))
}

/// Analyses a finished delay sweep (the injected engine), writes its
/// outputs and returns the report.
pub fn write_delays(out: &OutputDir, sweep: &SweepResult) -> Result<String, ScenarioError> {
    let experiment = &sweep.experiment;
    let rule = experiment.tradeoff.unwrap_or_default();
    let rows = analyse(sweep, &rule);
    write_sweep(out, sweep, Some(&TradeoffTable::Delays(rows.clone())))?;
    Ok(tradeoff_report(
        experiment,
        &rows,
        &rule,
        sweep.wall_seconds,
        sweep.threads,
    ))
}

/// The x-coordinate of a point: its constant delay, or its delay model's
/// mean (infinite for heavy tails).
pub fn delay_of(p: &PointResult) -> f64 {
    p.config
        .injected()
        .and_then(|i| i.delay.mean_steps())
        .unwrap_or(f64::INFINITY)
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
                runs: 100,
                seed: 2018,
                record_every: 100,
                tail_fraction: 0.25,
                objective: ObjectiveConfig::Pca(PcaConfig::default()),
                ..RunConfig::default()
            },
            grid: Grid {
                momentum: vec![0.7, 0.8, 0.85, 0.9, 0.95],
                delay: (0..=16).map(|k| Delay::constant(10 * k)).collect(),
                ..Grid::default()
            },
            tradeoff: Some(Tolerance::default()),
        }
    }

    fn accepts(&self) -> &'static [Setting] {
        // Every setting: E1 is the general momentum × staleness sweep.
        &Setting::ALL
    }

    fn engines(&self) -> &'static [EngineKind] {
        &[
            EngineKind::Injected,
            EngineKind::VirtualTime,
            EngineKind::Threads,
            EngineKind::Tasks,
        ]
    }

    /// On a cluster engine the delay grid becomes a worker grid
    /// M = τ + 1 ∈ {1, 11, …, 161}. On virtual time every worker computes for
    /// one time unit (`const:1`) with no network delay, so after the first
    /// round the workers push in a fixed cycle and every staleness is exactly
    /// M − 1: the cluster counterpart of a constant delay τ = M − 1. The
    /// threads and tasks engines keep the default compute time (1 ms slept).
    fn experiment_on(&self, engine: EngineKind) -> Result<Experiment, ScenarioError> {
        let mut e = self.experiment();
        if engine == EngineKind::Injected {
            return Ok(e);
        }
        let compute_time = if engine == EngineKind::VirtualTime {
            Delay::Constant(1.0)
        } else {
            ClusterConfig::default().compute_time
        };
        e.base.engine = EngineConfig::new(
            engine,
            ClusterConfig {
                workers: 1,
                compute_time,
                ..ClusterConfig::default()
            },
        );
        e.grid.delay.clear();
        e.grid.workers = (0..=16).map(|k| 10 * k + 1).collect();
        Ok(e)
    }

    fn plan(&self, e: &Experiment) -> Result<Plan, ScenarioError> {
        if let (Some(_), psim_common::RuleKind::DelayAdaptive { c: None }) =
            (e.base.cluster(), e.base.rule)
        {
            // Its τ = M − 1 comparison runs on the injected engine, which
            // has no worker count for C to default to.
            return Err(ScenarioError::Unsuitable(format!(
                "`--rule delay-adaptive` (config `rule`): the {} tradeoff compares each worker count M with the injected engine at τ = M − 1, which has no workers for C to default to; give C (`delay-adaptive:C`)",
                e.base.engine_kind()
            )));
        }
        Ok(tradeoff_plan(e))
    }

    fn analyse(
        &self,
        _experiment: &Experiment,
        done: &SweepResult,
        out: &OutputDir,
    ) -> Result<String, ScenarioError> {
        analyse_tradeoff(done, out)
    }
}

/// Tolerance of the paper comparison: the optimal delay is read on a grid
/// of 10, so ±10 (one grid step) for every μ, ±20 for μ = 0.7 (its error
/// curve is flattest, so the 2× crossing moves most with the noise).
pub fn paper_tolerance(momentum: f64) -> f64 {
    if (momentum - 0.7).abs() < 1e-9 {
        20.0
    } else {
        10.0
    }
}

/// The paper's optimal delay for `row`, when the experiment is the paper's
/// problem (default Σ and data, η = 5·10⁻⁴).
pub fn paper_delay(e: &Experiment, row: &TradeoffRow) -> Option<f64> {
    let paper_problem =
        matches!(&e.base.objective, ObjectiveConfig::Pca(p) if *p == PcaConfig::default());
    if !paper_problem || (row.step_size - 5e-4).abs() > 1e-12 {
        return None;
    }
    PAPER_OPTIMAL_DELAYS
        .iter()
        .find(|(m, _)| (m - row.momentum).abs() < 1e-9)
        .map(|(_, d)| *d)
}

/// E1's headline: at every η the optimal delay falls strictly as μ grows,
/// and on the paper's problem each is within [`paper_tolerance`] of the
/// paper's reading of Figure 1.
pub fn headline_holds(e: &Experiment, rows: &[TradeoffRow]) -> bool {
    let mut etas: Vec<f64> = rows.iter().map(|r| r.step_size).collect();
    etas.dedup();
    let falls = etas.iter().all(|eta| {
        let mut v: Vec<(f64, f64)> = rows
            .iter()
            .filter(|r| r.step_size == *eta)
            .map(|r| (r.momentum, r.optimal_delay.unwrap_or(-1.0)))
            .collect();
        v.sort_by(|a, b| a.0.total_cmp(&b.0));
        v.windows(2).all(|w| w[1].1 < w[0].1)
    });
    let on_paper = rows.iter().all(|r| match paper_delay(e, r) {
        Some(p) => r
            .optimal_delay
            .is_some_and(|d| (d - p).abs() <= paper_tolerance(r.momentum)),
        None => true,
    });
    falls && on_paper
}

/// The terminal report of a tradeoff experiment.
pub fn tradeoff_report(
    e: &Experiment,
    rows: &[TradeoffRow],
    rule: &Tolerance,
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
        let paper = paper_delay(e, r).map_or("–".to_string(), |d| d.to_string());
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
    let curves: Vec<Vec<(String, &CurvePoint)>> = rows
        .iter()
        .map(|r| {
            r.errors
                .iter()
                .map(|e| (e.delay.to_string(), &e.at))
                .collect()
        })
        .collect();
    error_table(
        &mut s,
        "τ",
        rows.iter()
            .map(|r| format!("μ={} η={}", r.momentum, r.step_size)),
        &curves,
        b.runs,
    );
    let _ = writeln!(
        s,
        "\nheadline (the optimal delay falls as μ grows; on the paper's problem within ±10 of its reading, ±20 for μ = 0.7): {}",
        crate::verdict::verdict_word(headline_holds(e, rows))
    );
    s
}

/// The terminal report of a tradeoff experiment on a cluster engine.
pub fn workers_report(
    e: &Experiment,
    rows: &[WorkersRow],
    rule: &Tolerance,
    wall: f64,
    threads: usize,
) -> String {
    let b = &e.base;
    let mut s = String::new();
    let cluster = b.cluster().cloned().unwrap_or_default();
    let _ = writeln!(
        s,
        "E1 on the {} engine · how many workers a momentum tolerates",
        b.engine_kind()
    );
    let listed = |grid: Vec<String>, base: String| {
        if grid.len() > 1 {
            format!("{} (a row each)", grid.join(", "))
        } else {
            base
        }
    };
    let compute = listed(
        e.grid.compute_time.iter().map(|d| d.to_string()).collect(),
        cluster.compute_time.to_string(),
    );
    let consistency = listed(
        e.grid.consistency.iter().map(|c| c.to_string()).collect(),
        cluster.consistency.to_string(),
    );
    let _ = writeln!(
        s,
        "compute time {compute}, network delay {}, consistency {consistency}; {} runs × {} steps (server updates) per point, seed {}",
        cluster.network_delay, b.runs, b.steps, b.seed
    );
    let _ = writeln!(s, "rule: largest M such that it and every smaller M of the grid has no diverged run and mean error ≤ {}× the M = {} error", rule.factor, rows.first().and_then(|r| r.errors.first()).map_or(0, |e| e.workers));
    let _ = writeln!(s, "beside: the injected engine's optimal delay on the matching grid τ = M − 1 (by the same rule) plus one, and the theory's stable delay plus one");
    let _ = writeln!(s, "ran in {wall:.2} s on {threads} threads\n");
    // The baseline is each curve's smallest M, which need not be 1.
    let smallest = rows
        .first()
        .and_then(|r| r.errors.first())
        .map_or(1, |e| e.workers);
    let width = rows
        .iter()
        .filter_map(|r| r.setting.as_ref().map(|x| x.chars().count()))
        .max();
    let setting = |x: Option<&str>| match width {
        Some(w) => format!(" {:<w$} |", x.unwrap_or("")),
        None => String::new(),
    };
    let _ = writeln!(
        s,
        "{:>6} {:>9} |{} {:>11} | {:>6} {:>14} | {:>12} | {:>14}",
        "μ",
        "η",
        setting(Some("setting")),
        format!("M={smallest} error"),
        "max M",
        "staleness at M",
        "injected τ*+1",
        "theory τ_max+1"
    );
    for r in rows {
        let _ = writeln!(
            s,
            "{:>6} {:>9} |{} {:>11.5} | {:>6} {:>14} | {:>12} | {:>14}",
            r.momentum,
            r.step_size,
            setting(r.setting.as_deref()),
            r.baseline_error,
            r.max_workers.map_or("none".into(), |m| m.to_string()),
            r.staleness_at_max.map_or("–".into(), |x| format!("{x:.2}")),
            r.injected_optimal_delay
                .map_or("none".into(), |d| (d + 1.0).to_string()),
            r.theory_max_stable_delay
                .map_or("unstable".into(), |d| (d + 1).to_string())
        );
    }
    let _ = writeln!(s, "\nmean error per worker count (ratio to the smallest M in parentheses; † = some runs diverged)");
    let curves: Vec<Vec<(String, &CurvePoint)>> = rows
        .iter()
        .map(|r| {
            r.errors
                .iter()
                .map(|e| (e.workers.to_string(), &e.at))
                .collect()
        })
        .collect();
    error_table(
        &mut s,
        "M",
        rows.iter().map(|r| {
            let head = format!("μ={} η={}", r.momentum, r.step_size);
            match &r.setting {
                Some(x) => format!("{head} {x}"),
                None => head,
            }
        }),
        &curves,
        b.runs,
    );
    s
}

/// The table of mean errors per grid value (rows) and (μ, η) curve
/// (columns), written once for the delay and the worker-count axes.
fn error_table(
    s: &mut String,
    axis: &str,
    heads: impl Iterator<Item = String>,
    curves: &[Vec<(String, &CurvePoint)>],
    runs: u32,
) {
    let _ = write!(s, "{axis:>6}");
    // Columns as wide as their heads (18 at least).
    let mut widths = Vec::new();
    for head in heads {
        let w = head.chars().count().max(18);
        let _ = write!(s, " {head:>w$}");
        widths.push(w);
    }
    let _ = writeln!(s);
    let n = curves.iter().map(Vec::len).max().unwrap_or(0);
    for i in 0..n {
        let x = curves
            .iter()
            .find_map(|c| c.get(i))
            .map_or(String::new(), |(x, _)| x.clone());
        let _ = write!(s, "{x:>6}");
        for (c, &w) in curves.iter().zip(&widths) {
            let cell = match c.get(i) {
                Some((_, e)) if e.diverged > 0 => format!("† {}/{runs}", e.diverged),
                Some((_, e)) => format!("{:.5} ({:.2})", e.mean_error, e.ratio),
                None => String::new(),
            };
            let _ = write!(s, " {cell:>w$}");
        }
        let _ = writeln!(s);
    }
}
