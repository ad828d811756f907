//! Validated configuration. Every value a user can set lives here with its
//! allowed range; [`RunConfig::validate`] and friends turn a bad value into a
//! [`ConfigError`] that names the field, the value and the range.
//!
//! All types serialise to TOML so that an output directory's `config.toml`
//! replays a run exactly (`psim run --config DIR/config.toml`).

use crate::delay::Delay;
use crate::error::ConfigError;
use crate::landscape::{SaddleConfig, SpikyConfig, WellsConfig};
use crate::update::{RuleKind, Schedule};
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
    /// Eigenvalues of a diagonal Σ, largest first (ignored when
    /// `covariance` is given).
    #[serde(default)]
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
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
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
        }
    }
}

impl Default for ObjectiveConfig {
    fn default() -> Self {
        ObjectiveConfig::Pca(PcaConfig::default())
    }
}

/// What the server does when a requested staleness reaches past the
/// versions it keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum HistoryPolicy {
    /// Serve the oldest kept version (the staleness is capped), counted as `clamped`.
    #[default]
    Clamp,
    /// Discard the gradient, counted as `dropped_too_stale`.
    Drop,
}

impl FromStr for HistoryPolicy {
    type Err = ConfigError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "clamp" => Ok(Self::Clamp),
            "drop" => Ok(Self::Drop),
            _ => Err(ConfigError::new("history.policy", s, "`clamp` or `drop`")),
        }
    }
}

/// How many past versions the server keeps for injected staleness.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HistoryConfig {
    /// Versions kept, so stalenesses 0..capacity can be served exactly.
    pub capacity: usize,
    /// What happens beyond.
    pub policy: HistoryPolicy,
}

impl Default for HistoryConfig {
    fn default() -> Self {
        Self {
            capacity: 1024,
            policy: HistoryPolicy::Clamp,
        }
    }
}

/// Consistency model of the parameter server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Consistency {
    /// Fully asynchronous (ASP): every push is applied, however stale.
    #[default]
    Asp,
    /// Stale-synchronous (SSP) with bound `s`: a worker that would push a
    /// gradient staler than `s` waits instead.
    Ssp { bound: u64 },
    /// Bulk-synchronous (BSP): a barrier per step, the M gradients of a
    /// step averaged into one update (synchronous MSGD).
    Bsp,
}

impl fmt::Display for Consistency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Consistency::Asp => f.write_str("asp"),
            Consistency::Ssp { bound } => write!(f, "ssp:{bound}"),
            Consistency::Bsp => f.write_str("bsp"),
        }
    }
}

impl FromStr for Consistency {
    type Err = ConfigError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || {
            ConfigError::new(
                "cluster.consistency",
                s,
                "`asp`, `ssp:S` (S ≥ 0 an integer) or `bsp`",
            )
        };
        match s.trim() {
            "asp" => Ok(Self::Asp),
            "bsp" => Ok(Self::Bsp),
            other => {
                let bound = other.strip_prefix("ssp:").ok_or_else(bad)?;
                Ok(Self::Ssp {
                    bound: bound.trim().parse().map_err(|_| bad())?,
                })
            }
        }
    }
}

impl Serialize for Consistency {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Consistency {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

/// Slow workers: the first `ceil(fraction·M)` workers take `slowdown` times
/// longer to compute (deterministic, so runs are comparable).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Stragglers {
    /// Fraction of workers that are slow, in [0, 1].
    pub fraction: f64,
    /// Compute-time multiplier of a slow worker, ≥ 1.
    pub slowdown: f64,
}

/// How the OS-threads engine reaches the server (the tasks engine always
/// uses a server task fed by tokio mpsc).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    /// Shared state under a parking_lot mutex; each worker applies its own push.
    #[default]
    Lock,
    /// A dedicated server thread fed by crossbeam channels.
    Channel,
}

impl FromStr for Backend {
    type Err = ConfigError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "lock" => Ok(Self::Lock),
            "channel" => Ok(Self::Channel),
            _ => Err(ConfigError::new(
                "cluster.backend",
                s,
                "`lock` or `channel`",
            )),
        }
    }
}

/// What a run does when a worker fails (panics).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum FailurePolicy {
    /// End the run and report the failure as an error.
    #[default]
    Stop,
    /// Carry on with the remaining workers (the failure is still reported
    /// in the result); the run fails only when no worker is left.
    Continue,
}

impl FromStr for FailurePolicy {
    type Err = ConfigError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "stop" => Ok(Self::Stop),
            "continue" => Ok(Self::Continue),
            _ => Err(ConfigError::new(
                "cluster.on_worker_failure",
                s,
                "`stop` or `continue`",
            )),
        }
    }
}

