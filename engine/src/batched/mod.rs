//! The batched path of the injected engine: up to [`L`] runs of one
//! configuration advance in lockstep, one run per SIMD lane.
//!
//! Same model as [`crate::injected`] (eq. (2.1) of 001, staleness from the
//! delay model, served from a history of past versions), with structure-of-
//! arrays state and vector arithmetic across runs:
//!
//! * each run (lane) has its own xoshiro256++ data stream seeded from
//!   [`psim_common::SeedTree`] by (seed, run index) exactly like the scalar engine's, and
//!   its own delay stream; Gaussian data come from a vectorised Box–Muller
//!   transform ([`lanes::normal_pair`], relative error ≲ 10⁻⁸) instead of
//!   the scalar engine's ziggurat, so a run's numbers differ from the
//!   scalar engine's but follow the same law;
//! * a run's result depends only on (seed, configuration, run index): not on
//!   which runs share its batch, on the thread count, or on the CPU's
//!   vector width (every level computes the same IEEE operations per lane,
//!   fused multiply-adds included);
//! * divergence, the error trace, the tail window, target-error stops, the
//!   counters and the staleness histogram are kept per lane with
//!   [`crate::record::RunRecorder`]'s semantics: a lane that stops is
//!   snapshotted and no longer counted, the batch goes on until every lane
//!   has stopped or the steps are done.
//!
//! What is batched ([`unsupported`] says why not otherwise): the injected
//! engine on streaming PCA with dimension 2–8 (diagonal or full covariance,
//! Gaussian or uniform data, any start), every update rule and schedule,
//! every delay model under the `clamp` history policy, and under `drop`
//! constant delays or delays bounded within the history. [`run_runs`] is the
//! one place that decides, and falls back to the scalar engine.

mod kernel;
pub mod lanes;

use crate::EngineError;
use psim_common::config::HistoryPolicy;
use psim_common::{
    DataDistribution, Delay, Objective, ObjectiveConfig, RuleKind, RunConfig, RunResult, Schedule,
    StreamingPca,
};
use std::ops::Range;

pub use lanes::L;

/// The instruction set a batch kernel is compiled for, chosen at run time.
/// Every level computes bit-identical results.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Simd {
    /// AVX-512 (F, DQ, VL) with FMA: 8 lanes per vector.
    Avx512,
    /// AVX2 with FMA: 4 lanes per vector.
    Avx2,
    /// The build's baseline (SSE2 on x86-64; fused multiply-adds then go
    /// through the C library's correctly rounded `fma`, hence slow).
    Portable,
}

impl Simd {
    /// The best level this CPU supports, or the level the environment
    /// variable `PSIM_SIMD` (`avx512`, `avx2`, `portable`) names when this
    /// CPU has it (for benchmarks and profiles; results do not change).
    pub fn detect() -> Self {
        let forced = std::env::var("PSIM_SIMD").ok();
        for level in [Simd::Avx512, Simd::Avx2, Simd::Portable] {
            if forced.as_deref() == Some(level.name()) && level.available() {
                return level;
            }
        }
        #[cfg(target_arch = "x86_64")]
        {
            if Simd::Avx512.available() {
                return Simd::Avx512;
            }
            if Simd::Avx2.available() {
                return Simd::Avx2;
            }
        }
        Simd::Portable
    }

    /// Whether this CPU can run the level.
    pub fn available(self) -> bool {
        match self {
            Simd::Portable => true,
            #[cfg(target_arch = "x86_64")]
            Simd::Avx2 => is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma"),
            #[cfg(target_arch = "x86_64")]
            Simd::Avx512 => {
                Simd::Avx2.available()
                    && is_x86_feature_detected!("avx512f")
                    && is_x86_feature_detected!("avx512dq")
                    && is_x86_feature_detected!("avx512vl")
            }
            #[cfg(not(target_arch = "x86_64"))]
            _ => false,
        }
    }

    /// Lowercase name, as printed by `psim bench`.
    pub fn name(self) -> &'static str {
        match self {
            Simd::Avx512 => "avx512",
            Simd::Avx2 => "avx2",
            Simd::Portable => "portable",
        }
    }
}

/// How staleness is drawn.
#[derive(Debug, Clone)]
pub(crate) enum DelayPlan {
    /// The same staleness request every step (no draw).
    Constant(u64),
    /// One draw per lane and step from the lane's delay stream.
    Random(Delay),
}

/// Everything a batch needs, read from the configuration once.
#[derive(Debug, Clone)]
pub(crate) struct Plan {
    pub pca: StreamingPca,
    pub dim: usize,
    /// √λ_j (√(3λ_j) for uniform data).
    pub scales: Vec<f64>,
    /// Eigenvectors as rows, `None` for a diagonal Σ.
    pub basis: Option<Vec<f64>>,
    pub uniform: bool,
    pub rule: RuleKind,
    pub momentum: f64,
    pub step_size: f64,
    pub schedule: Schedule,
    pub delay: DelayPlan,
    /// Versions kept: stalenesses `0..cap` are served exactly, the policy
    /// applies beyond (as the scalar server's history).
    pub cap: u64,
    /// Length of the ring holding them: `cap` rounded up to a power of two.
    pub ring: u64,
    pub clamp: bool,
    pub steps: u64,
    pub record_every: u64,
    pub first_tail: u64,
    pub target: Option<f64>,
    pub limit2: f64,
    pub seed: u64,
    pub record_params: bool,
}

