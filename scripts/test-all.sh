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
set +e
# From the repository root, so `import psim` is the installed package, not python/psim.
"$VENV/bin/python" -m pytest -q python/tests
rc=$?
set -e
if [ "$rc" -eq 5 ]; then
    echo "pytest collected no tests: failing" >&2
    exit 1
fi
exit "$rc"
