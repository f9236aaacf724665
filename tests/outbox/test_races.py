"""Concurrent delivery on PostgreSQL: runs in threads with their own connections, released together by a
barrier, against a real (slow) SMTP server. Every mail reaches the server exactly once."""

from __future__ import annotations

from collections import Counter

import pytest
from django.db import connection

from requests_app.models import OutgoingMail
from requests_app.services import mail_deliver_pending, mail_queue
from tests.approvals.test_races import race
from tests.conftest import require_env

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]
MAILS = 30
RUNS = 4


@pytest.fixture(autouse=True)
def on_postgresql():
    require_env("DATABASE_URL")
    assert connection.vendor == "postgresql", "races are only meaningful on PostgreSQL's row locks"


def test_concurrent_runs_send_each_mail_once(smtp_server):
    smtp_server.delay = 0.02  # each mail takes a while, so the runs overlap for the whole batch
    for n in range(MAILS):
        mail_queue(topic="race", subject=f"notice {n}", body="b", to=["dana@example.org"], deliver=False)
    results = race(*[lambda: mail_deliver_pending(limit=MAILS) for _ in range(RUNS)])
    assert not any(isinstance(r, Exception) for r in results), results
    sent = [m.pk for r in results for m in r.sent]
    assert len(sent) == len(set(sent)) == MAILS
    assert sum(1 for r in results if r.sent) > 1, "the runs did not overlap; the test proves nothing"
    subjects = Counter(m["Subject"] for m in smtp_server.received)
    assert subjects == Counter(f"notice {n}" for n in range(MAILS))
    assert len({m["Message-ID"] for m in smtp_server.received}) == MAILS
    assert set(OutgoingMail.objects.values_list("state", "attempts")) == {("sent", 1)}


def test_a_retry_racing_the_after_commit_delivery_sends_once(smtp_server):
    """The periodic task may find a mail whose after-commit delivery is still running."""
    smtp_server.delay = 0.2
    mail = mail_queue(topic="race", subject="just decided", body="b", to=["dana@example.org"], deliver=False)
    assert mail is not None
    results = race(
        lambda: mail_deliver_pending(limit=1, ids=[mail.pk]),  # the after-commit delivery
        lambda: mail_deliver_pending(limit=100),  # the periodic task
    )
    assert sorted(len(r.sent) for r in results) == [0, 1], results
    assert [m["Subject"] for m in smtp_server.received] == ["just decided"]
