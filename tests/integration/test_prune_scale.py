"""Issue 17 at a small size: registry_tags plans where the facts are, and its plans are the filter's plans."""

from __future__ import annotations

import pytest

from tests.integration.runner import ensure_collection_link, run_module
from tests.lab import bulk
from tests.lab.registry import start_registry

SHAPE = bulk.Shape(repositories=3, images=12, tags_per_image=3, prefix="small")
POLICY = {"keep_latest": 4, "keep_tags": ["^i00000-0$"], "now": "2025-01-01T00:00:00Z"}


@pytest.fixture(scope="module")
def bulk_lab(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("bulk-lab")
    bulk.registry_workdir(SHAPE, workdir, cache=workdir.parent / "bulk-cache")
    with start_registry("plain", workdir) as lab:
        yield lab


def test_registry_tags_plans_as_the_filter_does_and_returns_no_facts(bulk_lab):
    ensure_collection_link()
    from ansible_collections.regops.registry.plugins.filter.prune import retention_deletes, retention_plan

    names = SHAPE.names()
    facts, _rss = run_module("registry_tags", {"registry": bulk_lab.url, "repositories": names, "details": True,
                                               "sort": "none"})
    planned, _rss = run_module("registry_tags", {"registry": bulk_lab.url, "repositories": names, "sort": "none",
                                                 "retention": POLICY})
    expected = [retention_plan(entry["images"], repository=entry["repository"], **POLICY)
                for entry in facts["repositories"]]
    assert planned["plans"] == expected
    assert [p["summary"]["deleted"] for p in expected] == [(12 - 4) * 3 - 1] * 3  # i00000-0 kept by keep_tags
    assert planned["deletes"] == [retention_deletes(p) for p in expected]
    assert planned["summary"] == {"repositories": 3, "tags": SHAPE.tags, "kept": 3 * (4 * 3 + 1),
                                  "deleted": 3 * ((12 - 4) * 3 - 1)}
    assert planned["emptied"] == []
    assert planned["repositories"] == [{"repository": n, "count": SHAPE.tags // 3} for n in names]  # no facts


def test_a_wrong_retention_term_fails_before_any_request(bulk_lab):
    mark = bulk_lab.mark()
    result, _rss = run_module("registry_tags", {"registry": bulk_lab.url, "repository": SHAPE.repository(0),
                                                "retention": {"keep_newest": 3}})
    assert result["failed"] and "unknown retention term keep_newest" in result["msg"]
    assert bulk_lab.requests(since=mark) == []
