"""What a long-lived process does once it has loaded the application: freeze what it loaded.

Django, DRF, the Kubernetes client and the rest leave a million or so objects behind at import. Python's
collector walks every tracked object in a full (oldest generation) collection, which then took 100–150 ms
here: a request or task that happened to trigger one waited that long (README "Performance").
`gc.freeze()` moves what exists now into a permanent generation that collections skip; what requests
and tasks allocate later is collected as before. Done before forking, it also keeps the collector from
touching, and so copying, the pages the children share with the parent.
"""

from __future__ import annotations

import gc


def freeze_loaded(*, collect: bool = True) -> int:
    """Collect what is garbage now (unless `collect` is False: a forked child, where the collection
    would write to every inherited object and copy the pages it shares), then freeze the rest (a cheap
    move of the collector's lists). Returns how many objects are frozen."""
    if collect:
        gc.collect()
    gc.freeze()
    return gc.get_freeze_count()
