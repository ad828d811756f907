//! The one table of user settings: every value a user can give, on the
//! command line or in a config file, with its flag, its config key and the
//! engines that have it. Commands and scenarios declare which settings they
//! accept; anything outside that set is refused with its name, so no flag or
//! key is ever silently ignored.

use super::{EngineKind, Experiment};
use std::fmt;

/// A setting a user can give.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Setting {
    /// Momentum μ (`base.momentum`, `grid.momentum`).
    Momentum,
    /// Step size η (`base.step_size`, `grid.step_size`).
    StepSize,
    /// Gradients per run.
    Steps,
    /// Independent runs per point.
    Runs,
    /// Master seed.
    Seed,
    /// Trace cadence.
    RecordEvery,
    /// Tail window of the reported error.
    TailFraction,
    /// Divergence threshold.
    DivergenceNorm,
    /// Early stop at an error.
    TargetError,
    /// Keep every run's final parameters.
    RecordParams,
    /// The server's update rule.
    Rule,
    /// The step-size schedule.
    Schedule,
    /// The problem (objective and its data: spectrum, covariance, data, start).
    Objective,
    /// Which engine runs.
    Engine,
    /// Injected engine: the delay model (`grid.delay` too).
    Delay,
    /// Injected engine: the history capacity.
    History,
    /// Injected engine: the history policy.
    HistoryPolicy,
    /// Cluster engines: the worker count (`grid.workers` too).
    Workers,
    /// Cluster engines: the compute-time model (`grid.compute_time` too).
    ComputeTime,
    /// Cluster engines: the network delay.
    NetworkDelay,
    /// Cluster engines: the consistency model (`grid.consistency` too).
    Consistency,
    /// Cluster engines: slow workers.
    Stragglers,
    /// Cluster engines: each worker's own compute time.
    WorkerCompute,
    /// Cluster engines: write every applied push to `pushes.csv`.
    RecordPushes,
    /// Threads engine: the server back-end.
    Backend,
    /// Threads and tasks engines: what a worker's panic does.
    OnWorkerFailure,
    /// The tradeoff analysis's tolerance factor.
    Tolerance,
}

const CLUSTER: &[EngineKind] = &[
    EngineKind::VirtualTime,
    EngineKind::Threads,
    EngineKind::Tasks,
];
const ALL_ENGINES: &[EngineKind] = &[
    EngineKind::Injected,
    EngineKind::VirtualTime,
    EngineKind::Threads,
    EngineKind::Tasks,
];

impl Setting {
    /// Every setting, in table order.
    pub const ALL: [Setting; 27] = [
        Setting::Momentum,
        Setting::StepSize,
        Setting::Steps,
        Setting::Runs,
        Setting::Seed,
        Setting::RecordEvery,
        Setting::TailFraction,
        Setting::DivergenceNorm,
        Setting::TargetError,
        Setting::RecordParams,
        Setting::Rule,
        Setting::Schedule,
        Setting::Objective,
        Setting::Engine,
        Setting::Delay,
        Setting::History,
        Setting::HistoryPolicy,
        Setting::Workers,
        Setting::ComputeTime,
        Setting::NetworkDelay,
        Setting::Consistency,
        Setting::Stragglers,
        Setting::WorkerCompute,
        Setting::RecordPushes,
        Setting::Backend,
        Setting::OnWorkerFailure,
        Setting::Tolerance,
    ];

