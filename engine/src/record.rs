//! The bookkeeping every engine shares: the error trace at a cadence, the
//! target-error and step-limit stops, the tail-error window and divergence
//! detection. One implementation, so that every engine's `RunResult` means
//! the same thing.
//!
//! Engines call [`RunRecorder::before`] on the state after `version`
//! updates, before they draw or apply the next one, and
//! [`RunRecorder::after`] right after an update produced `version`. The hot
//! path is two comparisons and a squared norm: cadences are kept as "next
//! version due", not as a division per step.

use psim_common::result::TracePoint;
use psim_common::{Objective, Outcome, RunConfig};
use std::ops::Deref;

/// The tail error is sampled every this many updates: an unbiased estimate
/// of the time average at an eighth of the error evaluations.
pub const TAIL_STRIDE: u64 = 8;

/// Trace, stops, tail window and divergence of one run. `P` is how the
/// engine holds its objective (`&O` or `Arc<O>`).
#[derive(Debug)]
pub struct RunRecorder<P> {
    objective: P,
    record_every: u64,
    steps: u64,
    target: Option<f64>,
    limit2: f64,
    next_record: u64,
    next_tail: u64,
    tail_sum: f64,
    tail_n: u64,
    trace: Vec<TracePoint>,
    /// The parameters at every trace point, when the configuration asks
    /// for them (`record_trace_params`), up to [`MAX_TRACE_PARAMS`] values.
    trace_params: Option<Vec<f64>>,
    cancel: Option<std::sync::Arc<std::sync::atomic::AtomicBool>>,
}

/// Most parameter values a run keeps of its trace points (8 MB): a longer
/// trace keeps the parameters of its first points only (see
/// [`Finished::trace_params`]).
pub const MAX_TRACE_PARAMS: usize = 1 << 20;

/// The end of a run as the recorder closes it ([`RunRecorder::finish`]).
#[derive(Debug, Clone, PartialEq)]
pub struct Finished {
    /// The error trace, closed with a point at the last version.
    pub trace: Vec<TracePoint>,
    /// Error at the end (NaN when diverged).
    pub final_error: f64,
    /// Mean error over the tail window (NaN when diverged).
    pub tail_error: f64,
    /// The parameters at the trace's points, point after point (`dim`
    /// values each), when the configuration asks for them
    /// (`record_trace_params`): the first `len / dim` points of `trace`, all of
    /// them unless the run would have kept more than [`MAX_TRACE_PARAMS`]
    /// values.
    pub trace_params: Option<Vec<f64>>,
}

impl<P> RunRecorder<P>
where
    P: Deref,
    P::Target: Objective,
{
    /// A recorder for a run of `cfg`. The tail window is the states after
    /// updates `steps − ⌈tail_fraction·steps⌉ + 1 ..= steps`.
    pub fn new(cfg: &RunConfig, objective: P) -> Self {
        let steps = cfg.steps;
        let tail_len = ((cfg.tail_fraction * steps as f64).ceil() as u64).clamp(1, steps);
        Self {
            objective,
            record_every: cfg.record_every,
            steps,
            target: cfg.target_error,
            limit2: cfg.divergence_norm * cfg.divergence_norm,
            next_record: 0,
            next_tail: steps - tail_len + 1,
            tail_sum: 0.0,
            tail_n: 0,
            // Bounded: `steps` may be huge (validation caps the points, not
            // the steps), and the trace grows as it is recorded.
            trace: Vec::with_capacity((steps / cfg.record_every).min(4096) as usize + 2),
            trace_params: cfg.record_trace_params.then(Vec::new),
            cancel: crate::cancel::current(),
        }
    }

    /// Observes the state after `version` updates before the next one:
    /// returns the outcome when the run must stop (step limit, target
    /// error, or the objective's [`Objective::on_trace_point`] at a trace
    /// point).
    /// `seconds` is only called when a trace point is recorded.
    #[inline]
    pub fn before(
        &mut self,
        version: u64,
        params: &[f64],
        seconds: impl FnOnce() -> Option<f64>,
    ) -> Option<Outcome> {
        if version >= self.steps {
            return Some(Outcome::StepsReached);
        }
        // Cancelled (Ctrl-C): the run stops here and its caller discards it.
        if version.is_multiple_of(crate::cancel::POLL_EVERY) && crate::cancel::raised(&self.cancel)
        {
            return Some(Outcome::StepsReached);
        }
        if version >= self.next_record {
            self.next_record = version - version % self.record_every + self.record_every;
            let error = self.objective.error(params);
            self.trace.push(TracePoint {
                step: version,
                error,
                seconds: seconds(),
            });
            keep_params(&mut self.trace_params, params);
            if self.target.is_some_and(|t| error <= t) {
                return Some(Outcome::TargetErrorReached { step: version });
            }
            if self.objective.on_trace_point(version, params, error) {
                return Some(Outcome::Stopped { step: version });
            }
        }
        None
    }

    /// Observes the state right after an update produced `version`: returns
    /// `Diverged` when ‖v‖ is non-finite or above the threshold, and samples
    /// the tail error.
    #[inline]
    pub fn after(&mut self, version: u64, params: &[f64]) -> Option<Outcome> {
        let norm2: f64 = params.iter().map(|x| x * x).sum();
        if norm2.is_nan() || norm2 > self.limit2 {
            return Some(Outcome::Diverged { step: version });
        }
        if version >= self.next_tail {
            self.next_tail = version + TAIL_STRIDE;
            self.tail_sum += self.objective.error(params);
            self.tail_n += 1;
        }
        None
    }

    /// Observes the state right after an update produced `version`, as a
    /// server core's monitor does: [`RunRecorder::after`], then
    /// [`RunRecorder::before`] the next update.
    #[inline]
    pub fn on_update(
        &mut self,
        version: u64,
        params: &[f64],
        seconds: impl FnOnce() -> Option<f64>,
    ) -> Option<Outcome> {
        self.after(version, params)
            .or_else(|| self.before(version, params, seconds))
    }

    /// Ends the run at `version` with `params`: the trace (with a final
    /// point, shown to [`Objective::on_trace_point`] when new), the final
    /// error and the tail error, both NaN when diverged, and the kept
    /// parameters of the trace points.
    pub fn finish(
        self,
        outcome: Outcome,
        version: u64,
        params: &[f64],
        seconds: Option<f64>,
    ) -> Finished {
        let mut trace_params = self.trace_params;
        let objective = &self.objective;
        let recorded = self.trace.len();
        let (trace, error, tail) = close(
            outcome,
            version,
            self.trace,
            || objective.error(params),
            (self.tail_sum, self.tail_n),
            seconds,
        );
        // The closing point the trace just got: the objective sees it too
        // (the run ends here whatever it answers).
        if trace.len() > recorded {
            let _ = objective.on_trace_point(version, params, error);
            keep_params(&mut trace_params, params);
        }
        Finished {
            trace,
            final_error: error,
            tail_error: tail,
            trace_params,
        }
    }

    /// The objective the recorder evaluates.
    pub fn objective(&self) -> &P::Target {
        &self.objective
    }
}

