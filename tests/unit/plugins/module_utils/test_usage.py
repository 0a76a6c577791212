"""The usage report's numbers (issue 18): storage counted per distinct blob, ages, largest, what a prune frees."""

from __future__ import annotations

import pytest

from ansible_collections.regops.registry.plugins.module_utils.errors import InvalidInput
from ansible_collections.regops.registry.plugins.module_utils.usage import usage_summary

NOW = "2025-01-01T00:00:00Z"


def blob(name: str) -> str:
    return "sha256:" + name.encode().hex().ljust(64, "0")[:64]


def image(tag, digest, blobs, created="2024-06-01T00:00:00Z", **extra):
    return dict({"tag": tag, "digest": digest, "created": created, "blobs": {blob(b): size for b, size in blobs.items()},
                 "media_type": "application/vnd.oci.image.manifest.v1+json", "labels": {}}, **extra)


def index(tag, digest, children, created="2024-06-01T00:00:00Z"):
    """An index as registry_tags reports it: its blobs are the union of its children's, its children listed."""
    blobs = {}
    for _digest, child_blobs in children:
        blobs.update(child_blobs)
    entry = image(tag, digest, blobs, created, media_type="application/vnd.oci.image.index.v1+json")
    entry["manifests"] = [{"digest": d} for d, _b in children]
    return entry


def facts(**repositories):
    return {"repositories": [{"repository": name.replace("_", "/"), "images": images}
                             for name, images in repositories.items()]}


def by_name(summary):
    return {r["repository"]: r for r in summary["repositories"]}


def test_a_layer_shared_by_three_repositories_is_stored_once():
    base = {"base": 1000}
    summary = usage_summary(facts(
        team_a=[image("1", "sha256:a1", {**base, "a": 10, "ca": 1}), image("latest", "sha256:a1", {**base, "a": 10, "ca": 1})],
        team_b=[image("1", "sha256:b1", {**base, "b": 20, "cb": 2}), image("2", "sha256:b2", {**base, "b2": 40, "cb2": 2})],
        team_c=[image("1", "sha256:c1", {**base, "c": 30, "cc": 3})],
    ), now=NOW)
    repos = by_name(summary)
    assert repos["team/a"] == {"repository": "team/a", "tags": 2, "images": 1, "blobs": 3, "bytes": 1011,
                               "shared_bytes": 1000}
    assert repos["team/b"]["bytes"] == 1000 + 20 + 2 + 40 + 2 and repos["team/b"]["shared_bytes"] == 1000
    assert repos["team/b"]["images"] == 2 and repos["team/c"]["bytes"] == 1033
    # every blob once: the base layer is not counted three times
    assert summary["total_bytes"] == 1000 + 11 + 64 + 33 and summary["blobs"] == 9
    assert summary["tags"] == 5 and summary["images"] == 4
    assert [r["repository"] for r in summary["repositories"]] == ["team/b", "team/c", "team/a"]  # largest first


def test_a_blob_shared_inside_one_repository_is_not_shared_bytes():
    summary = usage_summary(facts(solo=[image("1", "sha256:1", {"base": 500, "x": 1}),
                                        image("2", "sha256:2", {"base": 500, "y": 2})]), now=NOW)
    assert summary["repositories"][0]["bytes"] == 503 and summary["repositories"][0]["shared_bytes"] == 0


def test_an_index_counts_the_blobs_of_every_child_once():
    amd, arm = {blob("l1"): 100, blob("common"): 7}, {blob("l2"): 200, blob("common"): 7}
    summary = usage_summary({"repositories": [{"repository": "multi", "images": [
        {"tag": "v1", "digest": "sha256:i", "created": None, "blobs": {**amd, **arm}, "manifests": [
            {"digest": "sha256:amd"}, {"digest": "sha256:arm"}]},
        {"tag": "amd", "digest": "sha256:amd", "created": None, "blobs": amd}]}]}, now=NOW)
    assert summary["total_bytes"] == 307 and summary["images"] == 2
    assert summary["largest_images"][0]["digest"] == "sha256:i" and summary["largest_images"][0]["size"] == 307
    assert summary["age"]["undated"] == {"tags": 2, "images": 2}


def test_a_prune_frees_only_the_blobs_no_kept_image_references():
    shared = {"base": 1000}
    summary = usage_summary(facts(
        app=[image("old", "sha256:old", {**shared, "old": 50, "c-old": 1}, created="2024-01-01T00:00:00Z"),
             image("mid", "sha256:mid", {**shared, "mid": 60, "c-mid": 1}, created="2024-02-01T00:00:00Z"),
             image("new", "sha256:new", {**shared, "new": 70, "c-new": 1}, created="2024-03-01T00:00:00Z"),
             # a tag kept on the old image's layer, in another image of this repository
             image("rebuilt", "sha256:reb", {"old": 50, "c-reb": 2}, created="2024-03-02T00:00:00Z")],
        other=[image("1", "sha256:o1", {"mid": 60, "c-o": 3}, created="2023-01-01T00:00:00Z")],
    ), policy={"keep_latest": 2, "match_tags": ["^(old|mid|new|rebuilt)$"]}, now=NOW)
    prune = summary["prune"]
    # old and mid go by digest; their layers stay (rebuilt and other/1 reference them), their configs go
    assert prune["tags_deleted"] == 2 and prune["digests_deleted"] == 2
    assert prune["frees_bytes"] == 2 and prune["frees_blobs"] == 2
    assert prune["keeps_bytes"] == summary["total_bytes"] - 2
    assert {r["repository"]: r["frees_bytes"] for r in prune["repositories"]} == {"app": 2, "other": 0}
    assert "garbage collection" in prune["note"]


