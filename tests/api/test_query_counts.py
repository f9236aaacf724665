"""The lists and the request page issue a number of queries that does not grow with the data."""

import pytest

from requests_app.models import ResourceRequest
from tests.factories import active_namespace

pytestmark = pytest.mark.django_db


def make_requests(team, user, count):
    for i in range(count):
        active_namespace(team, user, name=f"ns{i}")
    return ResourceRequest.objects.first()


@pytest.mark.parametrize("count", [5, 50])
def test_the_request_list_page_and_api_do_not_grow_with_requests(
    client, api, requester, atlas, count, django_assert_max_num_queries
):
    make_requests(atlas, requester, count)
    client.force_login(requester)
    api.as_(requester)
    with django_assert_max_num_queries(8):
        assert client.get("/requests/").status_code == 200
    with django_assert_max_num_queries(10):
        assert len(api.get("/api/v1/requests/").json()["results"]) == count
    with django_assert_max_num_queries(8):
        assert client.get("/resources/").status_code == 200


@pytest.mark.parametrize("count", [5, 50])
def test_the_request_page_does_not_grow_with_other_requests(
    client, requester, atlas, count, django_assert_max_num_queries
):
    first = make_requests(atlas, requester, count)
    client.force_login(requester)
    with django_assert_max_num_queries(20):
        assert client.get(f"/requests/{first.pk}/").status_code == 200
