//! `psim._psim`: the native half of the `psim` Python package.
//!
//! Python turns keyword arguments into the CLI's flags and calls
//! [`execute`], which prepares the experiment with the CLI's own code
//! (`psim::cmd::experiment::prepare`: the same checks, the same messages),
//! runs it on a Rust thread with the GIL released, polls for Ctrl-C and
//! progress on the calling thread, and writes the CLI's output directory.
//! A user's objective written in Python runs through [`PyObjective`].

mod attach;
mod observe;

use numpy::{PyArray1, PyArrayMethods, PyUntypedArray, PyUntypedArrayMethods};
use psim::cmd::experiment::{self as cli, Prepared};
use psim_common::{ConfigError, Objective, PsimRng};
use psim_scenarios::executor::{BuiltIn, ObjectiveSource};
use pyo3::exceptions::{PyRuntimeError, PyValueError};
use pyo3::prelude::*;
use rand::RngCore;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

pyo3::create_exception!(
    _psim,
    NativeError,
    PyValueError,
    "A setting refused by psim: args are (message, field or None)."
);

/// The error of psim as (message, field): the message is the CLI's
/// (`error: {e:#}` without the prefix), the field the one a `ConfigError`
/// names, if any.
fn native_error(e: &anyhow::Error) -> PyErr {
    let field = e
        .chain()
        .find_map(|c| c.downcast_ref::<ConfigError>())
        .map(|c| c.field.clone());
    NativeError::new_err((format!("{e:#}"), field))
}

/// How a Python objective gives its starting point.
enum Init {
    Fixed(Vec<f64>),
    Call(Py<PyAny>),
}

/// One instance of the user's objective: its bound methods.
struct Instance {
    init: Init,
    gradient: Py<PyAny>,
    error: Py<PyAny>,
    /// `metrics(params) -> dict` when defined: extra columns of the
    /// per-run traces (`record_runs=True`), evaluated on the server's instance.
    metrics: Option<Py<PyAny>>,
}

/// What a worker owns during a run: its own instance of the objective, its
/// `numpy.random.Generator`, the array its parameters are handed in, its
/// count of calls.
struct WorkerSlot {
    instance: Instance,
    generator: Py<PyAny>,
    /// Reused from call to call while nobody else holds it (refcount 1).
    params: Mutex<Py<PyArray1<f64>>>,
    calls: AtomicU64,
}

struct Inner {
    name: String,
    dim: usize,
    /// The user's object: never called during a run, only copied.
    source: Py<PyAny>,
    /// Whether `source` defines `for_worker`.
    for_worker: bool,
    /// `copy.deepcopy`.
    deepcopy: Py<PyAny>,
    /// `numpy.random.default_rng`.
    make_rng: Py<PyAny>,
    /// The server's instance: `initial_point` and `error`.
    server: Instance,
    /// Each worker's slot in the current run, by worker index.
    workers: Mutex<HashMap<u64, Arc<WorkerSlot>>>,
    /// Runs started (`initial_point` calls) and runs per point, to name a run.
    runs_started: AtomicU64,
    runs_per_point: u64,
    /// Gradient calls in the current run.
    run_calls: AtomicU64,
    /// The first failure: an exception of the user's code, or psim's
    /// refusal of what it returned.
    failure: Mutex<Option<PyErr>>,
    failed: AtomicBool,
    cancel: Arc<AtomicBool>,
}

/// A user's objective written in Python, called back with the GIL.
///
/// **One instance per worker.** At a worker's first gradient of a run, the
/// worker gets its own instance, `objective.for_worker(i)` if the object
/// defines it, else `copy.deepcopy(objective)`; the server evaluates
/// `initial_point` and `error` on a separate instance made by the same rule
/// (`for_worker(None)`), once per call of `psim.run`/`sweep`. So no two
/// workers, and no worker and the server, ever share Python state (a
/// PyTorch module's `.grad`, a cache), on any engine.
///
/// **Determinism:** at the same first gradient, one u64 is drawn from the
/// worker's data stream (psim's seed tree: seed → run → worker) and seeds
/// the `numpy.random.Generator` handed to that worker for the rest of the
/// run. Runs are one at a time (`threads` 1), so a run's workers are made
/// afresh at its start ([`Objective::initial_point`]).
///
/// **Speed:** each engine thread keeps one Python thread state for the
/// whole run ([`attach`]); parameters are copied into a numpy array the
/// worker reuses (no allocation); the gradient must be a float64 array of
/// shape `(dim,)` and is copied out, checked finite.
///
/// The first exception raised by the user's code, or the first value psim
/// refuses, stops the sweep and is raised in Python.
#[derive(Clone)]
pub struct PyObjective(Arc<Inner>);

fn refusal(field: &str, message: String) -> PyErr {
    NativeError::new_err((message, Some(field.to_string())))
}

