//! A whole experiment: the base configuration, the grid it sweeps and the
//! analysis applied to it; what an output directory's `config.toml` holds.

use super::RunConfig;
use crate::delay::Delay;
use crate::error::ConfigError;
use serde::{Deserialize, Serialize};

/// The values a sweep varies; an empty list keeps the base value.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct Grid {
    /// Momentum values μ.
    #[serde(default)]
    pub momentum: Vec<f64>,
    /// Step sizes η.
    #[serde(default)]
    pub step_size: Vec<f64>,
    /// Delay models.
    #[serde(default)]
    pub delay: Vec<Delay>,
}

/// How the momentum–delay tradeoff reads an "optimal delay" off a sweep.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Tolerance {
    /// A delay is tolerated when its mean error is at most `factor` × the
    /// error at τ = 0 and no run diverged; the optimal delay is the largest
    /// τ of the grid such that it and every smaller τ are tolerated.
    pub factor: f64,
}

impl Default for Tolerance {
    fn default() -> Self {
        Self { factor: 2.0 }
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
    /// The configurations of every grid point, momentum-major, then step size, then delay.
    pub fn points(&self) -> Vec<RunConfig> {
        let mus = if self.grid.momentum.is_empty() {
            vec![self.base.momentum]
        } else {
            self.grid.momentum.clone()
        };
        let etas = if self.grid.step_size.is_empty() {
            vec![self.base.step_size]
        } else {
            self.grid.step_size.clone()
        };
        let delays = if self.grid.delay.is_empty() {
            vec![self.base.delay.clone()]
        } else {
            self.grid.delay.clone()
        };
        let mut out = Vec::with_capacity(mus.len() * etas.len() * delays.len());
        for &momentum in &mus {
            for &step_size in &etas {
                for delay in &delays {
                    out.push(RunConfig {
                        momentum,
                        step_size,
                        delay: delay.clone(),
                        ..self.base.clone()
                    });
                }
            }
        }
        out
    }

    /// Validates the base and every grid value, naming the grid entry at fault.
    pub fn validate(&self) -> Result<(), ConfigError> {
        validate_name(&self.name)?;
        self.base.validate()?;
        for (i, d) in self.grid.delay.iter().enumerate() {
            d.validate_steps(&format!("grid.delay[{i}]"))?;
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
        if let Some(r) = &self.tradeoff {
            if !(r.factor.is_finite() && r.factor > 1.0) {
                return Err(ConfigError::new(
                    "tradeoff.factor",
                    r.factor,
                    "finite and > 1",
                ));
            }
        }
        let n = self.points().len() as u64 * self.base.runs as u64;
        if n > 100_000_000 {
            return Err(ConfigError::new(
                "grid",
                format!("{n} runs in all"),
                "at most 10⁸ runs per experiment",
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
