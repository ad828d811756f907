//! Engine settings: the injected engine's history, and the cluster engines'
//! workers, compute and network times, consistency model, back-end and
//! failure policy.

use crate::delay::Delay;
use crate::error::ConfigError;
use crate::profile::{ComputeProfile, WorkerClock};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

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
            _ => Err(ConfigError::new(
                "engine.history.policy",
                s,
                "`clamp` or `drop`",
            )),
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

/// Consistency model (server policy) of the parameter server: when a
/// worker may fetch, which arriving gradients are applied, and how many go
/// into one update. Every engine with workers runs the one implementation
/// in `psim_server::backend::ServerCore`; `docs/engines.md` defines each.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Consistency {
    /// Fully asynchronous (ASP): every push is applied, however stale.
    #[default]
    Asp,
    /// Stale-synchronous (SSP) with bound `s`: a worker that would push a
    /// gradient staler than `s` waits instead.
    Ssp { bound: u64 },
    /// Bulk-synchronous (BSP): a barrier per step, the M gradients of a
    /// step averaged into one update (synchronous MSGD); `ksync:M` exactly.
    Bsp,
    /// Rennala SGD (Tyurin & Richtárik 2023): the server collects `batch`
    /// gradients computed at the current point (a fast worker may
    /// contribute several) and applies their mean as one update; every
    /// worker then restarts on the new point. `stale` says what happens to
    /// the computations under way at that moment.
    Rennala { batch: u64, stale: StaleWork },
    /// Ringmaster ASGD (Maranjyan, Tyurin & Richtárik 2025): a gradient
    /// whose staleness would be ≥ `bound` (R) is never applied; under
    /// [`StaleWork::Discard`] it is discarded on arrival, under
    /// [`StaleWork::Cancel`] (`ringmaster:R,stop`) the computation is
    /// stopped as soon as it is R versions stale and restarted on the
    /// current point.
    Ringmaster { bound: u64, stale: StaleWork },
    /// m-synchronous SGD with backup workers (Chen et al. 2016): each round
    /// every worker starts on the current point, the first `quorum` (K)
    /// gradients are averaged into one update and the other computations
    /// of the round are cancelled.
    KSync { quorum: u64 },
    /// Buffered asynchronous SGD (FedBuff, Nguyen et al. 2022): every
    /// arriving gradient enters a buffer whatever its staleness; every
    /// `size` (K) arrivals the buffer's mean is applied; nobody waits.
    Buffered { size: u64 },
}

/// What a policy does with a computation it will not apply (Rennala's
/// computations under way at an update, Ringmaster's too-stale ones).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StaleWork {
    /// The computation is cancelled at once and its worker restarts on the
    /// current point; counted as `cancelled`, never received.
    Cancel,
    /// The computation finishes; its gradient is received and discarded
    /// (counted as `dropped_too_stale`), then its worker fetches.
    Discard,
}

/// The accepted spellings of [`Consistency`], for error messages.
pub const CONSISTENCY_SYNTAX: &str = "`asp`, `ssp:S` (S ≥ 0), `bsp`, `rennala:B` or `rennala:B,discard` (B in 1..=2²⁰), `ringmaster:R` or `ringmaster:R,stop` (R ≥ 1), `ksync:K` (K in 1..=workers) or `buffered:K` (K in 1..=2²⁰)";

/// The most gradients one update of `rennala:B` or `buffered:K` may
/// average: an update is where a run can be stopped (Ctrl-C, the step
/// budget), so it must end in bounded time.
pub const MAX_GRADIENTS_PER_UPDATE: u64 = 1 << 20;

