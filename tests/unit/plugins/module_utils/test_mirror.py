"""registry_sync's pure selection and plan (module_utils/mirror.py) and semver ranges (semver_range.py)."""

from __future__ import annotations

import pytest

from ansible_collections.regops.registry.plugins.module_utils.errors import InvalidInput
from ansible_collections.regops.registry.plugins.module_utils.mirror import (
    attach_referrers,
    check_distinct,
    compile_selection,
    filter_names,
    keep_written_referrers,
    mirrored_digests,
    plan_entry,
    rank_latest,
    spare_other_entries,
    walk_referrers,
)
from ansible_collections.regops.registry.plugins.module_utils.semver_range import parse_range

TAGS = ["latest", "v1.0.0", "1.2", "1.2.3", "1.5.0-rc.1", "1.9.9", "2.0.0", "2.0.0-beta", "build-17", "main"]


@pytest.mark.parametrize("text, selected", [
    (">=1.2 <2", ["1.2", "1.2.3", "1.9.9"]),
    (">=v1.2.1 <=2", ["1.2.3", "1.9.9", "2.0.0"]),
    ("1.2.3", ["1.2.3"]),
    ("=1.2", ["1.2"]),
    (">1.9.9", ["2.0.0"]),
    ("<1.2 || >=2", ["v1.0.0", "2.0.0"]),
    (">=1.5.0-rc.0 <2", ["1.5.0-rc.1", "1.9.9"]),  # a pre-release only of the version the range names
    (">=2.0.0-alpha", ["2.0.0", "2.0.0-beta"]),
])
def test_semver_ranges_select_versions_and_prereleases_only_when_named(text, selected):
    assert [t for t in TAGS if parse_range(text).matches(t)] == selected


@pytest.mark.parametrize("text", ["", "  ", ">=1.2 <banana", "~1.2", "1.2.x", ">= 1.2", "||", ">=1 ||"])
def test_a_range_that_does_not_parse_is_a_sentence(text):
    with pytest.raises(InvalidInput, match="semver"):
        parse_range(text)


def selection(**entry):
    return compile_selection(entry, 0)


def test_name_filters_give_every_left_out_tag_its_reason():
    kept, excluded = filter_names(selection(tags=["^v?1\\.", "^2"], exclude=["-rc"], semver="<2"), TAGS)
    assert kept == ["v1.0.0", "1.2", "1.2.3", "1.9.9"]
    assert excluded == {"latest": "matches none of tags", "main": "matches none of tags",
                        "build-17": "matches none of tags", "1.5.0-rc.1": "matches exclude '-rc'",
                        "2.0.0": "outside semver range '<2'", "2.0.0-beta": "outside semver range '<2'"}
    _kept, excluded = filter_names(selection(semver=">=1"), ["main"])
    assert excluded == {"main": "not a semver version"}


def test_latest_ranks_by_version_when_there_are_versions_else_by_created():
    kept, excluded = rank_latest(selection(latest=2), ["latest", "1.2.3", "1.10.0", "1.9.9"])
    assert kept == ["1.10.0", "1.9.9"]
    assert excluded == {"latest": "not a semver version (latest ranks versions)",
                        "1.2.3": "not among the 2 highest semver versions"}
    created = {"a": "2024-01-03T00:00:00Z", "b": "2024-01-01T00:00:00Z", "c": "2024-01-02T00:00:00Z"}
    kept, excluded = rank_latest(selection(latest=2), ["a", "b", "c"], created)
    assert kept == ["a", "c"] and excluded == {"b": "not among the 2 newest images by created"}
    assert rank_latest(selection(), ["a", "b"]) == (["a", "b"], {})


