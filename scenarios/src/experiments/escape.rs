//! Escape times from saddles and sharp minima.
//!
//! * E4 (`saddle-escape`, 003 Fig. 5): f(w) = ½w'Aw, A = diag(1, −0.1), start
//!   at the saddle, momentum μ from 0 to 0.9; steps until ‖w‖ ≥ R. Theory:
//!   the escape time of the discrete heavy-ball recurrence along the escape
//!   direction, [`saddle_escape_steps_discrete`]; beside it its diffusion
//!   limit, the unstable OU escape time of [`saddle_escape_steps_ou`] with
//!   γ = γ₁/(1−μ), σ = σ₂/(1−μ), which runs low at μ = 0.9 (its growth rate
//!   γ₁η/(1−μ) exceeds the recurrence's log z₊ by 9 % at η = 0.01).
//! * E6 (`escape-times`, 002 §4–6): plain SGD leaving a strict saddle
//!   (A = diag(1, −1)) for step sizes η → 0, against (1/(2γ₁))·η⁻¹ log η⁻¹;
//!   the same saddle for growing mini-batches; and the sharp minimum of the
//!   wells landscape for growing mini-batches, against Kramers' law.

use super::common::{mean, quantile};
use crate::catalogue::{Scenario, ScenarioError};
use crate::executor::{Plan, PlannedPoint};
use crate::output::OutputDir;
use crate::plot::{Plot, Series};
use crate::sweep::{run_plan, PointResult, SweepOptions, SweepResult};
use psim_common::landscape::{batch_noise_scale, SaddleConfig, Wells, WellsConfig};
use psim_common::theory::{
    kramers_escape_steps, saddle_escape_steps, saddle_escape_steps_discrete, saddle_escape_steps_ou,
};
use psim_common::{Experiment, Grid, ObjectiveConfig, Outcome, RuleKind, RunConfig};
use serde::Serialize;
use std::fmt::Write;

/// Escape statistics of one configuration.
#[derive(Debug, Clone, Serialize)]
pub struct EscapeRow {
    /// What varies (μ, η or m), as shown in tables.
    pub label: String,
    /// The varied value.
    pub x: f64,
    /// Runs.
    pub runs: usize,
    /// Runs that escaped within the step budget.
    pub escaped: usize,
    /// Mean escape step over runs (censored runs count as the budget).
    pub mean_steps: f64,
    /// Median escape step.
    pub median_steps: f64,
    /// 10 % and 90 % quantiles.
    pub p10: f64,
    /// 90 % quantile.
    pub p90: f64,
    /// Standard error of `mean_steps` (sample sd / √runs).
    pub sem_steps: f64,
    /// The theory's expected escape steps.
    pub theory_steps: f64,
    /// The diffusion (OU) limit of the theory, where one applies (else NaN).
    pub ou_steps: f64,
}

/// How many standard errors of the mean a measured escape time may be from
/// the discrete-recurrence theory. The mean of n runs has standard error
/// sd/√n (escape steps have a coefficient of variation ≈ 0.3: sd(log|Z|) =
/// π/√8 over a log of 3–4); 3 standard errors leave a false alarm of 0.27 %
/// per row, under 2 % for E4's six rows, so the verdict holds for ≥ 9 seeds
/// in 10. The recurrence's own approximations (the z₋ transient, the last
/// step's overshoot, the stable coordinate's share of ‖w‖) are ≈ 1 % here,
/// inside one standard error at 100 runs.
pub const THEORY_SE: f64 = 3.0;

impl EscapeRow {
    /// Whether the mean is within [`THEORY_SE`] standard errors of the theory.
    pub fn on_theory(&self) -> bool {
        (self.mean_steps - self.theory_steps).abs() < THEORY_SE * self.sem_steps
    }
}

/// One escape study point: its configuration and what it is compared with.
#[derive(Debug, Clone)]
pub struct Spec {
    /// The runs' configuration (an objective whose error reaches 0 on escape).
    pub cfg: RunConfig,
    /// Row label.
    pub label: String,
    /// The row's x (μ, η or the batch size).
    pub x: f64,
    /// Theory: the discrete recurrence's escape steps.
    pub theory: f64,
    /// Theory: the OU diffusion limit's escape steps (NaN when none).
    pub ou: f64,
}

