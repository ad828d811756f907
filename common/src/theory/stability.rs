//! Where the delayed heavy ball stops being stable, for random staleness
//! and for a cluster's worker count: the predictions `psim reproduce
//! phase-diagram` draws and `psim advise` prints.
//!
//! The linearised delayed heavy ball of one mode with gain a = η·c
//! (curvature c) under staleness τ_k drawn independently with law p is
//! x_{k+1} = (1+μ)x_k − μx_{k−1} − a·x_{k−τ_k}. Its expectation obeys the
//! deterministic recursion with the delay averaged out,
//! m_{k+1} = (1+μ)m_k − μm_{k−1} − a Σ_l p_l m_{k−l}, whose characteristic
//! polynomial for a law on 0…L is
//! P(z) = z^{L+1} − (1+μ)z^L + μz^{L−1} + a Σ_l p_l z^{L−l}.
//! The mean is stable when every root lies inside the unit circle
//! ([`schur_stable`], the Schur–Cohn–Jury test). For a constant delay this
//! is exactly [`super::max_stable_delay`]; for random delays it is the
//! first-moment prediction (the "mean-recursion" boundary), sharper than
//! 001 §4's reading, which only moves the condition to E[τ] (a random delay
//! is then predicted to behave as a constant delay of the same mean).
//!
//! On a cluster of M workers whose compute times are exponential (the
//! queueing model of Mitliagkas, Zhang, Hadjis & Ré 2016) the staleness is
//! geometric with success probability 1/M, and the expected update obeys
//! E[Δ_{k+1}] = (μ + 1 − 1/M)E[Δ_k] − μ(1 − 1/M)E[Δ_{k−1}] − (a/M)·x_k:
//! asynchrony adds an *implicit momentum* 1 − 1/M ([`implicit_momentum`])
//! and divides the step by M. Its characteristic polynomial is the cubic of
//! [`geometric_mean_stable`]. With constant compute times every staleness
//! is exactly M − 1 after the first round, so the constant-delay boundary
//! applies at τ = M − 1.

use crate::delay::{to_steps, Delay};

/// Tail mass at which a staleness law with unbounded support is cut.
pub const PMF_TAIL: f64 = 1e-12;

/// The longest staleness law (support 0…`MAX_PMF_LEN` − 1) the
/// mean-recursion test takes: its cost grows with the square of the length.
pub const MAX_PMF_LEN: usize = 1 << 13;

/// Whether every root of the real polynomial with `coeffs` (highest degree
/// first) lies strictly inside the unit circle: the Schur–Cohn–Jury
/// reduction, normalised at every stage so high degrees neither overflow
/// nor underflow. O(n²).
pub fn schur_stable(coeffs: &[f64]) -> bool {
    let mut c: Vec<f64> = coeffs.to_vec();
    while c.len() > 1 && c[0] == 0.0 {
        c.remove(0);
    }
    if c.iter().any(|x| !x.is_finite()) {
        return false;
    }
    while c.len() > 1 {
        let n = c.len() - 1;
        let (lead, last) = (c[0], c[n]);
        if lead.abs() <= last.abs() {
            return false;
        }
        let next: Vec<f64> = (0..n)
            .map(|i| (lead * c[i] - last * c[n - i]) / lead)
            .collect();
        c = next;
        let scale = c[0];
        if scale == 0.0 {
            return false;
        }
        c.iter_mut().for_each(|x| *x /= scale);
    }
    true
}

/// Whether the expected delayed heavy ball with momentum `momentum`, gain
/// `gain` = η·c and staleness law `pmf` (`pmf[l]` = P(τ = l)) is stable:
/// every root of P(z) (module documentation) inside the unit circle.
pub fn mean_recursion_stable(momentum: f64, gain: f64, pmf: &[f64]) -> bool {
    let l = pmf.len().saturating_sub(1).max(1);
    // Coefficients of z^{L+1}, z^L, …, z^0.
    let mut c = vec![0.0; l + 2];
    c[0] = 1.0;
    c[1] = -(1.0 + momentum);
    c[2] += momentum;
    for (lag, p) in pmf.iter().enumerate() {
        c[1 + lag] += gain * p;
    }
    schur_stable(&c)
}