@pytest.mark.parametrize("entry, message", [
    ({"tags": ["("]}, "images\\[0\\].tags: '\\(' is not a valid regular expression"),
    ({"exclude": ["[a-"]}, "images\\[0\\].exclude"),
    ({"semver": ">=1 <two"}, "images\\[0\\].semver: '>=1 <two' is not a semver range"),
    ({"latest": 0}, "images\\[0\\].latest must be at least 1, not 0"),
])
def test_bad_input_is_refused_with_a_sentence(entry, message):
    with pytest.raises(InvalidInput, match=message):
        compile_selection(entry, 0)


def test_same_repository_on_both_sides_is_refused():
    with pytest.raises(InvalidInput, match="the source and the destination are the same repository"):
        check_distinct(("r.example", "team/app"), ("r.example", "team/app"))
    check_distinct(("r.example", "team/app"), ("r.example", "mirror/app"))
    check_distinct(("a.example", "team/app"), ("b.example", "team/app"))


SOURCE = {"1.0": "sha256:a", "1.1": "sha256:b", "1.2": "sha256:c"}


def test_plan_copies_what_is_missing_or_moved_and_keeps_the_rest():
    destination = {"1.0": "sha256:a", "1.1": "sha256:old", "0.9": "sha256:z", "dev": "sha256:d"}
    plan = plan_entry(SOURCE, {"main": "matches none of tags"}, {**SOURCE, "main": None}, destination,
                      selection(tags=["^\\d"]), overwrite=True, delete_extra=True, source_tags={*SOURCE, "main"})
    assert [(i["tag"], i["digest"], i["previous_digest"]) for i in plan["copied"]] == [
        ("1.1", "sha256:b", "sha256:old"), ("1.2", "sha256:c", None)]
    assert [(i["tag"], i["reason"]) for i in plan["unchanged"]] == [("1.0", "the destination has the source digest")]
    # 0.9 is gone upstream and the filters select it; dev is not selected by the filters: kept
    assert [(i["tag"], i["digest"]) for i in plan["deleted"]] == [("0.9", "sha256:z")]
    assert plan["excluded"] == [{"tag": "main", "digest": None, "reason": "matches none of tags"}]
    assert "skipped" not in plan


def test_without_overwrite_a_moved_tag_is_left_and_without_delete_extra_nothing_is_deleted():
    plan = plan_entry(SOURCE, {}, SOURCE, {"1.1": "sha256:old", "0.9": "sha256:z"}, selection(),
                      overwrite=False, delete_extra=False, source_tags=set(SOURCE))
    assert [i["tag"] for i in plan["copied"]] == ["1.0", "1.2"] and plan["deleted"] == []
    assert plan["unchanged"] == [{"tag": "1.1", "digest": "sha256:old", "source_digest": "sha256:b",
                                  "reason": "the destination tag points elsewhere and overwrite is false"}]


def test_tags_another_entry_writes_to_the_same_target_are_not_extras():
    first = plan_entry({"1.0": "sha256:a"}, {}, {}, {"1.0": "sha256:a", "2.0": "sha256:b"}, selection(),
                       overwrite=True, delete_extra=True, source_tags={"1.0"})
    second = plan_entry({"2.0": "sha256:b"}, {}, {}, {"1.0": "sha256:a", "2.0": "sha256:b"}, selection(),
                        overwrite=True, delete_extra=True, source_tags={"2.0"})
    assert [i["tag"] for i in first["deleted"]] == ["2.0"]
    spare_other_entries([first, second], ["m/app", "m/app"])
    assert first["deleted"] == [] and second["deleted"] == []


