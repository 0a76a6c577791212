"""registry_sync referrers: true (module_utils/mirror_referrers.py) against in-memory registries: found with the API or
the fallback tag, copied by digest after their subject, listed in the destination's fallback tag, copied once."""

from __future__ import annotations

import json

import pytest

from ansible_collections.regops.registry.plugins.module_utils.client import referrers_tag
from ansible_collections.regops.registry.plugins.module_utils.mirror_referrers import (
    copy_referrers,
    find_referrers,
    missing_referrers,
)
from ansible_collections.regops.registry.plugins.module_utils.reference import OCI_INDEX, OCI_MANIFEST
from tests.unit.plugins.module_utils.fake_registry import MemoryRegistry, make_client
from tests.unit.plugins.module_utils.test_flows import digest_of, image


def referrer(registry: MemoryRegistry, repo: str, subject: str, seed: str) -> str:
    """A signature of ``subject`` (its blobs with their true sizes: a copy verifies them)."""
    config = registry.add_blob(repo, b"{}")
    content = f"signature-{seed}".encode()
    layer = registry.add_blob(repo, content)
    raw = json.dumps({"schemaVersion": 2, "mediaType": OCI_MANIFEST, "artifactType": "application/vnd.dev.sigstore.bundle",
                      "config": {"mediaType": "application/vnd.oci.empty.v1+json", "digest": config, "size": 2},
                      "layers": [{"mediaType": "application/octet-stream", "digest": layer, "size": len(content)}],
                      "subject": {"mediaType": OCI_MANIFEST, "digest": subject, "size": 1}}).encode()
    return registry.add_manifest(repo, digest_of(raw), raw, OCI_MANIFEST)


def fallback_list(registry: MemoryRegistry, repo: str, subject: str, referrers: list[str]) -> None:
    """The sha256-<hex> tag of ``subject`` as a client without the API leaves it: an index of its referrers."""
    index = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [
        {"mediaType": OCI_MANIFEST, "digest": d, "size": len(registry.manifests[repo][d][0]),
         "artifactType": "application/vnd.dev.sigstore.bundle"} for d in referrers]}
    registry.add_manifest(repo, referrers_tag(subject), json.dumps(index).encode(), OCI_INDEX)


def signed_source(api: bool):
    """An image with a signature and a signature of that signature, and an unsigned image."""
    registry = MemoryRegistry(referrers_api=api)
    signed, _raw = image(registry, "up", ["1.0"], seed="s")
    unsigned, _raw = image(registry, "up", ["2.0"], seed="u")
    signature = referrer(registry, "up", signed, "sig")
    countersignature = referrer(registry, "up", signature, "counter")
    if not api:
        fallback_list(registry, "up", signed, [signature])
        fallback_list(registry, "up", signature, [countersignature])
    return registry, signed, unsigned, signature, countersignature


def manifest_requests(adapter, method: str) -> list[str]:
    return [s.url.rsplit("/", 1)[-1] for s in adapter.sent if s.method == method and "/manifests/" in s.url]


@pytest.mark.parametrize("api", [True, False])
def test_referrers_and_theirs_are_found_with_the_api_or_the_fallback_tag(api):
    registry, signed, unsigned, signature, countersignature = signed_source(api)
    client, adapter = make_client(registry.route)
    found = find_referrers(client, "up", [signed, unsigned, signed], workers=4)
    assert [(d["digest"], d["subject"]) for d in found[signed]] == [(signature, signed), (countersignature, signature)]
    assert found[unsigned] == []
    asked = [s.url.rsplit("/", 1)[-1] for s in adapter.sent if "/referrers/" in s.url]
    if api:
        assert sorted(asked) == sorted([signed, unsigned, signature, countersignature])
        assert manifest_requests(adapter, "GET") == manifest_requests(adapter, "HEAD") == []
    else:  # one 404 says there is no API; then a HEAD of each fallback tag, a GET only of those that exist
        assert len(asked) == 1
        assert sorted(manifest_requests(adapter, "HEAD")) == sorted(
            referrers_tag(d) for d in (signed, unsigned, signature, countersignature))
        assert sorted(manifest_requests(adapter, "GET")) == sorted(referrers_tag(d) for d in (signed, signature))


