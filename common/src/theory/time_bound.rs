//! The optimal time to an ε-stationary point under the fixed computation
//! model (Tyurin & Richtárik 2023, "Optimal time complexities of parallel
//! stochastic optimization methods under a fixed computation model"): n
//! workers, worker i needing τ_i seconds per stochastic gradient,
//! τ₁ ≤ … ≤ τ_n, an L-smooth f with Δ = f(x⁰) − f*, gradients of variance
//! σ². Their lower bound, attained up to a constant by Rennala SGD (and by
//! Ringmaster ASGD, Maranjyan, Tyurin & Richtárik 2025, who restate it as
//! T_R), is
//!
//! ```text
//!   T* ≍ min_{m ∈ [n]} (1/m Σ_{i≤m} 1/τ_i)⁻¹ · (LΔ/ε + σ²LΔ/(m ε²))
//! ```
//!
//! where an ε-stationary point has E‖∇f(x)‖² ≤ ε. The minimising m is the
//! number of workers worth using: the slower ones would each add less
//! throughput than their gradients' staleness costs. [`time_bound`]
//! evaluates every m in O(n) after sorting.

use crate::error::ConfigError;

/// The problem constants of the bound.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TimeBoundInputs {
    /// L, the smoothness constant.
    pub smoothness: f64,
    /// Δ = f(x⁰) − f*.
    pub gap: f64,
    /// σ², the stochastic gradients' variance.
    pub variance: f64,
    /// ε, the target E‖∇f‖².
    pub epsilon: f64,
}

/// The bound and its minimiser.
#[derive(Debug, Clone, PartialEq)]
pub struct TimeBound {
    /// T* = min over m of the bracket (seconds, the τ's unit), up to a
    /// constant factor.
    pub seconds: f64,
    /// The minimising m (the smallest one on ties): the fastest m workers
    /// are the ones worth using.
    pub workers: usize,
    /// The bracket with all n workers, T(n), for comparison.
    pub with_all: f64,
}

/// T(m) = (1/m Σ_{i≤m} 1/τ_i)⁻¹ (LΔ/ε + σ²LΔ/(mε²)) for the sorted τ's
/// prefix of length m, given the prefix sum `inv` = Σ_{i≤m} 1/τ_i.
fn bracket(m: usize, inv: f64, p: &TimeBoundInputs) -> f64 {
    let ld = p.smoothness * p.gap;
    let m = m as f64;
    (m / inv) * (ld / p.epsilon + p.variance * ld / (m * p.epsilon * p.epsilon))
}

