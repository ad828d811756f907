//! The lockstep loop of one batch, generic over the dimension and compiled
//! once per SIMD level (the `#[target_feature]` wrappers at the bottom).
//!
//! Lockstep invariant: every lane that is still running has applied the
//! same number of updates (`version`). It holds because a lane never skips
//! an update alone: constant delays make the same serve decision in every
//! lane, and random delays are only batched when nothing is ever dropped
//! (clamp policy, or delays bounded within the history). Hence the trace
//! cadence, the tail window, the schedule and the history ring's head are
//! shared scalars, and only the staleness of random delays (a gather from
//! the ring) is per lane.

// Lane loops index several arrays in step; that is the form LLVM vectorises.
#![allow(clippy::needless_range_loop)]

use super::lanes::{fill_normals, fill_uniforms, LaneBits, LaneRng, PortableRng, F, L};
use super::{DelayPlan, Plan, Simd};
use psim_common::delay::DelayModel;
use psim_common::result::TracePoint;
use psim_common::seed::Stream;
use psim_common::{
    Objective, Outcome, PsimRng, RuleKind, RunResult, SeedTree, ServerCounters, StalenessHistogram,
};
use std::collections::BTreeMap;
use std::time::Instant;

/// Largest batched dimension.
pub const MAX_DIM: usize = 8;

/// A lane's state when it stopped.
struct End<const D: usize> {
    outcome: Outcome,
    version: u64,
    counters: ServerCounters,
    tail_sum: f64,
    tail_n: u64,
    params: [f64; D],
}

