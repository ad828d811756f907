//! Small synthetic landscapes for the escape and smoothing scenarios E4–E6:
//!
//! * [`Saddle`]: f(w) = ½ w'Aw, A diagonal with a negative entry, started at
//!   the saddle w = 0, Gaussian gradient noise per coordinate (003 Fig. 5, 002 Thm 3).
//!   Error: the fraction of the escape radius R still to travel, max(0, 1 − ‖w‖/R).
//! * [`Spiky`]: f(x) = x²/2 + a(1 − cos(b·x)), x* = 0, uniform gradient noise
//!   on [−w, w] (004 §2). Error: |x|.
//! * [`Wells`]: f(x, y) = W(x) + y²/2 with W a sharp and a flat Gaussian well
//!   plus a weak confinement c·x²/2; (x_b, 0), x_b the barrier between the wells,
//!   is a saddle (002 §4–6). Error: max(0, x_b − x), 0 once the iterate has left
//!   the sharp basin.
//!
//! Mini-batches: the gradient noise of a batch of `batch_size` = m is the
//! average of m independent draws, its variance scaled by 1/m; out of a
//! finite population of M (`population`) sampled without replacement the
//! variance is scaled by (1/m − 1/M)·M/(M−1) instead (→ 1/m as M → ∞), as
//! in 002 §5.
//! * Gaussian noise ([`Saddle`], [`Wells`]): the average of m Gaussian draws
//!   is exactly Gaussian with sd σ/√m, so one draw scaled by
//!   [`batch_noise_scale`] has the batch's distribution at 1/m the cost.
//! * Uniform noise ([`Spiky`]): the average of m uniform draws is not
//!   uniform (it is the Irwin–Hall shape, closer to Gaussian as m grows), so
//!   [`Spiky`] draws and averages all m, then applies the
//!   without-replacement factor √((M−m)/(M−1)) on the sd when M is given.

use crate::error::ConfigError;
use crate::objective::Objective;
use crate::seed::PsimRng;
use rand::Rng;
use rand_distr::{Distribution, StandardNormal};
use serde::{Deserialize, Serialize};

/// The factor on the noise *standard deviation* of a mini-batch of `m` out
/// of `population` M: √((1/m − 1/M)·M/(M−1)) (sampling without replacement),
/// √(1/m) for an unbounded population.
pub fn batch_noise_scale(m: u32, population: Option<u64>) -> f64 {
    let m = m as f64;
    match population {
        None => (1.0 / m).sqrt(),
        Some(big_m) => {
            let big_m = big_m as f64;
            ((1.0 / m - 1.0 / big_m) * big_m / (big_m - 1.0))
                .max(0.0)
                .sqrt()
        }
    }
}

fn check_batch(m: u32, population: Option<u64>) -> Result<(), ConfigError> {
    if m == 0 {
        return Err(ConfigError::new("objective.batch_size", m, "≥ 1"));
    }
    if let Some(p) = population {
        if p < 2 || (m as u64) > p {
            return Err(ConfigError::new(
                "objective.population",
                p,
                format!("≥ 2 and ≥ batch_size = {m}"),
            ));
        }
    }
    Ok(())
}

fn finite_pos(field: &str, x: f64) -> Result<(), ConfigError> {
    if x.is_finite() && x > 0.0 {
        Ok(())
    } else {
        Err(ConfigError::new(field, x, "finite and > 0"))
    }
}

fn finite_nonneg(field: &str, x: f64) -> Result<(), ConfigError> {
    if x.is_finite() && x >= 0.0 {
        Ok(())
    } else {
        Err(ConfigError::new(field, x, "finite and ≥ 0"))
    }
}

fn one() -> u32 {
    1
}

/// The strict-saddle quadratic of E4/E6.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SaddleConfig {
    /// Diagonal of the Hessian A; at least one entry must be negative.
    pub curvature: Vec<f64>,
    /// Standard deviation of the Gaussian gradient noise per coordinate (batch of 1).
    pub noise: Vec<f64>,
    /// Radius of the ball around the saddle whose exit counts as escape.
    pub escape_radius: f64,
    /// Mini-batch size m.
    #[serde(default = "one")]
    pub batch_size: u32,
    /// Population size M for the (1/m − 1/M) noise scaling; unbounded when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub population: Option<u64>,
}