def test_copies_the_rate_limit_cannot_pay_are_refused_before_any_get_or_write():
    """The source announces 3 pulls left, 2 are kept in reserve (min_ratelimit_remaining), 2 tags need copying:
    refused after the HEADs, before the first manifest GET, and nothing is written to the destination."""
    from ansible_collections.regops.registry.plugins.module_utils.errors import RegistryError
    from ansible_collections.regops.registry.plugins.module_utils.facts import resolve_tags
    from ansible_collections.regops.registry.plugins.modules.registry_sync import apply
    from tests.unit.plugins.module_utils.fake_registry import MemoryRegistry, make_client
    from tests.unit.plugins.module_utils.test_registry_differences import HubCounter, three_images

    upstream = MemoryRegistry()
    three_images(upstream)
    upstream.add_blob("library/app", b"{}")  # their (empty) config
    hub = HubCounter(upstream, remaining=3)
    source, sent_up = make_client(hub.route, registry="https://registry-1.docker.io")
    destination, sent_down = make_client(MemoryRegistry().route, registry="https://mirror.test")
    digests = resolve_tags(source, "library/app", ["t0", "t1"])
    plan = plan_entry(digests, {}, digests, {}, selection(), overwrite=True, delete_extra=False,
                      source_tags=set(digests))
    entry = {"repository": "library/app", "target": "library/app"}
    with pytest.raises(RegistryError, match="2 manifest pulls are needed, 3 of 100 per 21600 s remain, 2 of them kept"):
        apply(destination, source, [entry], [plan], workers=2, reserve=2)
    assert [s.method for s in sent_up.sent if "/manifests/" in s.url] == ["HEAD", "HEAD"] and hub.remaining == 3
    assert sent_down.sent == []
    apply(destination, source, [entry], [plan], workers=2, reserve=1)  # within the limit: copied
    assert hub.remaining == 1 and resolve_tags(destination, "library/app", ["t0", "t1"]) == digests


def test_tags_on_one_digest_are_read_once_and_written_one_after_another():
    """Three tags, two on one digest: two manifest GETs (one per digest, so one pull each on Docker Hub), and the
    two writes of the shared manifest never overlap (they race in the CNCF registry's storage)."""
    import threading

    from ansible_collections.regops.registry.plugins.module_utils.facts import resolve_tags
    from ansible_collections.regops.registry.plugins.module_utils.reference import OCI_MANIFEST
    from ansible_collections.regops.registry.plugins.modules.registry_sync import apply
    from tests.unit.plugins.module_utils.fake_registry import MemoryRegistry, make_client
    from tests.unit.plugins.module_utils.test_registry_differences import HubCounter, three_images

    upstream, mirror = MemoryRegistry(), MemoryRegistry()
    first = three_images(upstream)[0]
    shared_raw = upstream.manifests["library/app"][first][0]
    upstream.add_manifest("library/app", "latest", shared_raw, OCI_MANIFEST)
    upstream.add_blob("library/app", b"{}")
    hub = HubCounter(upstream, remaining=10)
    source, _sent_up = make_client(hub.route, registry="https://registry-1.docker.io")
    writing, overlaps = threading.Lock(), []

    def one_write_of_a_manifest_at_a_time(sent):
        if sent.method == "PUT" and "/manifests/" in sent.url and sent.body == shared_raw:
            if not writing.acquire(blocking=False):
                overlaps.append(sent.url)
                return mirror.route(sent)
            threading.Event().wait(0.2)
            writing.release()
        return mirror.route(sent)

    destination, sent_down = make_client(one_write_of_a_manifest_at_a_time, registry="https://mirror.test")
    tags = ["t0", "latest", "t1"]
    digests = resolve_tags(source, "library/app", tags)
    plan = plan_entry(digests, {}, digests, {}, selection(), overwrite=True, delete_extra=False,
                      source_tags=set(digests))
    apply(destination, source, [{"repository": "library/app", "target": "library/app"}], [plan], workers=4, reserve=0)
    assert hub.remaining == 10 - 2 and overlaps == []
    assert resolve_tags(destination, "library/app", tags) == digests and digests["t0"] == digests["latest"] == first
    assert len([s for s in sent_down.sent if s.method == "PUT" and "/manifests/" in s.url]) == 3
    # the second tag of the shared digest writes only its tag: its (one) blob is looked for once per digest
    assert len([s for s in sent_down.sent if s.method == "HEAD" and "/blobs/" in s.url]) == 2


