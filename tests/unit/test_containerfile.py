"""The Containerfile, read as text: the checks that need no image build (tests/image/ runs the image)."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CONTAINERFILE = (ROOT / "Containerfile").read_text()


def stages() -> list[str]:
    """The text of each build stage, in order."""
    return re.split(r"^FROM\s", CONTAINERFILE, flags=re.MULTILINE)[1:]


def instructions(stage: str, name: str) -> list[str]:
    joined = re.sub(r"\\\n", " ", stage)
    return [line.split(None, 1)[1] for line in joined.splitlines() if line.split(None, 1)[:1] == [name]]


def test_the_base_image_is_a_build_argument_defaulting_to_the_official_python_image():
    assert re.search(r"^ARG BASE_IMAGE=python:3\.11-slim-bookworm$", CONTAINERFILE, flags=re.MULTILINE)
    assert all(stage.startswith("${BASE_IMAGE}") for stage in stages())


def test_it_is_multi_stage_and_the_final_stage_has_no_build_tools():
    builder, final = stages()
    assert builder.startswith("${BASE_IMAGE} AS builder")
    assert re.search(r"\bgcc\b", builder) and "libldap2-dev" in builder
    final_runs = " ".join(instructions(final, "RUN"))
    assert not re.search(r"\bgcc\b|-dev\b|build-essential|\bmake\b|python3-dev", final_runs), final_runs
    assert instructions(final, "COPY") == ["--from=builder /opt/leasehold /opt/leasehold", "--from=builder /app /app"]


def test_the_final_stage_runs_as_a_numeric_non_root_user():
    final = stages()[-1]
    users = instructions(final, "USER")
    assert users and re.fullmatch(r"[1-9][0-9]*:[1-9][0-9]*", users[-1]), users
    # Nothing after the USER line switches back.
    assert final.rstrip().splitlines()[-1].startswith(("CMD", "ENTRYPOINT"))


def test_dependencies_are_pinned_by_constraints_and_static_files_are_collected_at_build_time():
    builder = stages()[0]
    assert "--constraint /src/constraints.txt" in builder
    assert "collectstatic" in builder and "LEASEHOLD_STATIC_MANIFEST=true" in builder
    final = stages()[-1]
    assert "LEASEHOLD_STATIC_MANIFEST=true" in final


def test_the_entry_point_starts_each_process_of_deploy():
    entrypoint = (ROOT / "platform" / "image" / "entrypoint.sh").read_text()
    for command in ("web)", "worker)", "beat)", "manage)", "wait-for-migrations)"):
        assert f"  {command}" in entrypoint
    assert 'ENTRYPOINT ["/app/platform/image/entrypoint.sh"]' in CONTAINERFILE
