//! Comparing staleness distributions: the two-sample Kolmogorov–Smirnov
//! distance between histograms, and its critical value.
//!
//! Used to cross-check engines: the staleness an engine produces (virtual
//! time, threads, tasks) against another engine's, or against a sample of
//! the distribution theory predicts.

use crate::result::StalenessHistogram;

/// The Kolmogorov–Smirnov distance sup_x |F_a(x) − F_b(x)| between the
/// empirical distributions of two histograms (1 if either is empty and the
/// other is not, 0 if both are empty).
pub fn ks_distance(a: &StalenessHistogram, b: &StalenessHistogram) -> f64 {
    let (na, nb) = (a.count() as f64, b.count() as f64);
    if na == 0.0 || nb == 0.0 {
        return if na == nb { 0.0 } else { 1.0 };
    }
    let (mut ia, mut ib) = (a.iter().peekable(), b.iter().peekable());
    let (mut ca, mut cb, mut d) = (0u64, 0u64, 0.0f64);
    loop {
        // Advance both CDFs to the next value present in either histogram.
        let x = match (ia.peek(), ib.peek()) {
            (None, None) => break,
            (Some(&(x, _)), None) | (None, Some(&(x, _))) => x,
            (Some(&(x, _)), Some(&(y, _))) => x.min(y),
        };
        while let Some(&(v, c)) = ia.peek() {
            if v > x {
                break;
            }
            ca += c;
            ia.next();
        }
        while let Some(&(v, c)) = ib.peek() {
            if v > x {
                break;
            }
            cb += c;
            ib.next();
        }
        d = d.max((ca as f64 / na - cb as f64 / nb).abs());
    }
    d
}

/// The asymptotic critical value of the two-sample KS distance at level
/// `alpha` for independent samples of sizes `n` and `m`:
/// c(α)·√((n + m)/(n·m)) with c(α) = √(−ln(α/2)/2). For discrete data the
/// test is conservative (the true level is below `alpha`).
pub fn ks_critical(n: u64, m: u64, alpha: f64) -> f64 {
    let c = (-(alpha / 2.0).ln() / 2.0).sqrt();
    let (n, m) = (n as f64, m as f64);
    c * ((n + m) / (n * m)).sqrt()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::delay::{Delay, DelayModel};
    use rand::SeedableRng;

    fn sample(model: &str, n: usize, seed: u64) -> StalenessHistogram {
        let d: Delay = model.parse().unwrap();
        let mut rng = crate::PsimRng::seed_from_u64(seed);
        let mut h = StalenessHistogram::new();
        (0..n).for_each(|_| h.record(d.sample_steps(&mut rng)));
        h
    }

    fn exact(values: &[u64]) -> StalenessHistogram {
        let mut h = StalenessHistogram::new();
        values.iter().for_each(|&v| h.record(v));
        h
    }

    #[test]
    fn distances_of_known_distributions() {
        let a = exact(&(0..10).collect::<Vec<_>>());
        assert_eq!(ks_distance(&a, &a), 0.0);
        // Uniform{0..9} vs uniform{0..4}: at x = 4, F = 0.5 vs 1.
        assert!((ks_distance(&a, &exact(&[0, 1, 2, 3, 4])) - 0.5).abs() < 1e-12);
        assert_eq!(ks_distance(&exact(&[1, 2]), &exact(&[700, 900])), 1.0);
        assert_eq!(ks_distance(&a, &StalenessHistogram::new()), 1.0);
        // Symmetric.
        let (g, p) = (
            sample("geometric:0.25", 5000, 1),
            sample("poisson:3", 5000, 2),
        );
        assert_eq!(ks_distance(&g, &p), ks_distance(&p, &g));
    }

    #[test]
    fn same_law_is_within_and_different_laws_beyond_the_critical_value() {
        // Two samples of a geometric with mean 3 agree at α = 0.001 (the
        // fixed seeds make this deterministic; the level bounds how rare a
        // failure would be for other seeds); a Poisson with the same mean
        // differs (P(0) is 0.25 vs 0.05), far beyond the critical value.
        let n = 20_000;
        let crit = ks_critical(n, n, 1e-3);
        let (g1, g2) = (
            sample("geometric:0.25", n as usize, 3),
            sample("geometric:0.25", n as usize, 4),
        );
        assert!(
            ks_distance(&g1, &g2) < crit,
            "{} vs {crit}",
            ks_distance(&g1, &g2)
        );
        let p = sample("poisson:3", n as usize, 5);
        assert!(ks_distance(&g1, &p) > 5.0 * crit);
        // Values above the dense range go through the hdrhistogram part.
        let (b1, b2) = (
            sample("uniform:400..700", 5000, 6),
            sample("uniform:400..700", 5000, 7),
        );
        assert!(ks_distance(&b1, &b2) < ks_critical(5000, 5000, 1e-3));
    }
}