impl Default for SaddleConfig {
    /// E4: A = diag(1, −0.1), noise (1, 0.1), escape at ‖w‖ = 1.
    fn default() -> Self {
        Self {
            curvature: vec![1.0, -0.1],
            noise: vec![1.0, 0.1],
            escape_radius: 1.0,
            batch_size: 1,
            population: None,
        }
    }
}

impl SaddleConfig {
    /// Checks matching lengths, a negative curvature and positive scales.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.curvature.is_empty() || self.curvature.iter().any(|c| !c.is_finite()) {
            return Err(ConfigError::new(
                "objective.curvature",
                format!("{:?}", self.curvature),
                "a non-empty list of finite numbers",
            ));
        }
        if !self.curvature.iter().any(|c| *c < 0.0) {
            return Err(ConfigError::new(
                "objective.curvature",
                format!("{:?}", self.curvature),
                "with at least one negative entry (a strict saddle)",
            ));
        }
        if self.noise.len() != self.curvature.len() {
            return Err(ConfigError::new(
                "objective.noise",
                format!("{} values", self.noise.len()),
                format!("{} values (one per coordinate)", self.curvature.len()),
            ));
        }
        for (i, s) in self.noise.iter().enumerate() {
            finite_nonneg(&format!("objective.noise[{i}]"), *s)?;
        }
        finite_pos("objective.escape_radius", self.escape_radius)?;
        check_batch(self.batch_size, self.population)
    }

    /// γ₁ = |most negative curvature|, the escape rate of 002 Thm 3.
    pub fn gamma1(&self) -> f64 {
        -self.curvature.iter().copied().fold(f64::INFINITY, f64::min)
    }
}

/// The built strict-saddle objective.
#[derive(Debug, Clone)]
pub struct Saddle {
    curvature: Vec<f64>,
    noise: Vec<f64>,
    radius: f64,
}

impl Saddle {
    /// Validates `cfg` and folds the batch scaling into the noise.
    pub fn new(cfg: &SaddleConfig) -> Result<Self, ConfigError> {
        cfg.validate()?;
        let k = batch_noise_scale(cfg.batch_size, cfg.population);
        Ok(Self {
            curvature: cfg.curvature.clone(),
            noise: cfg.noise.iter().map(|s| s * k).collect(),
            radius: cfg.escape_radius,
        })
    }
}

impl Objective for Saddle {
    fn dim(&self) -> usize {
        self.curvature.len()
    }
    fn initial_point(&self, _rng: &mut PsimRng, out: &mut [f64]) {
        out.fill(0.0);
    }
    #[inline]
    fn gradient(&self, point: &[f64], rng: &mut PsimRng, out: &mut [f64]) {
        for (((o, w), a), s) in out
            .iter_mut()
            .zip(point)
            .zip(&self.curvature)
            .zip(&self.noise)
        {
            let z: f64 = StandardNormal.sample(rng);
            *o = a * w + s * z;
        }
    }
    fn error(&self, point: &[f64]) -> f64 {
        let r = point.iter().map(|x| x * x).sum::<f64>().sqrt();
        (1.0 - r / self.radius).max(0.0)
    }
}

/// The spiky function of E5.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SpikyConfig {
    /// Spike amplitude a in f(x) = x²/2 + a(1 − cos(b·x)).
    pub amplitude: f64,
    /// Spike frequency b.
    pub frequency: f64,
    /// Half-width w of the uniform gradient noise U[−w, w] (batch of 1).
    pub noise_width: f64,
    /// Runs start uniformly in [−start_range, start_range].
    pub start_range: f64,
    /// Mini-batch size m.
    #[serde(default = "one")]
    pub batch_size: u32,
    /// Population size M for the (1/m − 1/M) noise scaling.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub population: Option<u64>,
}

