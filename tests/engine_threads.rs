//! The OS-threads and tokio-tasks engines against a real concurrent server:
//! measured staleness under ASP/SSP/BSP, counters, stopping, worker panics
//! and heavy-tailed delays. Sleeps are short (1–2 ms) and runs are a few
//! dozen steps per worker, so each test takes well under a second or two.

use psim_common::{
    Backend, ClusterConfig, Consistency, Delay, EngineConfig, EngineKind, FailurePolicy, Objective,
    PcaConfig, PsimRng, RunConfig, RunResult, StreamingPca,
};
use psim_engine::{self as engine, EngineError};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// Timing-sensitive tests run one at a time: 32 sleeping threads from one
/// test must not share 2 cores with another test's 32.
static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

/// Sets the threads engine's back-end (the tasks engine has none: its server is a task).
fn set_backend(cfg: &mut RunConfig, backend: Backend) {
    if let EngineConfig::Threads(t) = &mut cfg.engine {
        t.backend = backend;
    }
}

fn set_failure(cfg: &mut RunConfig, policy: FailurePolicy) {
    match &mut cfg.engine {
        EngineConfig::Threads(t) => t.on_worker_failure = policy,
        EngineConfig::Tasks(t) => t.on_worker_failure = policy,
        _ => {}
    }
}

fn pca() -> StreamingPca {
    StreamingPca::new(&PcaConfig::default()).unwrap()
}

fn cluster_cfg(engine: EngineKind, workers: usize, consistency: &str, steps: u64) -> RunConfig {
    let mut cfg = RunConfig {
        steps,
        runs: 1,
        record_every: 10,
        engine: EngineConfig::new(engine, ClusterConfig::default()),
        ..RunConfig::default()
    };
    cfg.cluster_mut().unwrap().workers = workers;
    cfg.cluster_mut().unwrap().compute_time = Delay::Constant(2e-3);
    cfg.cluster_mut().unwrap().consistency = consistency.parse().unwrap();
    cfg.validate().unwrap();
    cfg
}

fn run_ok<O: Objective + Clone + 'static>(cfg: &RunConfig, o: &O) -> RunResult {
    let r = engine::run(cfg, o, 0).unwrap();
    r.counters.check().unwrap();
    r
}

fn engines() -> [(EngineKind, Backend); 3] {
    [
        (EngineKind::Threads, Backend::Lock),
        (EngineKind::Threads, Backend::Channel),
        (EngineKind::Tasks, Backend::Lock),
    ]
}

#[test]
fn asp_mean_staleness_is_workers_minus_one() {
    let _g = serial();
    // With M equal workers, each of the other M−1 pushes once per cycle,
    // i.e. once between a worker's fetch and its push: E[staleness] = M−1.
    // 40 cycles per worker make the start-up transient (first cycle ≈ (M−1)/2)
    // cost ≈ 1/80 of the mean, far inside the 15% tolerance of the issue.
    let o = pca();
    for (engine, backend, m) in [
        (EngineKind::Threads, Backend::Lock, 2),
        (EngineKind::Threads, Backend::Lock, 8),
        (EngineKind::Threads, Backend::Lock, 32),
        (EngineKind::Threads, Backend::Channel, 8),
        (EngineKind::Tasks, Backend::Lock, 8),
        (EngineKind::Tasks, Backend::Lock, 32),
    ] {
        let mut cfg = cluster_cfg(engine, m, "asp", 40 * m as u64);
        set_backend(&mut cfg, backend);
        let r = run_ok(&cfg, &o);
        let mean = r.staleness.mean();
        let want = (m - 1) as f64;
        assert!(
            (mean - want).abs() <= 0.15 * want,
            "{engine:?}/{backend:?} M={m}: mean staleness {mean}, want {want} ± 15%"
        );
        assert_eq!(
            r.counters.applied, cfg.steps,
            "stops exactly at the step limit"
        );
        assert_eq!(r.staleness.count(), cfg.steps);
        assert!(r.histograms["staleness.worker0"].count() > 0);
        assert_eq!(
            r.histograms["fetch_ns"].count(),
            m as u64,
            "one first fetch each"
        );
        assert!(r.histograms["push_fetch_ns"].count() >= cfg.steps);
    }
}

