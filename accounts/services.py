"""Issuing and ending API tokens."""

from __future__ import annotations

from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.utils import timezone
from knox.settings import knox_settings

from requests_app.services import audit_record

from .models import ApiToken


@transaction.atomic
def token_issue(*, user: AbstractBaseUser) -> tuple[ApiToken, str]:
    """A new token for `user` that expires after the configured lifetime; returns it and its key.

    The key is returned once and never stored. The user's expired tokens are removed on the way.
    """
    ApiToken.objects.filter(user=user, expiry__lt=timezone.now()).delete()
    token, key = ApiToken.objects.create(user=user, expiry=knox_settings.TOKEN_TTL)
    return token, key


@transaction.atomic
def tokens_end(*, user: AbstractBaseUser, reason: str) -> int:
    """End every API token of `user` (a deactivation, a new password); audited when there were any."""
    count, _ = ApiToken.objects.filter(user=user).delete()
    if count:
        audit_record(actor=None, verb="api_tokens_ended", target=user, detail=f"{count} token(s): {reason}")
    return count
