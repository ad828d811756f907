#!/usr/bin/env bash
# Every test: the Rust workspace, then the Python package's pytest suite in a
# fresh virtualenv (built by maturin through `pip install ./python`).
set -euo pipefail
cd "$(dirname "$0")/.."
cargo test --workspace --release
VENV="${PSIM_TEST_VENV:-target/test-venv}"
python3 -m venv "$VENV"
VENV="$(cd "$VENV" && pwd)"
"$VENV/bin/pip" install -q --upgrade pip
"$VENV/bin/pip" install -q maturin numpy pandas pytest
# Reuses target/ (the workspace's), so only the extension is compiled.
CARGO_TARGET_DIR="$PWD/target" "$VENV/bin/pip" install -q ./python
# PyTorch from PyPI (CPU use; the wheel pulls CUDA libraries, ≈ 4 GB and 4 min
# on a cold pip cache) for the PyTorch example. PSIM_SKIP_TORCH=1 skips it.
if [ "${PSIM_SKIP_TORCH:-0}" != 1 ]; then
    "$VENV/bin/pip" install -q torch
fi
set +e
# From the repository root, so `import psim` is the installed package, not python/psim.
"$VENV/bin/python" -m pytest -q python/tests
rc=$?
set -e
if [ "$rc" -eq 5 ]; then
    echo "pytest collected no tests: failing" >&2
    exit 1
fi
if [ "$rc" -ne 0 ]; then
    exit "$rc"
fi
if [ "${PSIM_SKIP_TORCH:-0}" != 1 ]; then
    # Virtual time, then threads with 4 workers; fails on a crash or an error that does not fall.
    "$VENV/bin/python" examples/python/torch_mlp.py --quick
fi