/// `(shape, dtype)` of an array-like as Python writes them, for messages.
fn describe(value: &Bound<'_, PyAny>) -> String {
    let shape = value
        .getattr("shape")
        .and_then(|s| s.str().map(|s| s.to_string()))
        .unwrap_or_else(|_| "?".into());
    let dtype = value
        .getattr("dtype")
        .and_then(|s| s.str().map(|s| s.to_string()))
        .unwrap_or_else(|_| "?".into());
    format!("shape {shape} and dtype {dtype}")
}

/// Copies a returned vector into `out`. It must be a float64 array of
/// shape `(dim,)` (any strides), or something `numpy.asarray` turns into
/// one (a list of floats); anything else is refused naming `what`, with its
/// shape and dtype. Returns the index of the first non-finite value.
fn copy_out(value: &Bound<'_, PyAny>, out: &mut [f64], what: &str) -> PyResult<Option<usize>> {
    let py = value.py();
    let expected = || format!("a float64 numpy array of shape ({},)", out.len());
    if value.is_none() {
        return Err(refusal(
            what,
            format!("{what} returned None; it must return {}", expected()),
        ));
    }
    let converted;
    let array = match value.downcast::<PyArray1<f64>>() {
        Ok(a) => a,
        Err(_) => {
            let any = if value.downcast::<PyUntypedArray>().is_ok() {
                value.clone()
            } else {
                converted = py
                    .import("numpy")?
                    .call_method1("asarray", (value,))
                    .map_err(|e| {
                        refusal(
                            what,
                            format!(
                                "{what} returned a {} that numpy cannot read as an array ({e}); it must return {}",
                                value.get_type().name().map(|n| n.to_string()).unwrap_or_default(),
                                expected()
                            ),
                        )
                    })?;
                converted.clone()
            };
            match any.downcast::<PyArray1<f64>>() {
                Ok(a) => {
                    let a = a.clone();
                    return copy_array(&a, out, what);
                }
                Err(_) => {
                    let kind = if any.is(value) {
                        "an array".to_string()
                    } else {
                        format!(
                            "a {} (as an array: {})",
                            value
                                .get_type()
                                .name()
                                .map(|n| n.to_string())
                                .unwrap_or_default(),
                            describe(&any)
                        )
                    };
                    let shown = if any.is(value) {
                        describe(&any)
                    } else {
                        String::new()
                    };
                    return Err(refusal(
                        what,
                        format!(
                            "{what} returned {kind}{}{shown}; it must return {} (convert with `.astype(numpy.float64)`, reshape to ({},))",
                            if shown.is_empty() { "" } else { " of " },
                            expected(),
                            out.len()
                        ),
                    ));
                }
            }
        }
    };
    copy_array(array, out, what)
}

fn copy_array(
    array: &Bound<'_, PyArray1<f64>>,
    out: &mut [f64],
    what: &str,
) -> PyResult<Option<usize>> {
    if array.len() != out.len() {
        return Err(refusal(
            what,
            format!(
                "{what} returned an array of {}; it must return a float64 numpy array of shape ({},) (the objective's dim)",
                describe(array.as_any()),
                out.len()
            ),
        ));
    }
    // SAFETY: the GIL is held and no Python code runs while we read.
    unsafe {
        match array.as_slice() {
            Ok(s) => out.copy_from_slice(s),
            Err(_) => {
                for (o, v) in out.iter_mut().zip(array.as_array().iter()) {
                    *o = *v;
                }
            }
        }
    }
    Ok(first_non_finite(out))
}

/// A float as Python prints it (`nan`, `inf`), for messages.
fn py_float(v: f64) -> String {
    if v.is_nan() {
        "nan".into()
    } else {
        format!("{v}")
    }
}

/// The index of the first NaN or infinity, if any.
fn first_non_finite(x: &[f64]) -> Option<usize> {
    if x.iter().fold(true, |ok, v| ok & v.is_finite()) {
        None
    } else {
        x.iter().position(|v| !v.is_finite())
    }
}