/// Appends `params` to the kept trace parameters, unless that would pass
/// [`MAX_TRACE_PARAMS`] (the kept ones stay a prefix of the trace).
#[inline]
fn keep_params(kept: &mut Option<Vec<f64>>, params: &[f64]) {
    if let Some(k) = kept {
        if k.len() + params.len() <= MAX_TRACE_PARAMS {
            k.extend_from_slice(params);
        }
    }
}

/// The end of a run, the one implementation every engine uses (the
/// scalar engines through [`RunRecorder::finish`], the batched kernel per
/// lane): the trace closed with a point at `version` unless it has one,
/// the final error and the tail error (the mean of the `(sum, count)`
/// tail samples, or the final error when none was taken); both NaN when
/// the run diverged. `error` evaluates the error of the final parameters.
pub fn close(
    outcome: Outcome,
    version: u64,
    mut trace: Vec<TracePoint>,
    error: impl FnOnce() -> f64,
    (tail_sum, tail_n): (f64, u64),
    seconds: Option<f64>,
) -> (Vec<TracePoint>, f64, f64) {
    if outcome.diverged() {
        return (trace, f64::NAN, f64::NAN);
    }
    let error = error();
    if trace.last().map(|p| p.step) != Some(version) {
        trace.push(TracePoint {
            step: version,
            error,
            seconds,
        });
    }
    let tail = if tail_n > 0 {
        tail_sum / tail_n as f64
    } else {
        error
    };
    (trace, error, tail)
}

#[cfg(test)]
mod tests {
    use super::*;
    use psim_common::{AnyObjective, RunConfig};

    #[test]
    fn cadence_tail_window_and_divergence() {
        let cfg = RunConfig {
            steps: 100,
            record_every: 30,
            tail_fraction: 0.2,
            target_error: Some(-1.0),
            ..RunConfig::default()
        };
        let obj = AnyObjective::build(&cfg.objective).unwrap();
        let mut rec = RunRecorder::new(&cfg, &obj);
        let p = [0.6, 0.8, 0.0, 0.0]; // error 0.64
        for v in 0..100 {
            assert_eq!(rec.before(v, &p, || None), None);
            assert_eq!(rec.after(v + 1, &p), None);
        }
        assert_eq!(rec.before(100, &p, || None), Some(Outcome::StepsReached));
        assert_eq!(rec.tail_n, 3, "states after updates 81, 89, 97");
        let Finished {
            trace,
            final_error: fin,
            tail_error: tail,
            trace_params,
        } = rec.finish(Outcome::StepsReached, 100, &p, None);
        assert_eq!(trace_params, None, "not kept unless record_trace_params");
        assert_eq!(
            trace.iter().map(|t| t.step).collect::<Vec<_>>(),
            vec![0, 30, 60, 90, 100]
        );
        assert!((fin - 0.64).abs() < 1e-12 && (tail - 0.64).abs() < 1e-12);
        let mut rec = RunRecorder::new(&cfg, &obj);
        assert_eq!(
            rec.after(7, &[f64::NAN, 0.0, 0.0, 0.0]),
            Some(Outcome::Diverged { step: 7 })
        );
        assert_eq!(
            rec.after(8, &[2e6, 0.0, 0.0, 0.0]),
            Some(Outcome::Diverged { step: 8 })
        );
    }

