//! What `psim.run`/`psim.sweep` watch at a run's trace points: per-run
//! traces (`record_runs=True`), the Python objective's extra `metrics`
//! (columns of those traces) and the user's `callback`, which may end a run
//! there ([`Outcome::Stopped`](psim_common::Outcome::Stopped)).
//!
//! [`Watched`] wraps any objective source (the built-in objectives or a
//! Python one): its objectives are [`Observed`], whose
//! [`Objective::on_trace_point`] calls the metrics and the callback on the
//! server's side, and its [`ObjectiveSource::run_finished`] keeps each
//! finished run's trace. Metrics and a callback run one run at a time
//! (`threads` 1, what a Python objective needs anyway), so the run under
//! way is the one [`ObjectiveSource::runs_starting`] named last; a trace
//! alone is read from the finished run and needs no such limit (built-in
//! objectives keep their threads and batching).

use crate::{attach, refusal};
use numpy::PyArray1;
use psim_common::{ConfigError, Experiment, Objective, PsimRng, RunConfig, RunResult};
use psim_scenarios::executor::ObjectiveSource;
use pyo3::prelude::*;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

pyo3::create_exception!(
    _psim,
    Stop,
    pyo3::exceptions::PyException,
    "Raised by a `callback` to end the run at this trace point (as returning True does); recorded as outcome `stopped`."
);

/// The fixed columns of `run-traces.csv`, which a metric may not be named.
pub const FIXED: [&str; 5] = ["point", "run", "step", "error", "time"];

/// One row of `run-traces.csv`.
struct Row {
    point: usize,
    run: u64,
    step: u64,
    error: f64,
    time: Option<f64>,
    metrics: Vec<f64>,
}

/// The state shared by every [`Observed`] objective of a call.
pub struct Observer {
    record_runs: bool,
    callback: Option<Py<PyAny>>,
    /// The Python objective's `metrics` on the server's instance.
    metrics: Option<Py<PyAny>>,
    /// The metric names, fixed by the first call.
    names: Mutex<Option<Vec<String>>>,
    /// The run under way (one at a time when anything is called).
    current: Mutex<(usize, u64)>,
    /// (step, metric values) of the run under way.
    pending: Mutex<Vec<(u64, Vec<f64>)>>,
    rows: Mutex<Vec<Row>>,
    failure: Mutex<Option<PyErr>>,
    failed: AtomicBool,
    cancel: Arc<AtomicBool>,
}

impl Observer {
    /// `metrics`: the server instance's `metrics` method, evaluated only
    /// when `record_runs` (its values are columns of the traces).
    pub fn new(
        record_runs: bool,
        callback: Option<Py<PyAny>>,
        metrics: Option<Py<PyAny>>,
        cancel: Arc<AtomicBool>,
    ) -> Self {
        Self {
            record_runs,
            callback,
            metrics: metrics.filter(|_| record_runs),
            names: Mutex::new(None),
            current: Mutex::new((0, 0)),
            pending: Mutex::new(Vec::new()),
            rows: Mutex::new(Vec::new()),
            failure: Mutex::new(None),
            failed: AtomicBool::new(false),
            cancel,
        }
    }

    /// Whether anything is called during a run (then runs go one at a time).
    pub fn calls_python(&self) -> bool {
        self.callback.is_some() || self.metrics.is_some()
    }

    /// Whether the observer has anything to do.
    pub fn active(&self) -> bool {
        self.record_runs || self.callback.is_some()
    }

    fn fail(&self, e: PyErr) {
        let mut f = self.failure.lock().unwrap_or_else(|p| p.into_inner());
        if f.is_none() {
            *f = Some(e);
        }
        self.failed.store(true, Ordering::Relaxed);
        self.cancel.store(true, Ordering::Relaxed);
    }

    /// The first exception of the user's callback or metrics, if any.
    pub fn take_failure(&self) -> Option<PyErr> {
        self.failure
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
    }

