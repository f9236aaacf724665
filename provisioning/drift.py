"""Drift: which fields that Leasehold owns differ between a live object and what Leasehold applies.

The reconcile asks the API server for a dry-run server-side apply of the desired object (the server
fills in defaults, keeps fields other managers own, and takes back the fields Leasehold owns) and
compares the answer with the live object. Fields nobody owns (status), and bookkeeping that moves on
every write (resourceVersion, managedFields, generation), are left out: a Deployment whose controller
updates its status is not drift. Pure functions, no I/O.
"""

from __future__ import annotations

from typing import Any

from .renderers import ANNOTATION_LEASE_EXPIRES, ANNOTATION_OWNER, ANNOTATION_REQUEST

# Metadata that the server changes on its own, or that records who wrote what rather than what is.
_BOOKKEEPING = ("resourceVersion", "managedFields", "generation", "creationTimestamp", "selfLink")
# Leasehold's own stamps: bringing them up to date (a new lease expiry, a new owner) is not drift.
STAMP_PATHS = frozenset(
    ("metadata", "annotations", name) for name in (ANNOTATION_LEASE_EXPIRES, ANNOTATION_OWNER, ANNOTATION_REQUEST)
)

Path = tuple[Any, ...]


def _comparable(obj: dict) -> dict:
    out = {k: v for k, v in obj.items() if k != "status"}
    out["metadata"] = {k: v for k, v in (obj.get("metadata") or {}).items() if k not in _BOOKKEEPING}
    return out


def _differences(a: Any, b: Any, path: Path, found: list[Path]) -> None:
    if isinstance(a, dict) and isinstance(b, dict):
        for key in sorted(set(a) | set(b), key=str):
            _differences(a.get(key), b.get(key), (*path, key), found)
    elif isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        for index, (x, y) in enumerate(zip(a, b, strict=True)):
            _differences(x, y, (*path, index), found)
    elif a != b:
        found.append(path)


def differences(live: dict, desired: dict) -> list[Path]:
    """The paths at which `live` and `desired` (a dry-run apply's answer) differ, in a stable order."""
    found: list[Path] = []
    _differences(_comparable(live), _comparable(desired), (), found)
    return found


def only_stamps(paths: list[Path]) -> bool:
    """Whether every difference is one of Leasehold's own stamps (lease expiry, owner, request)."""
    return all(path in STAMP_PATHS for path in paths)


def path_text(path: Path) -> str:
    """`spec.template.spec.containers[0].image`; keys with dots or slashes in brackets."""
    text = ""
    for part in path:
        if isinstance(part, int):
            text += f"[{part}]"
        elif "." in part or "/" in part:
            text += f'["{part}"]'
        else:
            text += f".{part}" if text else part
    return text
