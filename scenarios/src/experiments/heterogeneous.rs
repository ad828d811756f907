//! `psim reproduce heterogeneous`: today's asynchronous methods on
//! heterogeneous workers beside the optimal time bound (Tyurin & Richtárik
//! 2023; Maranjyan, Tyurin & Richtárik 2025, "Ringmaster ASGD").
//!
//! The problem: the built-in quadratic (d = 100, L = 1, condition 10,
//! σ² = 1, start 1; error ‖∇f‖²), target ε; worker i (1-based) computes
//! for √i time units (`profile:0+1*i^0.5`, fixed times, so the bound's τ_i
//! are exact). For n = 1 … 10⁴ workers, each method's time to ε in
//! virtual time, its step size η tuned over a stated grid (the best median
//! over runs), against T*(n) = min_m (1/m Σ_{i≤m} 1/τ_i)⁻¹(LΔ/ε + σ²LΔ/(mε²)).
//!
//! Methods (rows of [`METHODS`]; a new policy is one more row):
//! ASGD (`asp`), delay-adaptive ASGD (`asp`, rule `delay-adaptive`),
//! Ringmaster (`ringmaster:R`, R = max(1, ⌈σ²/ε⌉) as in the paper),
//! Rennala (`rennala:B`, B = R), m-sync (`ksync:K`, K = min(n, B)) and
//! minibatch SGD (`bsp`). Separately, heavy-ball ASGD for μ over
//! [`MOMENTA`] at n over [`MOMENTUM_WORKERS`], η over
//! [`MOMENTUM_STEP_SIZES`]: at each fixed η, the μ that reaches ε first
//! falls as n grows (001's E2 observation, asynchrony's implicit momentum
//! taking the place of explicit momentum).

use crate::catalogue::{Scenario, ScenarioError};
use crate::executor::{Plan, PlannedPoint};
use crate::output::OutputDir;
use crate::plot::{Plot, Series};
use crate::sweep::SweepResult;
use crate::verdict::verdict_word;
use psim_common::quadratic::QuadraticConfig;
use psim_common::theory::{time_bound, TimeBoundInputs};
use psim_common::{
    ClusterConfig, ConfigError, Consistency, EngineConfig, EngineKind, Experiment, Grid,
    ObjectiveConfig, RuleKind, RunConfig, RunResult, Setting,
};
use psim_engine::time_to_target;
use serde::Serialize;
use std::fmt::Write as _;

/// Worker counts n.
pub const WORKERS: [usize; 5] = [1, 10, 100, 1000, 10_000];
/// Step sizes η tried for every method and n (the best is kept).
pub const STEP_SIZES: [f64; 4] = [0.03, 0.1, 0.3, 1.0];
/// Momenta of the heavy-ball ASGD axis.
pub const MOMENTA: [f64; 5] = [0.0, 0.3, 0.5, 0.7, 0.9];
/// Worker counts of the momentum axis.
pub const MOMENTUM_WORKERS: [usize; 5] = [1, 3, 10, 30, 100];
/// Step sizes of the momentum axis (ASGD at n = 100 needs η ≲ 1/(L·τ),
/// τ its staleness, so the grid reaches lower).
pub const MOMENTUM_STEP_SIZES: [f64; 4] = [0.003, 0.01, 0.03, 0.1];
/// The √i profile.
pub const PROFILE: &str = "profile:0+1*i^0.5";

/// One method: its name and how it sets a run for n workers and the
/// papers' R = B = max(1, ⌈σ²/ε⌉).
pub struct Method {
    /// Name in the tables.
    pub name: &'static str,
    /// The consistency (server policy) for n workers and R = B.
    pub consistency: fn(usize, u64) -> String,
    /// The update rule.
    pub rule: &'static str,
}