#[test]
fn ssp_never_exceeds_its_bound_and_waits() {
    let _g = serial();
    let o = pca();
    for (engine, backend) in engines() {
        for bound in [0, 2] {
            let mut cfg = cluster_cfg(engine, 8, &format!("ssp:{bound}"), 160);
            set_backend(&mut cfg, backend);
            // Unequal speeds make the bound bite.
            cfg.cluster_mut().unwrap().compute_time = "uniform:0.0005..0.003".parse().unwrap();
            let r = run_ok(&cfg, &o);
            assert!(
                r.staleness.max() <= bound,
                "{engine:?}/{backend:?} ssp:{bound}: max staleness {}",
                r.staleness.max()
            );
            assert!(
                r.histograms["wait_ns"].count() > 0,
                "8 workers under ssp:{bound} must wait"
            );
            assert_eq!(r.counters.applied, cfg.steps);
        }
    }
}

#[test]
fn bsp_records_zero_staleness_and_averages_rounds() {
    let _g = serial();
    let o = pca();
    for (engine, backend) in engines() {
        let mut cfg = cluster_cfg(engine, 8, "bsp", 20);
        set_backend(&mut cfg, backend);
        let r = run_ok(&cfg, &o);
        assert_eq!(r.staleness.max(), 0);
        // Every update is one round of 8 gradients.
        assert_eq!(r.counters.applied, 8 * 20, "{engine:?}/{backend:?}");
        assert_eq!(r.trace.last().unwrap().step, 20);
        assert_eq!(r.staleness.count(), 8 * 20);
    }
}

#[test]
fn bsp_single_worker_matches_the_injected_engine_at_zero_delay() {
    // One worker under BSP is sequential SGD with the injected engine's
    // seeding, so the iterates agree exactly: a check on the update path.
    let o = pca();
    let mut cfg = cluster_cfg(EngineKind::Threads, 1, "bsp", 50);
    cfg.cluster_mut().unwrap().compute_time = Delay::Constant(0.0);
    let threads = run_ok(&cfg, &o);
    cfg.engine = EngineConfig::default();
    let injected = run_ok(&cfg, &o);
    assert_eq!(threads.final_error, injected.final_error);
}

#[test]
fn target_error_stops_every_worker() {
    let _g = serial();
    let o = pca();
    for (engine, backend) in engines() {
        let mut cfg = cluster_cfg(engine, 4, "asp", 1_000_000);
        set_backend(&mut cfg, backend);
        cfg.cluster_mut().unwrap().compute_time = Delay::Constant(0.0);
        cfg.step_size = 0.01;
        cfg.momentum = 0.5;
        cfg.target_error = Some(0.3);
        let r = run_ok(&cfg, &o);
        let step = match r.outcome {
            psim_common::Outcome::TargetErrorReached { step } => step,
            other => panic!("{engine:?}/{backend:?}: {other:?}"),
        };
        assert!(step < cfg.steps);
        assert!(engine::time_to_target(&r).unwrap() > 0.0);
    }
}

/// Streaming PCA whose `at`-th gradient (over all workers) panics.
#[derive(Clone)]
struct Faulty {
    inner: StreamingPca,
    calls: Arc<AtomicU64>,
    at: u64,
}

impl Objective for Faulty {
    fn dim(&self) -> usize {
        self.inner.dim()
    }
    fn initial_point(&self, rng: &mut PsimRng, out: &mut [f64]) {
        self.inner.initial_point(rng, out)
    }
    fn gradient(&self, point: &[f64], rng: &mut PsimRng, out: &mut [f64]) {
        if self.calls.fetch_add(1, Ordering::Relaxed) == self.at {
            panic!("injected fault");
        }
        self.inner.gradient(point, rng, out)
    }
    fn error(&self, point: &[f64]) -> f64 {
        self.inner.error(point)
    }
}

#[test]
fn a_panicking_worker_ends_or_leaves_the_run_never_hangs() {
    let _g = serial();
    for (engine, backend) in engines() {
        for consistency in ["asp", "ssp:1", "bsp"] {
            let faulty = || Faulty {
                inner: pca(),
                calls: Arc::new(AtomicU64::new(0)),
                at: 10,
            };
            let mut cfg = cluster_cfg(engine, 4, consistency, 60);
            set_backend(&mut cfg, backend);
            cfg.cluster_mut().unwrap().compute_time = Delay::Constant(5e-4);
            match engine::run(&cfg, &faulty(), 0) {
                Err(EngineError::WorkerFailed { message, .. }) => {
                    assert!(message.contains("injected fault"), "{message}")
                }
                other => panic!("{engine:?}/{backend:?}/{consistency}: {other:?}"),
            }
            set_failure(&mut cfg, FailurePolicy::Continue);
            let r = run_ok(&cfg, &faulty());
            assert_eq!(r.histograms["failed_workers"].count(), 1);
            assert_eq!(
                r.trace.last().unwrap().step,
                60,
                "the others finish the run"
            );
        }
    }
}

