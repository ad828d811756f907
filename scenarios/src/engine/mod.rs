//! Engines: what drives a whole run. Every engine takes a validated
//! [`RunConfig`], an objective and a run index, and produces the same
//! [`RunResult`]; [`run`] picks the engine the configuration names.

pub mod injected;
pub mod virtual_time;

pub use injected::{run_injected, run_injected_from};
pub use virtual_time::run_virtual_time;

use psim_common::{EngineKind, Objective, RunConfig, RunResult};
use thiserror::Error;

/// Why an engine could not run a configuration.
#[derive(Debug, Error)]
pub enum EngineError {
    /// The configured engine is not available in this build.
    #[error("engine `{0:?}` is not available yet; use `injected` or `virtual-time`")]
    Unavailable(EngineKind),
    /// The configuration does not suit the engine.
    #[error("{0}")]
    Config(#[from] psim_common::ConfigError),
    /// A worker failed (panicked) and the run was configured to stop.
    #[error("worker {worker} failed: {message}")]
    WorkerFailed { worker: usize, message: String },
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
        other => Err(EngineError::Unavailable(other)),
    }
}
