//! Streaming PCA (the problem of 001): maximise v'Σv on the unit sphere from
//! a stream of samples X with E[XX'] = Σ, with the generalised Hebbian
//! direction (I − ss')XX's.
//!
//! Samples are drawn in Σ's eigenbasis, Y = diag(√λ)·Z, and rotated by the
//! eigenvectors Q when the covariance is not diagonal (X = QY). The error is
//! the mass outside the top eigenvector, `1 − (q₁'v)²/‖v‖²`.

use crate::config::{DataDistribution, InitialPoint, PcaConfig};
use crate::error::ConfigError;
use crate::objective::{fixed, fixed_mut, Objective};
use crate::seed::PsimRng;
use rand::Rng;
use rand_distr::{Distribution, StandardNormal};

/// A validated streaming-PCA problem, ready to sample from.
#[derive(Debug, Clone)]
pub struct StreamingPca {
    eigenvalues: Vec<f64>,
    /// √λ_j (or √(3λ_j) for uniform data: a uniform on [−1, 1] has variance 1/3).
    scales: Vec<f64>,
    /// Eigenvectors as rows (`basis[j*d..]` is q_j), `None` for the identity.
    basis: Option<Vec<f64>>,
    data: DataDistribution,
    init: InitialPoint,
}

impl StreamingPca {
    /// Builds the problem from its configuration, validating it first.
    pub fn new(cfg: &PcaConfig) -> Result<Self, ConfigError> {
        cfg.validate()?;
        let (eigenvalues, basis) = match &cfg.covariance {
            None => (cfg.spectrum.clone(), None),
            Some(rows) => {
                let d = rows.len();
                let flat: Vec<f64> = rows.iter().flatten().copied().collect();
                let (vals, vecs) = symmetric_eigen(&flat, d);
                (vals, Some(vecs))
            }
        };
        let d = eigenvalues.len();
        if d < 2 {
            return Err(ConfigError::new(
                "objective.spectrum",
                format!("{d} values"),
                "at least 2 values (dimension ≥ 2)",
            ));
        }
        if eigenvalues.iter().any(|&l| l <= 0.0) {
            return Err(ConfigError::new(
                "objective.covariance",
                format!("eigenvalues {eigenvalues:?}"),
                "positive definite",
            ));
        }
        if eigenvalues[0] <= eigenvalues[1] * (1.0 + 1e-12) {
            return Err(ConfigError::new(
                "objective.covariance",
                format!("λ₁ = {}, λ₂ = {}", eigenvalues[0], eigenvalues[1]),
                "with an eigengap λ₁ > λ₂",
            ));
        }
        let factor = match cfg.data {
            DataDistribution::Gaussian => 1.0,
            DataDistribution::Uniform => 3.0,
        };
        let scales = eigenvalues.iter().map(|l| (factor * l).sqrt()).collect();
        if let InitialPoint::Vector(v) = &cfg.init {
            if v.len() != d {
                return Err(ConfigError::new(
                    "objective.init",
                    format!("{} values", v.len()),
                    format!("{d} values (the dimension)"),
                ));
            }
        }
        Ok(Self {
            eigenvalues,
            scales,
            basis,
            data: cfg.data,
            init: cfg.init.clone(),
        })
    }

    /// Eigenvalues of Σ, largest first.
    pub fn eigenvalues(&self) -> &[f64] {
        &self.eigenvalues
    }

    /// α²_{ij} = E[Y_i² Y_j²] in the eigenbasis. Coordinates are independent
    /// with variance λ for both data distributions, so for i ≠ j this is
    /// λ_i·λ_j. For i = j it is the fourth moment E[Y_i⁴] = κ·λ_i², with
    /// κ = 3 for Gaussian data and κ = 9/5 for uniform data (Y uniform on
    /// [−a, a] with a² = 3λ: E[Y⁴] = a⁴/5).
    pub fn alpha_sq(&self, i: usize, j: usize) -> f64 {
        let k = if i == j {
            match self.data {
                DataDistribution::Gaussian => 3.0,
                DataDistribution::Uniform => 9.0 / 5.0,
            }
        } else {
            1.0
        };
        k * self.eigenvalues[i] * self.eigenvalues[j]
    }

