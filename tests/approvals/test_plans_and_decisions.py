"""Plans and decisions: the readable summary of a request (request page, plan preview, queue), the
approvers the preview names against the steps routing then creates, the objects page and who may see it,
the queue's messages and the approvers' line on the home page."""

from __future__ import annotations

import re
from decimal import Decimal

import pytest
from django.urls import reverse

from approvals.models import ApprovalStep
from requests_app.models import Cluster
from requests_app.presenters import human_quantity, request_summary
from requests_app.services import request_build, request_submit, teams_budget_left
from tests.conftest import namespace_body
from tests.factories import UserFactory, active_child, active_namespace, app_template, team

from .conftest import age_step, pending_step

pytestmark = pytest.mark.django_db

PROD_POLICY = """
rules:
  - name: small-dev
    match: {action: [create], environment: [dev], kind: [namespace], plan: [small]}
    steps: []
  - name: big-prod
    match: {environment: [prod], max_cpu: "4"}
    steps:
      - {name: team-lead, group: "team-{team}-leads", required: 1}
      - {name: security, group: security-approvers, required: 2, escalate_to: platform-leads}
  - name: default
    match: {}
    steps:
      - {name: platform, group: platform-approvers, required: 1}
"""


def text_of(html: str) -> str:
    """The page as a person reads it: tags out, whitespace collapsed, entities of quotes decoded."""
    text = re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html)).replace("&#x27;", "'").replace("\xa0", " ")
    return re.sub(r" ([:.,;)])", r"\1", text)


@pytest.fixture
def namespace(atlas, requester):
    return active_namespace(atlas, requester, name="web", plan="small")  # 2 CPU, 4Gi, 20Gi


@pytest.fixture
def orders(namespace):
    return active_child(
        namespace, "database", "orders", {"engine": "postgres", "version": "16", "storage": "5Gi", "plan": "small"}
    )


def preview_form(**overrides) -> dict:
    form = {
        "kind": "namespace",
        "team": "atlas",
        "name": "checkout",
        "environment": "dev",
        "plan": "medium",
        "lease_days": "14",
    }
    form.update(overrides)
    return form


# --- the summary ---------------------------------------------------------------------------------------


def test_quantities_read_in_human_units():
    from decimal import Decimal

    assert human_quantity(Decimal("0.5"), "cpu") == "0.5 CPU"
    assert human_quantity(Decimal(2), "cpu") == "2 CPUs"
    assert human_quantity(Decimal(512 * 1024**2), "memory") == "512 MiB"
    assert human_quantity(Decimal(4 * 1024**3), "memory") == "4 GiB"
    assert human_quantity(Decimal(3 * 1024**3) / 2, "storage") == "1.5 GiB"


def test_a_namespace_summary_gives_its_plan_quota_and_what_it_takes_of_the_team_budget(atlas, requester):
    atlas.budget_cpu, atlas.budget_memory, atlas.budget_storage, atlas.budget_namespaces = "10", "20Gi", "100Gi", 3
    atlas.save()
    active_namespace(atlas, requester, name="old", plan="small")  # takes 2 CPU, 4Gi, 20Gi and one namespace
    unsaved = request_build(requester=requester, **namespace_body())
    summary = request_summary(unsaved)
    assert summary.headline == "New namespace atlas-checkout"
    facts = {f.label: f.value for f in summary.facts}
    assert facts["Plan"] == "medium" and facts["Quota"] == "4 CPUs, 8 GiB memory, 50 GiB storage"
    (cost,) = summary.costs
    assert cost.of == "team atlas's budget"
    rows = {line.quantity: (line.asked, line.used, line.left_after, line.limit) for line in cost.lines}
    assert rows == {
        "CPU": ("4 CPUs", "2 CPUs", "4 CPUs", "10 CPUs"),
        "Memory": ("8 GiB", "4 GiB", "8 GiB", "20 GiB"),
        "Storage": ("50 GiB", "20 GiB", "30 GiB", "100 GiB"),
        "Namespaces": ("1", "1", "1", "3"),
    }
    # Once filed, the request is counted in the budget: the figures stay the same, not counted twice.
    filed = request_submit(requester=requester, **namespace_body())
    assert request_summary(filed).costs == summary.costs


