//! Heterogeneous workers (`cluster.worker_compute`): each worker its own
//! compute time, on the virtual-time, threads and tasks engines, and the
//! per-worker contributions every cluster run reports.

use psim_common::{ClusterConfig, EngineConfig, EngineKind, RunConfig, RunResult, WorkerCompute};
use psim_engine::run;

fn cluster_cfg(kind: EngineKind, workers: usize, compute: &str, wc: &str, steps: u64) -> RunConfig {
    RunConfig {
        steps,
        record_every: steps,
        engine: EngineConfig::new(
            kind,
            ClusterConfig {
                workers,
                compute_time: compute.parse().unwrap(),
                worker_compute: Some(wc.parse().unwrap()),
                ..ClusterConfig::default()
            },
        ),
        ..RunConfig::default()
    }
}

fn go(cfg: &RunConfig, r: u64) -> RunResult {
    cfg.validate().unwrap();
    let o = psim_common::AnyObjective::build(&cfg.objective).unwrap();
    run(cfg, &o, r).unwrap()
}

/// H_8 = Σ_{i=1..8} 1/i.
fn harmonic(m: usize) -> f64 {
    (1..=m).map(|i| 1.0 / i as f64).sum()
}

/// Worker i takes exactly i+1 time units. By the virtual time T of the last
/// update, worker i has pushed ⌊T/(i+1)⌋ times, give or take the one push
/// that lands exactly at T (ties go to the smaller worker id), so
/// T/(i+1) − 1 < n_i ≤ T/(i+1) + 1. Summing over the 8 workers,
/// N = Σ n_i lies within ±8 of T·H₈, hence
/// |n_i − N/((i+1)H₈)| ≤ 1 + 8/((i+1)H₈) ≤ 1 + 8/H₈ < 4.
#[test]
fn constant_times_i_plus_1_give_pushes_inversely_proportional_exactly() {
    let n = 20_000;
    let cfg = cluster_cfg(EngineKind::VirtualTime, 8, "const:1", "linear:1,1", n);
    let r = go(&cfg, 0);
    let h = harmonic(8);
    assert_eq!(r.workers.len(), 8);
    assert_eq!(r.workers.iter().map(|w| w.applied).sum::<u64>(), n);
    for (i, w) in r.workers.iter().enumerate() {
        let expected = n as f64 / ((i + 1) as f64 * h);
        let tol = 1.0 + 8.0 / ((i + 1) as f64 * h);
        assert!(
            (w.applied as f64 - expected).abs() <= tol,
            "worker {i}: {} pushes, expected {expected:.1} ± {tol:.2}",
            w.applied
        );
        assert_eq!(w.mean_compute, Some((i + 1) as f64));
    }
    // The same through `models:` (one constant model per worker).
    let models = (1..=8)
        .map(|i| format!("const:{i}"))
        .collect::<Vec<_>>()
        .join(";");
    let cfg2 = cluster_cfg(
        EngineKind::VirtualTime,
        8,
        "const:1",
        &format!("models:{models}"),
        n,
    );
    let r2 = go(&cfg2, 0);
    let a: Vec<u64> = r.workers.iter().map(|w| w.applied).collect();
    let b: Vec<u64> = r2.workers.iter().map(|w| w.applied).collect();
    assert_eq!(a, b);
}

/// Exponential times of mean i+1: worker i's pushes are a renewal count of
/// rate 1/(i+1) over the run's span, so their count has a standard deviation
/// of about √n_i (Poisson). Allowing 5 of them (plus the ±1 boundary push):
/// a false failure has probability < 10⁻⁵ per worker.
#[test]
fn exponential_times_give_pushes_inversely_proportional_within_noise() {
    let n = 20_000;
    let cfg = cluster_cfg(EngineKind::VirtualTime, 8, "exp:1", "linear:1,1", n);
    let r = go(&cfg, 0);
    let h = harmonic(8);
    for (i, w) in r.workers.iter().enumerate() {
        let expected = n as f64 / ((i + 1) as f64 * h);
        let tol = 5.0 * expected.sqrt() + 1.0;
        assert!(
            (w.applied as f64 - expected).abs() <= tol,
            "worker {i}: {} pushes, expected {expected:.1} ± {tol:.1}",
            w.applied
        );
    }
    // Slower workers see staler parameters.
    assert!(r.workers[7].mean_staleness() > r.workers[0].mean_staleness());
}

#[test]
fn drawn_speeds_are_fixed_per_run_and_seed_and_differ_across_runs() {
    let wc: WorkerCompute = "draw:lognormal:0,1".parse().unwrap();
    assert_eq!(wc.factors(8, 1, 0), wc.factors(8, 1, 0));
    assert_ne!(wc.factors(8, 1, 0), wc.factors(8, 1, 1));
    assert_ne!(wc.factors(8, 1, 0), wc.factors(8, 2, 0));
    let cfg = cluster_cfg(
        EngineKind::VirtualTime,
        4,
        "const:1",
        "draw:lognormal:0,1",
        4000,
    );
    let r = go(&cfg, 3);
    let f = wc.factors(4, cfg.seed, 3);
    for (w, st) in r.workers.iter().enumerate() {
        assert_eq!(st.mean_compute, Some(f[w]));
    }
    // Faster worker (smaller factor) pushes more.
    let (fast, slow) = if f[0] < f[1] { (0, 1) } else { (1, 0) };
    assert!(r.workers[fast].applied >= r.workers[slow].applied);
    assert_eq!(go(&cfg, 3).workers, r.workers);
}

#[test]
fn invalid_rules_are_refused_naming_the_field() {
    for (wc, workers) in [
        ("models:const:1;const:2", 3),
        ("linear:1,-1", 4),
        ("linear:-1,1", 4),
        ("draw:const:1e10", 2),
    ] {
        let mut cfg = cluster_cfg(
            EngineKind::VirtualTime,
            workers,
            "const:1",
            "linear:1,0",
            10,
        );
        cfg.cluster_mut().unwrap().worker_compute = Some(wc.parse().unwrap());
        let e = cfg.validate().unwrap_err().to_string();
        assert!(e.contains("worker_compute"), "{wc}: {e}");
    }
    for bad in ["linear:1", "models:nope", "fast", "replay:/nonexistent"] {
        let e = bad.parse::<WorkerCompute>().unwrap_err().to_string();
        assert!(e.contains("worker_compute"), "{bad}: {e}");
    }
}

/// On real threads and tasks: 2 workers, worker 1 four times slower (1 ms vs
/// 4 ms), so it applies about a fifth of the pushes; allow 0.1–0.35.
#[test]
fn threads_and_tasks_honour_per_worker_models() {
    for kind in [EngineKind::Threads, EngineKind::Tasks] {
        let cfg = cluster_cfg(
            kind,
            2,
            "const:0.001",
            "models:const:0.001;const:0.004",
            300,
        );
        let r = go(&cfg, 0);
        let a = r.workers[0].applied as f64;
        let b = r.workers[1].applied as f64;
        let share = b / (a + b);
        assert!(
            (0.1..0.35).contains(&share),
            "{kind}: worker 1 share {share}"
        );
        assert_eq!(r.workers[1].mean_compute, Some(0.004));
    }
}