impl Consistency {
    /// Checks the policy against the cluster's `workers` (K of `ksync:K`
    /// at most M; `None` when the workers are not known yet), naming
    /// `engine.cluster.consistency`.
    pub fn validate(&self, workers: Option<usize>) -> Result<(), ConfigError> {
        let max = MAX_GRADIENTS_PER_UPDATE;
        let (value, ok, range) = match *self {
            Consistency::Asp | Consistency::Bsp => return Ok(()),
            // At most M tickets are open at once (one per worker), so a
            // bound of M − 1 never makes a fetch wait: a larger one runs
            // exactly as ssp:(M−1).
            Consistency::Ssp { bound } => match workers {
                Some(m) => (
                    bound,
                    bound < m as u64,
                    format!(
                        "S in 0..={} (M − 1: with M = {m} workers at most M tickets are open, so a larger S never waits and runs as ssp:{})",
                        m - 1,
                        m - 1
                    ),
                ),
                None => return Ok(()),
            },
            Consistency::Rennala { batch, .. } => (
                batch,
                (1..=max).contains(&batch),
                format!("B in 1..={max} (gradients per update)"),
            ),
            Consistency::Ringmaster { bound, .. } => (bound, bound >= 1, "R ≥ 1".to_string()),
            Consistency::Buffered { size } => (
                size,
                (1..=max).contains(&size),
                format!("K in 1..={max} (gradients per update)"),
            ),
            Consistency::KSync { quorum } => match workers {
                Some(m) => (
                    quorum,
                    quorum >= 1 && quorum <= m as u64,
                    format!("K in 1..={m} (the number of workers)"),
                ),
                None => (
                    quorum,
                    quorum >= 1,
                    "K in 1..=M (the number of workers)".to_string(),
                ),
            },
        };
        if ok {
            Ok(())
        } else {
            Err(ConfigError::new(
                "engine.cluster.consistency",
                format!("{self} ({value})"),
                range,
            ))
        }
    }

    /// Whether the policy cancels computations under way (Rennala and
    /// Ringmaster with [`StaleWork::Cancel`], m-sync with K < M).
    pub fn cancels(&self) -> bool {
        matches!(
            self,
            Consistency::Rennala {
                stale: StaleWork::Cancel,
                ..
            } | Consistency::Ringmaster {
                stale: StaleWork::Cancel,
                ..
            } | Consistency::KSync { .. }
        )
    }
}

impl fmt::Display for EngineKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            EngineKind::Injected => "injected",
            EngineKind::VirtualTime => "virtual-time",
            EngineKind::Threads => "threads",
            EngineKind::Tasks => "tasks",
        })
    }
}

impl fmt::Display for Consistency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Consistency::Asp => f.write_str("asp"),
            Consistency::Ssp { bound } => write!(f, "ssp:{bound}"),
            Consistency::Bsp => f.write_str("bsp"),
            Consistency::Rennala { batch, stale } => match stale {
                StaleWork::Cancel => write!(f, "rennala:{batch}"),
                StaleWork::Discard => write!(f, "rennala:{batch},discard"),
            },
            Consistency::Ringmaster { bound, stale } => match stale {
                StaleWork::Discard => write!(f, "ringmaster:{bound}"),
                StaleWork::Cancel => write!(f, "ringmaster:{bound},stop"),
            },
            Consistency::KSync { quorum } => write!(f, "ksync:{quorum}"),
            Consistency::Buffered { size } => write!(f, "buffered:{size}"),
        }
    }
}

impl FromStr for Consistency {
    type Err = ConfigError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || ConfigError::new("engine.cluster.consistency", s, CONSISTENCY_SYNTAX);
        let text = s.trim();
        match text {
            "asp" => return Ok(Self::Asp),
            "bsp" => return Ok(Self::Bsp),
            _ => {}
        }
        let (name, rest) = text.split_once(':').ok_or_else(bad)?;
        let (number, option) = match rest.split_once(',') {
            Some((n, o)) => (n.trim(), Some(o.trim())),
            None => (rest.trim(), None),
        };
        let n: u64 = number.parse().map_err(|_| bad())?;
        let c = match (name.trim(), option) {
            ("ssp", None) => Self::Ssp { bound: n },
            ("rennala", None) => Self::Rennala {
                batch: n,
                stale: StaleWork::Cancel,
            },
            ("rennala", Some("discard")) => Self::Rennala {
                batch: n,
                stale: StaleWork::Discard,
            },
            ("ringmaster", None) => Self::Ringmaster {
                bound: n,
                stale: StaleWork::Discard,
            },
            ("ringmaster", Some("stop")) => Self::Ringmaster {
                bound: n,
                stale: StaleWork::Cancel,
            },
            ("ksync", None) => Self::KSync { quorum: n },
            ("buffered", None) => Self::Buffered { size: n },
            _ => return Err(bad()),
        };
        // Ranges that do not depend on the workers (K ≤ M is checked with them).
        c.validate(None)?;
        Ok(c)
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
            _ => Err(ConfigError::new("engine.backend", s, "`lock` or `channel`")),
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
                "engine.on_worker_failure",
                s,
                "`stop` or `continue`",
            )),
        }
    }
}