/// The simulated cluster: how many workers, how long they compute, how long
/// a push travels, and the consistency model. The injected engine ignores it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterConfig {
    /// Number of workers M.
    pub workers: usize,
    /// Seconds one gradient takes to compute (per worker, per step).
    pub compute_time: Delay,
    /// Seconds a push takes to reach the server.
    pub network_delay: Delay,
    /// Consistency model.
    pub consistency: Consistency,
    /// Slow workers, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stragglers: Option<Stragglers>,
    /// Server back-end of the threads engine.
    #[serde(default)]
    pub backend: Backend,
    /// What happens when a worker panics (threads and tasks engines).
    #[serde(default)]
    pub on_worker_failure: FailurePolicy,
}

impl Default for ClusterConfig {
    fn default() -> Self {
        Self {
            workers: 1,
            compute_time: Delay::Constant(1e-3),
            network_delay: Delay::Constant(0.0),
            consistency: Consistency::Asp,
            stragglers: None,
            backend: Backend::Lock,
            on_worker_failure: FailurePolicy::Stop,
        }
    }
}

/// Most workers a cluster may have.
pub const MAX_WORKERS: usize = 1_000_000;

impl ClusterConfig {
    /// Checks 1 ≤ workers ≤ [`MAX_WORKERS`] and the straggler ranges.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.workers == 0 || self.workers > MAX_WORKERS {
            return Err(ConfigError::new(
                "cluster.workers",
                self.workers,
                format!("in [1, {MAX_WORKERS}]"),
            ));
        }
        if let Some(s) = self.stragglers {
            if !(0.0..=1.0).contains(&s.fraction) {
                return Err(ConfigError::new(
                    "cluster.stragglers.fraction",
                    s.fraction,
                    "in [0, 1]",
                ));
            }
            if !(s.slowdown.is_finite() && s.slowdown >= 1.0) {
                return Err(ConfigError::new(
                    "cluster.stragglers.slowdown",
                    s.slowdown,
                    "finite and ≥ 1",
                ));
            }
        }
        Ok(())
    }

    /// Compute-time multiplier of worker `w`.
    pub fn speed_factor(&self, w: usize) -> f64 {
        match self.stragglers {
            Some(s) if (w as f64) < (s.fraction * self.workers as f64).ceil() => s.slowdown,
            _ => 1.0,
        }
    }
}

/// Which engine drives a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum EngineKind {
    /// Staleness sampled from `delay` and served from the history (eq. 2.1 exactly).
    #[default]
    Injected,
    /// Discrete-event simulation of the cluster in virtual time.
    VirtualTime,
    /// Real OS threads as workers; staleness measured.
    Threads,
    /// Tokio tasks as workers; staleness measured.
    Tasks,
}

impl FromStr for EngineKind {
    type Err = ConfigError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "injected" => Ok(Self::Injected),
            "virtual-time" => Ok(Self::VirtualTime),
            "threads" => Ok(Self::Threads),
            "tasks" => Ok(Self::Tasks),
            _ => Err(ConfigError::new(
                "engine",
                s,
                "one of `injected`, `virtual-time`, `threads`, `tasks`",
            )),
        }
    }
}

/// Largest history a run may keep (versions); a guard against a typo
/// allocating gigabytes.
pub const MAX_HISTORY: usize = 1 << 20;

/// One configuration of Async-MSGD: objective, hyper-parameters, delay,
/// length, recording and seeding. `runs` independent runs share it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunConfig {
    /// Momentum μ in [0, 1).
    pub momentum: f64,
    /// Step size η > 0.
    pub step_size: f64,
    /// Gradients drawn per run (each is applied, or dropped by the history policy).
    pub steps: u64,
    /// Staleness model τ_k.
    pub delay: Delay,
    /// Independent runs.
    pub runs: u32,
    /// Master seed; run r uses streams derived from (seed, r).
    pub seed: u64,
    /// Error recorded on the trace every this many steps.
    pub record_every: u64,
    /// The reported error is the mean over this last fraction of the steps.
    pub tail_fraction: f64,
    /// A run whose ‖v‖ exceeds this (or turns non-finite) has diverged.
    pub divergence_norm: f64,
    /// Stop a run early once its error falls to this value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_error: Option<f64>,
    /// Versions kept for injected staleness.
    #[serde(default)]
    pub history: HistoryConfig,
    /// The engine that drives the run.
    #[serde(default)]
    pub engine: EngineKind,
    /// The simulated cluster (engines other than `injected`).
    #[serde(default)]
    pub cluster: ClusterConfig,
    /// The problem.
    pub objective: ObjectiveConfig,
    /// The server's update rule (text syntax, see [`crate::update::RULE_SYNTAX`]).
    #[serde(default)]
    pub rule: RuleKind,
    /// The step-size schedule (text syntax, see [`crate::update::SCHEDULE_SYNTAX`]).
    #[serde(default)]
    pub schedule: Schedule,
}

