#!/usr/bin/env bash
# Create or refresh .venv for this checkout; usage: tools/venv.sh [EXTRAS], e.g. tools/venv.sh dev,ray.
# The venv is keyed on a hash of pyproject.toml and the extras: when either changes, pip runs again.
set -euo pipefail
cd "$(dirname "$0")/.."
extras="${1:-}"
venv=.venv
key="$(cat pyproject.toml | sha256sum | cut -c1-16)-${extras:-none}"
stamp="$venv/.edgewise-installed"
if [ -x "$venv/bin/python" ] && [ -f "$stamp" ] && grep -qx "$key" "$stamp"; then
    exit 0
fi
# a dev install satisfies a plain one: do not reinstall for `make demo` after `make test`
if [ -z "$extras" ] && [ -f "$stamp" ] && grep -q "^${key%-none}-dev" "$stamp"; then
    exit 0
fi
if [ ! -x "$venv/bin/python" ]; then
    echo "creating $venv (first time: about 5 minutes, torch is large)"
    python3 -m venv "$venv"
fi
spec="."
[ -n "$extras" ] && spec=".[$extras]"
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check -e "$spec" 2>&1 \
    | grep -v "is ignored: it is neither a file nor a directory" || true
"$venv/bin/python" -c "import edgewise, torch, zennit, nncodec, torch_pruning, onnxruntime" \
    || { echo "error: the install in $venv is incomplete; remove $venv and run make again" >&2; exit 1; }
{ echo "$key"; cat "$stamp" 2>/dev/null || true; } | sort -u > "$stamp.tmp"
mv "$stamp.tmp" "$stamp"