/// The simulated or real cluster of the virtual-time, threads and tasks
/// engines: how many workers, how long they compute, how long a push
/// travels, and the consistency model.
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
    /// Each worker's own compute time ([`WorkerCompute`]), if workers differ.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub worker_compute: Option<WorkerCompute>,
    /// Write every applied push to `pushes.csv` (at most
    /// [`crate::pushes::MAX_RECORDED_PUSHES`] per run).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub record_pushes: bool,
}

impl Default for ClusterConfig {
    fn default() -> Self {
        Self {
            workers: 1,
            compute_time: Delay::Constant(1e-3),
            network_delay: Delay::Constant(0.0),
            consistency: Consistency::Asp,
            stragglers: None,
            worker_compute: None,
            record_pushes: false,
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
                "engine.cluster.workers",
                self.workers,
                format!("in [1, {MAX_WORKERS}]"),
            ));
        }
        self.compute_time
            .validate_seconds("engine.cluster.compute_time")?;
        self.network_delay
            .validate_seconds("engine.cluster.network_delay")?;
        if let Some(w) = &self.worker_compute {
            w.validate(self.workers)?;
            // `models:` gives every worker its own model and `replay:` the
            // recorded times: `compute_time` would be ignored.
            let unset = ClusterConfig::default().compute_time;
            if matches!(w, WorkerCompute::Models(_) | WorkerCompute::Replay { .. })
                && self.compute_time != unset
            {
                return Err(ConfigError::new(
                    "engine.cluster.compute_time",
                    &self.compute_time,
                    format!(
                        "not set (its default, {unset}) with `worker_compute = {}`: those times replace compute_time, which would be ignored; remove --compute-time",
                        if matches!(w, WorkerCompute::Models(_)) { "models:…" } else { "replay:…" }
                    ),
                ));
            }
        }
        self.consistency.validate(Some(self.workers))?;
        if let Some(s) = self.stragglers {
            // Fraction 0 (no straggler) or slowdown 1 (no slower) cannot take effect.
            if !(s.fraction > 0.0 && s.fraction <= 1.0) {
                return Err(ConfigError::new(
                    "engine.cluster.stragglers.fraction",
                    s.fraction,
                    "in (0, 1] (0 makes no worker a straggler; omit stragglers instead)",
                ));
            }
            if !(s.slowdown.is_finite() && s.slowdown > 1.0) {
                return Err(ConfigError::new(
                    "engine.cluster.stragglers.slowdown",
                    s.slowdown,
                    "finite and > 1 (1 makes stragglers as fast as the others; omit stragglers instead)",
                ));
            }
        }
        Ok(())
    }

    /// Each worker's compute-time model and multiplier for run `run` of
    /// master seed `seed`: `compute_time` (or the worker's own model under
    /// `models:`) times the straggler factor and the `worker_compute` factor.
    /// Under `replay:` the model is a placeholder: the engine replays the
    /// recorded times ([`ClusterConfig::replay_times`]).
    pub fn worker_times(&self, seed: u64, run: u64) -> Vec<(Delay, f64)> {
        self.worker_speeds(seed, run)
            .into_iter()
            .enumerate()
            .map(|(w, speed)| {
                let model = match &self.worker_compute {
                    Some(WorkerCompute::Models(ms)) => ms[w].clone(),
                    _ => self.compute_time.clone(),
                };
                (model, speed)
            })
            .collect()
    }

    /// The multipliers of [`ClusterConfig::worker_times`] alone (straggler
    /// factor × `worker_compute` factor), without a copy of each worker's
    /// model: 8 bytes per worker, for engines that simulate 10⁶ workers.
    pub fn worker_speeds(&self, seed: u64, run: u64) -> Vec<f64> {
        let factors = self
            .worker_compute
            .as_ref()
            .map(|wc| wc.factors(self.workers, seed, run));
        (0..self.workers)
            .map(|w| {
                let f = factors.as_ref().map_or(1.0, |f| f[w]);
                self.speed_factor(w) * f
            })
            .collect()
    }

    /// The recorded compute times of worker `w` under `replay:`.
    pub fn replay_times(&self, w: usize) -> Option<&Arc<[f64]>> {
        match &self.worker_compute {
            Some(WorkerCompute::Replay { times, .. }) => times.get(w),
            _ => None,
        }
    }

    /// The largest compute time a worker can draw (straggler slowdown and
    /// per-worker factors included), `None` when unbounded.
    pub fn compute_upper_bound(&self) -> Option<f64> {
        let slowdown = self.stragglers.map_or(1.0, |s| s.slowdown.max(1.0));
        let base = match &self.worker_compute {
            Some(WorkerCompute::Models(ms)) => ms
                .iter()
                .map(|m| m.upper_bound())
                .try_fold(0.0f64, |a, b| b.map(|b| a.max(b)))?,
            Some(WorkerCompute::Replay { times, .. }) => times
                .iter()
                .flat_map(|t| t.iter().copied())
                .fold(0.0, f64::max),
            Some(WorkerCompute::Profile(p)) => {
                // Compute (× slowdown) plus the longest upload and download.
                let compute =
                    self.compute_time.upper_bound()? * wc_max_factor(p, self.workers)? * slowdown;
                let m = self.workers.max(1);
                let mut comm = 0.0;
                for d in [&p.upload, &p.download].into_iter().flatten() {
                    let f = |i: usize| {
                        if d.exponent == 0.0 {
                            1.0
                        } else {
                            (i as f64).powf(d.exponent)
                        }
                    };
                    comm += d.model.upper_bound()? * f(1).max(f(m));
                }
                return Some(compute + comm);
            }
            Some(wc) => self.compute_time.upper_bound()? * wc.max_factor(self.workers)?,
            None => self.compute_time.upper_bound()?,
        };
        Some(base * slowdown)
    }

    /// Each worker's clock under `worker_compute = "profile:…"` for run
    /// `run` of master seed `seed` (its power and outage segments drawn
    /// from the worker's own [`crate::seed::Stream::Availability`]), else
    /// `None`: the engines then draw `compute_time` × factor as before.
    pub fn worker_clocks(&self, seed: u64, run: u64) -> Option<Vec<WorkerClock>> {
        let Some(WorkerCompute::Profile(p)) = &self.worker_compute else {
            return None;
        };
        let tree = crate::SeedTree::new(seed);
        Some(
            (0..self.workers)
                .map(|w| {
                    p.clock(
                        w,
                        tree.rng(run, w as u64, crate::seed::Stream::Availability),
                    )
                })
                .collect(),
        )
    }

    /// Mean compute seconds of worker `w` whose model and factor are
    /// `model` and `factor` ([`ClusterConfig::worker_times`]): the model's
    /// mean × factor, and under `profile:` the profile's mean compute time
    /// (noise, power and outages included, no upload or download).
    pub fn mean_compute(&self, w: usize, model: &Delay, factor: f64) -> Option<f64> {
        let c = model.mean()? * factor;
        match &self.worker_compute {
            Some(WorkerCompute::Profile(p)) => p.mean_compute(w + 1, c),
            _ => Some(c),
        }
    }

    /// The mean seconds per gradient of each worker, τ_w, as the time
    /// bound ([`crate::theory::time_bound`]) takes them: the mean compute
    /// time (`compute_time`'s mean × straggler and per-worker factors; under
    /// `profile:` also the noise mean, and divided by the long-run power and
    /// up-time fraction) plus the mean download, upload and network delay.
    /// `None` when a mean is infinite (Pareto with shape ≤ 1) or under
    /// `replay:` (whose means are the recorded ones).
    pub fn mean_worker_times(&self, seed: u64, run: u64) -> Option<Vec<f64>> {
        let network = self.network_delay.mean()?;
        if let Some(WorkerCompute::Replay { .. }) = &self.worker_compute {
            return None;
        }
        let c = self.compute_time.mean();
        self.worker_times(seed, run)
            .into_iter()
            .enumerate()
            .map(|(w, (model, factor))| {
                let t = match &self.worker_compute {
                    Some(WorkerCompute::Profile(p)) => p.mean_time(w + 1, c? * factor)?,
                    _ => model.mean()? * factor,
                };
                Some(t + network)
            })
            .collect()
    }

    /// Compute-time multiplier of worker `w`.
    pub fn speed_factor(&self, w: usize) -> f64 {
        match self.stragglers {
            Some(s) if (w as f64) < (s.fraction * self.workers as f64).ceil() => s.slowdown,
            _ => 1.0,
        }
    }
}

