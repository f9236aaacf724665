"""How things are written where people read them: kinds (with their article), actions and field labels.

The one place that turns the API's machine names (`database`, `cpu_request`, `lease_days`) into words for
pages, messages and emails. Plain strings in and out, no models: the models' `display_name` and `title`
use it too. The API keeps the machine names.
"""

from __future__ import annotations

# A kind as it is written in a sentence ("a database", "an app"). A kind missing here is written as its value.
KIND_NOUNS: dict[str, str] = {
    "namespace": "namespace",
    "database": "database",
    "app": "app",
    "cache": "cache",
}

# An action as the verb that starts a request's title ("roll back app atlas-web / shop").
ACTION_VERBS: dict[str, str] = {
    "create": "create",
    "extend": "extend",
    "release": "release",
    "upgrade": "upgrade",
    "rollback": "roll back",
}

# Field and quantity names as labels and column headers. A name missing here is written as a sentence
# ("image_tag" -> "Image tag").
FIELD_LABELS: dict[str, str] = {
    "cpu": "CPU",
    "memory": "Memory",
    "storage": "Storage",
    "cpu_request": "CPU request",
    "cpu_limit": "CPU limit",
    "memory_request": "Memory request",
    "memory_limit": "Memory limit",
    "lease_days": "Lease (days)",
    "env": "Environment variables",
    "host": "Host",
    "image_tag": "Image tag",
    "spec": "Specification",
    "__all__": "",
}


def kind_noun(kind: str) -> str:
    """The kind in a sentence: "database"."""
    return KIND_NOUNS.get(kind, str(kind).replace("_", " "))


def kind_title(kind: str) -> str:
    """The kind as a heading or at the start of a sentence: "Database"."""
    noun = kind_noun(kind)
    return noun[:1].upper() + noun[1:]


def a_kind(kind: str) -> str:
    """The kind with its indefinite article: "a database", "an app"."""
    noun = kind_noun(kind)
    return f"{'an' if noun[:1].lower() in 'aeiou' else 'a'} {noun}"


def action_verb(action: str) -> str:
    return ACTION_VERBS.get(action, str(action).replace("_", " "))


def field_label(name: str) -> str:
    """A field's label: "CPU request" for `cpu_request`, "Plan" for `spec.plan`, "" for `__all__`."""
    name = str(name).removeprefix("spec.")
    if name in FIELD_LABELS:
        return FIELD_LABELS[name]
    words = name.replace("_", " ").replace(".", " ").strip()
    return words[:1].upper() + words[1:]


def words(name: str) -> str:
    """A machine name read aloud: "approval routed" for the audit verb `approval_routed`."""
    return str(name).replace("_", " ")


def count_of(count: int, noun: str, plural: str = "") -> str:
    """A count with its noun in the right number ("1 day", "3 days", "0 extensions"), never "day(s)"."""
    return f"{count} {noun if count == 1 else plural or noun + 's'}"