impl Default for SpikyConfig {
    /// E5: f(x) = x²/2 + 0.5(1 − cos 10x) (local minima every ≈ 0.63), noise
    /// U[−10, 10], starts in [−5, 5].
    fn default() -> Self {
        Self {
            amplitude: 0.5,
            frequency: 10.0,
            noise_width: 10.0,
            start_range: 5.0,
            batch_size: 1,
            population: None,
        }
    }
}

impl SpikyConfig {
    /// Checks positive amplitude, frequency, start range; width ≥ 0.
    pub fn validate(&self) -> Result<(), ConfigError> {
        finite_nonneg("objective.amplitude", self.amplitude)?;
        finite_pos("objective.frequency", self.frequency)?;
        finite_nonneg("objective.noise_width", self.noise_width)?;
        finite_pos("objective.start_range", self.start_range)?;
        check_batch(self.batch_size, self.population)
    }

    /// f(x).
    pub fn value(&self, x: f64) -> f64 {
        0.5 * x * x + self.amplitude * (1.0 - (self.frequency * x).cos())
    }
}

/// The built spiky objective.
#[derive(Debug, Clone)]
pub struct Spiky {
    cfg: SpikyConfig,
    /// Half-width of one draw.
    width: f64,
    /// Draws averaged per gradient (the batch size m).
    draws: u32,
    /// Factor on the sum of the draws: 1/m times the without-replacement
    /// correction √((M−m)/(M−1)) when a population M is given.
    factor: f64,
}

impl Spiky {
    /// Validates `cfg`; a batch of m averages m uniform draws.
    pub fn new(cfg: &SpikyConfig) -> Result<Self, ConfigError> {
        cfg.validate()?;
        let m = cfg.batch_size;
        let correction = match cfg.population {
            None => 1.0,
            Some(big_m) => ((big_m - m as u64) as f64 / (big_m - 1) as f64).sqrt(),
        };
        Ok(Self {
            width: cfg.noise_width,
            draws: m,
            factor: correction / m as f64,
            cfg: cfg.clone(),
        })
    }
}

impl Objective for Spiky {
    fn dim(&self) -> usize {
        1
    }
    fn initial_point(&self, rng: &mut PsimRng, out: &mut [f64]) {
        out[0] = self.cfg.start_range * (2.0 * rng.random::<f64>() - 1.0);
    }
    #[inline]
    fn gradient(&self, point: &[f64], rng: &mut PsimRng, out: &mut [f64]) {
        let x = point[0];
        let (a, b) = (self.cfg.amplitude, self.cfg.frequency);
        let noise = if self.width > 0.0 && self.factor > 0.0 {
            let mut sum = 0.0;
            for _ in 0..self.draws {
                sum += self.width * (2.0 * rng.random::<f64>() - 1.0);
            }
            sum * self.factor
        } else {
            0.0
        };
        out[0] = x + a * b * (b * x).sin() + noise;
    }
    fn error(&self, point: &[f64]) -> f64 {
        point[0].abs()
    }
}

/// The sharp/flat/saddle landscape of E6.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WellsConfig {
    /// Depth of the sharp well, centred at x = −1.
    pub sharp_depth: f64,
    /// Width (Gaussian σ) of the sharp well.
    pub sharp_width: f64,
    /// Depth of the flat well, centred at x = `flat_centre`.
    pub flat_depth: f64,
    /// Width of the flat well.
    pub flat_width: f64,
    /// Centre of the flat well (> −1).
    pub flat_centre: f64,
    /// Weak confinement c in c·x²/2 so that the iterate cannot wander off.
    pub confinement: f64,
    /// Gradient noise standard deviation per coordinate (batch of 1).
    pub noise: f64,
    /// Mini-batch size m.
    #[serde(default = "one")]
    pub batch_size: u32,
    /// Population size M for the (1/m − 1/M) noise scaling.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub population: Option<u64>,
}

