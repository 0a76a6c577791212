"""The retention planner: examples for each policy term, and property-based tests for its invariants."""

from __future__ import annotations

import random
from datetime import timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ansible_collections.regops.registry.plugins.filter.prune import retention_markdown, retention_plan
from ansible_collections.regops.registry.plugins.module_utils.errors import InvalidInput
from ansible_collections.regops.registry.plugins.module_utils.retention import (
    make_policy, parse_duration, plan_retention, plausible_created)

NOW = "2025-06-01T00:00:00Z"


def d(n: int) -> str:
    return "sha256:" + format(n, "064x")


def sig(n: int, suffix: str = "sig") -> str:
    return "sha256-" + format(n, "064x") + (f".{suffix}" if suffix else "")


def img(tag, n, day=None, **extra):
    created = f"2025-05-{day:02d}T00:00:00Z" if isinstance(day, int) else day
    return {"tag": tag, "digest": d(n), "created": created, "size": 100 + n, **extra}


def decisions(plan) -> dict:
    return {e["tag"]: e["decision"] for e in plan["tags"]}


def plan(images, **policy):
    policy.setdefault("now", NOW)
    return plan_retention(images, make_policy(**policy))


# --- examples ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("text,seconds", [("30d", 30 * 86400), ("12h", 43200), ("1w2d", 9 * 86400), ("90m", 5400),
                                          ("45s", 45), ("3600", 3600), (60, 60), (" 2 d ", 172800)])
def test_durations(text, seconds):
    assert parse_duration(text) == timedelta(seconds=seconds)


@pytest.mark.parametrize("bad", ["30 days", "d", "-1d", "1y", "", True, "12h!"])
def test_bad_durations(bad):
    with pytest.raises(InvalidInput, match="older_than"):
        parse_duration(bad)


@pytest.mark.parametrize("policy,message", [
    ({"keep_latest": -1}, "keep_latest must not be negative"),
    ({"keep_latest": "ten"}, "keep_latest must be a whole number"),
    ({"keep_tags": ["("]}, "keep_tags: '\\(' is not a valid regular expression"),
    ({"match_tags": "^b"}, "must be a list"),
    ({"order": "name"}, "order must be one of created, semver"),
    ({"now": "yesterday"}, "not an RFC 3339 date"),
])
def test_bad_policies_are_refused(policy, message):
    with pytest.raises(InvalidInput, match=message):
        make_policy(**policy)


def test_bogus_dates_are_not_plausible():
    assert plausible_created("1970-01-01T00:00:00Z") is None and plausible_created(None) is None
    assert plausible_created("2020-01-01T00:00:00Z") is not None


def test_keep_latest_counts_images_not_tags_and_shared_digests_go_as_tags():
    images = [img("b1", 1, 1), img("b2", 2, 2), img("b3", 3, 3), img("b3-again", 3, 3), img("v1.0.0", 1, 1)]
    result = plan(images, keep_latest=1, keep_tags=[r"^v\d"])
    assert decisions(result) == {"b3": "keep", "b3-again": "keep", "v1.0.0": "keep", "b1": "delete", "b2": "delete"}
    assert result["delete_tags"] == ["b1"]  # its digest stays for v1.0.0
    assert result["delete_digests"] == [d(2)]
    assert "stays for v1.0.0" in next(e for e in result["tags"] if e["tag"] == "b1")["reasons"][-1]


def test_match_tags_and_older_than_limit_the_candidates():
    images = [img("main-1", 1, 1), img("main-2", 2, 30), img("feature-1", 3, 1), img("repro", 4, "1970-01-01T00:00:00Z")]
    result = plan(images, match_tags=["^main-", "^repro$"], older_than="7d")
    assert decisions(result) == {"main-1": "delete", "main-2": "keep", "feature-1": "keep", "repro": "keep"}
    reasons = {e["tag"]: " ".join(e["reasons"]) for e in result["tags"]}
    assert "not matched by match_tags" in reasons["feature-1"] and "within older_than" in reasons["main-2"]
    assert "age unknown" in reasons["repro"]