/// Whether the expected heavy ball under geometric staleness with success
/// probability `p` (exponential compute times on M = 1/p workers) is stable:
/// the roots of (z² − (1+μ)z + μ)(z − q) + a·p·z², q = 1 − p.
pub fn geometric_mean_stable(momentum: f64, gain: f64, p: f64) -> bool {
    let q = 1.0 - p;
    schur_stable(&[
        1.0,
        -q - (1.0 + momentum) + gain * p,
        (1.0 + momentum) * q + momentum,
        -momentum * q,
    ])
}

/// The implicit momentum of asynchrony on M workers with exponential
/// compute times (Mitliagkas et al. 2016): 1 − 1/M.
pub fn implicit_momentum(workers: u64) -> f64 {
    1.0 - 1.0 / workers.max(1) as f64
}

/// The law of the integer staleness a delay model runs on the injected
/// engine (draws rounded to the nearest integer), as P(τ = 0), P(τ = 1), …,
/// cut where the remaining mass is below [`PMF_TAIL`]. `None` for the
/// models whose law is not written here (Pareto, log-normal, traces) or
/// whose support exceeds [`MAX_PMF_LEN`].
pub fn staleness_pmf(delay: &Delay) -> Option<Vec<f64>> {
    let pmf = match delay {
        Delay::Constant(c) => {
            let t = to_steps(*c) as usize;
            if t >= MAX_PMF_LEN {
                return None;
            }
            let mut v = vec![0.0; t + 1];
            v[t] = 1.0;
            v
        }
        Delay::Uniform { lo, hi } => {
            let (a, b) = (to_steps(*lo) as usize, to_steps(*hi) as usize);
            if b >= MAX_PMF_LEN {
                return None;
            }
            let mut v = vec![0.0; b + 1];
            let w = 1.0 / (b - a + 1) as f64;
            v[a..=b].iter_mut().for_each(|x| *x = w);
            v
        }
        Delay::Geometric { p } => unbounded(|l| p * (1.0 - p).powi(l as i32))?,
        Delay::Poisson { mean, .. } => {
            // e^{−λ}λ^l/l! in logs (λ up to thousands).
            let lm = mean.ln();
            unbounded(|l| {
                let lf = l as f64;
                (lf * lm - mean - ln_factorial(l)).exp()
            })?
        }
        Delay::Exponential { mean } => unbounded(|l| {
            // P(round(X) = l) = P(l − ½ ≤ X < l + ½).
            let lo = (l as f64 - 0.5).max(0.0);
            (-lo / mean).exp() - (-(l as f64 + 0.5) / mean).exp()
        })?,
        Delay::Mixture(parts) => {
            let mut acc: Vec<f64> = Vec::new();
            let mut prev = 0.0;
            for (cum, d) in parts.iter() {
                let w = cum - prev;
                prev = *cum;
                let part = staleness_pmf(d)?;
                if part.len() > acc.len() {
                    acc.resize(part.len(), 0.0);
                }
                acc.iter_mut().zip(&part).for_each(|(a, p)| *a += w * p);
            }
            acc
        }
        Delay::Pareto { .. } | Delay::LogNormal { .. } | Delay::Trace { .. } => return None,
    };
    Some(pmf)
}

fn ln_factorial(n: usize) -> f64 {
    (2..=n).map(|k| (k as f64).ln()).sum()
}

/// A law on 0, 1, … from its probabilities, cut once the mass reaches
/// 1 − [`PMF_TAIL`]; `None` beyond [`MAX_PMF_LEN`].
fn unbounded(p: impl Fn(usize) -> f64) -> Option<Vec<f64>> {
    let mut v = Vec::new();
    let mut mass = 0.0;
    while mass < 1.0 - PMF_TAIL {
        if v.len() >= MAX_PMF_LEN {
            return None;
        }
        let x = p(v.len());
        mass += x;
        v.push(x);
        // A law whose terms underflowed past its mode has no mass left.
        if x == 0.0 && v.len() > 1 && v[v.len() - 2] == 0.0 && mass > 0.5 {
            break;
        }
    }
    Some(v)
}

