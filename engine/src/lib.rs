//! Engines: what drives a whole run. Every engine takes a validated
//! [`RunConfig`], an objective and a run index, and produces the same
//! [`RunResult`]; [`run`] picks the engine the configuration names.

pub mod batched;
pub mod injected;
pub mod record;
pub mod tasks;
pub mod threads;
pub mod virtual_time;
pub mod wall_clock;

pub use batched::{run_batched, run_runs};
pub use injected::{run_injected, run_injected_from};
pub use tasks::run_tasks;
pub use threads::run_threads;
pub use virtual_time::run_virtual_time;
pub use wall_clock::{throughput, time_to_target};

use psim_common::{EngineKind, Objective, RunConfig, RunResult};
use thiserror::Error;

/// Why an engine could not run a configuration.
#[derive(Debug, Error)]
pub enum EngineError {
    /// The configuration does not suit the engine.
    #[error("{0}")]
    Config(#[from] psim_common::ConfigError),
    /// A worker failed (panicked) and the run was configured to stop.
    #[error("worker {worker} failed: {message}")]
    WorkerFailed { worker: usize, message: String },
    /// A run broke an accounting invariant (a bug, never bad input).
    #[error("invariant violated: {0}")]
    Invariant(String),
    /// The async runtime could not be built.
    #[error("cannot start the tokio runtime: {0}")]
    Runtime(String),
}

/// Runs run `run` of `cfg` on the engine `cfg.engine` names.
pub fn run<O: Objective + Clone + 'static>(
    cfg: &RunConfig,
    objective: &O,
    run: u64,
) -> Result<RunResult, EngineError> {
    match cfg.engine {
        EngineKind::Injected => Ok(run_injected(cfg, objective, run)),
        EngineKind::VirtualTime => {
            virtual_time::check_memory(cfg.cluster.workers, objective.dim())?;
            Ok(run_virtual_time(cfg, objective, run))
        }
        EngineKind::Threads => run_threads(cfg, std::sync::Arc::new(objective.clone()), run),
        EngineKind::Tasks => run_tasks(cfg, std::sync::Arc::new(objective.clone()), run),
    }
}