    /// The metrics and the callback at a trace point: true to stop.
    fn at_point(&self, step: u64, params: &[f64]) -> bool {
        if !self.calls_python() || self.failed.load(Ordering::Relaxed) {
            return false;
        }
        let (point, run) = *self.current.lock().unwrap_or_else(|p| p.into_inner());
        attach::ensure();
        Python::with_gil(|py| {
            // A fresh array per call: the user may keep it.
            let array = PyArray1::from_slice(py, params);
            if let Some(m) = &self.metrics {
                match m
                    .call1(py, (array.clone(),))
                    .and_then(|d| self.metric_values(d.bind(py)))
                {
                    Ok(values) => self
                        .pending
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .push((step, values)),
                    Err(e) => {
                        self.fail(e);
                        return false;
                    }
                }
            }
            let Some(cb) = &self.callback else {
                return false;
            };
            match cb.call1(py, (point, run, step, array)) {
                Ok(v) => match v.bind(py).is_truthy() {
                    Ok(stop) => stop,
                    Err(e) => {
                        self.fail(e);
                        false
                    }
                },
                Err(e) if e.is_instance_of::<Stop>(py) => true,
                Err(e) => {
                    self.fail(e);
                    false
                }
            }
        })
    }

    /// A `metrics` result as values in the order of the names the first
    /// call fixed: a dict of str to float with the same keys every time.
    fn metric_values(&self, value: &Bound<'_, PyAny>) -> PyResult<Vec<f64>> {
        let dict = value.downcast::<pyo3::types::PyDict>().map_err(|_| {
            refusal(
                "metrics",
                format!(
                    "metrics: returned a {}; it must return a dict of metric name to float",
                    value
                        .get_type()
                        .name()
                        .map(|n| n.to_string())
                        .unwrap_or_default()
                ),
            )
        })?;
        let mut given = Vec::with_capacity(dict.len());
        for (k, v) in dict.iter() {
            let name: String = k.extract().map_err(|_| {
                refusal(
                    "metrics",
                    format!(
                        "metrics: the key {} is not a str",
                        k.repr().map(|r| r.to_string()).unwrap_or_default()
                    ),
                )
            })?;
            let x: f64 = v.extract().map_err(|_| {
                refusal(
                    "metrics",
                    format!(
                        "metrics: `{name}` is {} ({}); each value must be a float",
                        v.repr().map(|r| r.to_string()).unwrap_or_default(),
                        v.get_type()
                            .name()
                            .map(|n| n.to_string())
                            .unwrap_or_default()
                    ),
                )
            })?;
            given.push((name, x));
        }
        let mut names = self.names.lock().unwrap_or_else(|p| p.into_inner());
        let names = names.get_or_insert_with(|| given.iter().map(|(n, _)| n.clone()).collect());
        if let Some(clash) = names.iter().find(|n| FIXED.contains(&n.as_str())) {
            return Err(refusal(
                "metrics",
                format!(
                    "metrics: `{clash}` is a column of the traces already ({}); rename it",
                    FIXED.join(", ")
                ),
            ));
        }
        let mut keys: Vec<&String> = given.iter().map(|(n, _)| n).collect();
        keys.sort();
        let mut expected: Vec<&String> = names.iter().collect();
        expected.sort();
        if keys != expected {
            return Err(refusal(
                "metrics",
                format!(
                    "metrics: returned the keys {keys:?}, but the first call returned {expected:?}; every call must return the same keys"
                ),
            ));
        }
        Ok(names
            .iter()
            .map(|n| {
                given
                    .iter()
                    .find(|(g, _)| g == n)
                    .map_or(f64::NAN, |(_, v)| *v)
            })
            .collect())
    }

    fn starting(&self, point: usize, run: u64) {
        *self.current.lock().unwrap_or_else(|p| p.into_inner()) = (point, run);
        self.pending
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clear();
    }