def test_undated_images_rank_oldest_and_semver_order_ranks_by_version():
    images = [img("1.10.0", 1, "1970-01-01T00:00:00Z"), img("1.9.0", 2, 20), img("1.2.0", 3, 25)]
    assert decisions(plan(images, keep_latest=1))["1.2.0"] == "keep"
    by_version = decisions(plan(images, keep_latest=1, order="semver"))
    assert by_version == {"1.10.0": "keep", "1.9.0": "delete", "1.2.0": "delete"}


def test_group_by_keeps_the_newest_of_every_branch():
    images = [img(f"main-{n}", n, n) for n in range(1, 16)] + [img(f"feat-x-{n}", 100 + n, n) for n in range(1, 6)]
    kept = {t for t, x in decisions(plan(images, keep_latest=3, group_by=r"^(.+)-\d+$")).items() if x == "keep"}
    assert kept == {"main-13", "main-14", "main-15", "feat-x-3", "feat-x-4", "feat-x-5"}
    with pytest.raises(InvalidInput, match="needs a capture group"):
        make_policy(group_by="^main-")


def test_ties_are_broken_by_version_then_name_whatever_the_input_order():
    images = [img(tag, n, 5) for n, tag in enumerate(["a", "c", "b", "v2.0.0", "v10.0.0"], start=1)]
    kept = {t for t, x in decisions(plan(images, keep_latest=2)).items() if x == "keep"}
    assert kept == {"v10.0.0", "v2.0.0"}
    shuffled = list(reversed(images))
    assert plan(shuffled, keep_latest=2)["tags"] == plan(images, keep_latest=2)["tags"]


def test_index_children_follow_the_index():
    index = img("multi", 10, 20, manifests=[{"digest": d(11)}, {"digest": d(12)}], attestations=[d(13)])
    child_tag = img("multi-amd64", 11, 20)
    kept = plan([index, child_tag, img("old", 1, 1)], match_tags=["amd64$", "^old$"])
    # The child's own tag goes, but the child stays: the kept index needs it.
    assert decisions(kept)["multi-amd64"] == "delete" and kept["delete_tags"] == ["multi-amd64"]
    assert d(11) not in kept["delete_digests"]
    gone = plan([index, child_tag], keep_latest=0)
    assert gone["delete_digests"][:2] == [d(10), d(11)] and set(gone["delete_digests"][2:]) == {d(12), d(13)}
    assert {x["digest"] for x in gone["dependents"]} == {d(12), d(13)}  # untagged: deleted with their index


def test_signatures_follow_their_image_and_orphans_are_left_alone():
    images = [img("new", 1, 20), img("old", 2, 1), img(sig(1), 101), img(sig(2), 102), img(sig(2, "att"), 103),
              img(sig(2, ""), 104, manifests=[{"digest": d(105)}]),  # OCI referrers tag schema: an index of referrers
              img(sig(9), 109), img("sbom-of-new", 110, subject=d(1))]
    result = plan(images, keep_latest=1)
    got = decisions(result)
    assert got["new"] == got[sig(1)] == got["sbom-of-new"] == "keep"
    assert got["old"] == got[sig(2)] == got[sig(2, "att")] == got[sig(2, "")] == "delete"
    assert got[sig(9)] == "keep" and "left alone" in next(e for e in result["tags"] if e["tag"] == sig(9))["reasons"][0]
    assert set(result["delete_digests"]) == {d(2), d(102), d(103), d(104), d(105)}
    assert result["delete_digests"][-1] == d(105)  # the untagged referrer last, after what points at it


def test_filter_accepts_a_registered_result_and_reports_markdown():
    registered = {"item": "team/app", "images": [img("b1", 1, 1), img("b2", 2, 2)]}
    result = retention_plan(registered, keep_latest=1, now=NOW)
    assert result["repository"] == "team/app" and result["summary"]["deleted"] == 1
    text = retention_markdown([result], registry="r.example", check_mode=True)
    assert "| team/app | 2 | 1 | 1 |" in text and "check mode, nothing deleted" in text and "garbage-collect" in text
    assert "| b1 | delete (digest) |" in text and "| b2 | keep |" in text