/// The injected engine's settings: the staleness model τ_k and the history
/// of past versions it is served from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InjectedConfig {
    /// Staleness model τ_k.
    pub delay: Delay,
    /// Versions kept for injected staleness, and what happens beyond.
    #[serde(default)]
    pub history: HistoryConfig,
    /// Run run by run on the scalar reference engine, never on the batched
    /// SIMD path (`--scalar-engine`): other random numbers, the same law.
    /// Recorded so that a replay or a resume runs the same engine.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub scalar: bool,
}

impl Default for InjectedConfig {
    fn default() -> Self {
        Self {
            scalar: false,
            delay: Delay::constant(0),
            history: HistoryConfig::default(),
        }
    }
}

/// The virtual-time engine's settings: the simulated cluster.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct VirtualTimeConfig {
    /// Workers, compute and network times (virtual seconds), consistency.
    pub cluster: ClusterConfig,
}

/// The threads engine's settings: the cluster, how workers reach the
/// server, and what a worker's panic does.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct ThreadsConfig {
    /// Workers, compute and network times (real seconds, slept), consistency.
    pub cluster: ClusterConfig,
    /// Server back-end.
    #[serde(default)]
    pub backend: Backend,
    /// What happens when a worker panics.
    #[serde(default)]
    pub on_worker_failure: FailurePolicy,
}