    /// The config-file key (the base value; grids live under `grid.`).
    pub fn key(self) -> &'static str {
        match self {
            Setting::Momentum => "base.momentum",
            Setting::StepSize => "base.step_size",
            Setting::Steps => "base.steps",
            Setting::Runs => "base.runs",
            Setting::Seed => "base.seed",
            Setting::RecordEvery => "base.record_every",
            Setting::TailFraction => "base.tail_fraction",
            Setting::DivergenceNorm => "base.divergence_norm",
            Setting::TargetError => "base.target_error",
            Setting::RecordParams => "base.record_params",
            Setting::Rule => "base.rule",
            Setting::Schedule => "base.schedule",
            Setting::Objective => "base.objective",
            Setting::Engine => "base.engine.kind",
            Setting::Delay => "base.engine.delay",
            Setting::History => "base.engine.history.capacity",
            Setting::HistoryPolicy => "base.engine.history.policy",
            Setting::Workers => "base.engine.cluster.workers",
            Setting::ComputeTime => "base.engine.cluster.compute_time",
            Setting::NetworkDelay => "base.engine.cluster.network_delay",
            Setting::Consistency => "base.engine.cluster.consistency",
            Setting::Stragglers => "base.engine.cluster.stragglers",
            Setting::WorkerCompute => "base.engine.cluster.worker_compute",
            Setting::RecordPushes => "base.engine.cluster.record_pushes",
            Setting::Backend => "base.engine.backend",
            Setting::OnWorkerFailure => "base.engine.on_worker_failure",
            Setting::Tolerance => "tradeoff.factor",
        }
    }

    /// The engines that have this setting (every engine for the engine-agnostic ones).
    pub fn engines(self) -> &'static [EngineKind] {
        match self {
            Setting::Delay | Setting::History | Setting::HistoryPolicy => &[EngineKind::Injected],
            Setting::Workers
            | Setting::ComputeTime
            | Setting::NetworkDelay
            | Setting::Consistency
            | Setting::Stragglers
            | Setting::WorkerCompute
            | Setting::RecordPushes => CLUSTER,
            Setting::Backend => &[EngineKind::Threads],
            Setting::OnWorkerFailure => &[EngineKind::Threads, EngineKind::Tasks],
            _ => ALL_ENGINES,
        }
    }

    /// This setting's value in `e` (base and grid), as text for comparison:
    /// a scenario refuses a config file whose value differs from its
    /// defaults for a setting it does not accept.
    pub fn value(self, e: &Experiment) -> String {
        let b = &e.base;
        let inj = b.injected();
        let cl = b.cluster();
        match self {
            Setting::Momentum => format!("{:?} {:?}", b.momentum, e.grid.momentum),
            Setting::StepSize => format!("{:?} {:?}", b.step_size, e.grid.step_size),
            Setting::Steps => b.steps.to_string(),
            Setting::Runs => b.runs.to_string(),
            Setting::Seed => b.seed.to_string(),
            Setting::RecordEvery => b.record_every.to_string(),
            Setting::TailFraction => format!("{:?}", b.tail_fraction),
            Setting::DivergenceNorm => format!("{:?}", b.divergence_norm),
            Setting::TargetError => format!("{:?}", b.target_error),
            Setting::RecordParams => b.record_params.to_string(),
            Setting::Rule => b.rule.to_string(),
            Setting::Schedule => b.schedule.to_string(),
            Setting::Objective => format!("{:?}", b.objective),
            Setting::Engine => b.engine_kind().to_string(),
            Setting::Delay => format!("{:?} {:?}", inj.map(|i| &i.delay), e.grid.delay),
            Setting::History => format!("{:?}", inj.map(|i| i.history.capacity)),
            Setting::HistoryPolicy => format!("{:?}", inj.map(|i| i.history.policy)),
            Setting::Workers => format!("{:?} {:?}", cl.map(|c| c.workers), e.grid.workers),
            Setting::ComputeTime => {
                format!(
                    "{:?} {:?}",
                    cl.map(|c| &c.compute_time),
                    e.grid.compute_time
                )
            }
            Setting::NetworkDelay => format!("{:?}", cl.map(|c| &c.network_delay)),
            Setting::Consistency => {
                format!("{:?} {:?}", cl.map(|c| c.consistency), e.grid.consistency)
            }
            Setting::Stragglers => format!("{:?}", cl.map(|c| c.stragglers)),
            Setting::WorkerCompute => format!(
                "{:?}",
                cl.map(|c| c.worker_compute.as_ref().map(|w| w.to_string()))
            ),
            Setting::RecordPushes => format!("{:?}", cl.map(|c| c.record_pushes)),
            Setting::Backend => format!(
                "{:?}",
                match &b.engine {
                    super::EngineConfig::Threads(t) => Some(t.backend),
                    _ => None,
                }
            ),
            Setting::OnWorkerFailure => format!("{:?}", b.engine.on_worker_failure()),
            Setting::Tolerance => format!("{:?}", e.tradeoff),
        }
    }
}

impl fmt::Display for Setting {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.key())
    }
}

/// Lists settings' keys, for error messages.
pub fn list(settings: &[Setting]) -> String {
    settings
        .iter()
        .map(|s| s.key().trim_start_matches("base."))
        .collect::<Vec<_>>()
        .join(", ")
}
