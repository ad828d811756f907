//! E5 · noise as smoothing: SGD on a spiky function (004 §2, Figure 3).
//!
//! f(x) = x²/2 + a(1 − cos(b·x)) (x* = 0, local minima about every 2π/b),
//! gradient noise uniform on [−w, w], runs started uniformly in [−5, 5].
//! Plain GD (w = 0) sticks in the spike nearest its start; moderate noise
//! gathers the runs near 0; too much noise wanders; shrinking the noise in
//! stages (w·4, 2, 1, ½, ¼, ⅛, each for `steps` steps) ends closer to 0.

use super::common::mean;
use crate::catalogue::{Scenario, ScenarioError};
use crate::executor::{Plan, PlannedPoint};
use crate::output::OutputDir;
use crate::plot::{Plot, Series};
use crate::sweep::{run_plan, PointResult, SweepOptions, SweepResult};
use psim_common::landscape::SpikyConfig;
use psim_common::{Experiment, ObjectiveConfig, RuleKind, RunConfig};
use serde::Serialize;
use std::f64::consts::PI;
use std::fmt::Write;

/// Multipliers of the base width for the constant-noise runs.
pub const WIDTH_FACTORS: [f64; 5] = [0.0, 0.25, 1.0, 4.0, 16.0];
/// Multipliers of the base width for the stages of the shrinking run.
pub const STAGE_FACTORS: [f64; 6] = [4.0, 2.0, 1.0, 0.5, 0.25, 0.125];
/// Histogram bins over [−start_range, start_range].
pub const BINS: usize = 41;

/// How many standard errors of the difference one basin share must exceed
/// another by (a one-sided false alarm of 0.13 % per comparison).
pub const SHARE_SE: f64 = 3.0;

/// Whether `a`'s basin share exceeds `b`'s by more than [`SHARE_SE`]
/// standard errors of the difference of two binomial shares.
fn share_exceeds(a: &NoiseRow, b: &NoiseRow) -> bool {
    let var = |r: &NoiseRow| r.near_zero * (1.0 - r.near_zero) / r.finals.len().max(1) as f64;
    a.near_zero - b.near_zero > SHARE_SE * (var(a) + var(b)).sqrt()
}

/// Final iterates of one noise setting.
#[derive(Debug, Clone, Serialize)]
pub struct NoiseRow {
    /// `GD`, `w=…` or `staged`.
    pub label: String,
    /// Noise half-width (the last stage's for the staged run).
    pub width: f64,
    /// Fraction of runs ending in the central basin |x| ≤ π/b.
    pub near_zero: f64,
    /// Mean |x| of the final iterates.
    pub mean_abs: f64,
    /// Median |x|.
    pub median_abs: f64,
    /// Histogram counts of the final iterates.
    pub histogram: Vec<usize>,
    /// The final iterates.
    #[serde(skip)]
    pub finals: Vec<f64>,
}

/// E5's result.
#[derive(Debug, Clone, Serialize)]
pub struct Spiky {
    /// GD and constant widths, then the staged run last.
    pub rows: Vec<NoiseRow>,
    /// The function's parameters.
    pub function: SpikyConfig,
    /// Step size.
    pub step_size: f64,
    /// Steps per run (per stage for the staged run).
    pub steps: u64,
    /// Histogram bin centres.
    pub bin_centres: Vec<f64>,
}

fn row(label: String, width: f64, finals: Vec<f64>, f: &SpikyConfig) -> NoiseRow {
    let basin = PI / f.frequency;
    let abs: Vec<f64> = finals.iter().map(|x| x.abs()).collect();
    let r = f.start_range;
    let mut histogram = vec![0; BINS];
    for x in &finals {
        let i = ((x + r) / (2.0 * r) * BINS as f64).floor();
        if (0.0..BINS as f64).contains(&i) {
            histogram[i as usize] += 1;
        }
    }
    NoiseRow {
        label,
        width,
        near_zero: abs.iter().filter(|a| **a <= basin).count() as f64 / abs.len() as f64,
        mean_abs: mean(&abs),
        median_abs: super::common::quantile(&abs, 0.5),
        histogram,
        finals,
    }
}

/// The spiky function of `e` and the configuration at noise width `w`.
fn setup(e: &Experiment) -> Result<(SpikyConfig, impl Fn(f64) -> RunConfig + '_), ScenarioError> {
    let ObjectiveConfig::Spiky(f) = &e.base.objective else {
        return Err(ScenarioError::Unsuitable(
            "spiky needs a `spiky` objective".into(),
        ));
    };
    let base = RunConfig {
        rule: RuleKind::HeavyBall,
        ..e.base.clone()
    };
    let f2 = f.clone();
    Ok((f.clone(), move |w: f64| RunConfig {
        objective: ObjectiveConfig::Spiky(SpikyConfig {
            noise_width: w,
            ..f2.clone()
        }),
        ..base.clone()
    }))
}

