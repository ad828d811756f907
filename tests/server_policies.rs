//! The server policies of the one server core (Rennala, Ringmaster, m-sync,
//! buffered) and the delay-adaptive rule: each policy's defining property,
//! checked exactly in virtual time with fixed compute times (worker i takes
//! i + 1 seconds, `--worker-compute linear:1,1`); Rennala and Ringmaster
//! against an independent event loop, bit for bit; lazy evaluation (a
//! discarded or cancelled computation costs no gradient); the counters on
//! every engine; and the command line.

use psim_common::{
    Backend, ClusterConfig, Consistency, Delay, EngineConfig, EngineKind, Objective, PsimRng,
    RunConfig, RunResult, WorkerCompute,
};
use psim_engine as engine;
use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// f(x) = a·x²/2 in one dimension with no noise, started at x = 1: its
/// gradient a·x is deterministic, so an independent loop can follow psim
/// bit for bit. Counts its gradient evaluations.
#[derive(Clone)]
struct Line {
    a: f64,
    evaluations: Arc<AtomicU64>,
}

impl Line {
    fn new(a: f64) -> Self {
        Self {
            a,
            evaluations: Arc::new(AtomicU64::new(0)),
        }
    }

    fn evaluations(&self) -> u64 {
        self.evaluations.load(Ordering::Relaxed)
    }
}

impl Objective for Line {
    fn dim(&self) -> usize {
        1
    }
    fn initial_point(&self, _rng: &mut PsimRng, out: &mut [f64]) {
        out[0] = 1.0;
    }
    fn gradient(&self, point: &[f64], _rng: &mut PsimRng, out: &mut [f64]) {
        self.evaluations.fetch_add(1, Ordering::Relaxed);
        out[0] = self.a * point[0];
    }
    fn error(&self, point: &[f64]) -> f64 {
        point[0] * point[0]
    }
}

/// A cluster configuration: `workers` workers, worker i computing for
/// exactly i + 1 seconds (`compute_time` 1 × `linear:1,1`), no network delay.
fn cfg(engine: EngineKind, workers: usize, consistency: &str, steps: u64) -> RunConfig {
    let cfg = RunConfig {
        steps,
        runs: 1,
        record_every: 10,
        record_params: true,
        engine: EngineConfig::new(
            engine,
            ClusterConfig {
                workers,
                compute_time: Delay::Constant(1.0),
                network_delay: Delay::Constant(0.0),
                consistency: consistency.parse().unwrap(),
                worker_compute: Some(WorkerCompute::Linear { a: 1.0, b: 1.0 }),
                ..Default::default()
            },
        ),
        ..RunConfig::default()
    };
    cfg.validate().unwrap();
    cfg
}

fn vt(workers: usize, consistency: &str, steps: u64) -> RunConfig {
    cfg(EngineKind::VirtualTime, workers, consistency, steps)
}

fn run_vt(cfg: &RunConfig, o: &Line) -> RunResult {
    let r = engine::run(cfg, o, 0).unwrap();
    r.counters.check().unwrap();
    r
}

// ---------------------------------------------------------------------------
// An independent implementation: a plain event loop over M workers with
// fixed compute times, for Rennala and Ringmaster.

#[derive(Debug, Clone, Copy)]
enum RefPolicy {
    Rennala { batch: u64, cancel: bool },
    Ringmaster { bound: u64, stop: bool },
}

#[derive(Debug, Clone, Copy)]
enum RefRule {
    HeavyBall { mu: f64 },
    DelayAdaptive { c: f64 },
}

#[derive(Debug, PartialEq)]
struct RefOutcome {
    x: f64,
    now: f64,
    received: u64,
    applied: u64,
    discarded: u64,
    after_stop: u64,
    cancelled: u64,
    evaluations: u64,
    max_staleness: u64,
}

