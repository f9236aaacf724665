"""`manage.py run_periodic`: beat's equivalent for the embedded defaults (`make run`, no broker).

Runs every job of CELERY_BEAT_SCHEDULE in this process on the same schedule that `celery beat` keeps
in production: the stuck-request sweep, the drift reconcile, reclamation passes, approval reminders.
With a broker configured, use `celery -A config beat` instead (one beat per installation).
"""

from __future__ import annotations

import logging
import time

from celery.beat import ScheduleEntry
from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from config.celery import app

log = logging.getLogger(__name__)


def schedule_entries() -> list[ScheduleEntry]:
    """One entry per job of CELERY_BEAT_SCHEDULE, none run yet."""
    return [
        ScheduleEntry(name=name, task=job["task"], schedule=job["schedule"], app=app)
        for name, job in app.conf.beat_schedule.items()
    ]


def run_entry(entry: ScheduleEntry) -> bool:
    """Run one job here and now; a failure is logged, never fatal (the next run does the same work)."""
    try:
        app.tasks[entry.task].apply(throw=True)
    except Exception:
        log.exception("periodic job %s failed; it runs again on its schedule", entry.name)
        return False
    return True


class Command(BaseCommand):
    help = "Run the periodic jobs (sweep, reconcile, reclamation, reminders) in this process, like celery beat."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--once", action="store_true", help="Run every job once, then stop.")

    def handle(self, *args, once: bool = False, **options) -> None:
        if settings.REDIS_URL and not once:
            raise CommandError("A broker is configured (REDIS_URL): run `celery -A config beat` instead.")
        app.loader.import_default_modules()  # registers every app's tasks
        entries = schedule_entries()
        if once:
            failed = [e.name for e in entries if not run_entry(e)]
            if failed:
                raise CommandError(f"These periodic jobs failed: {', '.join(failed)} (see the log).")
            self.stdout.write(f"ran {len(entries)} periodic jobs")
            return
        self.stdout.write(
            f"running {len(entries)} periodic jobs on their schedules: {', '.join(e.name for e in entries)}"
        )
        while True:
            waits = []
            for index, entry in enumerate(entries):
                due, next_in = entry.is_due()
                if due:
                    run_entry(entry)
                    entries[index] = entry = next(entry)
                    due, next_in = entry.is_due()
                waits.append(next_in)
            time.sleep(max(1.0, min(waits)))
