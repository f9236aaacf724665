#!/usr/bin/env python
import os
import sys
from collections.abc import MutableMapping
from pathlib import Path

ROOT = Path(__file__).resolve().parent


def local_run_env(path: Path, environ: MutableMapping[str, str]) -> bool:
    """Take the settings of a `make run` that is running from this checkout, from `.run/env`, for the
    variables not set already (what is set wins), so that `manage.py reclaim_leases` typed in a second
    terminal uses the same database, secret key and local cluster as the running service.

    Only a file written by a live `make run` counts: owned by this user, readable by nobody else, naming
    a process (LEASEHOLD_RUN_PID) that still runs. A container image has no `.run/` (.containerignore),
    and the web server, worker and beat never read it: only this script does. LEASEHOLD_RUN_ENV=off
    turns it off (the tests do). Returns whether the file was used."""
    if environ.get("LEASEHOLD_RUN_ENV", "on").lower() in ("off", "false", "0", "no"):
        return False
    try:
        info = path.stat()
        text = path.read_text()
    except OSError:
        return False
    if info.st_uid != os.getuid() or info.st_mode & 0o077:
        return False
    values = {}
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if sep and key.strip() and not key.lstrip().startswith("#"):
            values[key.strip()] = value
    try:
        os.kill(int(values.pop("LEASEHOLD_RUN_PID", "")), 0)
    except (ValueError, OSError):  # no pid, a stale file, or somebody else's process
        return False
    for key, value in values.items():
        environ.setdefault(key, value)
    return True


# Commands that never send a Celery task: they start without importing Celery (the reclaimer's CronJob
# runs `reclaim_leases` every 15 minutes; README "Performance").
SENDS_NO_TASK = frozenset({"reclaim_leases"})


def load_celery_app(argv: list[str], environ: MutableMapping[str, str]) -> bool:
    """Import the Celery app (config/celery.py) before the command runs, so that a task it sends (filing
    or approving enqueues provisioning) goes to the broker of the settings, as the web's and the
    worker's do; not for a command of SENDS_NO_TASK. There C_STRICT_APP is set (Celery's own switch):
    were a task sent all the same, Celery raises instead of sending it with its default app to a broker
    that is not ours (the caller logs it and the sweeps send it again). Returns whether it imported it."""
    if len(argv) > 1 and argv[1] in SENDS_NO_TASK:
        environ.setdefault("C_STRICT_APP", "1")
        return False
    import config.celery  # noqa: F401

    return True


if __name__ == "__main__":
    if local_run_env(ROOT / ".run" / "env", os.environ) and sys.stderr.isatty():
        print("manage.py: using the settings of the running `make run` (.run/env)", file=sys.stderr)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    load_celery_app(sys.argv, os.environ)
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)
