"""The registry of resource kinds: one object per kind owns what is specific to it.

Each module of this package defines one kind (a `ResourceKind` subclass) and registers it; the package
imports every module in it when the app is ready (`autodiscover`), so a new kind is a new module here and
nothing else in this layer. What a kind needs from a higher app (its renderer and readiness, its backup)
is registered by that app in a registry of its own (`provisioning.kinds`, `leases.kinds`), the way the
API sections are (see ARCHITECTURE.md, "Kinds").

Everything else asks the registry (`get(kind)`, `all()`) instead of branching on the kind's name.
"""

from __future__ import annotations

import importlib
import pkgutil

from .base import Binding, Fact, ResourceKind

__all__ = ["Binding", "Fact", "ResourceKind", "all", "autodiscover", "bindings_from", "choices", "get", "names"]

_KINDS: dict[str, ResourceKind] = {}
_discovered = False


def _discover() -> None:
    """The kinds of this package, imported the first time the registry is read (or at ready())."""
    global _discovered
    if not _discovered:
        _discovered = True
        autodiscover(__name__)


def register(kind: ResourceKind) -> ResourceKind:
    """Add `kind` to the registry (a module's last line: `register(CacheKind())`); one object per name."""
    if kind.name in _KINDS and type(_KINDS[kind.name]) is not type(kind):
        raise ValueError(f"kind {kind.name!r} is registered twice ({type(_KINDS[kind.name]).__name__})")
    _KINDS[kind.name] = kind
    return kind


def get(name: object) -> ResourceKind:
    """The kind called `name`; KeyError when there is none (check `name in names()` for user input)."""
    _discover()
    if not isinstance(name, str) or name not in _KINDS:
        raise KeyError(f"no kind {name!r}")
    return _KINDS[name]


def find(name: object) -> ResourceKind | None:
    """The kind called `name`, or None."""
    _discover()
    return _KINDS.get(name) if isinstance(name, str) else None


def all() -> list[ResourceKind]:  # noqa: A001  (the registry's own word: `kinds.all()`)
    """Every kind, in catalog order."""
    _discover()
    return sorted(_KINDS.values(), key=lambda kind: (kind.order, kind.name))


def names() -> list[str]:
    return [kind.name for kind in all()]


def choices() -> list[tuple[str, str]]:
    """(value, label) of every kind: the models' `kind` choices (a callable, so a new kind needs no migration)."""
    return [(kind.name, kind.title) for kind in all()]


def bindings_from(source: str) -> list[Binding]:
    """What a resource of kind `source` may bind to, as declared by the kinds bound to (an app may name a
    database in `spec.database`, a cache in `spec.cache`, ...)."""
    return [binding for kind in all() for binding in kind.bindings if binding.source_kind == source]


def bindings_to(target: str) -> list[Binding]:
    """How resources of other kinds bind to a resource of kind `target`."""
    kind = find(target)
    return list(kind.bindings) if kind is not None else []


def autodiscover(package: str) -> None:
    """Import every module of `package` (each registers what it defines): called from AppConfig.ready()."""
    module = importlib.import_module(package)
    for info in sorted(pkgutil.iter_modules(module.__path__), key=lambda i: i.name):
        if not info.name.startswith("_"):
            importlib.import_module(f"{package}.{info.name}")