def test_teams_budgets_count_every_namespace_of_a_spec_shared_within_and_across_teams(atlas, zephyr, requester):
    """teams_budget_left groups the namespaces by spec (requests_app.services): each one still counts."""
    for t in (atlas, zephyr):
        t.budget_cpu, t.budget_memory, t.budget_storage, t.budget_namespaces = "100", "200Gi", "1000Gi", 10
        t.save()
    for name in ("a", "b"):
        active_namespace(atlas, requester, name=name, plan="small")  # 2 CPU, 4Gi, 20Gi each
    active_namespace(atlas, requester, name="c", plan="medium")  # 4 CPU, 8Gi, 50Gi
    active_namespace(atlas, requester, name="d", cpu="500m", memory="1Gi", storage="1Gi")
    request_submit(requester=requester, **namespace_body(name="e", spec={"plan": "small"}))  # waiting
    active_namespace(zephyr, requester, name="z", plan="small")
    gi = 1024**3
    left = teams_budget_left([atlas, zephyr])
    assert left[atlas.pk] == {
        "cpu": 100 - (2 * 3 + 4 + Decimal("0.5")),
        "memory": (200 - (4 * 3 + 8 + 1)) * gi,
        "storage": (1000 - (20 * 3 + 50 + 1)) * gi,
        "namespaces": 10 - 5,
    }
    assert left[zephyr.pk] == {"cpu": 98, "memory": 196 * gi, "storage": 980 * gi, "namespaces": 9}


def test_a_database_summary_says_which_namespace_it_goes_into_and_what_it_takes_of_its_quota(
    namespace, orders, requester
):
    unsaved = request_build(
        requester=requester,
        **namespace_body(
            kind="database",
            name="billing",
            spec={"namespace": str(namespace.pk), "version": "15", "plan": "medium", "storage": "10Gi"},
        ),
    )
    summary = request_summary(unsaved)
    assert summary.headline == "New database atlas-web / billing"
    facts = {f.label: (f.value, f.url) for f in summary.facts}
    assert facts["Namespace"] == ("atlas-web", reverse("resource-detail", args=[namespace.pk]))
    assert facts["Engine"][0] == "PostgreSQL 15"
    assert facts["Plan"][0] == "medium (up to 1 CPU, 2 GiB memory)"
    assert facts["Storage"][0] == "10 GiB"
    (cost,) = summary.costs
    assert cost.of == "namespace atlas-web's quota" and cost.url == reverse("resource-detail", args=[namespace.pk])
    # The namespace (small: 2 CPU, 4Gi, 20Gi) holds `orders` (small: 0.5 CPU, 1Gi, 5Gi).
    rows = {line.quantity: (line.asked, line.used, line.left_after) for line in cost.lines}
    assert rows == {
        "CPU": ("1 CPU", "0.5 CPU", "0.5 CPU"),
        "Memory": ("2 GiB", "1 GiB", "1 GiB"),
        "Storage": ("10 GiB", "5 GiB", "5 GiB"),
    }


def test_an_app_summary_names_its_image_bound_database_and_host_with_links(namespace, orders, requester):
    app_template("web")
    filed = request_submit(
        requester=requester,
        **namespace_body(
            kind="app",
            name="shop",
            spec={
                "namespace": "web",
                "template": "web",
                "replicas": 2,
                "database": str(orders.pk),
                "host": "shop.apps.example.org",
                "env": {"LOG_LEVEL": "debug"},
            },
        ),
    )
    facts = {f.label: (f.value, f.url) for f in request_summary(filed).facts}
    assert facts["Image"] == ("registry.example.org/platform/web:1.4.2", "")
    assert facts["Database"] == ("atlas-web / orders", reverse("resource-detail", args=[orders.pk]))
    assert facts["Host"] == ("shop.apps.example.org", "https://shop.apps.example.org/")
    assert facts["Size"][0] == "2 replicas (up to 1 CPU, 512 MiB memory)"
    assert facts["Environment variables"][0] == "LOG_LEVEL"