/// The tasks engine's settings: the cluster and what a worker's panic does
/// (the server is always a tokio task fed by mpsc).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct TasksConfig {
    /// Workers, compute and network times (real seconds, slept), consistency.
    pub cluster: ClusterConfig,
    /// What happens when a worker panics.
    #[serde(default)]
    pub on_worker_failure: FailurePolicy,
}

/// The engine that drives a run, with exactly the settings that engine
/// uses: a delay model exists only for the injected engine, a worker count
/// only for the cluster engines, a back-end only for threads. Tagged by
/// `kind` in TOML.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum EngineConfig {
    /// Staleness sampled from a delay model and served from the history (eq. 2.1 exactly).
    Injected(InjectedConfig),
    /// Discrete-event simulation of the cluster in virtual time.
    VirtualTime(VirtualTimeConfig),
    /// Real OS threads as workers; staleness measured.
    Threads(ThreadsConfig),
    /// Tokio tasks as workers; staleness measured.
    Tasks(TasksConfig),
}

impl<'de> Deserialize<'de> for EngineConfig {
    /// Read with its keys named in errors (see `config::tagged`).
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        const KINDS: &[&str] = &["injected", "virtual-time", "threads", "tasks"];
        let (kind, fields) = super::tagged::split(d, KINDS)?;
        match kind.as_str() {
            "injected" => super::tagged::part(fields).map(EngineConfig::Injected),
            "virtual-time" => super::tagged::part(fields).map(EngineConfig::VirtualTime),
            "threads" => super::tagged::part(fields).map(EngineConfig::Threads),
            "tasks" => super::tagged::part(fields).map(EngineConfig::Tasks),
            other => Err(super::tagged::unknown(other, KINDS)),
        }
    }
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig::Injected(InjectedConfig::default())
    }
}

impl EngineConfig {
    /// The engine's default settings, keeping `cluster` for the cluster engines.
    pub fn new(kind: EngineKind, cluster: ClusterConfig) -> Self {
        match kind {
            EngineKind::Injected => EngineConfig::Injected(InjectedConfig::default()),
            EngineKind::VirtualTime => EngineConfig::VirtualTime(VirtualTimeConfig { cluster }),
            EngineKind::Threads => EngineConfig::Threads(ThreadsConfig {
                cluster,
                ..Default::default()
            }),
            EngineKind::Tasks => EngineConfig::Tasks(TasksConfig {
                cluster,
                ..Default::default()
            }),
        }
    }