/// Follows the policy's definition literally: the next arrival is the
/// smallest (time, worker); a gradient is evaluated (at the point the
/// worker read) only when it is used; after each update the policy's
/// cancelled workers restart on the new point at once; the run ends at the
/// `steps`-th update, when the M − 1 computations under way and a partial
/// batch are dropped.
fn reference(
    policy: RefPolicy,
    rule: RefRule,
    m: usize,
    steps: u64,
    a: f64,
    eta: f64,
) -> RefOutcome {
    let compute: Vec<f64> = (0..m).map(|w| (w + 1) as f64).collect();
    let (mut x, mut prev) = (1.0f64, 1.0f64);
    let mut version = 0u64;
    let mut fetched = vec![0u64; m];
    let mut copy = vec![1.0f64; m];
    let mut arrival = compute.clone();
    let (mut sum, mut count) = (0.0f64, 0u64);
    let mut out = RefOutcome {
        x: 0.0,
        now: 0.0,
        received: 0,
        applied: 0,
        discarded: 0,
        after_stop: 0,
        cancelled: 0,
        evaluations: 0,
        max_staleness: 0,
    };
    let apply = |x: &mut f64, prev: &mut f64, g: f64, tau: u64| {
        let (mu, step) = match rule {
            RefRule::HeavyBall { mu } => (mu, eta),
            RefRule::DelayAdaptive { c } => {
                let t = tau as f64;
                (0.0, if t <= c { eta } else { eta * c / t })
            }
        };
        let now = *x;
        *x = now + mu * (now - *prev) - step * g;
        *prev = now;
    };
    loop {
        let w = (0..m)
            .min_by(|&i, &j| arrival[i].total_cmp(&arrival[j]).then(i.cmp(&j)))
            .unwrap();
        let now = arrival[w];
        let tau = version - fetched[w];
        let mut updated = false;
        match policy {
            RefPolicy::Ringmaster { bound, .. } => {
                out.received += 1;
                if tau >= bound {
                    out.discarded += 1;
                } else {
                    out.evaluations += 1;
                    let g = a * copy[w];
                    apply(&mut x, &mut prev, g, tau);
                    out.applied += 1;
                    out.max_staleness = out.max_staleness.max(tau);
                    version += 1;
                    updated = true;
                }
            }
            RefPolicy::Rennala { batch, .. } => {
                if fetched[w] != version {
                    out.received += 1;
                    out.discarded += 1;
                } else {
                    out.evaluations += 1;
                    sum += a * copy[w];
                    count += 1;
                    if count == batch {
                        let mean = sum * (1.0 / batch as f64);
                        apply(&mut x, &mut prev, mean, 0);
                        out.received += batch;
                        out.applied += batch;
                        version += 1;
                        updated = true;
                        sum = 0.0;
                        count = 0;
                    }
                }
            }
        }
        if version == steps {
            // Stopped: every other worker is computing; a partial batch is dropped.
            out.after_stop = (m as u64 - 1) + count;
            out.received += out.after_stop;
            out.x = x;
            out.now = now;
            return out;
        }
        fetched[w] = version;
        copy[w] = x;
        arrival[w] = now + compute[w];
        if updated {
            for v in (0..m).filter(|&v| v != w) {
                let cancel = match policy {
                    RefPolicy::Rennala { cancel, .. } => cancel,
                    RefPolicy::Ringmaster { bound, stop } => stop && version - fetched[v] >= bound,
                };
                if cancel {
                    out.cancelled += 1;
                    fetched[v] = version;
                    copy[v] = x;
                    arrival[v] = now + compute[v];
                }
            }
        }
    }
}

#[test]
fn rennala_and_ringmaster_equal_an_independent_event_loop_bit_for_bit() {
    let (m, steps, a, eta) = (16, 400, 0.5, 0.05);
    let policies = [
        (
            "rennala:4",
            RefPolicy::Rennala {
                batch: 4,
                cancel: true,
            },
        ),
        (
            "rennala:4,discard",
            RefPolicy::Rennala {
                batch: 4,
                cancel: false,
            },
        ),
        (
            "rennala:1",
            RefPolicy::Rennala {
                batch: 1,
                cancel: true,
            },
        ),
        (
            "ringmaster:5",
            RefPolicy::Ringmaster {
                bound: 5,
                stop: false,
            },
        ),
        (
            "ringmaster:5,stop",
            RefPolicy::Ringmaster {
                bound: 5,
                stop: true,
            },
        ),
        (
            "ringmaster:1",
            RefPolicy::Ringmaster {
                bound: 1,
                stop: false,
            },
        ),
    ];
    let rules = [
        ("heavy-ball", 0.5, RefRule::HeavyBall { mu: 0.5 }),
        ("delay-adaptive:3", 0.0, RefRule::DelayAdaptive { c: 3.0 }),
    ];
    for (spelling, policy) in policies {
        for (rule, mu, ref_rule) in rules {
            let what = format!("{spelling} {rule}");
            let mut c = vt(m, spelling, steps);
            c.rule = rule.parse().unwrap();
            c.momentum = mu;
            c.step_size = eta;
            let o = Line::new(a);
            let r = run_vt(&c, &o);
            let want = reference(policy, ref_rule, m, steps, a, eta);
            let k = r.counters;
            let got = RefOutcome {
                x: r.final_params.as_ref().unwrap()[0],
                now: r.virtual_seconds.unwrap(),
                received: k.received,
                applied: k.applied,
                discarded: k.dropped_too_stale,
                after_stop: k.dropped_after_stop,
                cancelled: k.cancelled,
                evaluations: o.evaluations(),
                max_staleness: r.staleness.max(),
            };
            assert_eq!(
                got.x.to_bits(),
                want.x.to_bits(),
                "{what}: {got:?} vs {want:?}"
            );
            assert_eq!(got, want, "{what}");
            // The comparison means something: the policy refused work.
            assert!(
                want.discarded + want.cancelled > 0 || spelling == "rennala:1",
                "{what}"
            );
        }
    }
}