/// E5's points: one per width of [`WIDTH_FACTORS`], then the stages of
/// [`STAGE_FACTORS`], each stage's runs starting where the previous
/// stage's ended; every run keeps its final iterate.
pub fn plan(e: &Experiment) -> Result<Plan, ScenarioError> {
    let (f, with_width) = setup(e)?;
    let mut points: Vec<PlannedPoint> = WIDTH_FACTORS
        .iter()
        .map(|k| PlannedPoint {
            keep_params: true,
            ..PlannedPoint::new(with_width(k * f.noise_width))
        })
        .collect();
    for (i, k) in STAGE_FACTORS.iter().enumerate() {
        let from = (i > 0).then(|| points.len() - 1);
        points.push(PlannedPoint {
            config: with_width(k * f.noise_width),
            start_from: from,
            keep_params: true,
        });
    }
    Ok(Plan {
        points: points.into(),
        columns: Vec::new(),
        rows: true,
        batch: false,
    })
}

/// Runs E5 from `e.base` (a `spiky` objective; its `noise_width` is the
/// base width w) through the executor, in memory.
pub fn run(e: &Experiment, opts: &SweepOptions<'_>) -> Result<Spiky, ScenarioError> {
    let done = run_plan(e, &plan(e)?, None, opts)?;
    analyse(e, &done)
}

/// E5's analysis over the finished points of [`plan`].
pub fn analyse(e: &Experiment, done: &SweepResult) -> Result<Spiky, ScenarioError> {
    let (f, with_width) = setup(e)?;
    let finals_of = |p: &PointResult| -> Vec<f64> { p.rows.iter().map(|r| r.params[0]).collect() };
    let mut rows = Vec::new();
    for (k, point) in WIDTH_FACTORS.iter().zip(&done.points) {
        let w = k * f.noise_width;
        let label = if w == 0.0 {
            "GD (no noise)".to_string()
        } else {
            format!("w = {w}")
        };
        rows.push(row(label, w, finals_of(point), &f));
    }
    let last = STAGE_FACTORS[STAGE_FACTORS.len() - 1] * f.noise_width;
    let finals = done.points.last().map(finals_of).unwrap_or_default();
    let stages: Vec<String> = STAGE_FACTORS
        .iter()
        .map(|k| (k * f.noise_width).to_string())
        .collect();
    rows.push(row(
        format!("staged w = {}", stages.join("→")),
        last,
        finals,
        &f,
    ));
    let r = f.start_range;
    Ok(Spiky {
        rows,
        function: f.clone(),
        step_size: with_width(0.0).step_size,
        steps: e.base.steps,
        bin_centres: (0..BINS)
            .map(|i| -r + (i as f64 + 0.5) * 2.0 * r / BINS as f64)
            .collect(),
    })
}

impl Spiky {
    /// The headline: GD leaves most runs outside the central basin; the
    /// base (moderate) width gathers significantly more runs into it than
    /// both GD and the widest noise (by more than [`SHARE_SE`] standard
    /// errors of the difference of the two shares); and the staged run ends
    /// closer to 0 (smaller mean |x|) than every constant width.
    ///
    /// Why not "more than half": over master seeds 1–10 the moderate share
    /// is 0.56 on average, and a share p of n = 100 runs has standard error
    /// √(p(1−p)/n) ≈ 0.05, so a threshold of 1/2 sits 1.2 standard errors
    /// below it and failed for 3 of those 10 seeds. The claim of 004 is
    /// comparative ("gathers the trials near 0" where GD sticks and large
    /// noise wanders), and that is what is tested: the difference of two
    /// independent shares has standard error √(p₁(1−p₁)/n + p₂(1−p₂)/n)
    /// (≈ 0.06 here against a difference ≈ 0.45).
    pub fn headline_holds(&self) -> bool {
        let n = self.rows.len();
        let gd = &self.rows[0];
        let moderate = &self.rows[2];
        let widest = &self.rows[n - 2];
        let staged = &self.rows[n - 1];
        gd.near_zero < 0.5
            && share_exceeds(moderate, gd)
            && share_exceeds(moderate, widest)
            && self.rows[..n - 1]
                .iter()
                .all(|r| staged.mean_abs < r.mean_abs)
    }

