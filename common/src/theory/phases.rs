//! The global and local dynamics of (async) momentum SGD from 000/001/002:
//! the ODE closed form (001 Thm 3.3), the OU variances (001 Thm 3.5), the
//! phase lengths T₁, T₂, T₃ (001 Props 3.10, 3.8, 3.6; 000 §4), the delay
//! conditions (001 Thm 3.3, Lemma 3.4, eq. 4.1) and the saddle-escape law
//! (002 Thm 3). Times `t` are in the papers' scale t = k·η; divide by η for steps.

use std::f64::consts::PI;

/// The ODE solution of 001 Thm 3.3 in Σ's eigenbasis:
/// h_i(t) = h_i(0)·e^{λ_i t/(1−μ)} / ‖(h_j(0)·e^{λ_j t/(1−μ)})_j‖, written to `out`.
/// Computed with exponents shifted by the largest so it never overflows.
pub fn ode_pca(h0: &[f64], lambda: &[f64], momentum: f64, t: f64, out: &mut [f64]) {
    let s = t / (1.0 - momentum);
    let top = h0
        .iter()
        .zip(lambda)
        .filter(|(h, _)| **h != 0.0)
        .map(|(_, l)| l * s)
        .fold(f64::NEG_INFINITY, f64::max);
    for ((o, h), l) in out.iter_mut().zip(h0).zip(lambda) {
        *o = h * (l * s - top).exp();
    }
    let n = out.iter().map(|x| x * x).sum::<f64>().sqrt();
    if n > 0.0 {
        out.iter_mut().for_each(|x| *x /= n);
    }
}

/// The optimisation error 1 − h₁²/‖h‖² along the ODE of 001 Thm 3.3.
pub fn ode_pca_error(h0: &[f64], lambda: &[f64], momentum: f64, t: f64) -> f64 {
    let mut h = h0.to_vec();
    ode_pca(h0, lambda, momentum, t, &mut h);
    1.0 - h[0] * h[0]
}

/// Stationary variance of coordinate i ≥ 2 of h near the optimum: the OU
/// process of 001 Thm 3.5 (in the unscaled h), η·α²_{i1} / (2(1−μ)(λ₁−λ_i)).
pub fn ou_stationary_variance(
    step_size: f64,
    momentum: f64,
    lambda1: f64,
    lambda_i: f64,
    alpha_sq_i1: f64,
) -> f64 {
    step_size * alpha_sq_i1 / (2.0 * (1.0 - momentum) * (lambda1 - lambda_i))
}

/// Standard normal CDF Φ, from the complementary error function
/// (Numerical Recipes' Chebyshev fit, relative error < 1.2·10⁻⁷).
pub fn normal_cdf(x: f64) -> f64 {
    0.5 * erfc(-x / std::f64::consts::SQRT_2)
}

fn erfc(x: f64) -> f64 {
    let z = x.abs();
    let t = 1.0 / (1.0 + 0.5 * z);
    // Horner's scheme, innermost coefficient first (a fold rather than
    // nested brackets, which rustfmt takes seconds to lay out); the same
    // operations in the same order as the textbook form.
    const C: [f64; 9] = [
        1.00002368,
        0.37409196,
        0.09678418,
        -0.18628806,
        0.27886807,
        -1.13520398,
        1.48851587,
        -0.82215223,
        0.17087277,
    ];
    let (last, rest) = C.split_last().expect("coefficients");
    let p = rest.iter().rev().fold(*last, |acc, c| c + t * acc);
    let r = t * (-z * z - 1.26551223 + t * p).exp();
    if x >= 0.0 {
        r
    } else {
        2.0 - r
    }
}

/// Φ⁻¹(p) for p in (0, 1), by bisection on [`normal_cdf`].
pub fn normal_quantile(p: f64) -> f64 {
    let (mut lo, mut hi) = (-40.0f64, 40.0f64);
    for _ in 0..200 {
        let m = 0.5 * (lo + hi);
        if normal_cdf(m) < p {
            lo = m;
        } else {
            hi = m;
        }
    }
    0.5 * (lo + hi)
}