    fn finished(&self, point: usize, run: u64, result: &RunResult) {
        if !self.record_runs {
            return;
        }
        let pending = std::mem::take(&mut *self.pending.lock().unwrap_or_else(|p| p.into_inner()));
        let width = self
            .names
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
            .map_or(0, Vec::len);
        let mut metrics = pending.into_iter().peekable();
        let rows: Vec<Row> = result
            .trace
            .iter()
            .map(|t| {
                // Metrics come in trace order, one per trace point.
                while metrics.peek().is_some_and(|(s, _)| *s < t.step) {
                    metrics.next();
                }
                let values = match metrics.peek() {
                    Some((s, _)) if *s == t.step => {
                        metrics.next().map(|(_, v)| v).unwrap_or_default()
                    }
                    _ => vec![f64::NAN; width],
                };
                Row {
                    point,
                    run,
                    step: t.step,
                    error: t.error,
                    time: t.seconds,
                    metrics: values,
                }
            })
            .collect();
        self.rows
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .extend(rows);
    }

    /// `run-traces.csv`: one row per (point, run, trace point), sorted.
    pub fn csv(&self) -> String {
        let mut rows = std::mem::take(&mut *self.rows.lock().unwrap_or_else(|p| p.into_inner()));
        rows.sort_by_key(|r| (r.point, r.run, r.step));
        let names = self
            .names
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
            .unwrap_or_default();
        let mut text = FIXED.join(",");
        for n in &names {
            text.push(',');
            text.push_str(&csv_cell(n));
        }
        text.push('\n');
        let f = psim_scenarios::output::f;
        for r in rows {
            let time = r.time.map_or_else(String::new, f);
            text.push_str(&format!(
                "{},{},{},{},{}",
                r.point,
                r.run,
                r.step,
                f(r.error),
                time
            ));
            for v in r
                .metrics
                .iter()
                .chain(std::iter::repeat(&f64::NAN))
                .take(names.len())
            {
                text.push(',');
                text.push_str(&f(*v));
            }
            text.push('\n');
        }
        text
    }
}

/// A CSV cell: quoted when it holds a comma, quote or line break.
fn csv_cell(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

/// An objective whose trace points the [`Observer`] sees.
#[derive(Clone)]
pub struct Observed<O> {
    inner: O,
    observer: Arc<Observer>,
}

impl<O: Objective> Objective for Observed<O> {
    fn dim(&self) -> usize {
        self.inner.dim()
    }
    fn initial_point(&self, rng: &mut PsimRng, out: &mut [f64]) {
        self.inner.initial_point(rng, out)
    }
    fn gradient(&self, point: &[f64], rng: &mut PsimRng, out: &mut [f64]) {
        self.inner.gradient(point, rng, out)
    }
    fn worker_gradient(&self, worker: u64, point: &[f64], rng: &mut PsimRng, out: &mut [f64]) {
        self.inner.worker_gradient(worker, point, rng, out)
    }
    fn error(&self, point: &[f64]) -> f64 {
        self.inner.error(point)
    }
    fn on_trace_point(&self, step: u64, params: &[f64], error: f64) -> bool {
        let inner = self.inner.on_trace_point(step, params, error);
        self.observer.at_point(step, params) || inner
    }
}

/// An objective source whose runs the [`Observer`] watches.
pub struct Watched<'a, S> {
    pub source: &'a S,
    pub observer: Arc<Observer>,
}

impl<S: ObjectiveSource> ObjectiveSource for Watched<'_, S> {
    type Objective = Observed<S::Objective>;
    fn build(&self, cfg: &RunConfig) -> Result<Self::Objective, ConfigError> {
        Ok(Observed {
            inner: self.source.build(cfg)?,
            observer: self.observer.clone(),
        })
    }
    fn batchable(&self) -> bool {
        // The batched engine sees no trace point; a finished run's trace it has.
        self.source.batchable() && !self.observer.calls_python()
    }
    fn recorded_config(&self, e: &Experiment) -> Option<Result<String, String>> {
        self.source.recorded_config(e)
    }
    fn runs_starting(&self, point: usize, runs: std::ops::Range<u64>) {
        self.source.runs_starting(point, runs.clone());
        self.observer.starting(point, runs.start);
    }
    fn run_finished(&self, point: usize, run: u64, result: &RunResult) {
        self.source.run_finished(point, run, result);
        self.observer.finished(point, run, result);
    }
}