    /// Which engine this is.
    pub fn kind(&self) -> EngineKind {
        match self {
            EngineConfig::Injected(_) => EngineKind::Injected,
            EngineConfig::VirtualTime(_) => EngineKind::VirtualTime,
            EngineConfig::Threads(_) => EngineKind::Threads,
            EngineConfig::Tasks(_) => EngineKind::Tasks,
        }
    }

    /// The injected engine's settings, if this is the injected engine.
    pub fn injected(&self) -> Option<&InjectedConfig> {
        match self {
            EngineConfig::Injected(i) => Some(i),
            _ => None,
        }
    }

    /// Mutable [`EngineConfig::injected`].
    pub fn injected_mut(&mut self) -> Option<&mut InjectedConfig> {
        match self {
            EngineConfig::Injected(i) => Some(i),
            _ => None,
        }
    }

    /// The cluster, for the virtual-time, threads and tasks engines.
    pub fn cluster(&self) -> Option<&ClusterConfig> {
        match self {
            EngineConfig::Injected(_) => None,
            EngineConfig::VirtualTime(c) => Some(&c.cluster),
            EngineConfig::Threads(c) => Some(&c.cluster),
            EngineConfig::Tasks(c) => Some(&c.cluster),
        }
    }

    /// Mutable [`EngineConfig::cluster`].
    pub fn cluster_mut(&mut self) -> Option<&mut ClusterConfig> {
        match self {
            EngineConfig::Injected(_) => None,
            EngineConfig::VirtualTime(c) => Some(&mut c.cluster),
            EngineConfig::Threads(c) => Some(&mut c.cluster),
            EngineConfig::Tasks(c) => Some(&mut c.cluster),
        }
    }

    /// The failure policy of the engines with real workers.
    pub fn on_worker_failure(&self) -> Option<FailurePolicy> {
        match self {
            EngineConfig::Threads(c) => Some(c.on_worker_failure),
            EngineConfig::Tasks(c) => Some(c.on_worker_failure),
            _ => None,
        }
    }

    /// Whether the engine measures wall-clock time (its runs must not share cores).
    pub fn is_wall_clock(&self) -> bool {
        matches!(self, EngineConfig::Threads(_) | EngineConfig::Tasks(_))
    }

