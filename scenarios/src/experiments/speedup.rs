//! Speedup of the real parameter server: time-to-ε of streaming PCA per
//! worker count and momentum, with sleep-based compute times, on the
//! threads or tasks engine. More workers apply more updates per second but
//! each with a staleness ≈ M−1; once that crosses the optimal delay of E1
//! for μ, the run needs many more updates (or never reaches ε), and the
//! speedup stops growing. Lower μ tolerates more staleness, so more workers.

use crate::catalogue::{Scenario, ScenarioError};
use crate::executor::{Plan, PlannedPoint};
use crate::experiments::tradeoff::PAPER_OPTIMAL_DELAYS;
use crate::output::{OutputDir, OutputError};
use crate::plot::{Plot, Series};
use crate::sweep::SweepResult;
use psim_common::{
    ClusterConfig, ConfigError, EngineConfig, EngineKind, Experiment, Grid, RunConfig, RunResult,
    Setting,
};
use psim_engine::{time_to_target, EngineError};
use serde::Serialize;
use std::fmt::Write as _;
use thiserror::Error;

/// Why a speedup measurement could not run.
#[derive(Debug, Error)]
pub enum SpeedupError {
    /// A configuration value is out of range.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// An engine failed.
    #[error(transparent)]
    Engine(#[from] EngineError),
    /// Writing the results failed.
    #[error(transparent)]
    Output(#[from] OutputError),
}

impl From<SpeedupError> for ScenarioError {
    fn from(e: SpeedupError) -> Self {
        match e {
            SpeedupError::Config(c) => ScenarioError::Sweep(c.into()),
            SpeedupError::Engine(c) => ScenarioError::Sweep(c.into()),
            SpeedupError::Output(c) => ScenarioError::Output(c),
        }
    }
}

/// One (μ, M) point.
#[derive(Debug, Clone, Serialize)]
pub struct SpeedupRow {
    /// Momentum μ.
    pub momentum: f64,
    /// Workers M.
    pub workers: usize,
    /// Runs made.
    pub runs: usize,
    /// Runs that reached the target error.
    pub reached: usize,
    /// Median time-to-ε over the runs that reached it, seconds.
    pub time_to_target: Option<f64>,
    /// Median updates applied until ε.
    pub updates_to_target: Option<u64>,
    /// Time-to-ε of the first worker count of the list ÷ this one.
    pub speedup: Option<f64>,
    /// Mean measured staleness.
    pub mean_staleness: f64,
    /// 99th-percentile staleness.
    pub p99_staleness: u64,
    /// Updates applied per second (median over runs).
    pub updates_per_second: f64,
    /// The paper's optimal delay for this μ (E1, η = 5·10⁻⁴), when known.
    pub e1_optimal_delay: Option<f64>,
}

fn median(mut v: Vec<f64>) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    Some(v[v.len() / 2])
}

/// The points of the speedup study: every momentum × worker count of
/// `base` (engine, cluster, target error, step cap taken from it),
/// `base.runs` runs each; the wall-clock engines run one run at a time (the
/// runs measure time and must not share the cores). Each run's time to ε
/// is measured as it finishes (column `time_to_target`).
pub fn speedup_plan(
    base: &RunConfig,
    momenta: &[f64],
    workers: &[usize],
) -> Result<Plan, SpeedupError> {
    if base.target_error.is_none() {
        return Err(ConfigError::new(
            "target_error",
            "none",
            "a target error ε > 0 (time-to-ε needs one)",
        )
        .into());
    }
    if workers.is_empty() || momenta.is_empty() {
        return Err(ConfigError::new(
            "workers",
            "[]",
            "at least one worker count and one momentum",
        )
        .into());
    }
    let mut points = Vec::new();
    for &mu in momenta {
        for &m in workers {
            let mut cfg = base.clone();
            cfg.momentum = mu;
            if let Some(c) = cfg.engine.cluster_mut() {
                c.workers = m;
            }
            cfg.validate()?;
            points.push(PlannedPoint::new(cfg));
        }
    }
    Ok(Plan {
        points: points.into(),
        columns: vec!["time_to_target".into()],
        rows: true,
        batch: false,
    })
}

/// The speedup rows from the finished points of [`speedup_plan`].
pub fn analyse_speedup(
    base: &RunConfig,
    momenta: &[f64],
    workers: &[usize],
    done: &SweepResult,
) -> Vec<SpeedupRow> {
    let mut rows = Vec::new();
    let mut points = done.points.iter();
    for &mu in momenta {
        let mut baseline = None;
        for (i, (&m, p)) in workers.iter().zip(points.by_ref()).enumerate() {
            let mut times = Vec::new();
            let mut updates = Vec::new();
            let mut rates = Vec::new();
            for r in &p.rows {
                rates.push(r.counters.applied as f64 / r.wall_seconds.max(f64::MIN_POSITIVE));
                let t = r.extras[0];
                if !t.is_nan() {
                    times.push(t);
                    if let psim_common::Outcome::TargetErrorReached { step } = r.outcome {
                        updates.push(step as f64);
                    }
                }
            }
            let t = median(times.clone());
            if i == 0 {
                baseline = t;
            }
            rows.push(SpeedupRow {
                momentum: mu,
                workers: m,
                runs: p.rows.len(),
                reached: times.len(),
                time_to_target: t,
                updates_to_target: median(updates).map(|u| u as u64),
                speedup: baseline.zip(t).map(|(b, t)| b / t),
                mean_staleness: p.staleness.mean(),
                p99_staleness: p.staleness.quantile(0.99),
                updates_per_second: median(rates).unwrap_or(0.0),
                e1_optimal_delay: PAPER_OPTIMAL_DELAYS
                    .iter()
                    .find(|(m, _)| (m - mu).abs() < 1e-9)
                    .filter(|_| (base.step_size - 5e-4).abs() < 1e-12)
                    .map(|(_, d)| *d),
            });
        }
    }
    rows
}

/// The table printed by `psim speedup`.
pub fn report(base: &RunConfig, rows: &[SpeedupRow]) -> String {
    let cluster = base.cluster().cloned().unwrap_or_default();
    let mut t = String::new();
    let _ = writeln!(
        t,
        "speedup: engine {}, consistency {}, compute time {} s, η = {}, ε = {}, {} runs per point (median time-to-ε)\n",
        base.engine_kind(),
        cluster.consistency,
        cluster.compute_time,
        base.step_size,
        base.target_error.unwrap_or(f64::NAN),
        base.runs
    );
    let _ = writeln!(
        t,
        "{:>5} {:>7} | {:>8} {:>12} {:>10} {:>8} {:>6} | {:>8} {:>6} {:>8} | {:>10}",
        "μ",
        "workers",
        "reached",
        "time-to-ε s",
        "updates",
        "speedup",
        "ideal",
        "τ mean",
        "τ p99",
        "E1 τ*",
        "updates/s"
    );
    let first = rows.first().map_or(1, |r| r.workers);
    for r in rows {
        let opt = |x: Option<f64>, p: usize| x.map_or("–".into(), |v| format!("{v:.p$}"));
        let _ = writeln!(
            t,
            "{:>5} {:>7} | {:>8} {:>12} {:>10} {:>8} {:>6} | {:>8.2} {:>6} {:>8} | {:>10.0}",
            r.momentum,
            r.workers,
            format!("{}/{}", r.reached, r.runs),
            opt(r.time_to_target, 3),
            r.updates_to_target.map_or("–".into(), |u| u.to_string()),
            opt(r.speedup, 2),
            format!("{:.0}", r.workers as f64 / first as f64),
            r.mean_staleness,
            r.p99_staleness,
            opt(r.e1_optimal_delay, 0),
            r.updates_per_second
        );
    }
    t
}

/// Writes `speedup.csv`, `summary.json` and `speedup.svg` (the caller
/// writes `config.toml`, the experiment with its worker grid).
pub fn write(out: &OutputDir, rows: &[SpeedupRow]) -> Result<(), SpeedupError> {
    let o = |x: Option<f64>| x.map_or(String::new(), |v| v.to_string());
    out.write_csv(
        "speedup.csv",
        &[
            "momentum",
            "workers",
            "runs",
            "reached",
            "time_to_target_s",
            "updates_to_target",
            "speedup",
            "mean_staleness",
            "p99_staleness",
            "updates_per_second",
            "e1_optimal_delay",
        ],
        rows.iter().map(|r| {
            vec![
                r.momentum.to_string(),
                r.workers.to_string(),
                r.runs.to_string(),
                r.reached.to_string(),
                o(r.time_to_target),
                r.updates_to_target.map_or(String::new(), |u| u.to_string()),
                o(r.speedup),
                r.mean_staleness.to_string(),
                r.p99_staleness.to_string(),
                r.updates_per_second.to_string(),
                o(r.e1_optimal_delay),
            ]
        }),
    )?;
    out.write_json("summary.json", &rows)?;
    out.write("speedup.svg", plot(rows).to_svg())?;
    Ok(())
}

/// Speedup versus workers, one line per μ, and the ideal line.
pub fn plot(rows: &[SpeedupRow]) -> Plot {
    let mut momenta: Vec<f64> = rows.iter().map(|r| r.momentum).collect();
    momenta.dedup();
    let first = rows.first().map_or(1, |r| r.workers) as f64;
    let mut series: Vec<Series> = momenta
        .iter()
        .map(|&mu| Series {
            label: format!("μ={mu}"),
            points: rows
                .iter()
                .filter(|r| r.momentum == mu)
                .map(|r| (r.workers as f64, r.speedup.unwrap_or(f64::NAN)))
                .collect(),
            markers: true,
            ..Default::default()
        })
        .collect();
    let mut ws: Vec<usize> = rows.iter().map(|r| r.workers).collect();
    ws.sort_unstable();
    ws.dedup();
    series.push(Series {
        label: "ideal".into(),
        points: ws.iter().map(|&w| (w as f64, w as f64 / first)).collect(),
        dashed: true,
        ..Default::default()
    });
    Plot {
        title: "time-to-ε speedup vs workers".into(),
        x_label: "workers M".into(),
        y_label: "speedup".into(),
        log_x: true,
        log_y: true,
        series,
        ..Default::default()
    }
}

/// `psim speedup` (also `psim reproduce speedup`): time-to-ε per worker count
/// and momentum on the real parameter server.
pub struct Speedup;

impl Scenario for Speedup {
    fn name(&self) -> &'static str {
        "speedup"
    }

