//! `psim._psim`: the native half of the `psim` Python package.
//!
//! Python turns keyword arguments into the CLI's flags and calls
//! [`execute`], which prepares the experiment with the CLI's own code
//! (`psim::cmd::experiment::prepare`: the same checks, the same messages),
//! runs it on a Rust thread with the GIL released, polls for Ctrl-C and
//! progress on the calling thread, and writes the CLI's output directory.
//! A user's objective written in Python runs through [`PyObjective`].

use numpy::{PyArray1, PyArrayMethods, PyUntypedArrayMethods};
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

struct Inner {
    name: String,
    dim: usize,
    init: Init,
    gradient: Py<PyAny>,
    error: Py<PyAny>,
    /// `numpy.random.default_rng`.
    make_rng: Py<PyAny>,
    /// Each worker's generator of the current run, by the address of the
    /// worker's own data stream (stable for the run).
    rngs: Mutex<HashMap<usize, Py<PyAny>>>,
    /// The first exception raised by the user's code.
    failure: Mutex<Option<PyErr>>,
    failed: AtomicBool,
    cancel: Arc<AtomicBool>,
}

/// A user's objective written in Python, called back with the GIL.
///
/// Determinism: at a worker's first gradient in a run, one u64 is drawn
/// from that worker's data stream (psim's seed tree: seed → run → worker)
/// and seeds the `numpy.random.Generator` handed to the user for the rest
/// of the run. Runs are one at a time (`threads` 1), so the generators of
/// a run are created afresh at its start ([`Objective::initial_point`]).
/// The first exception raised by the user's code stops the sweep and is
/// re-raised in Python.
#[derive(Clone)]
pub struct PyObjective(Arc<Inner>);

/// Copies a returned vector into `out`: float64 arrays directly, anything
/// else through `numpy.asarray(x, dtype=float64).ravel()`.
fn copy_out(value: &Bound<'_, PyAny>, out: &mut [f64], what: &str) -> PyResult<()> {
    let py = value.py();
    let fast;
    let array = match value.downcast::<PyArray1<f64>>() {
        Ok(a) => a,
        Err(_) => {
            let np = py.import("numpy")?;
            let kwargs = pyo3::types::PyDict::new(py);
            kwargs.set_item("dtype", "float64")?;
            fast = np
                .call_method("asarray", (value,), Some(&kwargs))?
                .call_method0("ravel")?;
            fast.downcast::<PyArray1<f64>>()?
        }
    };
    let ro = array.try_readonly()?;
    if ro.len() != out.len() {
        return Err(PyValueError::new_err(format!(
            "{what} returned {} values; the objective's dim is {}",
            ro.len(),
            out.len()
        )));
    }
    match ro.as_slice() {
        Ok(s) => out.copy_from_slice(s),
        Err(_) => {
            for (o, v) in out.iter_mut().zip(ro.as_array().iter()) {
                *o = *v;
            }
        }
    }
    Ok(())
}

