"""Deletes and prune through every personality (tests/lab/personalities.py): real ``ansible-playbook`` runs of
``registry_delete`` (a safe tag delete, a digest delete), two referrers of one image written with
``registry_manifest`` and read back with ``registry_tags``, and the prune role (over its limit, check mode, for real),
one run per personality (``delete_run``, playbooks/personality_deletes.yml). Each personality gets its own
repositories, seeded in the upstream, so nothing here touches ``personas_images`` or another test's repositories.
What is left is read from the upstream's storage (``tag_links``) and the upstream's V2 API, and what was sent from
the personality's record of requests (``seen``), never from the collection."""

from __future__ import annotations

import json
from dataclasses import dataclass

import pytest

from tests.integration.runner import run_playbook
from tests.lab import seed

# How each service is driven: the delete API the module must use, where it is, and its credential. Harbor is found by
# the systeminfo probe (delete_api auto); GitLab, ECR and GCR are plain V2 (auto: the probe answers 404).
API_OPTIONS = {
    "dockerhub": lambda p: {"delete_api": "dockerhub", "delete_api_url": p.url},
    "ghcr": lambda p: {"delete_api": "ghcr", "delete_api_url": p.url, "api_token": p.api_token},
    "quay": lambda p: {"delete_api": "quay", "api_token": p.api_token},
    "harbor": lambda p: {},
    "gitlab": lambda p: {},
    "ecr": lambda p: {},
    "gcr": lambda p: {},
    "acr": lambda p: {"delete_api": "acr"},
    "nexus": lambda p: {},
    "artifactory": lambda p: {},
}
# The API that deletes one tag of a shared digest (GHCR: none, refused) and how (deleted[].method).
TAG_DELETE = {"dockerhub": ("dockerhub", "api"), "ghcr": None, "quay": ("v2", "native"),
              "harbor": ("harbor", "api"), "gitlab": ("v2", "native"), "ecr": ("v2", "throwaway"),
              "gcr": ("v2", "native"), "acr": ("acr", "api"),
              "nexus": ("v2", "throwaway"), "artifactory": ("v2", "throwaway")}
# The API that deletes a digest and how: Docker Hub by its tags, GHCR its version, the others V2.
DIGEST_DELETE = {"dockerhub": ("dockerhub", "tags"), "ghcr": ("ghcr", "version")}
# Where the services' own delete APIs live (paths on the api host); an api_token may go there and nowhere else.
API_PATHS = {"dockerhub": ("/v2/auth/token", "/v2/repositories/"), "ghcr": ("/orgs/", "/users/"),
             "quay": ("/api/v1/",), "harbor": ("/api/v2.0/",), "acr": ("/acr/v1/",)}
WRITES = ("PUT", "PATCH", "DELETE")
TOKEN_PATHS = ("/v2/auth/token", "/oauth2/token", "/oauth2/exchange")
# How each service lists referrers (docs/registries.md): its own referrers API, the client's sha256-<hex> fallback
# tag, or neither (GitLab: no API, and the fallback tag resolves to the subject itself).
REFERRERS = {"dockerhub": "fallback", "ghcr": "fallback", "gitlab": "gitlab", "quay": "api", "harbor": "api",
             "ecr": "api", "gcr": "api", "acr": "api", "nexus": "fallback", "artifactory": "api"}
EMPTY = b"{}"  # the OCI empty descriptor's content
EMPTY_MEDIA_TYPE = "application/vnd.oci.empty.v1+json"


@dataclass
class Seeded:
    repos: dict
    shared: dict  # tagdel: one image tagged gone and stays
    doomed: dict  # digestdel: the image tagged b1 and b2, to delete
    other: dict  # digestdel: the image tagged c, which stays
    kept_index: dict  # digestdel: an index tagged j, which stays (GHCR: its child is asked for too)
    keep: dict  # prune: tagged keep and old-x
    old: dict  # prune: tagged old-y
    keep_multi: dict  # prune: an index tagged keep-multi
    old_multi: dict  # prune: an index tagged old-multi
    referrers: list  # prune: a signature and an SBOM (tag, content, digest) whose subject is old-y, for the playbook