// ---------------------------------------------------------------------------
// Each policy's defining property, exactly, at M = 64 with fixed times.

#[test]
fn ringmaster_never_applies_a_gradient_of_staleness_r_or_more() {
    for spelling in ["ringmaster:8", "ringmaster:8,stop"] {
        let mut c = vt(64, spelling, 3000);
        c.cluster_mut().unwrap().record_pushes = true;
        let r = run_vt(&c, &Line::new(0.1));
        let pushes = r.pushes.as_ref().unwrap();
        assert_eq!(pushes.len() as u64, r.counters.applied);
        assert!(pushes.iter().all(|p| p.staleness < 8), "{spelling}");
        assert!(
            pushes.iter().any(|p| p.staleness == 7),
            "{spelling}: R − 1 reached"
        );
        assert!(r.staleness.max() < 8);
        let k = r.counters;
        assert_eq!(k.applied, 3000, "{spelling}: one gradient per update");
        if spelling.ends_with("stop") {
            // Stopped computations are cancelled, never received.
            assert_eq!(k.dropped_too_stale, 0);
            assert!(k.cancelled > 0);
        } else {
            assert!(k.dropped_too_stale > 0);
            assert_eq!(k.cancelled, 0);
        }
    }
}

#[test]
fn every_rennala_update_averages_b_gradients_computed_at_one_point() {
    for spelling in ["rennala:8", "rennala:8,discard"] {
        let steps = 500;
        let mut c = vt(64, spelling, steps);
        c.cluster_mut().unwrap().record_pushes = true;
        let r = run_vt(&c, &Line::new(0.1));
        let k = r.counters;
        assert_eq!(k.applied, 8 * steps, "{spelling}");
        // Every accepted gradient was computed at the version current on
        // its arrival, and exactly B were computed at each version.
        let pushes = r.pushes.as_ref().unwrap();
        assert!(pushes.iter().all(|p| p.staleness == 0), "{spelling}");
        let mut per_version = vec![0u64; steps as usize];
        for p in pushes {
            per_version[p.fetched_version as usize] += 1;
        }
        assert!(
            per_version.iter().all(|&n| n == 8),
            "{spelling}: {per_version:?}"
        );
        if spelling.ends_with("discard") {
            assert!(k.dropped_too_stale > 0);
            assert_eq!(k.cancelled, 0);
        } else {
            assert_eq!(k.dropped_too_stale, 0);
            // Every update but the last cancels the 63 other workers.
            assert_eq!(k.cancelled, 63 * (steps - 1));
        }
    }
}

#[test]
fn ksync_cancels_m_minus_k_per_round_and_averages_the_first_k() {
    let (m, q, steps) = (64u64, 48u64, 300u64);
    let mut c = vt(m as usize, "ksync:48", steps);
    c.cluster_mut().unwrap().record_pushes = true;
    let r = run_vt(&c, &Line::new(0.1));
    let k = r.counters;
    assert_eq!(k.applied, q * steps);
    // The last round's M − K are still under way at the stop.
    assert_eq!(k.cancelled, (m - q) * (steps - 1));
    assert_eq!(k.dropped_after_stop, m - q);
    let pushes = r.pushes.as_ref().unwrap();
    let mut per_version = vec![0u64; steps as usize];
    for p in pushes {
        assert_eq!(p.staleness, 0);
        // Fixed times: the K fastest workers make every round.
        assert!((p.worker as u64) < q, "worker {}", p.worker);
        per_version[p.fetched_version as usize] += 1;
    }
    assert!(per_version.iter().all(|&n| n == q));
}