/// Runs the batch `runs` (1..=L run indices) at `simd`.
pub(super) fn dispatch(plan: &Plan, runs: &[u64], simd: Simd) -> Vec<RunResult> {
    macro_rules! at_dim {
        ($f:ident) => {
            match plan.dim {
                2 => $f::<2>(plan, runs),
                3 => $f::<3>(plan, runs),
                4 => $f::<4>(plan, runs),
                5 => $f::<5>(plan, runs),
                6 => $f::<6>(plan, runs),
                7 => $f::<7>(plan, runs),
                8 => $f::<8>(plan, runs),
                d => unreachable!("dimension {d} is not batched"),
            }
        };
    }
    match simd {
        // SAFETY: the caller checked `simd.available()`.
        #[cfg(target_arch = "x86_64")]
        Simd::Avx512 => unsafe { at_dim!(run_avx512) },
        #[cfg(target_arch = "x86_64")]
        Simd::Avx2 => unsafe { at_dim!(run_avx2) },
        _ => at_dim!(run_portable),
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512dq,avx512vl,avx2,fma")]
unsafe fn run_avx512<const D: usize>(plan: &Plan, runs: &[u64]) -> Vec<RunResult> {
    run::<D, PortableRng>(plan, runs)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn run_avx2<const D: usize>(plan: &Plan, runs: &[u64]) -> Vec<RunResult> {
    run::<D, super::lanes::Avx2Rng>(plan, runs)
}

fn run_portable<const D: usize>(plan: &Plan, runs: &[u64]) -> Vec<RunResult> {
    run::<D, PortableRng>(plan, runs)
}

/// Error of every lane: 1 − (q₁'v)²/‖v‖².
#[inline(always)]
fn errors<const D: usize>(plan: &Plan, v: &[F; D]) -> F {
    let mut top = [0.0; L];
    let mut norm2 = [0.0; L];
    for k in 0..D {
        let q = match &plan.basis {
            None => (k == 0) as u8 as f64,
            Some(b) => b[k],
        };
        for l in 0..L {
            top[l] = q.mul_add(v[k][l], top[l]);
            norm2[l] = v[k][l].mul_add(v[k][l], norm2[l]);
        }
    }
    let mut e = [0.0; L];
    for l in 0..L {
        e[l] = 1.0 - top[l] * top[l] / norm2[l];
    }
    e
}

/// Iterates the set bits of `mask`.
fn bits(mut mask: u32) -> impl Iterator<Item = usize> {
    std::iter::from_fn(move || {
        (mask != 0).then(|| {
            let l = mask.trailing_zeros() as usize;
            mask &= mask - 1;
            l
        })
    })
}

#[inline(always)]
fn run<const D: usize, B: LaneBits>(plan: &Plan, runs: &[u64]) -> Vec<RunResult> {
    let started = Instant::now();
    let n = runs.len();
    assert!((1..=L).contains(&n) && plan.dim == D);
    // Padding lanes repeat the last run; they start stopped and are never read.
    let run_of = |l: usize| runs[l.min(n - 1)];
    let seeds = SeedTree::new(plan.seed);

    let mut v = [[0.0; L]; D];
    let mut x0 = vec![0.0; D];
    for l in 0..L {
        plan.pca
            .initial_point(&mut seeds.rng(run_of(l), 0, Stream::Init), &mut x0);
        for k in 0..D {
            v[k][l] = x0[k];
        }
    }
    let mut prev = v;
    let cap = plan.cap;
    let mask = (plan.ring - 1) as usize;
    let mut ring: Vec<[F; D]> = if cap > 1 {
        vec![v; plan.ring as usize]
    } else {
        Vec::new()
    };
    let mut head = 0usize;

    let mut rng = LaneRng::new(&std::array::from_fn(|l| {
        seeds.seed(run_of(l), 0, Stream::Data)
    }));
    let mut delay_rngs: Vec<PsimRng> = match plan.delay {
        DelayPlan::Random(_) => (0..L)
            .map(|l| seeds.rng(run_of(l), 0, Stream::Delay))
            .collect(),
        DelayPlan::Constant(_) => Vec::new(),
    };
    // Data rows drawn ahead: 16 steps' worth (an even count of rows).
    let rows = 16 * D;
    let mut data = vec![[0.0; L]; rows];
    let mut used = rows;

    let scales: [f64; D] = std::array::from_fn(|k| plan.scales[k]);
    let mut basis = [[0.0; D]; D];
    if let Some(b) = &plan.basis {
        for j in 0..D {
            for k in 0..D {
                basis[j][k] = b[j * D + k];
            }
        }
    }
    let (mu, eta0) = (plan.momentum, plan.step_size);
    let lambda = match plan.rule {
        RuleKind::DcAsgd { lambda } => lambda,
        _ => 0.0,
    };

    // Staleness: per lane for random delays; for constant delays the served
    // sequence is shared, kept run-length encoded and replayed per lane.
    let mut hists: Vec<StalenessHistogram> = Vec::new();
    let mut served_rle: Vec<(u64, u64)> = Vec::new();
    let mut stale = [0u64; L];
    let mut clamped = [0u64; L];

    let mut traces: Vec<Vec<TracePoint>> = (0..n)
        .map(|_| Vec::with_capacity((plan.steps / plan.record_every + 2) as usize))
        .collect();
    let mut ends: Vec<Option<End<D>>> = (0..n).map(|_| None).collect();
    let mut active: u32 = (1u32 << n) - 1;
    let (mut version, mut received, mut dropped, mut clamped_all) = (0u64, 0u64, 0u64, 0u64);
    let mut tail_sum = [0.0; L];
    let mut tail_n = 0u64;
    let mut next_record = 0u64;
    let mut next_tail = plan.first_tail;

    macro_rules! end {
        ($l:expr, $outcome:expr) => {{
            let l = $l;
            ends[l] = Some(End {
                outcome: $outcome,
                version,
                counters: ServerCounters {
                    received,
                    applied: version,
                    dropped_too_stale: dropped,
                    dropped_after_stop: 0,
                    clamped: clamped_all + clamped[l],
                    cancelled: 0,
                },
                tail_sum: tail_sum[l],
                tail_n,
                params: std::array::from_fn(|k| v[k][l]),
            });
            active &= !(1u32 << l);
        }};
    }

    let cancel = crate::cancel::current();
    for _ in 0..plan.steps {
        // Cancelled (Ctrl-C): stop; the caller discards these runs.
        if version.is_multiple_of(crate::cancel::POLL_EVERY) && crate::cancel::raised(&cancel) {
            break;
        }
        // RunRecorder::before: trace at the cadence, target-error stops.
        if version >= next_record {
            next_record = version - version % plan.record_every + plan.record_every;
            let err = errors::<D>(plan, &v);
            for l in bits(active) {
                traces[l].push(TracePoint {
                    step: version,
                    error: err[l],
                    seconds: None,
                });
                if plan.target.is_some_and(|t| err[l] <= t) {
                    end!(l, Outcome::TargetErrorReached { step: version });
                }
            }
            if active == 0 {
                break;
            }
        }
        received += 1;

        // Serve: the stale parameters each lane's gradient is computed at.
        let xs: [F; D] = match &plan.delay {
            DelayPlan::Constant(tau) => {
                let tau = *tau;
                let s = if tau < cap {
                    tau.min(version)
                } else if version < cap {
                    version
                } else if plan.clamp {
                    clamped_all += 1;
                    cap - 1
                } else {
                    dropped += 1;
                    continue;
                };
                match served_rle.last_mut() {
                    Some((value, count)) if *value == s => *count += 1,
                    _ => served_rle.push((s, 1)),
                }
                if s == 0 {
                    v
                } else {
                    ring[head.wrapping_sub(s as usize) & mask]
                }
            }
            DelayPlan::Random(delay) => {
                if hists.is_empty() {
                    hists = (0..n).map(|_| StalenessHistogram::new()).collect();
                }
                for l in 0..L {
                    let tau = delay.sample_steps(&mut delay_rngs[l]);
                    stale[l] = if tau < cap {
                        tau.min(version)
                    } else if version < cap {
                        version
                    } else {
                        // Only the clamp policy gets here (see Plan::new).
                        clamped[l] += 1;
                        cap - 1
                    };
                }
                for l in bits(active) {
                    hists[l].record(stale[l]);
                }
                if cap == 1 {
                    v
                } else {
                    let mut xs = [[0.0; L]; D];
                    for l in 0..L {
                        let slot = &ring[head.wrapping_sub(stale[l] as usize) & mask];
                        for k in 0..D {
                            xs[k][l] = slot[k][l];
                        }
                    }
                    xs
                }
            }
        };

        // The data point x and the negated Hebbian gradient −a(x − a·s).
        if used + D > rows {
            if plan.uniform {
                fill_uniforms::<B>(&mut rng, &mut data);
            } else {
                fill_normals::<B>(&mut rng, &mut data);
            }
            used = 0;
        }
        let z = &data[used..used + D];
        used += D;
        let mut x = [[0.0; L]; D];
        if plan.basis.is_none() {
            for k in 0..D {
                for l in 0..L {
                    x[k][l] = scales[k] * z[k][l];
                }
            }
        } else {
            for j in 0..D {
                for l in 0..L {
                    let y = scales[j] * z[j][l];
                    for k in 0..D {
                        x[k][l] = y.mul_add(basis[j][k], x[k][l]);
                    }
                }
            }
        }
        let mut a = [0.0; L];
        for k in 0..D {
            for l in 0..L {
                a[l] = x[k][l].mul_add(xs[k][l], a[l]);
            }
        }
        let mut g = [[0.0; L]; D];
        for k in 0..D {
            for l in 0..L {
                g[k][l] = -a[l] * (-a[l]).mul_add(xs[k][l], x[k][l]);
            }
        }

        // The update rule, η_k = η·schedule(k) shared by the lanes.
        let eta = eta0 * plan.schedule.factor(version);
        match plan.rule {
            RuleKind::Sgd => {
                for k in 0..D {
                    for l in 0..L {
                        prev[k][l] = v[k][l];
                        v[k][l] = (-eta).mul_add(g[k][l], v[k][l]);
                    }
                }
            }
            RuleKind::HeavyBall => {
                for k in 0..D {
                    for l in 0..L {
                        let now = v[k][l];
                        v[k][l] = (-eta).mul_add(g[k][l], mu.mul_add(now - prev[k][l], now));
                        prev[k][l] = now;
                    }
                }
            }
            RuleKind::StalenessAware => {
                let eta_l: F = match &plan.delay {
                    DelayPlan::Constant(_) => {
                        let s = served_rle.last().map_or(0, |r| r.0);
                        [eta / s.max(1) as f64; L]
                    }
                    DelayPlan::Random(_) => std::array::from_fn(|l| eta / stale[l].max(1) as f64),
                };
                for k in 0..D {
                    for l in 0..L {
                        let now = v[k][l];
                        v[k][l] = (-eta_l[l]).mul_add(g[k][l], mu.mul_add(now - prev[k][l], now));
                        prev[k][l] = now;
                    }
                }
            }
            RuleKind::Nesterov => {
                for k in 0..D {
                    for l in 0..L {
                        let u = (-eta).mul_add(g[k][l], mu * (v[k][l] - prev[k][l]));
                        v[k][l] += (-eta).mul_add(g[k][l], mu * u);
                        prev[k][l] = v[k][l] - u;
                    }
                }
            }
            RuleKind::DelayAdaptive { .. } => {
                unreachable!("the batched plan refuses delay-adaptive (Plan::new)")
            }
            RuleKind::DcAsgd { .. } => {
                for k in 0..D {
                    for l in 0..L {
                        let now = v[k][l];
                        let gk = g[k][l];
                        let gc = (lambda * gk * gk).mul_add(now - xs[k][l], gk);
                        v[k][l] = (-eta).mul_add(gc, mu.mul_add(now - prev[k][l], now));
                        prev[k][l] = now;
                    }
                }
            }
        }
        if cap > 1 {
            head = (head + 1) & mask;
            ring[head] = v;
        }
        version += 1;

        // RunRecorder::after: divergence, then the tail window.
        let mut norm2 = [0.0; L];
        for k in 0..D {
            for l in 0..L {
                norm2[l] = v[k][l].mul_add(v[k][l], norm2[l]);
            }
        }
        let mut bad = 0u32;
        // `!(x <= limit)` is true for NaN as well, as RunRecorder::after wants.
        #[allow(clippy::neg_cmp_op_on_partial_ord)]
        for l in 0..L {
            bad |= ((!(norm2[l] <= plan.limit2)) as u32) << l;
        }
        bad &= active;
        if bad != 0 {
            for l in bits(bad) {
                end!(l, Outcome::Diverged { step: version });
            }
            if active == 0 {
                break;
            }
        }
        if version >= next_tail {
            next_tail = version + crate::record::TAIL_STRIDE;
            let err = errors::<D>(plan, &v);
            for l in 0..L {
                tail_sum[l] += err[l];
            }
            tail_n += 1;
        }
    }
    for l in bits(active) {
        end!(l, Outcome::StepsReached);
    }
    debug_assert_eq!(active, 0);

    let wall = started.elapsed().as_secs_f64() / n as f64;
    let mut hists = hists.into_iter();
    ends.into_iter()
        .zip(traces)
        .enumerate()
        .map(|(l, (end, trace))| {
            let end = end.expect("every lane ends");
            let staleness = match &plan.delay {
                DelayPlan::Random(_) => hists.next().unwrap_or_default(),
                DelayPlan::Constant(_) => {
                    let mut h = StalenessHistogram::new();
                    let mut left = end.version;
                    for &(value, count) in &served_rle {
                        let c = count.min(left);
                        h.record_n(value, c);
                        left -= c;
                        if left == 0 {
                            break;
                        }
                    }
                    h
                }
            };
            let (trace, final_error, tail_error) = crate::record::close(
                end.outcome,
                end.version,
                trace,
                || plan.pca.error(&end.params),
                (end.tail_sum, end.tail_n),
                None,
            );
            RunResult {
                run: runs[l],
                outcome: end.outcome,
                final_error,
                tail_error,
                trace,
                staleness,
                histograms: BTreeMap::new(),
                counters: end.counters,
                wall_seconds: wall,
                virtual_seconds: None,
                capped_sleeps: 0,
                workers: Vec::new(),
                pushes: None,
                final_params: plan.record_params.then(|| end.params.to_vec()),
                // The batched kernel keeps no trace of parameters (its lanes
                // record errors only).
                trace_params: None,
            }
        })
        .collect()
}