    /// Streaming PCA that asks to stop at its trace point `at`, and counts
    /// the trace points it sees.
    struct StopAt {
        inner: AnyObjective,
        at: u64,
        seen: std::sync::Mutex<Vec<u64>>,
    }

    impl Objective for StopAt {
        fn dim(&self) -> usize {
            self.inner.dim()
        }
        fn initial_point(&self, rng: &mut psim_common::PsimRng, out: &mut [f64]) {
            self.inner.initial_point(rng, out)
        }
        fn gradient(&self, point: &[f64], rng: &mut psim_common::PsimRng, out: &mut [f64]) {
            self.inner.gradient(point, rng, out)
        }
        fn error(&self, point: &[f64]) -> f64 {
            self.inner.error(point)
        }
        fn on_trace_point(&self, step: u64, _params: &[f64], _error: f64) -> bool {
            self.seen.lock().unwrap().push(step);
            step == self.at
        }
    }

    #[test]
    fn the_objective_sees_every_trace_point_and_may_stop_at_one() {
        let cfg = RunConfig {
            steps: 100,
            record_every: 30,
            ..RunConfig::default()
        };
        let obj = StopAt {
            inner: AnyObjective::build(&cfg.objective).unwrap(),
            at: 60,
            seen: Default::default(),
        };
        let mut rec = RunRecorder::new(&cfg, &obj);
        let p = [0.6, 0.8, 0.0, 0.0];
        let mut stop = None;
        for v in 0..100 {
            stop = rec.before(v, &p, || None);
            if stop.is_some() {
                break;
            }
        }
        assert_eq!(stop, Some(Outcome::Stopped { step: 60 }));
        let trace = rec
            .finish(Outcome::Stopped { step: 60 }, 60, &p, None)
            .trace;
        assert_eq!(
            trace.iter().map(|t| t.step).collect::<Vec<_>>(),
            [0, 30, 60]
        );
        assert_eq!(
            *obj.seen.lock().unwrap(),
            [0, 30, 60],
            "no closing point: 60 is on the trace"
        );
        // A run that ends between trace points: the closing point is shown too.
        let obj = StopAt {
            at: u64::MAX,
            ..obj
        };
        obj.seen.lock().unwrap().clear();
        let mut rec = RunRecorder::new(&cfg, &obj);
        for v in 0..100 {
            assert_eq!(rec.before(v, &p, || None), None);
        }
        let _ = rec.finish(Outcome::StepsReached, 100, &p, None);
        assert_eq!(*obj.seen.lock().unwrap(), [0, 30, 60, 90, 100]);
    }

    /// With `record_trace_params`, the parameters of every trace point are
    /// kept, the closing point's included, in the trace's order; a user's
    /// `record_params` (final parameters) alone keeps none of them.
    #[test]
    fn keeps_the_parameters_of_every_trace_point() {
        let finals_only = RunConfig {
            steps: 5,
            record_params: true,
            ..RunConfig::default()
        };
        let obj = AnyObjective::build(&finals_only.objective).unwrap();
        let rec = RunRecorder::new(&finals_only, &obj);
        let f = rec.finish(Outcome::StepsReached, 0, &[0.0, 0.0, 0.0, 1.0], None);
        assert_eq!(
            f.trace_params, None,
            "record_params keeps final parameters only"
        );
        let cfg = RunConfig {
            steps: 5,
            record_every: 2,
            record_trace_params: true,
            ..RunConfig::default()
        };
        let obj = AnyObjective::build(&cfg.objective).unwrap();
        let mut rec = RunRecorder::new(&cfg, &obj);
        let at = |v: u64| [v as f64, 0.0, 0.0, 1.0];
        for v in 0..5 {
            assert_eq!(rec.before(v, &at(v), || None), None);
        }
        let f = rec.finish(Outcome::StepsReached, 5, &at(5), None);
        assert_eq!(
            f.trace.iter().map(|t| t.step).collect::<Vec<_>>(),
            [0, 2, 4, 5]
        );
        let kept = f.trace_params.expect("kept");
        let firsts: Vec<f64> = kept.chunks(4).map(|c| c[0]).collect();
        assert_eq!(firsts, [0.0, 2.0, 4.0, 5.0]);
    }
}