/// Why `cfg` runs on the scalar engine, or `None` when it is batched.
pub fn unsupported(cfg: &RunConfig) -> Option<&'static str> {
    Plan::new(cfg).err()
}

impl Plan {
    fn new(cfg: &RunConfig) -> Result<Self, &'static str> {
        let Some(injected) = cfg.injected() else {
            return Err("not the injected engine");
        };
        if injected.scalar {
            return Err("the scalar engine was asked for (engine.scalar, --scalar-engine)");
        }
        if let RuleKind::DelayAdaptive { .. } = cfg.rule {
            return Err("the delay-adaptive rule");
        }
        let ObjectiveConfig::Pca(pc) = &cfg.objective else {
            return Err("objective other than streaming PCA");
        };
        let pca = StreamingPca::new(pc).map_err(|_| "invalid PCA configuration")?;
        let dim = pca.dim();
        if !(2..=kernel::MAX_DIM).contains(&dim) {
            return Err("dimension above 8");
        }
        // The only reads of the delay and history settings.
        let (delay, history) = (&injected.delay, &injected.history);
        let cap = crate::injected::history_capacity(injected).max(1) as u64;
        let ring = cap.next_power_of_two();
        let clamp = history.policy == HistoryPolicy::Clamp;
        let delay = match delay {
            // A push log replays its staleness in order, run by run: the
            // scalar engine's sequential draw, not a per-lane resample.
            Delay::Trace { ordered: true, .. } => {
                return Err("a recorded push log replayed in order");
            }
            Delay::Constant(c) => DelayPlan::Constant(*c as u64),
            other => {
                let within = other
                    .upper_bound()
                    .is_some_and(|b| (b.round() as u64) < cap);
                if !clamp && !within {
                    return Err("random delays beyond the history under the drop policy");
                }
                DelayPlan::Random(other.clone())
            }
        };
        let uniform = pc.data == DataDistribution::Uniform;
        let factor = if uniform { 3.0 } else { 1.0 };
        let scales = pca
            .eigenvalues()
            .iter()
            .map(|l| (factor * l).sqrt())
            .collect();
        let basis = pc.covariance.as_ref().map(|_| {
            let mut rows = vec![0.0; dim * dim];
            for j in 0..dim {
                pca.eigenvector(j, &mut rows[j * dim..(j + 1) * dim]);
            }
            rows
        });
        let steps = cfg.steps;
        let tail_len = ((cfg.tail_fraction * steps as f64).ceil() as u64).clamp(1, steps);
        Ok(Self {
            pca,
            dim,
            scales,
            basis,
            uniform,
            rule: cfg.rule,
            momentum: cfg.momentum,
            step_size: cfg.step_size,
            schedule: cfg.schedule.clone(),
            delay,
            cap,
            ring,
            clamp,
            steps,
            record_every: cfg.record_every,
            first_tail: steps - tail_len + 1,
            target: cfg.target_error,
            limit2: cfg.divergence_norm * cfg.divergence_norm,
            seed: cfg.seed,
            record_params: cfg.record_params,
        })
    }
}

/// Runs `runs` of `cfg` on the batched path at the best SIMD level, or
/// `None` when the configuration is not batched ([`unsupported`]).
pub fn run_batched(cfg: &RunConfig, runs: Range<u64>) -> Option<Vec<RunResult>> {
    run_batched_with(cfg, runs, Simd::detect())
}

/// [`run_batched`] at a given SIMD level (which must be available).
pub fn run_batched_with(cfg: &RunConfig, runs: Range<u64>, simd: Simd) -> Option<Vec<RunResult>> {
    assert!(simd.available(), "{simd:?} is not available on this CPU");
    let plan = Plan::new(cfg).ok()?;
    let ids: Vec<u64> = runs.collect();
    let mut out = Vec::with_capacity(ids.len());
    for chunk in ids.chunks(L) {
        out.extend(kernel::dispatch(&plan, chunk, simd));
    }
    Some(out)
}

/// The one dispatch: runs `runs` of `cfg` on the batched path when it
/// supports the configuration, else run by run on the engine `cfg` names.
/// Results come in run order.
pub fn run_runs<O: Objective + Clone + 'static>(
    cfg: &RunConfig,
    objective: &O,
    runs: Range<u64>,
) -> Result<Vec<RunResult>, EngineError> {
    if let Some(results) = run_batched(cfg, runs.clone()) {
        // The accounting check of every run, in every build (`crate::verify`).
        return results.into_iter().map(crate::verify).collect();
    }
    runs.map(|r| crate::run(cfg, objective, r)).collect()
}