/// The plan of a list of escape study points (scalar engine, rows read back).
fn specs_plan(specs: &[Spec]) -> Plan {
    Plan {
        points: specs
            .iter()
            .map(|s| PlannedPoint::new(s.cfg.clone()))
            .collect(),
        columns: Vec::new(),
        rows: true,
        batch: false,
    }
}

/// The escape steps of the runs of `spec` from their outcomes
/// (`TargetErrorReached` at the escape step; the step budget otherwise).
fn escape_row(spec: &Spec, point: &PointResult) -> EscapeRow {
    let runs = &point.rows;
    let steps: Vec<f64> = runs
        .iter()
        .map(|r| match r.outcome {
            Outcome::TargetErrorReached { step } => step as f64,
            _ => spec.cfg.steps as f64,
        })
        .collect();
    let escaped = runs
        .iter()
        .filter(|r| matches!(r.outcome, Outcome::TargetErrorReached { .. }))
        .count();
    let m = mean(&steps);
    let n = steps.len() as f64;
    let sd = (steps.iter().map(|s| (s - m).powi(2)).sum::<f64>() / (n - 1.0).max(1.0)).sqrt();
    EscapeRow {
        label: spec.label.clone(),
        x: spec.x,
        runs: runs.len(),
        escaped,
        sem_steps: sd / n.sqrt(),
        ou_steps: spec.ou,
        mean_steps: m,
        median_steps: quantile(&steps, 0.5),
        p10: quantile(&steps, 0.1),
        p90: quantile(&steps, 0.9),
        theory_steps: spec.theory,
    }
}

/// An escape configuration: stop at error ≤ 10⁻¹² (the landscapes' error
/// is exactly 0 once escaped), record often enough to time it to 1 %.
fn escape_config(base: &RunConfig, expected_steps: f64) -> RunConfig {
    RunConfig {
        target_error: Some(1e-12),
        record_every: ((expected_steps / 200.0) as u64).clamp(1, 1000),
        rule: RuleKind::HeavyBall,
        ..base.clone()
    }
}

fn saddle(cfg: &RunConfig) -> Result<SaddleConfig, ScenarioError> {
    match &cfg.objective {
        ObjectiveConfig::Saddle(s) => Ok(s.clone()),
        _ => Err(ScenarioError::Unsuitable(
            "this scenario needs a `saddle` objective".into(),
        )),
    }
}

fn table(
    s: &mut String,
    head: &str,
    rows: &[EscapeRow],
    extra: impl Fn(&EscapeRow) -> String,
    extra_head: &str,
) {
    let _ = writeln!(
        s,
        "{:>10} | {:>8} {:>10} {:>7} {:>10} {:>10} {:>10} | {:>10} {:>7} {:>6} {:>10} | {}",
        head,
        "escaped",
        "mean",
        "± se",
        "median",
        "p10",
        "p90",
        "theory",
        "ratio",
        "z",
        "OU limit",
        extra_head
    );
    for r in rows {
        let ou = if r.ou_steps.is_nan() {
            "–".to_string()
        } else {
            format!("{:.0}", r.ou_steps)
        };
        let _ = writeln!(
            s,
            "{:>10} | {:>8} {:>10.0} {:>7.1} {:>10.0} {:>10.0} {:>10.0} | {:>10.0} {:>7.3} {:>6.1} {:>10} | {}",
            r.label,
            format!("{}/{}", r.escaped, r.runs),
            r.mean_steps,
            r.sem_steps,
            r.median_steps,
            r.p10,
            r.p90,
            r.theory_steps,
            r.mean_steps / r.theory_steps,
            (r.mean_steps - r.theory_steps) / r.sem_steps,
            ou,
            extra(r)
        );
    }
}

fn steps_plot(
    title: &str,
    x_label: &str,
    rows: &[EscapeRow],
    log_x: bool,
    theory_label: &str,
) -> Plot {
    Plot {
        title: title.into(),
        x_label: x_label.into(),
        y_label: "escape steps".into(),
        log_x,
        log_y: true,
        series: vec![
            Series {
                label: "measured mean (band 10–90%)".into(),
                points: rows.iter().map(|r| (r.x, r.mean_steps)).collect(),
                band: rows.iter().map(|r| (r.x, r.p10.max(1.0), r.p90)).collect(),
                markers: true,
                dashed: false,
                color: None,
            },
            Series {
                label: theory_label.into(),
                points: rows.iter().map(|r| (r.x, r.theory_steps)).collect(),
                markers: false,
                dashed: true,
                band: vec![],
                color: None,
            },
        ],
        ..Default::default()
    }
}

