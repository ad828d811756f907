"""The Python snippets of README.md and python/README.md run as written, each in under 10 s."""

import os
import re
import time

import pytest

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
READMES = ["README.md", os.path.join("python", "README.md")]
LIMIT_SECONDS = 10.0


def _blocks(name):
    with open(os.path.join(ROOT, name), encoding="utf-8") as f:
        return re.findall(r"^```python\n(.*?)^```", f.read(), flags=re.S | re.M)


def test_the_readmes_have_python_snippets():
    assert sum(len(_blocks(n)) for n in READMES) >= 2


@pytest.mark.parametrize("name", READMES)
def test_readme_snippets_run_as_written_in_seconds(name, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # snippets may save output directories
    namespace = {"__name__": "__readme__"}
    for i, block in enumerate(_blocks(name)):
        started = time.perf_counter()
        exec(compile(block, f"{name} python block {i + 1}", "exec"), namespace)
        seconds = time.perf_counter() - started
        assert seconds < LIMIT_SECONDS, f"{name} python block {i + 1} took {seconds:.1f} s"


def test_the_benchmark_runs_from_the_repository_root_on_the_installed_package():
    import subprocess
    import sys

    p = subprocess.run([sys.executable, os.path.join("python", "bench_overhead.py"), "--quick"], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr[-2000:]
    assert "site-packages" in p.stdout.splitlines()[0] and "heavy ball" in p.stdout, p.stdout