def referrer(tag: str, artifact_type: str, subject: dict) -> dict:
    """An OCI 1.1 artifact manifest referring to ``subject``; its digest is that of the compact serialisation
    registry_manifest writes a dict as."""
    empty = {"mediaType": EMPTY_MEDIA_TYPE, "digest": seed.sha256(EMPTY), "size": len(EMPTY)}
    content = {"schemaVersion": 2, "mediaType": seed.OCI_MANIFEST, "artifactType": artifact_type, "config": empty,
               "layers": [empty], "annotations": {"org.example.kind": tag},
               "subject": {"mediaType": subject["media_type"], "digest": subject["digest"],
                           "size": len(subject["raw"])}}
    raw = json.dumps(content, separators=(",", ":")).encode()
    return {"tag": tag, "content": content, "digest": seed.sha256(raw)}


def seed_for(upstream, service: str) -> Seeded:
    session = seed.LabSession(upstream)
    repos = {kind: f"del-{service}/{kind}" for kind in ("tagdel", "digestdel", "prune")}
    shared = seed.push_image(session, repos["tagdel"], "gone", layer_sizes=(200,), seed=2101)
    seed.tag_manifest(session, repos["tagdel"], "stays", shared["raw"], shared["media_type"])
    doomed = seed.push_image(session, repos["digestdel"], "b1", layer_sizes=(200,), seed=2201)
    seed.tag_manifest(session, repos["digestdel"], "b2", doomed["raw"], doomed["media_type"])
    other = seed.push_image(session, repos["digestdel"], "c", layer_sizes=(200,), seed=2202)
    kept_index = seed.push_index(session, repos["digestdel"], "j", seed=2203)
    keep = seed.push_image(session, repos["prune"], "keep", layer_sizes=(200,), seed=2301)
    seed.tag_manifest(session, repos["prune"], "old-x", keep["raw"], keep["media_type"])
    old = seed.push_image(session, repos["prune"], "old-y", layer_sizes=(200,), seed=2302)
    keep_multi = seed.push_index(session, repos["prune"], "keep-multi", seed=2303)
    old_multi = seed.push_index(session, repos["prune"], "old-multi", seed=2304)
    seed.push_blob(session, repos["prune"], EMPTY)
    referrers = [referrer("sig-y", "application/vnd.dev.cosign.artifact.sig.v1+json", old),
                 referrer("sbom-y", "application/spdx+json", old)]
    return Seeded(repos, shared, doomed, other, kept_index, keep, old, keep_multi, old_multi, referrers)


def steps(seen: list) -> dict[str, list]:
    """The personality's requests split at the playbook's marks (GET /mark-<step>)."""
    split: dict[str, list] = {}
    current = None
    for request in seen:
        if request.path.startswith("/mark-"):
            current = request.path[len("/mark-"):]
            split[current] = []
        elif current is not None:
            split[current].append(request)
    return split


def writes(requests_seen: list) -> list:
    return [(s.method, s.path) for s in requests_seen
            if s.method in WRITES or (s.method == "POST" and not s.path.startswith(TOKEN_PATHS))]


@pytest.fixture(scope="session")
def delete_run(personality, personas_upstream):
    service = personality.service
    seeded = seed_for(personas_upstream, service)
    digests = [seeded.doomed["digest"]]
    if service == "ghcr":  # the child of a kept index: its untagged version must stay
        digests.append(seeded.kept_index["children"][0]["digest"])
    mark = len(personality.seen)
    run = run_playbook("personality_deletes.yml", {
        "conn": personality.conn(), "api": API_OPTIONS[service](personality), "repos": seeded.repos,
        "referrers": [{"tag": r["tag"], "content": r["content"]} for r in seeded.referrers],
        "upstream_url": personas_upstream.url, "fallback_tag": fallback_tag(seeded.old["digest"]),
        "digests": digests, "mark_url": personality.origin("api"), "anonymous": service == "dockerhub"})
    run.seeded = seeded
    run.steps = steps(personality.seen[mark:])
    return run


