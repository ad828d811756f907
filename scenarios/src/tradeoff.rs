//! The momentum–delay tradeoff (E1): reading the "optimal delay" off a
//! sweep over momentum × constant delay, beside the theory.
//!
//! The rule (documented in the README and configurable): a delay τ is
//! *tolerated* when no run diverged and the mean error is at most
//! `factor` × the error at the smallest delay of the grid (τ = 0); the
//! optimal delay is the largest τ such that τ and every smaller τ of the
//! grid are tolerated.

use crate::sweep::{PointResult, SweepResult};
use psim_common::theory::{max_stable_delay, ou_stationary_error, pca_stiffest_curvature};
use psim_common::{ObjectiveConfig, StreamingPca, TradeoffRule};
use serde::Serialize;

/// Mean error at one delay, as listed in `summary.json`.
#[derive(Debug, Clone, Serialize)]
pub struct DelayError {
    /// Delay (the constant, or the model's mean for random delays).
    pub delay: f64,
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
    /// Mean error / mean error at the smallest delay.
    pub ratio: f64,
    /// Whether the rule tolerates this delay.
    pub tolerated: bool,
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

/// Analyses a momentum × delay sweep with `rule`.
pub fn analyse(sweep: &SweepResult, rule: &TradeoffRule) -> Vec<TradeoffRow> {
    let mut groups: Vec<((f64, f64), Vec<&PointResult>)> = Vec::new();
    for p in &sweep.points {
        let key = (p.summary.momentum, p.summary.step_size);
        match groups.iter_mut().find(|(k, _)| *k == key) {
            Some((_, v)) => v.push(p),
            None => groups.push((key, vec![p])),
        }
    }
    groups
        .into_iter()
        .map(|((momentum, step_size), mut pts)| {
            pts.sort_by(|a, b| delay_of(a).total_cmp(&delay_of(b)));
            let baseline = pts[0].summary.error.mean;
            let mut still = true;
            let mut optimal = None;
            let errors = pts
                .iter()
                .map(|p| {
                    let s = &p.summary;
                    let ratio = s.error.mean / baseline;
                    let tolerated = s.diverged == 0 && ratio <= rule.factor;
                    still &= tolerated;
                    if still {
                        optimal = Some(delay_of(p));
                    }
                    DelayError {
                        delay: delay_of(p),
                        mean_error: s.error.mean,
                        std_error: s.error.std,
                        p10: s.error.p10,
                        p90: s.error.p90,
                        diverged: s.diverged,
                        ratio,
                        tolerated,
                    }
                })
                .collect();
            let (theory_max_stable_delay, theory_ou_error) = match &pts[0].config.objective {
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
                #[allow(unreachable_patterns)]
                _ => (None, None),
            };
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

/// The x-coordinate of a point: its constant delay, or its delay model's
/// mean (infinite for heavy tails).
pub fn delay_of(p: &PointResult) -> f64 {
    p.config.delay.mean().unwrap_or(f64::INFINITY)
}
