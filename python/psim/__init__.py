"""psim from Python: the parameter-server simulator for asynchronous momentum SGD.

``psim.run``, ``psim.sweep`` and ``psim.reproduce`` take the CLI's settings as
keyword arguments (``step_size=5e-4`` for ``--step-size 5e-4``; a list for a
grid) or a config (``config=`` a path to a ``config.toml`` or a dict). They go
through the CLI's own code, so they are validated with the same checks and
refused with the same messages, raised as :class:`PsimError` (a ``ValueError``)
naming the keyword in ``.field``. An unknown keyword is refused, never ignored.

Each returns a :class:`Result`: ``.summary`` (dict), ``.runs`` and ``.traces``
(pandas DataFrames), ``.staleness`` (numpy arrays) and ``.save(dir)``, which
writes the CLI's output directory (``psim report DIR`` works on it).

``record_runs=True`` keeps every run's error trace (``Result.run_traces``,
``run-traces.csv``), with a column per key of the objective's
``metrics(params) -> dict`` if it defines one; ``callback(point, run, step,
params)`` is called at every trace point and ends that run when it returns
True or raises :class:`Stop` (outcome ``stopped`` in ``runs``).

Your own objective: pass ``objective=`` an object with ``dim``,
``initial_point`` (an array, or a method returning one), ``gradient(params,
rng) -> ndarray`` (float64, shape ``(dim,)``) and ``error(params) -> float``
(or ``loss``). ``rng`` is a ``numpy.random.Generator`` seeded from psim's seed
tree per run and worker, so runs are deterministic. Each worker computes on
its own instance (``objective.for_worker(i)`` if defined, else
``copy.deepcopy(objective)``, made afresh per run); ``initial_point`` and
``error`` run on the server's instance (``for_worker(None)`` or a deep copy).
``config.toml`` records the objective's class (``module:qualname``) and
constructor arguments (``psim_spec()``, or the ``__init__`` parameters read
back from attributes), and ``run(config=...)`` re-imports it.

The GIL is released while Rust runs; Ctrl-C stops the sweep within a second
(runs under way included), keeps every finished point on disk and raises
``KeyboardInterrupt`` saying how to continue (``resume=DIR``);
``progress=False`` turns the progress bar off.
"""

from __future__ import annotations

import difflib
import importlib
import inspect
import json
import os
import re
import shutil
import sys
import tempfile
from typing import Any, Dict, List, NamedTuple, Optional, Union

import numpy as np

from . import _psim

__all__ = [
    "run",
    "sweep",
    "reproduce",
    "scenarios",
    "advise",
    "estimate_curvature",
    "Result",
    "Staleness",
    "PsimError",
    "Stop",
    "SETTINGS",
    "CLI_ONLY",
]


class PsimError(ValueError):
    """A setting psim refuses. ``.field`` names the keyword (or config key)."""

    def __init__(self, message: str, field: Optional[str] = None):
        super().__init__(message)
        self.field = field


Stop = _psim.Stop
Stop.__doc__ = """Raise from a ``callback`` to end the run at this trace point (as returning
True does). The run's outcome is ``stopped`` at that step; it is no divergence."""
Stop.__module__ = "psim"


# The keywords are the CLI's flags, read from its clap arguments by the
# extension (``_psim.flags``): keyword -> (CLI flag, how a value is written:
# "one", "comma" (a list is a comma list: a grid), "repeat" (a list repeats
# the flag: a grid), "flag" (bool)). Nothing here is a hand-kept copy.
def _table(command: str) -> Dict[str, tuple]:
    return {kw: (flag, kind) for kw, flag, kind, _help in _psim.flags(command)}


# Flags of the command line that are keywords of their own here, or have no
# keyword, with the reason.
_MANAGED = {"config", "out", "force"}
CLI_ONLY: Dict[str, str] = {
    "quiet": "the progress bar is the `progress=` keyword (progress=False turns it off)",
    "list": "psim.scenarios() returns the scenarios' names and titles",
    "check_seeds": "it reruns a scenario once per seed into OUT/seed-S and prints a verdict table; "
    "from Python, call psim.reproduce(name, seed=s) in a loop and read each Result",
}
_COMMANDS = {
    command: {k: v for k, v in _table(command).items() if k not in _MANAGED and k not in CLI_ONLY}
    for command in ("run", "sweep", "reproduce")
}
SETTINGS: Dict[str, tuple] = {**_COMMANDS["run"], **_COMMANDS["reproduce"]}
_SWEEP_ONLY = {k: v for k, v in _COMMANDS["sweep"].items() if k not in SETTINGS}
_FLAG_TO_KEY = {flag: key for key, (flag, _) in {**SETTINGS, **_SWEEP_ONLY}.items()}
_FLAG_TO_KEY.update({"--config": "config", "--out": "out", "--force": "force"})


