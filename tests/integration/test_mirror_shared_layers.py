"""registry_sync copying every tag of an entry at once when the tags share a base layer, as real images do."""

from __future__ import annotations

import gzip
import json

from tests.integration.runner import run_module
from tests.lab import seed


def push_on_base(session, repository: str, tag: str, base: bytes, top_seed: int) -> str:
    """An image of the shared base layer and a small top layer of its own."""
    layers = [base, seed.random_layer(64 << 10, top_seed, tar_gzip=True)]
    digests = [seed.push_blob(session, repository, layer) for layer in layers]
    config = json.dumps({"architecture": "amd64", "os": "linux", "rootfs": {
        "type": "layers", "diff_ids": [seed.sha256(gzip.decompress(layer)) for layer in layers]}}).encode()
    manifest = {"schemaVersion": 2, "mediaType": seed.OCI_MANIFEST,
                "config": {"mediaType": seed.OCI_CONFIG, "digest": seed.push_blob(session, repository, config),
                           "size": len(config)},
                "layers": [{"mediaType": seed.OCI_LAYER, "digest": d, "size": len(layer)}
                           for d, layer in zip(digests, layers)]}
    return seed.put_manifest(session, repository, tag, json.dumps(manifest).encode(), seed.OCI_MANIFEST)


def test_tags_sharing_a_base_layer_send_it_once(lab_plain, lab_basic):
    """Eight tags copied at once need one base layer: it is streamed once, the other copies wait for it. Eight
    uploads of one blob into one repository at once made the CNCF registry refuse manifests (DIGEST_INVALID)."""
    up = seed.LabSession(lab_plain)
    base = seed.random_layer(2 << 20, 1701, tar_gzip=True)
    source = {f"1.{n}.0": push_on_base(up, "shared/app", f"1.{n}.0", base, 1710 + n) for n in range(8)}
    mark = lab_basic.mark()
    result, _rss = run_module("registry_sync", {**lab_basic.conn(), "source_registry": lab_plain.url,
                                                "images": [{"repository": "shared/app"}], "concurrency": 8})
    assert result["changed"] and not result.get("failed"), result
    assert seed.tag_map(seed.LabSession(lab_basic), "shared/app") == source
    base_hex = seed.sha256(base).split(":")[1]
    base_puts = lab_basic.requests(mark, methods=("PUT",), path=r"/blobs/uploads/.*digest=sha256(:|%3[aA])" + base_hex)
    assert len(base_puts) == 1, base_puts
    assert len(lab_basic.blob_uploads(mark)) == 8 + 8 + 1  # every top layer and config, and the base once
