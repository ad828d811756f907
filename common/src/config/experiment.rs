//! A whole experiment: the base configuration, the grid it sweeps and the
//! analysis applied to it; what an output directory's `config.toml` holds.

use super::{Consistency, EngineConfig, RunConfig};
use crate::delay::Delay;
use crate::error::ConfigError;
use crate::update::RuleKind;
use serde::{Deserialize, Serialize};

/// The values a sweep varies; an empty list keeps the base value. The
/// engine axes must suit the base's engine: `delay` belongs to the injected
/// engine, `workers`, `compute_time` and `consistency` to the cluster engines
/// (virtual time, threads, tasks); [`Experiment::validate`] refuses the others.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct Grid {
    /// Momentum values μ.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub momentum: Vec<f64>,
    /// Step sizes η.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub step_size: Vec<f64>,
    /// Delay models (injected engine).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub delay: Vec<Delay>,
    /// Worker counts M (cluster engines).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub workers: Vec<usize>,
    /// Compute-time models (cluster engines).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub compute_time: Vec<Delay>,
    /// Consistency models (cluster engines).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub consistency: Vec<Consistency>,
}

impl Grid {
    /// Whether the grid varies anything that only the cluster engines have.
    pub fn has_cluster_axes(&self) -> bool {
        !(self.workers.is_empty() && self.compute_time.is_empty() && self.consistency.is_empty())
    }
}

/// How the momentum–delay tradeoff reads the largest tolerated staleness
/// off a sweep: the optimal delay τ* on the injected engine, the largest
/// tolerated worker count M* on the cluster engines.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Tolerance {
    /// A grid value (delay τ, or worker count M) is tolerated when its mean
    /// error is at most `factor` × the error at the grid's smallest value
    /// (τ = 0, or M = 1) and no run diverged; the answer is the largest value
    /// such that it and every smaller one are tolerated.
    pub factor: f64,
}

impl Default for Tolerance {
    fn default() -> Self {
        Self { factor: 2.0 }
    }
}

/// The axes of a grid, each with the base value when the grid leaves it
/// empty; point `i` of the grid is `(momentum, step_size, engine)` in
/// mixed radix, momentum-major.
#[derive(Debug, Clone, PartialEq)]
pub struct GridAxes {
    /// Momentum values μ.
    pub momentum: Vec<f64>,
    /// Step sizes η.
    pub step_size: Vec<f64>,
    /// Engine settings, one per point of the engine axes.
    pub engine: Vec<EngineConfig>,
}

impl GridAxes {
    /// Points in the grid.
    pub fn len(&self) -> usize {
        self.momentum.len() * self.step_size.len() * self.engine.len()
    }

    /// Whether the grid has no point (never, for a validated experiment).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The configuration of point `i` (< `len()`) over `base`.
    pub fn point(&self, base: &RunConfig, i: usize) -> RunConfig {
        let engines = self.engine.len();
        let per_momentum = self.step_size.len() * engines;
        RunConfig {
            momentum: self.momentum[i / per_momentum],
            step_size: self.step_size[(i / engines) % self.step_size.len()],
            engine: self.engine[i % engines].clone(),
            ..base.clone()
        }
    }
}

/// A whole experiment: a base configuration, the grid it sweeps, and the
/// analysis to apply. This is what `config.toml` in an output directory holds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Experiment {
    /// Name shown in reports (a scenario name, or `run`/`sweep`).
    pub name: String,
    /// Values shared by every point.
    pub base: RunConfig,
    /// Values varied across points.
    #[serde(default)]
    pub grid: Grid,
    /// Optimal-delay analysis, for momentum × constant-delay grids.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tradeoff: Option<Tolerance>,
}

impl Experiment {
    /// The configurations of every grid point: momentum-major, then step
    /// size, then the engine axes (delay; or workers, compute time,
    /// consistency). Materialises every point: a sweep reads them one at a
    /// time through [`Experiment::axes`] instead.
    pub fn points(&self) -> Vec<RunConfig> {
        let axes = self.axes();
        (0..axes.len()).map(|i| axes.point(&self.base, i)).collect()
    }