    /// Coordinates of `point` in Σ's eigenbasis, h = Q'v.
    pub fn eigen_coordinates(&self, point: &[f64], out: &mut [f64]) {
        match &self.basis {
            None => out.copy_from_slice(point),
            Some(q) => {
                let d = point.len();
                for (j, o) in out.iter_mut().enumerate() {
                    *o = dot(&q[j * d..(j + 1) * d], point);
                }
            }
        }
    }

    /// The i-th eigenvector of Σ (0-based), written into `out`.
    pub fn eigenvector(&self, i: usize, out: &mut [f64]) {
        let d = self.eigenvalues.len();
        match &self.basis {
            None => {
                out.fill(0.0);
                out[i] = 1.0;
            }
            Some(q) => out.copy_from_slice(&q[i * d..(i + 1) * d]),
        }
    }

    #[inline(always)]
    fn draw(&self, rng: &mut PsimRng) -> f64 {
        match self.data {
            DataDistribution::Gaussian => StandardNormal.sample(rng),
            DataDistribution::Uniform => 2.0 * rng.random::<f64>() - 1.0,
        }
    }
}

impl StreamingPca {
    /// The gradient with the dimension fixed at compile time when N > 0.
    #[inline(always)]
    fn gradient_fixed<const N: usize>(&self, point: &[f64], rng: &mut PsimRng, out: &mut [f64]) {
        let point = fixed::<N>(point);
        let out = fixed_mut::<N>(out);
        // out ← X (drawn), a ← X's, out ← −a(X − a·s): the negated Hebbian
        // direction (I − ss')XX's.
        match &self.basis {
            None => {
                for (o, s) in out.iter_mut().zip(fixed::<N>(&self.scales)) {
                    *o = s * self.draw(rng);
                }
            }
            Some(q) => {
                let d = out.len();
                out.fill(0.0);
                for j in 0..d {
                    let y = self.scales[j] * self.draw(rng);
                    for (o, qj) in out.iter_mut().zip(&q[j * d..(j + 1) * d]) {
                        *o += y * qj;
                    }
                }
            }
        }
        let a = dot(out, point);
        for (o, s) in out.iter_mut().zip(point) {
            *o = -a * (*o - a * s);
        }
    }

    #[inline(always)]
    fn error_fixed<const N: usize>(&self, point: &[f64]) -> f64 {
        let point = fixed::<N>(point);
        let norm2 = dot(point, point);
        let top = match &self.basis {
            None => point[0],
            Some(q) => dot(&q[..point.len()], point),
        };
        1.0 - top * top / norm2
    }
}

#[inline(always)]
fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

impl Objective for StreamingPca {
    fn dim(&self) -> usize {
        self.eigenvalues.len()
    }

    fn initial_point(&self, rng: &mut PsimRng, out: &mut [f64]) {
        match &self.init {
            InitialPoint::Saddle => self.eigenvector(1, out),
            InitialPoint::Eigenvector(k) => self.eigenvector(k - 1, out),
            InitialPoint::Vector(v) => out.copy_from_slice(v),
            InitialPoint::Random => {
                for o in out.iter_mut() {
                    *o = StandardNormal.sample(rng);
                }
                let n = dot(out, out).sqrt();
                out.iter_mut().for_each(|o| *o /= n);
            }
        }
    }

    #[inline]
    fn gradient(&self, point: &[f64], rng: &mut PsimRng, out: &mut [f64]) {
        crate::with_small_dim!(point.len(), N => self.gradient_fixed::<N>(point, rng, out))
    }

    #[inline]
    fn error(&self, point: &[f64]) -> f64 {
        crate::with_small_dim!(point.len(), N => self.error_fixed::<N>(point))
    }
}