# --- properties -------------------------------------------------------------------------------------------

TAG_NAMES = st.one_of(
    st.builds(lambda n: f"b{n}", st.integers(0, 60)),
    st.builds(lambda a, b, c: f"v{a}.{b}.{c}", st.integers(0, 3), st.integers(0, 3), st.integers(0, 3)),
    st.builds(lambda n: f"main-{n}", st.integers(0, 30)),
    st.sampled_from(["latest", "stable", "release-1", "release-2"]),
)
DATES = st.one_of(st.none(), st.just("1970-01-01T00:00:00Z"),
                  st.builds(lambda day, hour: f"2025-0{1 + day // 28}-{1 + day % 28:02d}T{hour:02d}:00:00Z",
                            st.integers(0, 140), st.sampled_from([0, 12])))


@st.composite
def repositories(draw):
    digests = draw(st.integers(1, 12))
    dates = {n: draw(DATES) for n in range(1, digests + 1)}
    children = {}
    for n in range(1, digests + 1):
        if draw(st.booleans()) and draw(st.booleans()):  # about a quarter are indexes
            pool = [1000 + n * 10 + k for k in range(draw(st.integers(1, 3)))]
            if draw(st.booleans()):
                pool.append(draw(st.integers(1, digests)))  # a child that is tagged on its own too
            children[n] = [c for c in pool if c != n]
    tags = draw(st.lists(TAG_NAMES, min_size=1, max_size=30, unique=True))
    images = []
    for tag in tags:
        n = draw(st.integers(1, digests))
        extra = {"manifests": [{"digest": d(c)} for c in children[n]]} if n in children else {}
        if n % 3 == 0:  # untagged OCI 1.1 referrers (a signature), found through the referrers API
            extra["referrers"] = [d(7000 + n)]
        images.append({"tag": tag, "digest": d(n), "created": dates[n], "size": n, **extra})
    for n in draw(st.lists(st.integers(1, digests + 2), max_size=4, unique=True)):  # +2: orphans
        images.append({"tag": sig(n), "digest": d(5000 + n), "created": None, "size": 1})
    return images


POLICIES = st.fixed_dictionaries({
    "keep_latest": st.one_of(st.none(), st.integers(0, 6)),
    "keep_tags": st.lists(st.sampled_from([r"^v\d+\.\d+\.\d+$", "^release-", "^stable$"]), max_size=2, unique=True),
    "match_tags": st.lists(st.sampled_from(["^b", "^main-", r"^v", "latest"]), max_size=2, unique=True),
    "older_than": st.one_of(st.none(), st.sampled_from(["30d", "12h", "100d"])),
    "order": st.sampled_from(["created", "semver"]),
    "group_by": st.sampled_from([None, r"^(b|main)", r"^(.+)-\d+$"]),
})


def apply(images: list[dict], result: dict) -> tuple[dict, set]:
    """What a registry holds after the plan: tags (tag -> digest) and manifests."""
    tags = {i["tag"]: i["digest"] for i in images}
    manifests = set(tags.values())
    for i in images:
        manifests.update(m["digest"] for m in i.get("manifests") or [])
        manifests.update(i.get("referrers") or [])
    for tag in result["delete_tags"]:
        del tags[tag]
    for digest in result["delete_digests"]:
        manifests.discard(digest)
        tags = {t: x for t, x in tags.items() if x != digest}
    return tags, manifests


SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@SETTINGS
@given(repositories(), POLICIES)
def test_exactly_the_kept_tags_remain_and_everything_they_need_is_there(images, policy):
    result = plan(images, **policy)
    assert sorted(e["tag"] for e in result["tags"]) == sorted(i["tag"] for i in images)  # one decision per tag
    kept = {e["tag"] for e in result["tags"] if e["decision"] == "keep"}
    assert kept == set(result["keep_tags"])
    tags, manifests = apply(images, result)
    assert set(tags) == kept
    by_digest = {i["digest"]: i for i in images}
    for tag in kept:  # every kept tag still pulls: its manifest and every child are there
        digest = tags[tag]
        assert digest in manifests
        for child in by_digest[digest].get("manifests") or []:
            assert child["digest"] in manifests
        assert all(r in manifests for r in by_digest[digest].get("referrers") or [])  # its signatures too
    kept_digests = {tags[t] for t in kept}
    needed, pending = set(), list(kept_digests)
    while pending:  # nothing orphaned: every manifest left is a kept tag's, or belongs to one
        digest = pending.pop()
        if digest not in needed:
            needed.add(digest)
            facts = by_digest.get(digest, {})
            pending += [m["digest"] for m in facts.get("manifests") or []] + list(facts.get("referrers") or [])
            pending += [i["digest"] for i in images if i["tag"] == "sha256-" + digest[7:]]
    assert manifests <= needed | {i["digest"] for i in images if i["tag"] in kept}
    for i in images:  # signatures of kept images stay
        if i["tag"].startswith("sha256-") and "sha256:" + i["tag"][7:71] in kept_digests:
            assert i["tag"] in kept


@SETTINGS
@given(repositories(), POLICIES)
def test_policy_terms_are_honoured(images, policy):
    result = plan(images, **policy)
    entries = {e["tag"]: e for e in result["tags"]}
    for tag, entry in entries.items():
        if any(__import__("re").search(p, tag) for p in policy["keep_tags"]) and not tag.startswith("sha256-"):
            assert entry["decision"] == "keep"
        if policy["match_tags"] and not tag.startswith("sha256-") and \
                not any(__import__("re").search(p, tag) for p in policy["match_tags"]):
            assert entry["decision"] == "keep"
    if policy["keep_latest"] is not None:
        group_of = make_policy(group_by=policy["group_by"]).group_of
        groups: dict = {}
        for e in entries.values():
            if e["rank"] is not None:
                groups.setdefault(group_of(e["tag"]), []).append(e)
        for members in groups.values():  # per group: exactly the N newest images are kept by rank
            ranked_kept = {e["digest"] for e in members if e["rank"] <= policy["keep_latest"]}
            assert len(ranked_kept) == min(policy["keep_latest"], len({e["digest"] for e in members}))
            assert all(e["decision"] == "keep" for e in members if e["digest"] in ranked_kept)


@SETTINGS
@given(repositories(), POLICIES, st.randoms(use_true_random=False))
def test_the_plan_is_deterministic_and_a_second_run_deletes_nothing(images, policy, rnd):
    result = plan(images, **policy)
    shuffled = list(images)
    rnd.shuffle(shuffled)
    assert plan(shuffled, **policy) == result
    tags, manifests = apply(images, result)
    survivors = [i for i in images if i["tag"] in tags]
    again = plan(survivors, **policy)
    assert again["delete_tags"] == [] and again["delete_digests"] == [] and again["summary"]["deleted"] == 0


@SETTINGS
@given(repositories(), POLICIES)
def test_keeping_more_images_never_deletes_more(images, policy):
    if policy["keep_latest"] is None:
        policy["keep_latest"] = 0
    fewer = plan(images, **policy)
    policy["keep_latest"] += 1
    more = plan(images, **policy)
    assert set(fewer["keep_tags"]) <= set(more["keep_tags"])
    assert set(more["delete_digests"]) <= set(fewer["delete_digests"])


def test_a_thousand_tags_plan_quickly_enough_to_not_matter():
    rnd = random.Random(7)
    images = [img(f"b{n}", rnd.randrange(1, 400), 1 + n % 28) for n in range(1000)]
    for i in images:  # one digest, one date
        i["created"] = f"2025-05-{1 + int(i['digest'][-3:], 16) % 28:02d}T00:00:00Z"
    result = plan(images, keep_latest=50)
    assert result["summary"]["tags"] == 1000 and result["summary"]["kept"] + result["summary"]["deleted"] == 1000