/// The streaming-PCA quantities the phase lengths need.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PhaseInputs {
    /// Largest eigenvalue λ₁.
    pub lambda1: f64,
    /// Second eigenvalue λ₂.
    pub lambda2: f64,
    /// α²₁₂ = E[Y₁²Y₂²].
    pub alpha12_sq: f64,
    /// φ = Σ_j α²_{1j}.
    pub phi: f64,
    /// Momentum μ.
    pub momentum: f64,
    /// Step size η.
    pub step_size: f64,
    /// Neighbourhood radius δ (δ ≍ √η in the papers).
    pub delta: f64,
}

/// Phase I (escape the saddle), 001 Prop 3.10 / 000 Prop 4.6:
/// T₁ = (1−μ)/(2(λ₁−λ₂))·log(2(1−μ)η⁻¹δ²(λ₁−λ₂) / (Φ⁻¹((1+ν/2)/2)²·α²₁₂) + 1),
/// the time by which (h₂)² ≤ 1 − δ² with probability ≥ 1 − ν.
pub fn phase_one_time(p: &PhaseInputs, nu: f64) -> f64 {
    let gap = p.lambda1 - p.lambda2;
    let q = normal_quantile((1.0 + nu / 2.0) / 2.0);
    let k =
        2.0 * (1.0 - p.momentum) * p.delta * p.delta * gap / (p.step_size * q * q * p.alpha12_sq);
    (1.0 - p.momentum) / (2.0 * gap) * (k + 1.0).ln()
}

/// Phase II (traverse), from the ODE of 001 Thm 3.3 as in the proof of
/// Prop 3.8 (eq. B.9): the time for h₁² to grow from δ² to 1 − δ² when the
/// rest of the mass sits on the second eigenvector,
/// T₂ = (1−μ)/(λ₁−λ₂)·log((1−δ²)/δ²).
/// (The propositions print (1−μ)/(2(λ₁−λ₂))·log((1−δ²)/δ²), half of what
/// B.9 gives; we use B.9, which `tests` checks against [`ode_pca`].)
pub fn phase_two_time(p: &PhaseInputs) -> f64 {
    let d2 = p.delta * p.delta;
    (1.0 - p.momentum) / (p.lambda1 - p.lambda2) * ((1.0 - d2) / d2).ln()
}

/// Phase III (converge), 001 Prop 3.6: the time for Σ_{i≥2} h_i² ≤ ε with
/// probability ≥ 3/4,
/// T₃ = (1−μ)/(2(λ₁−λ₂))·log(8(1−μ)(λ₁−λ₂)δ² / ((1−μ)(λ₁−λ₂)ε − 4ηφ)).
/// `None` when ε ≤ [`phase_three_min_epsilon`]: the log's denominator is
/// then ≤ 0 and the bound is void. That limit is a feasibility condition of
/// the proposition's bound (its constants), not the OU floor: at E3's
/// defaults it is ε > 1.44 while the OU stationary error is 0.043.
pub fn phase_three_time(p: &PhaseInputs, epsilon: f64) -> Option<f64> {
    let g = (1.0 - p.momentum) * (p.lambda1 - p.lambda2);
    let den = g * epsilon - 4.0 * p.step_size * p.phi;
    if den <= 0.0 {
        return None;
    }
    let arg = 8.0 * g * p.delta * p.delta / den;
    Some((1.0 - p.momentum) / (2.0 * (p.lambda1 - p.lambda2)) * arg.ln().max(0.0))
}

/// The feasibility limit of 001 Prop 3.6's bound: T₃ is defined only for
/// ε > 4ηφ/((1−μ)(λ₁−λ₂)).
pub fn phase_three_min_epsilon(p: &PhaseInputs) -> f64 {
    4.0 * p.step_size * p.phi / ((1.0 - p.momentum) * (p.lambda1 - p.lambda2))
}

/// Delay condition of the ODE regime (001 Thm 3.3, Prop 3.8; for random
/// delays on E[τ], eq. 4.1): τ ≲ (1−μ)² / (λ₁ η^{1−γ}).
pub fn delay_bound_ode(momentum: f64, lambda1: f64, step_size: f64, gamma: f64) -> f64 {
    (1.0 - momentum).powi(2) / (lambda1 * step_size.powf(1.0 - gamma))
}

/// Delay condition of the SDE regime (001 Lemma 3.4, Thm 3.5, Props 3.6,
/// 3.10): τ ≲ (1−μ)² / ((λ₁ + C_d) η^{1/2−γ}), γ ∈ (0, 1/2].
pub fn delay_bound_sde(momentum: f64, lambda1: f64, c_d: f64, step_size: f64, gamma: f64) -> f64 {
    (1.0 - momentum).powi(2) / ((lambda1 + c_d) * step_size.powf(0.5 - gamma))
}