def succeeded(delete_run, step: str) -> dict:
    result = delete_run.results[step]
    assert not result.get("failed"), (result, delete_run.output[-3000:])
    return result


def entries(result: dict, kind: str) -> list[dict]:
    return [e for e in result.get("deleted", []) if e["type"] == kind]


def test_safe_tag_delete_keeps_the_sibling_and_the_digest(personality, delete_run):
    service, seeded = personality.service, delete_run.seeded
    result = succeeded(delete_run, "tagdel")
    repo, digest = seeded.repos["tagdel"], seeded.shared["digest"]
    assert seed.head_manifest(seed.LabSession(personality.upstream), repo, digest) == digest
    if TAG_DELETE[service] is None:  # GHCR: the version carries a tag that stays
        assert personality.tag_links(repo) == {"gone": digest, "stays": digest}
        (refused,) = result["refused"]
        assert refused["name"] == "gone" and refused["staying_tags"] == ["stays"]
        assert "GHCR deletes a whole version" in refused["reason"]
        assert not result["changed"] and not writes(delete_run.steps["tagdel"])
        return
    assert personality.tag_links(repo) == {"stays": digest}
    (entry,) = entries(result, "tag")
    assert (entry["api"], entry["method"]) == TAG_DELETE[service]
    assert entry["shared_tags"] == ["stays"] and not result["refused"]


def test_digest_delete_removes_it_with_its_tags(personality, delete_run):
    service, seeded = personality.service, delete_run.seeded
    result = succeeded(delete_run, "digestdel")
    repo, doomed = seeded.repos["digestdel"], seeded.doomed["digest"]
    upstream = seed.LabSession(personality.upstream)
    assert personality.tag_links(repo) == {"c": seeded.other["digest"], "j": seeded.kept_index["digest"]}
    (entry,) = entries(result, "digest")
    assert entry["name"] == doomed and sorted(entry["removed_tags"]) == ["b1", "b2"]
    assert (entry["api"], entry["method"]) == DIGEST_DELETE.get(service, ("v2", "digest"))
    # Docker Hub has no digest delete: the manifest stays, untagged. Everywhere else it is gone.
    assert (seed.head_manifest(upstream, repo, doomed) is None) == (service != "dockerhub")
    for child in seeded.kept_index["children"]:
        assert seed.head_manifest(upstream, repo, child["digest"]) == child["digest"]
    if service == "ghcr":
        child = seeded.kept_index["children"][0]["digest"]
        (refused,) = result["refused"]
        assert refused["name"] == child and "part of the kept index" in refused["reason"]
    else:
        assert not result["refused"]
    if service == "gcr":  # GOOGLE_MANIFEST_DANGLING_TAG: the tags went first, then the digest
        deletes = [s.path for s in delete_run.steps["digestdel"] if s.method == "DELETE" and s.status in (200, 202)]
        assert deletes[-1].endswith(f"/manifests/{doomed}")
        assert sorted(p.rsplit("/", 1)[1] for p in deletes[:-1]) == ["b1", "b2"]


def prune_expected(service: str, seeded: Seeded) -> dict:
    kept = {"keep": seeded.keep["digest"], "keep-multi": seeded.keep_multi["digest"]}
    if service == "ghcr":  # old-x shares its version with keep: GHCR cannot delete it alone
        kept["old-x"] = seeded.keep["digest"]
        kept["sig-y"] = ghcr_stale_referrer(seeded)
    return kept


def ghcr_stale_referrer(seeded: Seeded) -> str:
    """GHCR: the first referrer stays. The first version of the fallback index (which listed only it) is an untagged
    version once the second referrer rewrote the tag; the client counts it as a kept index and will not delete its
    child (a limitation of the client, reported, not a service behaviour)."""
    return seeded.referrers[0]["digest"]


