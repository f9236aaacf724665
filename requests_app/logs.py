"""What every log line says about its context: the request id, the actor, the resource (and request).

Context variables hold them; `ContextFilter` (installed on the handlers by LOGGING in config/settings.py)
copies them onto every record, so the plain format and the JSON format (LEASEHOLD_LOG_FORMAT=json) carry
them without any call site passing them. They are set by `RequestContextMiddleware` for a web request,
by the Celery task signals in config/celery.py for a task run, and by `bind()` where a task or a pass
turns to one resource.

Model-free on purpose: LOGGING imports this module before the apps are loaded.
"""

from __future__ import annotations

import logging
import re
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

from django.core.signals import request_finished
from django.http import HttpRequest, HttpResponse
from django.utils.functional import SimpleLazyObject, empty

request_id: ContextVar[str] = ContextVar("leasehold_request_id", default="")
actor: ContextVar[str] = ContextVar("leasehold_actor", default="")
resource_id: ContextVar[str] = ContextVar("leasehold_resource_id", default="")
resource_request_id: ContextVar[str] = ContextVar("leasehold_resource_request_id", default="")
# The web request being served: its user is named on a line once authentication has resolved it.
_http_request: ContextVar[HttpRequest | None] = ContextVar("leasehold_http_request", default=None)

# The fields every record gets ("" when not known).
_VARS: dict[str, ContextVar[str]] = {
    "request_id": request_id,
    "actor": actor,
    "resource_id": resource_id,
    "resource_request_id": resource_request_id,
}

REQUEST_ID_HEADER = "X-Request-ID"
# What we accept from the ingress (or a client) as a request id: a short token, nothing a log reader
# could be fooled by (no spaces, quotes or line breaks). Anything else is replaced by our own.
_REQUEST_ID = re.compile(r"[A-Za-z0-9._:@/+=-]{1,128}")


def context_vars() -> dict[str, ContextVar[str]]:
    """The context variables by field name."""
    return dict(_VARS)


def new_request_id() -> str:
    return uuid.uuid4().hex


def current() -> dict[str, str]:
    """The context as it stands (the actor of the web request too, once it is known)."""
    values = {name: var.get() for name, var in _VARS.items()}
    if not values["actor"]:
        values["actor"] = _web_actor()
    return values


@contextmanager
def bind(**values: Any) -> Iterator[None]:
    """Set context fields (request_id, actor, resource_id, resource_request_id) for the block."""
    tokens = [(_VARS[name], _VARS[name].set(str(value) if value is not None else "")) for name, value in values.items()]
    try:
        yield
    finally:
        for var, token in reversed(tokens):
            var.reset(token)


def annotate(**values: Any) -> None:
    """Set context fields for the rest of the current web request or Celery task run (both reset the
    context when they end), so that the lines written after the caller returns carry them too."""
    for name, value in values.items():
        _VARS[name].set(str(value) if value is not None else "")


def _web_actor() -> str:
    """The username of the current web request's user, if authentication has already resolved it.

    Never resolves it here (that would be a database query inside logging): Django's lazy user is read
    only once evaluated, and DRF sets the authenticated user (a token's too) on the request itself.
    """
    request = _http_request.get()
    if request is None:
        return ""
    user = request.__dict__.get("user")
    if user is None:
        return ""
    wrapped = getattr(user, "_wrapped", user) if isinstance(user, SimpleLazyObject) else user
    if wrapped is empty:
        return ""  # Django's lazy user, not evaluated yet
    if not getattr(wrapped, "is_authenticated", False):
        return ""
    return wrapped.get_username()


class ContextFilter(logging.Filter):
    """Adds the context fields to every record (a filter on the handler: it sees every record)."""

    def filter(self, record: logging.LogRecord) -> bool:
        for name, value in current().items():
            if not getattr(record, name, ""):
                setattr(record, name, value)
        return True


def _url_ids(url_name: str, kwargs: dict[str, Any]) -> dict[str, str]:
    """The resource or request a URL names (`/resources/<pk>/…`, `/api/v1/requests/<pk>/…`)."""
    pk = kwargs.get("pk")
    if pk is None:
        return {}
    if url_name.startswith(("resource-", "app-")):
        return {"resource_id": str(pk)}
    if url_name.startswith("request-"):
        return {"resource_request_id": str(pk)}
    return {}


class RequestContextMiddleware:
    """Gives every web request an id (the ingress's `X-Request-ID` when it sent a sane one, else a new
    one), returns it in the response's `X-Request-ID`, and puts it, the actor and the resource or
    request the URL names into the log context. The context stays until the response is finished
    (`request_finished`), so Django's own line about a 4xx or 5xx answer, written after the
    middleware, carries it too."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        given = request.headers.get(REQUEST_ID_HEADER, "")
        rid = given if _REQUEST_ID.fullmatch(given) else new_request_id()
        request.request_id = rid  # type: ignore[attr-defined]
        clear()
        request_id.set(rid)
        _http_request.set(request)
        response = self.get_response(request)
        response[REQUEST_ID_HEADER] = rid
        return response

    def process_view(self, request: HttpRequest, view_func, view_args, view_kwargs) -> None:
        match = request.resolver_match
        for name, value in _url_ids(match.url_name or "" if match else "", view_kwargs).items():
            _VARS[name].set(value)


def clear(**kwargs: Any) -> None:
    """Forget the context of the request this thread served (connected to `request_finished`)."""
    for var in _VARS.values():
        var.set("")
    _http_request.set(None)


request_finished.connect(clear, dispatch_uid="requests_app.logs.clear")
