"""registry_tags blobs: true (issue 18): every blob an image references with its size, an index's children and
attestations included, each manifest read once."""

from __future__ import annotations

import json

from ansible_collections.regops.registry.plugins.module_utils.facts import FactsGatherer
from ansible_collections.regops.registry.plugins.module_utils.reference import OCI_INDEX, OCI_MANIFEST
from tests.unit.plugins.module_utils.fake_registry import MemoryRegistry, make_client
from tests.unit.plugins.module_utils.test_flows import digest_of, image


def sizes_of(registry: MemoryRegistry, repo: str, digest: str) -> dict:
    manifest = json.loads(registry.manifests[repo][digest][0])
    return {d["digest"]: d["size"] for d in [manifest["config"]] + manifest["layers"]}


def test_blobs_of_an_image_and_of_an_index_with_its_attestation():
    registry = MemoryRegistry()
    single, _raw = image(registry, "a", ["single"], seed="s")
    amd, _raw = image(registry, "a", [], seed="amd")
    arm, _raw = image(registry, "a", [], seed="arm")
    attestation, _raw = image(registry, "a", [], seed="att")
    index = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [
        {"mediaType": OCI_MANIFEST, "digest": amd, "size": 1, "platform": {"os": "linux", "architecture": "amd64"}},
        {"mediaType": OCI_MANIFEST, "digest": arm, "size": 1, "platform": {"os": "linux", "architecture": "arm64"}},
        {"mediaType": OCI_MANIFEST, "digest": attestation, "size": 1,
         "platform": {"os": "unknown", "architecture": "unknown"},
         "annotations": {"vnd.docker.reference.type": "attestation-manifest"}}]}
    raw = json.dumps(index).encode()
    registry.add_manifest("a", digest_of(raw), raw, OCI_INDEX)
    registry.add_manifest("a", "multi", raw, OCI_INDEX)
    client, adapter = make_client(registry.route)
    found = {i["tag"]: i for i in FactsGatherer(client, 4).tag_details("a", ["single", "multi"], blobs=True)}
    assert found["single"]["blobs"] == sizes_of(registry, "a", single)
    expected = {**sizes_of(registry, "a", amd), **sizes_of(registry, "a", arm), **sizes_of(registry, "a", attestation)}
    assert found["multi"]["blobs"] == expected and len(expected) == 6
    assert found["multi"]["size"] == sum(expected.values()) - sum(sizes_of(registry, "a", attestation).values())
    gets = [s.url for s in adapter.sent if s.method == "GET" and "/manifests/" in s.url]
    assert len(gets) == len(set(gets))  # each manifest read once
    assert not any("/blobs/" + d in u for u in [s.url for s in adapter.sent]
                   for d in sizes_of(registry, "a", attestation))  # an attestation's config is not read


def test_without_blobs_no_blobs_key():
    registry = MemoryRegistry()
    image(registry, "a", ["t"])
    client, _adapter = make_client(registry.route)
    [found] = FactsGatherer(client).tag_details("a", ["t"])
    assert "blobs" not in found and "blob_sizes" not in found
