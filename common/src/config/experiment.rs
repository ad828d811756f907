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
        self.base.validate()?;
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
        Ok(())
    }
}

fn rename(mut e: ConfigError, field: &str) -> ConfigError {
    e.field = field.to_string();
    e
}
