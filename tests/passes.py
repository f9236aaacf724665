"""Reclamation passes run at the same moment, as on several cron hosts: the concurrency tests' harness."""

from __future__ import annotations

import threading

from django.db import connection

from leases.services.reclaim_pass import reclaim_pass


def concurrent_passes(now, *, count: int = 2) -> list[BaseException]:
    """Start `count` passes at once (each in its own thread and database connection) and wait for them;
    the errors they raised or reported, empty when all went through cleanly."""
    errors: list[BaseException] = []
    barrier = threading.Barrier(count)

    def one_pass():
        try:
            barrier.wait(timeout=10)
            report = reclaim_pass(now=now)
            if report.errors:
                errors.append(AssertionError(report.errors))
        except BaseException as exc:  # surfaced to the caller
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=one_pass) for _ in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    return errors