    /// Checks the engine's own settings.
    pub fn validate(&self) -> Result<(), ConfigError> {
        match self {
            EngineConfig::Injected(i) => {
                i.delay.validate_steps("engine.delay")?;
                if i.history.capacity == 0 || i.history.capacity > MAX_HISTORY {
                    return Err(ConfigError::new(
                        "engine.history.capacity",
                        i.history.capacity,
                        format!("in [1, {MAX_HISTORY}]"),
                    ));
                }
                Ok(())
            }
            other => {
                if let (true, Some(wc @ WorkerCompute::Replay { .. })) = (
                    other.is_wall_clock(),
                    other.cluster().and_then(|c| c.worker_compute.as_ref()),
                ) {
                    return Err(ConfigError::new(
                        "engine.cluster.worker_compute",
                        wc,
                        format!("`models:`, `linear:` or `draw:` on the {} engine (`replay:` replays recorded compute times in virtual time only)", other.kind()),
                    ));
                }
                other.cluster().map_or(Ok(()), ClusterConfig::validate)
            }
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

/// Each worker's own compute time (`engine.cluster.worker_compute`,
/// `--worker-compute`): on top of `compute_time` and the stragglers, so
/// workers may differ.
///
/// | syntax | worker i computes for |
/// |---|---|
/// | `models:M0;M1;…` | a draw of its own model Mi (one per worker, `;`-separated; in config.toml also an array of strings) |
/// | `linear:A,B` | a draw of `compute_time` × (A + B·i): `--compute-time 1 --worker-compute linear:1,1` makes worker i take i+1 |
/// | `draw:MODEL` | a draw of `compute_time` × f_i, f_i drawn once per run from MODEL (seeded from the run's seed tree) |
/// | `replay:FILE` | virtual-time only: the compute times worker i recorded in a `pushes.csv`, in order, cycled |
/// | `profile:A+B*i^P;…` | the papers' profile ([`crate::profile`]): a draw of `compute_time` × (A + B·i^P + ξ_i), i = w + 1, with per-gradient noise ξ_i, time-varying power, outages, upload and download times |
///
/// The straggler factor multiplies all of them.
#[derive(Debug, Clone, PartialEq)]
pub enum WorkerCompute {
    /// One compute-time model per worker.
    Models(Vec<Delay>),
    /// `compute_time` × (a + b·i).
    Linear {
        /// Factor of worker 0.
        a: f64,
        /// Added per worker index.
        b: f64,
    },
    /// `compute_time` × f_i, f_i drawn once per run from the model.
    Draw(Delay),
    /// The papers' heterogeneity profile ([`ComputeProfile`]).
    Profile(Box<ComputeProfile>),
    /// Recorded compute times per worker, replayed in order.
    Replay {
        /// The `pushes.csv` read.
        path: String,
        /// Compute seconds per worker.
        times: Arc<[Arc<[f64]>]>,
    },
}

/// Largest per-worker factor (`linear:`): keeps a virtual clock finite.
pub const MAX_WORKER_FACTOR: f64 = 1e9;

impl fmt::Display for WorkerCompute {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WorkerCompute::Models(ms) => {
                f.write_str("models:")?;
                for (i, m) in ms.iter().enumerate() {
                    if i > 0 {
                        f.write_str(";")?;
                    }
                    write!(f, "{m}")?;
                }
                Ok(())
            }
            WorkerCompute::Linear { a, b } => write!(f, "linear:{a},{b}"),
            WorkerCompute::Draw(d) => write!(f, "draw:{d}"),
            WorkerCompute::Replay { path, .. } => write!(f, "replay:{path}"),
            WorkerCompute::Profile(p) => write!(f, "{p}"),
        }
    }
}

impl FromStr for WorkerCompute {
    type Err = ConfigError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        const FIELD: &str = "engine.cluster.worker_compute";
        let bad = |why: String| ConfigError::new(FIELD, s, why);
        let s = s.trim();
        let (kind, args) = s.split_once(':').ok_or_else(|| bad(ALLOWED.into()))?;
        match kind {
            "models" => {
                let ms = args
                    .split(';')
                    .enumerate()
                    .map(|(i, m)| {
                        m.trim()
                            .parse::<Delay>()
                            .map_err(|e| bad(format!("model of worker {i}: {e}")))
                    })
                    .collect::<Result<Vec<_>, _>>()?;
                Ok(WorkerCompute::Models(ms))
            }
            "linear" => {
                let (a, b) = args
                    .split_once(',')
                    .ok_or_else(|| bad("`linear:A,B` (worker i: A + B·i)".into()))?;
                let num = |x: &str, name: &str| {
                    x.trim()
                        .parse::<f64>()
                        .map_err(|_| bad(format!("{name} `{x}` is not a number")))
                };
                Ok(WorkerCompute::Linear {
                    a: num(a, "A")?,
                    b: num(b, "B")?,
                })
            }
            "draw" => Ok(WorkerCompute::Draw(
                args.parse::<Delay>()
                    .map_err(|e| bad(format!("distribution: {e}")))?,
            )),
            "replay" => {
                let body =
                    crate::fs::read_regular(std::path::Path::new(args), crate::fs::Links::Follow)
                        .map_err(|e| {
                        bad(format!(
                            "a readable push log written by --record-pushes (`{args}`: {e})"
                        ))
                    })?;
                let log = crate::pushes::parse_push_log(&body).map_err(|e| {
                    bad(format!(
                        "a push log written by --record-pushes (`{args}`: {e})"
                    ))
                })?;
                Ok(WorkerCompute::Replay {
                    path: crate::fs::absolute(args),
                    times: log.compute.into(),
                })
            }
            "profile" => Ok(WorkerCompute::Profile(Box::new(args.parse()?))),
            _ => Err(bad(ALLOWED.into())),
        }
    }
}

/// The largest A + B·i^P of a profile, `None` when its times are unbounded
/// (noise, power, outages).
fn wc_max_factor(p: &ComputeProfile, workers: usize) -> Option<f64> {
    (p.noise.is_none() && p.power.is_none() && p.outage.is_none())
        .then(|| p.base(1).max(p.base(workers.max(1))))
}

