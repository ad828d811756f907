//! The tokio-tasks engine: one task per worker (thousands are fine) and a
//! server task fed by tokio mpsc, on a small multi-threaded runtime;
//! staleness is measured, delays are timer sleeps.

use crate::wall_clock::{finish, prepare};
use crate::EngineError;
use psim_common::{ConfigError, EngineConfig, FailurePolicy, Objective, RunConfig, RunResult};
use psim_server::backend::{StopReason, TaskServer};
use psim_worker::runner::{spawn_task_workers, FailureHook};
use std::sync::atomic::Ordering;
use std::sync::Arc;

/// Bytes one task worker holds besides its parameter-sized buffers,
/// measured (peak resident set of `--engine tasks` on d = 4 at 10⁴–10⁵
/// workers, ≈ 88–94 KB per worker, rounded up): its four histograms of
/// latencies and staleness, its task, its channels and its report.
pub const BYTES_PER_TASK_WORKER: usize = 96 << 10;

/// Bytes one task worker holds for a problem of dimension `dim`: the
/// fixed part plus its parameter copy, gradient and push buffers.
pub fn bytes_per_worker(dim: usize) -> usize {
    BYTES_PER_TASK_WORKER + 3 * dim * std::mem::size_of::<f64>()
}

/// Most bytes the task workers of one run may take (4 GiB), as for the
/// virtual-time engine's workers.
pub const MAX_TASK_WORKER_BYTES: usize = 4 << 30;

/// Checks that `workers` task workers of dimension `dim` fit in
/// [`MAX_TASK_WORKER_BYTES`], naming `cluster.workers` and the largest
/// count that fits.
pub fn check_memory(workers: usize, dim: usize) -> Result<(), ConfigError> {
    let per = bytes_per_worker(dim);
    let max = MAX_TASK_WORKER_BYTES / per;
    if workers > max {
        return Err(ConfigError::new(
            "engine.cluster.workers",
            workers,
            format!(
                "at most {max} for the tasks engine on a problem of dimension {dim} ({} KiB per worker, {} GiB in all; the virtual-time engine simulates more)",
                per >> 10,
                MAX_TASK_WORKER_BYTES >> 30
            ),
        ));
    }
    Ok(())
}

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
    check_memory(workers, objective.dim())?;
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
