//! The injected-staleness engine: eq. (2.1) of 001 exactly.
//!
//! One run is a loop in one thread: at step k draw τ_k from the delay
//! model, compute the gradient at v_{k−τ_k} (served from the server's
//! history), apply it. Deterministic: a run depends only on
//! (seed, run index, configuration), never on scheduling.

use crate::record::RunRecorder;
use psim_common::delay::DelayModel;
use psim_common::seed::Stream;
use psim_common::{
    Delay, InjectedConfig, Objective, Outcome, RunConfig, RunResult, SeedTree, StalenessHistogram,
};
use psim_server::{Rule, Served, ServerState};
use psim_worker::Worker;
use std::collections::BTreeMap;
use std::time::Instant;

pub use crate::record::TAIL_STRIDE;

/// History the run needs: the configured capacity, cut to what a bounded
/// delay model can ask for.
pub fn history_capacity(engine: &InjectedConfig) -> usize {
    match engine.delay.upper_bound() {
        // `as` saturates, and so must the + 1: a bound near 2⁶⁴ must not
        // wrap to a history of 1 (which would serve every τ as 0).
        Some(b) => engine
            .history
            .capacity
            .min((b.round() as usize).saturating_add(1)),
        None => engine.history.capacity,
    }
}

/// Runs run `run` of `cfg` on `objective` with injected staleness.
///
/// # Panics
/// When `cfg` names another engine: a programming error, since
/// [`crate::run`] dispatches on the engine.
pub fn run_injected<O: Objective + ?Sized>(cfg: &RunConfig, objective: &O, run: u64) -> RunResult {
    run_injected_from(cfg, objective, run, None).0
}

/// Like [`run_injected`], but starting from `start` when given (instead of
/// the objective's initial point) and also returning the final parameters:
/// for scenarios that chain stages (E5's staged noise shrinking) or need
/// the final iterate itself (E5's histograms).
pub fn run_injected_from<O: Objective + ?Sized>(
    cfg: &RunConfig,
    objective: &O,
    run: u64,
    start: Option<&[f64]>,
) -> (RunResult, Vec<f64>) {
    let engine = cfg
        .injected()
        .expect("the injected engine runs injected-engine configurations");
    let started = Instant::now();
    let seeds = SeedTree::new(cfg.seed);
    let dim = objective.dim();
    let mut initial = vec![0.0; dim];
    match start {
        Some(s) => initial.copy_from_slice(s),
        None => objective.initial_point(&mut seeds.rng(run, 0, Stream::Init), &mut initial),
    }
    let rule = Rule::from_config(cfg);
    let mut server = ServerState::new(
        &initial,
        rule,
        history_capacity(engine),
        engine.history.policy,
    );
    let mut worker = Worker::new(0, seeds.rng(run, 0, Stream::Data), dim);
    let mut delay_rng = seeds.rng(run, 0, Stream::Delay);
    let mut staleness = StalenessHistogram::new();

    let mut rec = RunRecorder::new(cfg, objective);
    let mut outcome = Outcome::StepsReached;
    // A constant delay needs no draw: skip the model's dispatch on the hot path.
    let constant_delay = match engine.delay {
        Delay::Constant(c) => Some(c as u64),
        _ => None,
    };
    // A push log (`trace:pushes.csv`) replays its staleness in order, cycled.
    let replay: Option<&[f64]> = match &engine.delay {
        Delay::Trace {
            values,
            ordered: true,
            ..
        } => Some(values),
        _ => None,
    };
    let mut cursor = 0;
    for _ in 0..cfg.steps {
        if let Some(stop) = rec.before(server.version(), server.params(), || None) {
            outcome = stop;
            break;
        }
        let tau = match (constant_delay, replay) {
            (Some(tau), _) => tau,
            (None, Some(values)) => {
                let tau = values[cursor] as u64;
                cursor = if cursor + 1 == values.len() {
                    0
                } else {
                    cursor + 1
                };
                tau
            }
            (None, None) => engine.delay.sample_steps(&mut delay_rng),
        };
        let s = match server.serve(tau) {
            Served::Exact { staleness } | Served::Clamped { staleness } => staleness,
            Served::Dropped => continue,
        };
        let gradient = worker.compute(objective, server.stale_params(s));
        server.apply_stale(gradient, s);
        staleness.record(s);
        if let Some(stop) = rec.after(server.version(), server.params()) {
            outcome = stop;
            break;
        }
    }
    let crate::record::Finished {
        trace,
        final_error,
        tail_error,
        trace_params,
    } = rec.finish(outcome, server.version(), server.params(), None);
    // The accounting is checked on every engine by `engine::run` (`verify`).
    let counters = *server.counters();
    let result = RunResult {
        run,
        outcome,
        final_error,
        tail_error,
        trace,
        staleness,
        histograms: BTreeMap::new(),
        counters,
        wall_seconds: started.elapsed().as_secs_f64(),
        virtual_seconds: None,
        capped_sleeps: 0,
        workers: Vec::new(),
        pushes: None,
        final_params: cfg.record_params.then(|| server.params().to_vec()),
        trace_params,
    };
    (result, server.params().to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bound_near_2_pow_64_saturates_instead_of_wrapping_to_no_history() {
        // Validation refuses such models; the conversion must be safe anyway.
        for d in [
            Delay::Constant(2e19),
            Delay::Uniform {
                lo: 0.0,
                hi: u64::MAX as f64,
            },
            Delay::Constant(f64::INFINITY),
        ] {
            let cfg = InjectedConfig {
                delay: d,
                ..InjectedConfig::default()
            };
            assert_eq!(history_capacity(&cfg), cfg.history.capacity);
        }
        let cfg = InjectedConfig {
            delay: Delay::constant(10),
            ..InjectedConfig::default()
        };
        assert_eq!(history_capacity(&cfg), 11);
    }
}