def test_the_request_page_shows_the_summary_not_the_raw_spec(client, namespace, orders, requester):
    filed = request_submit(
        requester=requester,
        **namespace_body(kind="database", name="billing", spec={"namespace": str(namespace.pk), "storage": "2Gi"}),
    )
    client.force_login(requester)
    html = client.get(reverse("request-detail", args=[filed.pk])).content.decode()
    summary = html[html.index('id="summary"') : html.index('id="approval"')]
    assert str(namespace.pk) not in text_of(summary) and "{&#x27;" not in html
    assert f'<a href="{reverse("resource-detail", args=[namespace.pk])}">atlas-web</a>' in summary
    assert "PostgreSQL 16" in summary and "2 GiB" in summary and "What it takes of" in summary


# --- who must approve: the preview names what routing then creates ----------------------------------------


@pytest.mark.parametrize(
    ("fields", "rule"),
    [
        ({"spec": {"plan": "small"}}, "small-dev"),
        ({"spec": {"plan": "medium"}}, "default"),
        ({"environment": "prod", "spec": {"plan": "medium"}}, "big-prod"),
        ({"environment": "prod", "spec": {"plan": "large"}}, "default"),  # 8 CPUs: over big-prod's max_cpu
    ],
)
def test_the_preview_names_the_steps_that_routing_then_creates(client, load, requester, fields, rule):
    load(PROD_POLICY)
    client.force_login(requester)
    form = preview_form(**{k: v for k, v in fields.items() if k != "spec"}, plan=fields["spec"]["plan"])
    preview = client.post(reverse("request-preview"), form).content.decode()
    route = request_summary(request_build(requester=requester, **namespace_body(**fields))).approval

    filed = request_submit(requester=requester, **namespace_body(**fields))

    assert filed.approval_chain.rule == route["rule"] == rule
    created = [(s.name, s.group, s.required, s.escalate_to) for s in filed.approval_steps.order_by("order")]
    assert created == [(s["name"], s["group"], s["required"], s["escalate_to"]) for s in route["steps"]]
    shown = text_of(preview)
    if created:
        assert f"Rule {rule}, in this order" in shown
        for name, group, required, _ in created:
            assert f"{name}: {required} approval{'s' if required > 1 else ''} from {group}" in shown
        assert filed.state == "pending_approval"
    else:
        assert "Approved at once" in shown and f"rule {rule} needs no approval" in shown
        assert filed.state == "approved"


def test_the_preview_leads_with_the_summary_and_keeps_the_yaml_one_click_away(client, requester):
    client.force_login(requester)
    html = client.post(reverse("request-preview"), preview_form()).content.decode()
    assert html.index('class="summary"') < html.index("<details")
    details = html[html.index("<details") :]
    assert "<pre>" in details and "kind: ResourceQuota" in details
    assert "Who must approve" in html and "platform-approvers" in html


def test_a_preview_that_would_be_refused_shows_the_reasons_and_no_summary(client, requester, atlas):
    atlas.budget_cpu = "3"
    atlas.save()
    client.force_login(requester)
    html = client.post(reverse("request-preview"), preview_form()).content.decode()
    assert "The request would be refused" in html and "Over team atlas" in html
    assert 'class="summary"' not in html


# --- the queue: the summary per row, the objects page and its permissions -----------------------------------