def test_prune_over_its_limit_stops_before_the_first_delete(personality, delete_run):
    result = delete_run.results["prune_max"]
    assert result.get("failed") and "more than prune_max_deletions" in result["msg"], result
    assert not writes(delete_run.steps["prune-max"])


def test_prune_check_mode_sends_no_write(personality, delete_run):
    result = succeeded(delete_run, "prune_check")
    # The plan deletes old-x, old-y, old-multi and what refers to old-y: its two referrers' tags and, where the client
    # wrote one, its sha256-<hex> fallback tag. The role read the repository, and nothing was written.
    fallback_tags = 1 if REFERRERS[personality.service] == "fallback" else 0
    assert result["summary"]["kept"] == 2 and result["summary"]["deleted"] == 3 + 2 + fallback_tags
    assert [s for s in delete_run.steps["prune-check"] if s.method == "GET" and "/tags/list" in s.path]
    assert not writes(delete_run.steps["prune-check"])


def test_prune_leaves_exactly_the_kept_set(personality, delete_run):
    service, seeded = personality.service, delete_run.seeded
    result = succeeded(delete_run, "prune_real")
    repo = seeded.repos["prune"]
    assert personality.tag_links(repo) == prune_expected(service, seeded)
    upstream = seed.LabSession(personality.upstream)
    for child in seeded.keep_multi["children"]:
        assert seed.head_manifest(upstream, repo, child["digest"]) == child["digest"]
    refused = {r["name"]: r for r in result["refused"]}
    if service == "ghcr":
        assert set(refused) == {"old-x", ghcr_stale_referrer(seeded)} and refused["old-x"]["staying_tags"] == ["keep"]
    elif service == "dockerhub":  # untagged children of the deleted index: Hub deletes tags only
        children = {c["digest"] for c in seeded.old_multi["children"]}
        assert children <= set(refused)
        assert all("Docker Hub deletes tags only" in refused[c]["reason"] for c in children)
    else:
        assert not refused
        assert seed.head_manifest(upstream, repo, seeded.old["digest"]) is None
        assert seed.head_manifest(upstream, repo, seeded.old_multi["digest"]) is None


def test_api_token_goes_only_to_the_api(personality, delete_run):
    service = personality.service
    seen = [s for step in delete_run.steps.values() for s in step]
    assert not [s for s in seen if s.server == "storage" and "Authorization" in s.headers]
    if service not in ("ghcr", "quay"):
        return
    carrying = [s for s in seen if personality.api_token in s.headers.get("Authorization", "")]
    # GHCR deletes only through its API; Quay took the OCI tag DELETE (tried first), so its token had no use.
    assert bool(carrying) == (service == "ghcr"), [(s.server, s.path) for s in carrying]
    assert all(s.server == "api" and s.path.startswith(API_PATHS[service]) for s in carrying), \
        [(s.server, s.path) for s in carrying]


def test_dockerhub_without_a_credential_fails_before_any_write(personas, delete_run, personality):
    if personality.service != "dockerhub":
        pytest.skip("Docker Hub only")
    for key in ("anon_check", "anon_real"):
        result = delete_run.results[key]
        assert result.get("failed") and "needs its API" in result["msg"], result
    assert not writes(delete_run.steps["anonymous"])
    assert "stays" in personality.tag_links(delete_run.seeded.repos["tagdel"])


def test_prune_asks_the_referrers_api_once_then_uses_the_tag_fallback(personality, delete_run):
    """Where the service has the referrers API (the personality emulates it) every image's referrers come from it
    (200); where it has none (404) the facts ask once, learn it, and find referrers by their ``sha256-<hex>`` tags."""
    asked = [s.status for s in delete_run.steps["prune-check"] if s.method == "GET" and "/referrers/" in s.path]
    if REFERRERS[personality.service] == "api":
        assert len(asked) > 1 and set(asked) == {200}
    else:
        assert asked == [404]