/// Eigen-decomposition of a symmetric `d×d` matrix (row-major) by cyclic
/// Jacobi rotations: eigenvalues sorted largest first, eigenvectors as rows.
/// Exact to machine precision for the small d psim uses for PCA.
pub fn symmetric_eigen(a: &[f64], d: usize) -> (Vec<f64>, Vec<f64>) {
    let mut m = a.to_vec();
    let mut v = vec![0.0; d * d];
    for i in 0..d {
        v[i * d + i] = 1.0;
    }
    for _sweep in 0..100 {
        let off: f64 = (0..d)
            .flat_map(|i| (0..d).filter(move |&j| j != i).map(move |j| (i, j)))
            .map(|(i, j)| m[i * d + j].powi(2))
            .sum();
        if off < 1e-30 {
            break;
        }
        for p in 0..d {
            for q in p + 1..d {
                let apq = m[p * d + q];
                if apq.abs() < 1e-300 {
                    continue;
                }
                let theta = (m[q * d + q] - m[p * d + p]) / (2.0 * apq);
                let t = theta.signum() / (theta.abs() + (theta * theta + 1.0).sqrt());
                let t = if theta == 0.0 { 1.0 } else { t };
                let c = 1.0 / (t * t + 1.0).sqrt();
                let s = t * c;
                for k in 0..d {
                    let mkp = m[k * d + p];
                    let mkq = m[k * d + q];
                    m[k * d + p] = c * mkp - s * mkq;
                    m[k * d + q] = s * mkp + c * mkq;
                }
                for k in 0..d {
                    let mpk = m[p * d + k];
                    let mqk = m[q * d + k];
                    m[p * d + k] = c * mpk - s * mqk;
                    m[q * d + k] = s * mpk + c * mqk;
                }
                for k in 0..d {
                    let vkp = v[k * d + p];
                    let vkq = v[k * d + q];
                    v[k * d + p] = c * vkp - s * vkq;
                    v[k * d + q] = s * vkp + c * vkq;
                }
            }
        }
    }
    let mut order: Vec<usize> = (0..d).collect();
    order.sort_by(|&i, &j| m[j * d + j].total_cmp(&m[i * d + i]));
    let vals = order.iter().map(|&i| m[i * d + i]).collect();
    let mut rows = vec![0.0; d * d];
    for (r, &i) in order.iter().enumerate() {
        for k in 0..d {
            rows[r * d + k] = v[k * d + i];
        }
    }
    (vals, rows)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    fn cfg(spectrum: &[f64]) -> PcaConfig {
        PcaConfig {
            spectrum: spectrum.to_vec(),
            ..PcaConfig::default()
        }
    }

    #[test]
    fn saddle_start_and_error() {
        let p = StreamingPca::new(&cfg(&[4.0, 3.0, 2.0, 1.0])).unwrap();
        let mut v = [0.0; 4];
        p.initial_point(&mut PsimRng::seed_from_u64(0), &mut v);
        assert_eq!(v, [0.0, 1.0, 0.0, 0.0]);
        assert_eq!(p.error(&v), 1.0);
        assert_eq!(p.error(&[2.0, 0.0, 0.0, 0.0]), 0.0);
        assert!((p.error(&[1.0, 1.0, 0.0, 0.0]) - 0.5).abs() < 1e-15);
    }

    /// The mean of the negated gradient is Σs − s(s'Σs). With n samples the
    /// standard error per coordinate is below ~6/√n here, so 0.05 at n = 4·10⁵ is > 10σ... and a sign or scale bug is far larger.
    #[test]
    fn gradient_is_unbiased_for_both_data_distributions() {
        for data in [DataDistribution::Gaussian, DataDistribution::Uniform] {
            let c = PcaConfig {
                data,
                ..cfg(&[4.0, 3.0, 2.0, 1.0])
            };
            let p = StreamingPca::new(&c).unwrap();
            let s = [0.5, 0.5, 0.5, 0.5];
            let mut rng = PsimRng::seed_from_u64(1);
            let mut acc = [0.0; 4];
            let mut g = [0.0; 4];
            let n = 400_000;
            for _ in 0..n {
                p.gradient(&s, &mut rng, &mut g);
                for k in 0..4 {
                    acc[k] += g[k] / n as f64;
                }
            }
            let lam = [4.0, 3.0, 2.0, 1.0];
            let quad: f64 = (0..4).map(|k| lam[k] * s[k] * s[k]).sum();
            for k in 0..4 {
                let expected = -(lam[k] * s[k] - s[k] * quad);
                assert!(
                    (acc[k] - expected).abs() < 0.05,
                    "{data:?} coord {k}: {} vs {expected}",
                    acc[k]
                );
            }
        }
    }

    /// α²_{ij} = E[Y_i²Y_j²] against Monte-Carlo means over n = 2·10⁵ draws
    /// of Y, for both data distributions and i = j as well as i ≠ j. The
    /// tolerance is 5 standard errors of each mean, the standard error
    /// estimated from the same samples as sd(Y_i²Y_j²)/√n (false alarm
    /// ≈ 6·10⁻⁷ per entry); a wrong fourth moment is off by 40 % or more
    /// (λ² vs 3λ² vs 9λ²/5), hundreds of standard errors.
    #[test]
    fn alpha_moments_match_monte_carlo() {
        for data in [DataDistribution::Gaussian, DataDistribution::Uniform] {
            let p = StreamingPca::new(&PcaConfig {
                data,
                ..cfg(&[4.0, 3.0, 2.0, 1.0])
            })
            .unwrap();
            let mut rng = PsimRng::seed_from_u64(3);
            let n = 200_000;
            let d = 4;
            let (mut sum, mut sum_sq) = (vec![0.0; d * d], vec![0.0; d * d]);
            let mut y = [0.0; 4];
            for _ in 0..n {
                for (k, v) in y.iter_mut().enumerate() {
                    *v = p.scales[k] * p.draw(&mut rng);
                }
                for i in 0..d {
                    for j in 0..d {
                        let x = y[i] * y[i] * y[j] * y[j];
                        sum[i * d + j] += x;
                        sum_sq[i * d + j] += x * x;
                    }
                }
            }
            for i in 0..d {
                for j in 0..d {
                    let m = sum[i * d + j] / n as f64;
                    let se = ((sum_sq[i * d + j] / n as f64 - m * m) / n as f64).sqrt();
                    let want = p.alpha_sq(i, j);
                    assert!(
                        (m - want).abs() < 5.0 * se,
                        "{data:?} α²_{i}{j}: Monte Carlo {m} ± {se}, formula {want}"
                    );
                }
            }
        }
    }

    #[test]
    fn full_covariance_is_rotated_correctly() {
        // Σ = R diag(4,1) R' with a 30° rotation.
        let (c, s) = (30f64.to_radians().cos(), 30f64.to_radians().sin());
        let sigma = vec![
            vec![4.0 * c * c + s * s, 3.0 * c * s],
            vec![3.0 * c * s, 4.0 * s * s + c * c],
        ];
        let p = StreamingPca::new(&PcaConfig {
            covariance: Some(sigma),
            spectrum: vec![],
            ..PcaConfig::default()
        })
        .unwrap();
        assert!(
            (p.eigenvalues()[0] - 4.0).abs() < 1e-12 && (p.eigenvalues()[1] - 1.0).abs() < 1e-12
        );
        // The top eigenvector (c, s) has zero error, the other one error 1.
        assert!(p.error(&[c, s]).abs() < 1e-12);
        assert!((p.error(&[-s, c]) - 1.0).abs() < 1e-12);
        // Sample covariance matches Σ (entries within 0.1 ≫ 5 standard errors at n = 2·10⁵).
        let mut rng = PsimRng::seed_from_u64(2);
        let mut g = [0.0; 2];
        // With s = e_k, −g = a(X − a e_k) where a = X_k: recover X's second moments.
        let n = 200_000;
        let mut cov01 = 0.0;
        for _ in 0..n {
            p.gradient(&[1.0, 0.0], &mut rng, &mut g);
            cov01 += -g[1] / n as f64; // = X_0 X_1
        }
        assert!((cov01 - 3.0 * c * s).abs() < 0.1, "cov01 {cov01}");
    }

    #[test]
    fn rejects_bad_spectra() {
        for (spec, needle) in [
            (vec![1.0], "dimension"),
            (vec![2.0, 2.0], "eigengap"),
            (vec![3.0, -1.0], "spectrum"),
        ] {
            let err = StreamingPca::new(&cfg(&spec)).unwrap_err().to_string();
            assert!(err.contains(needle), "{spec:?}: {err}");
        }
    }
}
