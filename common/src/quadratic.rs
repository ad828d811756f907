//! A smooth convex quadratic with Gaussian gradient noise, the test problem
//! of the asynchronous-SGD papers' experiments (Tyurin & Richtárik 2023;
//! Maranjyan, Tyurin & Richtárik 2025): f(x) = ½ Σ_j λ_j x_j², the λ_j
//! spaced geometrically from `smoothness` L down to `smoothness`/`condition`
//! over `dim` coordinates, started at x⁰ = (`start`, …, `start`); a
//! stochastic gradient is ∇f(x) + (σ/√d)·z with z standard normal, so
//! E‖g − ∇f‖² = σ² (`noise_variance`).
//!
//! The error of a point is ‖∇f(x)‖², the papers' ε-stationarity: a run with
//! `--target-error ε` stops at an ε-stationary point, and the constants of
//! the optimal time bound ([`crate::theory::time_bound`]) are exact:
//! L = max λ_j, Δ = f(x⁰) − f* = ½ Σ λ_j·start², σ².

use crate::error::ConfigError;
use crate::objective::Objective;
use crate::seed::PsimRng;
use rand_distr::{Distribution, StandardNormal};
use serde::{Deserialize, Serialize};

/// Largest dimension of the quadratic.
pub const MAX_QUADRATIC_DIM: usize = 1 << 20;

/// `kind = "quadratic"`: the problem's dimension, spectrum, noise and start.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QuadraticConfig {
    /// Dimension d.
    pub dim: usize,
    /// L, the largest curvature (the gradient's Lipschitz constant).
    pub smoothness: f64,
    /// L / λ_min ≥ 1; 1 makes every curvature L.
    pub condition: f64,
    /// σ² = E‖g − ∇f(x)‖², spread evenly over the coordinates.
    pub noise_variance: f64,
    /// Every coordinate of x⁰.
    pub start: f64,
}

impl Default for QuadraticConfig {
    fn default() -> Self {
        Self {
            dim: 100,
            smoothness: 1.0,
            condition: 10.0,
            noise_variance: 1.0,
            start: 1.0,
        }
    }
}

impl QuadraticConfig {
    /// Checks the ranges, naming the field.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if !(1..=MAX_QUADRATIC_DIM).contains(&self.dim) {
            return Err(ConfigError::new(
                "objective.dim",
                self.dim,
                format!("in [1, {MAX_QUADRATIC_DIM}]"),
            ));
        }
        let check = |field: &str, v: f64, ok: bool, range: &str| {
            if v.is_finite() && ok {
                Ok(())
            } else {
                Err(ConfigError::new(field, v, range))
            }
        };
        check(
            "objective.smoothness",
            self.smoothness,
            self.smoothness > 0.0 && self.smoothness <= 1e12,
            "in (0, 1e12]",
        )?;
        check(
            "objective.condition",
            self.condition,
            (1.0..=1e12).contains(&self.condition),
            "in [1, 1e12]",
        )?;
        check(
            "objective.noise_variance",
            self.noise_variance,
            (0.0..=1e12).contains(&self.noise_variance),
            "in [0, 1e12]",
        )?;
        check(
            "objective.start",
            self.start,
            self.start.abs() <= 1e6,
            "finite, |start| ≤ 1e6",
        )
    }

    /// The curvatures λ_1 = L ≥ … ≥ λ_d = L/condition, geometric.
    pub fn curvatures(&self) -> Vec<f64> {
        let d = self.dim;
        (0..d)
            .map(|j| {
                let t = if d == 1 {
                    0.0
                } else {
                    j as f64 / (d - 1) as f64
                };
                self.smoothness * self.condition.powf(-t)
            })
            .collect()
    }

    /// Δ = f(x⁰) − f* = ½ Σ λ_j·start².
    pub fn gap(&self) -> f64 {
        0.5 * self.curvatures().iter().sum::<f64>() * self.start * self.start
    }
}

/// The built quadratic.
#[derive(Debug, Clone)]
pub struct Quadratic {
    curvature: Vec<f64>,
    noise_sd: f64,
    start: f64,
}

impl Quadratic {
    /// Validates `cfg` and lays out the curvatures.
    pub fn new(cfg: &QuadraticConfig) -> Result<Self, ConfigError> {
        cfg.validate()?;
        Ok(Self {
            curvature: cfg.curvatures(),
            noise_sd: (cfg.noise_variance / cfg.dim as f64).sqrt(),
            start: cfg.start,
        })
    }
}

impl Objective for Quadratic {
    fn dim(&self) -> usize {
        self.curvature.len()
    }
    fn initial_point(&self, _rng: &mut PsimRng, out: &mut [f64]) {
        out.fill(self.start);
    }
    #[inline]
    fn gradient(&self, point: &[f64], rng: &mut PsimRng, out: &mut [f64]) {
        for ((o, x), a) in out.iter_mut().zip(point).zip(&self.curvature) {
            let z: f64 = StandardNormal.sample(rng);
            *o = a * x + self.noise_sd * z;
        }
    }
    /// ‖∇f(x)‖².
    fn error(&self, point: &[f64]) -> f64 {
        point
            .iter()
            .zip(&self.curvature)
            .map(|(x, a)| (a * x) * (a * x))
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::seed::{SeedTree, Stream};

    #[test]
    fn constants_and_noise_are_what_the_config_says() {
        let cfg = QuadraticConfig {
            dim: 4,
            smoothness: 8.0,
            condition: 8.0,
            noise_variance: 2.0,
            start: 1.0,
        };
        assert_eq!(cfg.curvatures(), vec![8.0, 4.0, 2.0, 1.0]);
        assert_eq!(cfg.gap(), 7.5);
        let q = Quadratic::new(&cfg).unwrap();
        let mut x = vec![0.0; 4];
        q.initial_point(&mut SeedTree::new(1).rng(0, 0, Stream::Init), &mut x);
        assert_eq!(q.error(&x), 64.0 + 16.0 + 4.0 + 1.0);
        // E‖g − ∇f‖² = σ²: the mean of n draws of ‖noise‖² (a σ²/d-scaled
        // χ²_d, variance 2σ⁴/d) is within 5·√(2σ⁴/(d n)) of σ².
        let mut rng = SeedTree::new(1).rng(0, 0, Stream::Data);
        let zero = vec![0.0; 4];
        let mut g = vec![0.0; 4];
        let n = 20_000;
        let mut s = 0.0;
        for _ in 0..n {
            q.gradient(&zero, &mut rng, &mut g);
            s += g.iter().map(|v| v * v).sum::<f64>();
        }
        let mean = s / n as f64;
        let tol = 5.0 * (2.0 * 4.0 / (4.0 * n as f64)).sqrt();
        assert!((mean - 2.0).abs() <= tol, "{mean}");
        for bad in [
            QuadraticConfig {
                dim: 0,
                ..cfg.clone()
            },
            QuadraticConfig {
                condition: 0.5,
                ..cfg.clone()
            },
            QuadraticConfig {
                noise_variance: -1.0,
                ..cfg.clone()
            },
        ] {
            assert!(bad
                .validate()
                .unwrap_err()
                .to_string()
                .contains("objective."));
        }
    }
}