/// The methods compared, one row each.
pub const METHODS: &[Method] = &[
    Method {
        name: "ASGD",
        consistency: |_, _| "asp".into(),
        rule: "sgd",
    },
    Method {
        name: "delay-adaptive ASGD",
        consistency: |_, _| "asp".into(),
        rule: "delay-adaptive",
    },
    Method {
        name: "Ringmaster",
        consistency: |_, r| format!("ringmaster:{r}"),
        rule: "sgd",
    },
    Method {
        name: "Rennala",
        consistency: |_, b| format!("rennala:{b}"),
        rule: "sgd",
    },
    Method {
        name: "m-sync",
        consistency: |n, b| format!("ksync:{}", (b as usize).min(n)),
        rule: "sgd",
    },
    Method {
        name: "minibatch SGD",
        consistency: |_, _| "bsp".into(),
        rule: "sgd",
    },
];

/// One (method, n) after tuning η.
#[derive(Debug, Clone, Serialize)]
pub struct Row {
    /// Method name (or `ASGD μ=…` on the momentum axis).
    pub method: String,
    /// Workers n.
    pub workers: usize,
    /// Momentum μ.
    pub momentum: f64,
    /// The best η of the grid (the smallest median time to ε).
    pub step_size: Option<f64>,
    /// Median time to ε at that η (virtual seconds), `None` if no η reached ε in most runs.
    pub time: Option<f64>,
    /// Runs that reached ε at that η, of all.
    pub reached: (usize, usize),
    /// Relative standard error of that median (from the runs' spread).
    pub rel_se: f64,
    /// The bound T*(n).
    pub bound: f64,
    /// Workers worth using, m*.
    pub m_star: usize,
}

/// The papers' R = B = max(1, ⌈σ²/ε⌉).
fn threshold(q: &QuadraticConfig, eps: f64) -> u64 {
    (q.noise_variance / eps).ceil().max(1.0) as u64
}

fn quadratic(e: &Experiment) -> Result<QuadraticConfig, ScenarioError> {
    match &e.base.objective {
        ObjectiveConfig::Quadratic(q) => Ok(q.clone()),
        _ => Err(ScenarioError::Unsuitable(
            "scenario `heterogeneous` needs the `quadratic` objective".into(),
        )),
    }
}

fn config_err(e: ConfigError) -> ScenarioError {
    ScenarioError::Sweep(e.into())
}

/// A planned point: (method, n, μ, η, its configuration).
type Point = (String, usize, f64, f64, RunConfig);

/// The planned points, in order: methods × n × η, then μ × n × η.
fn points(e: &Experiment) -> Result<Vec<Point>, ScenarioError> {
    let q = quadratic(e)?;
    if !(q.gap() > 0.0 && q.gap().is_finite()) {
        return Err(ScenarioError::Unsuitable(format!(
            "invalid `objective.start` = {}: must be non-zero, with a finite gap Δ = f(x⁰) − f* (here {}): the bound T* and the time to ε need a start away from the minimum",
            psim_common::num::show(q.start),
            psim_common::num::show(q.gap())
        )));
    }
    let eps = e.base.target_error.ok_or_else(|| {
        ScenarioError::Unsuitable("scenario `heterogeneous` needs a target error ε".into())
    })?;
    let r = threshold(&q, eps);
    let mut out = Vec::new();
    let cfg = |n: usize,
               consistency: &str,
               rule: &str,
               eta: f64,
               mu: f64|
     -> Result<RunConfig, ScenarioError> {
        let mut c = e.base.clone();
        c.step_size = eta;
        c.momentum = mu;
        c.rule = rule.parse::<RuleKind>().map_err(config_err)?;
        let cl = c.engine.cluster_mut().ok_or_else(|| {
            ScenarioError::Unsuitable(
                "scenario `heterogeneous` runs on the virtual-time engine".into(),
            )
        })?;
        cl.workers = n;
        cl.consistency = consistency.parse::<Consistency>().map_err(config_err)?;
        c.validate().map_err(config_err)?;
        Ok(c)
    };
    for m in METHODS {
        for &n in &WORKERS {
            for &eta in &STEP_SIZES {
                let c = cfg(n, &(m.consistency)(n, r), m.rule, eta, 0.0)?;
                out.push((m.name.to_string(), n, 0.0, eta, c));
            }
        }
    }
    for &mu in &MOMENTA {
        for &n in &MOMENTUM_WORKERS {
            for &eta in &MOMENTUM_STEP_SIZES {
                let c = cfg(n, "asp", "heavy-ball", eta, mu)?;
                out.push((format!("ASGD μ={mu}"), n, mu, eta, c));
            }
        }
    }
    Ok(out)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    let k = v.len();
    if k == 0 {
        f64::INFINITY
    } else if k % 2 == 1 {
        v[k / 2]
    } else {
        0.5 * (v[k / 2 - 1] + v[k / 2])
    }
}