/// The saddle-escape law of 002 Thm 3 in steps: (1/(2γ₁))·η⁻¹·log η⁻¹.
pub fn saddle_escape_steps(step_size: f64, gamma1: f64) -> f64 {
    (1.0 / step_size).ln() / (2.0 * gamma1 * step_size)
}

/// Expected steps for (heavy-ball) SGD to leave the ball of radius `radius`
/// around a saddle with escape curvature γ₁ and gradient-noise standard
/// deviation `noise_sd` along the escape direction, started exactly at it.
///
/// In the diffusion limit the escape coordinate is the unstable OU process
/// dU = γU dt + √η σ dB with γ = γ₁/(1−μ), σ = noise_sd/(1−μ) (001 Thm 3.9
/// with momentum; 002 eq. 3.15 without), so U(t) ≈ e^{γt}·√η σ·Z/√(2γ) and
/// E[T] = (1/(2γ))·(log η⁻¹ + 2 log(R√(2γ)/σ) + γ_E + log 2) (E[−log|Z|] =
/// (γ_E + log 2)/2). Its leading term is 002's law; the rest is the finite-η
/// correction that makes the ratio to η⁻¹ log η⁻¹ approach 1/(2γ₁) slowly.
pub fn saddle_escape_steps_ou(
    step_size: f64,
    gamma1: f64,
    noise_sd: f64,
    radius: f64,
    momentum: f64,
) -> f64 {
    const EULER_GAMMA: f64 = 0.577_215_664_901_532_9;
    let g = gamma1 / (1.0 - momentum);
    let s = noise_sd / (1.0 - momentum);
    let t = ((1.0 / step_size).ln()
        + 2.0 * (radius * (2.0 * g).sqrt() / s).ln()
        + EULER_GAMMA
        + 2f64.ln())
        / (2.0 * g);
    t.max(0.0) / step_size
}

/// Expected steps to leave radius `radius` around a saddle, from the
/// discrete heavy-ball recurrence itself rather than its diffusion limit.
///
/// Along the escape direction the iterate follows
/// u_{k+1} = (1+μ+a)u_k − μu_{k−1} + ησξ_k, a = ηγ₁, whose roots are
/// z± = ((1+μ+a) ± √((1+μ+a)² − 4μ))/2. From u₀ = u₋₁ = 0 the growing part is
/// u_k ≈ z₊^k · ησ/((z₊−z₋)·√(1−z₊⁻²)) · Z with Z standard normal (the impulse
/// response is (z₊^{k+1} − z₋^{k+1})/(z₊−z₋); the sum of the noise weighted by
/// z₊^{−j} has variance 1/(1−z₊⁻²)), so the mean hitting step of |u| = R is
/// (log(R/amp) + (γ_E + log 2)/2)/log z₊.
///
/// In the limit η → 0 this is [`saddle_escape_steps_ou`]. At finite η the
/// growth rate log z₊ is smaller than the diffusion's a/(1−μ) by about
/// μa²/(1−μ)³ relative to it: at μ = 0.9, a = 10⁻³ (E4) that is 9 %, which
/// is why the OU value runs low there.
pub fn saddle_escape_steps_discrete(
    step_size: f64,
    gamma1: f64,
    noise_sd: f64,
    radius: f64,
    momentum: f64,
) -> f64 {
    const EULER_GAMMA: f64 = 0.577_215_664_901_532_9;
    let a = step_size * gamma1;
    let b = 1.0 + momentum + a;
    let root = (b * b - 4.0 * momentum).sqrt();
    let (zp, zm) = ((b + root) / 2.0, (b - root) / 2.0);
    let amp = step_size * noise_sd / ((zp - zm) * (1.0 - zp.powi(-2)).sqrt());
    ((radius / amp).ln() + (EULER_GAMMA + 2f64.ln()) / 2.0).max(0.0) / zp.ln()
}

