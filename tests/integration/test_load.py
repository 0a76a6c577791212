"""Load (issue 7): more than 10,000 requests against one real registry in a few module calls (facts over 4,000
tags, 1,200 concurrent tag deletes, facts again), with no error leaked, every answer right, and bounded memory.

The truth is the seeding and skopeo, never the client; the request count is the registry's access log.
"""

from __future__ import annotations

import pytest

from tests.integration.runner import run_module
from tests.lab import reliability, seed
from tests.lab.registry import start_registry

REPOSITORIES = 4
TAGS = 1000
DELETED_PER_REPOSITORY = 600
MIN_REQUESTS = 10_000
MAX_RSS = 100 << 20


@pytest.fixture(scope="module")
def loaded_lab(tmp_path_factory):
    lab = start_registry("plain", tmp_path_factory.mktemp("lab-load"))
    try:
        truth = seed.seed_scale(seed.LabSession(lab), repositories=REPOSITORIES, tags_per_repository=TAGS,
                                images_per_repository=50, prefix="load")
        yield lab, truth
    finally:
        lab.close()


def _facts(lab, repositories):
    result, rss = run_module("registry_tags", {**lab.conn(), "repositories": repositories, "details": True,
                                               "concurrency": 16})
    assert "failed" not in result and "exception" not in result, str(result)[:2000]
    return {r["repository"]: r for r in result["repositories"]}, rss


def test_ten_thousand_requests_no_error_bounded_memory(loaded_lab):
    lab, truth = loaded_lab
    repositories = sorted(truth)
    mark = lab.mark()
    before = reliability.snapshot(lab, repositories)
    assert all(before[r] == set(truth[r]) for r in repositories)

    facts, rss_facts = _facts(lab, repositories)
    for repository in repositories:  # every tag's digest as seeded
        images = {i["tag"]: i["digest"] for i in facts[repository]["images"]}
        assert images == {tag: t["digest"] for tag, t in truth[repository].items()}, repository

    doomed = {r: sorted(t for t in truth[r] if t.startswith("1.") and int(t.split(".")[1]) < DELETED_PER_REPOSITORY // 10)
              for r in repositories[:2]}
    assert all(len(tags) == DELETED_PER_REPOSITORY for tags in doomed.values())
    deleted, rss_delete = run_module("registry_delete", {**lab.conn(), "concurrency": 16, "repositories": [
        {"repository": r, "tags": tags} for r, tags in doomed.items()]})
    assert deleted.get("changed") is True and "failed" not in deleted, str(deleted)[:2000]

    again, rss_again = _facts(lab, repositories)
    for repository in repositories:
        expected = {tag: t["digest"] for tag, t in truth[repository].items() if tag not in doomed.get(repository, [])}
        assert {i["tag"]: i["digest"] for i in again[repository]["images"]} == expected, repository

    after = reliability.snapshot(lab, repositories)
    lost = reliability.lost(before, after, {r: set(t) for r, t in doomed.items()})
    assert lost == 0
    assert all(after[r] == before[r] - set(doomed.get(r, [])) for r in repositories)
    answered = lab.requests(mark)
    errors = [r for r in answered if r.status >= 500]
    peak = max(rss_facts, rss_delete, rss_again)
    print(f"\n[measure] load: {len(answered)} requests, {len(errors)} answered 5xx (retried), "
          f"peak RSS facts {rss_facts / 2**20:.1f} MiB, deletes {rss_delete / 2**20:.1f} MiB, "
          f"facts again {rss_again / 2**20:.1f} MiB")
    assert len(answered) >= MIN_REQUESTS
    assert peak < MAX_RSS
    reliability.row("load", f"{len(answered):,} requests: facts for {REPOSITORIES * (TAGS + 1):,} tags twice, "
                    f"{2 * DELETED_PER_REPOSITORY:,} tag deletes at 16 at once", f"all answers right, no error "
                    f"leaked ({len(errors)} 5xx retried), peak RSS {peak / 2**20:.0f} MiB", tags_lost=lost)