impl Default for RunConfig {
    /// E1's setting at τ = 0: Σ = diag(4,3,2,1), saddle start, η = 5·10⁻⁴, μ = 0.9.
    fn default() -> Self {
        Self {
            momentum: 0.9,
            step_size: 5e-4,
            steps: 20_000,
            delay: Delay::constant(0),
            runs: 100,
            seed: 1,
            record_every: 100,
            tail_fraction: 0.25,
            divergence_norm: 1e6,
            target_error: None,
            history: HistoryConfig::default(),
            engine: EngineKind::Injected,
            cluster: ClusterConfig::default(),
            objective: ObjectiveConfig::default(),
            rule: RuleKind::default(),
            schedule: Schedule::default(),
        }
    }
}

impl RunConfig {
    /// Checks every field against its allowed range.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if !(self.momentum.is_finite() && (0.0..1.0).contains(&self.momentum)) {
            return Err(ConfigError::new("momentum", self.momentum, "in [0, 1)"));
        }
        if !(self.step_size.is_finite() && self.step_size > 0.0) {
            return Err(ConfigError::new(
                "step_size",
                self.step_size,
                "finite and > 0",
            ));
        }
        if self.steps == 0 {
            return Err(ConfigError::new("steps", self.steps, "≥ 1"));
        }
        if self.runs == 0 {
            return Err(ConfigError::new("runs", self.runs, "≥ 1"));
        }
        if self.record_every == 0 {
            return Err(ConfigError::new("record_every", self.record_every, "≥ 1"));
        }
        if !(self.tail_fraction > 0.0 && self.tail_fraction <= 1.0) {
            return Err(ConfigError::new(
                "tail_fraction",
                self.tail_fraction,
                "in (0, 1]",
            ));
        }
        if !(self.divergence_norm.is_finite() && self.divergence_norm > 1.0) {
            return Err(ConfigError::new(
                "divergence_norm",
                self.divergence_norm,
                "finite and > 1",
            ));
        }
        if let Some(t) = self.target_error {
            if !(t.is_finite() && t > 0.0) {
                return Err(ConfigError::new("target_error", t, "finite and > 0"));
            }
        }
        if self.history.capacity == 0 || self.history.capacity > MAX_HISTORY {
            return Err(ConfigError::new(
                "history.capacity",
                self.history.capacity,
                format!("in [1, {MAX_HISTORY}]"),
            ));
        }
        self.cluster.validate()?;
        self.rule.validate()?;
        self.schedule.validate()?;
        self.objective.validate()
    }
}

/// The values a sweep varies; an empty list keeps the base value.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct Grid {
    /// Momentum values μ.
    #[serde(default)]
    pub momentum: Vec<f64>,
    /// Step sizes η.
    #[serde(default)]
    pub step_size: Vec<f64>,
    /// Delay models.
    #[serde(default)]
    pub delay: Vec<Delay>,
}

/// How the momentum–delay tradeoff reads an "optimal delay" off a sweep.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TradeoffRule {
    /// A delay is tolerated when its mean error is at most `factor` × the
    /// error at τ = 0 and no run diverged; the optimal delay is the largest
    /// τ of the grid such that it and every smaller τ are tolerated.
    pub factor: f64,
}

impl Default for TradeoffRule {
    fn default() -> Self {
        Self { factor: 2.0 }
    }
}

/// A whole experiment: a base configuration, the grid it sweeps, and the
/// analysis to apply. This is what `config.toml` in an output directory holds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Experiment {
    /// Name shown in reports (a scenario name, or `run`/`sweep`).
    pub name: String,
    /// Values shared by every point.
    pub base: RunConfig,
    /// Values varied across points.
    #[serde(default)]
    pub grid: Grid,
    /// Optimal-delay analysis, for momentum × constant-delay grids.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tradeoff: Option<TradeoffRule>,
}