impl Instance {
    fn of(obj: &Bound<'_, PyAny>, dim: usize) -> PyResult<Self> {
        let name = obj.get_type().name()?.to_string();
        let missing = |what: &str| {
            refusal(
                what,
                format!(
                    "{what}: a `{name}` has no `{what}`; an objective needs `dim`, `initial_point` (an array, or a method returning one), `gradient(params, rng)` and `error(params)` (or `loss(params)`)"
                ),
            )
        };
        let init_attr = obj
            .getattr("initial_point")
            .map_err(|_| missing("initial_point"))?;
        let init = if init_attr.is_callable() {
            Init::Call(init_attr.unbind())
        } else {
            let mut v = vec![0.0; dim];
            if let Some(i) = copy_out(&init_attr, &mut v, "initial_point")? {
                return Err(refusal(
                    "initial_point",
                    format!(
                        "initial_point: value {} at index {i} is not finite",
                        py_float(v[i])
                    ),
                ));
            }
            Init::Fixed(v)
        };
        let gradient = obj.getattr("gradient").map_err(|_| missing("gradient"))?;
        let error = match obj.getattr("error") {
            Ok(e) if e.is_callable() => e,
            _ => obj.getattr("loss").map_err(|_| missing("error"))?,
        };
        if !gradient.is_callable() {
            return Err(refusal(
                "gradient",
                "gradient: must be a method `gradient(params, rng)`".into(),
            ));
        }
        if !error.is_callable() {
            return Err(refusal(
                "error",
                "error: must be a method `error(params)` (or `loss(params)`)".into(),
            ));
        }
        let metrics = match obj.getattr("metrics") {
            Ok(m) if m.is_callable() => Some(m.unbind()),
            Ok(_) => {
                return Err(refusal(
                    "metrics",
                    "metrics: must be a method `metrics(params)` returning a dict of metric name to float".into(),
                ))
            }
            Err(_) => None,
        };
        Ok(Self {
            init,
            gradient: gradient.unbind(),
            error: error.unbind(),
            metrics,
        })
    }
}

impl PyObjective {
    fn new(obj: &Bound<'_, PyAny>, runs_per_point: u64, cancel: Arc<AtomicBool>) -> PyResult<Self> {
        let py = obj.py();
        let name = obj.get_type().name()?.to_string();
        let dim_attr = obj.getattr("dim").map_err(|_| {
            refusal(
                "dim",
                format!("dim: a `{name}` has no `dim`; an objective needs `dim` (the number of parameters, an int), `initial_point`, `gradient(params, rng)` and `error(params)`"),
            )
        })?;
        let dim: usize = match dim_attr.extract::<i64>() {
            Ok(d) if d > 0 && !dim_attr.is_instance_of::<pyo3::types::PyBool>() => d as usize,
            _ => {
                return Err(refusal(
                    "dim",
                    format!("dim: must be a positive int, got {}", dim_attr.repr()?),
                ))
            }
        };
        // Checked on the user's object itself, so a broken one is refused
        // before any copy is made.
        Instance::of(obj, dim)?;
        let for_worker = match obj.getattr("for_worker") {
            Ok(f) if f.is_callable() => true,
            Ok(_) => {
                return Err(refusal(
                    "for_worker",
                    "for_worker: must be a method `for_worker(i)` returning worker i's instance (None: the server's)".into(),
                ))
            }
            Err(_) => false,
        };
        let deepcopy = py.import("copy")?.getattr("deepcopy")?.unbind();
        let make_rng = py.import("numpy.random")?.getattr("default_rng")?.unbind();
        let source = obj.clone().unbind();
        let server = Self::instance_for(py, &source, for_worker, &deepcopy, None, dim)?;
        Ok(Self(Arc::new(Inner {
            name,
            dim,
            source,
            for_worker,
            deepcopy,
            make_rng,
            server,
            workers: Mutex::new(HashMap::new()),
            runs_started: AtomicU64::new(0),
            runs_per_point: runs_per_point.max(1),
            run_calls: AtomicU64::new(0),
            failure: Mutex::new(None),
            failed: AtomicBool::new(false),
            cancel,
        })))
    }

    /// Worker `worker`'s instance (`None`: the server's): `for_worker` or a
    /// deep copy, checked to have the source's `dim`.
    fn instance_for(
        py: Python<'_>,
        source: &Py<PyAny>,
        for_worker: bool,
        deepcopy: &Py<PyAny>,
        worker: Option<u64>,
        dim: usize,
    ) -> PyResult<Instance> {
        let who = match worker {
            Some(w) => format!("worker {w}"),
            None => "the server".to_string(),
        };
        let copy = if for_worker {
            source.call_method1(py, "for_worker", (worker,))?
        } else {
            deepcopy.call1(py, (source,)).map_err(|e| {
                refusal(
                    "objective",
                    format!(
                        "objective: cannot make {who}'s copy with copy.deepcopy ({e}); define `for_worker(i)` returning worker i's instance (None: the server's)"
                    ),
                )
            })?
        };
        let copy = copy.bind(py);
        let copy_dim = copy.getattr("dim").and_then(|d| d.extract::<usize>()).ok();
        if copy_dim != Some(dim) {
            return Err(refusal(
                "for_worker",
                format!(
                    "for_worker: {who}'s instance has dim {copy_dim:?}, the objective's is {dim}"
                ),
            ));
        }
        Instance::of(copy, dim)
    }

    fn fail(&self, e: PyErr) {
        let mut f = self.0.failure.lock().unwrap_or_else(|p| p.into_inner());
        if f.is_none() {
            *f = Some(e);
        }
        self.0.failed.store(true, Ordering::Relaxed);
        self.0.cancel.store(true, Ordering::Relaxed);
    }

