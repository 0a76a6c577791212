"""Registries of many tags, written straight into distribution's filesystem storage layout and cached.

Pushing 100,000 tags over HTTP takes many minutes; the files the registry would write for them take seconds. The
layout (distribution 2.8, ``registry/storage/paths.go``) under ``<storage>/docker/registry/v2``:

- ``blobs/sha256/<2 hex>/<hex>/data``: every blob, manifests included;
- ``repositories/<name>/_layers/sha256/<hex>/link``: the blobs (configs, layers) linked into the repository;
- ``repositories/<name>/_manifests/revisions/sha256/<hex>/link``: the manifests of the repository;
- ``repositories/<name>/_manifests/tags/<tag>/current/link`` and ``.../index/sha256/<hex>/link``: a tag and the
  digests it has named.

Each link file holds ``sha256:<hex>`` and nothing else. The images are deterministic, so ``push_shape`` pushes the
very same bytes over HTTP: tests/integration/test_bulk_seed.py checks that a registry serving the written storage
answers exactly as one seeded by pushes (tags, digests, facts, and the files themselves).

Shape: repository ``<prefix>/r<NNN>`` holds ``images`` OCI images (one small layer each, created one minute apart
from 2024-01-01, the newest last) and ``tags_per_image`` tags on each, ``i<image>-<k>``.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

from tests.lab import seed

ROOT = Path(__file__).resolve().parents[2]
CACHE = ROOT / ".tmp" / "bench" / "storage"
EPOCH = datetime(2024, 1, 1, tzinfo=timezone.utc)
LAYOUT_VERSION = 1  # part of the cache key: bump it when the bytes written change


@dataclass(frozen=True)
class Shape:
    repositories: int
    images: int  # per repository
    tags_per_image: int = 10
    prefix: str = "scale"

    @property
    def tags(self) -> int:
        return self.repositories * self.images * self.tags_per_image

    @property
    def key(self) -> str:
        return f"v{LAYOUT_VERSION}-{self.prefix}-{self.repositories}x{self.images}x{self.tags_per_image}"

    def repository(self, r: int) -> str:
        return f"{self.prefix}/r{r:03d}"

    def names(self) -> list[str]:
        return [self.repository(r) for r in range(self.repositories)]


def digest_of(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def created_of(image: int) -> str:
    return (EPOCH + timedelta(minutes=image)).strftime("%Y-%m-%dT%H:%M:%SZ")


def image_blobs(r: int, image: int) -> dict:
    """The layer, config and manifest of one image (bytes), deterministic."""
    layer = hashlib.sha256(f"layer {r} {image}".encode()).digest() * 2
    config = json.dumps({"architecture": "amd64", "os": "linux", "created": created_of(image),
                         "config": {"Labels": {"build": str(image)}},
                         "rootfs": {"type": "layers", "diff_ids": [digest_of(layer)]}}, sort_keys=True).encode()
    manifest = json.dumps({"schemaVersion": 2, "mediaType": seed.OCI_MANIFEST,
                           "config": {"mediaType": seed.OCI_CONFIG, "digest": digest_of(config), "size": len(config)},
                           "layers": [{"mediaType": seed.OCI_LAYER, "digest": digest_of(layer), "size": len(layer)}]},
                          indent=3).encode()
    return {"layer": layer, "config": config, "manifest": manifest}


def tag_name(image: int, k: int) -> str:
    return f"i{image:05d}-{k}"


def expected_tags(shape: Shape, r: int) -> dict[str, str]:
    """Every tag of repository ``r`` -> its digest."""
    out = {}
    for image in range(shape.images):
        digest = digest_of(image_blobs(r, image)["manifest"])
        out.update({tag_name(image, k): digest for k in range(shape.tags_per_image)})
    return out


def _link(path: Path, digest: str) -> None:
    path.mkdir(parents=True, exist_ok=True)
    (path / "link").write_bytes(digest.encode())


def _blob(v2: Path, data: bytes) -> str:
    digest = digest_of(data)
    hexa = digest.split(":", 1)[1]
    folder = v2 / "blobs" / "sha256" / hexa[:2] / hexa
    if not (folder / "data").exists():
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "data").write_bytes(data)
    return digest


def write_storage(storage: Path, shape: Shape) -> None:
    """The files distribution would hold after ``push_shape`` (uploads folders aside)."""
    v2 = Path(storage) / "docker" / "registry" / "v2"
    for r in range(shape.repositories):
        repo = v2 / "repositories" / shape.repository(r)
        for image in range(shape.images):
            blobs = image_blobs(r, image)
            for kind in ("layer", "config"):
                _link(repo / "_layers" / "sha256" / _blob(v2, blobs[kind]).split(":", 1)[1], digest_of(blobs[kind]))
            digest = _blob(v2, blobs["manifest"])
            hexa = digest.split(":", 1)[1]
            _link(repo / "_manifests" / "revisions" / "sha256" / hexa, digest)
            for k in range(shape.tags_per_image):
                tag = repo / "_manifests" / "tags" / tag_name(image, k)
                _link(tag / "current", digest)
                _link(tag / "index" / "sha256" / hexa, digest)


def cached_storage(shape: Shape, cache: Path = CACHE) -> Path:
    """The storage folder of ``shape``, written once and kept under .tmp/bench/storage (a ``complete`` file marks it
    whole: an interrupted write is redone)."""
    folder = cache / shape.key
    if not (folder / "complete").exists():
        shutil.rmtree(folder, ignore_errors=True)
        write_storage(folder / "storage", shape)
        (folder / "complete").write_text(f"{shape.tags} tags\n")
    return folder / "storage"


def registry_workdir(shape: Shape, workdir: Path, cache: Path = CACHE) -> Path:
    """A lab workdir whose storage is a private copy of the cached one (a prune may change it freely)."""
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    shutil.rmtree(workdir / "storage", ignore_errors=True)
    # A copy, not hard links: distribution rewrites link files in place (a tag moved onto a throwaway manifest).
    shutil.copytree(cached_storage(shape, cache), workdir / "storage", copy_function=shutil.copy2, symlinks=True)
    return workdir


def storage_files(storage: Path) -> dict[str, bytes]:
    """Relative path -> content of every file the registry reads (upload leftovers aside)."""
    base = Path(storage)
    out = {}
    for folder, _dirs, files in os.walk(base):
        for name in files:
            path = Path(folder) / name
            relative = str(path.relative_to(base))
            if "/_uploads/" not in relative:
                out[relative] = path.read_bytes()
    return out


def push_shape(session, shape: Shape) -> None:
    """The same registry content pushed over HTTP (for the check that the written storage is right)."""
    for r in range(shape.repositories):
        name = shape.repository(r)
        for image in range(shape.images):
            blobs = image_blobs(r, image)
            seed.push_blob(session, name, blobs["layer"])
            seed.push_blob(session, name, blobs["config"])
            for k in range(shape.tags_per_image):
                seed.put_manifest(session, name, tag_name(image, k), blobs["manifest"], seed.OCI_MANIFEST)
