"""A scripted transport for the client: real requests.Response objects from a routing function, every request recorded."""

from __future__ import annotations

import hashlib
import io
import json
from dataclasses import dataclass, field

import requests
from requests.adapters import BaseAdapter
from urllib3 import HTTPHeaderDict, HTTPResponse

from ansible_collections.regops.registry.plugins.module_utils._credentials import Credentials
from ansible_collections.regops.registry.plugins.module_utils.client import RegistryClient
from ansible_collections.regops.registry.plugins.module_utils.reference import parse_registry


@dataclass
class Sent:
    method: str
    url: str
    headers: dict
    body: bytes


@dataclass
class Answer:
    status: int = 200
    headers: list = field(default_factory=list)  # list of (name, value): repeated names stay apart
    body: bytes = b""


def error(status: int, code: str, message: str = "", headers=()) -> Answer:
    body = json.dumps({"errors": [{"code": code, "message": message, "detail": None}]}).encode()
    return Answer(status, [("Content-Type", "application/json")] + list(headers), body)


def json_answer(data, headers=(), status=200) -> Answer:
    return Answer(status, [("Content-Type", "application/json")] + list(headers), json.dumps(data).encode())


def _read_body(body) -> bytes:
    if body is None:
        return b""
    if isinstance(body, (bytes, str)):
        return body.encode() if isinstance(body, str) else body
    if hasattr(body, "read"):
        chunks = []
        while True:
            chunk = body.read(65536)
            if not chunk:
                break
            chunks.append(chunk)
        return b"".join(chunks)
    return b"".join(body)


class FakeAdapter(BaseAdapter):
    def __init__(self, route) -> None:
        super().__init__()
        self.route = route
        self.sent: list[Sent] = []

    def send(self, request, stream=False, timeout=None, verify=True, cert=None, proxies=None):
        sent = Sent(request.method, request.url, dict(request.headers), _read_body(request.body))
        self.sent.append(sent)
        answer = self.route(sent)
        if isinstance(answer, Exception):
            raise answer
        headers = HTTPHeaderDict()
        for name, value in answer.headers:
            headers.add(name, value)
        if not any(n.lower() == "content-length" for n, _value in answer.headers):
            headers.add("Content-Length", str(len(answer.body)))
        body = b"" if request.method == "HEAD" else answer.body  # HEAD: headers of a GET, no body
        raw = HTTPResponse(body=io.BytesIO(body), headers=headers, status=answer.status,
                           preload_content=False, decode_content=False, request_method=request.method)
        response = requests.Response()
        response.status_code = answer.status
        response.headers = requests.structures.CaseInsensitiveDict(
            {k: ", ".join(headers.getlist(k)) for k in headers.keys()})
        response.raw = raw
        response.url = request.url
        response.request = request
        response.reason = "fake"
        if not stream:
            response.content  # pylint: disable=pointless-statement  # loads the body like requests does
        return response

    def close(self) -> None:
        pass

    def writes(self) -> list[Sent]:
        return [s for s in self.sent if s.method in ("PUT", "PATCH", "POST", "DELETE")]


def make_client(route, registry="https://reg.test", credentials=None, retries=2):
    adapter = FakeAdapter(route)
    session = requests.Session()
    session.mount("https://", adapter)
    session.mount("http://", adapter)
    client = RegistryClient(parse_registry(registry), credentials or Credentials(), session=session, retries=retries,
                            backoff=0)
    return client, adapter


