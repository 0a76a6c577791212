"""Facts and promote through every personality (tests/lab/personalities.py): real ``ansible-playbook`` runs of
``registry_tags`` (details), ``registry_manifest`` and the promote role, within the emulated registry and across to
a plain lab. Expected values come from the seeding (known digests, sizes, platforms) and from the upstream registry
itself, never from the collection. One playbook run per personality (``personality_run``)."""

from __future__ import annotations

import base64
import json

import pytest
import requests

from tests.integration.runner import run_module, run_playbook
from tests.lab import seed


@pytest.fixture(scope="session")
def personality_run(personality, personas_target):
    service = personality.service
    source = f"{personality.host}/seed/multi:2.0"
    registries = {personality.host: personality.conn(), personas_target.host: personas_target.conn()}
    mark = len(personality.seen)
    run = run_playbook("personality.yml", {
        "conn": personality.conn(), "promote_registries": registries,
        "within_source": source, "within_targets": [f"{personality.host}/promoted-{service}/multi:2.0"],
        "across_source": source, "across_targets": [f"{personas_target.host}/from-{service}/multi:2.0"],
        "mirror_target": personas_target.url, "service": service, "mark_url": personality.origin("api")})
    run.mark = mark  # what the personality saw from here on is this run's
    return run


def platforms_of(image: dict) -> list[dict]:
    return [{"os": image["config"]["os"], "architecture": image["config"]["architecture"]}]


def test_tags_and_manifest_facts_equal_the_upstream(personality, personality_run):
    results = personality_run.results
    app, multi = personality.images["app"], personality.images["multi"]
    assert not results["tags_app"].get("failed"), results["tags_app"]
    assert sorted(results["tags_app"]["tags"]) == sorted(personality.tag_links("seed/app")) == ["1.0", "latest"]
    for image in results["tags_app"]["images"]:
        assert image["digest"] == app["digest"] and image["size"] == app["size"]
        assert [{k: p[k] for k in ("os", "architecture")} for p in image["platforms"]] == platforms_of(app)
        assert image["created"].startswith("2024-01-02T03:04:05")
    assert not results["tags_multi"].get("failed"), results["tags_multi"]
    (index,) = results["tags_multi"]["images"]
    assert index["digest"] == multi["digest"] == personality.tag_links("seed/multi")["2.0"]
    assert index["media_type"] == seed.OCI_INDEX
    assert sorted(p["architecture"] for p in index["platforms"]) == ["amd64", "arm64"]
    assert index["size"] == sum(child["size"] for child in multi["children"])
    manifest = results["manifest_multi"]
    assert not manifest.get("failed"), manifest
    assert manifest["digest"] == multi["digest"] and manifest["manifest"] == multi["manifest"]
    assert results["manifest_app"]["digest"] == app["digest"]
    assert results["manifest_app"]["manifest"] == app["manifest"]


def test_promote_within_the_registry_keeps_the_digest(personality, personality_run):
    within = personality_run.results["within"]
    assert not within.get("failed"), (within, personality_run.output[-3000:])
    multi = personality.images["multi"]
    assert within["digest"] == multi["digest"]
    assert personality.tag_links(f"promoted-{personality.service}/multi") == {"2.0": multi["digest"]}


def test_promote_across_to_a_plain_lab_keeps_the_digest(personality, personality_run, personas_target):
    across = personality_run.results["across"]
    assert not across.get("failed"), (across, personality_run.output[-3000:])
    multi = personality.images["multi"]
    target = seed.LabSession(personas_target)
    repo = f"from-{personality.service}/multi"
    assert across["digest"] == multi["digest"] == seed.head_manifest(target, repo, "2.0")
    for child in multi["children"]:
        assert seed.head_manifest(target, repo, child["digest"]) == child["digest"]
        assert all(seed.blob_exists(target, repo, digest) for digest in child["layers"] + [child["config_digest"]])
    # Blob bytes came through the storage host where the service redirects, never with a credential.
    storage = [s for s in personality.seen[personality_run.mark:] if s.server == "storage"]
    assert not [s for s in storage if "Authorization" in s.headers]
    assert bool(storage) == personality.redirect_blobs


@pytest.fixture(scope="session")
def hub_manifest_read(personas):
    """One ``registry_manifest`` read of a tag through the Docker Hub personality, and what it sent."""
    hub = personas("dockerhub")
    hub.rate_limit(limit=100)
    mark = len(hub.seen)
    result, _rss = run_module("registry_manifest", {**hub.conn(), "repository": "seed/app", "reference": "1.0"})
    sent = [s for s in hub.seen[mark:] if s.server == "api" and "/manifests/" in s.path]
    return hub, result, sent


def test_dockerhub_manifest_read_costs_one_pull(hub_manifest_read):
    hub, result, sent = hub_manifest_read
    assert result["digest"] == hub.images["app"]["digest"]
    assert [s.method for s in sent if s.status == 200].count("GET") == 1
    assert any(s.method == "HEAD" for s in sent)


def test_dockerhub_rate_limit_returned_as_facts(hub_manifest_read):
    hub, result, _sent = hub_manifest_read
    assert result["ratelimit"]["limit"] == 100
    assert result["ratelimit"]["remaining"] == hub.remaining


@pytest.mark.parametrize("service", ["dockerhub", "ghcr", "quay"])
def test_anonymous_read_where_the_service_gives_pull_tokens(personas, service):
    persona = personas(service)
    mark = len(persona.seen)
    result, _rss = run_module("registry_tags", {"registry": persona.url, "repository": "seed/app", "details": True})
    assert not result.get("failed"), result
    assert result["tags"] == ["1.0", "latest"]
    assert {image["digest"] for image in result["images"]} == {persona.images["app"]["digest"]}
    realm_requests = [s for s in persona.seen[mark:] if s.path.startswith(persona.realm_path)]
    assert realm_requests and not [s for s in realm_requests if "Authorization" in s.headers]


