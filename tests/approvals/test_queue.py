"""The approval queue page and the request page's approval card."""

from __future__ import annotations

import re
import uuid
from urllib.parse import unquote

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from approvals.models import ApprovalStep
from approvals.views import QUEUE_PAGE_SIZE
from requests_app.models import AuditEvent, Cluster, ResourceRequest

from .conftest import age_step, pending_step

pytestmark = pytest.mark.django_db


@pytest.fixture
def queue_page(client, approver):
    client.force_login(approver)

    def get(**params):
        response = client.get(reverse("approval-queue"), params)
        assert response.status_code == 200
        return response.content.decode()

    return get


def test_the_queue_lists_oldest_first_with_what_an_approver_needs(file_request, queue_page):
    newer = file_request(name="newer", spec={"cpu": "3", "memory": "6Gi", "storage": "30Gi"})
    older = file_request(name="older", environment="staging", lease_days=30, justification="migration rehearsal")
    now = age_step(pending_step(newer), 1)
    age_step(pending_step(older), 3, now=now)
    page = queue_page()
    assert page.index("atlas-older") < page.index("atlas-newer")
    for text in [
        "create namespace",
        "staging",
        "medium",
        "3 CPUs, 6 GiB memory, 30 GiB storage",
        "30 days",
        "migration rehearsal",
        "by dana",
        "3\xa0hours",
        reverse("request-detail", args=[older.pk]),
        reverse("request-objects", args=[older.pk]),
        reverse("approval-decide", args=[pending_step(older).pk]),
    ]:
        assert text in page, text


def test_an_empty_queue_says_so(approver, queue_page):
    assert "Nothing waits for you." in queue_page()


def test_an_approver_approves_from_a_row_and_returns_to_the_queue(client, file_request, approver):
    request = file_request()
    client.force_login(approver)
    response = client.post(reverse("approval-decide", args=[pending_step(request).pk]), {"verdict": "approve"})
    assert response.status_code == 302 and response["Location"] == reverse("approval-queue")
    assert ResourceRequest.objects.get(pk=request.pk).state == "approved"


def test_a_rejection_from_a_row_needs_a_comment(client, file_request, approver):
    request = file_request()
    client.force_login(approver)
    url = reverse("approval-decide", args=[pending_step(request).pk])
    response = client.post(url, {"verdict": "reject", "comment": ""}, follow=True)
    assert "Say why the request is rejected." in response.content.decode()
    assert "comment:" not in response.content.decode()  # a sentence for a person, not the API's field key
    assert ResourceRequest.objects.get(pk=request.pk).state == "pending_approval"
    client.post(url, {"verdict": "reject", "comment": "duplicate of checkout"})
    assert ResourceRequest.objects.get(pk=request.pk).state == "rejected"


def test_deciding_does_not_redirect_off_site(client, file_request, approver):
    request = file_request()
    client.force_login(approver)
    response = client.post(
        reverse("approval-decide", args=[pending_step(request).pk]),
        {"verdict": "approve", "next": "https://evil.example.com/"},
    )
    assert response["Location"] == reverse("approval-queue")


def test_several_selected_requests_are_approved_at_once(client, file_request, approver, requester):
    chosen = [file_request(), file_request()]
    left = file_request()
    client.force_login(approver)
    response = client.post(
        reverse("approval-queue"),
        {"op": "approve-selected", "steps": [str(pending_step(r).pk) for r in chosen], "comment": "batch"},
        follow=True,
    )
    assert f"Approved {chosen[0].display_name} (platform) and {chosen[1].display_name} (platform)." in (
        response.content.decode()
    )
    assert [ResourceRequest.objects.get(pk=r.pk).state for r in [*chosen, left]] == [
        "approved",
        "approved",
        "pending_approval",
    ]


def test_a_batch_reports_the_steps_it_could_not_approve(client, file_request, approver, second_approver):
    taken, free = file_request(), file_request()
    client.force_login(second_approver)
    client.post(reverse("approval-decide", args=[pending_step(taken).pk]), {"verdict": "approve"})
    client.force_login(approver)
    ids = [str(taken.approval_steps.get().pk), str(pending_step(free).pk), "not-a-uuid"]
    page = client.post(reverse("approval-queue"), {"op": "approve-selected", "steps": ids}, follow=True)
    text = page.content.decode()
    assert f"Approved {free.display_name} (platform)." in text
    assert f"Not approved {taken.display_name} (platform): The platform step is approved" in text
    assert "Not approved: No such step." in text


@pytest.mark.parametrize("persona", ["outsider", "security"])
def test_the_decide_form_answers_404_for_a_step_the_caller_may_not_see_as_for_an_unknown_one(
    client, file_request, request, persona
):
    step = pending_step(file_request())
    caller = request.getfixturevalue(persona)
    client.force_login(caller)
    for pk in (step.pk, uuid.uuid4()):
        assert client.post(reverse("approval-decide", args=[pk]), {"verdict": "approve"}).status_code == 404
    assert not AuditEvent.objects.filter(actor_name=caller.username).exists()
    step.refresh_from_db()
    assert step.state == "pending"


def test_a_batch_on_the_queue_page_calls_a_step_the_caller_may_not_see_no_such_step(client, file_request, outsider):
    step = pending_step(file_request())
    client.force_login(outsider)
    page = client.post(reverse("approval-queue"), {"op": "approve-selected", "steps": [str(step.pk)]}, follow=True)
    assert "Not approved: No such step." in page.content.decode()
    assert not AuditEvent.objects.filter(actor_name="olga").exists()