/// The bound T*(n) and m* for the experiment's profile and quadratic.
fn bound(e: &Experiment, n: usize) -> Result<(f64, usize), ScenarioError> {
    let q = quadratic(e)?;
    let mut cluster = e.base.cluster().cloned().unwrap_or_default();
    cluster.workers = n;
    let taus = cluster.mean_worker_times(e.base.seed, 0).ok_or_else(|| {
        ScenarioError::Unsuitable("the workers' mean times are not finite".into())
    })?;
    let b = time_bound(
        &taus,
        &TimeBoundInputs {
            smoothness: q.smoothness,
            gap: q.gap(),
            variance: q.noise_variance,
            epsilon: e.base.target_error.unwrap_or(1.0),
        },
    )
    .map_err(config_err)?;
    Ok((b.seconds, b.workers))
}

/// The median time to ε over runs (a run that did not reach ε, NaN,
/// counts as +∞: the median is finite only when most runs reached it) and
/// its relative standard error, ≈ 1.25·sd/√r of the reached runs (the
/// normal approximation of a median's error).
fn median_and_se(times: &[f64]) -> (f64, f64) {
    let reached: Vec<f64> = times.iter().copied().filter(|t| !t.is_nan()).collect();
    let all: Vec<f64> = times
        .iter()
        .map(|t| if t.is_nan() { f64::INFINITY } else { *t })
        .collect();
    let med = median(all);
    let sd = if reached.len() > 1 {
        let m = reached.iter().sum::<f64>() / reached.len() as f64;
        (reached.iter().map(|t| (t - m) * (t - m)).sum::<f64>() / (reached.len() - 1) as f64).sqrt()
    } else {
        0.0
    };
    let rel_se = if med.is_finite() && med > 0.0 {
        1.25 * sd / (times.len() as f64).sqrt() / med
    } else {
        0.0
    };
    (med, rel_se)
}

/// The tuned rows from the finished points.
pub fn rows(e: &Experiment, done: &SweepResult) -> Result<Vec<Row>, ScenarioError> {
    let planned = points(e)?;
    let mut out: Vec<Row> = Vec::new();
    for ((method, n, mu, eta, _), p) in planned.iter().zip(&done.points) {
        let times: Vec<f64> = p.rows.iter().map(|r| r.extras[0]).collect();
        let reached: Vec<f64> = times.iter().copied().filter(|t| !t.is_nan()).collect();
        let runs = times.len();
        let (med, rel_se) = median_and_se(&times);
        let row = out
            .iter_mut()
            .find(|r| r.method == *method && r.workers == *n);
        let better = |r: &Row| r.time.is_none_or(|t| med < t);
        match row {
            Some(r) if better(r) && med.is_finite() => {
                r.step_size = Some(*eta);
                r.time = Some(med);
                r.reached = (reached.len(), runs);
                r.rel_se = rel_se;
            }
            Some(_) => {}
            None => {
                let (b, m) = bound(e, *n)?;
                out.push(Row {
                    method: method.clone(),
                    workers: *n,
                    momentum: *mu,
                    step_size: med.is_finite().then_some(*eta),
                    time: med.is_finite().then_some(med),
                    reached: (reached.len(), runs),
                    rel_se,
                    bound: b,
                    m_star: m,
                });
            }
        }
    }
    Ok(out)
}

/// One (n, η, μ) of the momentum axis, η not tuned.
#[derive(Debug, Clone, Serialize)]
pub struct MomentumCell {
    /// Workers n.
    pub workers: usize,
    /// Step size η.
    pub step_size: f64,
    /// Momentum μ.
    pub momentum: f64,
    /// Median time to ε (virtual seconds), `None` unless most runs reached it.
    pub time: Option<f64>,
    /// Relative standard error of that median.
    pub rel_se: f64,
}