    fn take_failure(&self) -> Option<PyErr> {
        self.0
            .failure
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
    }

    fn failed(&self) -> bool {
        self.0.failed.load(Ordering::Relaxed)
    }

    /// "run R of point P" for the run under way (runs go one at a time, in order).
    fn run_name(&self) -> String {
        let started = self.0.runs_started.load(Ordering::Relaxed).max(1) - 1;
        format!(
            "run {} of point {}",
            started % self.0.runs_per_point,
            started / self.0.runs_per_point
        )
    }

    /// Worker `worker`'s slot of the current run, made at its first gradient.
    fn slot(&self, py: Python<'_>, worker: u64, rng: &mut PsimRng) -> PyResult<Arc<WorkerSlot>> {
        let found = self
            .0
            .workers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&worker)
            .cloned();
        if let Some(s) = found {
            return Ok(s);
        }
        // Made outside the lock: Python may switch threads meanwhile.
        let inner = &self.0;
        let instance = Self::instance_for(
            py,
            &inner.source,
            inner.for_worker,
            &inner.deepcopy,
            Some(worker),
            inner.dim,
        )?;
        let generator = inner.make_rng.call1(py, (rng.next_u64(),))?;
        let slot = Arc::new(WorkerSlot {
            instance,
            generator,
            params: Mutex::new(PyArray1::<f64>::zeros(py, inner.dim, false).unbind()),
            calls: AtomicU64::new(0),
        });
        inner
            .workers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(worker, slot.clone());
        Ok(slot)
    }

    fn call_gradient(
        &self,
        py: Python<'_>,
        worker: u64,
        point: &[f64],
        rng: &mut PsimRng,
        out: &mut [f64],
    ) -> PyResult<()> {
        let slot = self.slot(py, worker, rng)?;
        let call = slot.calls.fetch_add(1, Ordering::Relaxed) + 1;
        let run_call = self.0.run_calls.fetch_add(1, Ordering::Relaxed) + 1;
        let params = {
            let mut held = slot.params.lock().unwrap_or_else(|p| p.into_inner());
            if held.get_refcnt(py) > 1 {
                // The user kept last call's array: it keeps its values.
                *held = PyArray1::<f64>::zeros(py, point.len(), false).unbind();
            }
            let a = held.bind(py).clone();
            // SAFETY: a fresh or private contiguous array of length dim, the GIL held.
            unsafe { a.as_slice_mut() }
                .expect("a new numpy array is contiguous")
                .copy_from_slice(point);
            a
        };
        let v = slot
            .instance
            .gradient
            .bind(py)
            .call1((params, slot.generator.bind(py)))?;
        if let Some(i) = copy_out(&v, out, "gradient")? {
            if first_non_finite(point).is_none() {
                return Err(refusal(
                    "gradient",
                    format!(
                        "gradient: returned {} at index {i} for finite parameters: worker {worker}'s call {call} in {} (the run's gradient call {run_call}); psim stops here rather than record a divergence",
                        py_float(out[i]),
                        self.run_name()
                    ),
                ));
            }
        }
        Ok(())
    }
}

impl Objective for PyObjective {
    fn dim(&self) -> usize {
        self.0.dim
    }

    fn initial_point(&self, _rng: &mut PsimRng, out: &mut [f64]) {
        attach::ensure();
        Python::with_gil(|py| {
            // A new run: its workers' instances and generators are made afresh.
            let old =
                std::mem::take(&mut *self.0.workers.lock().unwrap_or_else(|p| p.into_inner()));
            drop(old);
            self.0.runs_started.fetch_add(1, Ordering::Relaxed);
            self.0.run_calls.store(0, Ordering::Relaxed);
            match &self.0.server.init {
                Init::Fixed(v) => out.copy_from_slice(v),
                Init::Call(f) => {
                    let checked = f
                        .call0(py)
                        .and_then(|v| copy_out(v.bind(py), out, "initial_point"));
                    match checked {
                        Ok(None) => {}
                        Ok(Some(i)) => self.fail(refusal(
                            "initial_point",
                            format!(
                                "initial_point: returned {} at index {i} in {}",
                                py_float(out[i]),
                                self.run_name()
                            ),
                        )),
                        Err(e) => self.fail(e),
                    }
                }
            }
        })
    }

    fn gradient(&self, point: &[f64], rng: &mut PsimRng, out: &mut [f64]) {
        self.worker_gradient(0, point, rng, out)
    }

    fn worker_gradient(&self, worker: u64, point: &[f64], rng: &mut PsimRng, out: &mut [f64]) {
        if self.failed() {
            out.fill(0.0);
            return;
        }
        attach::ensure();
        Python::with_gil(|py| {
            if let Err(e) = self.call_gradient(py, worker, point, rng, out) {
                self.fail(e);
                out.fill(0.0);
            }
        })
    }