# Config keys whose last part is not the keyword's name.
_KEY_ALIASES = {"engine.history.policy": "history_policy", "history.policy": "history_policy"}


def _given_values(argv: List[str]) -> List[tuple]:
    """(keyword, value text) for every ``--flag=value`` of ``argv``, a comma list split."""
    given = []
    for arg in argv:
        flag, eq, value = arg.partition("=")
        key = _FLAG_TO_KEY.get(flag)
        if eq and key:
            given.append((key, value))
            given.extend((key, v) for v in value.split(",") if v != value)
    return given


def _field_of(message: str, field: Optional[str], given: List[tuple] = ()) -> Optional[str]:
    if field in _KEY_ALIASES:
        return _KEY_ALIASES[field]
    m = re.search(r"invalid `([^`]+)` =", message)
    if m and not field:
        field = m.group(1)
    if message.startswith(("invalid config", "cannot read config")):
        return "config"
    m = re.search(r"--[a-z][a-z-]*", message)
    if m and m.group(0) in _FLAG_TO_KEY:
        return _FLAG_TO_KEY[m.group(0)]
    if field:
        last = re.sub(r"\[.*$", "", field.split(".")[-1])
        for key in SETTINGS:
            if key == last or key == field:
                return key
        return field
    # A message that names no setting but quotes the value one keyword gave
    # (a delay model's parse error: "invalid delay model `foo`").
    for token in re.findall(r"[`']([^`']+)[`']", message):
        for key, value in given:
            if token == value:
                return key
    return None


def _text(key: str, value: Any) -> str:
    if isinstance(value, bool):
        raise PsimError(f"{key}: expected a number or text, got {value!r}", key)
    if isinstance(value, (float, np.floating)):
        return repr(float(value))
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    if isinstance(value, str):
        return value
    raise PsimError(f"{key}: expected a number or text, got {type(value).__name__} {value!r}", key)


def _argv(command: str, allowed: Dict[str, tuple], settings: Dict[str, Any]) -> List[str]:
    argv = ["psim", command]
    for key, value in settings.items():
        if key in CLI_ONLY:
            raise PsimError(f"{key}: a flag of the command line only: {CLI_ONLY[key]}", key)
        if key not in allowed:
            close = difflib.get_close_matches(key, list(allowed), n=1)
            hint = f" (did you mean `{close[0]}`?)" if close else ""
            raise PsimError(
                f"unknown setting `{key}`{hint}; psim.{command} accepts: "
                + ", ".join(sorted(allowed)) + ", config, out, progress, record_runs, callback"
                + (", objective" if command != "reproduce" else ""),
                key,
            )
        if value is None:
            continue
        flag, kind = allowed[key]
        if kind == "flag":
            if not isinstance(value, bool):
                raise PsimError(f"{key}: expected True or False, got {value!r}", key)
            if value:
                argv.append(flag)
            continue
        if kind == "one" and isinstance(value, bool):
            # A BOOL-valued flag (record_pushes); elsewhere clap refuses it by name.
            argv.append(f"{flag}={'true' if value else 'false'}")
            continue
        if key == "covariance" and isinstance(value, (list, tuple, np.ndarray)):
            value = ";".join(",".join(_text(key, x) for x in row) for row in np.asarray(value).tolist())
        if isinstance(value, np.ndarray):
            value = value.tolist()
        if isinstance(value, (list, tuple)):
            if not value:
                raise PsimError(f"{key}: an empty list", key)
            if kind == "one":
                raise PsimError(f"{key} takes one value, got the list {list(value)!r}", key)
            texts = [_text(key, v) for v in value]
            if kind == "comma":
                argv.append(f"{flag}=" + ",".join(texts))
            else:
                argv.extend(f"{flag}={t}" for t in texts)
        else:
            argv.append(f"{flag}={_text(key, value)}")
    return argv


class _Bar:
    """A tqdm bar when tqdm is installed, else one stderr line; nothing when
    stderr is not a terminal (a log file gets no ``\\r`` fragments)."""

    def __init__(self, enabled: bool):
        isatty = getattr(sys.stderr, "isatty", None)
        # A notebook's stderr is no terminal, but tqdm.auto draws a widget there.
        self.enabled = enabled and (bool(isatty and isatty()) or "ipykernel" in sys.modules)
        self.bar = None
        self.last = -1

    def __call__(self, done: int, total: int) -> None:
        if not self.enabled:
            return
        if self.bar is None:
            try:
                from tqdm.auto import tqdm  # type: ignore

                self.bar = tqdm(total=total, unit="run", leave=False)
            except ImportError:
                self.bar = False
        if self.bar:
            self.bar.update(done - self.bar.n)
        elif done != self.last and done > 0:
            self.last = done
            sys.stderr.write(f"\rpsim: {done}/{total} runs")
            sys.stderr.flush()

    def close(self) -> None:
        if self.bar:
            self.bar.close()
        elif self.bar is False and self.last >= 0:
            sys.stderr.write("\r" + " " * 40 + "\r")
            sys.stderr.flush()