/// The momentum axis's cells, from the finished points.
pub fn momentum_cells(
    e: &Experiment,
    done: &SweepResult,
) -> Result<Vec<MomentumCell>, ScenarioError> {
    let planned = points(e)?;
    Ok(planned
        .iter()
        .zip(&done.points)
        .filter(|((method, ..), _)| method.starts_with("ASGD μ="))
        .map(|((_, n, mu, eta, _), p)| {
            let times: Vec<f64> = p.rows.iter().map(|r| r.extras[0]).collect();
            let (med, rel_se) = median_and_se(&times);
            MomentumCell {
                workers: *n,
                step_size: *eta,
                momentum: *mu,
                time: med.is_finite().then_some(med),
                rel_se,
            }
        })
        .collect())
}

/// The momenta whose median time at (n, η) is within 3 standard errors
/// (combined with the fastest's) of the fastest: the best μ up to the
/// noise of the runs. Empty when no μ reached ε.
fn near_best(cells: &[MomentumCell], n: usize, eta: f64) -> Vec<f64> {
    let at: Vec<&MomentumCell> = cells
        .iter()
        .filter(|c| c.workers == n && c.step_size == eta)
        .collect();
    let Some(best) = at
        .iter()
        .filter_map(|c| c.time.map(|t| (t, c.rel_se)))
        .min_by(|a, b| a.0.total_cmp(&b.0))
    else {
        return Vec::new();
    };
    at.iter()
        .filter(|c| {
            c.time.is_some_and(|t| {
                t <= best.0 * (1.0 + 3.0 * (best.1.powi(2) + c.rel_se.powi(2)).sqrt())
            })
        })
        .map(|c| c.momentum)
        .collect()
}

/// The best-μ table of the momentum axis: one line per η, the near-best
/// momenta per n.
fn momentum_table(cells: &[MomentumCell]) -> String {
    let mut t = String::new();
    let _ = write!(t, "best μ of heavy-ball ASGD at fixed η (μ within 3 standard errors of the fastest; – none reached ε)\n{:>8}", "η \\ n");
    for n in MOMENTUM_WORKERS {
        let _ = write!(t, " {n:>14}");
    }
    t.push('\n');
    for eta in MOMENTUM_STEP_SIZES {
        let _ = write!(t, "{eta:>8}");
        for n in MOMENTUM_WORKERS {
            let b = near_best(cells, n, eta);
            let text = if b.is_empty() {
                "–".to_string()
            } else {
                b.iter()
                    .map(|m| m.to_string())
                    .collect::<Vec<_>>()
                    .join(",")
            };
            let _ = write!(t, " {text:>14}");
        }
        t.push('\n');
    }
    t
}

fn of<'a>(rows: &'a [Row], method: &str) -> Vec<&'a Row> {
    rows.iter().filter(|r| r.method == method).collect()
}

