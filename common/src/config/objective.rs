//! The problem a run optimises: streaming PCA (001), the digits MLP (E2)
//! and the landscapes of E4–E6, tagged by `kind` in TOML.

use crate::error::ConfigError;
use crate::landscape::{SaddleConfig, SpikyConfig, WellsConfig};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;
use std::str::FromStr;

/// Which distribution data points X are drawn from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum DataDistribution {
    /// X ~ N(0, Σ).
    #[default]
    Gaussian,
    /// Independent uniform coordinates in Σ's eigenbasis with the same
    /// covariance: bounded, as Assumption 2 of 001 requires (‖X‖ ≤ C_d).
    Uniform,
}

/// Where a streaming-PCA run starts.
#[derive(Debug, Clone, PartialEq, Default)]
pub enum InitialPoint {
    /// The second eigenvector: the strict saddle of 001 §5.1.
    #[default]
    Saddle,
    /// The k-th eigenvector, 1-based (k = 1 is the optimum).
    Eigenvector(usize),
    /// Uniform on the unit sphere, drawn per run.
    Random,
    /// An explicit vector.
    Vector(Vec<f64>),
}

impl fmt::Display for InitialPoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            InitialPoint::Saddle => f.write_str("saddle"),
            InitialPoint::Eigenvector(k) => write!(f, "eigenvector:{k}"),
            InitialPoint::Random => f.write_str("random"),
            InitialPoint::Vector(v) => {
                let parts: Vec<String> = v.iter().map(|x| x.to_string()).collect();
                write!(f, "vector:{}", parts.join(","))
            }
        }
    }
}

impl FromStr for InitialPoint {
    type Err = ConfigError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || {
            ConfigError::new("objective.init", s, "one of `saddle`, `random`, `eigenvector:K` (K ≥ 1), `vector:X1,X2,…` (not all zero)")
        };
        match s.trim() {
            "saddle" => Ok(Self::Saddle),
            "random" => Ok(Self::Random),
            other => {
                if let Some(k) = other.strip_prefix("eigenvector:") {
                    let k: usize = k.trim().parse().map_err(|_| bad())?;
                    if k == 0 {
                        return Err(bad());
                    }
                    Ok(Self::Eigenvector(k))
                } else if let Some(v) = other.strip_prefix("vector:") {
                    let v: Result<Vec<f64>, _> =
                        v.split(',').map(|x| x.trim().parse::<f64>()).collect();
                    let v = v.map_err(|_| bad())?;
                    if v.iter().all(|x| *x == 0.0) || v.iter().any(|x| !x.is_finite()) {
                        return Err(bad());
                    }
                    Ok(Self::Vector(v))
                } else {
                    Err(bad())
                }
            }
        }
    }
}

impl Serialize for InitialPoint {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for InitialPoint {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

/// A streaming-PCA problem: the covariance, the data distribution, the start.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PcaConfig {
    /// Eigenvalues of a diagonal Σ, largest first; empty when `covariance`
    /// gives Σ instead (exactly one of the two is set).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub spectrum: Vec<f64>,
    /// A full symmetric positive-definite covariance, as rows.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub covariance: Option<Vec<Vec<f64>>>,
    /// Distribution of the data points.
    #[serde(default)]
    pub data: DataDistribution,
    /// Starting point.
    #[serde(default)]
    pub init: InitialPoint,
}

impl Default for PcaConfig {
    /// The problem of 001 §5.1: Σ = diag(4, 3, 2, 1), Gaussian data, saddle start.
    fn default() -> Self {
        Self {
            spectrum: vec![4.0, 3.0, 2.0, 1.0],
            covariance: None,
            data: DataDistribution::Gaussian,
            init: InitialPoint::Saddle,
        }
    }
}

impl PcaConfig {
    /// Checks dimension ≥ 2, a finite positive spectrum sorted with λ₁ > λ₂,
    /// and a square symmetric covariance (positive definiteness is checked
    /// on its eigenvalues when the problem is built).
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.validate_matrix()?;
        self.validate_init()
    }

    /// Checks that the starting point exists in dimension d: `eigenvector:K`
    /// with K in 1..=d, `vector:…` with d entries.
    pub fn validate_init(&self) -> Result<(), ConfigError> {
        let d = self.dim();
        match &self.init {
            InitialPoint::Eigenvector(k) if !(1..=d).contains(k) => Err(ConfigError::new(
                "objective.init",
                &self.init,
                format!("`eigenvector:K` with K in 1..={d} (the dimension)"),
            )),
            InitialPoint::Vector(v) if v.len() != d => Err(ConfigError::new(
                "objective.init",
                format!("{} values", v.len()),
                format!("{d} values (the dimension)"),
            )),
            _ => Ok(()),
        }
    }