# The dtypes of the tables' columns, the same whatever the values (a column
# of whole numbers that means a float stays float64), as the Parquet files
# type them (`_psim.column_kind`, one list in Rust): text, counts (int64), a
# step that may be absent (Int64, nullable), and float64 for every other
# number (errors, means, parameters, metrics).
# A model's text column and the numeric column of its mean put beside it.
_MODEL_MEANS = {"delay": "mean_delay", "compute_time": "mean_compute_time"}


def _typed(df):
    """``df`` with the stable dtypes above and, beside each model column
    (``delay``, ``compute_time``), the model's mean as a float64 column (NaN
    when infinite)."""
    import pandas as pd

    for c in df.columns:
        kind = _psim.column_kind(c)
        if kind == "text":
            continue
        if kind == "optional_count":
            df[c] = df[c].astype("Int64")
        elif kind == "count" and pd.api.types.is_numeric_dtype(df[c]) and not df[c].isna().any():
            df[c] = df[c].astype(np.int64)
        elif pd.api.types.is_numeric_dtype(df[c]) or df[c].isna().all():
            df[c] = df[c].astype(np.float64)
    for model, mean in _MODEL_MEANS.items():
        if model in df.columns and mean not in df.columns:
            # One parse per distinct model, spread by the factorised codes
            # (a per-row map took a second on 10⁶ rows).
            codes, models = pd.factorize(df[model])
            means = np.array([np.nan if (v := _psim.model_mean(str(m))) is None else v for m in models] + [np.nan])
            values = means[codes]  # code -1 (no model) is the trailing NaN
            df.insert(df.columns.get_loc(model) + 1, mean, values)
    return df


def _read_table(path: str):
    """A table of the output directory as a typed DataFrame: from its Parquet
    copy when there is one (``runs``, ``traces``, ``run-traces``; columnar,
    no CSV parse) and pyarrow is installed, else from the CSV."""
    parquet = path[: -len(".csv")] + ".parquet" if path.endswith(".csv") else None
    if parquet and os.path.exists(parquet) and _has_pyarrow():
        return _read_parquet(parquet)
    return _read_csv(path)


def _read_parquet(path: str):
    import pyarrow.parquet as pq

    return _typed(pq.read_table(path).to_pandas())


def _read_csv(path: str):
    import pandas as pd

    with open(path, encoding="utf-8") as f:
        header = f.readline().strip().split(",")
    return _typed(pd.read_csv(path, dtype={c: str for c in header if _psim.column_kind(c) == "text"}))


def _has_pyarrow() -> bool:
    import importlib.util

    return importlib.util.find_spec("pyarrow") is not None


class Staleness(NamedTuple):
    """The staleness histogram: ``counts[i]`` gradients had staleness ``values[i]``."""

    values: np.ndarray
    counts: np.ndarray