fn write_rows(out: &OutputDir, name: &str, rows: &[EscapeRow]) -> Result<(), ScenarioError> {
    out.write_csv(
        name,
        &[
            "label",
            "x",
            "runs",
            "escaped",
            "mean_steps",
            "median_steps",
            "p10",
            "p90",
            "theory_steps",
            "sem_steps",
            "ou_steps",
        ],
        rows.iter().map(|r| {
            vec![
                r.label.clone(),
                r.x.to_string(),
                r.runs.to_string(),
                r.escaped.to_string(),
                r.mean_steps.to_string(),
                r.median_steps.to_string(),
                r.p10.to_string(),
                r.p90.to_string(),
                r.theory_steps.to_string(),
                r.sem_steps.to_string(),
                r.ou_steps.to_string(),
            ]
        }),
    )?;
    Ok(())
}

// ---------------------------------------------------------------- E4

/// E4's result: escape steps per momentum.
#[derive(Debug, Clone, Serialize)]
pub struct SaddleEscape {
    /// One row per μ, in grid order.
    pub rows: Vec<EscapeRow>,
    /// Step size.
    pub step_size: f64,
}

/// E4's points: every μ of `e.grid.momentum` (or the base μ) on the base saddle.
pub fn saddle_escape_specs(e: &Experiment) -> Result<Vec<Spec>, ScenarioError> {
    let s = saddle(&e.base)?;
    let eta = e.base.step_size;
    let (gamma1, idx) = s
        .curvature
        .iter()
        .enumerate()
        .map(|(i, c)| (-c, i))
        .fold((f64::NEG_INFINITY, 0), |a, b| if b.0 > a.0 { b } else { a });
    let sigma = s.noise[idx] * batch_noise_scale(s.batch_size, s.population);
    let mus = if e.grid.momentum.is_empty() {
        vec![e.base.momentum]
    } else {
        e.grid.momentum.clone()
    };
    Ok(mus
        .into_iter()
        .map(|mu| {
            let theory = saddle_escape_steps_discrete(eta, gamma1, sigma, s.escape_radius, mu);
            let ou = saddle_escape_steps_ou(eta, gamma1, sigma, s.escape_radius, mu);
            let cfg = escape_config(
                &RunConfig {
                    momentum: mu,
                    ..e.base.clone()
                },
                theory,
            );
            Spec {
                cfg,
                label: format!("μ={mu}"),
                x: mu,
                theory,
                ou,
            }
        })
        .collect())
}

/// Runs E4 through the executor, in memory.
pub fn run_saddle_escape(
    e: &Experiment,
    opts: &SweepOptions<'_>,
) -> Result<SaddleEscape, ScenarioError> {
    let specs = saddle_escape_specs(e)?;
    let done = run_plan(e, &specs_plan(&specs), None, opts)?;
    Ok(analyse_saddle_escape(e, &specs, &done))
}

/// E4's analysis over its finished points.
pub fn analyse_saddle_escape(e: &Experiment, specs: &[Spec], done: &SweepResult) -> SaddleEscape {
    SaddleEscape {
        rows: specs
            .iter()
            .zip(&done.points)
            .map(|(s, p)| escape_row(s, p))
            .collect(),
        step_size: e.base.step_size,
    }
}

impl SaddleEscape {
    /// The headline: mean escape steps fall as μ grows (strictly, point to
    /// point), and each mean is within [`THEORY_SE`] standard errors of the
    /// discrete-recurrence theory.
    pub fn headline_holds(&self) -> bool {
        self.rows
            .windows(2)
            .all(|w| w[1].mean_steps < w[0].mean_steps)
            && self.rows.iter().all(EscapeRow::on_theory)
    }

