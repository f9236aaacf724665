"""Every URL resolves and reverses as it did before the URL confs moved into the apps (`urls.py`, `api/urls.py`).

`tests/data/url_map.json` was generated from the resolver of `main` before the move (run this module as a
script to write it again: `SECRET_KEY=x .venv/bin/python -m tests.unit.test_url_map > tests/data/url_map.json`,
only when a URL is meant to change). It holds, for every pattern outside the admin (whose URLs Django derives
from the registered models):

- `patterns`: each (name, route) pair — the name with its namespace, the route with its prefixes;
- `resolves`: a sample path for each reversible pattern, and the (name, route) it resolves to — where two
  patterns could both match a path, which one wins;
- `reverses`: for each name and each set of arguments it takes, the path `reverse()` gives — where a name
  is used twice (the web page `resource-list` and the API's `resource-list`), which one `reverse()` picks.

The order of the patterns may change where it decides nothing; these three are what the URLs do.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

from django.urls import URLPattern, URLResolver, get_resolver, resolve, reverse

FIXTURE = Path(__file__).resolve().parent.parent / "data" / "url_map.json"
# A value for each URL argument, valid for every converter and regex that takes it.
SAMPLE_ARGS = {"pk": "0f3c4a4e-6d0b-4c36-9b7b-6c2f1f0d9a11", "format": "json", "delegation_id": "7"}


def _walk(patterns, prefix: str = "", namespace: str = ""):
    for p in patterns:
        if isinstance(p, URLResolver):
            if p.namespace == "admin":
                continue
            ns = f"{namespace}{p.namespace}:" if p.namespace else namespace
            yield from _walk(p.url_patterns, prefix + str(p.pattern), ns)
        elif isinstance(p, URLPattern):
            yield [f"{namespace}{p.name}" if p.name else None, prefix + str(p.pattern)]


def url_map() -> dict:
    """What the URL confs do now, in the form of the fixture."""
    patterns = list(_walk(get_resolver().url_patterns))
    resolves: dict[str, list] = {}
    reverses: dict[str, dict[str, str]] = {}
    reverse_dict = get_resolver().reverse_dict
    names = sorted({name for name, _ in patterns if name})
    for name in names:
        for possibilities, _, _, converters in reverse_dict.getlist(name):
            for template, params in possibilities:
                kwargs = {p: SAMPLE_ARGS[p] for p in params}
                path = "/" + template % {
                    p: converters[p].to_url(v) if p in converters else v for p, v in kwargs.items()
                }
                match = resolve(path)
                resolves[path] = [match.view_name, match.route]
                reverses.setdefault(name, {})[",".join(params)] = reverse(name, kwargs=kwargs)
    return {"patterns": patterns, "resolves": resolves, "reverses": reverses}


def pinned() -> dict:
    return json.loads(FIXTURE.read_text())


def test_every_pattern_is_still_there_with_its_name():
    assert sorted(url_map()["patterns"], key=str) == sorted(pinned()["patterns"], key=str)


def test_every_path_resolves_to_the_same_pattern():
    assert url_map()["resolves"] == pinned()["resolves"]


def test_every_name_reverses_to_the_same_path():
    assert url_map()["reverses"] == pinned()["reverses"]


if __name__ == "__main__":
    import django

    django.setup()
    text = json.dumps(url_map(), indent=1, sort_keys=True)
    # One (name, route) pair a line, for people reading a change to the file.
    sys.stdout.write(re.sub(r"\[\n\s+(\S.*),\n\s+(\S.*)\n\s+\]", r"[\1, \2]", text) + "\n")