impl Default for WellsConfig {
    /// Equal depths 1, sharp width 0.25 (curvature ≈ 16), flat width 0.8
    /// (curvature ≈ 1.6) centred at 1.5, confinement 0.05, noise 3.
    fn default() -> Self {
        Self {
            sharp_depth: 1.0,
            sharp_width: 0.25,
            flat_depth: 1.0,
            flat_width: 0.8,
            flat_centre: 1.5,
            confinement: 0.05,
            noise: 3.0,
            batch_size: 1,
            population: None,
        }
    }
}

impl WellsConfig {
    /// Checks positive depths, widths and noise, and a flat centre right of −1.
    pub fn validate(&self) -> Result<(), ConfigError> {
        finite_pos("objective.sharp_depth", self.sharp_depth)?;
        finite_pos("objective.sharp_width", self.sharp_width)?;
        finite_pos("objective.flat_depth", self.flat_depth)?;
        finite_pos("objective.flat_width", self.flat_width)?;
        finite_nonneg("objective.confinement", self.confinement)?;
        finite_nonneg("objective.noise", self.noise)?;
        if !(self.flat_centre.is_finite() && self.flat_centre > -1.0 + self.sharp_width) {
            return Err(ConfigError::new(
                "objective.flat_centre",
                self.flat_centre,
                format!(
                    "finite and > {} (right of the sharp well)",
                    -1.0 + self.sharp_width
                ),
            ));
        }
        check_batch(self.batch_size, self.population)
    }

    /// W(x) and W'(x).
    pub fn well(&self, x: f64) -> (f64, f64) {
        let es = (-(x + 1.0).powi(2) / (2.0 * self.sharp_width.powi(2))).exp();
        let c = self.flat_centre;
        let ef = (-(x - c).powi(2) / (2.0 * self.flat_width.powi(2))).exp();
        let w = -self.sharp_depth * es - self.flat_depth * ef + 0.5 * self.confinement * x * x;
        let dw = self.sharp_depth * es * (x + 1.0) / self.sharp_width.powi(2)
            + self.flat_depth * ef * (x - c) / self.flat_width.powi(2)
            + self.confinement * x;
        (w, dw)
    }
}

/// Where the wells and the barrier of a [`Wells`] landscape are.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct WellsGeometry {
    /// x of the sharp minimum.
    pub sharp_min: f64,
    /// x of the barrier (the saddle is at (barrier, 0)).
    pub barrier: f64,
    /// x of the flat minimum.
    pub flat_min: f64,
    /// W''(sharp_min).
    pub sharp_curvature: f64,
    /// W''(flat_min).
    pub flat_curvature: f64,
    /// −W''(barrier) = γ₁ of the saddle.
    pub barrier_curvature: f64,
    /// W(barrier) − W(sharp_min).
    pub sharp_barrier_height: f64,
}

/// The built E6 landscape.
#[derive(Debug, Clone)]
pub struct Wells {
    cfg: WellsConfig,
    noise: f64,
    geometry: WellsGeometry,
    /// Start at the sharp minimum (default) or at the flat one.
    start: f64,
}

impl Wells {
    /// Validates `cfg` and locates the minima and the barrier on a fine grid.
    pub fn new(cfg: &WellsConfig) -> Result<Self, ConfigError> {
        cfg.validate()?;
        let geometry = locate(cfg).ok_or_else(|| {
            ConfigError::new(
                "objective",
                "wells",
                "parameters giving two separate minima (deepen or narrow the wells)",
            )
        })?;
        Ok(Self {
            noise: cfg.noise * batch_noise_scale(cfg.batch_size, cfg.population),
            cfg: cfg.clone(),
            start: geometry.sharp_min,
            geometry,
        })
    }

    /// The located minima and barrier.
    pub fn geometry(&self) -> WellsGeometry {
        self.geometry
    }
}