/// The verdict lines.
pub fn verdicts(rows: &[Row], cells: &[MomentumCell]) -> String {
    let mut t = String::new();
    // 1. Adding slow workers never hurts Rennala and Ringmaster: each
    //    step up in n keeps the time within 3 standard errors (the two
    //    medians' combined relative error) of the previous one.
    for name in ["Rennala", "Ringmaster"] {
        let rs = of(rows, name);
        let ok = rs.windows(2).all(|w| match (w[0].time, w[1].time) {
            (Some(a), Some(b)) => {
                let tol = 3.0 * (w[0].rel_se.powi(2) + w[1].rel_se.powi(2)).sqrt();
                b <= a * (1.0 + tol)
            }
            _ => false,
        });
        let _ = writeln!(t, "adding slow workers never hurts {name} (time to ε at each n ≤ the previous n's × (1 + 3 standard errors)): {}", verdict_word(ok));
    }
    // 2. Within a constant factor of the bound: the ratio time/T* varies
    //    by at most 4× over n (a method off the bound by a factor growing
    //    with n, like ASGD's, fails this).
    for name in ["Rennala", "Ringmaster"] {
        let ratios: Vec<f64> = of(rows, name)
            .iter()
            .filter_map(|r| r.time.map(|t| t / r.bound))
            .collect();
        let ok = ratios.len() == WORKERS.len() && {
            let (lo, hi) = ratios
                .iter()
                .fold((f64::INFINITY, 0.0f64), |(l, h), &r| (l.min(r), h.max(r)));
            hi <= 4.0 * lo
        };
        let _ = writeln!(t, "{name} stays within a constant factor of the bound (time/T* within a factor 4 over n = 1…10⁴): {}", verdict_word(ok));
    }
    // 3. Plain ASGD and minibatch SGD degrade: at the largest n their time
    //    is at least twice their best over n (or ε is not reached).
    for name in ["ASGD", "minibatch SGD"] {
        let rs = of(rows, name);
        let best = rs
            .iter()
            .filter_map(|r| r.time)
            .fold(f64::INFINITY, f64::min);
        let ok = rs
            .last()
            .is_some_and(|r| r.time.is_none_or(|t| t >= 2.0 * best));
        let _ = writeln!(t, "{name} degrades with slow workers (time at n = 10⁴ ≥ 2× its best n, or ε not reached): {}", verdict_word(ok));
    }
    // 4. Heavy-ball ASGD at a fixed η: the best μ falls as n grows. At
    //    each η, from one n to the next the best μ may not rise (the
    //    smallest near-best μ at the larger n is at most the largest at the
    //    smaller n: a rise beyond 3 standard errors fails), and from n = 1
    //    to the largest n it must fall (every near-best μ at the largest n
    //    below every one at n = 1) at every η where both reach ε, of which
    //    there must be at least two.
    let mut compared = 0;
    let mut ok = true;
    for eta in MOMENTUM_STEP_SIZES {
        let sets: Vec<Vec<f64>> = MOMENTUM_WORKERS
            .iter()
            .map(|&n| near_best(cells, n, eta))
            .filter(|b| !b.is_empty())
            .collect();
        let lo = |b: &[f64]| b.iter().copied().fold(f64::INFINITY, f64::min);
        let hi = |b: &[f64]| b.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        ok &= sets.windows(2).all(|w| lo(&w[1]) <= hi(&w[0]));
        let (first, last) = (
            near_best(cells, MOMENTUM_WORKERS[0], eta),
            near_best(cells, *MOMENTUM_WORKERS.last().expect("workers"), eta),
        );
        if !first.is_empty() && !last.is_empty() {
            compared += 1;
            ok &= hi(&last) < lo(&first);
        }
    }
    ok &= compared >= 2;
    let _ = writeln!(
        t,
        "with heavy-ball momentum the best μ of ASGD falls as n grows (at each fixed η: never rises beyond 3 standard errors from one n to the next, and lower at n = {} than at n = 1 wherever both reach ε, {compared} η): {}",
        MOMENTUM_WORKERS.last().expect("workers"),
        verdict_word(ok)
    );
    t
}

fn table(rows: &[Row]) -> String {
    let mut t = String::new();
    let _ = writeln!(
        t,
        "{:<22} {:>6} {:>5} | {:>6} {:>12} {:>7} | {:>12} {:>6} {:>8}",
        "method", "n", "μ", "best η", "time to ε", "reached", "bound T*", "m*", "time/T*"
    );
    for r in rows {
        let _ = writeln!(
            t,
            "{:<22} {:>6} {:>5} | {:>6} {:>12} {:>7} | {:>12.1} {:>6} {:>8}",
            r.method,
            r.workers,
            r.momentum,
            r.step_size.map_or("–".into(), |e| e.to_string()),
            r.time.map_or("not reached".into(), |t| format!("{t:.1}")),
            format!("{}/{}", r.reached.0, r.reached.1),
            r.bound,
            r.m_star,
            r.time.map_or("–".into(), |t| format!("{:.2}", t / r.bound))
        );
    }
    t
}

