"""Reads of the provisioning app.

The read models that render or follow a request (its plan, its progress, an app's releases) live with
the services that write what they read.
"""

from __future__ import annotations

from collections.abc import Iterable

from requests_app.models import Resource

from .models import ManagedObject


def objects_of(resource: Resource) -> Iterable[ManagedObject]:
    """The Kubernetes objects recorded for `resource` (prefetched for lists into `listed_objects`, see
    ProvisioningConfig; else read here)."""
    objects = getattr(resource, "listed_objects", None)
    if objects is None:
        objects = resource.managed_objects.all()
    return objects
