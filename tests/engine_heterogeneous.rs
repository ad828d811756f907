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
        "const:0.001",
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

/// `profile:` on virtual time: worker w (the papers' i = w + 1) computes
/// for A + B·i^P + ξ_i, ξ_i half-normal of scale √i, plus an upload of
/// const 0.5·i^0 and a download of 0.25: the recorded fetch-to-arrival
/// seconds of worker w average 1 + √i + √i·√(2/π) + 0.75, within 5
/// standard errors (σ_i = √i·√(1 − 2/π), n_i its recorded pushes; the
/// push in flight at the stop is not recorded, which does not bias the
/// draws). Its reported mean compute time is the exact 1 + √i + √i·√(2/π).
#[test]
fn papers_profile_gives_each_worker_its_mean_time_in_virtual_time() {
    let (m, n) = (16, 40_000);
    let mut cfg = cluster_cfg(
        EngineKind::VirtualTime,
        m,
        "const:1",
        "profile:1+1*i^0.5;noise=half-normal:1*i^0.5;upload=const:0.5;download=const:0.25",
        n,
    );
    cfg.cluster_mut().unwrap().record_pushes = true;
    let r = go(&cfg, 0);
    let pushes = r.pushes.as_ref().unwrap();
    let k = (2.0 / std::f64::consts::PI).sqrt();
    for w in 0..m {
        let i = (w + 1) as f64;
        let mine: Vec<f64> = pushes
            .iter()
            .filter(|p| p.worker as usize == w)
            .map(|p| p.compute_seconds)
            .collect();
        let got = mine.iter().sum::<f64>() / mine.len() as f64;
        let want = 1.0 + i.sqrt() + i.sqrt() * k + 0.75;
        let tol = 5.0 * i.sqrt() * (1.0 - k * k).sqrt() / (mine.len() as f64).sqrt();
        assert!(
            (got - want).abs() <= tol,
            "worker {w}: {got} vs {want} ± {tol} over {} pushes",
            mine.len()
        );
        let mc = r.workers[w].mean_compute.unwrap();
        assert!((mc - (1.0 + i.sqrt() * (1.0 + k))).abs() < 1e-12, "{mc}");
    }
    // Deterministic: the same run twice is the same run.
    assert_eq!(go(&cfg, 0).pushes, r.pushes);
}

/// Outages in virtual time: one worker, work 1 per gradient, up-times
/// Exp(20), down-times Exp(5): the virtual time of N updates is N·(1 + the
/// down time per unit of work) → N·25/20, within 5 sd of the compound
/// Poisson down time (N/20 outages of variance 2·5² each).
#[test]
fn outages_stretch_virtual_time_by_the_up_fraction() {
    let n = 20_000;
    let cfg = cluster_cfg(
        EngineKind::VirtualTime,
        1,
        "const:1",
        "profile:1+0*i^1;up=exp:20;down=exp:5",
        n,
    );
    let r = go(&cfg, 0);
    let t = r.virtual_seconds.unwrap();
    let want = n as f64 * 25.0 / 20.0;
    let sd = (n as f64 / 20.0 * 2.0 * 25.0).sqrt();
    assert!((t - want).abs() <= 5.0 * sd, "{t} vs {want} ± {}", 5.0 * sd);
}

/// Threads and tasks honour the profile: 2 workers, `profile:0+1*i^2` with
/// a 1 ms unit makes worker 1 (i = 2) four times slower, as in
/// `threads_and_tasks_honour_per_worker_models`; allow a share of 0.1–0.35.
#[test]
fn threads_and_tasks_honour_the_profile() {
    for kind in [EngineKind::Threads, EngineKind::Tasks] {
        let cfg = cluster_cfg(kind, 2, "const:0.001", "profile:0+1*i^2", 300);
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

#[test]
fn malformed_profiles_are_refused_naming_the_flag_and_the_form() {
    for bad in [
        "profile:1+1",
        "profile:1+1*i^0.5;noise=gauss:1",
        "profile:1+1*i^0.5;up=exp:1",
    ] {
        let e = bad.parse::<WorkerCompute>().unwrap_err().to_string();
        assert!(
            e.contains("worker_compute") && e.contains("profile:A+B*i^P"),
            "{bad}: {e}"
        );
    }
    let e = "fast".parse::<WorkerCompute>().unwrap_err().to_string();
    assert!(e.contains("profile:A+B*i^P"), "{e}");
}
