"""Domain errors raised by services; the API maps them to HTTP statuses in one place."""

from __future__ import annotations


class LeaseholdError(Exception):
    """Base of every expected error a service raises."""


class ValidationFailed(LeaseholdError):
    """Bad input: `errors` maps field names to lists of messages (HTTP 400)."""

    def __init__(self, errors: dict[str, list[str]]):
        self.errors = errors
        super().__init__("; ".join(f"{k}: {' '.join(v)}" for k, v in errors.items()))


class NotAllowed(LeaseholdError):
    """The caller may not do this (HTTP 403)."""


class InvalidState(LeaseholdError):
    """The state transition is not allowed now (HTTP 409)."""
