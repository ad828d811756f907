//! Engines: what drives a whole run. Every engine takes a validated
//! [`RunConfig`], an objective and a run index, and produces the same
//! [`RunResult`]; [`run`] picks the engine the configuration names.

pub mod batched;
pub mod cancel;
pub mod event_queue;
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

use psim_common::{ConfigError, EngineConfig, EngineKind, Objective, RunConfig, RunResult};
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
    /// An engine was handed another engine's configuration (a programming error).
    #[error("the {engine} engine cannot run a {configured} configuration")]
    WrongEngine {
        /// The engine called.
        engine: &'static str,
        /// The engine the configuration names.
        configured: EngineKind,
    },
    /// A virtual clock left the finite range (a heavy-tailed duration drew +∞).
    #[error("run {run}: the virtual clock overflowed to {seconds} s (a compute-time or network-delay draw was not finite); use a lighter-tailed model")]
    ClockOverflow { run: u64, seconds: f64 },
    /// The async runtime could not be built.
    #[error("cannot start the tokio runtime: {0}")]
    Runtime(String),
}

/// Checks what the engine `cfg.engine` needs beyond [`RunConfig::validate`]
/// for a problem of dimension `dim`: the memory of its workers, the thread
/// count, the injected sleeps. Cheap; call it before creating any output.
pub fn check(cfg: &RunConfig, dim: usize) -> Result<(), ConfigError> {
    let cluster = match &cfg.engine {
        EngineConfig::Injected(_) => return Ok(()),
        other => other.cluster().expect("a cluster engine has a cluster"),
    };
    let workers = cluster.workers;
    match cfg.engine_kind() {
        EngineKind::Injected => Ok(()),
        EngineKind::VirtualTime => virtual_time::check_memory(workers, dim),
        EngineKind::Threads => {
            if workers > threads::MAX_THREADS {
                return Err(ConfigError::new(
                    "engine.cluster.workers",
                    workers,
                    format!(
                        "≤ {} for the threads engine (use `tasks` for more)",
                        threads::MAX_THREADS
                    ),
                ));
            }
            wall_clock::check_sleeps(cluster)
        }
        EngineKind::Tasks => {
            tasks::check_memory(workers, dim)?;
            wall_clock::check_sleeps(cluster)
        }
    }
}

/// Checks a finished run's accounting (received = applied + dropped) and
/// its clock, in every build: a violation is an error for that run, never a
/// panic. Once per run, outside the hot loop.
pub fn verify(result: RunResult) -> Result<RunResult, EngineError> {
    result.check().map_err(EngineError::Invariant)?;
    if let Some(seconds) = result.virtual_seconds.filter(|s| !s.is_finite()) {
        return Err(EngineError::ClockOverflow {
            run: result.run,
            seconds,
        });
    }
    Ok(result)
}

/// Runs run `run` of `cfg` on the engine `cfg.engine` names, checking the
/// engine's limits first and the run's accounting after ([`check`],
/// [`verify`]).
pub fn run<O: Objective + Clone + 'static>(
    cfg: &RunConfig,
    objective: &O,
    run: u64,
) -> Result<RunResult, EngineError> {
    check(cfg, objective.dim())?;
    let result = match &cfg.engine {
        EngineConfig::Injected(_) => run_injected(cfg, objective, run),
        EngineConfig::VirtualTime(_) => run_virtual_time(cfg, objective, run),
        EngineConfig::Threads(_) => run_threads(cfg, std::sync::Arc::new(objective.clone()), run)?,
        EngineConfig::Tasks(_) => run_tasks(cfg, std::sync::Arc::new(objective.clone()), run)?,
    };
    verify(result)
}

#[cfg(test)]
mod tests {
    use super::*;
    use psim_common::{AnyObjective, ClusterConfig, ServerCounters};

    #[test]
    fn a_broken_accounting_is_an_error_of_the_run_in_every_build() {
        let cfg = RunConfig {
            steps: 50,
            runs: 1,
            ..RunConfig::default()
        };
        let o = AnyObjective::build(&cfg.objective).unwrap();
        let mut r = run(&cfg, &o, 0).unwrap();
        r.counters = ServerCounters {
            received: 50,
            applied: 49,
            ..r.counters
        };
        let e = verify(r).unwrap_err().to_string();
        assert!(e.contains("invariant") && e.contains("received 50"), "{e}");
        let vt = RunConfig {
            engine: EngineConfig::new(EngineKind::VirtualTime, ClusterConfig::default()),
            ..cfg
        };
        let mut r = run_virtual_time(&vt, &o, 0);
        r.virtual_seconds = Some(f64::INFINITY);
        assert!(verify(r).unwrap_err().to_string().contains("overflowed"));
    }

    #[test]
    fn wall_clock_engines_refuse_bounded_sleeps_beyond_the_cap_and_too_many_tasks() {
        let mut cfg = RunConfig {
            engine: EngineConfig::new(EngineKind::Threads, ClusterConfig::default()),
            ..RunConfig::default()
        };
        cfg.cluster_mut().unwrap().compute_time = "uniform:0..2".parse().unwrap();
        let e = check(&cfg, 4).unwrap_err().to_string();
        assert!(
            e.contains("cluster.compute_time`") && e.contains("1 s"),
            "{e}"
        );
        cfg.cluster_mut().unwrap().compute_time = "0.5".parse().unwrap();
        cfg.cluster_mut().unwrap().network_delay = "0.6".parse().unwrap();
        let e = check(&cfg, 4).unwrap_err().to_string();
        assert!(e.contains("cluster.network_delay`"), "{e}");
        cfg.cluster_mut().unwrap().network_delay = "exp:0.01".parse().unwrap();
        check(&cfg, 4).unwrap();
        let cluster = ClusterConfig {
            workers: 100_000,
            ..cfg.cluster().unwrap().clone()
        };
        cfg.engine = EngineConfig::new(EngineKind::Tasks, cluster);
        let e = check(&cfg, 4).unwrap_err().to_string();
        assert!(
            e.contains("cluster.workers`") && e.contains("at most 43648"),
            "{e}"
        );
        cfg.engine = EngineConfig::default();
        check(&cfg, 4).unwrap();
    }
}
