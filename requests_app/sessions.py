"""Idle timeout: a signed-in session ends SESSION_IDLE_TIMEOUT_SECONDS after its last request.

The session's expiry (its database row and its cookie) is SESSION_COOKIE_AGE = the timeout from the
last time the session was saved. Django's SESSION_SAVE_EVERY_REQUEST would save it on every request:
an UPDATE per page and per htmx poll. This middleware saves it only when it was last renewed more than
1% of the timeout ago, so an idle session ends between 99% and 100% of the timeout after its last
request, and most requests write nothing.
"""

from __future__ import annotations

import time

from django.conf import settings
from django.contrib.auth import SESSION_KEY
from django.contrib.auth.signals import user_logged_in
from django.dispatch import receiver
from django.http import HttpRequest, HttpResponse

RENEWED_AT = "leasehold_renewed_at"


def _renew_after() -> float:
    return settings.SESSION_IDLE_TIMEOUT_SECONDS / 100


class IdleSessionMiddleware:
    """Renews a signed-in session's expiry when it is due (after SessionMiddleware in MIDDLEWARE, so that
    SessionMiddleware then saves the session and sets the cookie)."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        session = getattr(request, "session", None)
        # Only sessions that exist and belong to someone signed in (not one ended by logging out).
        if session is None or session.session_key is None or SESSION_KEY not in session:
            return response
        renewed = session.get(RENEWED_AT)
        now = time.time()
        if not isinstance(renewed, int | float) or now - renewed >= _renew_after():
            session[RENEWED_AT] = now  # modified: saved with a new expiry, and the cookie is sent again
        return response


@receiver(user_logged_in, dispatch_uid="requests_app.sessions.stamp_login")
def stamp_login(sender, request: HttpRequest | None, **kwargs) -> None:
    """A session is renewed when it starts, so the first requests after a login write nothing."""
    if request is not None and hasattr(request, "session"):
        request.session[RENEWED_AT] = time.time()