    fn title(&self) -> &'static str {
        "time-to-ε speedup per worker count and μ on the real parameter server (threads or tasks)"
    }

    /// Streaming PCA of E1 at η = 5·10⁻⁴ to ε = 0.1, 1 ms of compute per
    /// gradient, workers 1…32, μ ∈ {0.7, 0.9}, 3 runs per point, at most
    /// 10⁵ updates per run.
    fn experiment(&self) -> Experiment {
        Experiment {
            name: "speedup".into(),
            base: RunConfig {
                momentum: 0.7,
                step_size: 5e-4,
                steps: 100_000,
                runs: 3,
                seed: 1,
                record_every: 10,
                target_error: Some(0.1),
                engine: EngineConfig::new(EngineKind::Threads, ClusterConfig::default()),
                ..RunConfig::default()
            },
            grid: Grid {
                momentum: vec![0.7, 0.9],
                workers: vec![1, 2, 4, 8, 16, 32],
                ..Grid::default()
            },
            tradeoff: None,
        }
    }

    fn accepts(&self) -> &'static [Setting] {
        use Setting::*;
        &[
            Momentum,
            StepSize,
            Steps,
            Runs,
            Seed,
            RecordEvery,
            TargetError,
            Rule,
            Objective,
            Engine,
            Workers,
            ComputeTime,
            NetworkDelay,
            Consistency,
            Stragglers,
            Backend,
            OnWorkerFailure,
        ]
    }

    fn engines(&self) -> &'static [EngineKind] {
        &[EngineKind::Threads, EngineKind::Tasks]
    }

    fn experiment_on(&self, engine: EngineKind) -> Result<Experiment, ScenarioError> {
        if !self.engines().contains(&engine) {
            return Err(self.wrong_engine(engine));
        }
        let mut e = self.experiment();
        e.base.engine = EngineConfig::new(engine, ClusterConfig::default());
        Ok(e)
    }

    fn plan(&self, e: &Experiment) -> Result<Plan, ScenarioError> {
        let (momenta, workers) = axes(e);
        Ok(speedup_plan(&e.base, &momenta, &workers)?)
    }

    fn measure(&self, _e: &Experiment, _p: usize, _cfg: &RunConfig, r: &RunResult) -> Vec<f64> {
        vec![time_to_target(r).unwrap_or(f64::NAN)]
    }

    fn analyse(
        &self,
        e: &Experiment,
        done: &SweepResult,
        out: &OutputDir,
    ) -> Result<String, ScenarioError> {
        let (momenta, workers) = axes(e);
        let rows = analyse_speedup(&e.base, &momenta, &workers, done);
        write(out, &rows)?;
        Ok(report(&e.base, &rows))
    }
}

/// The momenta and worker counts of a speedup experiment.
fn axes(e: &Experiment) -> (Vec<f64>, Vec<usize>) {
    let momenta = if e.grid.momentum.is_empty() {
        vec![e.base.momentum]
    } else {
        e.grid.momentum.clone()
    };
    let workers = if e.grid.workers.is_empty() {
        vec![e.base.cluster().map_or(1, |c| c.workers)]
    } else {
        e.grid.workers.clone()
    };
    (momenta, workers)
}