# --- referrers: true -----------------------------------------------------------------------------------------------

def descriptor(digest: str, artifact_type: str = "application/example") -> dict:
    return {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": digest, "size": 1,
            "artifactType": artifact_type}


def lister(graph: dict, asked: list | None = None):
    def listing(digest: str) -> list[dict]:
        if asked is not None:
            asked.append(digest)
        return [descriptor(d) for d in graph.get(digest, [])]
    return listing


def test_referrers_of_referrers_come_after_their_subject():
    graph = {"img": ["sig", "sbom"], "sbom": ["sbom-sig"], "sbom-sig": ["counter"], "other": ["other-sig"]}
    found = walk_referrers(["img", "other", "img"], lister(graph))
    assert [(d["digest"], d["subject"]) for d in found["img"]] == [
        ("sig", "img"), ("sbom", "img"), ("sbom-sig", "sbom"), ("counter", "sbom-sig")]
    assert [d["digest"] for d in found["other"]] == ["other-sig"]
    assert found["img"][0]["artifactType"] == "application/example"


def test_a_fallback_index_that_lists_its_subject_an_ancestor_or_another_root_neither_loops_nor_copies_twice():
    asked: list = []
    graph = {"img": ["sig", "img"], "sig": ["img", "sig", "countersig"], "countersig": ["sig"],
             "other": ["sig", "other-sig"]}
    found = walk_referrers(["img", "other"], lister(graph, asked))
    assert [d["digest"] for d in found["img"]] == ["sig", "countersig"]
    assert [d["digest"] for d in found["other"]] == ["other-sig"]  # sig is img's, listed once in all
    assert sorted(asked) == sorted(["img", "other", "sig", "other-sig", "countersig"])  # each digest asked once


def test_mirrored_items_list_the_referrers_of_their_digest_and_others_none():
    plan = plan_entry({"1.0": "d1", "stable": "d1", "2.0": "d2"}, {}, {}, {"stable": "d1", "2.0": "elsewhere"},
                      compile_selection({}, 0), overwrite=False, delete_extra=False, source_tags=set())
    assert mirrored_digests(plan) == ["d1"]  # 2.0 keeps another digest (overwrite: false): nothing of d1/d2 mirrored
    sig = {**descriptor("s1", "application/vnd.dev.cosign.artifact.sig.v1+json"), "subject": "d1"}
    attach_referrers(plan, {"d1": [sig], "d2": [{**descriptor("s2"), "subject": "d2"}]})
    items = {i["tag"]: i for key in ("copied", "unchanged") for i in plan[key]}
    expected = [{"digest": "s1", "media_type": sig["mediaType"],
                 "artifact_type": "application/vnd.dev.cosign.artifact.sig.v1+json", "subject": "d1"}]
    assert items["1.0"]["referrers"] == items["stable"]["referrers"] == expected
    assert items["2.0"]["referrers"] == []
    keep_written_referrers(plan, set())
    assert all(i["referrers"] == [] for i in items.values())


def test_with_referrers_fallback_tags_are_neither_copied_nor_deleted_as_tags():
    fallback = "sha256-" + "ab" * 32
    tags = ["1.0", fallback, fallback + ".sig"]  # a legacy cosign tag is a tag like any other
    plain, with_referrers = compile_selection({}, 0), compile_selection({}, 0, referrers=True)
    assert filter_names(plain, tags) == (tags, {})
    kept, excluded = filter_names(with_referrers, tags)
    assert kept == ["1.0", fallback + ".sig"] and excluded[fallback].startswith("a referrers fallback tag")
    destination = {"1.0": "d1", fallback: "idx", "sha512-" + "cd" * 32: "idx2", "old": "d0"}
    plan = plan_entry({"1.0": "d1"}, {}, {}, destination, with_referrers, overwrite=True, delete_extra=True,
                      source_tags={"1.0"})
    assert [i["tag"] for i in plan["deleted"]] == ["old"]