/// A family of staleness laws indexed by their mean s, the axis along which
/// `psim advise` and the phase diagram look for the largest tolerated delay.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DelayFamily {
    /// `const:s`.
    Constant,
    /// `uniform:0..2s` (mean s).
    Uniform,
    /// `geometric:1/(s+1)` (mean s).
    Geometric,
    /// `poisson:s`.
    Poisson,
    /// `exp:s`.
    Exponential,
}

impl DelayFamily {
    /// The family a delay model belongs to (its kind), or `None` for the
    /// kinds that have no family here (a uniform not starting at 0, Pareto,
    /// log-normal, mixtures, traces).
    pub fn of(delay: &Delay) -> Option<Self> {
        Some(match delay {
            Delay::Constant(_) => DelayFamily::Constant,
            Delay::Uniform { lo, .. } if *lo == 0.0 => DelayFamily::Uniform,
            Delay::Geometric { .. } => DelayFamily::Geometric,
            Delay::Poisson { .. } => DelayFamily::Poisson,
            Delay::Exponential { .. } => DelayFamily::Exponential,
            _ => return None,
        })
    }

    /// The member with mean `mean` (an integer number of steps).
    pub fn at(self, mean: u64) -> Delay {
        let s = mean as f64;
        match self {
            DelayFamily::Constant => Delay::Constant(s),
            DelayFamily::Uniform => Delay::Uniform {
                lo: 0.0,
                hi: 2.0 * s,
            },
            DelayFamily::Geometric => Delay::Geometric { p: 1.0 / (s + 1.0) },
            DelayFamily::Poisson if mean == 0 => Delay::Constant(0.0),
            DelayFamily::Poisson => format!("poisson:{mean}")
                .parse()
                .unwrap_or(Delay::Constant(s)),
            DelayFamily::Exponential if mean == 0 => Delay::Constant(0.0),
            DelayFamily::Exponential => Delay::Exponential { mean: s },
        }
    }

    /// Its name in the delay syntax.
    pub fn name(self) -> &'static str {
        match self {
            DelayFamily::Constant => "const",
            DelayFamily::Uniform => "uniform:0..2s",
            DelayFamily::Geometric => "geometric",
            DelayFamily::Poisson => "poisson",
            DelayFamily::Exponential => "exp",
        }
    }
}

/// Whether the expected delayed heavy ball is stable at mean delay `mean`
/// of `family` (`None` when the law is longer than [`MAX_PMF_LEN`]).
pub fn family_stable(momentum: f64, gain: f64, family: DelayFamily, mean: u64) -> Option<bool> {
    match family {
        DelayFamily::Constant => {
            Some(super::max_stable_delay(momentum, gain).is_some_and(|t| mean <= t))
        }
        DelayFamily::Geometric => Some(geometric_mean_stable(
            momentum,
            gain,
            1.0 / (mean as f64 + 1.0),
        )),
        _ => staleness_pmf(&family.at(mean)).map(|p| mean_recursion_stable(momentum, gain, &p)),
    }
}

/// The largest mean delay s ≤ `limit` at which the expected delayed heavy
/// ball of `family` is stable (stability assumed to be lost once, as the
/// mean grows); `None` when even s = 0 is unstable. Returns `limit` when
/// stable all the way, and stops (returning the last stable mean found)
/// where the law grows past [`MAX_PMF_LEN`].
pub fn max_stable_mean_delay(
    momentum: f64,
    gain: f64,
    family: DelayFamily,
    limit: u64,
) -> Option<u64> {
    if family == DelayFamily::Constant {
        return super::max_stable_delay(momentum, gain).map(|t| t.min(limit));
    }
    let stable = |s: u64| family_stable(momentum, gain, family, s);
    if stable(0) != Some(true) {
        return None;
    }
    // Doubling, then bisection on [good, bad).
    let mut good = 0u64;
    let mut bad = None;
    let mut s = 1u64;
    while s <= limit {
        match stable(s) {
            Some(true) => good = s,
            Some(false) => {
                bad = Some(s);
                break;
            }
            None => return Some(good),
        }
        s = s.saturating_mul(2);
    }
    let Some(mut bad) = bad else {
        return if stable(limit) == Some(true) {
            Some(limit)
        } else {
            // Between the last power of two and the limit.
            bisect(good, limit, &stable)
        };
    };
    bad = bisect_bad(good, bad, &stable);
    Some(bad - 1)
}