def fallback_tag(digest: str) -> str:
    return digest.replace(":", "-")


def test_referrer_write_uses_the_api_or_the_fallback_tag(personality, delete_run):
    """A manifest with ``subject`` written with registry_manifest: an API service indexes it (OCI-Subject) and the
    client writes no fallback tag; elsewhere the client lists it in the subject's ``sha256-<hex>`` tag. Checked in the
    personality's record and the upstream's storage."""
    service, seeded = personality.service, delete_run.seeded
    repo, subject = seeded.repos["prune"], seeded.old["digest"]
    expected = [r["digest"] for r in seeded.referrers]
    writes_seen = writes(delete_run.steps["referrers"])
    to_fallback = [path for method, path in writes_seen if method == "PUT" and path.endswith(fallback_tag(subject))]
    results = delete_run.results["referrer_writes"]["results"]
    assert not [r for r in results if r.get("failed")], results
    assert [r["digest"] for r in results] == expected
    if REFERRERS[service] == "gitlab":
        # The fallback tag reads as the subject itself: the referrers are written, the tag is left alone, a warning
        # says why.
        assert not to_fallback
        assert "resolves the referrers fallback tag" in delete_run.output
        return
    if REFERRERS[service] == "api":
        assert not to_fallback
        listed = [d for name, about, d in personality.recorded if (name, about) == (repo, subject)]
        assert [d["digest"] for d in listed] == expected
        assert [d["artifactType"] for d in listed] == [r["content"]["artifactType"] for r in seeded.referrers]
        return
    assert len(to_fallback) == 2  # one read-add-write per referrer
    index = delete_run.results["fallback_index"]  # read from the upstream by the playbook, before the prune
    assert index["status"] == 200 and index["content_type"].startswith(seed.OCI_INDEX)
    assert [d["digest"] for d in json.loads(index["content"])["manifests"]] == expected


def test_registry_tags_reports_the_referrers(personality, delete_run):
    """registry_tags ``referrers: true``: through the API (paged by the personality, so the client follows ``Link``)
    or as the fallback tag; on GitLab neither (RG-08: the fallback tag resolving to the subject is no referrer)."""
    service, seeded = personality.service, delete_run.seeded
    result = succeeded(delete_run, "referrer_facts")
    subject = seeded.old["digest"]
    (old_y,) = [i for i in result["images"] if i["tag"] == "old-y"]
    expected = sorted(r["digest"] for r in seeded.referrers)
    if REFERRERS[service] == "api":
        assert sorted(old_y["referrers"]) == expected
        pages = [s for s in delete_run.steps["referrers"]
                 if s.method == "GET" and f"/referrers/{subject}" in s.path and s.status == 200]
        assert len(pages) >= 2 and any("page=" in s.path for s in pages)
    else:
        assert old_y["referrers"] == []
        assert (fallback_tag(subject) in result["tags"]) == (REFERRERS[service] == "fallback")
    assert {"sig-y", "sbom-y"} <= set(result["tags"])


def test_prune_takes_the_referrers_with_their_image(personality, delete_run):
    service, seeded = personality.service, delete_run.seeded
    succeeded(delete_run, "prune_real")
    repo, subject = seeded.repos["prune"], seeded.old["digest"]
    stale = ghcr_stale_referrer(seeded) if service == "ghcr" else None
    left = {tag for tag, digest in personality.tag_links(repo).items() if digest != stale}
    assert not {"sig-y", "sbom-y", fallback_tag(subject)} & left
    upstream = seed.LabSession(personality.upstream)
    for entry in seeded.referrers:  # Docker Hub deletes tags only: the manifests stay, untagged
        gone = service != "dockerhub" and entry["digest"] != stale
        assert (seed.head_manifest(upstream, repo, entry["digest"]) is None) == gone
    # The personality listed them (test_referrer_write_uses_the_api_or_the_fallback_tag); the deletes dropped them.
    assert personality.referrers_of(repo, subject) == []