/// The workers' compute times as configured: the √i profile at the
/// defaults, otherwise what `--worker-compute` and `--compute-time` set.
fn profile_label(e: &Experiment) -> String {
    let Some(c) = e.base.cluster() else {
        return String::new();
    };
    match &c.worker_compute {
        Some(w)
            if w.to_string() == PROFILE && c.compute_time == psim_common::Delay::Constant(1.0) =>
        {
            format!("τ_i = √i, {PROFILE}")
        }
        Some(w) => format!("worker compute {w}, compute time {}", c.compute_time),
        None => format!("compute time {}", c.compute_time),
    }
}

fn plot(rows: &[Row], profile: &str) -> Plot {
    let mut series: Vec<Series> = METHODS
        .iter()
        .map(|m| Series {
            label: m.name.into(),
            points: of(rows, m.name)
                .iter()
                .map(|r| (r.workers as f64, r.time.unwrap_or(f64::NAN)))
                .collect(),
            markers: true,
            ..Default::default()
        })
        .collect();
    series.push(Series {
        label: "bound T* (up to a constant)".into(),
        points: of(rows, "Rennala")
            .iter()
            .map(|r| (r.workers as f64, r.bound))
            .collect(),
        dashed: true,
        ..Default::default()
    });
    Plot {
        title: format!("time to ε vs workers ({profile}), best η per method"),
        x_label: "workers n".into(),
        y_label: "virtual time to ε".into(),
        log_x: true,
        log_y: true,
        series,
        ..Default::default()
    }
}

/// `psim reproduce heterogeneous`.
pub struct Heterogeneous;