def test_a_database_row_in_the_queue_says_which_namespace_it_goes_into(client, approver, namespace, requester):
    filed = request_submit(
        requester=requester,
        **namespace_body(kind="database", name="billing", spec={"namespace": "web", "storage": "2Gi"}),
    )
    client.force_login(approver)
    html = client.get(reverse("approval-queue")).content.decode()
    row = text_of(html[html.index(str(pending_step(filed).pk)) :])
    assert "New database atlas-web / billing" in row and "Namespace: atlas-web" in row
    assert "Of namespace atlas-web's quota: CPU 0.5 CPU (1.5 CPUs left of 2 CPUs)" in row
    assert reverse("request-objects", args=[filed.pk]) in html


@pytest.mark.parametrize("per_team", [1, 4])
def test_a_queue_of_every_kind_from_several_teams_reads_its_summaries_in_a_constant_number_of_queries(
    client, approver, django_assert_max_num_queries, per_team
):
    """Budgets, headroom and bound databases are read once per page, not per row nor per team."""
    app_template("web")
    for slug in ("atlas", "zephyr", "orion"):
        team_obj = team(slug)
        owner = UserFactory(username=f"{slug}-dev", groups=[f"team-{slug}"])
        namespace = active_namespace(team_obj, owner, name="web", plan="large")
        database = active_child(namespace, "database", "orders", {"plan": "small", "storage": "1Gi"})
        for i in range(per_team):
            base = {"team": slug, "environment": "dev", "lease_days": 14, "justification": "load"}
            request_submit(requester=owner, kind="namespace", name=f"ns{i}", spec={"plan": "medium"}, **base)
            request_submit(requester=owner, kind="database", name=f"db{i}", spec={"namespace": "web"}, **base)
            spec = {"namespace": "web", "template": "web", "database": str(database.pk)}
            request_submit(requester=owner, kind="app", name=f"app{i}", spec=spec, **base)
    client.force_login(approver)
    # The queue's own 8 (see test_queue.py), then budgets (2), headroom (3) and bound databases (1).
    with django_assert_max_num_queries(14):
        html = client.get(reverse("approval-queue")).content.decode()
    assert html.count('name="steps"') == 9 * per_team
    assert "Database: zephyr-web / orders" in text_of(html)


@pytest.fixture
def filed(requester):
    return request_submit(requester=requester, **namespace_body())


@pytest.mark.parametrize(
    ("persona", "status"),
    [
        ("requester", 200),
        ("teammate", 200),
        ("approver", 200),  # decides its step
        ("admin_user", 200),
        ("outsider", 404),  # another team
        ("security", 404),  # an approver, but of no step of this request
    ],
)
def test_the_objects_page_is_shown_to_whom_the_plan_api_is(client, api, request, filed, persona, status):
    user = request.getfixturevalue(persona)
    client.force_login(user)
    page = client.get(reverse("request-objects", args=[filed.pk]))
    assert page.status_code == status
    assert api.as_(user).get(reverse("request-plan", args=[filed.pk])).status_code == status
    if status == 200:
        text = text_of(page.content.decode())
        assert "New namespace atlas-checkout" in text
        for kind in ("Namespace", "ResourceQuota", "LimitRange", "RoleBinding", "NetworkPolicy"):
            assert kind in text
        assert page["Content-Type"].startswith("text/html")


def test_the_objects_page_needs_a_login_and_answers_404_for_an_unknown_request(client, filed, requester):
    url = reverse("request-objects", args=[filed.pk])
    response = client.get(url)
    assert response.status_code == 302 and response["Location"].startswith(reverse("login"))
    client.force_login(requester)
    unknown = "00000000-0000-4000-8000-000000000000"
    assert client.get(reverse("request-objects", args=[unknown])).status_code == 404


def test_the_objects_page_lists_what_the_api_plan_returns(client, api, filed, requester):
    client.force_login(requester)
    html = client.get(reverse("request-objects", args=[filed.pk])).content.decode()
    objects = api.as_(requester).get(reverse("request-plan", args=[filed.pk])).json()["objects"]
    assert html.count('<details id="object-') == len(objects)
    for o in objects:
        assert f"<code>{o['metadata']['name']}</code>" in html


# --- messages -----------------------------------------------------------------------------------------------


