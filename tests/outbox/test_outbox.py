"""The outbox: mail is queued with the change it tells about, delivered after commit, and counts as sent only
once the mail backend accepted it; what the backend refuses stays pending, is retried, and admins see it."""

from __future__ import annotations

import pytest
from django.db import transaction
from django.urls import reverse

from config.settings import CELERY_BEAT_SCHEDULE
from requests_app.models import AuditEvent, OutgoingMail
from requests_app.services import mail_deliver_pending, mail_queue
from requests_app.tasks import deliver_pending_mail

pytestmark = pytest.mark.django_db

FILE_BACKEND = "django.core.mail.backends.filebased.EmailBackend"


def queue(n: int = 1, **overrides) -> OutgoingMail:
    fields = {"topic": "test notice", "subject": f"[Leasehold] notice {n}", "body": "hello", "to": ["dana@example.org"]}
    fields.update(overrides)
    mail = mail_queue(**fields)
    assert mail is not None
    return mail


def test_a_mail_is_delivered_once_its_transaction_commits(mailoutbox, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        mail = queue(to=["dana@example.org", "", "tom@example.org", "dana@example.org"])
        assert mailoutbox == []  # nothing leaves before the commit
    (sent,) = mailoutbox
    assert (sent.subject, sent.body) == ("[Leasehold] notice 1", "hello")
    assert sent.to == ["dana@example.org", "tom@example.org"]
    mail.refresh_from_db()
    assert (mail.state, mail.attempts, mail.last_error) == ("sent", 1, "")
    assert mail.sent_at is not None
    assert sent.extra_headers["Message-ID"].startswith(f"<leasehold-mail-{mail.pk}.")


def test_a_mail_of_a_transaction_that_rolled_back_is_never_sent(mailoutbox, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True), pytest.raises(RuntimeError), transaction.atomic():
        queue()
        raise RuntimeError("the change failed")
    assert not OutgoingMail.objects.exists()
    assert mailoutbox == []


def test_the_same_key_is_queued_once():
    first = queue(key="expiry-notice:x:7")
    again = queue(key="expiry-notice:x:7", subject="something else")
    assert again.pk == first.pk
    assert OutgoingMail.objects.count() == 1
    assert queue(2).pk != queue(3).pk  # without a key nothing is de-duplicated


def test_a_mail_with_nobody_to_send_it_to_is_not_queued():
    assert mail_queue(topic="t", subject="s", body="b", to=["", "  "]) is None
    assert not OutgoingMail.objects.exists()


def test_a_misconfigured_backend_leaves_the_mail_pending_and_audits_the_first_failure(settings, tmp_path):
    # The file backend without EMAIL_FILE_PATH raises TypeError on opening (issue 9).
    settings.EMAIL_BACKEND = FILE_BACKEND
    if hasattr(settings, "EMAIL_FILE_PATH"):
        del settings.EMAIL_FILE_PATH
    mail = queue()
    for _ in range(3):
        result = mail_deliver_pending(limit=10)
        assert (result.sent, [m.pk for m in result.failed]) == ([], [mail.pk])
    mail.refresh_from_db()
    assert (mail.state, mail.attempts) == ("pending", 3)
    assert mail.last_error.startswith("TypeError: ")
    failed = AuditEvent.objects.get(verb="notification_failed")  # once, not per attempt
    assert (failed.target_type, failed.target_id) == ("outgoingmail", str(mail.pk))
    assert failed.detail.startswith("test notice to dana@example.org: TypeError")

    settings.EMAIL_FILE_PATH = str(tmp_path)
    result = mail_deliver_pending(limit=10)
    assert [m.pk for m in result.sent] == [mail.pk]
    mail.refresh_from_db()
    assert (mail.state, mail.attempts) == ("sent", 4)
    assert "Subject: [Leasehold] notice 1" in "".join(p.read_text() for p in tmp_path.iterdir())
    late = AuditEvent.objects.get(verb="notification_sent")
    assert late.detail == "test notice to dana@example.org: sent at attempt 4"


def test_a_refused_mail_is_retried_until_the_server_accepts_it(smtp_server):
    smtp_server.refuse("RCPT", "550 5.1.1 <dana@example.org>: mailbox unavailable", mails=2)
    mail = queue()
    assert mail_deliver_pending(limit=10).failed and mail_deliver_pending(limit=10).failed
    mail.refresh_from_db()
    assert (mail.state, mail.attempts) == ("pending", 2)
    assert mail.last_error.startswith("SMTPRecipientsRefused: ") and "550" in mail.last_error
    assert smtp_server.received == []
    assert [m.pk for m in mail_deliver_pending(limit=10).sent] == [mail.pk]
    (received,) = smtp_server.received
    assert received["Subject"] == "[Leasehold] notice 1" and received["To"] == "dana@example.org"
    assert mail_deliver_pending(limit=10).sent == []  # sent is sent
    assert len(smtp_server.received) == 1


def test_one_refused_recipient_does_not_hold_up_the_other_mail(smtp_server):
    smtp_server.refuse("DATA", "451 4.3.0 Try again later")
    first, second, third = queue(1), queue(2), queue(3)
    result = mail_deliver_pending(limit=10)
    assert [m.pk for m in result.failed] == [first.pk]
    assert [m.pk for m in result.sent] == [second.pk, third.pk]
    assert result.stopped == ""
    assert [m["Subject"] for m in smtp_server.received] == ["[Leasehold] notice 2", "[Leasehold] notice 3"]


def test_a_run_stops_when_the_mail_server_cannot_be_reached(unreachable_smtp):
    first, second = queue(1), queue(2)
    result = mail_deliver_pending(limit=10)
    assert [m.pk for m in result.failed] == [first.pk]
    assert result.stopped.startswith("ConnectionRefusedError")
    second.refresh_from_db()
    assert (second.state, second.attempts) == ("pending", 0)  # not tried: it would have failed the same way


def test_a_run_sends_at_most_its_limit_oldest_first(mailoutbox):
    mails = [queue(n) for n in range(5)]
    assert [m.pk for m in mail_deliver_pending(limit=2).sent] == [m.pk for m in mails[:2]]
    assert [m.pk for m in mail_deliver_pending(limit=10, ids=[mails[4].pk]).sent] == [mails[4].pk]
    assert [m.subject for m in mailoutbox] == ["[Leasehold] notice 0", "[Leasehold] notice 1", "[Leasehold] notice 4"]


def test_the_periodic_task_delivers_pending_mail(mailoutbox):
    queue(1)
    queue(2)
    assert deliver_pending_mail() == {"sent": 2, "failed": 0}
    assert deliver_pending_mail() == {"sent": 0, "failed": 0}
    assert len(mailoutbox) == 2
    entry = CELERY_BEAT_SCHEDULE["deliver-pending-mail"]
    assert entry["task"] == deliver_pending_mail.name


def test_admins_see_the_outbox_and_retry_a_mail_now(client, admin_user, unreachable_smtp, settings, mailoutbox):
    mail = queue()
    mail_deliver_pending(limit=10)
    client.force_login(admin_user)
    changelist = reverse("admin:requests_app_outgoingmail_changelist")
    page = client.get(changelist, {"state__exact": "pending"})
    assert page.status_code == 200 and "ConnectionRefusedError" in page.content.decode()
    assert client.get(reverse("admin:requests_app_outgoingmail_add")).status_code == 403

    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    response = client.post(changelist, {"action": "retry_now", "_selected_action": [mail.pk]}, follow=True)
    assert "1 mail sent." in response.content.decode()
    mail.refresh_from_db()
    assert (mail.state, mail.attempts) == ("sent", 2)
    assert len(mailoutbox) == 1
    assert AuditEvent.objects.get(verb="notification_sent").actor == admin_user


def test_the_admin_shows_a_mail_read_only(client, admin_user):
    mail = queue()
    client.force_login(admin_user)
    url = reverse("admin:requests_app_outgoingmail_change", args=[mail.pk])
    client.post(url, {"subject": "forged", "body": "x"})
    mail.refresh_from_db()
    assert mail.subject == "[Leasehold] notice 1"
