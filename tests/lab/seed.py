"""Seeding with raw requests, independent of the collection's client: the tests compare against this."""

from __future__ import annotations

import hashlib
import json
import random
import re
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import urljoin

import requests

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER = "application/vnd.docker.image.rootfs.diff.tar.gzip"
ACCEPT = ", ".join((OCI_INDEX, OCI_MANIFEST, DOCKER_LIST, DOCKER_MANIFEST))


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


class LabSession:
    """Minimal authenticated session: Basic, or Bearer tokens fetched per challenge (simple on purpose)."""

    def __init__(self, lab, user: str | None = "alice") -> None:
        self.base = lab.url
        self.session = requests.Session()
        self.session.verify = lab.ca_path or True
        self.session.trust_env = False
        adapter = requests.adapters.HTTPAdapter(pool_maxsize=16)
        self.session.mount("http://", adapter)
        self.session.mount("https://", adapter)
        self.creds = (user, lab.users[user]) if lab.mode != "plain" and user else None
        self.mode = lab.mode
        self.tokens: dict[str, str] = {}

    def request(self, method: str, path: str, **kwargs) -> requests.Response:
        url = path if path.startswith("http") else self.base + path
        headers = dict(kwargs.pop("headers", {}) or {})
        if self.mode == "basic" and self.creds:
            kwargs["auth"] = self.creds
        for _attempt in range(2):
            scope_key = headers.pop("_scope", None)
            if self.mode == "token" and scope_key in self.tokens:
                headers["Authorization"] = f"Bearer {self.tokens[scope_key]}"
            response = self.session.request(method, url, headers=headers, **kwargs)
            if response.status_code != 401 or self.mode != "token":
                return response
            challenge = dict(re.findall(r'(\w+)="([^"]*)"', response.headers.get("WWW-Authenticate", "")))
            params = {"service": challenge.get("service"), "scope": challenge.get("scope", "").split()}
            answer = self.session.get(challenge["realm"], params=params, auth=self.creds)
            answer.raise_for_status()
            key = challenge.get("scope", "")
            self.tokens[key] = answer.json()["token"]
            headers["_scope"] = key
        return response

    def __getattr__(self, name):  # get/put/head/... -> request
        return lambda path, **kw: self.request(name.upper(), path, **kw)


def random_bytes(size: int, seed: int) -> bytes:
    return random.Random(seed).randbytes(size)


def push_blob(session: LabSession, repo: str, data: bytes) -> str:
    digest = sha256(data)
    if session.head(f"/v2/{repo}/blobs/{digest}").status_code == 200:
        return digest
    start = session.post(f"/v2/{repo}/blobs/uploads/", headers={"Content-Length": "0"})
    assert start.status_code == 202, (start.status_code, start.text)
    location = urljoin(start.url, start.headers["Location"])
    sep = "&" if "?" in location else "?"
    done = session.put(f"{location}{sep}digest={digest}", data=data,
                       headers={"Content-Type": "application/octet-stream"})
    assert done.status_code == 201, (done.status_code, done.text)
    return digest


def put_manifest(session: LabSession, repo: str, reference: str, raw: bytes, media_type: str) -> str:
    answer = session.put(f"/v2/{repo}/manifests/{reference}", data=raw, headers={"Content-Type": media_type})
    assert answer.status_code == 201, (answer.status_code, answer.text)
    return sha256(raw)


def push_image(session: LabSession, repo: str, tag: str | None, *, kind: str = "oci",
               created: str | None = "2024-01-02T03:04:05Z", labels: dict | None = None, architecture: str = "amd64",
               os_name: str = "linux", variant: str | None = None, layer_sizes=(1024,), seed: int = 0,
               annotations: dict | None = None) -> dict:
    """Push an image (random layers, a real config) and tag it; returns its digest, bytes and parts."""
    layers = [random_bytes(size, seed * 1000 + i) for i, size in enumerate(layer_sizes)]
    layer_digests = [push_blob(session, repo, data) for data in layers]
    config = {"architecture": architecture, "os": os_name, "config": {"Labels": labels},
              "rootfs": {"type": "layers", "diff_ids": layer_digests},
              "history": [{"created": created or "2000-01-01T00:00:00Z", "created_by": "regops lab"}]}
    if created is not None:
        config["created"] = created
    if variant:
        config["variant"] = variant
    config_raw = json.dumps(config, sort_keys=True).encode()
    config_digest = push_blob(session, repo, config_raw)
    manifest = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST if kind == "oci" else DOCKER_MANIFEST,
        "config": {"mediaType": OCI_CONFIG if kind == "oci" else DOCKER_CONFIG, "digest": config_digest,
                   "size": len(config_raw)},
        "layers": [{"mediaType": OCI_LAYER if kind == "oci" else DOCKER_LAYER, "digest": d, "size": len(b)}
                   for d, b in zip(layer_digests, layers)],
    }
    if annotations:
        manifest["annotations"] = annotations
    raw = json.dumps(manifest, indent=3).encode()  # unusual whitespace on purpose: digests are over bytes
    digest = put_manifest(session, repo, tag or sha256(raw), raw, manifest["mediaType"])
    return {"digest": digest, "raw": raw, "media_type": manifest["mediaType"], "config": config,
            "config_digest": config_digest, "layers": layer_digests,
            "size": len(config_raw) + sum(len(b) for b in layers)}