    /// The terminal report.
    pub fn report(&self, e: &Experiment) -> String {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "E4 · stochastic momentum escapes a saddle faster (003, Figure 5)"
        );
        if let ObjectiveConfig::Saddle(c) = &e.base.objective {
            let _ = writeln!(s, "f(w) = ½w'Aw, A = diag{:?}, w₀ = 0 (the saddle), Gaussian gradient noise sd {:?} (batch {}), escape when ‖w‖ ≥ {}", c.curvature, c.noise, c.batch_size, c.escape_radius);
        }
        let _ = writeln!(
            s,
            "heavy ball, η = {}, {} runs per μ, at most {} steps, seed {}",
            self.step_size, e.base.runs, e.base.steps, e.base.seed
        );
        let _ = writeln!(s, "theory: the heavy-ball recurrence along the escape direction, u' = (1+μ+ηγ₁)u − μu₋ + ησ₂ξ with roots z± ; E[T] = (log(R/amp) + (γ_E + log 2)/2)/log z₊, amp = ησ₂/((z₊−z₋)√(1−z₊⁻²))");
        let _ = writeln!(s, "OU limit (η → 0): (1/2γ)(log η⁻¹ + 2 log(R√(2γ)/σ) + γ_E + log 2)/η with γ = γ₁/(1−μ), σ = σ₂/(1−μ); z = (mean − theory)/se\n");
        table(&mut s, "μ", &self.rows, |_| String::new(), "");
        let _ = writeln!(
            s,
            "\nheadline (mean escape steps fall as μ grows, each within {THEORY_SE} standard errors of the theory): {}",
            crate::verdict::verdict_word(self.headline_holds())
        );
        s
    }

    /// Writes `escape.csv`, `saddle-escape.svg`, `summary.json`, `report.txt`.
    pub fn write(&self, e: &Experiment, out: &OutputDir) -> Result<(), ScenarioError> {
        out.write_json("summary.json", self)?;
        write_rows(out, "escape.csv", &self.rows)?;
        out.write(
            "saddle-escape.svg",
            steps_plot(
                "E4: steps to escape the saddle vs momentum",
                "momentum μ",
                &self.rows,
                false,
                "theory (discrete recurrence)",
            )
            .to_svg(),
        )?;
        out.write("report.txt", self.report(e))?;
        Ok(())
    }
}

/// `psim reproduce saddle-escape`.
pub struct SaddleEscapeScenario;

impl Scenario for SaddleEscapeScenario {
    fn name(&self) -> &'static str {
        "saddle-escape"
    }
    fn title(&self) -> &'static str {
        "E4 · momentum escapes a strict saddle faster (003, Figure 5)"
    }
    fn experiment(&self) -> Experiment {
        Experiment {
            name: "saddle-escape".into(),
            base: RunConfig {
                momentum: 0.0,
                step_size: 0.01,
                steps: 100_000,
                runs: 100,
                seed: 2003,
                objective: ObjectiveConfig::Saddle(SaddleConfig::default()),
                ..RunConfig::default()
            },
            grid: Grid {
                momentum: vec![0.0, 0.3, 0.5, 0.7, 0.8, 0.9],
                ..Default::default()
            },
            tradeoff: None,
        }
    }
    /// Escape runs set their own trace cadence and stop (at escape) and use
    /// heavy ball; the step budget caps runs that have not escaped.
    fn accepts(&self) -> &'static [psim_common::Setting] {
        use psim_common::Setting::*;
        &[Momentum, StepSize, Steps, Runs, Seed, Objective]
    }
    fn plan(&self, e: &Experiment) -> Result<Plan, ScenarioError> {
        Ok(specs_plan(&saddle_escape_specs(e)?))
    }
    fn analyse(
        &self,
        e: &Experiment,
        done: &SweepResult,
        out: &OutputDir,
    ) -> Result<String, ScenarioError> {
        let r = analyse_saddle_escape(e, &saddle_escape_specs(e)?, done);
        r.write(e, out)?;
        Ok(r.report(e))
    }
}

// ---------------------------------------------------------------- E6

/// Batch sizes of E6's saddle batch study.
pub const BATCH_SIZES: [u32; 4] = [1, 2, 4, 8];
/// Batch sizes of E6's sharp-minimum study (escape is exponential in m, so
/// m = 8 would outlast any budget).
pub const SHARP_BATCH_SIZES: [u32; 3] = [1, 2, 4];

