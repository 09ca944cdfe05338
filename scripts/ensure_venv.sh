#!/usr/bin/env bash
# Create .venv if it is missing and install the pinned requirements into it.
# Installs nothing when the requirement files have not changed since the last install
# (their sha256 is kept in .venv/.installed-<name>).
# usage: scripts/ensure_venv.sh requirements.txt [requirements-dev.txt]
set -euo pipefail
VENV=${VENV:-.venv}
req=${1:-requirements.txt}

if [ ! -x "$VENV/bin/python" ]; then
  py=${PYTHON:-}
  if [ -z "$py" ]; then
    for cand in python3.11 python3 python; do
      if command -v "$cand" >/dev/null 2>&1; then py=$cand; break; fi
    done
  fi
  if [ -z "$py" ]; then
    echo "error: no python3 found. Install Python 3.11 (python.org, your package manager, or conda) and run make again." >&2
    exit 1
  fi
  if ! "$py" -c 'import sys; sys.exit(sys.version_info < (3, 10))'; then
    echo "error: $py is Python $("$py" -c 'import platform; print(platform.python_version())'); the course needs 3.10+ (3.11 recommended)." >&2
    echo "       Run: make lab PYTHON=/path/to/python3.11" >&2
    exit 1
  fi
  echo "Creating $VENV with $py ($("$py" -c 'import platform; print(platform.python_version())'))"
  "$py" -m venv "$VENV"
  "$VENV/bin/python" -m pip install -q --upgrade pip
fi

stamp="$VENV/.installed-$(basename "$req")"
# the hash covers the requirement file, the files it includes, and the package metadata
want=$(cat "$req" requirements.txt pyproject.toml | sha256sum 2>/dev/null || cat "$req" requirements.txt pyproject.toml | shasum -a 256)
want=${want%% *}
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
  echo "$VENV is up to date with $req (nothing to install)"
  exit 0
fi
echo "Installing $req into $VENV ..."
"$VENV/bin/python" -m pip install -r "$req"
"$VENV/bin/python" -m pip install -q --no-deps -e .
echo "$want" > "$stamp"