    /// The grid's axes in point order, from which point `i` is built on
    /// demand (memory in the axes' lengths, not in their product).
    pub fn axes(&self) -> GridAxes {
        let or_base = |grid: &Vec<f64>, base: f64| {
            if grid.is_empty() {
                vec![base]
            } else {
                grid.clone()
            }
        };
        GridAxes {
            momentum: or_base(&self.grid.momentum, self.base.momentum),
            step_size: or_base(&self.grid.step_size, self.base.step_size),
            engine: self.engine_points(),
        }
    }

    /// The engine settings of every point of the engine axes, in grid order.
    /// Axes that do not suit the engine are left out here and refused by
    /// [`Experiment::validate`].
    /// Refuses a staleness-dependent update rule when no point of the
    /// experiment can apply a gradient stale enough for it to act: it would
    /// run exactly as heavy ball. `staleness-aware` (η/max(τ, 1)) acts from
    /// τ = 2, `dc-asgd:λ` from τ = 1, `delay-adaptive:C` (η·min(1, C/τ))
    /// above τ = C (C = M by default).
    fn check_rule_has_effect(&self) -> Result<(), ConfigError> {
        let acts_above = |engine: &EngineConfig| -> Option<f64> {
            match self.base.rule {
                RuleKind::StalenessAware => Some(1.0),
                RuleKind::DcAsgd { .. } => Some(0.0),
                RuleKind::DelayAdaptive { c: Some(c) } => Some(c),
                RuleKind::DelayAdaptive { c: None } => engine.cluster().map(|c| c.workers as f64),
                _ => None,
            }
        };
        let mut any = false;
        for engine in self.engine_points() {
            let Some(threshold) = acts_above(&engine) else {
                return Ok(());
            };
            // The largest staleness a point can apply, None when unbounded.
            let reach: Option<f64> = match &engine {
                EngineConfig::Injected(i) => i.delay.upper_bound().map(f64::round),
                other => match other.cluster().map(|c| c.consistency) {
                    Some(
                        Consistency::Rennala { .. } | Consistency::KSync { .. } | Consistency::Bsp,
                    ) => Some(0.0),
                    Some(Consistency::Ringmaster { bound, .. }) => Some(bound as f64 - 1.0),
                    Some(Consistency::Ssp { bound }) => Some(bound as f64),
                    _ => None,
                },
            };
            if reach.is_none_or(|r| r > threshold) {
                any = true;
                break;
            }
        }
        if any {
            return Ok(());
        }
        let why = match self.base.rule {
            RuleKind::StalenessAware => {
                "a staleness of at least 2 (η/max(τ, 1) is η at τ ≤ 1)".to_string()
            }
            RuleKind::DcAsgd { .. } => "a stale gradient (τ ≥ 1) to compensate".to_string(),
            _ => "a staleness above C (η·min(1, C/τ) is η at τ ≤ C; C defaults to the workers M)"
                .to_string(),
        };
        Err(ConfigError::new(
            "rule",
            self.base.rule,
            format!("a rule whose step acts on this experiment: `{}` needs {why}, which no point of it reaches (its delays, or its policy: rennala, ksync and bsp apply only fresh gradients, ringmaster:R none staler than R − 1, ssp:S none staler than S), so it would run exactly as heavy-ball; use `heavy-ball`", self.base.rule),
        ))
    }

    /// Refuses `bsp` beside `ksync:M` in a consistency grid with M workers:
    /// m-sync with a quorum of every worker is BSP, the same points twice.
    fn check_bsp_twice(&self) -> Result<(), ConfigError> {
        let Some(c) = self.base.cluster() else {
            return Ok(());
        };
        if !self.grid.consistency.contains(&Consistency::Bsp) {
            return Ok(());
        }
        let workers = if self.grid.workers.is_empty() {
            vec![c.workers]
        } else {
            self.grid.workers.clone()
        };
        for (i, cons) in self.grid.consistency.iter().enumerate() {
            if let Consistency::KSync { quorum } = cons {
                if let Some(&m) = workers.iter().find(|&&m| m as u64 == *quorum) {
                    return Err(ConfigError::new(
                        format!("grid.consistency[{i}]"),
                        cons,
                        format!("not `bsp`'s twin: with M = {m} workers `ksync:{m}` averages every worker's gradient each round, which is `bsp`, also in the grid: the same points twice"),
                    ));
                }
            }
        }
        Ok(())
    }

