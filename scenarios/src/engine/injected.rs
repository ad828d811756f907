//! The injected-staleness engine: eq. (2.1) of 001 exactly.
//!
//! One run is a loop in one thread: at step k draw τ_k from the delay
//! model, compute the gradient at v_{k−τ_k} (served from the server's
//! history), apply it. Deterministic: a run depends only on
//! (seed, run index, configuration), never on scheduling.

use psim_common::delay::DelayModel;
use psim_common::result::TracePoint;
use psim_common::seed::Stream;
use psim_common::{Delay, Objective, Outcome, RunConfig, RunResult, SeedTree, StalenessHistogram};
use psim_server::{HeavyBall, Served, ServerState};
use psim_worker::Worker;
use std::collections::BTreeMap;
use std::time::Instant;

/// The tail error is sampled every this many steps (an unbiased estimate of
/// the time average that costs an error evaluation 1/8 as often).
pub const TAIL_STRIDE: u64 = 8;

/// History the run needs: the configured capacity, cut to what a bounded
/// delay model can ask for.
pub fn history_capacity(cfg: &RunConfig) -> usize {
    match cfg.delay.upper_bound() {
        Some(b) => cfg.history.capacity.min(b.round() as usize + 1),
        None => cfg.history.capacity,
    }
}

/// Runs run `run` of `cfg` on `objective` with injected staleness.
pub fn run_injected<O: Objective + ?Sized>(cfg: &RunConfig, objective: &O, run: u64) -> RunResult {
    let started = Instant::now();
    let seeds = SeedTree::new(cfg.seed);
    let dim = objective.dim();
    let mut initial = vec![0.0; dim];
    objective.initial_point(&mut seeds.rng(run, 0, Stream::Init), &mut initial);
    let rule = HeavyBall {
        momentum: cfg.momentum,
        step_size: cfg.step_size,
    };
    let mut server = ServerState::new(&initial, rule, history_capacity(cfg), cfg.history.policy);
    let mut worker = Worker::new(0, seeds.rng(run, 0, Stream::Data), dim);
    let mut delay_rng = seeds.rng(run, 0, Stream::Delay);
    let mut staleness = StalenessHistogram::new();

    let steps = cfg.steps;
    let tail_len = ((cfg.tail_fraction * steps as f64).ceil() as u64).clamp(1, steps);
    let tail_start = steps - tail_len;
    let limit2 = cfg.divergence_norm * cfg.divergence_norm;
    let mut trace = Vec::with_capacity((steps / cfg.record_every + 2) as usize);
    let (mut tail_sum, mut tail_n) = (0.0, 0u64);
    let mut outcome = Outcome::StepsReached;

    // Countdowns instead of `k % n`: a 64-bit division per step costs more
    // than the rest of the bookkeeping together.
    let mut until_record = 0u64;
    // A constant delay needs no draw: skip the model's dispatch on the hot path.
    let constant_delay = match cfg.delay {
        Delay::Constant(c) => Some(c as u64),
        _ => None,
    };
    let mut until_tail_sample = tail_start;
    for _ in 0..steps {
        if until_record == 0 {
            until_record = cfg.record_every;
            let error = objective.error(server.params());
            trace.push(TracePoint {
                step: server.version(),
                error,
                seconds: None,
            });
            if let Some(target) = cfg.target_error {
                if error <= target {
                    outcome = Outcome::TargetErrorReached {
                        step: server.version(),
                    };
                    break;
                }
            }
        }
        until_record -= 1;
        if until_tail_sample == 0 {
            until_tail_sample = TAIL_STRIDE;
            tail_sum += objective.error(server.params());
            tail_n += 1;
        }
        until_tail_sample -= 1;
        let tau = match constant_delay {
            Some(tau) => tau,
            None => cfg.delay.sample_steps(&mut delay_rng),
        };
        let s = match server.serve(tau) {
            Served::Exact { staleness } | Served::Clamped { staleness } => staleness,
            Served::Dropped => continue,
        };
        let gradient = worker.compute(objective, server.stale_params(s));
        server.apply_stale(gradient, s);
        staleness.record(s);
        let norm2: f64 = server.params().iter().map(|x| x * x).sum();
        if norm2.is_nan() || norm2 > limit2 {
            outcome = Outcome::Diverged {
                step: server.version(),
            };
            break;
        }
    }

    let (final_error, tail_error) = if outcome.diverged() {
        (f64::NAN, f64::NAN)
    } else {
        let e = objective.error(server.params());
        trace.push(TracePoint {
            step: server.version(),
            error: e,
            seconds: None,
        });
        (
            e,
            if tail_n > 0 {
                tail_sum / tail_n as f64
            } else {
                e
            },
        )
    };
    let counters = *server.counters();
    debug_assert!(counters.check().is_ok());
    RunResult {
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
    }
}