    fn error(&self, point: &[f64]) -> f64 {
        if self.failed() {
            return 0.0;
        }
        attach::ensure();
        Python::with_gil(|py| {
            let params = PyArray1::from_slice(py, point);
            let value = self.0.server.error.bind(py).call1((params,)).and_then(|v| {
                v.extract::<f64>().map_err(|_| {
                    refusal(
                        "error",
                        format!(
                            "error: returned {} ({}); it must return a float",
                            v.repr().map(|r| r.to_string()).unwrap_or_default(),
                            v.get_type()
                                .name()
                                .map(|n| n.to_string())
                                .unwrap_or_default()
                        ),
                    )
                })
            });
            match value {
                Ok(v) if !v.is_finite() && first_non_finite(point).is_none() => {
                    self.fail(refusal(
                        "error",
                        format!(
                            "error: returned {} for finite parameters in {} (after {} gradient calls of the run)",
                            py_float(v),
                            self.run_name(),
                            self.0.run_calls.load(Ordering::Relaxed)
                        ),
                    ));
                    0.0
                }
                Ok(v) => v,
                Err(e) => {
                    self.fail(e);
                    0.0
                }
            }
        })
    }
}

/// A Python objective as the executor's objective source: every point
/// runs the user's objective (never the batched engine, which implements
/// the built-in objectives only), and `config.toml` records it by its
/// reference `spec` (`kind = "python"`), so `psim.run(config=...)` and
/// `resume=` re-import it.
struct PySource {
    objective: PyObjective,
    spec: toml::Value,
}

impl ObjectiveSource for PySource {
    type Objective = PyObjective;
    fn build(&self, _cfg: &psim_common::RunConfig) -> Result<PyObjective, ConfigError> {
        Ok(self.objective.clone())
    }
    fn batchable(&self) -> bool {
        false
    }
    fn recorded_config(&self, e: &psim_common::Experiment) -> Option<Result<String, String>> {
        Some(config_with(e, &self.spec).map_err(|err| err.to_string()))
    }
}

/// The `config.toml` text of `e` with the Python objective's reference
/// `spec` as `[base.objective]` (`kind = "python"`): the CLI refuses such a
/// file (it cannot run Python), and `psim.run(config=...)` or `resume=`
/// re-imports the objective from it.
fn config_with(e: &psim_common::Experiment, spec: &toml::Value) -> anyhow::Result<String> {
    let mut value = toml::Value::try_from(e)?;
    let base = value
        .get_mut("base")
        .and_then(|b| b.as_table_mut())
        .ok_or_else(|| anyhow::anyhow!("config: no [base] table (a bug of psim)"))?;
    base.insert("objective".into(), spec.clone());
    let text = toml::to_string(&value)?;
    let header = "# Resolved psim configuration with a Python objective: replay with `psim.run(config=<this file>)` (the CLI cannot run it).\n";
    Ok(format!("{header}{text}"))
}

/// How the report names the recorded objective.
fn spec_summary(spec: &toml::Value) -> String {
    let reference = spec
        .get("reference")
        .and_then(|r| r.as_str())
        .unwrap_or("?");
    match spec.get("replayable").and_then(|r| r.as_bool()) {
        Some(false) => format!(
            "`{reference}`, not replayable: {}",
            spec.get("reason").and_then(|r| r.as_str()).unwrap_or("")
        ),
        _ => format!("`{reference}` (psim.run(config=...) re-imports it)"),
    }
}