    /// Refuses a history setting other than the default that no delay of
    /// the experiment reaches: it would run exactly as the default.
    /// `capacity` acts when a delay reaches min(capacity, default), the
    /// policy when one reaches the capacity.
    pub fn check_history_has_effect(&self) -> Result<(), ConfigError> {
        let Some(inj) = self.base.injected() else {
            return Ok(());
        };
        let default = super::HistoryConfig::default();
        let mut largest = 0.0f64;
        for d in std::iter::once(&inj.delay).chain(&self.grid.delay) {
            match d.upper_bound() {
                Some(b) => largest = largest.max(b.round()),
                None => return Ok(()),
            }
        }
        let h = inj.history;
        let reach = |cap: usize| largest >= cap as f64;
        if h.capacity != default.capacity && !reach(h.capacity.min(default.capacity)) {
            let advice = if largest >= 1.0 {
                format!("at most {largest}, or the default")
            } else {
                "the default".to_string()
            };
            return Err(ConfigError::new(
                "engine.history.capacity",
                h.capacity,
                format!("a capacity some delay reaches (every delay here is at most {largest}, so neither this history nor the default of {} is ever exceeded: it would change nothing); {advice}", default.capacity),
            ));
        }
        if h.policy != default.policy && !reach(h.capacity) {
            return Err(ConfigError::new(
                "engine.history.policy",
                format!("{:?}", h.policy).to_lowercase(),
                format!("the default `clamp` unless a delay reaches the history of {} versions (every delay here is at most {largest}: no read goes past it, so the policy would change nothing)", h.capacity),
            ));
        }
        Ok(())
    }

    fn engine_points(&self) -> Vec<EngineConfig> {
        let g = &self.grid;
        let base = &self.base.engine;
        if let EngineConfig::Injected(inj) = base {
            if g.delay.is_empty() {
                return vec![base.clone()];
            }
            return g
                .delay
                .iter()
                .map(|d| {
                    let mut i = inj.clone();
                    i.delay = d.clone();
                    EngineConfig::Injected(i)
                })
                .collect();
        }
        let Some(c) = base.cluster() else {
            return vec![base.clone()];
        };
        let or_base = |v: &Vec<usize>| {
            if v.is_empty() {
                vec![c.workers]
            } else {
                v.clone()
            }
        };
        let workers = or_base(&g.workers);
        let computes = if g.compute_time.is_empty() {
            vec![c.compute_time.clone()]
        } else {
            g.compute_time.clone()
        };
        let consistencies = if g.consistency.is_empty() {
            vec![c.consistency]
        } else {
            g.consistency.clone()
        };
        let mut out = Vec::with_capacity(workers.len() * computes.len() * consistencies.len());
        for &w in &workers {
            for ct in &computes {
                for &cons in &consistencies {
                    let mut e = base.clone();
                    if let Some(c) = e.cluster_mut() {
                        c.workers = w;
                        c.compute_time = ct.clone();
                        c.consistency = cons;
                    }
                    out.push(e);
                }
            }
        }
        out
    }