#[test]
fn buffered_applies_the_mean_every_k_arrivals_whatever_their_staleness() {
    let (size, steps) = (8u64, 400u64);
    let mut c = vt(64, "buffered:8", steps);
    c.cluster_mut().unwrap().record_pushes = true;
    let r = run_vt(&c, &Line::new(0.1));
    let k = r.counters;
    assert_eq!(k.applied, size * steps);
    assert_eq!(k.dropped_too_stale + k.cancelled, 0, "nothing is refused");
    // In arrival order, the i-th arrival (from 0) leaves the server at
    // version ⌊(i + 1)/K⌋: the K-th of each buffer applies it.
    let pushes = r.pushes.as_ref().unwrap();
    assert_eq!(pushes.len() as u64, size * steps);
    for (i, p) in pushes.iter().enumerate() {
        assert_eq!(p.applied_version, (i as u64 + 1) / size, "arrival {i}");
    }
    assert!(
        r.staleness.max() > size,
        "stale gradients enter the buffer too"
    );
}

#[test]
fn bsp_is_ksync_m_exactly() {
    // Random compute times and the noisy default objective: identical runs.
    let pca = psim_common::AnyObjective::build(&RunConfig::default().objective).unwrap();
    for m in [1usize, 4, 16] {
        let runs: Vec<RunResult> = ["bsp", &format!("ksync:{m}")]
            .iter()
            .map(|s| {
                let mut c = vt(m, s, 300);
                c.cluster_mut().unwrap().compute_time = "exp:1".parse().unwrap();
                c.cluster_mut().unwrap().worker_compute = None;
                engine::run(&c, &pca, 3).unwrap()
            })
            .collect();
        let (a, b) = (&runs[0], &runs[1]);
        assert_eq!(a.final_params, b.final_params, "M = {m}");
        assert_eq!(a.counters, b.counters);
        assert_eq!(a.virtual_seconds, b.virtual_seconds);
        assert_eq!(
            a.trace
                .iter()
                .map(|p| p.error.to_bits())
                .collect::<Vec<_>>(),
            b.trace
                .iter()
                .map(|p| p.error.to_bits())
                .collect::<Vec<_>>()
        );
        assert_eq!(a.counters.cancelled, 0);
    }
}

#[test]
fn a_refused_computation_costs_no_gradient_evaluation_in_virtual_time() {
    // Every run stops at an update (a batch, round or buffer just applied),
    // so the gradients evaluated are exactly those applied; the work the
    // policy discarded or cancelled (counted, and large) cost nothing.
    for spelling in [
        "rennala:8",
        "rennala:8,discard",
        "ringmaster:4",
        "ringmaster:4,stop",
        "ksync:48",
        "buffered:8",
        "asp",
    ] {
        let o = Line::new(0.1);
        let r = run_vt(&vt(64, spelling, 1000), &o);
        let k = r.counters;
        assert_eq!(o.evaluations(), k.applied, "{spelling}");
        let refused = k.dropped_too_stale + k.cancelled;
        if !matches!(spelling, "asp" | "buffered:8" | "ksync:48") {
            // An eager engine would have evaluated these too.
            assert!(refused > k.applied, "{spelling}: {k:?}");
        }
        if spelling == "ksync:48" {
            assert_eq!(refused, 16 * 999, "{spelling}: {k:?}");
        }
    }
}

// ---------------------------------------------------------------------------
// The counters on every engine.

const POLICIES: [&str; 7] = [
    "rennala:4",
    "rennala:4,discard",
    "ringmaster:3",
    "ringmaster:3,stop",
    "ksync:6",
    "buffered:4",
    "bsp",
];