class Result:
    """The outcome of ``psim.run``/``sweep``/``reproduce``: the CLI's output directory, read.

    Attributes: ``report`` (the text the CLI prints), ``path`` (the output
    directory: a temporary one unless ``out=`` was given).
    """

    def __init__(self, path: str, report: str, tmp: Optional[tempfile.TemporaryDirectory]):
        self.path = path
        self.report = report
        self._tmp = tmp
        self._cache: Dict[str, Any] = {}

    def __repr__(self) -> str:
        return f"<psim.Result {os.path.basename(self.path)!r}: {', '.join(self.files)}>"

    @property
    def files(self) -> List[str]:
        """The files of the output directory."""
        return sorted(os.listdir(self.path))

    def _csv(self, name: str):
        if name not in self._cache:
            p = os.path.join(self.path, name)
            self._cache[name] = _read_table(p) if os.path.exists(p) else None
        return self._cache[name]

    @property
    def summary(self) -> Dict[str, Any]:
        """``summary.json`` as a dict (for ``tradeoff``: ``rows`` with each μ's optimal delay)."""
        if "summary" not in self._cache:
            with open(os.path.join(self.path, "summary.json")) as f:
                self._cache["summary"] = json.load(f)
        return self._cache["summary"]

    @property
    def runs(self):
        """Per-run rows (``runs.csv``) as a DataFrame, without the wall-clock column.

        The wall-clock seconds, which differ from call to call, are in
        :attr:`timings`; everything here is a function of the settings and
        the seed (on the injected and virtual-time engines).
        """
        df = self._csv("runs.csv")
        if df is None:
            return None
        return df.drop(columns=[c for c in ("wall_seconds",) if c in df.columns])

    @property
    def run_traces(self):
        """Every run's error trace (``run-traces.csv``), when the call asked for
        them (``record_runs=True``), else None: one row per trace point
        (every ``record_every`` steps and the run's last state) with
        ``point``, ``run``, ``step``, ``error`` (NaN once diverged: a
        diverged run's trace stops at its last finite point), ``time`` (the
        trace point's simulated time on the virtual-time engine, seconds
        since the start on threads and tasks, NaN on the injected engine)
        and one float column per key of the objective's ``metrics``."""
        return self._csv("run-traces.csv")

    @property
    def timings(self):
        """Wall-clock seconds per run (``runs.csv``'s ``wall_seconds``), as a DataFrame."""
        df = self._csv("runs.csv")
        if df is None or "wall_seconds" not in df.columns:
            return None
        keys = [c for c in df.columns if c in ("point", "run", "momentum", "step_size", "setting")]
        return df[keys + ["wall_seconds"]]

    @property
    def params(self) -> Optional[np.ndarray]:
        """The final parameters of every run, one row per run in ``runs`` order
        (runs × dim), when the run kept them (``record_params=True``; columns
        ``param_0…`` of ``runs.csv``), else None."""
        df = self._csv("runs.csv")
        if df is None:
            return None
        cols = [c for c in df.columns if c.startswith("param_")]
        if not cols:
            return None
        cols.sort(key=lambda c: int(c.split("_", 1)[1]))
        return df[cols].to_numpy(dtype=np.float64)

    @property
    def workers(self):
        """Per-worker contributions on the cluster engines (``workers.csv``) as a DataFrame, or None."""
        return self._csv("workers.csv")

    @property
    def pushes(self):
        """Every applied push of a run with ``record_pushes=True`` (``pushes.csv``) as a DataFrame, or None."""
        return self._csv("pushes.csv")

    @property
    def traces(self):
        """Mean error traces per point (``traces.csv``) as a DataFrame."""
        return self._csv("traces.csv")

    @property
    def staleness(self) -> Optional[Staleness]:
        """The staleness histogram over every run (``staleness.csv``, summed over points)."""
        df = self._csv("staleness.csv")
        if df is None:
            return None
        value = "staleness" if "staleness" in df.columns else df.columns[-2]
        grouped = df.groupby(value)["count"].sum().sort_index()
        return Staleness(grouped.index.to_numpy(dtype=np.int64), grouped.to_numpy(dtype=np.int64))

    def csv(self, name: str):
        """Any CSV file of the output directory (e.g. ``"curves.csv"``) as a DataFrame."""
        return self._csv(name)

    def save(self, directory: Union[str, "os.PathLike[str]"]) -> str:
        """Writes the output directory (the CLI's files) to ``directory``, which must be new or empty."""
        directory = os.fspath(directory)
        if os.path.exists(directory) and os.listdir(directory):
            raise PsimError(f"`{directory}` is not empty; save into a new or empty directory", "directory")
        os.makedirs(directory, exist_ok=True)
        for name in self.files:
            src = os.path.join(self.path, name)
            if os.path.isdir(src):
                # points/: the finished points (what --resume and merge read).
                shutil.copytree(src, os.path.join(directory, name), symlinks=True)
            else:
                shutil.copy2(src, os.path.join(directory, name))
        return directory


_PLAIN = (bool, int, float, str)


def _plain(value: Any) -> Any:
    """``value`` as TOML-able plain data (numbers, text, lists and dicts of them), else raises TypeError."""
    if isinstance(value, (np.bool_, np.integer, np.floating)):
        value = value.item()
    if isinstance(value, _PLAIN):
        return value
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, dict) and all(isinstance(k, str) for k in value):
        return {k: _plain(v) for k, v in value.items()}
    raise TypeError(f"a {type(value).__name__}")