/// Prepares and runs `argv` (`["psim", "run", "--momentum=0.9", …]`).
///
/// Returns (report, output directory). `objective`: a Python objective for
/// `run`/`sweep`, with `objective_spec`, the JSON of its `[base.objective]`
/// table in config.toml (`kind = "python"`, `reference`, `args`, or
/// `replayable = false` and a `reason`). `progress(done, total)` is called
/// from this thread while the run goes on (the GIL is released in
/// between); `done` never exceeds `total`. Ctrl-C stops the runs not yet
/// started and raises KeyboardInterrupt.
///
/// `scratch`: `--out` is a temporary directory that dies with its
/// `Result`, written without flushing to disk.
/// `record_runs`: keep every run's trace (and the objective's `metrics`)
/// and write `run-traces.csv`; `callback(point, run, step, params)`: called
/// at every trace point, ends the run when it returns True or raises
/// `Stop` ([`observe`]).
#[pyfunction]
#[pyo3(signature = (argv, objective=None, progress=None, expect_name=None, objective_spec=None, record_runs=false, callback=None, scratch=false))]
#[allow(clippy::too_many_arguments)]
fn execute(
    py: Python<'_>,
    argv: Vec<String>,
    objective: Option<Bound<'_, PyAny>>,
    progress: Option<Bound<'_, PyAny>>,
    expect_name: Option<String>,
    objective_spec: Option<String>,
    record_runs: bool,
    callback: Option<Bound<'_, PyAny>>,
    scratch: bool,
) -> PyResult<(String, String)> {
    let Prepared {
        experiment,
        scenario,
        mut exec,
    } = cli::with_python_objectives(|| cli::prepare(&argv)).map_err(|e| native_error(&e))?;
    if let Some(name) = expect_name {
        if experiment.name != name {
            return Err(NativeError::new_err((
                format!(
                    "the config names experiment `{}`, not scenario `{name}`; use psim.run(config=...) to replay it",
                    experiment.name
                ),
                Some("config".to_string()),
            )));
        }
    }
    exec.scratch = scratch;
    let parquet = exec.parquet;
    let cancel = Arc::new(AtomicBool::new(false));
    let objective = match objective {
        None => None,
        Some(o) => {
            if let Some(s) = scenario {
                return Err(NativeError::new_err((
                    format!("scenario `{}` has its own objective; a Python objective runs with psim.run or psim.sweep", s.name()),
                    Some("objective".to_string()),
                )));
            }
            if experiment.tradeoff.is_some() {
                return Err(NativeError::new_err((
                    "the tradeoff analysis (optimal_delay) runs the built-in objectives only; sweep the delays and read the DataFrame instead".to_string(),
                    Some("optimal_delay".to_string()),
                )));
            }
            let spec_json = objective_spec.ok_or_else(|| {
                PyRuntimeError::new_err("psim: a Python objective without its spec (a bug of psim)")
            })?;
            let spec: toml::Value = serde_json::from_str(&spec_json).map_err(|e| {
                refusal(
                    "objective",
                    format!("objective: its spec is not plain data ({e})"),
                )
            })?;
            Some((
                PyObjective::new(&o, experiment.base.runs as u64, cancel.clone())?,
                spec,
            ))
        }
    };
    if objective.is_some() && exec.threads > 1 {
        return Err(NativeError::new_err((
            format!("threads: {} — a Python objective runs one run at a time (every gradient holds the GIL), so only 0 or 1 is accepted", exec.threads),
            Some("threads".to_string()),
        )));
    }
    if let Some(cb) = &callback {
        if !cb.is_callable() {
            return Err(refusal(
                "callback",
                format!(
                    "callback: must be a function `callback(point, run, step, params)`, got {}",
                    cb.repr()?
                ),
            ));
        }
    }
    let observer = Arc::new(observe::Observer::new(
        record_runs,
        callback.map(Bound::unbind),
        objective
            .as_ref()
            .and_then(|(o, _)| o.0.server.metrics.as_ref().map(|m| m.clone_ref(py))),
        cancel.clone(),
    ));
    if observer.calls_python() && exec.threads > 1 {
        return Err(NativeError::new_err((
            format!("threads: {} — a callback or metrics run one run at a time (each call holds the GIL), so only 0 or 1 is accepted", exec.threads),
            Some("threads".to_string()),
        )));
    }
    let one_at_a_time = objective.is_some() || observer.calls_python();
    let _ = scenario;
    let total = AtomicU64::new(0);
    let done = AtomicU64::new(0);
    let tick = |t: cli::Tick| match t {
        cli::Tick::Total(n) => total.store(n, Ordering::Relaxed),
        cli::Tick::Run => {
            done.fetch_add(1, Ordering::Relaxed);
        }
    };
    // Dropped by the run's thread when it finishes: wakes the wait below at
    // once (a plain sleep would add up to 50 ms to every call).
    let (finished_tx, finished) = std::sync::mpsc::channel::<()>();
    let outcome = std::thread::scope(|s| -> PyResult<_> {
        let handle = s.spawn(|| {
            let _finished = finished_tx;
            let mut exec = exec.clone();
            if one_at_a_time {
                exec.threads = 1;
            }
            match &objective {
                None if observer.active() => {
                    let source = observe::Watched {
                        source: &BuiltIn,
                        observer: observer.clone(),
                    };
                    cli::execute_with(experiment, &exec, &source, &tick, Some(&cancel))
                }
                None => cli::execute_with(experiment, &exec, &BuiltIn, &tick, Some(&cancel)),
                Some((o, spec)) => {
                    let source = PySource {
                        objective: o.clone(),
                        spec: spec.clone(),
                    };
                    if observer.active() {
                        let source = observe::Watched {
                            source: &source,
                            observer: observer.clone(),
                        };
                        cli::execute_with(experiment, &exec, &source, &tick, Some(&cancel))
                    } else {
                        cli::execute_with(experiment, &exec, &source, &tick, Some(&cancel))
                    }
                }
            }
        });
        let mut wait = Duration::from_micros(200);
        let mut shown = u64::MAX;
        let mut interrupt = None;
        let mut receiver = Some(finished);
        loop {
            // The receiver goes into allow_threads by value (it is not Sync).
            let rx = receiver.take().expect("put back below");
            let (ended, rx) = py.allow_threads(move || {
                let timed_out = matches!(
                    rx.recv_timeout(wait),
                    Err(std::sync::mpsc::RecvTimeoutError::Timeout)
                );
                (!timed_out, rx)
            });
            receiver = Some(rx);
            if ended {
                break;
            }
            wait = (wait * 2).min(Duration::from_millis(50));
            if let Err(e) = py.check_signals() {
                interrupt = Some(e);
                break;
            }
            // A scenario may run more than it announced: never show more than the total.
            let n = done
                .load(Ordering::Relaxed)
                .min(total.load(Ordering::Relaxed));
            if let (Some(cb), true) = (&progress, n != shown) {
                shown = n;
                if let Err(e) = cb.call1((n, total.load(Ordering::Relaxed))) {
                    interrupt = Some(e);
                    break;
                }
            }
        }
        if interrupt.is_some() {
            cancel.store(true, Ordering::Relaxed);
        }
        let joined = py.allow_threads(|| handle.join());
        if let Some(e) = interrupt {
            // Ctrl-C: say what was kept and how to resume, as the CLI does.
            if let Ok(Err(err)) = &joined {
                let text = format!("{err:#}");
                if text.starts_with("interrupted:")
                    && e.is_instance_of::<pyo3::exceptions::PyKeyboardInterrupt>(py)
                {
                    return Err(pyo3::exceptions::PyKeyboardInterrupt::new_err(format!(
                        "psim: {text}"
                    )));
                }
            }
            return Err(e);
        }
        if let Some(cb) = &progress {
            let total = total.load(Ordering::Relaxed);
            cb.call1((done.load(Ordering::Relaxed).min(total), total))?;
        }
        joined.map_err(|_| PyRuntimeError::new_err("psim: the run panicked (a bug of psim)"))
    })?;
    // Threads that called Python (a sweep's pool ends its threads just
    // after the sweep) detach before we return, so none is left to take the
    // GIL while the interpreter exits. Bounded: threads that live on (a
    // global pool) keep their thread state until the process ends.
    if one_at_a_time {
        py.allow_threads(|| attach::wait_detached(Duration::from_millis(100)));
    }
    if let Some(e) = objective.as_ref().and_then(|(o, _)| o.take_failure()) {
        return Err(e);
    }
    if let Some(e) = observer.take_failure() {
        return Err(e);
    }
    if record_runs {
        if let Ok(cli::Executed::Complete { out, .. } | cli::Executed::Partial { out, .. }) =
            &outcome
        {
            out.write("run-traces.csv", observer.csv())
                .map_err(|e| native_error(&e.into()))?;
            if parquet {
                psim_scenarios::parquet::write_table(out, "run-traces")
                    .map_err(|e| native_error(&e.into()))?;
            }
        }
    }
    match outcome {
        Ok(cli::Executed::Complete { report, out }) => {
            let report = match &objective {
                Some((o, spec)) => format!(
                    "objective: Python `{}` (dim {}); config.toml records it as {}\n{report}",
                    o.0.name,
                    o.0.dim,
                    spec_summary(spec)
                ),
                None => report,
            };
            Ok((report, out.path().display().to_string()))
        }
        Ok(cli::Executed::Partial {
            shard,
            share,
            done,
            total,
            out,
        }) => Ok((
            format!(
                "shard {shard}: its {share} points are done ({done} of the experiment's {total} in {}); once every shard is done, combine them with `psim merge DIR... --out OUT`\n",
                out.path().display()
            ),
            out.path().display().to_string(),
        )),
        Err(e) => {
            let text = format!("{e:#}");
            if text.starts_with("interrupted:") {
                return Err(pyo3::exceptions::PyKeyboardInterrupt::new_err(format!(
                    "psim: {text}"
                )));
            }
            Err(native_error(&e))
        }
    }
}

