#!/usr/bin/env bash
# Make (or reuse) benchmarks/.venv-token-throttle: a Python >= 3.12 virtualenv with the
# token-throttle rival, the openai SDK and redis (token-throttle's Redis backend), for
# benchmarks/rivals/token_throttle_worker.py and token_throttle_hot_worker.py.
# token-throttle needs Python >= 3.12 while ratelimit-llm supports 3.11, so the rival runs
# in its own interpreter. Idempotent (a stamp file records what was installed). Exits 0
# with a message when no Python >= 3.12 exists; the benchmark then skips token-throttle.
# Set PYTHON312=/path/to/python3.12 to choose the interpreter.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
VENV="$HERE/.venv-token-throttle"
STAMP="$VENV/.token-throttle-installed"
# Bump when the pins below change, so existing venvs are refreshed.
WANT="token-throttle>=14,<15 openai>=1.40 redis>=5.0.1"

if [ -x "$VENV/bin/python" ] && [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$WANT" ]; then
    exit 0
fi

is_new_enough() {
    "$1" -c 'import sys; sys.exit(sys.version_info < (3, 12))' >/dev/null 2>&1
}

PY="${PYTHON312:-}"
if [ -n "$PY" ] && ! is_new_enough "$PY"; then
    echo "setup_token_throttle: PYTHON312=$PY is not Python >= 3.12" >&2
    PY=""
fi
if [ -z "$PY" ]; then
    # pyenv installs first (oldest >= 3.12 first), then whatever is on PATH.
    for candidate in \
        $(ls -d "${PYENV_ROOT:-$HOME/.pyenv}"/versions/3.1[2-9].*/bin/python3.1[2-9] 2>/dev/null | sort -V) \
        python3.12 python3.13 python3.14 python3; do
        if command -v "$candidate" >/dev/null 2>&1 && is_new_enough "$candidate"; then
            PY="$(command -v "$candidate")"
            break
        fi
    done
fi
if [ -z "$PY" ]; then
    echo "setup_token_throttle: no Python >= 3.12 found; the benchmark will skip token-throttle" >&2
    exit 0
fi

echo "==> creating $VENV with $PY ($("$PY" --version 2>&1))" >&2
rm -rf "$VENV"
"$PY" -m venv "$VENV"
"$VENV/bin/python" -m pip install --quiet --disable-pip-version-check --upgrade pip
# shellcheck disable=SC2086  # $WANT is a list of requirement specifiers
"$VENV/bin/python" -m pip install --quiet --disable-pip-version-check $WANT
echo "$WANT" > "$STAMP"
echo "==> token-throttle $("$VENV/bin/python" -c 'import importlib.metadata as m; print(m.version("token-throttle"))') ready in $VENV" >&2