impl PyObjective {
    fn new(obj: &Bound<'_, PyAny>, cancel: Arc<AtomicBool>) -> PyResult<Self> {
        let py = obj.py();
        let name = obj.get_type().name()?.to_string();
        let missing = |what: &str| {
            PyValueError::new_err(format!(
                "objective: a `{name}` has no `{what}`; an objective needs `dim`, `initial_point` (an array, or a method returning one), `gradient(params, rng)` and `error(params)` (or `loss(params)`)"
            ))
        };
        let dim: usize = obj
            .getattr("dim")
            .map_err(|_| missing("dim"))?
            .extract()
            .map_err(|_| PyValueError::new_err("objective: `dim` must be a positive int"))?;
        if dim == 0 {
            return Err(PyValueError::new_err(
                "objective: `dim` must be a positive int, got 0",
            ));
        }
        let init_attr = obj
            .getattr("initial_point")
            .map_err(|_| missing("initial_point"))?;
        let init = if init_attr.is_callable() {
            Init::Call(init_attr.unbind())
        } else {
            let mut v = vec![0.0; dim];
            copy_out(&init_attr, &mut v, "initial_point")?;
            Init::Fixed(v)
        };
        let gradient = obj.getattr("gradient").map_err(|_| missing("gradient"))?;
        let error = match obj.getattr("error") {
            Ok(e) if e.is_callable() => e,
            _ => obj.getattr("loss").map_err(|_| missing("error"))?,
        };
        if !gradient.is_callable() || !error.is_callable() {
            return Err(PyValueError::new_err(
                "objective: `gradient` and `error` (or `loss`) must be methods",
            ));
        }
        let make_rng = py.import("numpy.random")?.getattr("default_rng")?;
        Ok(Self(Arc::new(Inner {
            name,
            dim,
            init,
            gradient: gradient.unbind(),
            error: error.unbind(),
            make_rng: make_rng.unbind(),
            rngs: Mutex::new(HashMap::new()),
            failure: Mutex::new(None),
            failed: AtomicBool::new(false),
            cancel,
        })))
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

    fn generator(&self, py: Python<'_>, rng: &mut PsimRng) -> PyResult<Py<PyAny>> {
        let key = rng as *const PsimRng as usize;
        if let Some(g) = self
            .0
            .rngs
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&key)
        {
            return Ok(g.clone_ref(py));
        }
        // Created outside the lock: Python may switch threads meanwhile.
        let g = self.0.make_rng.call1(py, (rng.next_u64(),))?;
        self.0
            .rngs
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(key, g.clone_ref(py));
        Ok(g)
    }
}

impl Objective for PyObjective {
    fn dim(&self) -> usize {
        self.0.dim
    }

    fn initial_point(&self, _rng: &mut PsimRng, out: &mut [f64]) {
        Python::with_gil(|py| {
            // A new run: its workers' generators are drawn afresh.
            let old = std::mem::take(&mut *self.0.rngs.lock().unwrap_or_else(|p| p.into_inner()));
            drop(old);
            match &self.0.init {
                Init::Fixed(v) => out.copy_from_slice(v),
                Init::Call(f) => {
                    if let Err(e) = f
                        .call0(py)
                        .and_then(|v| copy_out(v.bind(py), out, "initial_point()"))
                    {
                        self.fail(e);
                    }
                }
            }
        })
    }

    fn gradient(&self, point: &[f64], rng: &mut PsimRng, out: &mut [f64]) {
        if self.failed() {
            out.fill(0.0);
            return;
        }
        Python::with_gil(|py| {
            let result = self.generator(py, rng).and_then(|g| {
                let params = PyArray1::from_slice(py, point);
                let v = self.0.gradient.bind(py).call1((params, g.bind(py)))?;
                copy_out(&v, out, "gradient")
            });
            if let Err(e) = result {
                self.fail(e);
                out.fill(0.0);
            }
        })
    }

