"""API tokens: only a digest of each key is stored, and every token expires (django-rest-knox)."""

from __future__ import annotations

from django.db import models
from knox.models import AbstractAuthToken
from knox.settings import CONSTANTS


class ApiToken(AbstractAuthToken):
    """One API token of a user: the SHA-512 digest of its key, a lookup prefix, and when it expires.

    The key itself is shown once, in the answer to `POST /api/v1/auth/token/`, and never stored. Knox's
    own model keeps the digest as its primary key; this one has a plain id instead, so that admin pages,
    links and log entries never carry the digest.
    """

    id = models.BigAutoField(primary_key=True)
    digest = models.CharField(max_length=CONSTANTS.DIGEST_LENGTH, unique=True)
    # Knox allows tokens that never expire (no expiry); ours always have one.
    expiry = models.DateTimeField()

    class Meta:
        verbose_name = "API token"
        ordering = ["-created"]

    def __str__(self) -> str:
        return f"API token {self.pk} of {self.user}"
