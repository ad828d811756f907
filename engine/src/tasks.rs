//! The tokio-tasks engine: one task per worker (thousands are fine) and a
//! server task fed by tokio mpsc, on a small multi-threaded runtime;
//! staleness is measured, delays are timer sleeps.

use crate::wall_clock::{finish, prepare};
use crate::EngineError;
use psim_common::{EngineConfig, FailurePolicy, Objective, RunConfig, RunResult};
use psim_server::backend::{StopReason, TaskServer};
use psim_worker::runner::{spawn_task_workers, FailureHook};
use std::sync::atomic::Ordering;
use std::sync::Arc;

/// Runs run `run` of `cfg` with one tokio task per worker.
pub fn run_tasks<O: Objective + 'static>(
    cfg: &RunConfig,
    objective: Arc<O>,
    run: u64,
) -> Result<RunResult, EngineError> {
    let EngineConfig::Tasks(engine) = &cfg.engine else {
        return Err(EngineError::WrongEngine {
            engine: "tasks",
            configured: cfg.engine_kind(),
        });
    };
    let workers = engine.cluster.workers;
    let _span = tracing::info_span!("run", engine = "tasks", run, workers).entered();
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads)
        .enable_time()
        .build()
        .map_err(|e| EngineError::Runtime(e.to_string()))?;
    let prepared = prepare(cfg, &objective, run);
    let stop_flag = prepared.plan.stop.clone();
    let policy = engine.on_worker_failure;
    let (core, reports) = runtime.block_on(async move {
        let (server, clients) = TaskServer::spawn(prepared.core);
        let halt = server.halter();
        let hook: FailureHook = Arc::new(move |worker| {
            if policy == FailurePolicy::Stop {
                stop_flag.store(true, Ordering::Relaxed);
                halt(StopReason::WorkerFailed { worker });
            }
        });
        let reports =
            spawn_task_workers(clients, prepared.setups, objective, &prepared.plan, hook).await;
        (server.join().await, reports)
    });
    finish(cfg, run, core, reports, prepared.started)
}