def test_the_request_page_offers_the_decision_only_to_those_who_may_decide(client, file_request, requester, admin_user):
    request = file_request()
    url = reverse("request-detail", args=[request.pk])
    decide = reverse("approval-decide", args=[pending_step(request).pk])
    client.force_login(requester)
    page = client.get(url).content.decode()
    assert "rule default" in page and decide not in page
    client.force_login(admin_user)  # sees the request, is not an approver
    assert decide not in client.get(url).content.decode()


def test_an_approver_who_sees_the_request_page_decides_from_it(client, file_request, approver, atlas):
    approver.groups.add(atlas.group)  # the request page is shown to the team (and admins)
    request = file_request()
    client.force_login(approver)
    url = reverse("request-detail", args=[request.pk])
    decide = reverse("approval-decide", args=[pending_step(request).pk])
    assert decide in client.get(url).content.decode()
    response = client.post(decide, {"verdict": "approve", "next": url})
    assert response["Location"] == url
    assert "frank: approve" in client.get(url).content.decode()


def _pending_steps(file_request, n: int) -> None:
    for _ in range(n):
        file_request()
    assert ApprovalStep.objects.filter(state="pending").count() == n


# Session, user, the user's groups, delegations to them, the page's step ids, those steps (with their
# request, team, requester and chain joined in), the count (bounded: approvals.selectors.QUEUE_COUNTED),
# and the user's own delegations for the card below; then the summaries' shared reads: here the teams'
# budgets (live namespaces and waiting requests).
PAGE_QUERIES = 10
# User, groups, delegations, count, page, and the decisions and their approvers prefetched.
API_QUERIES = 7


@pytest.mark.parametrize("n", [5, 200])
def test_the_queue_page_needs_the_same_few_queries_however_long_it_is(
    client, file_request, approver, django_assert_max_num_queries, n
):
    _pending_steps(file_request, n)
    client.force_login(approver)
    with django_assert_max_num_queries(PAGE_QUERIES):
        page = client.get(reverse("approval-queue")).content.decode()
    assert page.count('name="steps"') == min(n, QUEUE_PAGE_SIZE)


@pytest.mark.parametrize("n", [5, 200])
def test_the_queue_api_needs_the_same_few_queries_however_long_it_is(
    api, file_request, approver, django_assert_max_num_queries, n
):
    _pending_steps(file_request, n)
    with django_assert_max_num_queries(API_QUERIES):
        body = api.as_(approver).get("/api/v1/approvals/").json()
    assert (body["count"], len(body["results"])) == (n, min(n, 100))


def test_a_delegate_s_queue_also_stays_flat(api, file_request, approver, second_approver, requester):
    from approvals.models import Delegation
    from tests.factories import UserFactory

    stand_in = UserFactory(username="victor", groups=["platform-approvers"])
    today = timezone.localdate()
    for delegator in (approver, second_approver):
        Delegation.objects.create(delegator=delegator, delegate=stand_in, starts_on=today, ends_on=today)
    _pending_steps(file_request, 20)
    api.as_(stand_in)
    with CaptureQueriesContext(connection) as queries:
        body = api.get("/api/v1/approvals/").json()
    assert body["count"] == 20 and {r["acting_for"] for r in body["results"]} == {"frank"}
    assert len(queries) <= API_QUERIES + 1  # + the delegators' groups


def test_the_queue_is_walked_page_by_page_oldest_first_without_a_row_twice_or_missed(
    file_request, queue_page, monkeypatch
):
    """By keyset (approvals.selectors.queue_page): steps opened at the same instant are ordered by id."""
    monkeypatch.setattr("approvals.views.QUEUE_PAGE_SIZE", 2)
    requests = [file_request(name=f"walk{i}") for i in range(5)]
    now = timezone.now()
    for hours, request in zip([5, 3, 3, 3, 1], requests, strict=True):
        age_step(pending_step(request), hours, now=now)
    expected = [str(s.pk) for s in ApprovalStep.objects.filter(state="pending").order_by("pending_since", "id")]
    seen, params = [], {}
    for _ in range(3):
        page = queue_page(**params)
        assert "5 waiting" in page
        seen += re.findall(r'name="steps" value="([^"]+)"', page)
        newer = re.search(r'href="\?after=([^"]+)">newer', page)
        if newer is None:
            break
        params = {"after": unquote(newer.group(1))}
        assert "← oldest" in queue_page(**params)
    assert seen == expected and newer is None


def test_a_cursor_that_is_not_one_shows_the_first_page(file_request, queue_page):
    step = pending_step(file_request())
    for after in ["x", "12.not-a-uuid", "99999999999999999999999.0", f"-1.{uuid.uuid4()}"]:
        assert str(step.pk) in queue_page(after=after), after


def test_the_header_counts_up_to_a_bound(file_request, queue_page, monkeypatch):
    monkeypatch.setattr("approvals.selectors.QUEUE_COUNTED", 3)
    for i in range(3):
        file_request(name=f"counted{i}")
    assert "3 waiting" in queue_page() and "more than" not in queue_page()
    file_request(name="counted3")
    assert "more than 3 waiting" in queue_page()


def test_the_queue_shows_the_cluster_of_each_request(file_request, queue_page):
    Cluster.objects.create(name="vault", environments=["dev"])
    file_request(name="regulated", cluster="vault")
    file_request(name="ordinary")
    page = queue_page()
    assert '<td>dev<br><span class="muted">vault</span></td>' in page
    assert '<td>dev<br><span class="muted">default</span></td>' in page
