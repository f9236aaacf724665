"""manage.py takes the settings of a running `make run` from `.run/env`, and only then: the file must be
this user's and private, name a live process, and never override what the environment already says."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
_spec = importlib.util.spec_from_file_location("leasehold_manage", ROOT / "manage.py")
assert _spec and _spec.loader
manage = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(manage)


@pytest.fixture
def live_pid():
    process = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])  # noqa: S603
    yield process.pid
    process.kill()
    process.wait()


def write(tmp_path: Path, pid: int, mode: int = 0o600) -> Path:
    path = tmp_path / "env"
    path.write_text(f"# a comment\nLEASEHOLD_RUN_PID={pid}\nSECRET_KEY=from-the-run\nDATABASE_URL=sqlite:///x\n")
    path.chmod(mode)
    return path


def test_it_takes_the_settings_of_a_running_make_run(tmp_path, live_pid):
    environ: dict[str, str] = {}
    assert manage.local_run_env(write(tmp_path, live_pid), environ)
    assert environ == {"SECRET_KEY": "from-the-run", "DATABASE_URL": "sqlite:///x"}


def test_what_the_environment_already_says_wins(tmp_path, live_pid):
    environ = {"SECRET_KEY": "mine"}
    manage.local_run_env(write(tmp_path, live_pid), environ)
    assert environ["SECRET_KEY"] == "mine"


def test_it_ignores_the_file_of_a_run_that_ended(tmp_path):
    ended = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)  # noqa: S603
    environ: dict[str, str] = {}
    assert not manage.local_run_env(write(tmp_path, int(ended.stdout)), environ)
    assert environ == {}


def test_it_ignores_a_file_others_may_read_or_write(tmp_path, live_pid):
    environ: dict[str, str] = {}
    assert not manage.local_run_env(write(tmp_path, live_pid, mode=0o644), environ)
    assert environ == {}


def test_it_can_be_turned_off(tmp_path, live_pid):
    environ = {"LEASEHOLD_RUN_ENV": "off"}
    assert not manage.local_run_env(write(tmp_path, live_pid), environ)
    assert "SECRET_KEY" not in environ


def test_it_ignores_a_missing_file(tmp_path):
    assert not manage.local_run_env(tmp_path / "nothing", dict(os.environ))


def test_the_image_does_not_carry_the_run_directory():
    assert ".run" in (ROOT / ".containerignore").read_text().split()