    /// Validates the base and every grid value, naming the grid entry at
    /// fault, and refuses grid axes the base's engine does not have.
    pub fn validate(&self) -> Result<(), ConfigError> {
        validate_name(&self.name)?;
        self.base.validate()?;
        for (i, d) in self.grid.delay.iter().enumerate() {
            d.validate_steps(&format!("grid.delay[{i}]"))?;
        }
        let kind = self.base.engine_kind();
        if !self.grid.delay.is_empty() && self.base.injected().is_none() {
            return Err(ConfigError::new(
                "grid.delay",
                format!("{} delay models", self.grid.delay.len()),
                format!("empty on the {kind} engine: a delay model belongs to the injected engine (the cluster engines vary grid.workers, grid.compute_time, grid.consistency)"),
            ));
        }
        if self.grid.has_cluster_axes() && self.base.cluster().is_none() {
            let axis = if !self.grid.workers.is_empty() {
                "grid.workers"
            } else if !self.grid.compute_time.is_empty() {
                "grid.compute_time"
            } else {
                "grid.consistency"
            };
            return Err(ConfigError::new(
                axis,
                "a list",
                "empty on the injected engine: it belongs to the cluster engines (virtual-time, threads, tasks); the injected engine varies grid.delay",
            ));
        }
        for (i, &m) in self.grid.momentum.iter().enumerate() {
            RunConfig {
                momentum: m,
                ..self.base.clone()
            }
            .validate()
            .map_err(|e| rename(e, &format!("grid.momentum[{i}]")))?;
        }
        for (i, &s) in self.grid.step_size.iter().enumerate() {
            RunConfig {
                step_size: s,
                ..self.base.clone()
            }
            .validate()
            .map_err(|e| rename(e, &format!("grid.step_size[{i}]")))?;
        }
        for (i, &w) in self.grid.workers.iter().enumerate() {
            let mut e = self.base.engine.clone();
            if let Some(c) = e.cluster_mut() {
                c.workers = w;
            }
            e.validate()
                .map_err(|e| rename(e, &format!("grid.workers[{i}]")))?;
        }
        // A policy's parameter may depend on the workers (K of `ksync:K` ≤ M):
        // every pair of the grid is checked.
        if let Some(c) = self.base.cluster() {
            let workers = if self.grid.workers.is_empty() {
                vec![c.workers]
            } else {
                self.grid.workers.clone()
            };
            for (i, &cons) in self.grid.consistency.iter().enumerate() {
                for &w in &workers {
                    let mut point = self.base.clone();
                    if let Some(c) = point.cluster_mut() {
                        c.workers = w;
                        c.consistency = cons;
                    }
                    // The policy's own error names the grid entry; another
                    // field's (the rule's) keeps its name, with the entry.
                    point.validate().map_err(|e| {
                        let field = if e.field == "engine.cluster.consistency" {
                            format!("grid.consistency[{i}]")
                        } else {
                            format!("{} (with grid.consistency[{i}] = {cons})", e.field)
                        };
                        rename(e, &field)
                    })?;
                }
            }
        }
        // A value given twice would run (and report) the same point twice.
        distinct("grid.momentum", &self.grid.momentum)?;
        distinct("grid.step_size", &self.grid.step_size)?;
        distinct("grid.delay", &self.grid.delay)?;
        same_law_twice("grid.delay", &self.grid.delay)?;
        distinct("grid.workers", &self.grid.workers)?;
        distinct("grid.compute_time", &self.grid.compute_time)?;
        distinct("grid.consistency", &self.grid.consistency)?;
        self.check_bsp_twice()?;
        self.check_rule_has_effect()?;
        self.check_history_has_effect()?;
        if let Some(r) = &self.tradeoff {
            if !(r.factor.is_finite() && r.factor > 1.0) {
                return Err(ConfigError::new(
                    "tradeoff.factor",
                    r.factor,
                    "finite and > 1",
                ));
            }
        }
        let per_point = self.engine_points().len() as u64
            * self.grid.momentum.len().max(1) as u64
            * self.grid.step_size.len().max(1) as u64;
        let n = per_point.saturating_mul(self.base.runs as u64);
        if n > 100_000_000 {
            return Err(ConfigError::new(
                "runs",
                format!(
                    "{} (× {per_point} points = {n} runs in all)",
                    self.base.runs
                ),
                "at most 10⁸ runs per experiment in all (fewer runs per point, or a smaller grid)",
            ));
        }
        let per_run = self.base.steps / self.base.record_every + 2;
        let points = n.saturating_mul(per_run);
        if points > MAX_TOTAL_TRACE_POINTS {
            return Err(ConfigError::new(
                "record_every",
                self.base.record_every,
                format!(
                    "large enough that runs × points × steps / record_every ≤ {MAX_TOTAL_TRACE_POINTS} trace points in all (the sweep keeps every run's trace); here {n} runs × {per_run} points = {points}"
                ),
            ));
        }
        Ok(())
    }
}

