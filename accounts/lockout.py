"""How django-axes tells people apart, and what a locked-out login is told.

Failed logins are counted per username *and* client address (AXES_LOCKOUT_PARAMETERS): someone
guessing one person's password from one address is stopped, and that person can still log in from
their own machine. The address is the peer's, or — behind LEASEHOLD_PROXY_COUNT reverse proxies that
append to `X-Forwarded-For` — the one the outermost trusted proxy saw. A client cannot choose it by
sending its own `X-Forwarded-For`.
"""

from __future__ import annotations

import math
from datetime import timedelta

from django.conf import settings
from django.http import HttpRequest

from requests_app.names import count_of


def client_ip(request: HttpRequest) -> str:
    """The client's address, trusting exactly LEASEHOLD_PROXY_COUNT proxies in front of the service."""
    remote = request.META.get("REMOTE_ADDR", "") or ""
    proxies = settings.LEASEHOLD_PROXY_COUNT
    forwarded = request.META.get("HTTP_X_FORWARDED_FOR", "")
    if proxies <= 0 or not forwarded:
        return remote
    hops = [hop.strip() for hop in forwarded.split(",") if hop.strip()]
    if not hops:
        return remote
    # Each trusted proxy appended the address it saw; what lies further left the client wrote itself.
    return hops[-min(proxies, len(hops))]


def lockout_username(request: HttpRequest, credentials: dict | None) -> str | None:
    """The username failures are counted under: the directory matches names without regard to case,
    so `Dana` and `dana` share one count."""
    username = (credentials or {}).get("username")
    if username is None:
        username = getattr(request, "data", request.POST).get("username")
    return str(username).strip().lower() if username is not None else None


def was_locked_out(request) -> bool:
    """True when axes refused (or just ended) this login attempt because of too many failures."""
    return bool(getattr(request, "axes_locked_out", False))


def cool_off_seconds() -> int:
    cool_off = settings.AXES_COOLOFF_TIME
    return int(cool_off.total_seconds()) if isinstance(cool_off, timedelta) else 0


def lockout_message() -> str:
    minutes = math.ceil(cool_off_seconds() / 60)
    return (
        f"Too many failed logins for this account from your address. Logins are refused for "
        f"{count_of(minutes, 'minute')} after the last attempt; every further attempt starts that time again."
    )