impl Experiment {
    /// The configurations of every grid point, momentum-major, then step size, then delay.
    pub fn points(&self) -> Vec<RunConfig> {
        let mus = if self.grid.momentum.is_empty() {
            vec![self.base.momentum]
        } else {
            self.grid.momentum.clone()
        };
        let etas = if self.grid.step_size.is_empty() {
            vec![self.base.step_size]
        } else {
            self.grid.step_size.clone()
        };
        let delays = if self.grid.delay.is_empty() {
            vec![self.base.delay.clone()]
        } else {
            self.grid.delay.clone()
        };
        let mut out = Vec::with_capacity(mus.len() * etas.len() * delays.len());
        for &momentum in &mus {
            for &step_size in &etas {
                for delay in &delays {
                    out.push(RunConfig {
                        momentum,
                        step_size,
                        delay: delay.clone(),
                        ..self.base.clone()
                    });
                }
            }
        }
        out
    }

    /// Validates the base and every grid value, naming the grid entry at fault.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.base.validate()?;
        for (i, &m) in self.grid.momentum.iter().enumerate() {
            RunConfig {
                momentum: m,
                ..self.base.clone()
            }
            .validate()
            .map_err(|e| rename(e, &format!("grid.momentum[{i}]")))?;
        }
        for (i, &s) in self.grid.step_size.iter().enumerate() {
            RunConfig {
                step_size: s,
                ..self.base.clone()
            }
            .validate()
            .map_err(|e| rename(e, &format!("grid.step_size[{i}]")))?;
        }
        if let Some(r) = &self.tradeoff {
            if !(r.factor.is_finite() && r.factor > 1.0) {
                return Err(ConfigError::new(
                    "tradeoff.factor",
                    r.factor,
                    "finite and > 1",
                ));
            }
        }
        let n = self.points().len() as u64 * self.base.runs as u64;
        if n > 100_000_000 {
            return Err(ConfigError::new(
                "grid",
                format!("{n} runs in all"),
                "at most 10⁸ runs per experiment",
            ));
        }
        Ok(())
    }
}