/// E6's result.
#[derive(Debug, Clone, Serialize)]
pub struct EscapeTimes {
    /// Saddle escape per step size, smallest η last.
    pub by_step_size: Vec<EscapeRow>,
    /// Saddle escape per batch size at the base η.
    pub saddle_by_batch: Vec<EscapeRow>,
    /// Sharp-minimum escape per batch size (wells landscape).
    pub sharp_by_batch: Vec<EscapeRow>,
    /// γ₁ of the saddle.
    pub gamma1: f64,
}

/// The wells landscape and step size E6 uses for the sharp-minimum study.
pub fn wells_setup() -> (WellsConfig, f64) {
    (
        WellsConfig {
            noise: 8.0,
            ..WellsConfig::default()
        },
        0.02,
    )
}

/// E6's points in three groups: the base saddle at every η of
/// `e.grid.step_size` (or the base η), at every batch of [`BATCH_SIZES`],
/// then the sharp minimum of [`wells_setup`] at [`SHARP_BATCH_SIZES`].
pub fn escape_times_specs(e: &Experiment) -> Result<[Vec<Spec>; 3], ScenarioError> {
    let s = saddle(&e.base)?;
    let gamma1 = s.gamma1();
    let idx = s.curvature.iter().position(|c| -c == gamma1).unwrap_or(0);
    let sigma = |c: &SaddleConfig| c.noise[idx] * batch_noise_scale(c.batch_size, c.population);
    let etas = if e.grid.step_size.is_empty() {
        vec![e.base.step_size]
    } else {
        e.grid.step_size.clone()
    };
    let mut by_step_size = Vec::new();
    for eta in etas {
        let theory = saddle_escape_steps_discrete(eta, gamma1, sigma(&s), s.escape_radius, 0.0);
        let ou = saddle_escape_steps_ou(eta, gamma1, sigma(&s), s.escape_radius, 0.0);
        let cfg = escape_config(
            &RunConfig {
                step_size: eta,
                momentum: 0.0,
                steps: e.base.steps.max((theory * 20.0) as u64),
                ..e.base.clone()
            },
            theory,
        );
        by_step_size.push(Spec {
            cfg,
            label: format!("η={eta}"),
            x: eta,
            theory,
            ou,
        });
    }
    let eta = e.base.step_size;
    let mut saddle_by_batch = Vec::new();
    for m in BATCH_SIZES {
        let c = SaddleConfig {
            batch_size: m,
            ..s.clone()
        };
        let theory = saddle_escape_steps_discrete(eta, gamma1, sigma(&c), c.escape_radius, 0.0);
        let ou = saddle_escape_steps_ou(eta, gamma1, sigma(&c), c.escape_radius, 0.0);
        let cfg = escape_config(
            &RunConfig {
                momentum: 0.0,
                objective: ObjectiveConfig::Saddle(c),
                ..e.base.clone()
            },
            theory,
        );
        saddle_by_batch.push(Spec {
            cfg,
            label: format!("m={m}"),
            x: m as f64,
            theory,
            ou,
        });
    }
    let (w, w_eta) = wells_setup();
    let mut sharp_by_batch = Vec::new();
    for m in SHARP_BATCH_SIZES {
        let c = WellsConfig {
            batch_size: m,
            ..w.clone()
        };
        let g = Wells::new(&c)
            .map_err(|e| ScenarioError::Unsuitable(e.to_string()))?
            .geometry();
        let var = (c.noise * batch_noise_scale(m, c.population)).powi(2);
        let theory = kramers_escape_steps(
            w_eta,
            g.sharp_curvature,
            g.barrier_curvature,
            g.sharp_barrier_height,
            var,
        );
        let budget = (e.base.steps * 10).max(200_000);
        let cfg = escape_config(
            &RunConfig {
                momentum: 0.0,
                step_size: w_eta,
                steps: budget,
                objective: ObjectiveConfig::Wells(c),
                ..e.base.clone()
            },
            theory.min(budget as f64),
        );
        sharp_by_batch.push(Spec {
            cfg,
            label: format!("m={m}"),
            x: m as f64,
            theory,
            ou: f64::NAN,
        });
    }
    Ok([by_step_size, saddle_by_batch, sharp_by_batch])
}

