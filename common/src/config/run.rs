//! One configuration of Async-MSGD, shared by the runs of one point.

use super::{
    ClusterConfig, Consistency, EngineConfig, EngineKind, InjectedConfig, ObjectiveConfig,
};
use crate::delay::Delay;
use crate::error::ConfigError;
use crate::update::{RuleKind, Schedule};
use serde::{Deserialize, Serialize};

/// One configuration of Async-MSGD: objective, hyper-parameters (momentum,
/// step size, update rule, schedule), the engine with its own settings,
/// length, recording and seeding. `runs` independent runs share it.
///
/// Settings that only some engines use (the delay model, the cluster) live
/// inside [`EngineConfig`], so a configuration cannot name a setting its
/// engine would ignore.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunConfig {
    /// Momentum μ in (−1, 1); negative only with a rule that has a momentum term (not `sgd`).
    pub momentum: f64,
    /// Step size η > 0.
    pub step_size: f64,
    /// Gradients drawn per run (each is applied, or dropped by the history policy).
    pub steps: u64,
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
    /// Keep every run's final parameters (columns `param_0…` of
    /// `runs.csv`; `Result.params` in Python).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub record_params: bool,
    /// Keep the parameters at every trace point too, in memory, for a
    /// scenario that analyses whole paths (`reproduce implicit-momentum`).
    /// Set by a scenario's plan, never by a user: not a setting, so it is
    /// neither written to `config.toml` nor part of a point's fingerprint.
    #[serde(skip)]
    pub record_trace_params: bool,
    /// The engine that drives the run, with its own settings.
    #[serde(default)]
    pub engine: EngineConfig,
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
            runs: 100,
            seed: 1,
            record_every: 100,
            record_params: false,
            record_trace_params: false,
            tail_fraction: 0.25,
            divergence_norm: 1e6,
            target_error: None,
            engine: EngineConfig::default(),
            objective: ObjectiveConfig::default(),
            rule: RuleKind::default(),
            schedule: Schedule::default(),
        }
    }
}

impl RunConfig {
    /// Checks every field against its allowed range.
    pub fn validate(&self) -> Result<(), ConfigError> {
        // Negative momentum (μ ∈ (−1, 0)) is meaningful: heavy ball stays
        // stable for |μ| < 1, and at many workers the implicit momentum of
        // asynchrony (1 − 1/M) can call for a negative explicit one
        // (Mitliagkas et al. 2016). Plain SGD has no momentum term, so a
        // negative value there would mean nothing.
        if !(self.momentum.is_finite() && self.momentum > -1.0 && self.momentum < 1.0) {
            return Err(ConfigError::new("momentum", self.momentum, "in (−1, 1)"));
        }
        if self.momentum < 0.0 && self.rule == RuleKind::Sgd {
            return Err(ConfigError::new(
                "momentum",
                self.momentum,
                "≥ 0 with rule `sgd`, which has no momentum term (negative momentum is for heavy-ball, nesterov, staleness-aware, dc-asgd)",
            ));
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
        for (field, v) in [
            ("steps", self.steps),
            ("seed", self.seed),
            ("record_every", self.record_every),
        ] {
            if v > MAX_INTEGER {
                return Err(ConfigError::new(
                    field,
                    v,
                    format!("≤ {MAX_INTEGER} (2⁶³ − 1, the largest integer config.toml holds)"),
                ));
            }
        }
        if self.steps / self.record_every > MAX_TRACE_POINTS {
            return Err(ConfigError::new(
                "record_every",
                self.record_every,
                format!("≥ steps / {MAX_TRACE_POINTS} = {} for steps = {} (at most {MAX_TRACE_POINTS} trace points per run)", self.steps.div_ceil(MAX_TRACE_POINTS), self.steps),
            ));
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
        self.engine.validate()?;
        self.rule.validate()?;
        if let (RuleKind::DelayAdaptive { c: None }, None) = (self.rule, self.cluster()) {
            return Err(ConfigError::new(
                "rule",
                self.rule,
                "`delay-adaptive:C` with C given on the injected engine (C defaults to the number of workers, which only the cluster engines have)",
            ));
        }
        if let Some(Consistency::Ringmaster { bound, .. }) = self.cluster().map(|c| c.consistency) {
            if bound > self.steps {
                return Err(ConfigError::new(
                    "engine.cluster.consistency",
                    self.cluster().map(|c| c.consistency.to_string()).unwrap_or_default(),
                    format!("R ≤ steps = {} (a gradient is at most `steps` versions stale, so a larger R never discards and runs as asp)", self.steps),
                ));
            }
        }
        if let (RuleKind::DcAsgd { .. }, Some(c)) = (self.rule, self.cluster()) {
            if let Consistency::Buffered { .. } = c.consistency {
                return Err(ConfigError::new(
                    "rule",
                    self.rule,
                    format!("a rule other than `dc-asgd` under `{}`: a buffered update averages gradients computed at different points, so DC-ASGD has no one stale point to compensate from", c.consistency),
                ));
            }
        }
        self.schedule.validate_for_steps(self.steps)?;
        self.objective.validate()
    }

    /// Which engine runs this configuration.
    pub fn engine_kind(&self) -> EngineKind {
        self.engine.kind()
    }

    /// The cluster of a cluster engine (virtual time, threads, tasks).
    pub fn cluster(&self) -> Option<&ClusterConfig> {
        self.engine.cluster()
    }

    /// Mutable [`RunConfig::cluster`].
    pub fn cluster_mut(&mut self) -> Option<&mut ClusterConfig> {
        self.engine.cluster_mut()
    }

    /// The injected engine's delay model and history.
    pub fn injected(&self) -> Option<&InjectedConfig> {
        self.engine.injected()
    }

    /// This configuration on the injected engine with delay model `delay`
    /// (the history kept when it already was on the injected engine).
    pub fn with_delay(mut self, delay: Delay) -> Self {
        match self.engine.injected_mut() {
            Some(i) => i.delay = delay,
            None => {
                self.engine = EngineConfig::Injected(InjectedConfig {
                    delay,
                    ..Default::default()
                })
            }
        }
        self
    }
}

/// Largest integer setting (`steps`, `seed`, `record_every`): TOML integers
/// are signed 64-bit, and `config.toml` must replay every run.
pub const MAX_INTEGER: u64 = i64::MAX as u64;

/// Most error-trace points one run may record (`steps / record_every`);
/// each costs 24 bytes and every run's trace is kept until the sweep ends.
pub const MAX_TRACE_POINTS: u64 = 1_000_000;