def _objective_spec(objective: Any) -> Dict[str, Any]:
    """How config.toml records a Python objective: ``kind = "python"``, its
    ``reference`` (``module:qualname`` of its class) and the constructor's
    keyword ``args``: ``objective.psim_spec()`` if it defines one (a dict of
    plain values), else each ``__init__`` parameter read back from the
    attribute of the same name. ``replayable = false`` and a ``reason`` when
    that cannot be done."""
    cls = type(objective)
    reference = f"{cls.__module__}:{cls.__qualname__}"
    spec: Dict[str, Any] = {"kind": "python", "reference": reference}

    def refused(reason: str) -> Dict[str, Any]:
        return dict(spec, replayable=False, reason=reason)

    if "<locals>" in cls.__qualname__:
        return refused(f"`{cls.__qualname__}` is defined inside a function, so it cannot be imported")
    found: Any = sys.modules.get(cls.__module__)
    for part in cls.__qualname__.split("."):
        found = getattr(found, part, None)
    if found is not cls:
        return refused(f"`{reference}` does not name this class (it is not reachable by that name in its module)")
    if hasattr(objective, "psim_spec"):
        args = objective.psim_spec()
        if not isinstance(args, dict):
            raise PsimError(f"objective: psim_spec() must return a dict of constructor keyword arguments, got {args!r}", "objective")
        try:
            return dict(spec, args=_plain(args))
        except TypeError as e:
            raise PsimError(f"objective: psim_spec() returned {e}, not plain data (numbers, text, lists, dicts)", "objective") from None
    args: Dict[str, Any] = {}
    try:
        params = inspect.signature(cls).parameters.values()
    except (TypeError, ValueError):
        params = []
    for p in params:
        if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            continue
        if not hasattr(objective, p.name):
            if p.default is p.empty:
                return refused(f"`{p.name}` of {cls.__qualname__}() is not an attribute of the object; define psim_spec() returning the constructor's keyword arguments")
            continue
        value = getattr(objective, p.name)
        if value is None and p.default is None:
            continue
        try:
            args[p.name] = _plain(value)
        except TypeError as e:
            return refused(f"`{p.name}` is {e}, not a plain value; define psim_spec() returning the constructor's keyword arguments")
    return dict(spec, args=args)


def _objective_from_spec(spec: Dict[str, Any]) -> Any:
    """Re-imports and builds the objective a config.toml records, or raises PsimError naming ``objective``."""
    reference = spec.get("reference", "?")
    if spec.get("replayable", True) is False:
        raise PsimError(f"objective: the config records the Python objective `{reference}`, which cannot be replayed: {spec.get('reason', '')}", "objective")
    module, _, qualname = str(reference).partition(":")
    try:
        target: Any = importlib.import_module(module)
        for part in qualname.split("."):
            target = getattr(target, part)
    except Exception as e:  # ImportError, AttributeError, or the module's own error
        raise PsimError(
            f"objective: cannot import `{reference}`, the Python objective the config records ({type(e).__name__}: {e}); "
            "make its module importable (sys.path) or pass objective= yourself",
            "objective",
        ) from None
    args = spec.get("args", {})
    try:
        return target(**args)
    except Exception as e:
        raise PsimError(f"objective: `{reference}(**{args!r})` failed: {type(e).__name__}: {e}", "objective") from None


def _read_config(config: Any) -> str:
    if isinstance(config, dict):
        return _psim.json_to_toml(json.dumps(config))
    try:
        with open(os.fspath(config)) as f:
            return f.read()
    except OSError as e:
        raise PsimError(f"config: cannot read `{os.fspath(config)}`: {e}", "config") from None