/// A config.toml text from a dict given as JSON (so a dict config is read
/// exactly as a file is).
#[pyfunction]
fn json_to_toml(json: &str) -> PyResult<String> {
    let value: toml::Value = serde_json::from_str(json)
        .map_err(|e| NativeError::new_err((format!("config: {e}"), Some("config".to_string()))))?;
    toml::to_string(&value)
        .map_err(|e| NativeError::new_err((format!("config: {e}"), Some("config".to_string()))))
}

/// The flags of `command` (`run`, `sweep`, `reproduce`) as the CLI declares
/// them: (keyword, flag, kind, help), read from its clap arguments, so the
/// Python keywords never drift from the command line.
#[pyfunction]
fn flags(command: &str) -> Vec<(String, String, String, String)> {
    cli::command_flags(command)
        .into_iter()
        .map(|f| (f.keyword, f.flag, f.kind.to_string(), f.help))
        .collect()
}

/// The mean of a delay or compute-time model in its text syntax (`exp:20`
/// → 20.0), as the summary's `mean_delay`; `None` when it is infinite or
/// the text is no model (the DataFrames' numeric mean columns).
#[pyfunction]
fn model_mean(text: &str) -> Option<f64> {
    text.parse::<psim_common::Delay>().ok()?.mean()
}

