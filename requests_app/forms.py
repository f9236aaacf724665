"""Web forms for requests: one per kind. The service does the checking; the forms place its messages."""

from __future__ import annotations

from typing import Any, cast

from django import forms
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.validators import MaxValueValidator
from django.db.models import Q

from . import kinds
from .models import AppTemplate, Environment, Kind, Resource, ResourceState
from .names import field_label
from .selectors import clusters_placeable_by, resources_visible_to, teams_of
from .services import resource_hand_over_errors
from .specs import DATABASE_DEFAULTS, DATABASE_PLANS, ENV_NAME, NAMESPACE_PLANS, POSTGRES_VERSIONS

NAMESPACE_PLAN_CHOICES = [
    (k, f"{k} — {v.cpu} CPU, {v.memory} memory, {v.storage} storage") for k, v in NAMESPACE_PLANS.items()
]
NAMESPACE_PLAN_CHOICES.append(("custom", "custom quantities"))
DATABASE_PLAN_CHOICES = [
    (k, f"{k} — up to {v.cpu_limit} CPU, {v.memory_limit} memory") for k, v in DATABASE_PLANS.items()
]


class RequestForm(forms.Form):
    """Fields every kind shares, and the bridge to `request_build`/`request_submit`."""

    kind: str = ""
    name = forms.CharField(max_length=63)
    environment = forms.ChoiceField(choices=Environment.choices, initial=Environment.DEV)
    lease_days = forms.IntegerField(min_value=1)
    justification = forms.CharField(widget=forms.Textarea(attrs={"rows": 2}), required=False)

    def __init__(self, *args, user, **kwargs):
        super().__init__(*args, **kwargs)
        self.user = user
        for name, field in self.fields.items():
            if field.label is None:  # "CPU", "Lease (days)": not Django's "Cpu", "Lease days"
                field.label = field_label(name)
        lease_field = cast(forms.IntegerField, self.fields["lease_days"])
        lease_field.validators.append(MaxValueValidator(settings.LEASE_MAX_DAYS))
        lease_field.initial = settings.LEASE_DEFAULT_DAYS
        lease_field.help_text = f"1 to {settings.LEASE_MAX_DAYS} days; you can extend it later."

    def spec(self) -> dict[str, Any]:
        raise NotImplementedError

    def team_slug(self) -> str:
        return self.cleaned_data["team"]

    def service_fields(self) -> dict[str, Any]:
        data = self.cleaned_data
        return {
            "kind": self.kind,
            "team": self.team_slug(),
            "name": data["name"],
            "environment": data["environment"],
            "lease_days": data["lease_days"],
            "justification": data["justification"],
            "spec": self.spec(),
        }

    def add_service_errors(self, errors: dict[str, list[str]]) -> None:
        for key, messages in errors.items():
            name = key.removeprefix("spec.")
            for message in messages:
                self.add_error(name if name in self.fields else None, message)


def _active_namespaces(user):
    return (
        resources_visible_to(user)
        .filter(kind=Kind.NAMESPACE, state=ResourceState.ACTIVE, team__in=teams_of(user))
        .order_by("team__slug", "name")
    )


class NamespaceRequestForm(RequestForm):
    kind = Kind.NAMESPACE
    team = forms.ChoiceField()
    plan = forms.ChoiceField(choices=NAMESPACE_PLAN_CHOICES, initial="small")
    cpu = forms.CharField(required=False, help_text="e.g. 2 or 500m (custom only)")
    memory = forms.CharField(required=False, help_text="e.g. 4Gi (custom only)")
    storage = forms.CharField(required=False, help_text="e.g. 20Gi (custom only)")
    cluster = forms.ChoiceField(
        required=False, help_text="Automatic: the least committed cluster that serves the environment."
    )
    field_order = [
        "team",
        "name",
        "environment",
        "cluster",
        "plan",
        "cpu",
        "memory",
        "storage",
        "lease_days",
        "justification",
    ]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["name"].help_text = "Lower-case letters, digits and '-'; the namespace is <team>-<name>."
        cast(forms.ChoiceField, self.fields["team"]).choices = [
            (t, t) for t in teams_of(self.user).values_list("slug", flat=True)
        ]
        cast(forms.ChoiceField, self.fields["cluster"]).choices = [("", "Automatic")] + [
            (c.name, f"{c.name} ({', '.join(c.environments)}{', ' + c.region if c.region else ''})")
            for c in clusters_placeable_by(self.user)
        ]

    def service_fields(self) -> dict[str, Any]:
        fields = super().service_fields()
        if self.cleaned_data.get("cluster"):
            fields["cluster"] = self.cleaned_data["cluster"]
        return fields

    def spec(self) -> dict[str, Any]:
        data = self.cleaned_data
        if data["plan"] == "custom":
            return {k: data[k] for k in ("cpu", "memory", "storage") if data.get(k)}
        return {"plan": data["plan"]}


class WorkloadForm(RequestForm):
    """Databases and apps live in one of the caller's active namespaces, which also decides the team."""

    namespace = forms.ChoiceField(help_text="One of your teams' active namespaces.")

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["name"].help_text = "Starts with a letter; lower-case letters, digits and '-'; at most 40."
        self.fields["name"].max_length = 40
        self.namespaces = {str(r.pk): r for r in _active_namespaces(self.user)}
        cast(forms.ChoiceField, self.fields["namespace"]).choices = [
            (pk, r.namespace_name) for pk, r in self.namespaces.items()
        ]

    def team_slug(self) -> str:
        return self.namespaces[self.cleaned_data["namespace"]].team.slug


