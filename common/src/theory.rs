//! Closed-form predictions from the papers, for printing beside measurements.
//!
//! * [`ou_stationary_error`]: the Ornstein–Uhlenbeck stationary error of
//!   streaming PCA near the optimum (001 §3.3), η Σ_{i≥2} α²_{i1} / (2(1−μ)(λ₁−λ_i)).
//! * [`max_stable_delay`]: the largest constant delay τ for which the
//!   linearised delayed heavy-ball recurrence
//!   x_{k+1} = (1+μ)x_k − μx_{k−1} − a·x_{k−τ}, a = η·c, is stable.
//!   For streaming PCA the stiffest mode is the norm of v (curvature
//!   c = 2λ₁ at ‖v‖ = 1), which is what limits the delay in E1.
//! * [`phases`]: the ODE closed form, OU variances, phase lengths T₁–T₃,
//!   delay conditions and saddle-escape laws (re-exported here).
//! * [`time_bound`]: the optimal time to an ε-stationary point of n
//!   workers with fixed compute times (Tyurin & Richtárik 2023), and the
//!   number of workers worth using.
//! * [`stability`]: the same boundary for random staleness (the expected
//!   recursion) and for a cluster's worker count (implicit momentum).
//! * [`implicit`]: the implicit momentum of asynchrony estimated from the
//!   mean iterate (Mitliagkas et al. 2016; `reproduce implicit-momentum`).

pub mod implicit;
pub mod phases;
pub mod stability;
pub mod time_bound;
pub use phases::*;
pub use stability::*;
pub use time_bound::{time_bound, TimeBound, TimeBoundInputs};

/// OU stationary mean error of streaming PCA at τ = 0 for eigenvalues
/// `lambda` (largest first) and α²_{i1} = `alpha_sq(i)`.
pub fn ou_stationary_error(
    step_size: f64,
    momentum: f64,
    lambda: &[f64],
    alpha_sq: impl Fn(usize) -> f64,
) -> f64 {
    (1..lambda.len())
        .map(|i| step_size * alpha_sq(i) / (2.0 * (1.0 - momentum) * (lambda[0] - lambda[i])))
        .sum()
}

/// The curvature of the stiffest mode of streaming PCA near the optimum:
/// the radial mode, 2λ₁ (the angular modes have λ₁ − λ_i < λ₁).
pub fn pca_stiffest_curvature(lambda: &[f64]) -> f64 {
    2.0 * lambda[0]
}

/// The largest integer τ ≥ 0 such that the delayed heavy-ball recurrence
/// with gain `a` = η·c and momentum `momentum` is asymptotically stable, or
/// `None` if it is unstable already at τ = 0.
///
/// Stability is lost when a root of z^{τ+1} − (1+μ)z^τ + μz^{τ−1} + a = 0
/// crosses the unit circle at z = e^{iθ}. The modulus condition
/// |e^{iθ} − 1|·|e^{iθ} − μ| = a fixes θ (the left side increases on
/// [0, π]); the phase condition (τ−1)θ + arg(e^{iθ}−1) + arg(e^{iθ}−μ) = π
/// (mod 2π) gives the critical real delay τ*; integer delays below τ* are
/// stable. `tests` checks this against direct iteration of the recurrence.
pub fn max_stable_delay(momentum: f64, gain: f64) -> Option<u64> {
    let mu = momentum;
    // τ = 0: z² − (1 + μ − a) z + μ = 0 (Jury: |μ| < 1 and |1+μ−a| < 1+μ);
    // θ by bisection on (0, π]: modulus(0) = 0 < a ≤ modulus(π) = 2(1+μ).
    let theta = stability::crossing_angle(mu, gain)?;
    let (s, c) = theta.sin_cos();
    let phi = (s).atan2(c - 1.0) + s.atan2(c - mu);
    let two_pi = 2.0 * std::f64::consts::PI;
    // Smallest τ* ≥ 0 with (τ*−1)θ = π − φ + 2πn.
    let mut base = std::f64::consts::PI - phi;
    while 1.0 + base / theta < 0.0 {
        base += two_pi;
    }
    let tau_star = 1.0 + base / theta;
    // Integer delays strictly below τ* are stable.
    let largest = tau_star.ceil() as i64 - 1;
    (largest >= 0).then_some(largest as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Iterates the linear recurrence from x = 1 and reports whether it has
    /// decayed: with a margin of one delay from τ*, growth or decay over
    /// 2·10⁵ steps is unmistakable (a factor far from 1).
    fn decays(mu: f64, a: f64, tau: usize) -> bool {
        let n = 200_000;
        let mut x = vec![1.0f64; n + tau + 2];
        let off = tau + 1;
        for k in off..n + off {
            x[k + 1] = (1.0 + mu) * x[k] - mu * x[k - 1] - a * x[k - tau];
        }
        let tail = x[n..].iter().map(|v| v.abs()).fold(0.0, f64::max);
        tail < 1e-3
    }

    #[test]
    fn stability_boundary_matches_direct_iteration() {
        for &(mu, a) in &[
            (0.7, 4e-3),
            (0.8, 4e-3),
            (0.9, 4e-3),
            (0.95, 4e-3),
            (0.0, 0.02),
            (0.5, 1e-2),
        ] {
            let t = max_stable_delay(mu, a).unwrap() as usize;
            assert!(t >= 2, "({mu},{a}) gave {t}");
            assert!(
                decays(mu, a, t - 1),
                "τ = {} should be stable for μ={mu}, a={a}",
                t - 1
            );
            assert!(
                !decays(mu, a, t + 2),
                "τ = {} should be unstable for μ={mu}, a={a}",
                t + 2
            );
        }
    }

    #[test]
    fn stable_delay_shrinks_with_momentum() {
        let v: Vec<u64> = [0.7, 0.8, 0.85, 0.9, 0.95]
            .iter()
            .map(|&m| max_stable_delay(m, 4e-3).unwrap())
            .collect();
        assert!(v.windows(2).all(|w| w[0] > w[1]), "{v:?}");
        // Halving the step size roughly doubles the tolerated delay for small gains.
        let half = max_stable_delay(0.7, 2e-3).unwrap();
        assert!(half as f64 > 1.8 * v[0] as f64, "{half} vs {}", v[0]);
        assert_eq!(max_stable_delay(0.5, 10.0), None);
    }

    #[test]
    fn ou_error_of_e1() {
        // Σ = diag(4,3,2,1), Gaussian: α²_{i1} = 4λ_i; Σ λ₁λ_i/(λ₁−λ_i) = 12 + 4 + 4/3.
        let lam = [4.0, 3.0, 2.0, 1.0];
        let e = ou_stationary_error(5e-4, 0.7, &lam, |i| lam[0] * lam[i]);
        assert!((e - 5e-4 * (12.0 + 4.0 + 4.0 / 3.0) / 0.6).abs() < 1e-15);
    }
}