fn locate(cfg: &WellsConfig) -> Option<WellsGeometry> {
    // Sign changes of W' on a fine grid, refined by bisection.
    let (lo, hi) = (
        -1.0 - 6.0 * cfg.sharp_width,
        cfg.flat_centre + 6.0 * cfg.flat_width,
    );
    let n = 20_000;
    let h = (hi - lo) / n as f64;
    let mut roots = Vec::new();
    let mut prev = cfg.well(lo).1;
    for i in 1..=n {
        let x = lo + i as f64 * h;
        let d = cfg.well(x).1;
        if prev.signum() != d.signum() {
            let (mut a, mut b) = (x - h, x);
            for _ in 0..80 {
                let m = 0.5 * (a + b);
                if cfg.well(m).1.signum() == cfg.well(a).1.signum() {
                    a = m;
                } else {
                    b = m;
                }
            }
            roots.push((0.5 * (a + b), prev < 0.0));
        }
        prev = d;
    }
    // Expect min (− to +), max (+ to −), min.
    if roots.len() != 3 || !roots[0].1 || roots[1].1 || !roots[2].1 {
        return None;
    }
    let curv = |x: f64| {
        let e = 1e-5;
        (cfg.well(x + e).1 - cfg.well(x - e).1) / (2.0 * e)
    };
    let (s, b, f) = (roots[0].0, roots[1].0, roots[2].0);
    Some(WellsGeometry {
        sharp_min: s,
        barrier: b,
        flat_min: f,
        sharp_curvature: curv(s),
        flat_curvature: curv(f),
        barrier_curvature: -curv(b),
        sharp_barrier_height: cfg.well(b).0 - cfg.well(s).0,
    })
}