/// Standard deviation of the escape step of [`saddle_escape_steps_discrete`]:
/// sd(log|Z|)/log z₊ with sd(log|Z|) = π/√8.
pub fn saddle_escape_steps_discrete_sd(step_size: f64, gamma1: f64, momentum: f64) -> f64 {
    let a = step_size * gamma1;
    let b = 1.0 + momentum + a;
    let zp = (b + (b * b - 4.0 * momentum).sqrt()) / 2.0;
    std::f64::consts::PI / 8f64.sqrt() / zp.ln()
}

/// Kramers' mean escape time (in steps) of SGD from a 1-D minimum of
/// curvature `k_min` over a barrier of height `barrier` and curvature
/// `k_barrier`, with noise variance `noise_var` per gradient: the diffusion
/// has temperature η·σ²/2, so N ≈ 2π/(η√(k_min·k_barrier))·exp(2·ΔF/(η σ²)).
/// Exponential in 1/η and in the batch size m (σ² ∝ 1/m): 002 Thm 2.
pub fn kramers_escape_steps(
    step_size: f64,
    k_min: f64,
    k_barrier: f64,
    barrier: f64,
    noise_var: f64,
) -> f64 {
    2.0 * PI / (step_size * (k_min * k_barrier).sqrt())
        * (2.0 * barrier / (step_size * noise_var)).exp()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ode_matches_euler_integration() {
        // Integrate V' = (ΣV − V'ΣV V)/(1−μ) with small Euler steps: the
        // closed form must agree to O(dt) = 1e-4.
        let lam = [4.0, 3.0, 2.0, 1.0];
        let mu = 0.9;
        let mut v = [0.1, 0.9, 0.3, 0.2];
        let n = v.iter().map(|x: &f64| x * x).sum::<f64>().sqrt();
        v.iter_mut().for_each(|x| *x /= n);
        let h0 = v;
        let dt = 1e-5;
        let t_end = 0.2;
        for _ in 0..(t_end / dt) as usize {
            let q: f64 = v.iter().zip(&lam).map(|(x, l)| l * x * x).sum();
            for (x, l) in v.iter_mut().zip(&lam) {
                *x += dt * (l * *x - q * *x) / (1.0 - mu);
            }
        }
        let mut h = [0.0; 4];
        ode_pca(&h0, &lam, mu, t_end, &mut h);
        for (a, b) in h.iter().zip(&v) {
            assert!((a - b).abs() < 1e-3, "{h:?} vs {v:?}");
        }
        // From h₁ ≠ 0 the ODE reaches the optimum.
        assert!(ode_pca_error(&h0, &lam, mu, 50.0) < 1e-12);
    }

    #[test]
    fn phase_two_is_the_ode_traverse_time() {
        let p = PhaseInputs {
            lambda1: 4.0,
            lambda2: 3.0,
            alpha12_sq: 12.0,
            phi: 16.0 * 3.0 + 12.0 + 8.0 + 4.0,
            momentum: 0.9,
            step_size: 5e-4,
            delta: 0.05,
        };
        let t2 = phase_two_time(&p);
        let d2 = p.delta * p.delta;
        let h0 = [p.delta, (1.0 - d2).sqrt()];
        let e = ode_pca_error(&h0, &[4.0, 3.0], p.momentum, t2);
        assert!((e - d2).abs() < 1e-9, "error at T₂ = {e}, want δ² = {d2}");
        // Momentum shortens every phase by the factor (1 − μ) at equal η.
        let sgd = PhaseInputs { momentum: 0.0, ..p };
        assert!((phase_two_time(&sgd) * 0.1 - t2).abs() < 1e-12);
        assert!(phase_one_time(&sgd, 0.1) > phase_one_time(&p, 0.1));
        // ε at or below the bound's feasibility limit has no T₃; above it a finite one.
        assert_eq!(phase_three_time(&p, 1e-3), None);
        let lim = phase_three_min_epsilon(&p);
        assert_eq!(phase_three_time(&p, lim), None);
        assert!(phase_three_time(&p, 1.01 * lim).is_some());
        assert!(phase_three_time(&PhaseInputs { delta: 0.5, ..sgd }, 0.2).unwrap() > 0.0);
    }

    /// Direct iteration of the 1-D recurrence
    /// u_{k+1} = (1+μ+a)u_k − μu_{k−1} + ησξ_k against
    /// [`saddle_escape_steps_discrete`]. With n = 2000 runs the
    /// mean's standard error is sd/√n (sd from
    /// [`saddle_escape_steps_discrete_sd`], ≈ 120 steps at μ = 0.9, so 2.7);
    /// the law drops the z₋ transient and the last step's overshoot (under
    /// one step): 4 standard errors + 1 step.
    #[test]
    fn discrete_escape_law_matches_iteration() {
        use crate::seed::PsimRng;
        use rand::SeedableRng;
        use rand_distr::{Distribution, StandardNormal};
        let (eta, g1, sd, r) = (0.01, 0.1, 0.1, 1.0);
        for mu in [0.0, 0.9] {
            let mut rng = PsimRng::seed_from_u64(7);
            let n = 2000;
            let mut total = 0.0;
            for _ in 0..n {
                let (mut u, mut prev) = (0.0f64, 0.0f64);
                let mut k = 0u64;
                while u.abs() < r {
                    let xi: f64 = StandardNormal.sample(&mut rng);
                    let next = (1.0 + mu + eta * g1) * u - mu * prev + eta * sd * xi;
                    prev = u;
                    u = next;
                    k += 1;
                }
                total += k as f64;
            }
            let mean = total / n as f64;
            let law = saddle_escape_steps_discrete(eta, g1, sd, r, mu);
            let se = saddle_escape_steps_discrete_sd(eta, g1, mu) / (n as f64).sqrt();
            assert!(
                (mean - law).abs() < 4.0 * se + 1.0,
                "μ = {mu}: iterated {mean}, law {law} (se {se})"
            );
        }
    }

    #[test]
    fn normal_quantile_inverts_the_cdf() {
        assert!((normal_cdf(1.959_964) - 0.975).abs() < 1e-6);
        assert!((normal_quantile(0.975) - 1.959_964).abs() < 1e-5);
        assert!(normal_quantile(0.5).abs() < 1e-6);
    }

    #[test]
    fn escape_law_and_delay_bounds() {
        let n = saddle_escape_steps(1e-3, 0.5);
        assert!((n - 1e3 * (1e3f64).ln()).abs() < 1e-6);
        // The OU refinement divided by η⁻¹ log η⁻¹ tends to 1/(2γ₁).
        let ratio =
            |eta: f64| saddle_escape_steps_ou(eta, 1.0, 1.0, 1.0, 0.0) / (eta.recip().ln() / eta);
        assert!((ratio(1e-12) - 0.5).abs() < (ratio(1e-3) - 0.5).abs());
        assert!((ratio(1e-100) - 0.5).abs() < 0.01);
        // Momentum speeds escape by about 1/(1 − μ).
        let a = saddle_escape_steps_ou(1e-3, 0.1, 1.0, 1.0, 0.0);
        let b = saddle_escape_steps_ou(1e-3, 0.1, 1.0, 1.0, 0.9);
        assert!(b < a / 5.0, "{a} {b}");
        assert!(delay_bound_ode(0.7, 4.0, 5e-4, 0.5) > delay_bound_ode(0.9, 4.0, 5e-4, 0.5));
        assert!(delay_bound_sde(0.7, 4.0, 1.0, 5e-4, 0.25) < delay_bound_ode(0.7, 4.0, 5e-4, 0.25));
        // The discrete recurrence's law tends to the diffusion's as η → 0,
        // and at μ = 0.9, ηγ₁ = 10⁻³ (E4) it is ≈ 13 % longer (370 vs 328).
        for mu in [0.0, 0.9] {
            let d = saddle_escape_steps_discrete(1e-7, 0.1, 0.1, 1.0, mu);
            let o = saddle_escape_steps_ou(1e-7, 0.1, 0.1, 1.0, mu);
            assert!((d / o - 1.0).abs() < 1e-3, "μ = {mu}: {d} vs {o}");
        }
        let d = saddle_escape_steps_discrete(0.01, 0.1, 0.1, 1.0, 0.9);
        let o = saddle_escape_steps_ou(0.01, 0.1, 0.1, 1.0, 0.9);
        assert!(
            (d - 370.0).abs() < 1.0 && (o - 328.0).abs() < 1.0,
            "{d} {o}"
        );
        let k1 = kramers_escape_steps(0.1, 16.0, 4.0, 0.5, 1.0);
        let k4 = kramers_escape_steps(0.1, 16.0, 4.0, 0.5, 0.25);
        assert!((k4 / k1 - (30f64).exp()).abs() / (30f64).exp() < 1e-9);
    }
}
