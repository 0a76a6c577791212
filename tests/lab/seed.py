"""Seeding with raw ``requests``, independent of the collection's client: the tests compare against this.

Every manifest is pushed as the exact bytes its digest is computed over (``manifest_bytes``, also ``raw``).
Image manifests use ``indent=3`` on purpose: a client that re-serialises would change the digest.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import random
import re
import tarfile
import threading
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import quote, urljoin, urlsplit

import requests
from requests.adapters import HTTPAdapter

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER = "application/vnd.docker.image.rootfs.diff.tar.gzip"
ACCEPT = ", ".join((OCI_INDEX, OCI_MANIFEST, DOCKER_LIST, DOCKER_MANIFEST))

_REPO_PATH = re.compile(r"^/v2/(.+?)/(?:manifests|blobs|tags)/")


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _challenge(header: str) -> tuple[str, dict]:
    scheme, _sep, rest = header.strip().partition(" ")
    return scheme.lower(), {k.lower(): v for k, v in re.findall(r'(\w+)="([^"]*)"', rest)}


class LabSession(requests.Session):
    """A ``requests.Session`` for one lab and one user; paths may be relative (``/v2/...``).

    plain: no auth; basic: Basic credentials on every request; token: on a 401 ``Bearer`` challenge it
    asks the token server for the challenge's scopes plus ``pull,push,delete`` on the repository of the
    URL (the server grants the intersection), caches the token per repository, and retries once. No
    other cleverness: a pusher DELETE comes back 401 ``insufficient_scope`` as it should.
    ``history`` lists ``(method, path_with_query, status)`` of every request sent to the registry.
    """

    def __init__(self, lab, user: str | None = "alice") -> None:
        super().__init__()
        self.base = lab.url.rstrip("/")
        self.mode = lab.mode
        self.verify = lab.ca_path or True
        self.trust_env = False
        adapter = HTTPAdapter(pool_connections=4, pool_maxsize=32)
        self.mount("http://", adapter)
        self.mount("https://", adapter)
        self.user = user if lab.mode != "plain" else None
        self.creds = (user, lab.users[user]) if self.user else None
        if self.mode == "basic" and self.creds:
            self.auth = self.creds
        self.tokens: dict[str, str] = {}
        self.token_fetches = 0
        self.history: list[tuple[str, str, int]] = []
        self._lock = threading.Lock()

    def _url(self, url: str) -> str:
        return url if url.startswith(("http://", "https://")) else self.base + url

    @staticmethod
    def _key(url: str) -> str:
        path = urlsplit(url).path
        if path.startswith("/v2/_catalog"):
            return "registry:catalog"
        match = _REPO_PATH.match(path)
        return match.group(1) if match else ""

    def request(self, method, url, *args, **kwargs):  # noqa: D401 - requests' signature
        url = self._url(url)
        if self.mode != "token":
            return self._send(method, url, *args, **kwargs)
        key = self._key(url)
        headers = dict(kwargs.pop("headers", None) or {})
        if key in self.tokens:
            headers["Authorization"] = f"Bearer {self.tokens[key]}"
        response = self._send(method, url, *args, headers=headers, **kwargs)
        if response.status_code != 401:
            return response
        scheme, params = _challenge(response.headers.get("WWW-Authenticate", ""))
        if scheme != "bearer" or "realm" not in params:
            return response
        scopes = set(params.get("scope", "").split())
        if key and key != "registry:catalog":
            scopes.add(f"repository:{key}:pull,push,delete")
        self.tokens[key] = self.fetch_token(params["realm"], params.get("service"), sorted(scopes))
        headers["Authorization"] = f"Bearer {self.tokens[key]}"
        return self._send(method, url, *args, headers=headers, **kwargs)

    def _send(self, method, url, *args, **kwargs):
        response = super().request(method, url, *args, **kwargs)
        if url.startswith(self.base):
            split = urlsplit(response.request.url)  # as sent (prepared), like the access log
            with self._lock:
                self.history.append((method.upper(), split.path + (f"?{split.query}" if split.query else ""),
                                     response.status_code))
        return response

    def fetch_token(self, realm: str, service: str | None, scopes: list[str]) -> str:
        params = [("service", service)] if service else []
        params += [("scope", s) for s in scopes]
        if self.creds:
            params.append(("account", self.creds[0]))
        answer = requests.get(realm, params=params, auth=self.creds, verify=self.verify, timeout=30)
        answer.raise_for_status()
        with self._lock:
            self.token_fetches += 1
        body = answer.json()
        return body.get("token") or body["access_token"]


def session_for(lab, user: str | None = "alice") -> LabSession:
    """Authenticated seeding session for ``lab`` (``user=None``: anonymous)."""
    return LabSession(lab, user)


# --- content ------------------------------------------------------------------------------------

def random_bytes(size: int, seed: int) -> bytes:
    return random.Random(seed).randbytes(size)


def random_layer(size: int, seed: int, *, tar_gzip: bool = False) -> bytes:
    """``size`` random bytes, or (``tar_gzip``) a real gzip'ed tar holding one file of ``size`` random bytes
    (deterministic: fixed mtimes). The registry does not look inside layers; random bytes are enough."""
    payload = random_bytes(size, seed)
    if not tar_gzip:
        return payload
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        info = tarfile.TarInfo(f"layer-{seed}.bin")
        info.size, info.mtime, info.mode = size, 0, 0o644
        tar.addfile(info, io.BytesIO(payload))
    return gzip.compress(buffer.getvalue(), mtime=0)


def _check(answer: requests.Response, *expected: int) -> requests.Response:
    if answer.status_code not in expected:
        raise AssertionError(f"{answer.request.method} {answer.url} -> {answer.status_code} "
                             f"(expected {expected}): {answer.text[:500]}")
    return answer


def push_blob(session: LabSession, repo: str, data: bytes, *, mount_from: str | None = None,
              check_exists: bool = True) -> str:
    """HEAD (skip if present), else mount from ``mount_from`` (201) or POST + PUT ``?digest=`` (monolithic)."""
    digest = sha256(data)
    if check_exists and session.head(f"/v2/{repo}/blobs/{digest}").status_code == 200:
        return digest
    if mount_from:
        start = _check(session.post(f"/v2/{repo}/blobs/uploads/?mount={quote(digest)}&from={mount_from}",
                                    headers={"Content-Length": "0"}), 201, 202)
        if start.status_code == 201:
            return digest
    else:
        start = _check(session.post(f"/v2/{repo}/blobs/uploads/", headers={"Content-Length": "0"}), 202)
    location = urljoin(start.url, start.headers["Location"])
    sep = "&" if "?" in location else "?"
    _check(session.put(f"{location}{sep}digest={quote(digest)}", data=data,
                       headers={"Content-Type": "application/octet-stream"}), 201)
    return digest


def blob_exists(session: LabSession, repo: str, digest: str) -> bool:
    return session.head(f"/v2/{repo}/blobs/{digest}").status_code == 200


def put_manifest(session: LabSession, repo: str, reference: str, raw: bytes, media_type: str) -> str:
    """PUT these exact bytes; returns their digest (checked against the registry's ``Docker-Content-Digest``)."""
    answer = _check(session.put(f"/v2/{repo}/manifests/{reference}", data=raw, headers={"Content-Type": media_type}),
                    201)
    digest = sha256(raw)
    assert answer.headers.get("Docker-Content-Digest", digest) == digest, answer.headers
    return digest


def tag_manifest(session: LabSession, repo: str, tag: str, manifest_bytes: bytes, media_type: str) -> str:
    """Point ``tag`` at an existing manifest (same bytes, same digest)."""
    return put_manifest(session, repo, tag, manifest_bytes, media_type)


def push_image(session: LabSession, repo: str, tag: str | None, *, kind: str = "oci",
               created: str | None = "2024-01-02T03:04:05Z", labels: dict | None = None, architecture: str = "amd64",
               os: str | None = None, variant: str | None = None, layer_sizes=(1024,), seed: int = 0,
               annotations: dict | None = None, os_name: str = "linux", tar_gzip: bool = False,
               mount_from: str | None = None) -> dict:
    """Push an image (random layers, a real config) under ``tag`` (None: by digest only).

    ``kind``: "oci" or "docker" (schema 2). ``created`` None leaves ``created`` out of the config.
    Returns ``digest``, ``manifest_bytes`` (= ``raw``), ``media_type``, ``manifest`` (dict), ``config`` (dict),
    ``config_bytes``, ``config_digest``, ``layers`` (digests), ``layer_sizes``, ``size`` (config + layers),
    ``manifest_size``.
    """
    if kind not in ("oci", "docker"):
        raise ValueError("kind must be 'oci' or 'docker'")
    os_name = os or os_name
    layers = [random_layer(size, seed * 1000 + i, tar_gzip=tar_gzip) for i, size in enumerate(layer_sizes)]
    layer_digests = [push_blob(session, repo, data, mount_from=mount_from) for data in layers]
    diff_ids = [sha256(gzip.decompress(b)) if tar_gzip else d for b, d in zip(layers, layer_digests)]
    config = {"architecture": architecture, "os": os_name, "config": {"Labels": labels},
              "rootfs": {"type": "layers", "diff_ids": diff_ids},
              "history": [{"created": created or "2000-01-01T00:00:00Z", "created_by": "regops lab"}]}
    if created is not None:
        config["created"] = created
    if variant:
        config["variant"] = variant
    config_raw = json.dumps(config, sort_keys=True).encode()
    config_digest = push_blob(session, repo, config_raw, mount_from=mount_from)
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
    raw = json.dumps(manifest, indent=3).encode()
    digest = put_manifest(session, repo, tag or sha256(raw), raw, manifest["mediaType"])
    return {"digest": digest, "manifest_bytes": raw, "raw": raw, "media_type": manifest["mediaType"],
            "manifest": manifest, "config": config, "config_bytes": config_raw, "config_digest": config_digest,
            "layers": layer_digests, "layer_sizes": [len(b) for b in layers],
            "size": len(config_raw) + sum(len(b) for b in layers), "manifest_size": len(raw)}


def push_index(session: LabSession, repo: str, tag: str | None, *, kind: str = "oci",
               platforms=(("linux", "amd64", None), ("linux", "arm64", "v8")), created: str = "2024-03-04T05:06:07Z",
               labels: dict | None = None, seed: int = 100, with_attestation: bool = False,
               annotations: dict | None = None) -> dict:
    """Children first (by digest), then the index under ``tag``. ``platforms``: ``(os, arch, variant)``.

    ``with_attestation``: adds a BuildKit-style attestation manifest (platform unknown/unknown,
    ``vnd.docker.reference.type: attestation-manifest``) as the last entry (not in ``children``).
    Returns ``digest``, ``manifest_bytes`` (= ``raw``), ``media_type``, ``manifest``, ``children`` (push_image
    dicts plus ``platform``), ``attestation`` (dict or None).
    """
    children = []
    for i, (os_name, arch, variant) in enumerate(platforms):
        child = push_image(session, repo, None, kind=kind, created=created, labels=labels, architecture=arch,
                           os=os_name, variant=variant, seed=seed + i, layer_sizes=(2048, 512))
        platform = {"os": os_name, "architecture": arch}
        if variant:
            platform["variant"] = variant
        child["platform"] = platform
        children.append(child)
    descriptors = [{"mediaType": c["media_type"], "digest": c["digest"], "size": len(c["raw"]),
                    "platform": c["platform"]} for c in children]
    attestation = None
    if with_attestation:
        attestation = push_image(session, repo, None, kind="oci", created=None, architecture="unknown", os="unknown",
                                 seed=seed + 50, layer_sizes=(100,))
        descriptors.append({"mediaType": OCI_MANIFEST, "digest": attestation["digest"], "size": len(attestation["raw"]),
                            "platform": {"os": "unknown", "architecture": "unknown"},
                            "annotations": {"vnd.docker.reference.type": "attestation-manifest",
                                            "vnd.docker.reference.digest": children[0]["digest"]}})
    index = {"schemaVersion": 2, "mediaType": OCI_INDEX if kind == "oci" else DOCKER_LIST, "manifests": descriptors}
    if annotations:
        index["annotations"] = annotations
    raw = json.dumps(index).encode()
    digest = put_manifest(session, repo, tag or sha256(raw), raw, index["mediaType"])
    return {"digest": digest, "manifest_bytes": raw, "raw": raw, "media_type": index["mediaType"], "manifest": index,
            "children": children, "attestation": attestation}


# --- reading ------------------------------------------------------------------------------------

def head_manifest(session: LabSession, repo: str, reference: str) -> str | None:
    """The digest the registry reports for ``reference``, None when absent."""
    answer = session.head(f"/v2/{repo}/manifests/{reference}", headers={"Accept": ACCEPT})
    return answer.headers.get("Docker-Content-Digest") if answer.status_code == 200 else None


def get_manifest(session: LabSession, repo: str, reference: str) -> tuple[bytes, str, str] | None:
    """``(bytes, media_type, digest)`` or None when absent."""
    answer = session.get(f"/v2/{repo}/manifests/{reference}", headers={"Accept": ACCEPT})
    if answer.status_code == 404:
        return None
    _check(answer, 200)
    return answer.content, answer.headers.get("Content-Type", ""), answer.headers.get("Docker-Content-Digest", "")


def delete_manifest(session: LabSession, repo: str, digest: str) -> requests.Response:
    """Raw DELETE by digest (202 when deleted; the caller checks)."""
    return session.delete(f"/v2/{repo}/manifests/{digest}")


def list_tags(session: LabSession, repo: str) -> list[str]:
    """Sorted tags ([] for an unknown repository)."""
    answer = session.get(f"/v2/{repo}/tags/list")
    if answer.status_code == 404:
        return []
    _check(answer, 200)
    return sorted(answer.json().get("tags") or [])


def tag_map(session: LabSession, repo: str) -> dict[str, str]:
    """Every tag -> digest, from raw requests: the independent view of what the registry holds."""
    return {tag: head_manifest(session, repo, tag) for tag in list_tags(session, repo)}


def catalog(session: LabSession) -> list[str]:
    """All repositories, following ``Link`` pages."""
    names: list[str] = []
    url = "/v2/_catalog?n=1000"
    while url:
        answer = _check(session.get(url), 200)
        names += answer.json().get("repositories") or []
        link = answer.headers.get("Link", "")
        match = re.match(r'\s*<([^>]+)>\s*;\s*rel="?next"?', link)
        url = urljoin(answer.url, match.group(1)) if match else ""
    return names


# --- bulk ---------------------------------------------------------------------------------------

def seed_many_repositories(session: LabSession, prefix: str, count: int, concurrency: int = 8) -> list[str]:
    """``count`` repositories ``{prefix}/rNNNN`` with one tiny image (tag ``1``) each, for catalog pagination.

    The first is pushed normally; the others mount its two blobs and PUT the same manifest (3 requests each).
    """
    names = [f"{prefix}/r{i:04d}" for i in range(count)]
    if not names:
        return names
    first = push_image(session, names[0], "1", seed=7, layer_sizes=(64,))
    blobs = [first["config_digest"]] + first["layers"]

    def one(name: str) -> None:
        for digest in blobs:
            answer = _check(session.post(f"/v2/{name}/blobs/uploads/?mount={quote(digest)}&from={names[0]}",
                                         headers={"Content-Length": "0"}), 201, 202)
            if answer.status_code == 202:  # not mounted: upload
                data = first["config_bytes"] if digest == first["config_digest"] else random_layer(64, 7000)
                location = urljoin(answer.url, answer.headers["Location"])
                _check(session.put(f"{location}{'&' if '?' in location else '?'}digest={quote(digest)}", data=data,
                                   headers={"Content-Type": "application/octet-stream"}), 201)
        put_manifest(session, name, "1", first["raw"], first["media_type"])

    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        list(pool.map(one, names[1:]))
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


def push_ci_builds(session: LabSession, repo: str) -> list[tuple[str, str, str, str]]:
    """The demo's CI output to prune (bench/prune.py measures the role on it too): builds of two branches,
    ``main-1`` .. ``main-8`` and ``feature-x-1`` .. ``feature-x-3``, one day apart, ``main-2`` released as ``v1.0.0``.
    Returns (reference, digest, media type, created) per tag."""
    pushed = []
    for n, (tag, day) in enumerate([(f"main-{i}", i) for i in range(1, 9)] + [(f"feature-x-{i}", 10 + i) for i in range(1, 4)]):
        created = f"2024-06-{day:02d}T10:00:00Z"
        build = push_image(session, repo, tag, created=created, seed=100 + n, layer_sizes=(2048,))
        pushed.append((f"{repo}:{tag}", build["digest"], build["media_type"], created))
        if tag == "main-2":
            tag_manifest(session, repo, "v1.0.0", build["raw"], build["media_type"])
            pushed.append((f"{repo}:v1.0.0", build["digest"], build["media_type"], created))
    return pushed


def seed_prune(session: LabSession, repositories: int = 20, prefix: str = "prune", builds: int = 37,
               images_per_repository: int = 30, concurrency: int = 8) -> dict:
    """Repositories shaped like CI output, for retention tests and benchmarks (50 tags each by default).

    Per repository: ``images_per_repository`` build images dated one day apart from 2024-01-01 (image ``i`` on day
    ``i``), tagged ``build-<n>`` with image ``n % images_per_repository`` (so some digests carry two build tags);
    releases ``v1.<k>.0`` on images ``3k`` (k < 5); ``latest`` on the newest image; ``repro-1``, an image dated
    1970-01-01; ``v2.0.0``, an index dated 2023-06-01 whose amd64 child is also tagged ``v2.0.0-amd64``;
    ``multi-old``, an index with an attestation dated 2023-01-01; cosign-style tags ``sha256-<hex>.sig`` for the
    newest image and image 1, and ``sha256-<hex>.att`` for image 0.

    Returns ``{repository: {"tags": {tag: digest}, "images": [digest by i], "created": {digest: created},
    "index_kept": {...push_index}, "index_old": {...push_index}}}``.
    """
    def one(r: int) -> tuple[str, dict]:
        repo = f"{prefix}/r{r:02d}"
        images, created = [], {}
        for i in range(images_per_repository):
            when = f"2024-{1 + i // 28:02d}-{1 + i % 28:02d}T12:00:00Z"
            image = push_image(session, repo, None, created=when, seed=r * 1000 + i, layer_sizes=(256 + i,))
            images.append(image)
            created[image["digest"]] = when
        tags = {}

        def tag(name: str, image: dict) -> None:
            tag_manifest(session, repo, name, image["raw"], image["media_type"])
            tags[name] = image["digest"]

        for n in range(builds):
            tag(f"build-{n}", images[n % images_per_repository])
        for k in range(5):
            tag(f"v1.{k}.0", images[3 * k])
        tag("latest", images[-1])
        repro = push_image(session, repo, "repro-1", created="1970-01-01T00:00:00Z", seed=r * 1000 + 900)
        tags["repro-1"], created[repro["digest"]] = repro["digest"], "1970-01-01T00:00:00Z"
        kept_index = push_index(session, repo, "v2.0.0", created="2023-06-01T00:00:00Z", seed=r * 1000 + 910)
        tags["v2.0.0"] = kept_index["digest"]
        tag("v2.0.0-amd64", kept_index["children"][0])
        old_index = push_index(session, repo, "multi-old", created="2023-01-01T00:00:00Z", seed=r * 1000 + 920,
                               with_attestation=True)
        tags["multi-old"] = old_index["digest"]
        for subject, suffix, s in ((images[-1], "sig", 930), (images[1], "sig", 940), (images[0], "att", 950)):
            name = "sha256-" + subject["digest"].split(":", 1)[1] + "." + suffix
            signature = push_image(session, repo, name, created=None, seed=r * 1000 + s, layer_sizes=(64,),
                                   annotations={"dev.cosignproject.cosign/signature": "x"})
            tags[name] = signature["digest"]
        return repo, {"tags": tags, "images": [i["digest"] for i in images], "created": created,
                      "index_kept": kept_index, "index_old": old_index}

    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        return dict(pool.map(one, range(repositories)))