fn bisect(good: u64, bad: u64, stable: &impl Fn(u64) -> Option<bool>) -> Option<u64> {
    Some(bisect_bad(good, bad, stable) - 1)
}

/// The smallest unstable value in (good, bad], `good` stable, `bad` not.
fn bisect_bad(mut good: u64, mut bad: u64, stable: &impl Fn(u64) -> Option<bool>) -> u64 {
    while bad - good > 1 {
        let mid = good + (bad - good) / 2;
        if stable(mid) == Some(true) {
            good = mid;
        } else {
            bad = mid;
        }
    }
    bad
}

/// How the staleness of a cluster of M workers is predicted from its
/// compute-time model (asynchronous consistency, no network delay).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClusterStaleness {
    /// Equal constant compute times: every staleness is M − 1.
    Constant,
    /// Exponential compute times: geometric staleness with p = 1/M
    /// (implicit momentum 1 − 1/M).
    Exponential,
}

impl ClusterStaleness {
    /// The law for a compute-time model, or `None` for the models whose
    /// staleness law is not written here.
    pub fn of(compute_time: &Delay) -> Option<Self> {
        match compute_time {
            Delay::Constant(_) => Some(ClusterStaleness::Constant),
            Delay::Exponential { .. } => Some(ClusterStaleness::Exponential),
            _ => None,
        }
    }

    /// Whether the expected dynamics on `workers` workers is stable.
    pub fn stable(self, momentum: f64, gain: f64, workers: u64) -> bool {
        match self {
            ClusterStaleness::Constant => super::max_stable_delay(momentum, gain)
                .is_some_and(|t| workers.saturating_sub(1) <= t),
            ClusterStaleness::Exponential => {
                geometric_mean_stable(momentum, gain, 1.0 / workers.max(1) as f64)
            }
        }
    }

    /// The largest M ≤ `limit` whose expected dynamics is stable (`None`
    /// when M = 1 is not). Stability is lost once as M grows.
    pub fn max_stable_workers(self, momentum: f64, gain: f64, limit: u64) -> Option<u64> {
        let stable = |m: u64| Some(self.stable(momentum, gain, m));
        if !self.stable(momentum, gain, 1) {
            return None;
        }
        let mut good = 1u64;
        let mut m = 2u64;
        while m <= limit {
            if self.stable(momentum, gain, m) {
                good = m;
                m = m.saturating_mul(2);
            } else {
                return Some(bisect_bad(good, m, &stable) - 1);
            }
        }
        if self.stable(momentum, gain, limit) {
            Some(limit)
        } else {
            Some(bisect_bad(good, limit, &stable) - 1)
        }
    }
}