    fn validate_matrix(&self) -> Result<(), ConfigError> {
        match (&self.covariance, self.spectrum.is_empty()) {
            (Some(_), false) => {
                return Err(ConfigError::new(
                    "objective.spectrum",
                    format!("{:?} beside `objective.covariance`", self.spectrum),
                    "absent when `covariance` is given (both set Σ: give one)",
                ))
            }
            (None, true) => {
                return Err(ConfigError::new(
                    "objective.spectrum",
                    "missing",
                    "the eigenvalues of a diagonal Σ (or `covariance`, the full matrix)",
                ))
            }
            _ => {}
        }
        if let Some(rows) = &self.covariance {
            let d = rows.len();
            if d < 2 {
                return Err(ConfigError::new(
                    "objective.covariance",
                    format!("{d} rows"),
                    "a d×d matrix with d ≥ 2",
                ));
            }
            for (i, r) in rows.iter().enumerate() {
                if r.len() != d {
                    return Err(ConfigError::new(
                        format!("objective.covariance[{i}]"),
                        format!("{} entries", r.len()),
                        format!("{d} entries (a square matrix)"),
                    ));
                }
                for (j, x) in r.iter().enumerate() {
                    if !x.is_finite() {
                        return Err(ConfigError::new(
                            format!("objective.covariance[{i}][{j}]"),
                            x,
                            "finite",
                        ));
                    }
                    let t = rows[j][i];
                    if (x - t).abs() > 1e-9 * (1.0 + x.abs()) {
                        return Err(ConfigError::new(
                            format!("objective.covariance[{i}][{j}]"),
                            x,
                            format!("equal to entry [{j}][{i}] = {t} (symmetric)"),
                        ));
                    }
                }
            }
            return Ok(());
        }
        let s = &self.spectrum;
        if s.len() < 2 {
            return Err(ConfigError::new(
                "objective.spectrum",
                format!("{:?}", s),
                "at least 2 eigenvalues (dimension ≥ 2)",
            ));
        }
        for (i, l) in s.iter().enumerate() {
            if !(l.is_finite() && *l > 0.0) {
                return Err(ConfigError::new(
                    format!("objective.spectrum[{i}]"),
                    l,
                    "finite and > 0",
                ));
            }
            if i > 0 && *l > s[i - 1] {
                return Err(ConfigError::new(
                    format!("objective.spectrum[{i}]"),
                    l,
                    format!(
                        "≤ the previous eigenvalue {} (sorted, largest first)",
                        s[i - 1]
                    ),
                ));
            }
        }
        if s[0] <= s[1] {
            return Err(ConfigError::new(
                "objective.spectrum[0]",
                s[0],
                format!("> λ₂ = {} (an eigengap)", s[1]),
            ));
        }
        Ok(())
    }

    /// Dimension of the problem.
    pub fn dim(&self) -> usize {
        self.covariance
            .as_ref()
            .map_or(self.spectrum.len(), |c| c.len())
    }
}

#[cfg(test)]
mod init_tests {
    use super::*;

    #[test]
    fn init_beyond_the_dimension_names_objective_init_and_the_range() {
        let cfg = PcaConfig {
            init: InitialPoint::Eigenvector(5),
            ..Default::default()
        };
        let e = cfg.validate().unwrap_err().to_string();
        assert!(e.contains("`objective.init`") && e.contains("1..=4"), "{e}");
        for k in 1..=4 {
            PcaConfig {
                init: InitialPoint::Eigenvector(k),
                ..Default::default()
            }
            .validate()
            .unwrap();
        }
        let cfg = PcaConfig {
            init: InitialPoint::Vector(vec![1.0, 0.0]),
            ..Default::default()
        };
        assert!(cfg.validate().unwrap_err().to_string().contains("4 values"));
    }
}

/// Hidden-layer non-linearity of the MLP.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum MlpActivation {
    /// max(0, z).
    #[default]
    Relu,
    /// tanh(z).
    Tanh,
}

/// Largest MLP mini-batch (the batch's labels are kept on the stack).
pub const MAX_BATCH: usize = 256;
/// Widest MLP hidden layer.
pub const MAX_HIDDEN: usize = 1024;