#[test]
fn counters_balance_for_every_policy_on_every_engine() {
    let pca = psim_common::AnyObjective::build(&RunConfig::default().objective).unwrap();
    let engines = [
        (EngineKind::VirtualTime, Backend::Lock),
        (EngineKind::Threads, Backend::Lock),
        (EngineKind::Threads, Backend::Channel),
        (EngineKind::Tasks, Backend::Lock),
    ];
    for (kind, backend) in engines {
        for policy in POLICIES {
            for rule in ["heavy-ball", "nesterov", "delay-adaptive"] {
                // Worker i computes for (i + 1) × 0.5 ms; 40 updates.
                let mut c = cfg(kind, 8, policy, 40);
                c.rule = rule.parse().unwrap();
                c.cluster_mut().unwrap().compute_time = Delay::Constant(5e-4);
                if let EngineConfig::Threads(t) = &mut c.engine {
                    t.backend = backend;
                }
                let what = format!("{kind} {backend:?} {policy} {rule}");
                // `run` checks received = applied + dropped (and, on threads
                // and tasks, that every push sent was received).
                let r = engine::run(&c, &pca, 0).unwrap_or_else(|e| panic!("{what}: {e}"));
                let k = r.counters;
                assert_eq!(r.trace.last().unwrap().step, 40, "{what}");
                let per_update = match policy {
                    "rennala:4" | "rennala:4,discard" | "buffered:4" => 4,
                    "ksync:6" => 6,
                    "bsp" => 8,
                    _ => 1,
                };
                assert_eq!(k.applied, per_update * 40, "{what}: {k:?}");
                let cancels = c.cluster().unwrap().consistency.cancels();
                if !cancels {
                    assert_eq!(k.cancelled, 0, "{what}");
                }
                if matches!(policy, "rennala:4" | "ksync:6") {
                    assert!(k.cancelled > 0, "{what}: {k:?}");
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------
// Spellings and refusals.

#[test]
fn policies_parse_display_and_refuse_bad_parameters_by_name() {
    for s in [
        "rennala:8",
        "rennala:8,discard",
        "ringmaster:8",
        "ringmaster:8,stop",
        "ksync:48",
        "buffered:8",
        "bsp",
        "ssp:3",
        "asp",
    ] {
        let c: Consistency = s.parse().unwrap();
        assert_eq!(c.to_string(), s);
    }
    for (bad, why) in [
        ("rennala:0", "B in 1..=1048576"),
        // An update must end in bounded time (Ctrl-C and the step budget
        // act between updates): at most 2²⁰ gradients per update.
        ("rennala:1048577", "B in 1..=1048576"),
        ("rennala:18446744073709551615", "B in 1..=1048576"),
        ("ringmaster:0", "R ≥ 1"),
        ("buffered:0", "K in 1..=1048576"),
        ("buffered:1048577", "K in 1..=1048576"),
        ("ksync:0", "K in 1..=M (the number of workers)"),
        ("rennala:8,stop", "rennala:B,discard"),
        ("ringmaster:8,discard", "ringmaster:R,stop"),
        ("ringmaster", "ringmaster:R"),
        ("ksync:2,stop", "ksync:K"),
    ] {
        let e = bad.parse::<Consistency>().unwrap_err().to_string();
        assert!(e.contains("consistency") && e.contains(why), "{bad}: {e}");
    }
    // K of ksync at most the workers.
    let mut c = vt(4, "ksync:4", 10);
    c.cluster_mut().unwrap().consistency = "ksync:5".parse().unwrap();
    let e = c.validate().unwrap_err().to_string();
    assert!(e.contains("consistency") && e.contains("K in 1..=4"), "{e}");
    for bad in ["delay-adaptive:0", "delay-adaptive:-1", "delay-adaptive:x"] {
        let e = bad
            .parse::<psim_common::RuleKind>()
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("rule") && e.contains("C finite and > 0"),
            "{bad}: {e}"
        );
    }
    let r: psim_common::RuleKind = "delay-adaptive:2.5".parse().unwrap();
    assert_eq!(r.to_string(), "delay-adaptive:2.5");
    // DC-ASGD has no one stale point under a buffer.
    let mut c = vt(4, "buffered:2", 10);
    c.rule = "dc-asgd:0.5".parse().unwrap();
    assert!(c.validate().unwrap_err().to_string().contains("buffered"));
    // Without workers, delay-adaptive needs its C.
    let inj = RunConfig {
        rule: "delay-adaptive".parse().unwrap(),
        ..RunConfig::default()
    };
    let e = inj.validate().unwrap_err().to_string();
    assert!(e.contains("rule") && e.contains("injected"), "{e}");
}

// ---------------------------------------------------------------------------
// The command line.

fn psim(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_psim"))
        .args(args)
        .output()
        .unwrap()
}

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("psim-policies-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

fn text(o: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// `runs.csv` without its `wall_seconds` column, and `traces.csv`.
fn deterministic_files(dir: &std::path::Path) -> (String, String) {
    let runs = std::fs::read_to_string(dir.join("runs.csv")).unwrap();
    let mut lines = runs.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    let wall = header.iter().position(|h| *h == "wall_seconds").unwrap();
    let strip = |l: &str| {
        // Quoted fields (`"linear:1,1"`) hold commas: split outside quotes.
        let mut fields = Vec::new();
        let (mut cur, mut quoted) = (String::new(), false);
        for ch in l.chars() {
            match ch {
                '"' => quoted = !quoted,
                ',' if !quoted => fields.push(std::mem::take(&mut cur)),
                _ => cur.push(ch),
            }
        }
        fields.push(cur);
        fields.remove(wall);
        fields.join(",")
    };
    let runs = runs.lines().map(strip).collect::<Vec<_>>().join("\n");
    let traces = std::fs::read_to_string(dir.join("traces.csv")).unwrap();
    (runs, traces)
}

#[test]
fn psim_run_takes_every_policy_on_virtual_time_bit_identical_across_thread_counts() {
    let policies: [&[&str]; 7] = [
        &["--consistency", "rennala:8"],
        &["--consistency", "ringmaster:8"],
        &["--consistency", "ringmaster:8,stop"],
        &["--consistency", "ksync:48"],
        &["--consistency", "buffered:8"],
        &["--consistency", "rennala:8,discard"],
        &["--rule", "delay-adaptive"],
    ];
    for (i, policy) in policies.iter().enumerate() {
        let mut outs = Vec::new();
        for threads in ["1", "2"] {
            let dir = tmp(&format!("vt{i}-{threads}"));
            let base = [
                "run",
                "--engine",
                "virtual-time",
                "--workers",
                "64",
                "--worker-compute",
                "linear:1,1",
                "--steps",
                "2000",
                "--runs",
                "3",
                "--quiet",
                "--threads",
                threads,
                "--out",
                dir.to_str().unwrap(),
            ];
            let o = psim(&[&base[..], policy].concat());
            assert!(o.status.success(), "{policy:?}: {}", text(&o));
            outs.push(deterministic_files(&dir));
            // config.toml replays the policy.
            let toml = std::fs::read_to_string(dir.join("config.toml")).unwrap();
            assert!(toml.contains(policy[1]), "{policy:?}: {toml}");
            let _ = std::fs::remove_dir_all(&dir);
        }
        assert_eq!(outs[0], outs[1], "{policy:?}: --threads 1 vs 2");
    }
}

/// Every policy, and the delay-adaptive rule where a gradient can be staler
/// than its C = M = 64 (asp, buffered); under the others no applied
/// gradient is that stale, so the rule is refused there (below).
#[test]
fn psim_run_takes_every_policy_on_threads_and_tasks() {
    for engine in ["threads", "tasks"] {
        for (policy, rule) in [
            ("rennala:8", "heavy-ball"),
            ("ringmaster:8", "heavy-ball"),
            ("ringmaster:8,stop", "heavy-ball"),
            ("ksync:48", "heavy-ball"),
            ("buffered:8", "delay-adaptive"),
            ("asp", "delay-adaptive"),
        ] {
            let dir = tmp(&format!("{engine}-{policy}"));
            // Worker i computes for (i + 1) × 0.1 ms: a ksync round waits
            // for worker 47's 4.8 ms; 30 updates.
            let o = psim(&[
                "run",
                "--engine",
                engine,
                "--workers",
                "64",
                "--compute-time",
                "0.0001",
                "--worker-compute",
                "linear:1,1",
                "--consistency",
                policy,
                "--rule",
                rule,
                "--steps",
                "30",
                "--runs",
                "1",
                "--quiet",
                "--out",
                dir.to_str().unwrap(),
            ]);
            assert!(o.status.success(), "{engine} {policy}: {}", text(&o));
            let _ = std::fs::remove_dir_all(&dir);
        }
    }
}

#[test]
fn a_grid_of_policies_splits_at_commas_outside_their_options() {
    let dir = tmp("grid");
    let o = psim(&[
        "sweep",
        "--engine",
        "virtual-time",
        "--workers",
        "8",
        "--consistency",
        "asp,ringmaster:3,stop,rennala:2,discard,ksync:4",
        "--steps",
        "100",
        "--runs",
        "1",
        "--quiet",
        "--out",
        dir.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", text(&o));
    let runs = std::fs::read_to_string(dir.join("runs.csv")).unwrap();
    for p in ["asp", "ringmaster:3,stop", "rennala:2,discard", "ksync:4"] {
        assert!(
            runs.contains(&format!("\"{p}\"")) || runs.contains(&format!(",{p},")),
            "{p}: {runs}"
        );
    }
    assert_eq!(runs.lines().count(), 5);
    let _ = std::fs::remove_dir_all(&dir);
    // K above the workers of a grid point is refused, naming the entry.
    let o = psim(&[
        "sweep",
        "--engine",
        "virtual-time",
        "--workers",
        "4,8",
        "--consistency",
        "asp,ksync:6",
        "--steps",
        "10",
        "--out",
        tmp("grid-bad").to_str().unwrap(),
    ]);
    assert!(!o.status.success());
    assert!(
        text(&o).contains("consistency") && text(&o).contains("K in 1..=4"),
        "{}",
        text(&o)
    );
}

#[test]
fn the_injected_engine_refuses_policies_and_a_delay_adaptive_rule_without_c() {
    let o = psim(&["run", "--consistency", "rennala:8", "--steps", "10"]);
    assert!(!o.status.success());
    assert!(text(&o).contains("--consistency"), "{}", text(&o));
    let o = psim(&["run", "--rule", "delay-adaptive", "--steps", "10"]);
    assert!(!o.status.success());
    assert!(text(&o).contains("delay-adaptive:C"), "{}", text(&o));
    // Refused where no staleness exceeds C: a constant delay of 3 ≤ C = 4,
    // and a policy that applies only fresh gradients.
    let o = psim(&[
        "run",
        "--rule",
        "delay-adaptive:4",
        "--delay",
        "3",
        "--steps",
        "10",
    ]);
    assert!(!o.status.success());
    assert!(text(&o).contains("`rule`"), "{}", text(&o));
    let o = psim(&[
        "run",
        "--engine",
        "virtual-time",
        "--workers",
        "4",
        "--consistency",
        "rennala:2",
        "--rule",
        "delay-adaptive",
        "--steps",
        "10",
    ]);
    assert!(!o.status.success());
    assert!(text(&o).contains("`rule`"), "{}", text(&o));
    let dir = tmp("inj-c");
    let o = psim(&[
        "run",
        "--rule",
        "delay-adaptive:4",
        "--delay",
        "uniform:0..10",
        "--steps",
        "100",
        "--quiet",
        "--out",
        dir.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", text(&o));
    let _ = std::fs::remove_dir_all(&dir);
}

// ---------------------------------------------------------------------------
// The core step by step: what a worker of a real back-end meets.

mod core_steps {
    use psim_common::Consistency;
    use psim_server::backend::{Poll, Pushed, ServerCore, StepLimit};
    use psim_server::{HeavyBall, ServerState};
    use std::sync::atomic::Ordering;

    fn core(consistency: &str, workers: usize) -> ServerCore<HeavyBall, StepLimit> {
        let rule = HeavyBall {
            momentum: 0.0,
            step_size: 1.0,
        };
        ServerCore::new(
            ServerState::without_history(&[0.0], rule),
            StepLimit(100),
            consistency.parse::<Consistency>().unwrap(),
            workers,
        )
    }

    fn fetch(c: &mut ServerCore<HeavyBall, StepLimit>, w: usize) -> u64 {
        let mut buf = [0.0];
        match c.try_fetch(w, &mut buf) {
            Poll::Ready(v) => v,
            other => panic!("worker {w}: {other:?}"),
        }
    }

    #[test]
    fn a_cancelled_computation_raises_its_flag_and_its_late_push_is_refused_unreceived() {
        // rennala:2 with 3 workers: two gradients of version 0 close the
        // batch; worker 2's computation is cancelled.
        let mut c = core("rennala:2", 3);
        let flags = c.cancel_flags().unwrap();
        for w in 0..3 {
            assert_eq!(fetch(&mut c, w), 0);
        }
        assert!(c.wants_gradient(0, 0));
        let accepted = Poll::Ready(Pushed::Accepted { staleness: 0 });
        assert_eq!(c.try_push(0, &[-1.0], &[0.0], 0), accepted);
        assert_eq!(
            fetch(&mut c, 0),
            0,
            "a fast worker computes again at the same point"
        );
        assert_eq!(c.try_push(0, &[-3.0], &[0.0], 0), accepted);
        assert_eq!(c.state().params(), &[2.0], "the mean of the batch");
        assert_eq!(c.state().version(), 1);
        // Workers 1 and 2 were computing at version 0: cancelled.
        assert!(flags[1].load(Ordering::Relaxed) && flags[2].load(Ordering::Relaxed));
        assert!(!flags[0].load(Ordering::Relaxed));
        assert_eq!(c.state().counters().cancelled, 2);
        // Worker 1 did not notice in time: its push is refused unreceived.
        assert!(!c.wants_gradient(1, 0));
        assert_eq!(
            c.try_push(1, &[9.0], &[0.0], 0),
            Poll::Ready(Pushed::Cancelled)
        );
        assert!(!flags[1].load(Ordering::Relaxed));
        // Worker 2 noticed: it fetches the new point, lowering its flag.
        assert_eq!(fetch(&mut c, 2), 1);
        assert!(!flags[2].load(Ordering::Relaxed));
        let k = c.state().counters();
        assert_eq!((k.received, k.applied, k.cancelled), (2, 2, 2));
        k.check().unwrap();
    }

    #[test]
    fn ringmaster_discards_on_arrival_or_stops_at_r_versions() {
        // R = 2, two workers: worker 1 fetched at 0 while worker 0 applies twice.
        for (spelling, stop) in [("ringmaster:2", false), ("ringmaster:2,stop", true)] {
            let mut c = core(spelling, 2);
            fetch(&mut c, 0);
            fetch(&mut c, 1);
            for v in 0..2 {
                assert_eq!(
                    c.try_push(0, &[-1.0], &[0.0], v),
                    Poll::Ready(Pushed::Accepted { staleness: 0 })
                );
                assert_eq!(fetch(&mut c, 0), v + 1);
            }
            let k = *c.state().counters();
            if stop {
                // Stopped the moment it became 2 versions stale.
                assert_eq!(k.cancelled, 1, "{spelling}");
                assert_eq!(
                    c.try_push(1, &[5.0], &[0.0], 0),
                    Poll::Ready(Pushed::Cancelled)
                );
                assert_eq!(c.state().counters().dropped_too_stale, 0);
            } else {
                assert_eq!(k.cancelled, 0);
                assert!(!c.wants_gradient(1, 0), "no evaluation for a discard");
                assert_eq!(
                    c.try_push(1, &[5.0], &[0.0], 0),
                    Poll::Ready(Pushed::Discarded)
                );
                assert_eq!(c.state().counters().dropped_too_stale, 1);
            }
            assert_eq!(
                c.state().params(),
                &[2.0],
                "{spelling}: the stale gradient never applied"
            );
            c.state().counters().check().unwrap();
        }
    }

    #[test]
    fn ksync_closes_at_k_and_holds_the_pushers_until_then() {
        let mut c = core("ksync:2", 3);
        for w in 0..3 {
            fetch(&mut c, w);
        }
        c.try_push(0, &[-2.0], &[0.0], 0);
        let mut buf = [0.0];
        assert_eq!(c.try_fetch(0, &mut buf), Poll::Wait, "its round is open");
        c.try_push(1, &[-4.0], &[0.0], 0);
        assert_eq!(c.state().params(), &[3.0]);
        assert_eq!(c.state().counters().cancelled, 1, "worker 2, the backup");
        assert_eq!(c.try_fetch(0, &mut buf), Poll::Ready(1));
        assert_eq!(
            c.try_push(2, &[1.0], &[0.0], 0),
            Poll::Ready(Pushed::Cancelled)
        );
    }

    #[test]
    fn buffered_applies_at_the_kth_arrival_with_the_largest_staleness() {
        let mut c = core("buffered:2", 2);
        fetch(&mut c, 0);
        fetch(&mut c, 1);
        c.try_push(0, &[-1.0], &[0.0], 0);
        fetch(&mut c, 0);
        c.try_push(0, &[-3.0], &[0.0], 0);
        assert_eq!((c.state().version(), c.state().params()[0]), (1, 2.0));
        fetch(&mut c, 0);
        c.try_push(0, &[-1.0], &[0.0], 1);
        // Worker 1's gradient of version 0 enters the buffer, staleness 1.
        assert_eq!(
            c.try_push(1, &[-1.0], &[0.0], 0),
            Poll::Ready(Pushed::Accepted { staleness: 1 })
        );
        assert_eq!((c.state().version(), c.state().params()[0]), (2, 3.0));
        assert!(c.cancel_flags().is_none(), "nothing is ever cancelled");
    }
}
