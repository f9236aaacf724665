"""Issuing and ending API tokens, and keeping a token user's groups in step with the directory."""

from __future__ import annotations

import logging
import time

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.core.cache import cache
from django.db import transaction
from django.utils import timezone
from knox.settings import knox_settings

from requests_app.directory import directory_reread, is_directory_account
from requests_app.services import audit_record

from .models import ApiToken

logger = logging.getLogger(__name__)


@transaction.atomic
def token_issue(*, user: AbstractBaseUser) -> tuple[ApiToken, str]:
    """A new token for `user` that expires after the configured lifetime; returns it and its key.

    The key is returned once and never stored. The user's expired tokens are removed on the way.
    """
    ApiToken.objects.filter(user=user, expiry__lt=timezone.now()).delete()
    token, key = ApiToken.objects.create(user=user, expiry=knox_settings.TOKEN_TTL)
    directory_mark_fresh(user=user)
    return token, key


@transaction.atomic
def tokens_end(*, user: AbstractBaseUser, reason: str) -> int:
    """End every API token of `user` (a deactivation, a new password); audited when there were any."""
    count, _ = ApiToken.objects.filter(user=user).delete()
    if count:
        audit_record(actor=None, verb="api_tokens_ended", target=user, detail=f"{count} token(s): {reason}")
    return count


@transaction.atomic
def token_end(*, token: ApiToken, actor) -> None:
    """An admin ends one API token (from the admin): audited with whose token it was and its expiry."""
    user = token.user
    expiry = token.expiry
    token.delete()
    audit_record(actor=actor, verb="api_token_ended", target=user, detail=f"token expiring {expiry:%Y-%m-%d %H:%M} UTC")


def _refresh_key(user: AbstractBaseUser) -> str:
    return f"leasehold:ldap-groups-refreshed:{user.pk}"


def directory_mark_fresh(*, user: AbstractBaseUser) -> None:
    """Remember that the user's groups were just read from the directory (a login does that)."""
    interval = settings.LEASEHOLD_LDAP_REFRESH_SECONDS
    if interval > 0 and is_directory_account(user):
        _remember(_refresh_key(user), interval)


def directory_refresh(*, user: AbstractBaseUser) -> AbstractBaseUser | None:
    """The token user with groups and flags re-read from LDAP when the last read is older than
    LEASEHOLD_LDAP_REFRESH_SECONDS; the user unchanged for local accounts or a recent read.

    Django's groups mirror LDAP only when someone logs in, and a token outlives that login. Without
    this, someone removed from `team-atlas` would keep the team's access through a token until it
    expires. None when the directory does not confirm the account — it was removed, or the directory
    cannot be reached: access then fails closed, and the next call asks the directory again.
    """
    if not is_directory_account(user):
        return user
    key = _refresh_key(user)
    interval = settings.LEASEHOLD_LDAP_REFRESH_SECONDS
    if interval > 0 and _cached(key) is not None:
        return user
    fresh = directory_reread(user)
    if fresh is None:
        logger.warning("The directory did not confirm %s for an API token.", user.get_username())
        return None
    if interval > 0:
        _remember(key, interval)
    return fresh


def _cached(key: str) -> object:
    try:
        return cache.get(key)
    except Exception:  # the cache (Redis) is down: ask the directory, which is always correct
        logger.warning("The cache is unreachable; reading LDAP groups for every token call.", exc_info=True)
        return None


def _remember(key: str, interval: int) -> None:
    try:
        cache.set(key, time.time(), timeout=interval)
    except Exception:
        logger.warning("The cache is unreachable; cannot remember a directory refresh.", exc_info=True)
