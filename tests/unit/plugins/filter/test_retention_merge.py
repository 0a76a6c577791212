"""retention_merge: the reports of shards as the one report a single prune run writes (pure)."""

from __future__ import annotations

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.regops.registry.plugins.filter.prune import _timeless, retention_plan
from ansible_collections.regops.registry.plugins.filter.report_merge import retention_merge


def images(count: int) -> list[dict]:
    return [{"tag": f"build-{n}", "digest": f"sha256:{n:064x}", "created": f"2024-01-{n + 1:02d}T00:00:00Z",
             "media_type": "application/vnd.oci.image.manifest.v1+json", "size": 10, "platforms": [],
             "labels": {}, "shared_tags": []} for n in range(count)]


def report(repositories: dict[str, int], now: str, **extra) -> dict:
    """What the prune role builds, for these repositories (name -> tag count), keeping the 2 newest."""
    plans = [retention_plan(images(count), keep_latest=2, now=now, repository=name)
             for name, count in repositories.items()]
    return {"registry": "r.example.com", "check_mode": True, "planned_at": now, "policy": plans[0]["policy"],
            "summary": {"repositories": len(plans), "tags": sum(p["summary"]["tags"] for p in plans),
                        "kept": sum(p["summary"]["kept"] for p in plans),
                        "deleted": sum(p["summary"]["deleted"] for p in plans)},
            "storage_note": "gc", "report": None, "repositories": plans, **extra}


def test_shards_merge_into_the_single_run_report():
    single = report({"a/x": 5, "b/y": 3, "c/z": 4}, "2025-01-01T00:00:00Z", changed=False, refused=[])
    shards = [report({"c/z": 4}, "2025-01-01T00:00:09Z", changed=False, refused=[]),
              report({"a/x": 5, "b/y": 3}, "2025-01-01T00:00:00Z", changed=False, refused=[])]
    merged = retention_merge(shards)
    assert _timeless(merged) == _timeless(single)  # each plan keeps the moment its shard counted back from
    assert merged["planned_at"] == merged["policy"]["now"] == "2025-01-01T00:00:00Z"  # the earliest shard's
    assert [p["repository"] for p in merged["repositories"]] == ["a/x", "b/y", "c/z"]
    assert merged["summary"] == {"repositories": 3, "tags": 12, "kept": 6, "deleted": 6}


def test_changed_and_refused_come_from_every_shard():
    shards = [report({"a/x": 5}, "2025-01-01T00:00:00Z", changed=True, refused=[{"digest": "sha256:1"}]),
              report({"b/y": 3}, "2025-01-01T00:00:00Z", changed=False, refused=[{"digest": "sha256:2"}])]
    merged = retention_merge(shards, report={"json": "out/prune.json", "markdown": "out/prune.md"})
    assert merged["changed"] is True and merged["refused"] == [{"digest": "sha256:1"}, {"digest": "sha256:2"}]
    assert merged["report"] == {"json": "out/prune.json", "markdown": "out/prune.md"}
    assert "changed" not in retention_merge([report({"a/x": 1}, "2025-01-01T00:00:00Z")])  # report files: no such key


@pytest.mark.parametrize("other, message", [
    ({"registry": "other.example.com"}, "differ in 'registry'"),
    ({"check_mode": False}, "differ in 'check_mode'"),
])
def test_shards_of_different_prunes_are_refused(other, message):
    first = report({"a/x": 5}, "2025-01-01T00:00:00Z")
    with pytest.raises(AnsibleFilterError, match=message):
        retention_merge([first, {**report({"b/y": 3}, "2025-01-01T00:00:00Z"), **other}])


def test_a_different_policy_or_a_repository_twice_is_refused():
    first = report({"a/x": 5}, "2025-01-01T00:00:00Z")
    other_policy = {**report({"b/y": 3}, "2025-01-01T00:00:00Z"), "policy": {"keep_latest": 9}}
    with pytest.raises(AnsibleFilterError, match="differ in 'policy'"):
        retention_merge([first, other_policy])
    with pytest.raises(AnsibleFilterError, match="more than one shard"):
        retention_merge([first, report({"a/x": 5}, "2025-01-01T00:00:00Z")])
    with pytest.raises(AnsibleFilterError, match="non-empty list"):
        retention_merge([])
