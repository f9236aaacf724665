"""Drift is judged on the fields Leasehold owns, never on status or the server's bookkeeping."""

import copy

from provisioning.drift import differences, only_stamps, path_text

LIVE = {
    "apiVersion": "apps/v1",
    "kind": "Deployment",
    "metadata": {
        "name": "shop",
        "resourceVersion": "41",
        "generation": 1,
        "managedFields": [{"manager": "leasehold", "time": "2026-12-01T00:00:00Z"}],
        "annotations": {"leasehold.io/lease-expires": "2026-12-08T00:00:00Z", "deployment.kubernetes.io/revision": "1"},
    },
    "spec": {"replicas": 2, "template": {"spec": {"containers": [{"name": "app", "image": "web:2.2.0"}]}}},
    "status": {"observedGeneration": 1, "replicas": 2},
}


def copy_with(**changes):
    """LIVE with the values at `a__b__0__c` paths replaced."""
    obj = copy.deepcopy(LIVE)
    for dotted, value in changes.items():
        target = obj
        *path, last = dotted.split("__")
        for part in path:
            target = target[int(part)] if part.isdigit() else target[part]
        target[int(last) if last.isdigit() else last] = value
    return obj


def test_status_and_bookkeeping_are_not_drift():
    moved = copy_with(metadata__resourceVersion="97", metadata__generation=2, status={"replicas": 0})
    moved["metadata"]["managedFields"] = []
    assert differences(LIVE, moved) == []


def test_it_names_the_changed_owned_field():
    changed = differences(copy_with(spec__template__spec__containers__0__image="evil:1"), LIVE)
    assert [path_text(p) for p in changed] == ["spec.template.spec.containers[0].image"]
    assert not only_stamps(changed)


def test_a_new_lease_expiry_is_only_a_stamp():
    assert not only_stamps(differences(LIVE, copy_with(metadata__annotations__team_note="x")))  # not ours
    later = copy_with()
    later["metadata"]["annotations"]["leasehold.io/lease-expires"] = "2026-12-09T00:00:00Z"
    changed = differences(LIVE, later)
    assert [path_text(p) for p in changed] == ['metadata.annotations["leasehold.io/lease-expires"]']
    assert only_stamps(changed)


def test_lists_of_another_length_differ_as_a_whole():
    longer = copy_with()
    longer["spec"]["template"]["spec"]["containers"].append({"name": "sidecar"})
    assert [path_text(p) for p in differences(LIVE, longer)] == ["spec.template.spec.containers"]