    fn error(&self, point: &[f64]) -> f64 {
        if self.failed() {
            return 0.0;
        }
        Python::with_gil(|py| {
            let params = PyArray1::from_slice(py, point);
            match self
                .0
                .error
                .bind(py)
                .call1((params,))
                .and_then(|v| v.extract::<f64>())
            {
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
/// the built-in objectives only).
struct PySource(PyObjective);

impl ObjectiveSource for PySource {
    type Objective = PyObjective;
    fn build(&self, _cfg: &psim_common::RunConfig) -> Result<PyObjective, ConfigError> {
        Ok(self.0.clone())
    }
    fn batchable(&self) -> bool {
        false
    }
}

/// Prepares and runs `argv` (`["psim", "run", "--momentum=0.9", …]`).
///
/// Returns (report, output directory). `objective`: a Python objective for
/// `run`/`sweep`. `progress(done, total)` is called from this thread while
/// the run goes on (the GIL is released in between). Ctrl-C stops the runs
/// not yet started and raises KeyboardInterrupt.
#[pyfunction]
#[pyo3(signature = (argv, objective=None, progress=None, expect_name=None))]
fn execute(
    py: Python<'_>,
    argv: Vec<String>,
    objective: Option<Bound<'_, PyAny>>,
    progress: Option<Bound<'_, PyAny>>,
    expect_name: Option<String>,
) -> PyResult<(String, String)> {
    let Prepared {
        experiment,
        scenario,
        exec,
    } = cli::prepare(&argv).map_err(|e| native_error(&e))?;
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
            Some(PyObjective::new(&o, cancel.clone())?)
        }
    };
    if objective.is_some() && exec.threads > 1 {
        return Err(NativeError::new_err((
            format!("threads: {} — a Python objective runs one run at a time (every gradient holds the GIL), so only 0 or 1 is accepted", exec.threads),
            Some("threads".to_string()),
        )));
    }
    let _ = scenario;
    let total = AtomicU64::new(0);
    let done = AtomicU64::new(0);
    let tick = |t: cli::Tick| match t {
        cli::Tick::Total(n) => total.store(n, Ordering::Relaxed),
        cli::Tick::Run => {
            done.fetch_add(1, Ordering::Relaxed);
        }
    };
    let outcome = std::thread::scope(|s| -> PyResult<_> {
        let handle = s.spawn(|| match &objective {
            None => cli::execute_with(experiment, &exec, &BuiltIn, &tick, Some(&cancel)),
            Some(o) => {
                let mut exec = exec.clone();
                exec.threads = 1;
                cli::execute_with(
                    experiment,
                    &exec,
                    &PySource(o.clone()),
                    &tick,
                    Some(&cancel),
                )
            }
        });
        let mut wait = Duration::from_micros(200);
        let mut shown = u64::MAX;
        let mut interrupt = None;
        while !handle.is_finished() {
            py.allow_threads(|| std::thread::sleep(wait));
            wait = (wait * 2).min(Duration::from_millis(50));
            if let Err(e) = py.check_signals() {
                interrupt = Some(e);
                break;
            }
            let n = done.load(Ordering::Relaxed);
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
            cb.call1((done.load(Ordering::Relaxed), total.load(Ordering::Relaxed)))?;
        }
        joined.map_err(|_| PyRuntimeError::new_err("psim: the run panicked (a bug of psim)"))
    })?;
    if let Some(e) = objective.as_ref().and_then(|o| o.take_failure()) {
        return Err(e);
    }
    match outcome {
        Ok(cli::Executed::Complete { report, out }) => {
            let report = match &objective {
                Some(o) => format!(
                    "objective: Python `{}` (dim {}); config.toml records the experiment's other settings, not the Python objective\n{report}",
                    o.0.name, o.0.dim
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

/// The named scenarios: (name, title).
#[pyfunction]
fn scenarios() -> Vec<(String, String)> {
    psim_scenarios::catalogue::catalogue()
        .iter()
        .map(|s| (s.name().to_string(), s.title().to_string()))
        .collect()
}

/// A Python objective's gradient called `n` times at a fixed point, from
/// Rust, with the GIL released in between as in a run: the seconds per
/// call (for `bench_overhead.py`).
#[pyfunction]
fn time_gradient(py: Python<'_>, objective: Bound<'_, PyAny>, n: u64) -> PyResult<f64> {
    let o = PyObjective::new(&objective, Arc::new(AtomicBool::new(false)))?;
    let dim = o.dim();
    let seconds = py.allow_threads(|| {
        let mut rng = psim_common::SeedTree::new(1).rng(0, 0, psim_common::seed::Stream::Data);
        let mut point = vec![0.0; dim];
        o.initial_point(&mut rng, &mut point);
        let mut g = vec![0.0; dim];
        let started = std::time::Instant::now();
        for _ in 0..n {
            o.gradient(&point, &mut rng, &mut g);
        }
        started.elapsed().as_secs_f64() / n.max(1) as f64
    });
    if let Some(e) = o.take_failure() {
        return Err(e);
    }
    Ok(seconds)
}

#[pymodule]
fn _psim(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("NativeError", m.py().get_type::<NativeError>())?;
    m.add_function(wrap_pyfunction!(execute, m)?)?;
    m.add_function(wrap_pyfunction!(json_to_toml, m)?)?;
    m.add_function(wrap_pyfunction!(scenarios, m)?)?;
    m.add_function(wrap_pyfunction!(flags, m)?)?;
    m.add_function(wrap_pyfunction!(time_gradient, m)?)?;
    Ok(())
}