/// Refuses a grid axis that lists one value twice, naming both entries.
/// Linear in the axis's length (a grid of 10⁴ delays is checked in
/// microseconds): values are bucketed by their text (`-0` with `0`), and
/// only values in one bucket are compared with `==`.
fn distinct<T: PartialEq + std::fmt::Display>(
    field: &str,
    values: &[T],
) -> Result<(), ConfigError> {
    let mut seen: std::collections::HashMap<String, Vec<usize>> = std::collections::HashMap::new();
    for (i, v) in values.iter().enumerate() {
        let text = v.to_string();
        let key = if text == "-0" { "0".to_string() } else { text };
        let bucket = seen.entry(key).or_default();
        if let Some(&j) = bucket.iter().find(|&&j| values[j] == *v) {
            return Err(ConfigError::new(
                format!("{field}[{i}]"),
                v,
                format!("distinct values: it repeats {field}[{j}], which would run and report the same points twice"),
            ));
        }
        bucket.push(i);
    }
    Ok(())
}

/// Refuses two delay models of a grid that draw the same law under two
/// spellings ([`Delay::law_key`]): the grid would run one point twice.
fn same_law_twice(field: &str, values: &[Delay]) -> Result<(), ConfigError> {
    let keys: Vec<String> = values.iter().map(Delay::law_key).collect();
    for (i, k) in keys.iter().enumerate() {
        if let Some(j) = keys[..i].iter().position(|o| o == k) {
            return Err(ConfigError::new(
                format!("{field}[{i}]"),
                &values[i],
                format!("distinct laws: it draws the same delays as {field}[{j}] = {} (both are {k}), which would run and report the same points twice", values[j]),
            ));
        }
    }
    Ok(())
}

fn rename(mut e: ConfigError, field: &str) -> ConfigError {
    e.field = field.to_string();
    e
}

/// Most error-trace points an experiment may hold in all (≈ 2.4 GB).
pub const MAX_TOTAL_TRACE_POINTS: u64 = 100_000_000;

/// Longest experiment name.
pub const MAX_NAME_LEN: usize = 100;

/// Checks that `name` can name an output directory `psim-out/NAME`: a plain
/// file-name component of 1..=[`MAX_NAME_LEN`] ASCII letters, digits, `-`,
/// `_` and `.`, not starting with `.` (so never `.` or `..`), no separator.
pub fn validate_name(name: &str) -> Result<(), ConfigError> {
    let ok = !name.is_empty()
        && name.len() <= MAX_NAME_LEN
        && !name.starts_with('.')
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if ok {
        Ok(())
    } else {
        Err(ConfigError::new(
            "name",
            format!("{name:?}"),
            format!("a plain file name: 1 to {MAX_NAME_LEN} ASCII letters, digits, `-`, `_` or `.`, not starting with `.` (no `/`, `\\`, `..` or absolute path)"),
        ))
    }
}

#[cfg(test)]
mod name_tests {
    use super::*;

    #[test]
    fn names_that_would_leave_psim_out_are_refused() {
        for bad in [
            "../../x", "/tmp/x", "..", ".", "", "a/b", "a\\b", ".hidden", "x y", "ü",
        ] {
            let e = validate_name(bad).unwrap_err().to_string();
            assert!(e.contains("`name`"), "{bad}: {e}");
        }
        for good in ["run", "sweep", "tradeoff", "momentum-vs-workers", "e1_v2.0"] {
            validate_name(good).unwrap();
        }
    }
}