fn rename(mut e: ConfigError, field: &str) -> ConfigError {
    e.field = field.to_string();
    e
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(cfg: RunConfig) -> String {
        cfg.validate().unwrap_err().to_string()
    }

    #[test]
    fn default_is_valid_and_round_trips_through_toml() {
        let e = Experiment {
            name: "t".into(),
            base: RunConfig::default(),
            grid: Grid {
                momentum: vec![0.5, 0.9],
                step_size: vec![],
                delay: vec!["uniform:0..4".parse().unwrap()],
            },
            tradeoff: Some(TradeoffRule::default()),
        };
        e.validate().unwrap();
        let text = toml::to_string(&e).unwrap();
        let back: Experiment = toml::from_str(&text).unwrap();
        assert_eq!(back, e);
        assert_eq!(e.points().len(), 2);
    }

    #[test]
    fn every_field_names_itself_and_its_range() {
        let d = RunConfig::default;
        let cases: Vec<(RunConfig, &str, &str)> = vec![
            (
                RunConfig {
                    momentum: 1.0,
                    ..d()
                },
                "momentum",
                "[0, 1)",
            ),
            (
                RunConfig {
                    momentum: -0.1,
                    ..d()
                },
                "momentum",
                "[0, 1)",
            ),
            (
                RunConfig {
                    momentum: f64::NAN,
                    ..d()
                },
                "momentum",
                "[0, 1)",
            ),
            (
                RunConfig {
                    step_size: 0.0,
                    ..d()
                },
                "step_size",
                "> 0",
            ),
            (
                RunConfig {
                    step_size: f64::INFINITY,
                    ..d()
                },
                "step_size",
                "finite",
            ),
            (RunConfig { steps: 0, ..d() }, "steps", "≥ 1"),
            (RunConfig { runs: 0, ..d() }, "runs", "≥ 1"),
            (
                RunConfig {
                    record_every: 0,
                    ..d()
                },
                "record_every",
                "≥ 1",
            ),
            (
                RunConfig {
                    tail_fraction: 0.0,
                    ..d()
                },
                "tail_fraction",
                "(0, 1]",
            ),
            (
                RunConfig {
                    tail_fraction: 1.5,
                    ..d()
                },
                "tail_fraction",
                "(0, 1]",
            ),
            (
                RunConfig {
                    divergence_norm: 0.5,
                    ..d()
                },
                "divergence_norm",
                "> 1",
            ),
            (
                RunConfig {
                    target_error: Some(-1.0),
                    ..d()
                },
                "target_error",
                "> 0",
            ),
            (
                RunConfig {
                    history: HistoryConfig {
                        capacity: 0,
                        policy: HistoryPolicy::Clamp,
                    },
                    ..d()
                },
                "history.capacity",
                "[1,",
            ),
            (
                RunConfig {
                    objective: ObjectiveConfig::Pca(PcaConfig {
                        spectrum: vec![1.0],
                        ..Default::default()
                    }),
                    ..d()
                },
                "objective.spectrum",
                "dimension ≥ 2",
            ),
            (
                RunConfig {
                    objective: ObjectiveConfig::Pca(PcaConfig {
                        spectrum: vec![2.0, 2.0],
                        ..Default::default()
                    }),
                    ..d()
                },
                "objective.spectrum[0]",
                "eigengap",
            ),
            (
                RunConfig {
                    objective: ObjectiveConfig::Pca(PcaConfig {
                        spectrum: vec![2.0, 0.0],
                        ..Default::default()
                    }),
                    ..d()
                },
                "objective.spectrum[1]",
                "> 0",
            ),
            (
                RunConfig {
                    objective: ObjectiveConfig::Pca(PcaConfig {
                        spectrum: vec![1.0, 2.0],
                        ..Default::default()
                    }),
                    ..d()
                },
                "objective.spectrum[1]",
                "sorted",
            ),
            (
                RunConfig {
                    objective: ObjectiveConfig::Pca(PcaConfig {
                        covariance: Some(vec![vec![1.0, 2.0], vec![0.0, 1.0]]),
                        ..Default::default()
                    }),
                    ..d()
                },
                "objective.covariance[0][1]",
                "symmetric",
            ),
            (
                RunConfig {
                    objective: ObjectiveConfig::Pca(PcaConfig {
                        covariance: Some(vec![vec![1.0, 0.0], vec![0.0]]),
                        ..Default::default()
                    }),
                    ..d()
                },
                "objective.covariance[1]",
                "square",
            ),
        ];
        for (cfg, field, range) in cases {
            let e = err(cfg);
            assert!(
                e.contains(&format!("`{field}`")),
                "expected field {field} in: {e}"
            );
            assert!(e.contains(range), "expected range {range} in: {e}");
        }
    }

    #[test]
    fn grid_errors_name_the_grid_entry() {
        let e = Experiment {
            name: "t".into(),
            base: RunConfig::default(),
            grid: Grid {
                momentum: vec![0.5, 1.2],
                ..Default::default()
            },
            tradeoff: None,
        };
        let msg = e.validate().unwrap_err().to_string();
        assert!(
            msg.contains("grid.momentum[1]") && msg.contains("[0, 1)"),
            "{msg}"
        );
        let e = Experiment {
            tradeoff: Some(TradeoffRule { factor: 0.5 }),
            grid: Grid::default(),
            ..e
        };
        assert!(e
            .validate()
            .unwrap_err()
            .to_string()
            .contains("tradeoff.factor"));
    }

    #[test]
    fn cluster_validation_and_syntax() {
        let bad = RunConfig {
            cluster: ClusterConfig {
                workers: 0,
                ..Default::default()
            },
            ..RunConfig::default()
        };
        assert!(err(bad).contains("`cluster.workers`"));
        let slow = ClusterConfig {
            workers: 10,
            stragglers: Some(Stragglers {
                fraction: 0.25,
                slowdown: 4.0,
            }),
            ..Default::default()
        };
        slow.validate().unwrap();
        assert_eq!((0..10).filter(|&w| slow.speed_factor(w) == 4.0).count(), 3);
        let bad = ClusterConfig {
            stragglers: Some(Stragglers {
                fraction: 0.5,
                slowdown: 0.5,
            }),
            ..slow.clone()
        };
        assert!(bad.validate().unwrap_err().to_string().contains("slowdown"));
        assert_eq!(
            "ssp:3".parse::<Consistency>().unwrap(),
            Consistency::Ssp { bound: 3 }
        );
        assert_eq!("bsp".parse::<Consistency>().unwrap().to_string(), "bsp");
        assert!("ssp:x"
            .parse::<Consistency>()
            .unwrap_err()
            .to_string()
            .contains("cluster.consistency"));
        assert!("gpu"
            .parse::<EngineKind>()
            .unwrap_err()
            .to_string()
            .contains("`engine`"));
    }

    #[test]
    fn initial_point_syntax() {
        assert_eq!(
            "saddle".parse::<InitialPoint>().unwrap(),
            InitialPoint::Saddle
        );
        assert_eq!(
            "eigenvector:3".parse::<InitialPoint>().unwrap(),
            InitialPoint::Eigenvector(3)
        );
        assert_eq!(
            "vector:1,0".parse::<InitialPoint>().unwrap(),
            InitialPoint::Vector(vec![1.0, 0.0])
        );
        for bad in ["eigenvector:0", "vector:0,0", "nowhere", "vector:a"] {
            assert!(bad
                .parse::<InitialPoint>()
                .unwrap_err()
                .to_string()
                .contains("objective.init"));
        }
    }
}