/// Runs E6 through the executor, in memory.
pub fn run_escape_times(
    e: &Experiment,
    opts: &SweepOptions<'_>,
) -> Result<EscapeTimes, ScenarioError> {
    let specs = escape_times_specs(e)?;
    let done = run_plan(e, &specs_plan(&specs.concat()), None, opts)?;
    analyse_escape_times(e, &specs, &done)
}

/// E6's analysis over its finished points (the three groups in plan order).
pub fn analyse_escape_times(
    e: &Experiment,
    specs: &[Vec<Spec>; 3],
    done: &SweepResult,
) -> Result<EscapeTimes, ScenarioError> {
    let gamma1 = saddle(&e.base)?.gamma1();
    let mut points = done.points.iter();
    let mut group = |specs: &[Spec]| -> Vec<EscapeRow> {
        specs
            .iter()
            .zip(points.by_ref())
            .map(|(s, p)| escape_row(s, p))
            .collect()
    };
    let by_step_size = group(&specs[0]);
    let saddle_by_batch = group(&specs[1]);
    let sharp_by_batch = group(&specs[2]);
    Ok(EscapeTimes {
        by_step_size,
        saddle_by_batch,
        sharp_by_batch,
        gamma1,
    })
}

impl EscapeTimes {
    /// measured mean / (η⁻¹ log η⁻¹) per row of the step-size study.
    pub fn law_ratios(&self) -> Vec<f64> {
        self.by_step_size
            .iter()
            .map(|r| r.mean_steps * r.x / r.x.recip().ln())
            .collect()
    }

    /// The headline: as η shrinks the ratio to η⁻¹ log η⁻¹ moves toward
    /// 1/(2γ₁) (the smallest η is closer than the largest, and every mean is
    /// within [`THEORY_SE`] standard errors of the discrete-recurrence
    /// theory, whose η → 0 limit is the law); smaller batches escape the
    /// saddle and the sharp minimum faster.
    pub fn headline_holds(&self) -> bool {
        let target = 1.0 / (2.0 * self.gamma1);
        let r = self.law_ratios();
        let toward = r.len() >= 2 && (r[r.len() - 1] - target).abs() < (r[0] - target).abs();
        let on_theory = self.by_step_size.iter().all(EscapeRow::on_theory);
        let faster =
            |rows: &[EscapeRow]| rows.windows(2).all(|w| w[0].mean_steps < w[1].mean_steps);
        toward && on_theory && faster(&self.saddle_by_batch) && faster(&self.sharp_by_batch)
    }

    /// The terminal report.
    pub fn report(&self, e: &Experiment) -> String {
        let mut s = String::new();
        let target = 1.0 / (2.0 * self.gamma1);
        let _ = writeln!(s, "E6 · batch size and escape times (002 §4–6)");
        if let ObjectiveConfig::Saddle(c) = &e.base.objective {
            let _ = writeln!(s, "saddle: f(w) = ½w'Aw, A = diag{:?} (γ₁ = {}), noise sd {:?}, escape at ‖w‖ ≥ {}; plain SGD, {} runs per point, seed {}", c.curvature, self.gamma1, c.noise, c.escape_radius, e.base.runs, e.base.seed);
        }
        let _ = writeln!(s, "law (002 Thm 3): E[steps] ≈ (1/(2γ₁))·η⁻¹·log η⁻¹; theory column: the escape time of the SGD recurrence (growth 1 + ηγ₁ per step), whose η → 0 limit is the OU column and, to leading order, the law\n");
        let ratios = self.law_ratios();
        let rows = self.by_step_size.clone();
        table(
            &mut s,
            "η",
            &rows,
            |r| {
                let i = rows.iter().position(|x| x.x == r.x).unwrap_or(0);
                format!("{:.3} (→ {target})", ratios[i])
            },
            "steps/(η⁻¹ log η⁻¹)",
        );
        let _ = writeln!(
            s,
            "\nsaddle escape vs batch size m at η = {} (noise sd ∝ 1/√m):",
            e.base.step_size
        );
        table(&mut s, "m", &self.saddle_by_batch, |_| String::new(), "");
        let (w, w_eta) = wells_setup();
        if let Ok(o) = Wells::new(&w) {
            let g = o.geometry();
            let _ = writeln!(s, "\nsharp-minimum escape vs batch size m: wells landscape, sharp min x = {:.3} (curvature {:.1}), barrier x = {:.3} (height {:.3}), flat min x = {:.3} (curvature {:.2}); noise sd {}, η = {w_eta}; theory: Kramers", g.sharp_min, g.sharp_curvature, g.barrier, g.sharp_barrier_height, g.flat_min, g.flat_curvature, w.noise);
        }
        table(&mut s, "m", &self.sharp_by_batch, |_| String::new(), "");
        let _ = writeln!(s, "\nheadline (steps/(η⁻¹ log η⁻¹) approaches 1/(2γ₁) = {target} as η shrinks, each mean within {THEORY_SE} standard errors of the theory; smaller batches escape saddles and sharp minima faster): {}", crate::verdict::verdict_word(self.headline_holds()));
        s
    }