def _execute(command: str, allowed: Dict[str, tuple], settings: Dict[str, Any], extra: List[str] = (), expect_name=None) -> Result:
    record_runs = settings.pop("record_runs", False)
    callback = settings.pop("callback", None)
    if not isinstance(record_runs, bool):
        raise PsimError(f"record_runs: expected True or False, got {record_runs!r}", "record_runs")
    if callback is not None and not callable(callback):
        raise PsimError(f"callback: must be a function callback(point, run, step, params), got {callback!r}", "callback")
    if record_runs and settings.get("resume") is not None:
        raise PsimError(
            "record_runs: the run traces are kept from one call's runs, not in the point files, so a resumed "
            "directory would lack its finished points' traces; rerun it whole",
            "record_runs",
        )
    if "parquet" in allowed and settings.get("parquet") is None and _has_pyarrow():
        # The Result reads runs and traces from Parquet (columnar, typed).
        settings["parquet"] = True
    config = settings.pop("config", None)
    out = settings.pop("out", None)
    force = settings.pop("force", False)
    progress = settings.pop("progress", True)
    objective = settings.pop("objective", None)
    if objective is not None:
        given = [k for k in ("spectrum", "covariance", "data", "init") if settings.get(k) is not None]
        if given:
            raise PsimError(
                f"{given[0]}: sets the built-in streaming-PCA objective; with objective= it would be ignored, so it is refused",
                given[0],
            )
    argv = _argv(command, allowed, settings) + list(extra)
    tmp_config = None
    try:
        if config is not None:
            text = _read_config(config)
            recorded = _psim.split_python_objective(text)
            if recorded is not None:
                spec_json, text = recorded
                if objective is None:
                    objective = _objective_from_spec(json.loads(spec_json))
            if isinstance(config, dict) or recorded is not None:
                tmp_config = tempfile.NamedTemporaryFile("w", suffix=".toml", delete=False)
                tmp_config.write(text)
                tmp_config.close()
                path = tmp_config.name
            else:
                path = os.fspath(config)
            argv.append(f"--config={path}")
        resume = settings.get("resume")
        if resume is not None and objective is None:
            # A directory of a Python objective resumes with that objective,
            # re-imported from its config.toml, as a replay does.
            try:
                text = _read_config(os.path.join(os.fspath(resume), "config.toml"))
            except (OSError, PsimError):
                text = None
            recorded = _psim.split_python_objective(text) if text is not None else None
            if recorded is not None:
                objective = _objective_from_spec(json.loads(recorded[0]))
        spec = None
        if objective is not None:
            if not hasattr(objective, "dim"):
                raise PsimError(
                    f"dim: a `{type(objective).__name__}` has no `dim`; an objective needs `dim` (the number of parameters), "
                    "`initial_point`, `gradient(params, rng)` and `error(params)`",
                    "dim",
                )
            spec = json.dumps(_objective_spec(objective))
        tmp = None
        if settings.get("resume") is not None:
            # --resume DIR continues DIR: it is the output directory.
            if out is not None or force:
                raise PsimError("resume: continues the directory it names; `out` and `force` are refused with it", "resume")
        else:
            if out is None:
                tmp = tempfile.TemporaryDirectory(prefix="psim-")
                out = tmp.name
                force = True
            argv.append(f"--out={os.fspath(out)}")
            if force:
                argv.append("--force")
        argv.append("--quiet")
        bar = _Bar(bool(progress))
        try:
            # A temporary directory dies with its Result: no flushes to disk
            # (they were most of a short call's wall time).
            report, path = _psim.execute(argv, objective, bar, expect_name, spec, record_runs, callback, tmp is not None)
        except _psim.NativeError as e:
            message, field = e.args
            key = _field_of(message, field, _given_values(argv))
            prefixed = key is None or message.startswith((f"{key}:", f"{key} "))
            raise PsimError(message if prefixed else f"{key}: {message}", key) from None
        finally:
            bar.close()
        return Result(path, report, tmp)
    finally:
        if tmp_config is not None:
            os.unlink(tmp_config.name)


def run(*, config=None, objective=None, out=None, progress: bool = True, record_runs: bool = False, callback=None, **settings) -> Result:
    """One configuration × ``runs`` independent runs (``psim run``).

    Keywords are the CLI's flags with ``_`` for ``-`` (``psim.SETTINGS``), e.g.
    ``psim.run(momentum=0.9, delay="exp:20", runs=20, steps=10000)``.
    ``config``: a ``config.toml`` path or a dict (flags still override);
    ``objective``: your own objective (see the module docstring);
    ``out``: write the output directory there (default: a temporary one);
    ``progress``: show a progress bar;
    ``record_runs``: keep every run's trace (``Result.run_traces``, with the
    objective's ``metrics``), every ``record_every`` steps;
    ``callback(point, run, step, params)``: called at every trace point on the
    server's side (one run at a time); returning True or raising
    :class:`Stop` ends that run there (outcome ``stopped``).
    """
    return _execute(
        "run",
        _COMMANDS["run"],
        dict(settings, config=config, objective=objective, out=out, progress=progress, record_runs=record_runs, callback=callback),
    )


def sweep(
    *,
    config=None,
    objective=None,
    out=None,
    progress: bool = True,
    optimal_delay: bool = False,
    processes: int = 1,
    record_runs: bool = False,
    callback=None,
    **settings,
) -> Result:
    """A grid over momentum, step size, delays, workers, compute times, consistency (``psim sweep``).

    A list value makes a grid axis: ``psim.sweep(momentum=[0.7, 0.9], taus="0:100:20")``.
    ``optimal_delay=True`` adds E1's tradeoff analysis (built-in objectives).
    ``processes=N`` runs the grid's points in N worker processes (the
    shards ``shard="i/N"`` of the command line, merged as ``psim merge``
    does): every core with a Python objective, whose calls each hold the
    GIL. The numbers are identical to one process.
    ``record_runs`` and ``callback``: as in :func:`run` (a callback runs in
    one process only: it is refused with ``processes`` > 1).
    """
    if not isinstance(processes, int) or isinstance(processes, bool) or processes < 1:
        raise PsimError(f"processes: expected an int ≥ 1, got {processes!r}", "processes")
    if processes > 1:
        if callback is not None:
            raise PsimError(
                "callback: runs in the calling process, and processes > 1 runs the sweep in others; use processes=1 with a callback",
                "callback",
            )
        return _in_processes(
            dict(settings, config=config, objective=objective, out=out, optimal_delay=optimal_delay, record_runs=record_runs),
            processes,
        )
    allowed = _COMMANDS["sweep"]
    return _execute(
        "sweep",
        allowed,
        dict(
            settings,
            config=config,
            objective=objective,
            out=out,
            progress=progress,
            optimal_delay=optimal_delay,
            record_runs=record_runs,
            callback=callback,
        ),
    )