/// The kind of column `name` of psim's tables (`count`, `optional_count`,
/// `float`, `text`): the Parquet files' types, which the DataFrames read
/// from CSV get too.
#[pyfunction]
fn column_kind(name: &str) -> &'static str {
    psim_scenarios::parquet::column_kind(name).name()
}

/// Writes `TABLE.parquet` from `TABLE.csv` in `dir` (`psim.sweep(processes=N,
/// record_runs=True)` after merging the shards' run traces).
#[pyfunction]
fn write_parquet(py: Python<'_>, dir: String, table: String) -> PyResult<()> {
    py.allow_threads(|| -> anyhow::Result<()> {
        let out = psim_scenarios::output::OutputDir::existing(std::path::Path::new(&dir))?;
        psim_scenarios::parquet::write_table(&out, &table)?;
        Ok(())
    })
    .map_err(|e| native_error(&e))
}

/// The named scenarios: (name, title).
#[pyfunction]
fn scenarios() -> Vec<(String, String)> {
    psim_scenarios::catalogue::catalogue()
        .iter()
        .map(|s| (s.name().to_string(), s.title().to_string()))
        .collect()
}

/// The objective table of a config.toml text: `Some((spec as JSON, the
/// text with the default objective in its place))` if it records a Python
/// objective (`kind = "python"`), else `None`.
#[pyfunction]
fn split_python_objective(text: &str) -> PyResult<Option<(String, String)>> {
    let bad =
        |e: String| NativeError::new_err((format!("config: {e}"), Some("config".to_string())));
    match cli::split_python_objective(text).map_err(|e| bad(format!("{e:#}")))? {
        None => Ok(None),
        Some((spec, rest)) => Ok(Some((
            serde_json::to_string(&spec).map_err(|e| bad(e.to_string()))?,
            rest,
        ))),
    }
}

/// `psim merge DIRS --out OUT [--parquet]` without printing: returns the
/// report (`psim.sweep(processes=N)` merges its shards with it).
#[pyfunction]
#[pyo3(signature = (dirs, out, parquet=false))]
fn merge(py: Python<'_>, dirs: Vec<String>, out: String, parquet: bool) -> PyResult<String> {
    let args = psim::cmd::merge::MergeArgs {
        dirs: dirs.into_iter().map(Into::into).collect(),
        out: out.into(),
        parquet,
    };
    py.allow_threads(|| psim::cmd::merge::merge_dirs(&args))
        .map_err(|e| native_error(&e))
}

/// The `psim` command line (`argv[0]` is the program name), run with the
/// GIL released; returns the exit code. The `psim` command `pip install`
/// puts on PATH calls this.
#[pyfunction]
fn cli_main(py: Python<'_>, argv: Vec<String>) -> i32 {
    i32::from(py.allow_threads(|| psim::cli::main(argv)))
}

/// `psim advise FLAGS…` without printing, with the GIL released: returns
/// JSON `{"report", "advice", "confirmation"}` (`psim.advise` builds the
/// flags and, for a Python objective, the estimated `--curvature`).
#[pyfunction]
fn advise(py: Python<'_>, argv: Vec<String>) -> PyResult<String> {
    py.allow_threads(|| psim::cmd::advise::advise_json(argv))
        .map_err(|e| native_error(&e))
}

#[pymodule]
fn _psim(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("NativeError", m.py().get_type::<NativeError>())?;
    m.add("Stop", m.py().get_type::<observe::Stop>())?;
    m.add_function(wrap_pyfunction!(execute, m)?)?;
    m.add_function(wrap_pyfunction!(json_to_toml, m)?)?;
    m.add_function(wrap_pyfunction!(scenarios, m)?)?;
    m.add_function(wrap_pyfunction!(model_mean, m)?)?;
    m.add_function(wrap_pyfunction!(column_kind, m)?)?;
    m.add_function(wrap_pyfunction!(write_parquet, m)?)?;
    m.add_function(wrap_pyfunction!(flags, m)?)?;
    m.add_function(wrap_pyfunction!(split_python_objective, m)?)?;
    m.add_function(wrap_pyfunction!(cli_main, m)?)?;
    m.add_function(wrap_pyfunction!(merge, m)?)?;
    m.add_function(wrap_pyfunction!(advise, m)?)?;
    m.add_function(wrap_pyfunction!(attach::shutting_down, m)?)?;
    m.py()
        .import("atexit")?
        .call_method1("register", (m.getattr("shutting_down")?,))?;
    Ok(())
}