def test_deciding_one_step_names_the_request(client, filed, approver):
    client.force_login(approver)
    page = client.post(
        reverse("approval-decide", args=[pending_step(filed).pk]), {"verdict": "approve"}, follow=True
    ).content.decode()
    assert "Approved atlas-checkout (platform)." in page


def test_a_rejection_names_the_request(client, filed, approver):
    client.force_login(approver)
    page = client.post(
        reverse("approval-decide", args=[pending_step(filed).pk]),
        {"verdict": "reject", "comment": "not now"},
        follow=True,
    ).content.decode()
    assert "Rejected atlas-checkout (platform)." in page


def test_a_batch_names_a_database_by_its_namespace(client, approver, namespace, requester):
    database = request_submit(
        requester=requester,
        **namespace_body(kind="database", name="orders", spec={"namespace": "web", "storage": "2Gi"}),
    )
    other = request_submit(requester=requester, **namespace_body(name="reports"))
    client.force_login(approver)
    page = client.post(
        reverse("approval-queue"),
        {"op": "approve-selected", "steps": [str(pending_step(r).pk) for r in (database, other)]},
        follow=True,
    ).content.decode()
    assert "Approved atlas-web / orders (platform) and atlas-reports (platform)." in page


def test_a_long_batch_names_ten_requests_and_counts_the_rest(client, approver, file_request):
    requests = [file_request() for _ in range(12)]
    client.force_login(approver)
    page = client.post(
        reverse("approval-queue"),
        {"op": "approve-selected", "steps": [str(pending_step(r).pk) for r in requests]},
        follow=True,
    ).content.decode()
    message = re.search(r"Approved ([^<]*)\.</li>", page).group(1)
    assert message.endswith(" and 2 more") and message.count("(platform)") == 10


def test_a_batch_does_not_name_a_step_the_caller_may_not_see(client, filed, outsider):
    client.force_login(outsider)
    page = client.post(
        reverse("approval-queue"), {"op": "approve-selected", "steps": [str(pending_step(filed).pk)]}, follow=True
    ).content.decode()
    assert "Not approved: No such step." in page and "atlas-checkout" not in page


# --- the home page ------------------------------------------------------------------------------------------


def test_an_approver_s_home_page_counts_what_waits_and_the_age_of_the_oldest(client, approver, file_request):
    first, second = file_request(), file_request()
    now = age_step(pending_step(first), 5)
    age_step(pending_step(second), 1, now=now)
    client.force_login(approver)
    text = text_of(client.get(reverse("home")).content.decode())
    assert "2 steps wait for you; the oldest has waited 5 hours." in text
    assert reverse("approval-queue") in client.get(reverse("home")).content.decode()

    client.post(reverse("approval-decide", args=[pending_step(first).pk]), {"verdict": "approve"})
    text = text_of(client.get(reverse("home")).content.decode()).replace("\xa0", " ")
    assert "1 step waits for you; the oldest has waited 1 hour." in text


def test_the_home_page_counts_only_what_the_user_may_decide(client, requester, file_request, approver):
    file_request()  # dana's own request waits for platform-approvers
    rita = UserFactory(username="rita", groups=["team-atlas", "platform-approvers"])
    client.force_login(requester)
    assert "Waiting for your approval" not in client.get(reverse("home")).content.decode()
    client.force_login(rita)
    assert "1 step waits for you" in text_of(client.get(reverse("home")).content.decode())
    assert ApprovalStep.objects.filter(state="pending").count() == 1


def test_the_preview_shows_the_cluster_the_request_would_be_placed_on(client, requester):
    Cluster.objects.create(name="vault", environments=["dev"])
    client.force_login(requester)
    chosen = client.post(reverse("request-preview"), preview_form(cluster="vault")).content.decode()
    placed = client.post(reverse("request-preview"), preview_form()).content.decode()
    assert "<dt>Cluster</dt><dd>vault</dd>" in chosen
    assert "<dt>Cluster</dt><dd>default</dd>" in placed  # a tie goes by name: default before vault