    /// Writes the three tables, three plots, `summary.json`, `report.txt`.
    pub fn write(&self, e: &Experiment, out: &OutputDir) -> Result<(), ScenarioError> {
        out.write_json("summary.json", self)?;
        write_rows(out, "escape-by-step-size.csv", &self.by_step_size)?;
        write_rows(out, "saddle-escape-by-batch.csv", &self.saddle_by_batch)?;
        write_rows(out, "sharp-escape-by-batch.csv", &self.sharp_by_batch)?;
        let mut law = steps_plot(
            "E6: saddle escape steps vs step size",
            "step size η",
            &self.by_step_size,
            true,
            "theory (SGD recurrence)",
        );
        law.series.push(Series {
            label: "(1/2γ₁) η⁻¹ log η⁻¹".into(),
            points: self
                .by_step_size
                .iter()
                .map(|r| (r.x, saddle_escape_steps(r.x, self.gamma1)))
                .collect(),
            dashed: true,
            ..Default::default()
        });
        out.write("escape-vs-step-size.svg", law.to_svg())?;
        out.write(
            "saddle-escape-vs-batch.svg",
            steps_plot(
                "E6: saddle escape steps vs batch size",
                "batch size m",
                &self.saddle_by_batch,
                true,
                "theory (SGD recurrence)",
            )
            .to_svg(),
        )?;
        out.write(
            "sharp-escape-vs-batch.svg",
            steps_plot(
                "E6: sharp-minimum escape steps vs batch size",
                "batch size m",
                &self.sharp_by_batch,
                true,
                "Kramers",
            )
            .to_svg(),
        )?;
        out.write("report.txt", self.report(e))?;
        Ok(())
    }
}

/// `psim reproduce escape-times`.
pub struct EscapeTimesScenario;

impl Scenario for EscapeTimesScenario {
    fn name(&self) -> &'static str {
        "escape-times"
    }
    fn title(&self) -> &'static str {
        "E6 · escape steps vs η (η⁻¹ log η⁻¹ law) and vs batch size (002 §4–6)"
    }
    fn experiment(&self) -> Experiment {
        Experiment {
            name: "escape-times".into(),
            base: RunConfig {
                momentum: 0.0,
                step_size: 0.01,
                steps: 20_000,
                runs: 100,
                seed: 2002,
                objective: ObjectiveConfig::Saddle(SaddleConfig {
                    curvature: vec![1.0, -1.0],
                    noise: vec![1.0, 1.0],
                    escape_radius: 1.0,
                    batch_size: 1,
                    population: None,
                }),
                ..RunConfig::default()
            },
            grid: Grid {
                step_size: vec![0.1, 0.03, 0.01, 3e-3, 1e-3, 3e-4],
                ..Default::default()
            },
            tradeoff: None,
        }
    }
    /// Plain SGD (μ = 0) by design, so momentum is refused; escape runs set
    /// their own trace cadence and stop.
    fn accepts(&self) -> &'static [psim_common::Setting] {
        use psim_common::Setting::*;
        &[StepSize, Steps, Runs, Seed, Objective]
    }
    fn plan(&self, e: &Experiment) -> Result<Plan, ScenarioError> {
        Ok(specs_plan(&escape_times_specs(e)?.concat()))
    }
    fn analyse(
        &self,
        e: &Experiment,
        done: &SweepResult,
        out: &OutputDir,
    ) -> Result<String, ScenarioError> {
        let r = analyse_escape_times(e, &escape_times_specs(e)?, done)?;
        r.write(e, out)?;
        Ok(r.report(e))
    }
}