class DatabaseRequestForm(WorkloadForm):
    kind = Kind.DATABASE
    version = forms.ChoiceField(choices=[(v, f"PostgreSQL {v}") for v in POSTGRES_VERSIONS], initial="16")
    plan = forms.ChoiceField(choices=DATABASE_PLAN_CHOICES, initial="small")
    storage = forms.CharField(initial=DATABASE_DEFAULTS["storage"], help_text="e.g. 10Gi (at most 100Gi)")
    field_order = ["namespace", "name", "environment", "version", "plan", "storage", "lease_days", "justification"]

    def spec(self) -> dict[str, Any]:
        data = self.cleaned_data
        return {
            "namespace": data["namespace"],
            "engine": "postgres",
            "version": data["version"],
            "plan": data["plan"],
            "storage": data["storage"],
        }


class AppRequestForm(WorkloadForm):
    kind = Kind.APP
    template = forms.ChoiceField()
    image_tag = forms.CharField(required=False, help_text="Blank: the template's default tag.")
    replicas = forms.IntegerField(min_value=1, max_value=10, initial=1)
    env = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 3, "placeholder": "LOG_LEVEL=debug"}),
        required=False,
        help_text="One KEY=value per line; overrides the template's defaults.",
    )
    host = forms.CharField(required=False, help_text="e.g. checkout.apps.example.org; blank: no Ingress.")
    field_order = [
        "namespace",
        "name",
        "environment",
        "template",
        "image_tag",
        "replicas",
        "env",
        # here: a field per binding (database, cache, ...), added by __init__
        "host",
        "lease_days",
        "justification",
    ]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        templates = AppTemplate.objects.filter(active=True).order_by("name")
        cast(forms.ChoiceField, self.fields["template"]).choices = [
            (t.slug, f"{t.name} ({t.image_repository}:{t.default_tag})") for t in templates
        ]
        self.binding_keys = self._add_binding_fields()
        domains = settings.LEASEHOLD_INGRESS_DOMAINS
        self.fields["host"].help_text = (
            f"A name under {', '.join(f'*.{d}' for d in domains)}, e.g. checkout.{domains[0]}; blank: no Ingress."
            if domains
            else "No Ingress hosts are offered here: leave blank."
        )

    def _add_binding_fields(self) -> list[str]:
        """A choice of the caller's active resources for each kind an app binds to, after `env`."""
        keys = []
        for binding in kinds.bindings_from(self.kind):
            targets = (
                Resource.objects.filter(
                    kind=binding.target_kind, state=ResourceState.ACTIVE, team__in=teams_of(self.user)
                )
                .select_related("parent__team")
                .order_by("name")
            )
            self.fields[binding.spec_key] = forms.ChoiceField(
                required=False,
                label=binding.label,
                help_text=binding.help_text,
                choices=[("", "— none —")] + [(str(t.pk), t.display_name) for t in targets],
            )
            keys.append(binding.spec_key)
        order = list(self.fields)
        for key in keys:
            order.remove(key)
        at = order.index("host")
        self.order_fields([*order[:at], *keys, *order[at:]])
        return keys

    def clean_env(self) -> dict[str, str]:
        env: dict[str, str] = {}
        for number, line in enumerate(self.cleaned_data["env"].splitlines(), start=1):
            if not line.strip():
                continue
            key, sep, value = line.partition("=")
            if not sep or not ENV_NAME.match(key.strip()):
                raise forms.ValidationError(f"Line {number}: write KEY=value, with a name like LOG_LEVEL.")
            env[key.strip()] = value
        return env

    def spec(self) -> dict[str, Any]:
        data = self.cleaned_data
        spec: dict[str, Any] = {
            "namespace": data["namespace"],
            "template": data["template"],
            "replicas": data["replicas"],
            "env": data["env"],
        }
        for optional in ("image_tag", *self.binding_keys, "host"):
            if data.get(optional):
                spec[optional] = data[optional]
        return spec


def form_for(kind: str) -> type[RequestForm]:
    """The form of `kind` (the registry's), the namespace's for a kind there is none of."""
    found = kinds.find(kind) or kinds.get(Kind.NAMESPACE)
    return found.form_class()


class ResourceHandOverForm(forms.ModelForm):
    """The one thing an admin changes on a resource: who in its team owns it, with a reason (audited by
    `resource_hand_over`). Everything approvers decided on stays read-only."""

    reason = forms.CharField(
        required=False,
        max_length=500,
        widget=forms.Textarea(attrs={"rows": 2, "cols": 60}),
        help_text="Why it changes hands (kept in the audit trail).",
    )

    class Meta:
        model = Resource
        fields = ["owner"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        owner = self.fields.get("owner")
        if owner is None:  # shown read-only (a reclaimed resource): nothing to give a reason for
            self.fields.pop("reason", None)
        elif self.instance.pk is not None:
            team = self.instance.team
            # Team members only; the current owner stays listed even after leaving, so that an
            # unchanged form still validates.
            cast(forms.ModelChoiceField, owner).queryset = (
                get_user_model()
                .objects.filter(Q(groups=team.group, is_active=True) | Q(pk=self.instance.owner_id))
                .distinct()
                .order_by("username")
            )
            owner.help_text = f"An active member of team {team.slug}; empty: the whole team owns it."

    def clean(self) -> dict[str, Any]:
        super().clean()
        data = self.cleaned_data
        if "owner" in self.changed_data and "owner" in data:
            stored = Resource.objects.select_related("team__group").get(pk=self.instance.pk)
            for field, messages in resource_hand_over_errors(resource=stored, new_owner=data["owner"]).items():
                for message in messages:
                    self.add_error(field, message)
            if not (data.get("reason") or "").strip():
                self.add_error("reason", "Say why the resource changes hands.")
        return data
