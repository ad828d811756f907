//! Shared vocabulary of psim: validated configuration, delay models, objectives,
//! seeding and the result type every engine produces.
//!
//! Everything here is engine-agnostic: the injected-staleness, virtual-time,
//! threads and tokio engines all consume the same [`config::RunConfig`] and
//! produce the same [`result::RunResult`], so reports and tests work on all of
//! them. Nothing in this crate spawns threads or does I/O beyond reading a
//! delay trace file.

pub mod config;
pub mod delay;
pub mod error;
pub mod fs;
pub mod landscape;
pub mod memory;
pub mod mlp;
pub mod num;
pub mod objective;
pub mod pca;
pub mod profile;
pub mod pushes;
pub mod quadratic;
pub mod result;
pub mod seed;
pub mod stats;
pub mod theory;
pub mod update;

pub use config::{
    validate_name, Backend, ClusterConfig, Consistency, DataDistribution, EngineConfig, EngineKind,
    Experiment, FailurePolicy, Grid, GridAxes, HistoryConfig, HistoryPolicy, InitialPoint,
    InjectedConfig, MlpActivation, MlpConfig, ObjectiveConfig, PcaConfig, RunConfig, Setting,
    StaleWork, Stragglers, TasksConfig, ThreadsConfig, Tolerance, VirtualTimeConfig, WorkerCompute,
};
pub use delay::{Delay, DelayModel};
pub use error::{ConfigError, DelayParseError};
pub use mlp::{Dataset, DatasetError, Mlp};
pub use objective::{AnyObjective, Objective};
pub use pca::StreamingPca;
pub use result::{
    Outcome, RunResult, ServerCounters, StalenessHistogram, StalenessSummary, StalenessTally,
    WorkerStats,
};
pub use seed::{PsimRng, SeedTree};
pub use update::{RuleKind, Schedule};