def test_acr_identity_token_from_docker_config(personas, tmp_path):
    """An identity token in config.json is an ACR refresh token: the client trades it at ``POST /oauth2/token``."""
    acr = personas("acr")
    refresh = requests.post(acr.url + "/oauth2/exchange", data={
        "grant_type": "access_token", "service": acr.host, "access_token": acr.aad_token}, timeout=10).json()
    config = tmp_path / "config.json"
    null_user = base64.b64encode(b"00000000-0000-0000-0000-000000000000:").decode()
    config.write_text(json.dumps({"auths": {acr.host: {"auth": null_user,
                                                       "identitytoken": refresh["refresh_token"]}}}))
    mark = len(acr.seen)
    result, _rss = run_module("registry_tags", {"registry": acr.url, "repository": "seed/multi",
                                                "docker_config": str(config)})
    assert not result.get("failed"), result
    assert result["tags"] == ["2.0"]
    assert [(s.method, s.status) for s in acr.seen[mark:] if s.path == "/oauth2/token"] == [("POST", 200)]


def test_dockerhub_exhausted_rate_limit_stops_before_the_429(personas):
    hub = personas("dockerhub")
    hub.rate_limit(limit=100, remaining=0)
    mark = len(hub.seen)
    try:
        result, _rss = run_module("registry_manifest", {**hub.conn(), "repository": "seed/app", "reference": "1.0"})
    finally:
        hub.rate_limit(limit=100)
    assert result.get("failed")
    assert "rate limit" in result["msg"].lower()
    assert not [s for s in hub.seen[mark:] if s.status == 429]


def test_artifactory_tag_pages_follow_links_that_lost_the_prefix(personas):
    """Artifactory's next link drops the repository prefix (RTFACT-18971): the client puts it back."""
    artifactory = personas("artifactory")
    mark = len(artifactory.seen)
    result, _rss = run_module("registry_tags", {**artifactory.conn(), "repository": "seed/paged", "page_size": 2})
    assert not result.get("failed"), result
    assert result["tags"] == artifactory.images["paged"]
    pages = [s for s in artifactory.seen[mark:] if "/tags/list" in s.path]
    assert [s.status for s in pages] == [200, 200, 200]
    assert all(s.path.startswith(artifactory.prefix + "/v2/seed/paged/tags/list") for s in pages)


def test_the_mirror_role_copies_into_the_service_keeping_digests(personality, personality_run):
    """The mirror role from a plain lab (holding the copies made by the test below) into the service: the index
    whole and the image, with the digests the service was seeded with, as the service itself answers them."""
    mirror_in = personality_run.results["mirror_in"]
    assert not mirror_in.get("failed") and mirror_in["changed"], mirror_in
    copied = {(image["target"], entry["tag"], entry["digest"]) for image in mirror_in["images"] for entry in image["copied"]}
    app, multi = personality.images["app"], personality.images["multi"]
    service = personality.service
    assert copied == {(f"mirrored-{service}/multi", "2.0", multi["digest"]), (f"mirrored-{service}/app", "1.0", app["digest"])}
    assert personality.tag_links(f"mirrored-{service}/multi")["2.0"] == multi["digest"]
    assert personality.tag_links(f"mirrored-{service}/app")["1.0"] == app["digest"]


def test_mirror_copies_from_the_service_and_a_rerun_costs_no_pull(personality, personality_run, personas_target):
    """registry_sync from the personality into a plain lab: digests kept (index whole), and the second run reads the
    source with HEAD only (no manifest GET: no Docker Hub pull) and writes nothing."""
    first, rerun = personality_run.results["mirrors"]
    assert not first.get("failed") and not rerun.get("failed"), (first, rerun)
    copied = {(entry["tag"], entry["digest"]) for image in first["images"] for entry in image["copied"]}
    app, multi = personality.images["app"], personality.images["multi"]
    assert copied == {("2.0", multi["digest"]), ("1.0", app["digest"])}
    target = seed.LabSession(personas_target)
    service = personality.service
    assert seed.head_manifest(target, f"mirror-{service}/multi", "2.0") == multi["digest"]
    assert seed.head_manifest(target, f"mirror-{service}/app", "1.0") == app["digest"]
    assert seed.head_manifest(target, f"mirror-{service}/app", "latest") is None  # not selected
    assert first["changed"] and not rerun["changed"]
    assert {entry["tag"] for image in rerun["images"] for entry in image["unchanged"]} == {"2.0", "1.0"}
    seen = personality.seen[personality_run.mark:]
    (start,) = [i for i, s in enumerate(seen) if s.path == "/mark-mirror-rerun"]
    (end,) = [i for i, s in enumerate(seen) if s.path == "/mark-mirror-in"]  # the mirror into the service follows
    rerun_seen = seen[start + 1:end]
    reads = [s for s in rerun_seen if "/manifests/" in s.path]
    assert reads and reads[0].method == "HEAD"
    # A GET only where the service answered the HEAD of that very tag 404 (Nexus, as reported): nowhere else.
    refused_heads = {s.path for s in reads if s.method == "HEAD" and s.status == 404}
    assert [s.path for s in reads if s.method == "GET" and s.path not in refused_heads] == []
    assert bool(refused_heads) == (personality.service == "nexus")
    assert not [s for s in rerun_seen if s.server == "storage"]  # no blob read either