    /// The terminal report.
    pub fn report(&self, e: &Experiment) -> String {
        let f = &self.function;
        let mut s = String::new();
        let _ = writeln!(
            s,
            "E5 · noise as smoothing: SGD on a spiky function (004 §2, Figure 3)"
        );
        let _ = writeln!(s, "f(x) = x²/2 + {}(1 − cos({}x)), x* = 0; central basin |x| ≤ π/{} = {:.3}; gradient noise U[−w, w]; starts U[−{r}, {r}]", f.amplitude, f.frequency, f.frequency, PI / f.frequency, r = f.start_range);
        let _ = writeln!(
            s,
            "η = {}, {} steps per run (per stage when staged), {} runs, seed {}\n",
            self.step_size, self.steps, e.base.runs, e.base.seed
        );
        let _ = writeln!(
            s,
            "{:<44} | {:>12} {:>9} {:>9}",
            "noise", "in basin", "mean |x|", "median"
        );
        for r in &self.rows {
            let _ = writeln!(
                s,
                "{:<44} | {:>11.0}% {:>9.3} {:>9.3}",
                r.label,
                100.0 * r.near_zero,
                r.mean_abs,
                r.median_abs
            );
        }
        let _ = writeln!(
            s,
            "\nfinal-iterate histograms (bins of {:.2} over [−{r}, {r}]):",
            2.0 * f.start_range / BINS as f64,
            r = f.start_range
        );
        for r in &self.rows {
            let max = *r.histogram.iter().max().unwrap_or(&1).max(&1);
            let bars: String = r
                .histogram
                .iter()
                .map(|c| {
                    [' ', '▁', '▂', '▃', '▄', '▅', '▆', '▇', '█'][(c * 8).div_ceil(max).min(8)]
                })
                .collect();
            let _ = writeln!(s, "{:<44} |{bars}|", r.label);
        }
        let _ = writeln!(s, "\nheadline (GD sticks in spikes; moderate noise gathers more runs near 0 than GD and than too much noise, by over {SHARE_SE} standard errors; staged shrinking gets closest): {}", crate::verdict::verdict_word(self.headline_holds()));
        s
    }

    /// The histograms as one line per noise setting.
    pub fn plot(&self) -> Plot {
        Plot {
            title: "E5: final iterates per noise width (histogram counts)".into(),
            x_label: "final x".into(),
            y_label: "runs per bin".into(),
            series: self
                .rows
                .iter()
                .map(|r| Series {
                    label: r.label.clone(),
                    points: self
                        .bin_centres
                        .iter()
                        .zip(&r.histogram)
                        .map(|(x, c)| (*x, *c as f64))
                        .collect(),
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        }
    }

    /// Writes `histograms.csv`, `finals.csv`, `spiky.svg`, `summary.json`, `report.txt`.
    pub fn write(&self, e: &Experiment, out: &OutputDir) -> Result<(), ScenarioError> {
        out.write_json("summary.json", self)?;
        let mut header = vec!["bin_centre".to_string()];
        header.extend(self.rows.iter().map(|r| r.label.clone()));
        let h: Vec<&str> = header.iter().map(|s| s.as_str()).collect();
        out.write_csv(
            "histograms.csv",
            &h,
            self.bin_centres.iter().enumerate().map(|(i, c)| {
                let mut v = vec![format!("{c:.4}")];
                v.extend(self.rows.iter().map(|r| r.histogram[i].to_string()));
                v
            }),
        )?;
        out.write_csv(
            "finals.csv",
            &["noise", "run", "final_x"],
            self.rows.iter().flat_map(|r| {
                r.finals
                    .iter()
                    .enumerate()
                    .map(|(i, x)| vec![r.label.clone(), i.to_string(), x.to_string()])
            }),
        )?;
        out.write("spiky.svg", self.plot().to_svg())?;
        out.write("report.txt", self.report(e))?;
        Ok(())
    }
}

/// `psim reproduce spiky`.
pub struct SpikyScenario;

impl Scenario for SpikyScenario {
    fn name(&self) -> &'static str {
        "spiky"
    }
    fn title(&self) -> &'static str {
        "E5 · noise as smoothing: final iterates on a spiky function (004 §2, Figure 3)"
    }
    fn experiment(&self) -> Experiment {
        Experiment {
            name: "spiky".into(),
            base: RunConfig {
                momentum: 0.0,
                step_size: 0.02,
                steps: 5_000,
                runs: 100,
                seed: 2004,
                record_every: 1_000,
                objective: ObjectiveConfig::Spiky(SpikyConfig::default()),
                ..RunConfig::default()
            },
            grid: Default::default(),
            tradeoff: None,
        }
    }
    /// The headline reads final iterates, so the trace cadence, tail window
    /// and early stops have no effect and are refused.
    fn accepts(&self) -> &'static [psim_common::Setting] {
        use psim_common::Setting::*;
        &[Momentum, StepSize, Steps, Runs, Seed, Objective]
    }
    fn plan(&self, e: &Experiment) -> Result<Plan, ScenarioError> {
        plan(e)
    }
    fn analyse(
        &self,
        e: &Experiment,
        done: &SweepResult,
        out: &OutputDir,
    ) -> Result<String, ScenarioError> {
        let r = analyse(e, done)?;
        r.write(e, out)?;
        Ok(r.report(e))
    }
}
