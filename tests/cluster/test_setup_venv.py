"""`make venv` (deploy/setup-venv.sh): which interpreter, and when the venv is made again.

Each test runs the real script on a copy of it in a temp dir, with an empty lock file, so a
venv is made for real (the venv module, ensurepip) without installing the project's pins.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DEBIAN_PYTHON = Path("/usr/bin/python3.11")

pytestmark = pytest.mark.slow


def _checkout(tmp_path: Path) -> Path:
    root = tmp_path / "checkout"
    (root / "deploy").mkdir(parents=True)
    shutil.copy(ROOT / "deploy" / "setup-venv.sh", root / "deploy" / "setup-venv.sh")
    (root / "pyproject.toml").write_text("")
    (root / "requirements.lock").write_text("")
    return root


def _setup(root: Path, python: str | None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHON", "VIRTUAL_ENV")}
    if python is not None:
        env["PYTHON"] = python
    return subprocess.run(
        ["bash", str(root / "deploy" / "setup-venv.sh"), ".venv"],
        cwd=root.parent,  # the script finds the checkout from its own path
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def _made_with(root: Path) -> str:
    return (root / ".venv" / ".orderflow-python").read_text().strip()


def _other_interpreter(tmp_path: Path) -> str:
    """An interpreter at a path of its own: a wrapper that runs this test's Python."""
    real = os.path.realpath(getattr(sys, "_base_executable", sys.executable))
    wrapper = tmp_path / "other-python"
    if not wrapper.exists():
        wrapper.write_text(f'#!/bin/sh\nexec "{real}" "$@"\n')
        wrapper.chmod(0o755)
    return str(wrapper)


def test_debians_optimised_python_is_chosen_where_there_is_one_else_python3(
    tmp_path: Path,
) -> None:
    root = _checkout(tmp_path)
    python3 = shutil.which("python3")
    assert python3 is not None
    expected = str(DEBIAN_PYTHON) if DEBIAN_PYTHON.exists() else os.path.realpath(python3)

    made = _setup(root, python=None)

    assert made.returncode == 0, made.stderr
    assert _made_with(root) == expected
    if DEBIAN_PYTHON.exists():  # the venv's own interpreter is Debian's build
        base = subprocess.run(
            [
                str(root / ".venv" / "bin" / "python"),
                "-c",
                "import sys; print(sys._base_executable)",
            ],
            capture_output=True,
            text=True,
            check=True,
        )
        assert os.path.realpath(base.stdout.strip()) == str(DEBIAN_PYTHON)
    assert (root / ".venv" / ".orderflow-installed").exists()


def test_a_second_run_with_nothing_changed_does_nothing(tmp_path: Path) -> None:
    root = _checkout(tmp_path)
    first = _setup(root, python=_other_interpreter(tmp_path))
    assert first.returncode == 0, first.stderr
    assert "Python virtual environment in .venv" in first.stdout

    again = _setup(root, python=_other_interpreter(tmp_path))

    assert again.returncode == 0, again.stderr
    assert again.stdout == ""


def test_the_pins_are_installed_again_when_the_lock_is_newer(tmp_path: Path) -> None:
    root = _checkout(tmp_path)
    assert _setup(root, python=_other_interpreter(tmp_path)).returncode == 0
    stamp = (root / ".venv" / ".orderflow-installed").stat().st_mtime
    os.utime(root / "requirements.lock", (stamp + 10, stamp + 10))

    again = _setup(root, python=_other_interpreter(tmp_path))

    assert again.returncode == 0, again.stderr
    assert "installing the pinned dependencies" in again.stdout
    assert "Python virtual environment" not in again.stdout  # the venv itself is kept


def test_a_venv_made_with_another_interpreter_is_made_again(tmp_path: Path) -> None:
    root = _checkout(tmp_path)
    other = _other_interpreter(tmp_path)
    real = os.path.realpath(sys.executable)
    assert _setup(root, python=other).returncode == 0
    assert _made_with(root) == other

    switched = _setup(root, python=real)

    assert switched.returncode == 0, switched.stderr
    assert f".venv was made with {other}; making it again with {real}" in switched.stdout
    assert _made_with(root) == real


def test_a_venv_made_with_an_interpreter_asked_for_is_kept_by_later_runs_without_it(
    tmp_path: Path,
) -> None:
    root = _checkout(tmp_path)
    other = _other_interpreter(tmp_path)
    assert _setup(root, python=other).returncode == 0

    again = _setup(root, python=None)

    assert again.returncode == 0, again.stderr
    assert again.stdout == ""
    assert _made_with(root) == other


def test_a_venv_from_before_the_marker_is_made_again(tmp_path: Path) -> None:
    root = _checkout(tmp_path)
    subprocess.run([_other_interpreter(tmp_path), "-m", "venv", str(root / ".venv")], check=True)

    made = _setup(root, python=_other_interpreter(tmp_path))

    assert made.returncode == 0, made.stderr
    assert ".venv was made with another interpreter; making it again" in made.stdout
    assert _made_with(root) == _other_interpreter(tmp_path)


def test_a_missing_interpreter_is_named_with_the_way_to_choose_another(tmp_path: Path) -> None:
    root = _checkout(tmp_path)

    made = _setup(root, python="python3.0-nowhere")

    assert made.returncode == 1
    assert "no Python interpreter 'python3.0-nowhere' (set PYTHON=...)" in made.stderr
    assert not (root / ".venv").exists()


def test_an_interpreter_older_than_3_11_is_refused(tmp_path: Path) -> None:
    root = _checkout(tmp_path)
    old = tmp_path / "python-3.9"
    old.write_text('#!/bin/sh\n[ "$1" = -c ] && case $2 in *exit*) exit 1;; esac\necho 3.9.0\n')
    old.chmod(0o755)

    made = _setup(root, python=str(old))

    assert made.returncode == 1
    assert "Orderflow needs 3.11 or newer (set PYTHON=...)" in made.stderr
    assert not (root / ".venv").exists()
