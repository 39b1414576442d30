#!/usr/bin/env bash
# The project's virtual environment (.venv) with the pinned dependencies (requirements.lock).
#
# The interpreter: $PYTHON if set, else Debian's python3.11 where there is one, else
# python3. Debian builds its python3.11 with profile-guided optimisation and link-time
# optimisation and links the interpreter statically; a CPython configured with
# --enable-shared and without --enable-optimizations (pyenv's default build, for one)
# spends 5-20 % more CPU on the same request in every one of our processes (measured
# side by side: docs/performance-log.md, session 21). The Dockerfile's python:3.11-slim is an
# optimised build too, so this keeps the local cluster's processes close to the image's.
#
# The venv is made again when it predates the marker this script writes, or when PYTHON
# names another interpreter than the one it was made with; the pins are installed again
# when pyproject.toml or requirements.lock is newer than the last install. Idempotent:
# with everything in place it only compares paths and times.
set -euo pipefail
cd "$(dirname "$0")/.."

venv=${1:-.venv}
marker=$venv/.orderflow-python
stamp=$venv/.orderflow-installed

# The interpreter asked for: $PYTHON, else the default.
python=${PYTHON:-}
if [ -z "$python" ]; then
  if [ -x /usr/bin/python3.11 ]; then python=/usr/bin/python3.11; else python=python3; fi
fi
resolve() {
  local found
  found=$(command -v "$python") || { echo "[setup] no Python interpreter '$python' (set PYTHON=...)" >&2; exit 1; }
  readlink -f "$found"
}

# An existing venv is kept unless it predates the marker (made before session 21, with
# whatever python3 was), or PYTHON names another interpreter than the one it was made
# with: a venv made with PYTHON=... stays on it through later runs without PYTHON.
if [ -x "$venv/bin/python" ]; then
  have=$(cat "$marker" 2>/dev/null || true)
  if [ -z "$have" ] || { [ -n "${PYTHON:-}" ] && [ "$(resolve)" != "$have" ]; }; then
    want=$(resolve)
    echo "[setup] $venv was made with ${have:-another interpreter}; making it again with $want"
    rm -rf "$venv"
  fi
fi

if [ ! -x "$venv/bin/python" ]; then
  want=$(resolve)
  "$want" -c 'import sys; sys.exit(sys.version_info[:2] < (3, 11))' || {
    echo "[setup] $want is Python $("$want" -c 'import sys; print(*sys.version_info[:3], sep=".")'); Orderflow needs 3.11 or newer (set PYTHON=...)" >&2
    exit 1
  }
  # Debian ships the venv module's ensurepip in its own package.
  if ! "$want" -c 'import ensurepip, venv' 2>/dev/null; then
    pkg=python3-venv
    case $want in /usr/bin/python3.*) pkg=$(basename "$want")-venv ;; esac
    if command -v apt-get >/dev/null; then
      # shellcheck source=deploy/apt.sh
      . deploy/apt.sh
      apt_install "$pkg"
    else
      echo "[setup] $want has no venv module (ensurepip); install it, or set PYTHON=..." >&2
      exit 1
    fi
  fi
  echo "[setup] Python virtual environment in $venv ($want, Python $("$want" -c 'import platform; print(platform.python_version())'))"
  "$want" -m venv "$venv"
  echo "$want" >"$marker"
fi
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ] || [ requirements.lock -nt "$stamp" ]; then
  echo "[setup] installing the pinned dependencies (requirements.lock) into $venv"
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r requirements.lock
  touch "$stamp"
fi