def _shard_worker(settings: Dict[str, Any], spec: Optional[Dict[str, Any]], out: str, shard: str) -> str:
    """One shard of ``_in_processes``, in a worker process: the objective is
    re-imported from its reference, as a replay does."""
    objective = _objective_from_spec(spec) if spec is not None else None
    sweep(**dict(settings, objective=objective, out=out, shard=shard, progress=False))
    return out


def _in_processes(settings: Dict[str, Any], processes: int) -> Result:
    import multiprocessing

    for key in ("shard", "shard_count", "resume"):
        if settings.get(key) is not None:
            raise PsimError(f"processes: splits the sweep into shards itself; `{key}` is refused with it", "processes")
    if settings.get("record_pushes"):
        # Push logs live in memory, not in the point files a merge reads.
        raise PsimError(
            "record_pushes: push logs are not kept in the shards processes > 1 merges; record pushes with processes=1",
            "record_pushes",
        )
    objective = settings.pop("objective", None)
    spec = None
    if objective is not None:
        spec = _objective_spec(objective)
        if spec.get("replayable", True) is False:
            raise PsimError(
                f"processes: each worker process re-imports the objective from its reference, and `{spec['reference']}` cannot be: {spec.get('reason', '')}",
                "processes",
            )
    out = settings.pop("out", None)
    tmp = None
    if out is None:
        tmp = tempfile.TemporaryDirectory(prefix="psim-")
        out = os.path.join(tmp.name, "merged")
    out = os.fspath(out)
    parts = tempfile.mkdtemp(prefix="psim-shards-")
    try:
        jobs = [(settings, spec, os.path.join(parts, f"s{i}"), f"{i}/{processes}") for i in range(processes)]
        # `spawn`: a fresh interpreter per worker (a fork would copy the
        # engine's threads' state); the settings and the reference are plain data.
        with multiprocessing.get_context("spawn").Pool(processes) as pool:
            dirs = pool.starmap(_shard_worker, jobs)
        parquet = settings.get("parquet")
        if parquet is None:
            parquet = _has_pyarrow()
        try:
            _psim.merge(list(dirs), out, bool(parquet))
        except _psim.NativeError as e:
            raise PsimError(f"processes: merging the {processes} shards failed: {e.args[0]}; the shards are in {parts}", "processes") from None
        if settings.get("record_runs"):
            _merge_run_traces(dirs, out)
            if parquet:
                _psim.write_parquet(out, "run-traces")
        with open(os.path.join(out, "report.txt")) as f:
            report = f.read()
        shutil.rmtree(parts, ignore_errors=True)
    except BaseException:
        if tmp is not None:
            tmp.cleanup()
        raise
    return Result(out, report, tmp)