#[test]
fn pareto_compute_times_with_32_workers_finish_and_report_quantiles() {
    let _g = serial();
    // Shape 1.1: finite mean 11 × scale but infinite variance; single sleeps
    // are capped at 1 s, so the run ends in bounded time and memory.
    let o = pca();
    for engine in [EngineKind::Threads, EngineKind::Tasks] {
        let mut cfg = cluster_cfg(engine, 32, "asp", 1500);
        cfg.cluster_mut().unwrap().compute_time = "pareto:0.0002,1.1".parse().unwrap();
        let r = run_ok(&cfg, &o);
        let s = r.staleness.summary();
        assert_eq!(s.count, 1500);
        assert!(s.p50 <= s.p99 && s.p99 <= s.p999 && s.p999 <= s.max);
        // A heavy tail: the slowest pushes see far more than M−1 updates.
        assert!(s.max > 31, "{engine:?}: {s:?}");
    }
}

#[test]
fn infinite_mean_pareto_ends_at_the_step_limit() {
    let _g = serial();
    // Shape 0.9: E[X] = ∞. Single sleeps are capped at 1 s and cut into 5 ms
    // slices that watch the stop flag, so the run ends at its step limit
    // even while some workers are in a long sleep.
    let mut cfg = cluster_cfg(EngineKind::Threads, 32, "asp", 1000);
    cfg.cluster_mut().unwrap().compute_time = "pareto:0.0002,0.9".parse().unwrap();
    let started = std::time::Instant::now();
    let r = run_ok(&cfg, &pca());
    assert_eq!(r.counters.applied, 1000);
    assert!(
        started.elapsed().as_secs_f64() < 5.0,
        "{:?}",
        started.elapsed()
    );
}

#[test]
fn stragglers_push_less_often_and_see_staler_parameters() {
    let _g = serial();
    // Workers 0 and 1 of 8 compute 4× slower (4 ms vs 1 ms). The server
    // applies 6·1 + 2·0.25 = 6.5 pushes per ms, so a slow worker's push sees
    // ≈ 4·6.5 − 0.25 ≈ 26 updates and a fast one's ≈ 6.5 − 1 = 5.5 (ratio ≈ 4.7;
    // asserted > 2), and a slow worker pushes 4× less often (asserted > 2×).
    let mut cfg = cluster_cfg(EngineKind::Threads, 8, "asp", 600);
    cfg.cluster_mut().unwrap().compute_time = Delay::Constant(1e-3);
    cfg.cluster_mut().unwrap().stragglers = Some(psim_common::Stragglers {
        fraction: 0.25,
        slowdown: 4.0,
    });
    let r = run_ok(&cfg, &pca());
    let slow = &r.histograms["staleness.worker0"];
    let fast = &r.histograms["staleness.worker7"];
    assert!(
        slow.count() * 2 < fast.count(),
        "{} vs {}",
        slow.count(),
        fast.count()
    );
    assert!(
        slow.mean() > 2.0 * fast.mean(),
        "{} vs {}",
        slow.mean(),
        fast.mean()
    );
}

#[test]
fn thousands_of_tasks() {
    let _g = serial();
    let o = pca();
    let mut cfg = cluster_cfg(EngineKind::Tasks, 2000, "asp", 6000);
    cfg.cluster_mut().unwrap().compute_time = Delay::Constant(1e-3);
    // Staleness ≈ 2000 diverges at E1's μ and η; plain small-step SGD does not.
    cfg.momentum = 0.0;
    cfg.step_size = 1e-5;
    let r = run_ok(&cfg, &o);
    assert_eq!(r.outcome, psim_common::Outcome::StepsReached);
    assert_eq!(r.counters.applied, 6000);
    assert!(
        r.staleness.mean() > 100.0,
        "2000 concurrent tasks: {:?}",
        r.staleness.summary()
    );
    let mut bsp = cfg.clone();
    bsp.cluster_mut().unwrap().consistency = Consistency::Bsp;
    bsp.steps = 3;
    let r = run_ok(&bsp, &o);
    assert_eq!(r.counters.applied, 3 * 2000);
}

#[test]
fn too_many_threads_is_a_config_error() {
    let mut cfg = cluster_cfg(EngineKind::Threads, 5000, "asp", 10);
    cfg.cluster_mut().unwrap().compute_time = Delay::Constant(0.0);
    let e = engine::run(&cfg, &pca(), 0).unwrap_err().to_string();
    assert!(e.contains("cluster.workers") && e.contains("tasks"), "{e}");
}