/// A small MLP on the 8×8 handwritten digits (E2): 64 → hidden → 10,
/// softmax cross-entropy, mini-batch gradients.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MlpConfig {
    /// Widths of the one or two hidden layers.
    pub hidden: Vec<usize>,
    /// Training rows per stochastic gradient.
    pub batch: usize,
    /// Hidden-layer non-linearity.
    #[serde(default)]
    pub activation: MlpActivation,
    /// A gzip-compressed digits CSV to use instead of the embedded one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<String>,
}

impl Default for MlpConfig {
    /// 64 → 32 (ReLU) → 10, batches of 16, the embedded data.
    fn default() -> Self {
        Self {
            hidden: vec![32],
            batch: 16,
            activation: MlpActivation::Relu,
            data: None,
        }
    }
}

impl MlpConfig {
    /// Checks one or two hidden layers of width 1..=[`MAX_HIDDEN`] and a
    /// batch in 1..=[`MAX_BATCH`].
    pub fn validate(&self) -> Result<(), ConfigError> {
        if !(1..=2).contains(&self.hidden.len()) {
            return Err(ConfigError::new(
                "objective.hidden",
                format!("{:?}", self.hidden),
                "one or two hidden-layer widths",
            ));
        }
        for (i, &h) in self.hidden.iter().enumerate() {
            if !(1..=MAX_HIDDEN).contains(&h) {
                return Err(ConfigError::new(
                    format!("objective.hidden[{i}]"),
                    h,
                    format!("in [1, {MAX_HIDDEN}]"),
                ));
            }
        }
        if !(1..=MAX_BATCH).contains(&self.batch) {
            return Err(ConfigError::new(
                "objective.batch",
                self.batch,
                format!("in [1, {MAX_BATCH}]"),
            ));
        }
        Ok(())
    }
}

/// The objective a run optimises, tagged by `kind` in TOML.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum ObjectiveConfig {
    /// Streaming PCA (001).
    Pca(PcaConfig),
    /// The strict-saddle quadratic ½w'Aw with Gaussian gradient noise (E4, E6).
    Saddle(SaddleConfig),
    /// A spiky one-dimensional function with uniform gradient noise (E5).
    Spiky(SpikyConfig),
    /// A landscape with a sharp minimum, a flat minimum and a saddle (E6).
    Wells(WellsConfig),
    /// A small MLP on the handwritten digits (E2).
    Mlp(MlpConfig),
    /// A convex quadratic with Gaussian gradient noise, error ‖∇f‖² (the
    /// asynchronous-SGD papers' test problem; `reproduce heterogeneous`).
    Quadratic(crate::quadratic::QuadraticConfig),
}

impl ObjectiveConfig {
    /// Checks the objective's own fields.
    pub fn validate(&self) -> Result<(), ConfigError> {
        match self {
            ObjectiveConfig::Pca(p) => p.validate(),
            ObjectiveConfig::Saddle(c) => c.validate(),
            ObjectiveConfig::Spiky(c) => c.validate(),
            ObjectiveConfig::Wells(c) => c.validate(),
            ObjectiveConfig::Mlp(m) => m.validate(),
            ObjectiveConfig::Quadratic(q) => q.validate(),
        }
    }
}

impl<'de> Deserialize<'de> for ObjectiveConfig {
    /// Read with its keys named in errors (see `config::tagged`).
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        const KINDS: &[&str] = &["pca", "saddle", "spiky", "wells", "mlp", "quadratic"];
        let (kind, fields) = super::tagged::split(d, KINDS)?;
        match kind.as_str() {
            "pca" => super::tagged::part(fields).map(ObjectiveConfig::Pca),
            "saddle" => super::tagged::part(fields).map(ObjectiveConfig::Saddle),
            "spiky" => super::tagged::part(fields).map(ObjectiveConfig::Spiky),
            "wells" => super::tagged::part(fields).map(ObjectiveConfig::Wells),
            "mlp" => super::tagged::part(fields).map(ObjectiveConfig::Mlp),
            "quadratic" => super::tagged::part(fields).map(ObjectiveConfig::Quadratic),
            other => Err(super::tagged::unknown(other, KINDS)),
        }
    }
}

impl Default for ObjectiveConfig {
    fn default() -> Self {
        ObjectiveConfig::Pca(PcaConfig::default())
    }
}