def push_index(session: LabSession, repo: str, tag: str, *, kind: str = "oci",
               platforms=(("linux", "amd64", None), ("linux", "arm64", "v8")), created: str = "2024-03-04T05:06:07Z",
               labels: dict | None = None, seed: int = 100, with_attestation: bool = False) -> dict:
    children = []
    for i, (os_name, arch, variant) in enumerate(platforms):
        child = push_image(session, repo, None, kind=kind, created=created, labels=labels, architecture=arch,
                           os_name=os_name, variant=variant, seed=seed + i, layer_sizes=(2048, 512))
        platform = {"os": os_name, "architecture": arch}
        if variant:
            platform["variant"] = variant
        child["platform"] = platform
        children.append(child)
    descriptors = [{"mediaType": c["media_type"], "digest": c["digest"], "size": len(c["raw"]),
                    "platform": c["platform"]} for c in children]
    if with_attestation:
        att = push_image(session, repo, None, kind="oci", created=None, architecture="unknown", os_name="unknown",
                         seed=seed + 50, layer_sizes=(100,))
        descriptors.append({"mediaType": OCI_MANIFEST, "digest": att["digest"], "size": len(att["raw"]),
                            "platform": {"os": "unknown", "architecture": "unknown"},
                            "annotations": {"vnd.docker.reference.type": "attestation-manifest",
                                            "vnd.docker.reference.digest": children[0]["digest"]}})
    index = {"schemaVersion": 2, "mediaType": OCI_INDEX if kind == "oci" else DOCKER_LIST, "manifests": descriptors}
    raw = json.dumps(index).encode()
    digest = put_manifest(session, repo, tag, raw, index["mediaType"])
    return {"digest": digest, "raw": raw, "media_type": index["mediaType"], "children": children}


def tag_manifest(session: LabSession, repo: str, tag: str, raw: bytes, media_type: str) -> str:
    return put_manifest(session, repo, tag, raw, media_type)


def head_manifest(session: LabSession, repo: str, reference: str) -> str | None:
    answer = session.head(f"/v2/{repo}/manifests/{reference}", headers={"Accept": ACCEPT})
    return answer.headers.get("Docker-Content-Digest") if answer.status_code == 200 else None


def list_tags(session: LabSession, repo: str) -> list[str]:
    answer = session.get(f"/v2/{repo}/tags/list")
    if answer.status_code == 404:
        return []
    answer.raise_for_status()
    return sorted(answer.json().get("tags") or [])


def tag_map(session: LabSession, repo: str) -> dict[str, str]:
    """Every tag -> digest, from raw requests: the independent view of what the registry holds."""
    return {tag: head_manifest(session, repo, tag) for tag in list_tags(session, repo)}


def blob_exists(session: LabSession, repo: str, digest: str) -> bool:
    return session.head(f"/v2/{repo}/blobs/{digest}").status_code == 200


def seed_many_repositories(session: LabSession, prefix: str, count: int, concurrency: int = 8) -> list[str]:
    """``count`` repositories with one tiny image each (shared blobs), for catalog pagination."""
    names = [f"{prefix}/r{i:04d}" for i in range(count)]

    def one(name: str) -> None:
        push_image(session, name, "1", seed=7, layer_sizes=(64,))

    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        list(pool.map(one, names))
    return names


def seed_scale(session: LabSession, repositories: int = 20, tags_per_repository: int = 50, images_per_repository: int = 10,
               prefix: str = "scale", concurrency: int = 8) -> dict:
    """Many tags over few images per repository (so tags share digests), one OCI index per repository.

    Returns ``{repository: {tag: {"digest", "created", "architecture", "os", "labels"}}}``: what each tag must show.
    """
    def one_repository(r: int) -> tuple[str, dict]:
        repo = f"{prefix}/r{r:02d}"
        images = []
        for i in range(images_per_repository - 1):
            created = f"2024-{1 + (i % 12):02d}-{1 + r % 28:02d}T{i % 24:02d}:00:00Z"
            labels = {"org.opencontainers.image.version": f"{r}.{i}", "team": f"t{i % 3}"} if i % 4 else None
            arch = "arm64" if i % 5 == 4 else "amd64"
            image = push_image(session, repo, None, kind="docker" if i % 2 else "oci", created=created, labels=labels,
                               architecture=arch, seed=r * 100 + i, layer_sizes=(64 + i,))
            images.append({"raw": image["raw"], "media_type": image["media_type"], "digest": image["digest"],
                           "created": created, "architecture": arch, "os": "linux", "labels": labels or {}})
        index = push_index(session, repo, "index-0", seed=r * 100 + 90, created="2024-12-24T12:00:00Z",
                           labels={"kind": "multi"})
        images.append({"raw": index["raw"], "media_type": index["media_type"], "digest": index["digest"],
                       "created": "2024-12-24T12:00:00Z", "architecture": "amd64", "os": "linux", "labels": {"kind": "multi"}})
        expected = {}
        for t in range(tags_per_repository):
            image = images[t % len(images)]
            tag = f"1.{t // 10}.{t % 10}"
            put_manifest(session, repo, tag, image["raw"], image["media_type"])
            expected[tag] = {k: image[k] for k in ("digest", "created", "architecture", "os", "labels")}
        expected["index-0"] = expected[next(t for t, v in expected.items() if v["digest"] == index["digest"])]
        return repo, expected

    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        return dict(pool.map(one_repository, range(repositories)))
