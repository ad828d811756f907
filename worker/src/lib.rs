//! The worker side of the parameter server: one step is fetch (a possibly
//! stale copy of the parameters), compute a stochastic gradient, push.
//!
//! [`Worker`] owns what a worker owns (its random stream and gradient
//! buffer) and computes one gradient without allocating. Every engine drives
//! the same `Worker`, whether it is a loop iteration in the injected engine,
//! an event in virtual time, an OS thread or a tokio task.

pub mod runner;

use psim_common::{Objective, PsimRng};

/// One worker's private state.
#[derive(Debug, Clone)]
pub struct Worker {
    id: u64,
    rng: PsimRng,
    gradient: Vec<f64>,
}

impl Worker {
    /// Worker `id` drawing its data from `rng`, for a problem of dimension `dim`.
    pub fn new(id: u64, rng: PsimRng, dim: usize) -> Self {
        Self {
            id,
            rng,
            gradient: vec![0.0; dim],
        }
    }

    /// The worker's index.
    pub fn id(&self) -> u64 {
        self.id
    }

    /// Computes one stochastic gradient of `objective` at `params` and
    /// returns it (valid until the next call).
    #[inline]
    pub fn compute<O: Objective + ?Sized>(&mut self, objective: &O, params: &[f64]) -> &[f64] {
        gradient_into(
            objective,
            self.id,
            params,
            &mut self.rng,
            &mut self.gradient,
        );
        &self.gradient
    }

    /// The last gradient computed.
    pub fn gradient(&self) -> &[f64] {
        &self.gradient
    }

    /// The worker's random stream, for engines that draw delays per worker.
    pub fn rng_mut(&mut self) -> &mut PsimRng {
        &mut self.rng
    }
}

/// One stochastic gradient of worker `id` at `params` into `out`, drawing
/// from `rng`: what [`Worker::compute`] does, for an engine that keeps its
/// workers' streams and buffers in flat arrays of its own (the virtual-time
/// engine, whose 10⁶ workers would otherwise cost a heap allocation each
/// and a cache line more per event).
#[inline]
pub fn gradient_into<O: Objective + ?Sized>(
    objective: &O,
    id: u64,
    params: &[f64],
    rng: &mut PsimRng,
    out: &mut [f64],
) {
    objective.worker_gradient(id, params, rng, out);
}

#[cfg(test)]
mod tests {
    use super::*;
    use psim_common::{PcaConfig, StreamingPca};
    use rand::SeedableRng;

    #[test]
    fn same_stream_same_gradient() {
        let p = StreamingPca::new(&PcaConfig::default()).unwrap();
        let mut a = Worker::new(0, PsimRng::seed_from_u64(5), 4);
        let mut b = Worker::new(1, PsimRng::seed_from_u64(5), 4);
        let x = [0.1, 0.9, 0.0, 0.1];
        assert_eq!(a.compute(&p, &x).to_vec(), b.compute(&p, &x).to_vec());
        assert_ne!(a.compute(&p, &x).to_vec(), b.gradient().to_vec());
    }
}