impl Objective for Wells {
    fn dim(&self) -> usize {
        2
    }
    fn initial_point(&self, _rng: &mut PsimRng, out: &mut [f64]) {
        out[0] = self.start;
        out[1] = 0.0;
    }
    #[inline]
    fn gradient(&self, point: &[f64], rng: &mut PsimRng, out: &mut [f64]) {
        let z0: f64 = StandardNormal.sample(rng);
        let z1: f64 = StandardNormal.sample(rng);
        out[0] = self.cfg.well(point[0]).1 + self.noise * z0;
        out[1] = point[1] + self.noise * z1;
    }
    fn error(&self, point: &[f64]) -> f64 {
        (self.geometry.barrier - point[0]).max(0.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    /// Mean and variance of n gradients at `x`.
    fn moments<O: Objective>(o: &O, x: &[f64], coord: usize, n: usize) -> (f64, f64) {
        let mut rng = PsimRng::seed_from_u64(3);
        let mut g = vec![0.0; o.dim()];
        let (mut s, mut s2) = (0.0, 0.0);
        for _ in 0..n {
            o.gradient(x, &mut rng, &mut g);
            s += g[coord];
            s2 += g[coord] * g[coord];
        }
        let m = s / n as f64;
        (m, s2 / n as f64 - m * m)
    }

    #[test]
    fn saddle_gradient_is_unbiased_and_batch_scales_variance() {
        // n = 10⁵ draws: the mean has standard error σ/√n ≤ 0.0032, so 0.02 is
        // > 6 standard errors; the variance estimate has relative error √(2/n) ≈ 0.5 %,
        // so 3 % is > 6 standard errors.
        let cfg = SaddleConfig::default();
        let o = Saddle::new(&cfg).unwrap();
        let (m, v) = moments(&o, &[0.5, 2.0], 0, 100_000);
        assert!((m - 0.5).abs() < 0.02 && (v - 1.0).abs() < 0.03, "{m} {v}");
        let (m, _) = moments(&o, &[0.5, 2.0], 1, 100_000);
        assert!((m + 0.2).abs() < 0.02, "{m}");
        let o4 = Saddle::new(&SaddleConfig {
            batch_size: 4,
            ..cfg.clone()
        })
        .unwrap();
        let (_, v4) = moments(&o4, &[0.0, 0.0], 0, 100_000);
        assert!((v4 - 0.25).abs() < 0.03 * 0.25, "{v4}");
        // A full batch of the whole population has no noise at all.
        assert_eq!(batch_noise_scale(10, Some(10)), 0.0);
        assert!((batch_noise_scale(1, Some(10)) - 1.0).abs() < 1e-12);
        assert_eq!(o.error(&[0.0, 0.0]), 1.0);
        assert_eq!(o.error(&[0.6, 0.8]), 0.0);
        assert!((o.error(&[0.3, 0.4]) - 0.5).abs() < 1e-12);
    }

    #[test]
    fn spiky_gradient_matches_the_derivative_and_uniform_variance() {
        let cfg = SpikyConfig::default();
        let o = Spiky::new(&cfg).unwrap();
        let x = 0.37;
        let fd = (cfg.value(x + 1e-6) - cfg.value(x - 1e-6)) / 2e-6;
        // U[−w, w] has variance w²/3 = 33.3; 10⁵ draws: mean SE 0.018, so 0.1 is > 5 SE.
        let (m, v) = moments(&o, &[x], 0, 100_000);
        assert!((m - fd).abs() < 0.1, "{m} vs {fd}");
        assert!((v / (100.0 / 3.0) - 1.0).abs() < 0.03, "{v}");
        assert_eq!(o.error(&[-0.25]), 0.25);
    }

    /// A batch of m = 4 averages 4 uniform draws: variance w²/(3m) (relative
    /// standard error of the estimate √(2/n)·√(1 + κ/2) < 0.5 % at n = 10⁵,
    /// so 3 % is > 6 standard errors), and the shape is Irwin–Hall, not
    /// uniform: |noise| never reaches w (a uniform of the same variance
    /// reaches w/√m = 5 with probability 0), and the excess kurtosis is
    /// −6/(5m) = −0.3 rather than the uniform's −1.2 (sampling sd of the
    /// kurtosis ≈ √(24/n) ≈ 0.015, so ±0.1 is > 6 standard errors). With a
    /// population M = m there is no noise.
    #[test]
    fn spiky_batch_averages_uniform_draws() {
        let cfg = SpikyConfig {
            batch_size: 4,
            ..SpikyConfig::default()
        };
        let o = Spiky::new(&cfg).unwrap();
        let mut rng = PsimRng::seed_from_u64(5);
        let mut g = [0.0];
        let n = 100_000;
        let mut xs = Vec::with_capacity(n);
        for _ in 0..n {
            o.gradient(&[0.0], &mut rng, &mut g);
            xs.push(g[0]);
        }
        let m = xs.iter().sum::<f64>() / n as f64;
        let v = xs.iter().map(|x| (x - m).powi(2)).sum::<f64>() / n as f64;
        let k4 = xs.iter().map(|x| (x - m).powi(4)).sum::<f64>() / n as f64 / (v * v) - 3.0;
        assert!((v / (100.0 / 12.0) - 1.0).abs() < 0.03, "variance {v}");
        assert!((k4 + 0.3).abs() < 0.1, "excess kurtosis {k4}");
        let full = Spiky::new(&SpikyConfig {
            batch_size: 4,
            population: Some(4),
            ..SpikyConfig::default()
        })
        .unwrap();
        full.gradient(&[0.0], &mut rng, &mut g);
        assert_eq!(g[0], 0.0);
    }

    #[test]
    fn wells_geometry_and_gradient() {
        let cfg = WellsConfig::default();
        let o = Wells::new(&cfg).unwrap();
        let g = o.geometry();
        assert!(g.sharp_min < g.barrier && g.barrier < g.flat_min, "{g:?}");
        assert!(g.sharp_curvature > 4.0 * g.flat_curvature, "{g:?}");
        assert!(g.barrier_curvature > 0.0 && g.sharp_barrier_height > 0.0);
        assert!(cfg.well(g.barrier).1.abs() < 1e-9);
        let x = 0.2;
        let fd = (cfg.well(x + 1e-6).0 - cfg.well(x - 1e-6).0) / 2e-6;
        assert!((fd - cfg.well(x).1).abs() < 1e-6);
        assert_eq!(o.error(&[g.flat_min, 0.0]), 0.0);
        assert!(o.error(&[g.sharp_min, 0.0]) > 0.0);
        let bad = WellsConfig {
            sharp_depth: 1e-3,
            ..cfg
        };
        assert!(Wells::new(&bad).is_err());
    }
}
