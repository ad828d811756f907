//! One meaning of the server counters on every engine that drives the
//! server core (virtual time, threads with both back-ends, tasks): the same
//! configuration (PCA, 4 workers, constant compute time, a few hundred
//! steps) under ASP, SSP(1) and BSP. Counters count gradients (worker
//! pushes), the step limit counts updates (versions), so for the same number
//! of steps `applied` is the same everywhere: steps under ASP and SSP,
//! M × steps under BSP. Threads and tasks are not deterministic in their
//! errors, so only the counts are compared.

use psim_common::{
    AnyObjective, Backend, ClusterConfig, Consistency, Delay, EngineConfig, EngineKind, Outcome,
    RunConfig, RunResult,
};
use psim_engine::run;

const WORKERS: usize = 4;
const STEPS: u64 = 300;

fn cfg(engine: EngineKind, consistency: Consistency, backend: Backend) -> RunConfig {
    let cluster = ClusterConfig {
        workers: WORKERS,
        compute_time: Delay::Constant(1e-3),
        network_delay: Delay::Constant(0.0),
        consistency,
        stragglers: None,
        worker_compute: None,
        record_pushes: false,
    };
    let mut engine = EngineConfig::new(engine, cluster);
    if let EngineConfig::Threads(t) = &mut engine {
        t.backend = backend;
    }
    RunConfig {
        steps: STEPS,
        seed: 5,
        engine,
        ..RunConfig::default()
    }
}

fn engines() -> Vec<(&'static str, EngineKind, Backend)> {
    vec![
        ("virtual-time", EngineKind::VirtualTime, Backend::Lock),
        ("threads/lock", EngineKind::Threads, Backend::Lock),
        ("threads/channel", EngineKind::Threads, Backend::Channel),
        ("tasks", EngineKind::Tasks, Backend::Lock),
    ]
}

fn run_on(engine: EngineKind, consistency: Consistency, backend: Backend) -> RunResult {
    let c = cfg(engine, consistency, backend);
    let objective = AnyObjective::build(&c.objective).unwrap();
    run(&c, &objective, 0).unwrap()
}

#[test]
fn every_engine_counts_pushes_the_same_way() {
    let m = WORKERS as u64;
    for consistency in [
        Consistency::Asp,
        Consistency::Ssp { bound: 1 },
        Consistency::Bsp,
    ] {
        // Gradients per update: one, except BSP's mean of the M of a round.
        let per_update = if consistency == Consistency::Bsp {
            m
        } else {
            1
        };
        // Pushes in flight at the stop, delivered afterwards and dropped:
        // ASP: the M − 1 other workers; SSP(s): at most s (only tickets
        // within the bound have fetched); BSP: none (the stop closes a round,
        // every worker has pushed into it).
        let in_flight = match consistency {
            Consistency::Asp => m - 1,
            Consistency::Ssp { bound } => bound,
            Consistency::Bsp => 0,
            // The server policies are counted in tests/server_policies.rs.
            other => unreachable!("{other} is not in this loop"),
        };
        for (name, engine, backend) in engines() {
            let r = run_on(engine, consistency, backend);
            let k = r.counters;
            let what = format!("{name} {consistency}: {k:?}");
            k.check().unwrap_or_else(|e| panic!("{what}: {e}"));
            assert_eq!(r.outcome, Outcome::StepsReached, "{what}");
            assert_eq!(r.trace.last().unwrap().step, STEPS, "{what}: updates");
            assert_eq!(k.applied, STEPS * per_update, "{what}: applied");
            assert_eq!(k.dropped_too_stale + k.clamped, 0, "{what}");
            // The staleness histogram has one entry per applied gradient.
            assert_eq!(r.staleness.count(), k.applied, "{what}: staleness count");
            if consistency == Consistency::Bsp {
                assert_eq!(r.staleness.max(), 0, "{what}");
            }
            if let Consistency::Ssp { bound } = consistency {
                assert!(r.staleness.max() <= bound, "{what}");
            }
            if engine == EngineKind::VirtualTime || consistency != (Consistency::Ssp { bound: 1 }) {
                // Deterministic: every fetched worker pushes once more.
                assert_eq!(k.dropped_after_stop, in_flight, "{what}: dropped");
            } else {
                // Whether the next SSP ticket had fetched at the stop is a
                // matter of thread timing.
                assert!(k.dropped_after_stop <= in_flight, "{what}: dropped");
            }
            assert_eq!(k.received, k.applied + k.dropped_after_stop, "{what}");
        }
    }
}
