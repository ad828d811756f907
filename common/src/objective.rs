//! The objective trait: what a worker differentiates and how far a point is
//! from the optimum.
//!
//! Engines only see this trait, so streaming PCA, the MLP of E2 and the
//! landscapes of E3–E6 plug into every engine unchanged. Gradients are
//! written into a caller-owned buffer so that the hot loop never allocates.

use crate::config::ObjectiveConfig;
use crate::error::ConfigError;
use crate::landscape::{Saddle, Spiky, Wells};
use crate::mlp::Mlp;
use crate::pca::StreamingPca;
use crate::seed::PsimRng;

/// A stochastic objective to *minimise* through the parameter server.
///
/// Maximisation problems (streaming PCA) return the negated ascent direction
/// from [`Objective::gradient`], so every update rule reads
/// `v ← v + μ(v − v_prev) − η·g`.
pub trait Objective: Send + Sync {
    /// Number of parameters.
    fn dim(&self) -> usize;

    /// Writes the starting point into `out` (length [`Objective::dim`]);
    /// `rng` serves objectives with random starts.
    fn initial_point(&self, rng: &mut PsimRng, out: &mut [f64]);

    /// Writes one stochastic gradient at `point` into `out`, drawing its
    /// data from `rng`. Must not allocate.
    fn gradient(&self, point: &[f64], rng: &mut PsimRng, out: &mut [f64]);

    /// [`Objective::gradient`] as computed by worker `worker` (what every
    /// engine's `Worker::compute` calls). The default ignores the worker;
    /// an objective that keeps state per worker (the Python package's
    /// adapter gives each worker its own instance of the user's object)
    /// overrides it.
    #[inline]
    fn worker_gradient(&self, worker: u64, point: &[f64], rng: &mut PsimRng, out: &mut [f64]) {
        let _ = worker;
        self.gradient(point, rng, out)
    }

    /// The optimisation error at `point` (0 at the optimum); engines record
    /// it on a trace and at the end of a run.
    fn error(&self, point: &[f64]) -> f64;

    /// Sees each point of a run's error trace (every `record_every`
    /// updates, and the run's last state) with its parameters and error,
    /// on the server's side; returns true to end the run there
    /// ([`crate::Outcome::Stopped`]; the last point's answer is ignored).
    /// The default does nothing, so the built-in objectives cost nothing
    /// here; the Python package's adapter evaluates the user's `metrics`
    /// and `callback` in it.
    #[inline]
    fn on_trace_point(&self, step: u64, params: &[f64], error: f64) -> bool {
        let _ = (step, params, error);
        false
    }
}

/// Runs `$body` with `$n` bound to a compile-time constant for the small
/// dimensions psim simulates most (2, 3, 4, 8) and to 0 otherwise, so that
/// `fixed::<N>(slice)` re-slices to a constant length and loops unroll.
#[macro_export]
macro_rules! with_small_dim {
    ($d:expr, $n:ident => $body:expr) => {
        match $d {
            2 => {
                const $n: usize = 2;
                $body
            }
            3 => {
                const $n: usize = 3;
                $body
            }
            4 => {
                const $n: usize = 4;
                $body
            }
            8 => {
                const $n: usize = 8;
                $body
            }
            _ => {
                const $n: usize = 0;
                $body
            }
        }
    };
}

/// `x[..N]` for N > 0 (a slice of constant length the optimiser can
/// unroll over), `x` itself for N = 0.
#[inline(always)]
pub fn fixed<const N: usize>(x: &[f64]) -> &[f64] {
    if N > 0 {
        &x[..N]
    } else {
        x
    }
}

/// Mutable [`fixed`].
#[inline(always)]
pub fn fixed_mut<const N: usize>(x: &mut [f64]) -> &mut [f64] {
    if N > 0 {
        &mut x[..N]
    } else {
        x
    }
}

/// Every objective psim knows, dispatched statically (a predictable branch
/// rather than a virtual call on the hot path). Built from its configuration.
#[derive(Debug, Clone)]
pub enum AnyObjective {
    /// Streaming PCA.
    Pca(StreamingPca),
    /// Strict-saddle quadratic (E4, E6).
    Saddle(Saddle),
    /// Spiky 1-D function (E5).
    Spiky(Spiky),
    /// Sharp/flat wells with a saddle (E6).
    Wells(Wells),
    /// The digits MLP of E2.
    Mlp(Mlp),
    /// The convex quadratic of the asynchronous-SGD papers.
    Quadratic(crate::quadratic::Quadratic),
}

impl AnyObjective {
    /// Builds and validates the objective a configuration describes.
    pub fn build(cfg: &ObjectiveConfig) -> Result<Self, ConfigError> {
        Ok(match cfg {
            ObjectiveConfig::Pca(p) => AnyObjective::Pca(StreamingPca::new(p)?),
            ObjectiveConfig::Saddle(c) => AnyObjective::Saddle(Saddle::new(c)?),
            ObjectiveConfig::Spiky(c) => AnyObjective::Spiky(Spiky::new(c)?),
            ObjectiveConfig::Wells(c) => AnyObjective::Wells(Wells::new(c)?),
            ObjectiveConfig::Mlp(m) => AnyObjective::Mlp(Mlp::new(m)?),
            ObjectiveConfig::Quadratic(q) => {
                AnyObjective::Quadratic(crate::quadratic::Quadratic::new(q)?)
            }
        })
    }
}

macro_rules! dispatch {
    ($self:ident, $o:ident => $e:expr) => {
        match $self {
            AnyObjective::Pca($o) => $e,
            AnyObjective::Saddle($o) => $e,
            AnyObjective::Spiky($o) => $e,
            AnyObjective::Wells($o) => $e,
            AnyObjective::Mlp($o) => $e,
            AnyObjective::Quadratic($o) => $e,
        }
    };
}

impl Objective for AnyObjective {
    fn dim(&self) -> usize {
        dispatch!(self, o => o.dim())
    }
    fn initial_point(&self, rng: &mut PsimRng, out: &mut [f64]) {
        dispatch!(self, o => o.initial_point(rng, out))
    }
    #[inline]
    fn gradient(&self, point: &[f64], rng: &mut PsimRng, out: &mut [f64]) {
        dispatch!(self, o => o.gradient(point, rng, out))
    }
    #[inline]
    fn error(&self, point: &[f64]) -> f64 {
        dispatch!(self, o => o.error(point))
    }
}