def test_a_prune_of_an_index_frees_its_children_blobs_unless_a_kept_index_shares_them():
    amd, arm, arm2 = {blob("amd"): 100}, {blob("arm"): 200}, {blob("arm2"): 300}
    old = index("old", "sha256:iold", [("sha256:amd", amd), ("sha256:arm", arm)], created="2024-01-01T00:00:00Z")
    new = index("new", "sha256:inew", [("sha256:amd", amd), ("sha256:arm2", arm2)], created="2024-05-01T00:00:00Z")
    summary = usage_summary({"repositories": [{"repository": "multi", "images": [old, new]}]},
                            policy={"keep_latest": 1}, now=NOW)
    assert summary["total_bytes"] == 600
    assert summary["prune"]["frees_bytes"] == 200  # the arm layer: amd stays with the kept index


def test_tag_only_deletes_free_nothing():
    summary = usage_summary(facts(app=[image("a", "sha256:1", {"x": 10}, created="2024-01-01T00:00:00Z"),
                                       image("b", "sha256:1", {"x": 10}, created="2024-01-01T00:00:00Z")]),
                            policy={"keep_tags": ["^a$"], "match_tags": ["."]}, now=NOW)
    assert summary["prune"]["tags_deleted"] == 1 and summary["prune"]["digests_deleted"] == 0
    assert summary["prune"]["frees_bytes"] == 0


def test_no_deciding_term_means_no_prune():
    for policy in (None, {}, {"keep_latest": None, "keep_tags": [], "order": "created"}):
        assert usage_summary(facts(app=[image("a", "sha256:1", {"x": 1})]), policy=policy, now=NOW)["prune"] is None


def test_ages_by_month_with_the_empty_months_and_the_stale_tags():
    summary = usage_summary(facts(app=[
        image("a", "sha256:1", {"x": 1}, created="2023-11-15T00:00:00Z"),
        image("b", "sha256:1", {"x": 1}, created="2023-11-15T00:00:00Z"),
        image("c", "sha256:2", {"y": 1}, created="2024-02-01T00:00:00Z"),
        image("d", "sha256:3", {"z": 1}, created="1970-01-01T00:00:00Z")]), now=NOW, stale_after="365d", top=1)
    age = summary["age"]
    assert age["unit"] == "month"
    assert [(p["period"], p["tags"], p["images"]) for p in age["periods"]] == [
        ("2023-11", 2, 1), ("2023-12", 0, 0), ("2024-01", 0, 0), ("2024-02", 1, 1)]
    assert age["undated"] == {"tags": 1, "images": 1}  # 1970: a reproducible build, not a date
    stale = summary["stale_tags"]
    assert stale["count"] == 2 and stale["repositories"] == [{"repository": "app", "tags": 2}]
    assert [t["tag"] for t in stale["oldest"]] == ["a"]  # top=1
    assert [i["digest"] for i in summary["oldest_images"]] == ["sha256:1"]


def test_a_long_span_is_counted_by_year():
    summary = usage_summary(facts(app=[image("a", "sha256:1", {"x": 1}, created="2015-03-01T00:00:00Z"),
                                       image("b", "sha256:2", {"y": 1}, created="2024-02-01T00:00:00Z")]), now=NOW)
    assert summary["age"]["unit"] == "year" and len(summary["age"]["periods"]) == 10


def test_the_largest_images_name_every_repository_holding_them():
    big = {"big": 10_000}
    summary = usage_summary(facts(a=[image("1", "sha256:big", big, labels={"org.opencontainers.image.title": "Big"})],
                                  b=[image("x", "sha256:big", big), image("y", "sha256:big", big)],
                                  c=[image("1", "sha256:small", {"s": 1})]), now=NOW, top=1)
    [largest] = summary["largest_images"]
    assert largest["size"] == 10_000 and largest["tags"] == 3 and largest["source"] == "Big"
    assert largest["repositories"] == [{"repository": "a", "tags": ["1"]}, {"repository": "b", "tags": ["x", "y"]}]


def test_facts_without_blobs_are_refused():
    with pytest.raises(InvalidInput, match="blobs: true"):
        usage_summary({"repositories": [{"repository": "a", "images": [{"tag": "1", "digest": "sha256:1"}]}]})
    with pytest.raises(InvalidInput, match="top"):
        usage_summary(facts(a=[]), top=0)