class MemoryRegistry:
    """Just enough of a registry in memory to drive the flows (uploads, copies, deletes) and their failures.

    Switches reproduce what real registries do: ``tag_delete`` = "none" (2.8: 400 DIGEST_INVALID), "native" (OCI),
    "greedy" (early zot: deletes the manifest and every tag on it); ``deletes`` False answers 405 UNSUPPORTED;
    ``mount`` False answers 202 with a session; ``fail_patch`` = set of PATCH numbers that fail with 503 after
    storing half of their bytes; ``racing_deletes`` = how many digest DELETEs fail as in 2.8's tag-link race;
    ``chunk_min`` > 0: ECR's uploads (a PATCH answers 201, the closing PUT refuses a session whose non-final parts
    were smaller), the minimum announced as ``OCI-Chunk-Min-Length`` if ``announce_chunk_min``.
    """

    def __init__(self, tag_delete="none", deletes=True, mount=True, fail_patch=(), racing_deletes=0, referrers_api=False,
                 chunk_min=0, announce_chunk_min=True):
        self.manifests: dict = {}
        self.tags: dict = {}
        self.blobs: dict = {}
        self.uploads: dict = {}
        self.tag_delete, self.deletes, self.mount, self.fail_patch = tag_delete, deletes, mount, set(fail_patch)
        self.patches = 0
        # distribution 2.8 under concurrent tag writes: the manifest goes, its tags stay (dangling), HTTP 500.
        self.racing_deletes = racing_deletes
        self.referrers_api = referrers_api
        self.chunk_min, self.announce_chunk_min = chunk_min, announce_chunk_min
        self.parts: dict = {}  # upload id -> sizes of its PATCHes

    def add_blob(self, repo, data: bytes) -> str:
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        self.blobs.setdefault(repo, {})[digest] = data
        return digest

    def add_manifest(self, repo, ref, raw: bytes, media_type: str) -> str:
        digest = "sha256:" + hashlib.sha256(raw).hexdigest()
        self.manifests.setdefault(repo, {})[digest] = (raw, media_type)
        if not ref.startswith("sha256:"):
            self.tags.setdefault(repo, {})[ref] = digest
        return digest

    def _manifest(self, repo, ref):
        digest = ref if ref.startswith("sha256:") else self.tags.get(repo, {}).get(ref)
        return digest, self.manifests.get(repo, {}).get(digest)

    def route(self, sent: Sent) -> Answer:  # noqa: C901 - a dispatcher
        from urllib.parse import parse_qs, urlsplit
        parts = urlsplit(sent.url)
        path, query = parts.path, parse_qs(parts.query)
        if path == "/v2/":
            return Answer(200, [], b"{}")
        if "/blobs/uploads/" in path:
            return self._upload(sent, path, query)
        repo, kind, ref = self._split(path)
        if kind == "tags":
            tags = sorted(self.tags.get(repo, {}))
            return json_answer({"name": repo, "tags": tags}) if repo in self.tags else error(404, "NAME_UNKNOWN")
        if kind == "manifests":
            return self._manifests(sent, repo, ref)
        if kind == "referrers":
            if not self.referrers_api:
                return Answer(404, [], b"404 page not found")
            found = [{"mediaType": media_type, "digest": digest, "size": len(raw)}
                     for digest, (raw, media_type) in sorted(self.manifests.get(repo, {}).items())
                     if (json.loads(raw).get("subject") or {}).get("digest") == ref]
            return json_answer({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
                                "manifests": found})
        data = self.blobs.get(repo, {}).get(ref)
        if sent.method == "DELETE":
            return self._delete_blob(repo, ref)
        if data is None:
            return error(404, "BLOB_UNKNOWN")
        return Answer(200, [("Docker-Content-Digest", ref)], b"" if sent.method == "HEAD" else data)

    @staticmethod
    def _split(path):
        rest = path[len("/v2/"):]
        for kind in ("manifests", "blobs", "tags", "referrers"):
            marker = f"/{kind}/"
            if marker in rest:
                repo, ref = rest.split(marker, 1)
                return repo, kind, ref
        raise AssertionError(path)

    def _manifests(self, sent, repo, ref):
        if sent.method in ("GET", "HEAD"):
            digest, found = self._manifest(repo, ref)
            if not found:
                return error(404, "MANIFEST_UNKNOWN")
            raw, media_type = found
            return Answer(200, [("Content-Type", media_type), ("Docker-Content-Digest", digest)],
                          b"" if sent.method == "HEAD" else raw)
        if sent.method == "PUT":
            digest = self.add_manifest(repo, ref, sent.body, sent.headers["Content-Type"])
            return Answer(201, [("Docker-Content-Digest", digest), ("Location", f"/v2/{repo}/manifests/{digest}")])
        if not self.deletes:
            return error(405, "UNSUPPORTED", "The operation is unsupported.")
        if ref.startswith("sha256:"):
            if ref not in self.manifests.get(repo, {}):
                return error(404, "MANIFEST_UNKNOWN")
            del self.manifests[repo][ref]
            if self.racing_deletes:
                self.racing_deletes -= 1
                return error(500, "UNKNOWN", "invalid checksum digest format")
            self.tags[repo] = {t: d for t, d in self.tags.get(repo, {}).items() if d != ref}
            return Answer(202)
        if self.tag_delete == "none":
            return error(400, "DIGEST_INVALID", "provided digest did not match uploaded content")
        digest = self.tags.get(repo, {}).get(ref)
        if digest is None:
            return error(404, "MANIFEST_UNKNOWN")
        if self.tag_delete == "greedy":
            return self._manifests(Sent("DELETE", "", {}, b""), repo, digest)
        del self.tags[repo][ref]
        return Answer(202)

    def _delete_blob(self, repo, digest):
        if not self.deletes:
            return error(405, "UNSUPPORTED")
        return Answer(202) if self.blobs.get(repo, {}).pop(digest, None) is not None else error(404, "BLOB_UNKNOWN")

    def _upload(self, sent, path, query):
        repo = path[len("/v2/"):].split("/blobs/uploads/")[0]
        uid = path.rsplit("/", 1)[-1]
        if sent.method == "POST":
            if "mount" in query:
                digest, source = query["mount"][0], query["from"][0]
                if self.mount and digest in self.blobs.get(source, {}):
                    self.blobs.setdefault(repo, {})[digest] = self.blobs[source][digest]
                    return Answer(201, [("Location", f"/v2/{repo}/blobs/{digest}"), ("Docker-Content-Digest", digest)])
            uid = f"u{len(self.uploads) + 1}"
            self.uploads[uid] = bytearray()
            minimum = [("OCI-Chunk-Min-Length", str(self.chunk_min))] if self.chunk_min and self.announce_chunk_min else []
            return Answer(202, [("Location", f"/v2/{repo}/blobs/uploads/{uid}?_state=s{uid}"), ("Range", "0-0")]
                          + minimum)
        if uid not in self.uploads:
            return error(404, "BLOB_UPLOAD_UNKNOWN")
        buffer = self.uploads[uid]
        location = [("Location", f"/v2/{repo}/blobs/uploads/{uid}?_state=s{uid}-{len(buffer)}")]
        if sent.method == "PATCH":
            self.patches += 1
            if self.patches in self.fail_patch:
                buffer.extend(sent.body[: len(sent.body) // 2])  # a broken connection: half arrived
                return Answer(503)
            buffer.extend(sent.body)
            self.parts.setdefault(uid, []).append(len(sent.body))
            headers = [("Location", f"/v2/{repo}/blobs/uploads/{uid}?_state=x"), ("Range", f"0-{len(buffer) - 1}")]
            return Answer(201 if self.chunk_min else 202, headers)
        if sent.method == "GET":
            return Answer(204, location + [("Range", f"bytes=0-{len(buffer) - 1}")])
        if sent.method == "DELETE":
            del self.uploads[uid]
            return Answer(204)
        buffer.extend(sent.body)
        parts = self.parts.pop(uid, []) + ([len(sent.body)] if sent.body else [])
        if any(part < self.chunk_min for part in parts[:-1]):
            del self.uploads[uid]
            return error(400, "BLOB_UPLOAD_INVALID", "All layer parts except the last part should be at least 5MB")
        digest = query["digest"][0]
        if "sha256:" + hashlib.sha256(bytes(buffer)).hexdigest() != digest:
            del self.uploads[uid]
            return error(400, "DIGEST_INVALID")
        self.blobs.setdefault(repo, {})[digest] = bytes(buffer)
        del self.uploads[uid]
        return Answer(201, [("Location", f"/v2/{repo}/blobs/{digest}"), ("Docker-Content-Digest", digest)])