def test_a_fallback_tag_that_resolves_to_the_subject_lists_nothing_and_warns():
    registry = MemoryRegistry()
    subject, raw = image(registry, "up", ["1.0"])
    registry.add_manifest("up", referrers_tag(subject), raw, OCI_MANIFEST)  # GitLab: sha256-<hex> is the subject
    client, adapter = make_client(registry.route)
    warnings = []
    client._warn = warnings.append
    assert find_referrers(client, "up", [subject], workers=2) == {subject: []}
    assert manifest_requests(adapter, "GET") == [] and "the subject itself" in warnings[0]


@pytest.mark.parametrize("api", [True, False])
def test_referrers_are_copied_by_digest_after_their_subject_listed_at_the_destination_and_once(api):
    source, signed, _unsigned, signature, countersignature = signed_source(api)
    destination = MemoryRegistry()  # no referrers API: the copy must list them in its fallback tags
    source_client, _adapter = make_client(source.route, registry="https://up.test")
    client, adapter = make_client(destination.route)
    found = find_referrers(source_client, "up", [signed], workers=2)
    todo = missing_referrers(client, "down", found, workers=2)
    assert [d["digest"] for d in todo[signed]] == [signature, countersignature]
    from ansible_collections.regops.registry.plugins.module_utils.copy import copy_image
    copy_image(source_client, "up", "1.0", client, "down", "1.0")
    assert copy_referrers(source_client, "up", client, "down", todo[signed], concurrency=2) == [signature, countersignature]
    puts = manifest_requests(adapter, "PUT")
    assert puts == ["1.0", signature, referrers_tag(signed), countersignature, referrers_tag(signature)]
    for subject, listed in ((signed, signature), (signature, countersignature)):
        raw, media_type = destination.manifests["down"][destination.tags["down"][referrers_tag(subject)]]
        assert media_type == OCI_INDEX and [m["digest"] for m in json.loads(raw)["manifests"]] == [listed]
    assert digest_of(destination.manifests["down"][countersignature][0]) == countersignature  # byte for byte
    # The next run: everything is there, nothing to copy.
    again = missing_referrers(client, "down", find_referrers(source_client, "up", [signed], workers=2), workers=2)
    assert again == {signed: []}


def test_a_referrer_listed_but_gone_upstream_is_skipped_with_a_warning():
    source, signed, _unsigned, signature, _countersignature = signed_source(api=False)
    del source.manifests["up"][signature]  # deleted upstream; the stale fallback index still lists it
    source_client, _adapter = make_client(source.route, registry="https://up.test")
    warnings = []
    source_client._warn = warnings.append
    destination = MemoryRegistry()
    client, adapter = make_client(destination.route)
    found = find_referrers(source_client, "up", [signed], workers=2)
    assert copy_referrers(source_client, "up", client, "down", found[signed][:1], concurrency=2) == []
    assert adapter.writes() == [] and "does not exist on the source" in warnings[0]


@pytest.mark.parametrize("subject_fails", [False, True])
def test_registry_sync_writes_referrers_only_after_every_subject_of_the_entry(subject_fails):
    from ansible_collections.regops.registry.plugins.module_utils.errors import RegistryError
    from ansible_collections.regops.registry.plugins.module_utils.mirror import attach_referrers
    from ansible_collections.regops.registry.plugins.modules.registry_sync import apply

    source, signed, _unsigned, signature, countersignature = signed_source(api=False)
    if subject_fails:  # the image cannot be copied (a blob gone upstream): its referrers must not be written
        layer = json.loads(source.manifests["up"][signed][0])["layers"][0]["digest"]
        del source.blobs["up"][layer]
    source_client, _adapter = make_client(source.route, registry="https://up.test")
    destination = MemoryRegistry()
    client, adapter = make_client(destination.route)
    to_copy = missing_referrers(client, "down", find_referrers(source_client, "up", [signed], workers=2), workers=2)
    plan = {"copied": [{"tag": "1.0", "digest": signed, "reason": "", "previous_digest": None}], "unchanged": [],
            "deleted": [], "excluded": []}
    attach_referrers(plan, to_copy)
    entry = {"repository": "up", "target": "down", "referrers": to_copy}
    if subject_fails:
        with pytest.raises(RegistryError):
            apply(client, source_client, [entry], [plan], 4, 0)
        assert manifest_requests(adapter, "PUT") == []
        return
    apply(client, source_client, [entry], [plan], 4, 0)
    assert manifest_requests(adapter, "PUT") == [
        "1.0", signature, referrers_tag(signed), countersignature, referrers_tag(signature)]
    assert [r["digest"] for r in plan["copied"][0]["referrers"]] == [signature, countersignature]