/// The forms of `--worker-compute`, for its errors.
const ALLOWED: &str =
    "`models:M0;M1;…`, `linear:A,B`, `draw:MODEL`, `replay:FILE` or `profile:A+B*i^P;…`";

impl Serialize for WorkerCompute {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for WorkerCompute {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            One(String),
            List(Vec<String>),
        }
        match Raw::deserialize(d)? {
            Raw::One(s) => s.parse().map_err(serde::de::Error::custom),
            Raw::List(ms) => format!("models:{}", ms.join(";"))
                .parse()
                .map_err(serde::de::Error::custom),
        }
    }
}

impl WorkerCompute {
    /// Checks the rule against `workers`, naming the field.
    pub fn validate(&self, workers: usize) -> Result<(), ConfigError> {
        const FIELD: &str = "engine.cluster.worker_compute";
        match self {
            WorkerCompute::Models(ms) => {
                if ms.len() != workers {
                    return Err(ConfigError::new(
                        FIELD,
                        self,
                        format!(
                            "one model per worker: {} models for {workers} workers",
                            ms.len()
                        ),
                    ));
                }
                for (i, m) in ms.iter().enumerate() {
                    m.validate_seconds(&format!("{FIELD} (worker {i})"))?;
                }
            }
            WorkerCompute::Linear { a, b } => {
                let last = a + b * (workers.saturating_sub(1)) as f64;
                for (what, v) in [
                    ("A (worker 0)", *a),
                    ("A + B·(M−1) (the last worker)", last),
                ] {
                    if !(v.is_finite() && (0.0..=MAX_WORKER_FACTOR).contains(&v)) {
                        return Err(ConfigError::new(
                            FIELD,
                            self,
                            format!("factors in [0, {MAX_WORKER_FACTOR:e}]; {what} is {v}"),
                        ));
                    }
                }
            }
            WorkerCompute::Draw(d) => {
                d.validate_scale(&format!("{FIELD} (distribution)"), MAX_WORKER_FACTOR, "")?
            }
            WorkerCompute::Profile(p) => p.validate(workers, MAX_WORKER_FACTOR)?,
            WorkerCompute::Replay { times, .. } => {
                if times.len() < workers || times[..workers].iter().any(|t| t.is_empty()) {
                    return Err(ConfigError::new(
                        FIELD,
                        self,
                        format!("a push log with compute times for each of the {workers} workers (it has {} workers with pushes)", times.iter().filter(|t| !t.is_empty()).count()),
                    ));
                }
            }
        }
        Ok(())
    }

    /// The factor each worker's `compute_time` draws are multiplied by
    /// (1 for `models:` and `replay:`, which replace `compute_time`, and for
    /// `profile:`, whose [`crate::profile::WorkerClock`] applies it), for
    /// run `run` of master seed `seed`.
    pub fn factors(&self, workers: usize, seed: u64, run: u64) -> Vec<f64> {
        match self {
            WorkerCompute::Linear { a, b } => (0..workers).map(|i| a + b * i as f64).collect(),
            WorkerCompute::Draw(d) => {
                use crate::delay::DelayModel;
                let tree = crate::SeedTree::new(seed);
                (0..workers)
                    .map(|w| {
                        d.sample(&mut tree.rng(run, w as u64, crate::seed::Stream::Engine))
                            .max(0.0)
                    })
                    .collect()
            }
            WorkerCompute::Models(_) | WorkerCompute::Replay { .. } | WorkerCompute::Profile(_) => {
                vec![1.0; workers]
            }
        }
    }

    /// The largest factor any worker can get, `None` when unbounded.
    pub fn max_factor(&self, workers: usize) -> Option<f64> {
        match self {
            WorkerCompute::Linear { a, b } => Some(a.max(a + b * workers.saturating_sub(1) as f64)),
            WorkerCompute::Draw(d) => d.upper_bound(),
            WorkerCompute::Models(_) | WorkerCompute::Replay { .. } => Some(1.0),
            WorkerCompute::Profile(p) => {
                (p.noise.is_none() && p.power.is_none() && p.outage.is_none())
                    .then(|| p.base(1).max(p.base(workers.max(1))))
            }
        }
    }
}
