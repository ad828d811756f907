"""Type stubs of psim (see psim/__init__.py for the docs)."""

import os
from typing import Any, Dict, List, NamedTuple, Optional, Protocol, Sequence, Union

import numpy as np
import pandas as pd

_Num = Union[int, float]
_Grid = Union[_Num, Sequence[_Num]]
_Text = Union[str, Sequence[str]]
_Config = Union[str, "os.PathLike[str]", Dict[str, Any], None]

SETTINGS: Dict[str, tuple]

class PsimError(ValueError):
    field: Optional[str]
    def __init__(self, message: str, field: Optional[str] = ...) -> None: ...

class Stop(Exception):
    """Raised by a callback to end the run at this trace point."""

class Objective(Protocol):
    """Your own objective: see the module docstring."""
    dim: int
    def gradient(self, params: np.ndarray, rng: np.random.Generator) -> np.ndarray: ...
    def error(self, params: np.ndarray) -> float: ...

class Staleness(NamedTuple):
    values: np.ndarray
    counts: np.ndarray

class Result:
    path: str
    report: str
    @property
    def files(self) -> List[str]: ...
    @property
    def summary(self) -> Dict[str, Any]: ...
    @property
    def runs(self) -> Optional[pd.DataFrame]: ...
    @property
    def timings(self) -> Optional[pd.DataFrame]: ...
    @property
    def traces(self) -> Optional[pd.DataFrame]: ...
    @property
    def run_traces(self) -> Optional[pd.DataFrame]: ...
    @property
    def staleness(self) -> Optional[Staleness]: ...
    def csv(self, name: str) -> Optional[pd.DataFrame]: ...
    def save(self, directory: Union[str, "os.PathLike[str]"]) -> str: ...

def run(
    *,
    config: _Config = ...,
    objective: Optional[Any] = ...,
    out: Optional[Union[str, "os.PathLike[str]"]] = ...,
    progress: bool = ...,
    record_runs: bool = ...,
    callback: Optional[Any] = ...,
    parquet: Optional[bool] = ...,
    momentum: Optional[_Num] = ...,
    step_size: Optional[_Num] = ...,
    delay: Optional[str] = ...,
    taus: Optional[str] = ...,
    steps: Optional[int] = ...,
    runs: Optional[int] = ...,
    seed: Optional[int] = ...,
    spectrum: Optional[Sequence[_Num]] = ...,
    covariance: Optional[Union[str, Sequence[Sequence[_Num]]]] = ...,
    data: Optional[str] = ...,
    init: Optional[str] = ...,
    history: Optional[int] = ...,
    history_policy: Optional[str] = ...,
    record_every: Optional[int] = ...,
    tail_fraction: Optional[_Num] = ...,
    divergence_norm: Optional[_Num] = ...,
    target_error: Optional[_Num] = ...,
    engine: Optional[str] = ...,
    rule: Optional[str] = ...,
    schedule: Optional[str] = ...,
    workers: Optional[int] = ...,
    compute_time: Optional[str] = ...,
    network_delay: Optional[str] = ...,
    consistency: Optional[str] = ...,
    backend: Optional[str] = ...,
    on_worker_failure: Optional[str] = ...,
    threads: Optional[int] = ...,
) -> Result: ...
def sweep(
    *,
    config: _Config = ...,
    objective: Optional[Any] = ...,
    out: Optional[Union[str, "os.PathLike[str]"]] = ...,
    progress: bool = ...,
    optimal_delay: bool = ...,
    processes: int = ...,
    record_runs: bool = ...,
    callback: Optional[Any] = ...,
    parquet: Optional[bool] = ...,
    momentum: Optional[_Grid] = ...,
    step_size: Optional[_Grid] = ...,
    delay: Optional[_Text] = ...,
    taus: Optional[str] = ...,
    steps: Optional[int] = ...,
    runs: Optional[int] = ...,
    seed: Optional[int] = ...,
    spectrum: Optional[Sequence[_Num]] = ...,
    covariance: Optional[Union[str, Sequence[Sequence[_Num]]]] = ...,
    data: Optional[str] = ...,
    init: Optional[str] = ...,
    history: Optional[int] = ...,
    history_policy: Optional[str] = ...,
    record_every: Optional[int] = ...,
    tail_fraction: Optional[_Num] = ...,
    divergence_norm: Optional[_Num] = ...,
    target_error: Optional[_Num] = ...,
    engine: Optional[str] = ...,
    rule: Optional[str] = ...,
    schedule: Optional[str] = ...,
    workers: Optional[Union[int, Sequence[int]]] = ...,
    compute_time: Optional[_Text] = ...,
    network_delay: Optional[str] = ...,
    consistency: Optional[_Text] = ...,
    backend: Optional[str] = ...,
    on_worker_failure: Optional[str] = ...,
    factor: Optional[_Num] = ...,
    threads: Optional[int] = ...,
) -> Result: ...
def reproduce(
    name: str,
    *,
    config: _Config = ...,
    out: Optional[Union[str, "os.PathLike[str]"]] = ...,
    progress: bool = ...,
    **settings: Any,
) -> Result: ...
def scenarios() -> Dict[str, str]: ...
def estimate_curvature(objective: Any, *, at: Any = ..., draws: int = ..., iterations: int = ..., seed: int = ...) -> float: ...
def advise(*, step_size: float, spectrum: Any = ..., curvature: Any = ..., objective: Any = ..., at: Any = ...,
           delay: Optional[str] = ..., workers: Optional[int] = ..., compute_time: Optional[str] = ...,
           consistency: Optional[str] = ..., momentum: Any = ..., confirm: bool = ..., runs: Optional[int] = ...,
           steps: Optional[int] = ..., seed: Optional[int] = ..., print_report: bool = ...) -> Dict[str, Any]: ...
