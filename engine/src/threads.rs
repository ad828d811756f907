//! The OS-threads engine: one thread per worker against a real concurrent
//! server (a lock or a server thread fed by channels); staleness is
//! measured, not drawn.

use crate::wall_clock::{finish, prepare};
use crate::EngineError;
use psim_common::{
    Backend, ConfigError, EngineConfig, FailurePolicy, Objective, RunConfig, RunResult,
};
use psim_server::backend::{ChannelServer, LockServer, StopReason};
use psim_worker::runner::{spawn_thread_workers, FailureHook};
use std::sync::atomic::Ordering;
use std::sync::Arc;

/// Most OS threads one run may start; beyond, use the tasks engine.
pub const MAX_THREADS: usize = 4096;

/// Runs run `run` of `cfg` with one OS thread per worker.
pub fn run_threads<O: Objective + 'static>(
    cfg: &RunConfig,
    objective: Arc<O>,
    run: u64,
) -> Result<RunResult, EngineError> {
    let EngineConfig::Threads(engine) = &cfg.engine else {
        return Err(EngineError::WrongEngine {
            engine: "threads",
            configured: cfg.engine_kind(),
        });
    };
    let workers = engine.cluster.workers;
    if workers > MAX_THREADS {
        return Err(ConfigError::new(
            "engine.cluster.workers",
            workers,
            format!("≤ {MAX_THREADS} for the threads engine (use `tasks` for more)"),
        )
        .into());
    }
    let _span = tracing::info_span!("run", engine = "threads", run, workers).entered();
    let prepared = prepare(cfg, &objective, run);
    let stop_flag = prepared.plan.stop.clone();
    let policy = engine.on_worker_failure;
    let (core, reports) = match engine.backend {
        Backend::Lock => {
            let server = Arc::new(LockServer::new(prepared.core));
            let hook: FailureHook = {
                let server = server.clone();
                Arc::new(move |worker| {
                    if policy == FailurePolicy::Stop {
                        stop_flag.store(true, Ordering::Relaxed);
                        server.halt(StopReason::WorkerFailed { worker });
                    }
                })
            };
            let clients = (0..workers).map(|w| server.client(w)).collect();
            let reports =
                spawn_thread_workers(clients, prepared.setups, &*objective, &prepared.plan, hook);
            let server = Arc::try_unwrap(server)
                .unwrap_or_else(|_| unreachable!("every client and hook has ended"));
            (server.into_core(), reports)
        }
        Backend::Channel => {
            let (server, clients) = ChannelServer::spawn(prepared.core);
            let halt = server.halter();
            let hook: FailureHook = Arc::new(move |worker| {
                if policy == FailurePolicy::Stop {
                    stop_flag.store(true, Ordering::Relaxed);
                    halt(StopReason::WorkerFailed { worker });
                }
            });
            let reports =
                spawn_thread_workers(clients, prepared.setups, &*objective, &prepared.plan, hook);
            (server.join(), reports)
        }
    };
    finish(cfg, run, core, reports, prepared.started)
}