/// The angle θ at which a root of the constant-delay characteristic
/// polynomial crosses the unit circle (|e^{iθ} − 1|·|e^{iθ} − μ| = a): the
/// mode that delay destabilises oscillates with period 2π/θ steps. `None`
/// when the gain is outside (0, 2(1+μ)).
pub fn crossing_angle(momentum: f64, gain: f64) -> Option<f64> {
    if !(gain > 0.0 && gain < 2.0 * (1.0 + momentum)) {
        return None;
    }
    let modulus = |t: f64| {
        let (s, c) = t.sin_cos();
        ((c - 1.0).hypot(s)) * ((c - momentum).hypot(s))
    };
    let (mut lo, mut hi) = (0.0f64, std::f64::consts::PI);
    for _ in 0..200 {
        let mid = 0.5 * (lo + hi);
        if modulus(mid) < gain {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    Some(0.5 * (lo + hi))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::theory::max_stable_delay;

    #[test]
    fn schur_cohn_on_known_roots() {
        // (z − 0.5)(z + 0.9) = z² + 0.4z − 0.45: stable.
        assert!(schur_stable(&[1.0, 0.4, -0.45]));
        // (z − 1.1)(z − 0.2): one root outside.
        assert!(!schur_stable(&[1.0, -1.3, 0.22]));
        // A root on the circle is not strictly inside.
        assert!(!schur_stable(&[1.0, -1.0]));
        // z^40 − 0.5 (roots of modulus 0.5^{1/40} ≈ 0.983): stable, and the
        // normalisation keeps a degree-40 reduction finite.
        let mut c = vec![0.0; 41];
        c[0] = 1.0;
        c[40] = -0.5;
        assert!(schur_stable(&c));
        c[40] = -1.5;
        assert!(!schur_stable(&c));
    }

    /// A constant delay's law reproduces the closed-form root crossing of
    /// `max_stable_delay` exactly (the same polynomial, two methods).
    #[test]
    fn constant_law_matches_the_closed_form() {
        for &(mu, a) in &[
            (0.7, 4e-3),
            (0.9, 4e-3),
            (0.0, 0.02),
            (-0.5, 0.01),
            (0.95, 1e-3),
        ] {
            let t = max_stable_delay(mu, a).unwrap();
            let at = |tau: u64| staleness_pmf(&Delay::constant(tau)).unwrap();
            assert!(mean_recursion_stable(mu, a, &at(t)), "μ={mu} a={a} τ={t}");
            assert!(
                !mean_recursion_stable(mu, a, &at(t + 1)),
                "μ={mu} a={a} τ={}",
                t + 1
            );
        }
    }

    /// The cubic of the geometric law agrees with the truncated law.
    #[test]
    fn geometric_cubic_matches_the_truncated_law() {
        for &(mu, a) in &[(0.9, 4e-3), (0.95, 4e-3), (0.5, 0.05), (0.0, 0.3)] {
            for m in [1u64, 2, 4, 8, 16, 32, 64] {
                let p = 1.0 / m as f64;
                let pmf = staleness_pmf(&Delay::Geometric { p }).unwrap();
                assert_eq!(
                    geometric_mean_stable(mu, a, p),
                    mean_recursion_stable(mu, a, &pmf),
                    "μ={mu} a={a} M={m}"
                );
            }
        }
    }

    /// Iterating the expected recursion of a uniform law confirms the
    /// boundary found by the Schur–Cohn test (decay one step below, growth
    /// one step above, over 2·10⁵ steps).
    #[test]
    fn uniform_boundary_matches_iteration() {
        let (mu, a) = (0.8, 4e-3);
        let s = max_stable_mean_delay(mu, a, DelayFamily::Uniform, 10_000).unwrap();
        let grows = |mean: u64| {
            let pmf = staleness_pmf(&DelayFamily::Uniform.at(mean)).unwrap();
            let n = 200_000;
            let l = pmf.len();
            let mut x = vec![1.0f64; n + l + 2];
            for k in l + 1..n + l + 1 {
                let lagged: f64 = pmf.iter().enumerate().map(|(j, p)| p * x[k - j]).sum();
                x[k + 1] = (1.0 + mu) * x[k] - mu * x[k - 1] - a * lagged;
            }
            x[n..].iter().map(|v| v.abs()).fold(0.0, f64::max) > 1.0
        };
        assert!(!grows(s - 1), "mean {} should decay", s - 1);
        assert!(grows(s + 2), "mean {} should grow", s + 2);
        // Random delays of the same mean are tolerated longer than constant ones.
        assert!(s > max_stable_delay(mu, a).unwrap());
    }

    #[test]
    fn implicit_momentum_and_workers() {
        assert_eq!(implicit_momentum(1), 0.0);
        assert_eq!(implicit_momentum(4), 0.75);
        let c = ClusterStaleness::Constant
            .max_stable_workers(0.9, 4e-3, 1000)
            .unwrap();
        assert_eq!(c, max_stable_delay(0.9, 4e-3).unwrap() + 1);
        let g = ClusterStaleness::Exponential
            .max_stable_workers(0.95, 4e-3, 100_000)
            .unwrap();
        assert!(ClusterStaleness::Exponential.stable(0.95, 4e-3, g));
        assert!(!ClusterStaleness::Exponential.stable(0.95, 4e-3, g + 1));
    }

    #[test]
    fn laws_sum_to_one() {
        for d in [
            "const:7",
            "uniform:0..9",
            "geometric:0.05",
            "poisson:30",
            "exp:12",
        ] {
            let pmf = staleness_pmf(&d.parse().unwrap()).unwrap();
            let mass: f64 = pmf.iter().sum();
            assert!((mass - 1.0).abs() < 1e-9, "{d}: {mass}");
        }
        assert!(staleness_pmf(&"pareto:1,2".parse().unwrap()).is_none());
    }
}