impl Scenario for Heterogeneous {
    fn name(&self) -> &'static str {
        "heterogeneous"
    }

    fn title(&self) -> &'static str {
        "ASGD, delay-adaptive, Ringmaster, Rennala, m-sync, minibatch SGD on √i workers (n = 1…10⁴) beside the optimal time bound"
    }

    /// The quadratic (d = 100) to ε = 0.1 on the virtual-time engine, √i
    /// workers, 3 runs per point, at most 20 000 updates per run.
    fn experiment(&self) -> Experiment {
        Experiment {
            name: "heterogeneous".into(),
            base: RunConfig {
                momentum: 0.0,
                step_size: 0.1,
                steps: 20_000,
                runs: 3,
                seed: 1,
                record_every: 1,
                target_error: Some(0.1),
                objective: ObjectiveConfig::Quadratic(QuadraticConfig::default()),
                engine: EngineConfig::new(
                    EngineKind::VirtualTime,
                    ClusterConfig {
                        workers: 1,
                        compute_time: psim_common::Delay::Constant(1.0),
                        worker_compute: Some(PROFILE.parse().expect("the √i profile parses")),
                        ..ClusterConfig::default()
                    },
                ),
                ..RunConfig::default()
            },
            grid: Grid::default(),
            tradeoff: None,
        }
    }

    fn accepts(&self) -> &'static [Setting] {
        use Setting::*;
        &[
            Steps,
            Runs,
            Seed,
            TargetError,
            Objective,
            WorkerCompute,
            ComputeTime,
        ]
    }

    fn engines(&self) -> &'static [EngineKind] {
        &[EngineKind::VirtualTime]
    }

    fn plan(&self, e: &Experiment) -> Result<Plan, ScenarioError> {
        Ok(Plan {
            points: points(e)?
                .into_iter()
                .map(|(_, _, _, _, c)| PlannedPoint::new(c))
                .collect(),
            columns: vec!["time_to_target".into()],
            rows: true,
            batch: false,
        })
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
        let rows = rows(e, done)?;
        let cells = momentum_cells(e, done)?;
        out.write_json("summary.json", &rows)?;
        out.write_json("momentum.json", &cells)?;
        let profile = profile_label(e);
        out.write("heterogeneous.svg", plot(&rows, &profile).to_svg())?;
        let q = quadratic(e)?;
        let eps = e.base.target_error.unwrap_or(f64::NAN);
        let mut t = String::new();
        let _ = writeln!(
            t,
            "heterogeneous workers ({profile}), quadratic d = {}, L = {}, Δ = {:.3}, σ² = {}, ε = {eps} (‖∇f‖²); R = B = {}; η tuned over {:?} (heavy-ball ASGD: {:?}); {} runs per point, ≤ {} updates per run; T* is the bound up to its constant\n",
            q.dim,
            q.smoothness,
            q.gap(),
            q.noise_variance,
            threshold(&q, eps),
            STEP_SIZES,
            MOMENTUM_STEP_SIZES,
            e.base.runs,
            e.base.steps
        );
        t.push_str(&table(&rows));
        t.push('\n');
        t.push_str(&momentum_table(&cells));
        t.push('\n');
        t.push_str(&verdicts(&rows, &cells));
        Ok(t)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(method: &str, n: usize, time: Option<f64>, bound: f64) -> Row {
        Row {
            method: method.into(),
            workers: n,
            momentum: 0.0,
            step_size: time.map(|_| 0.1),
            time,
            reached: (3, 3),
            rel_se: 0.01,
            bound,
            m_star: 1,
        }
    }

    #[test]
    fn verdicts_follow_the_rows() {
        let mut rows = Vec::new();
        for (k, &n) in WORKERS.iter().enumerate() {
            let b = 100.0 / (k + 1) as f64;
            rows.push(row("Rennala", n, Some(b * 0.5), b));
            rows.push(row("Ringmaster", n, Some(b * 0.5), b));
            rows.push(row("ASGD", n, (k < 2).then_some(10.0), b));
            rows.push(row("minibatch SGD", n, Some(10.0 * (k + 1) as f64), b));
        }
        // Best μ 0.9 at n = 1 falling to 0 at the largest n, at every η.
        let mut cells = Vec::new();
        for (k, &n) in MOMENTUM_WORKERS.iter().enumerate() {
            for &eta in &MOMENTUM_STEP_SIZES {
                for &mu in &MOMENTA {
                    // Fastest at μ* = 0.9 − 0.225·k, others 20 % slower per 0.1 away.
                    let star = 0.9 - 0.225 * k as f64;
                    cells.push(MomentumCell {
                        workers: n,
                        step_size: eta,
                        momentum: mu,
                        time: Some(10.0 * (1.0 + 2.0 * (mu - star).abs())),
                        rel_se: 0.01,
                    });
                }
            }
        }
        let v = verdicts(&rows, &cells);
        assert_eq!(crate::verdict::verdict(&v), Some(true), "{v}");
        // The best μ rising with n at one η fails the momentum verdict.
        let mut rising = cells.clone();
        for c in rising
            .iter_mut()
            .filter(|c| c.step_size == MOMENTUM_STEP_SIZES[0])
        {
            let k = MOMENTUM_WORKERS
                .iter()
                .position(|&n| n == c.workers)
                .unwrap();
            let star = 0.225 * k as f64;
            c.time = Some(10.0 * (1.0 + 2.0 * (c.momentum - star).abs()));
        }
        let v = verdicts(&rows, &rising);
        assert!(
            v.contains("best μ of ASGD falls") && v.contains(": DOES NOT HOLD"),
            "{v}"
        );
        // Rennala 10 % slower at the largest n than at the one before (3
        // standard errors of 1 % each allow ≈ 4 %): adding workers hurt it.
        let before = WORKERS.len() - 2;
        let prev = 100.0 / (before + 1) as f64 * 0.5;
        let last = rows.iter_mut().rfind(|r| r.method == "Rennala").unwrap();
        last.time = Some(prev * 1.1);
        let v = verdicts(&rows, &cells);
        assert!(
            v.contains("never hurts Rennala (") && v.contains(": DOES NOT HOLD"),
            "{v}"
        );
        // Ringmaster drifting away from the bound by more than 4×.
        let mut rows2: Vec<Row> = rows
            .iter()
            .filter(|r| r.method != "Rennala")
            .cloned()
            .collect();
        for r in rows2.iter_mut().filter(|r| r.method == "Ringmaster") {
            r.bound = 1.0 / r.workers as f64;
        }
        assert_eq!(
            crate::verdict::verdict(&verdicts(&rows2, &cells)),
            Some(false)
        );
    }
}