/// The optimal time bound for the workers' seconds per gradient `taus` (any
/// order; sorted here). Refuses, naming the input, an empty list, a τ that
/// is not finite and > 0, or constants outside their ranges (L, Δ, ε > 0,
/// σ² ≥ 0, all finite).
pub fn time_bound(taus: &[f64], p: &TimeBoundInputs) -> Result<TimeBound, ConfigError> {
    if taus.is_empty() {
        return Err(ConfigError::new("tau", "[]", "at least one worker"));
    }
    if let Some(t) = taus.iter().find(|t| !(t.is_finite() && **t > 0.0)) {
        return Err(ConfigError::new(
            "tau",
            t,
            "finite and > 0 for every worker (seconds per gradient)",
        ));
    }
    for (name, v, ok) in [
        ("smoothness", p.smoothness, p.smoothness > 0.0),
        ("gap", p.gap, p.gap > 0.0),
        ("variance", p.variance, p.variance >= 0.0),
        ("epsilon", p.epsilon, p.epsilon > 0.0),
    ] {
        if !(v.is_finite() && ok) {
            return Err(ConfigError::new(
                name,
                v,
                if name == "variance" {
                    "finite and ≥ 0"
                } else {
                    "finite and > 0"
                },
            ));
        }
    }
    let mut sorted = taus.to_vec();
    sorted.sort_by(f64::total_cmp);
    let mut inv = 0.0;
    let mut best = (f64::INFINITY, 0);
    let mut last = f64::INFINITY;
    for (k, t) in sorted.iter().enumerate() {
        inv += 1.0 / t;
        let v = bracket(k + 1, inv, p);
        if v < best.0 {
            best = (v, k + 1);
        }
        last = v;
    }
    if !(best.0.is_finite() && last.is_finite()) {
        // LΔ/ε + σ²LΔ/(mε²) beyond f64: ε far below what any run reaches.
        return Err(ConfigError::new(
            "epsilon",
            p.epsilon,
            format!(
                "large enough that the bound is finite (LΔ/ε + σ²LΔ/(mε²) with L = {}, Δ = {}, σ² = {} overflows here)",
                crate::num::show(p.smoothness),
                crate::num::show(p.gap),
                crate::num::show(p.variance)
            ),
        ));
    }
    Ok(TimeBound {
        seconds: best.0,
        workers: best.1,
        with_all: last,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(l: f64, d: f64, s2: f64, e: f64) -> TimeBoundInputs {
        TimeBoundInputs {
            smoothness: l,
            gap: d,
            variance: s2,
            epsilon: e,
        }
    }

    #[test]
    fn equal_times_use_every_worker_in_closed_form() {
        // τ_i = τ: (1/m Σ 1/τ)⁻¹ = τ, so T(m) = τ(LΔ/ε + σ²LΔ/(mε²)) falls
        // with m: m* = n and T* = τ(LΔ/ε + σ²LΔ/(nε²)).
        let (tau, n) = (3.0, 10);
        let q = p(2.0, 5.0, 4.0, 0.5);
        let b = time_bound(&vec![tau; n], &q).unwrap();
        let want = tau * (2.0 * 5.0 / 0.5 + 4.0 * 2.0 * 5.0 / (10.0 * 0.25));
        assert_eq!(b.workers, n);
        assert!((b.seconds - want).abs() <= 1e-12 * want, "{b:?} vs {want}");
        assert_eq!(b.seconds, b.with_all);
        // Without noise a single worker is as good as many: T(m) = τ·LΔ/ε
        // for every m, and the smallest minimiser is 1.
        let b = time_bound(&vec![tau; n], &p(2.0, 5.0, 0.0, 0.5)).unwrap();
        assert_eq!((b.workers, b.seconds), (1, tau * 20.0));
    }

    #[test]
    fn a_slow_worker_is_not_worth_using_by_hand() {
        // τ = (1, 2, 3, 100), L = Δ = σ² = 1, ε = 0.1: LΔ/ε = 10,
        // σ²LΔ/ε² = 100.
        //   m = 1: 1 · (10 + 100)                 = 110
        //   m = 2: (2/1.5) · (10 + 50)            = 80
        //   m = 3: (3/(11/6)) · (10 + 100/3)      = 18/11 · 130/3 = 780/11 ≈ 70.909
        //   m = 4: (4/(1.8433…)) · (10 + 25)      ≈ 75.95
        let b = time_bound(&[100.0, 3.0, 1.0, 2.0], &p(1.0, 1.0, 1.0, 0.1)).unwrap();
        assert_eq!(b.workers, 3);
        assert!((b.seconds - 780.0 / 11.0).abs() < 1e-9, "{b:?}");
        let all = 4.0 / (1.0 + 0.5 + 1.0 / 3.0 + 0.01) * 35.0;
        assert!((b.with_all - all).abs() < 1e-9, "{b:?}");
    }

    #[test]
    fn sqrt_i_profile_uses_a_growing_share() {
        // τ_i = √i: with more noise (σ²) more workers are worth using.
        let taus: Vec<f64> = (1..=10_000).map(|i| (i as f64).sqrt()).collect();
        let few = time_bound(&taus, &p(1.0, 1.0, 1.0, 0.1)).unwrap();
        let many = time_bound(&taus, &p(1.0, 1.0, 100.0, 0.1)).unwrap();
        assert!(few.workers < many.workers, "{few:?} {many:?}");
        assert!(many.seconds <= many.with_all);
    }

    #[test]
    fn bad_inputs_are_refused_by_name() {
        let q = p(1.0, 1.0, 1.0, 0.1);
        assert!(time_bound(&[], &q).unwrap_err().to_string().contains("tau"));
        assert!(time_bound(&[1.0, 0.0], &q)
            .unwrap_err()
            .to_string()
            .contains("tau"));
        let e = time_bound(&[1.0], &p(1.0, 1.0, 1.0, 0.0))
            .unwrap_err()
            .to_string();
        assert!(e.contains("epsilon"), "{e}");
        let e = time_bound(&[1.0], &p(1.0, -1.0, 1.0, 0.1))
            .unwrap_err()
            .to_string();
        assert!(e.contains("gap"), "{e}");
    }
}