def _merge_run_traces(dirs: List[str], out: str) -> None:
    """The shards' ``run-traces.csv`` as one, sorted by (point, run, step) as one process writes it."""
    texts = []
    for d in dirs:
        with open(os.path.join(d, "run-traces.csv"), encoding="utf-8") as f:
            texts.append(f.read().splitlines())
    header = texts[0][0]
    rows = [row for t in texts for row in t[1:] if row]
    rows.sort(key=lambda r: tuple(int(x) for x in r.split(",", 3)[:3]))
    tmp = os.path.join(out, ".run-traces.csv.tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        f.write("\n".join([header] + rows) + "\n")
    os.replace(tmp, os.path.join(out, "run-traces.csv"))


def reproduce(name: str, *, config=None, out=None, progress: bool = True, **settings) -> Result:
    """A named experiment of the papers (``psim reproduce NAME``), e.g. ``psim.reproduce("tradeoff", runs=20)``.

    ``psim.scenarios()`` lists the names. ``config`` replays a ``config.toml``
    written by an earlier ``reproduce(name)``.
    """
    if not isinstance(name, str):
        raise PsimError(f"name: expected a scenario name, got {name!r}", "name")
    if config is not None:
        return _execute("run", _COMMANDS["run"], dict(settings, config=config, out=out, progress=progress), expect_name=name)
    return _execute("reproduce", _COMMANDS["reproduce"], dict(settings, out=out, progress=progress), extra=[name])


def scenarios() -> Dict[str, str]:
    """The named scenarios of ``psim.reproduce``: name → title."""
    return dict(_psim.scenarios())


def estimate_curvature(objective, *, at=None, draws: int = 32, iterations: int = 60, seed: int = 0) -> float:
    """The top curvature of ``objective`` at ``at`` (default: its initial point),
    estimated from gradient differences: power iteration on Hessian-vector
    products Hv ≈ (g(x + hv) − g(x − hv)) / 2h, each the mean of ``draws``
    gradient pairs drawn with the same random numbers on both sides (common
    random numbers), so additive gradient noise cancels exactly.
    """
    if at is None:
        init = objective.initial_point
        at = init() if callable(init) else init
    x = np.asarray(at, dtype=float).copy()
    if x.ndim != 1 or x.size == 0 or not np.all(np.isfinite(x)):
        raise PsimError("at: a non-empty finite 1-d array is needed to estimate the curvature", "at")
    if not (isinstance(draws, int) and draws >= 1 and isinstance(iterations, int) and iterations >= 1):
        raise PsimError("draws, iterations: integers ≥ 1", "draws")
    h = 1e-4 * max(1.0, float(np.linalg.norm(x)))

    def hv(v):
        acc = np.zeros_like(x)
        for i in range(draws):
            gp = np.asarray(objective.gradient(x + h * v, np.random.default_rng([seed, i])), dtype=float)
            gm = np.asarray(objective.gradient(x - h * v, np.random.default_rng([seed, i])), dtype=float)
            acc += (gp - gm) / (2.0 * h)
        return acc / draws

    v = np.random.default_rng([seed, 1 << 30]).standard_normal(x.size)
    v /= np.linalg.norm(v)
    lam = 0.0
    for _ in range(iterations):
        w = hv(v)
        lam = float(v @ w)
        n = float(np.linalg.norm(w))
        if not np.isfinite(n) or n == 0.0:
            break
        v = w / n
    if not (np.isfinite(lam) and lam > 0.0):
        raise PsimError(f"objective: the top curvature at the point is {lam}, not positive; pass curvature= instead", "objective")
    return lam


def advise(*, step_size, spectrum=None, curvature=None, objective=None, at=None, delay=None, workers=None,
           compute_time=None, consistency=None, momentum=None, confirm: bool = False, runs=None, steps=None,
           seed=None, print_report: bool = True) -> Dict[str, Any]:
    """``psim advise`` from Python: the largest delay (``delay=``) or worker count
    (``workers=``, ``compute_time=``) each momentum tolerates, the best momentum
    and a paragraph on what limits it; ``confirm=True`` checks it by simulation.

    The problem is ``spectrum=`` (streaming PCA), ``curvature=`` (a number or
    ``(min, max)``) or ``objective=`` (a Python objective: its top curvature
    is estimated by :func:`estimate_curvature` at ``at`` and passed on as the
    curvature; predicted only). Returns ``{"report", "advice", "confirmation"}``.
    """
    argv = ["--step-size", _text("step_size", step_size)]
    given = [k for k, v in (("spectrum", spectrum), ("curvature", curvature), ("objective", objective)) if v is not None]
    if len(given) > 1:
        raise PsimError(f"{given[1]}: give one of spectrum=, curvature=, objective=", given[1])
    if objective is not None:
        curvature = estimate_curvature(objective, at=at)
    if spectrum is not None:
        argv += ["--spectrum", ",".join(_text("spectrum", x) for x in np.atleast_1d(spectrum))]
    if curvature is not None:
        if isinstance(curvature, (tuple, list)):
            lo, hi = curvature
            argv += ["--curvature", f"{_text('curvature', lo)}..{_text('curvature', hi)}"]
        else:
            argv += ["--curvature", _text("curvature", curvature)]
    for key, value in (("delay", delay), ("workers", workers), ("compute-time", compute_time),
                       ("consistency", consistency), ("runs", runs), ("steps", steps), ("seed", seed)):
        if value is not None:
            argv += [f"--{key}", _text(key, value)]
    if momentum is not None:
        argv += ["--momentum", ",".join(_text("momentum", m) for m in np.atleast_1d(momentum))]
    if confirm:
        argv.append("--confirm")
    try:
        out = json.loads(_psim.advise(argv))
    except _psim.NativeError as e:
        message, field = e.args
        m = re.search(r"`--?([a-z-]+)`", message)
        key = field or (m.group(1).replace("-", "_") if m else None)
        raise PsimError(message, key) from None
    if print_report:
        print(out["report"])
    return out
