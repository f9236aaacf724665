"""Domain errors raised by services; the API maps them to HTTP statuses in one place."""

from __future__ import annotations

import logging

from django.core.exceptions import ImproperlyConfigured

log = logging.getLogger(__name__)


class LeaseholdError(Exception):
    """Base of every expected error a service raises."""


class ValidationFailed(LeaseholdError):
    """Bad input: `errors` maps field names to lists of messages (HTTP 400)."""

    def __init__(self, errors: dict[str, list[str]]):
        self.errors = errors
        super().__init__("; ".join(f"{k}: {' '.join(v)}" for k, v in errors.items()))

    def sentences(self) -> str:
        """The messages as a person reads them, without the field names the API keys them by (each
        message is a sentence of its own: "Say why the request is rejected.")."""
        return " ".join(message for messages in self.errors.values() for message in messages)


class NotAllowed(LeaseholdError):
    """The caller may not do this (HTTP 403)."""


class InvalidState(LeaseholdError):
    """The state transition is not allowed now (HTTP 409)."""


class Unavailable(LeaseholdError):
    """The Kubernetes cluster cannot serve the call now (HTTP 503). The text names hosts, paths and
    configuration: it is for the log, never for the caller (see `public_message`)."""


CLUSTER_UNREACHABLE = "The Kubernetes cluster cannot be reached right now; try again later."
NOT_CONFIGURED = "The service is not fully configured for this; the details are in its log."
CANNOT_NOW = "The service cannot do this right now; try again later."


def public_message(exc: Exception) -> str:
    """What a person or an API client is told about an error a service raised.

    Bad input, a refusal and a wrong state say what is wrong. An outage or a configuration problem says
    only that: its details (file paths, hosts, settings) are logged here, for operators.
    """
    if isinstance(exc, ValidationFailed):
        return exc.sentences()
    if isinstance(exc, NotAllowed | InvalidState):
        return str(exc)
    if isinstance(exc, Unavailable):
        message = CLUSTER_UNREACHABLE
    elif isinstance(exc, ImproperlyConfigured):
        message = NOT_CONFIGURED
    else:
        message = CANNOT_NOW
    log.error("told the caller %r; the cause: %s: %s", message, exc.__class__.__name__, exc, exc_info=exc)
    return message
