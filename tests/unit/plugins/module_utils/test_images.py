"""images: media types, created dates, facts for manifests, indexes and artifacts (CN-02, CN-03, CN-07..CN-10)."""

from __future__ import annotations

import json

import pytest

from ansible_collections.regops.registry.plugins.module_utils import images
from ansible_collections.regops.registry.plugins.module_utils.reference import (
    DOCKER_MANIFEST,
    DOCKER_SCHEMA1_SIGNED,
    OCI_INDEX,
    OCI_MANIFEST,
    compute_digest,
)


def descriptor(media_type, data: bytes):
    return {"mediaType": media_type, "digest": compute_digest(data), "size": len(data)}


def make_image(config: dict, layers=(b"layer-one", b"layer-two"), kind=OCI_MANIFEST, config_type=None):
    config_raw = json.dumps(config).encode()
    config_type = config_type or ("application/vnd.oci.image.config.v1+json" if kind == OCI_MANIFEST
                                  else "application/vnd.docker.container.image.v1+json")
    manifest = {"schemaVersion": 2, "mediaType": kind, "config": descriptor(config_type, config_raw),
                "layers": [descriptor("application/vnd.oci.image.layer.v1.tar+gzip", layer) for layer in layers]}
    return manifest, config_raw


@pytest.mark.parametrize("value,expected", [  # CN-07
    ("2024-01-02T03:04:05Z", "2024-01-02T03:04:05Z"),
    ("2024-01-02T03:04:05.015925234Z", "2024-01-02T03:04:05.015925Z"),
    ("2024-01-02T03:04:05+02:00", "2024-01-02T01:04:05Z"),
    ("1970-01-01T00:00:00Z", "1970-01-01T00:00:00Z"),
    (None, None),
    ("", None),
    ("yesterday", None),
])
def test_created_forms(value, expected):
    assert images.format_created(images.parse_created(value)) == expected


def test_image_facts_oci_and_docker():  # CN-02
    config = {"architecture": "arm64", "os": "linux", "variant": "v8", "created": "2024-05-01T00:00:00Z",
              "config": {"Labels": {"a": "b"}}}
    for kind in (OCI_MANIFEST, DOCKER_MANIFEST):
        manifest, config_raw = make_image(config, kind=kind)
        digest = compute_digest(json.dumps(manifest).encode())
        facts = images.image_facts(manifest, kind, digest, config)
        assert facts["platforms"] == [{"os": "linux", "architecture": "arm64", "variant": "v8"}]
        assert facts["size"] == len(config_raw) + len(b"layer-one") + len(b"layer-two")
        assert facts["labels"] == {"a": "b"} and facts["created_source"] == "config"


def test_labels_null_and_created_fallback():  # CN-10, CN-07 fallback
    config = {"architecture": "amd64", "os": "linux", "config": {"Labels": None}}
    manifest = make_image(config)[0]
    manifest["annotations"] = {"org.opencontainers.image.created": "2023-03-03T03:03:03Z"}
    facts = images.image_facts(manifest, OCI_MANIFEST, "sha256:" + "0" * 64, config)
    assert facts["labels"] == {}
    assert (facts["created"], facts["created_source"]) == ("2023-03-03T03:03:03Z", "annotation")


def test_artifact_is_not_parsed_as_image():  # CN-09
    manifest = make_image({"name": "chart"}, config_type="application/vnd.cncf.helm.config.v1+json")[0]
    assert not images.needs_config(manifest, OCI_MANIFEST)
    facts = images.image_facts(manifest, OCI_MANIFEST, "sha256:" + "1" * 64, None)
    assert facts["artifact_type"] == "application/vnd.cncf.helm.config.v1+json" and facts["platforms"] == []


def test_index_excludes_attestations_and_counts_shared_layers_once():  # CN-08
    shared = b"shared-layer"
    children = []
    descriptors = []
    for arch, own in (("amd64", b"amd"), ("arm64", b"arm")):
        config = {"architecture": arch, "os": "linux", "created": f"2024-0{1 if arch == 'amd64' else 2}-01T00:00:00Z"}
        manifest, config_raw = make_image(config, layers=(shared, own))
        raw = json.dumps(manifest).encode()
        children.append(images.image_facts(manifest, OCI_MANIFEST, compute_digest(raw), config))
        descriptors.append({**descriptor(OCI_MANIFEST, raw), "platform": {"os": "linux", "architecture": arch}})
    descriptors.append({**descriptor(OCI_MANIFEST, b"att"), "platform": {"os": "unknown", "architecture": "unknown"},
                        "annotations": {"vnd.docker.reference.type": "attestation-manifest"}})
    index = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": descriptors}
    assert len(images.index_children(index)) == 2
    facts = images.index_facts(index, OCI_INDEX, "sha256:" + "2" * 64, children)
    assert [p["architecture"] for p in facts["platforms"]] == ["amd64", "arm64"]
    unique = {**children[0]["blob_sizes"], **children[1]["blob_sizes"]}
    assert facts["size"] == sum(unique.values()) < children[0]["size"] + children[1]["size"]
    assert facts["created"] == "2024-02-01T00:00:00Z"


def test_schema1_is_stored_content_and_media_type_mismatch():  # CN-03, EP-13
    # We always accept schema 2, so schema 1 in the answer is how the image is stored: read (issue 15), not refused.
    images.check_media_type(DOCKER_SCHEMA1_SIGNED, {"schemaVersion": 1})
    with pytest.raises(images.ManifestError, match="mediaType"):
        images.check_media_type(OCI_MANIFEST + "; charset=utf-8", {"mediaType": DOCKER_MANIFEST})
    assert images.detect_media_type("application/json", {"manifests": []}) == OCI_INDEX
    assert images.detect_media_type(OCI_MANIFEST + "; charset=utf-8", {}) == OCI_MANIFEST
