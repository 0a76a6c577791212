"""Personalities: emulations of hosted registries (Docker Hub, GHCR, Quay, Harbor, GitLab, ECR, Artifact Registry/GCR,
ACR, Nexus, Artifactory) in front of a plain lab registry, on 127.0.0.1.

None of these services can be reached from a test machine. A personality reproduces what a service's documentation
(or a maintainer's word in an issue thread) says it does, where it differs from distribution 2.8: its auth shape and
token realm, status codes and error bodies, refused deletes, tag-list pagination, blob redirects to a storage host,
rate-limit headers, the service's own delete API, and the OCI 1.1 referrers API where the service has one
(``ReferrersAPI``: distribution 2.8 has none). Everything else is forwarded to the upstream (a plain-mode lab
registry; the personality does its own auth). Each class docstring cites its sources; docs/registries.md lists them
with what each emulation leaves out. An emulation is not a test against the service.

Three servers per personality, each a port standing for a host: ``api`` (the registry host, and the service's own
REST API), ``auth`` (the token realm host, where the service keeps it elsewhere) and ``storage`` (the blob storage
host that redirected blob GETs land on; it refuses an ``Authorization`` header as S3 presigned URLs do). Every request
is recorded in ``seen`` (server, method, path, headers, status)::

    with personality_for("dockerhub", upstream) as hub:
        hub.rate_limit(limit=5)
        ...  # point the client at hub.url with hub.conn()
        assert not [s for s in hub.seen if s.server == "storage" and "Authorization" in s.headers]

Tags are removed one by one (what distribution 2.8 cannot do through its API) the way distribution's own tag store
untags: by removing ``<root>/docker/registry/v2/repositories/<repo>/_manifests/tags/<tag>`` in the upstream's
filesystem storage. Standard library and requests only.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import shutil
import threading
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from re import fullmatch
from urllib.parse import parse_qs, quote, unquote, urlencode, urlsplit

import requests

from tests.lab import faultproxy, transcripts

SERVICES = ("dockerhub", "ghcr", "quay", "harbor", "gitlab", "ecr", "gcr", "acr", "nexus", "artifactory")
WINDOW = 21600  # Docker Hub's rate-limit window: six hours, in seconds
HOP_BY_HOP = faultproxy.HOP_BY_HOP | {"content-length", "content-encoding"}
V2_PATH = r"/v2/(?P<name>.+?)/(?P<kind>manifests|blobs|tags|referrers)/(?P<rest>.*)"
UNTAGGED_BY_API = "untag"  # a V2 tag DELETE that removes only that tag (202)
FORWARD = "forward"  # handled by the upstream (distribution 2.8: a digest DELETE removes the manifest and its tags)


@dataclass
class Seen:
    """One request a personality received; ``server`` is "api", "auth" or "storage"."""

    server: str
    method: str
    path: str
    headers: dict
    status: int | None = None


@dataclass
class Incoming:
    server: str
    method: str
    path: str
    query: dict
    headers: dict
    body: bytes
    raw_path: str
    raw_query: str = ""

    def header(self, name: str) -> str:
        lower = name.lower()
        return next((v for k, v in self.headers.items() if k.lower() == lower), "")

    def arg(self, name: str, default: str = "") -> str:
        return (self.query.get(name) or [default])[0]

    def form(self) -> dict:
        return {k: v[0] for k, v in parse_qs(self.body.decode(errors="replace")).items()}


@dataclass
class Reply:
    status: int
    headers: list = field(default_factory=list)
    body: bytes = b""
    content_length: str | None = None  # a HEAD answer's length of the GET body


def json_reply(status: int, payload, headers: list | None = None) -> Reply:
    return Reply(status, [("Content-Type", "application/json")] + (headers or []), json.dumps(payload).encode())


def registry_error(status: int, code: str, message: str, headers: list | None = None, detail=None) -> Reply:
    """The distribution-spec error body every one of these services answers on /v2/."""
    error = {"code": code, "message": message}
    if detail is not None:
        error["detail"] = detail
    return json_reply(status, {"errors": [error]}, [("Docker-Distribution-API-Version", "registry/2.0")]
                      + (headers or []))


def basic_credentials(value: str) -> tuple[str, str] | None:
    if not value.lower().startswith("basic "):
        return None
    try:
        user, _sep, password = base64.b64decode(value[6:].strip()).decode().partition(":")
    except (ValueError, UnicodeDecodeError):
        return None
    return user, password


def bearer_token(value: str) -> str:
    scheme, _sep, token = value.partition(" ")
    return token.strip() if scheme.lower() in ("bearer", "token") else ""


def fake_jwt(claims: dict) -> str:
    """A JWT-shaped opaque token (clients never verify registry tokens; only the personality reads its grants)."""
    def part(obj) -> str:
        return base64.urlsafe_b64encode(json.dumps(obj).encode()).rstrip(b"=").decode()
    return f"{part({'alg': 'RS256', 'typ': 'JWT'})}.{part(claims)}.{secrets.token_urlsafe(16)}"


@dataclass
class Grant:
    user: str | None
    access: dict  # repository (or "catalog") -> set of actions


class _Server(faultproxy._Server):
    pass


class _Handler(faultproxy._Handler):
    """Reads a request (faultproxy's body reader) and hands it to the personality; writes its Reply."""

    server_version = "personality"

    def setup(self) -> None:  # pylint: disable=super-init-not-called
        faultproxy.BaseHTTPRequestHandler.setup(self)
        self.persona: Personality = self.server.persona
        self._seen = None
        self._upstream = None

    def finish(self) -> None:
        try:
            faultproxy.BaseHTTPRequestHandler.finish(self)
        except OSError:
            pass

    def do_any(self) -> None:
        split = urlsplit(self.path)
        seen = Seen(self.server.role, self.command, self.path, dict(self.headers.items()))
        self.persona._record(seen)
        try:
            body = self._read_body()
            incoming = Incoming(self.server.role, self.command, unquote(split.path), parse_qs(split.query),
                                dict(self.headers.items()), body, split.path, split.query)
            try:
                reply = self.persona.handle(incoming)
            except Exception as exc:  # noqa: BLE001 - a personality bug must show in the test, not hang the client
                self.persona.errors.append(exc)
                reply = Reply(500, [("Content-Type", "text/plain")], f"personality error: {exc!r}".encode())
            seen.status = reply.status
            self._write(reply)
        except (OSError, ValueError):
            self.close_connection = True

    do_GET = do_HEAD = do_POST = do_PUT = do_PATCH = do_DELETE = do_OPTIONS = do_any

    def _write(self, reply: Reply) -> None:
        self.send_response_only(reply.status)
        self.send_header("Date", self.date_time_string())
        for name, value in reply.headers:
            self.send_header(name, value)
        length = reply.content_length if reply.content_length is not None else str(len(reply.body))
        self.send_header("Content-Length", length)
        self.end_headers()
        if self.command != "HEAD" and reply.body:
            self.wfile.write(reply.body)


OCI_INDEX = "application/vnd.oci.image.index.v1+json"
REFERRERS_PAGE = 1  # a referrers list longer than this is paged with ``Link``, so the client's pagination runs
FALLBACK_TAG = r"sha256-(?P<hex>[0-9a-f]{64})"


class ReferrersAPI:
    """The OCI 1.1 referrers API (distribution-spec v1.1 "Listing Referrers" and "Pushing Manifests with Subject"),
    kept by the personality because the upstream (distribution 2.8) has none.

    A manifest PUT whose body has ``subject`` is forwarded; once the upstream stored it, its descriptor (mediaType,
    digest, size, artifactType = ``artifactType`` or the config's mediaType, annotations) is recorded against the
    subject and the answer carries ``OCI-Subject: <subject digest>``. ``GET /v2/<name>/referrers/<digest>`` answers
    an OCI image index of them (empty ``manifests`` when none), filtered by ``artifactType`` (with
    ``OCI-Filters-Applied``), paged by ``REFERRERS_PAGE`` with ``Link``. A digest delete drops the referrer.
    ``referrers`` maps (repository, subject digest) to the descriptors listed now, in push order; ``recorded`` keeps
    every (repository, subject digest, descriptor) ever recorded, for tests that look after a delete.
    """

    referrers: dict
    recorded: list

    def put_manifest_with_subject(self, req: Incoming, name: str) -> Reply:
        subject = subject_of(req.body)
        reply = self.forward(req)
        if subject is None or reply.status != 201:
            return reply
        descriptor = referrer_descriptor(req, json.loads(req.body))
        with self._lock:
            listed = self.referrers.setdefault((name, subject), [])
            listed[:] = [d for d in listed if d["digest"] != descriptor["digest"]] + [descriptor]
            self.recorded.append((name, subject, descriptor))
        reply.headers.append(("OCI-Subject", subject))
        return reply

    def referrers_reply(self, req: Incoming, name: str, digest: str) -> Reply:
        if not fullmatch(r"sha256:[0-9a-f]{64}", digest):
            return registry_error(400, "DIGEST_INVALID", "provided digest did not match uploaded content")
        with self._lock:
            listed = list(self.referrers.get((name, digest), []))
        headers = [("Docker-Distribution-API-Version", "registry/2.0")]
        wanted = req.arg("artifactType")
        if wanted:
            listed = [d for d in listed if d.get("artifactType") == wanted]
            headers.append(("OCI-Filters-Applied", "artifactType"))
        start = int(req.arg("page") or 0)
        if start + REFERRERS_PAGE < len(listed):
            query = urlencode({**({"artifactType": wanted} if wanted else {}), "page": start + REFERRERS_PAGE})
            headers.append(("Link", f'</v2/{name}/referrers/{digest}?{query}>; rel="next"'))
        index = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": listed[start:start + REFERRERS_PAGE]}
        return Reply(200, [("Content-Type", OCI_INDEX)] + headers, json.dumps(index).encode())

    def forget_referrer(self, name: str, digest: str) -> None:
        with self._lock:
            for (repo, _subject), listed in self.referrers.items():
                if repo == name:
                    listed[:] = [d for d in listed if d["digest"] != digest]

    def fallback_tag_as_subject(self, req: Incoming) -> Reply | None:
        """GitLab: a ``sha256-<hex>`` reference that no tag has resolves to the manifest ``sha256:<hex>``, the subject
        itself (https://github.com/oras-project/oras-go/issues/1396); None: not such a reference."""
        match = fullmatch(V2_PATH, req.path)
        tag = fullmatch(FALLBACK_TAG, match["rest"]) if match else None
        if tag is None or match["rest"] in self.tag_links(match["name"]):
            return None
        req.raw_path = f"/v2/{quote(match['name'])}/manifests/sha256:{tag['hex']}"
        return self.forward(req)

    def referrers_of(self, name: str, subject: str) -> list[dict]:
        """What the personality lists for ``subject`` (for tests)."""
        with self._lock:
            return list(self.referrers.get((name, subject), []))


def subject_of(body: bytes) -> str | None:
    try:
        data = json.loads(body or b"null")
    except ValueError:
        return None
    subject = data.get("subject") if isinstance(data, dict) else None
    digest = subject.get("digest") if isinstance(subject, dict) else None
    return digest if isinstance(digest, str) else None


def referrer_descriptor(req: Incoming, data: dict) -> dict:
    descriptor = {"mediaType": data.get("mediaType") or req.header("Content-Type"),
                  "digest": "sha256:" + hashlib.sha256(req.body).hexdigest(), "size": len(req.body)}
    artifact_type = data.get("artifactType") or (data.get("config") or {}).get("mediaType")
    if artifact_type:
        descriptor["artifactType"] = artifact_type
    if data.get("annotations"):
        descriptor["annotations"] = data["annotations"]
    return descriptor


class Personality(ReferrersAPI):
    """The shared machinery: servers, tokens, forwarding, tag lists, deletes. Subclasses set the class attributes
    (what the service does) and add their native API in :meth:`native`."""

    service = ""
    title = ""
    token_service = ""
    realm_path = "/token"
    realm_on_auth_host = True  # the realm is another host (Hub: auth.docker.io; GitLab: the GitLab host)
    bearer = True  # False: Basic only (ECR)
    anonymous_pull = False  # anonymous tokens carry pull on public repositories
    anonymous_ping = 401
    catalog = True
    tag_delete: str | tuple = ("405", "UNSUPPORTED")  # a V2 DELETE by tag: UNTAGGED_BY_API, FORWARD or (status, code)
    digest_delete: str | tuple = FORWARD
    redirect_blobs = True
    tags_paging = "last"  # or "quay"
    tags_max: int | None = None  # "n" above this: 400 UNSUPPORTED (ECR)
    referrers_api = True  # the OCI 1.1 referrers API (ReferrersAPI); False: 404 MANIFEST_UNKNOWN
    username = "alice"
    password = "alice-secret"

    def __init__(self, upstream) -> None:
        self.upstream = upstream
        self.upstream_root = Path(upstream.storage_path) / "docker" / "registry" / "v2" / "repositories"
        self.seen: list[Seen] = []
        self.errors: list[Exception] = []
        self.tokens: dict[str, Grant] = {}
        self.referrers: dict[tuple[str, str], list[dict]] = {}
        self.recorded: list[tuple[str, str, dict]] = []
        self.api_token = f"{self.service}-api-{secrets.token_hex(8)}"
        # Every credential a personality accepts or issues is a secret no test output may show (test_zz_secrets.py).
        transcripts.add_user_secrets({self.username: self.password})
        transcripts.add_secret(self.api_token)
        self._signing_key = secrets.token_bytes(16)
        self._lock = threading.Lock()
        self._local = threading.local()
        self._servers = {role: self._serve(role) for role in ("api", "auth", "storage")}
        self._closed = False

    # --- lifecycle and addresses ---------------------------------------------------------------------

    def _serve(self, role: str) -> _Server:
        server = _Server(("127.0.0.1", 0), _Handler)
        server.persona = self
        server.role = role
        server.proxy = self  # faultproxy's error handler reads nothing else from it
        thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                                  name=f"personality-{self.service}-{role}", daemon=True)
        thread.start()
        server.thread = thread
        return server

    def origin(self, role: str) -> str:
        return f"http://127.0.0.1:{self._servers[role].server_address[1]}"

    @property
    def url(self) -> str:
        return self.origin("api")

    @property
    def host(self) -> str:
        return self.url.split("://", 1)[1]

    @property
    def realm(self) -> str:
        return (self.origin("auth") if self.realm_on_auth_host else self.url) + self.realm_path

    def conn(self) -> dict:
        """Connection options for the collection's modules."""
        return {"registry": self.url, "username": self.username, "password": self.password}

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        for server in self._servers.values():
            server.shutdown()
            server.server_close()
            server.thread.join(5)

    def __enter__(self) -> Personality:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _record(self, seen: Seen) -> None:
        with self._lock:
            self.seen.append(seen)

    def requests_to(self, server: str, method: str | None = None, path: str = "") -> list[Seen]:
        return [s for s in list(self.seen) if s.server == server and (method is None or s.method == method)
                and path in s.path]

    # --- dispatch ------------------------------------------------------------------------------------

    def handle(self, req: Incoming) -> Reply:
        if req.server == "storage":
            return self.storage(req)
        on_realm_host = req.server == "auth" if self.realm_on_auth_host else req.server == "api"
        if on_realm_host:
            answer = self.token_endpoint(req)
            if answer is not None:
                return answer
        if req.server == "auth":
            return Reply(404, body=b"not found")
        answer = self.native(req)
        if answer is not None:
            return answer
        if req.path == "/v2/" or req.path == "/v2":
            return self.ping(req)
        if req.path == "/v2/_catalog":
            return self.v2_catalog(req)
        match = fullmatch(V2_PATH, req.path)
        if match is None:
            return registry_error(404, "NOT_FOUND", "not found")
        return self.v2(req, match["name"], match["kind"], match["rest"])

    def native(self, req: Incoming) -> Reply | None:
        """The service's own REST API on the api host (None: not one of its routes)."""
        return None

    # --- auth ----------------------------------------------------------------------------------------

    def challenge(self, scope: str | None, error: str | None = None) -> str:
        if not self.bearer:
            return f'Basic realm="{self.url}/",service="{self.token_service}"'
        value = f'Bearer realm="{self.realm}",service="{self.token_service}"'
        if scope:
            value += f',scope="{scope}"'
        if error:
            value += f',error="{error}"'
        return value

    def unauthorized(self, scope: str | None, repository: str | None = None, action: str | None = None,
                     error: str | None = None) -> Reply:
        detail = [{"Type": "repository", "Name": repository, "Action": action}] if repository else None
        return registry_error(401, "UNAUTHORIZED", "authentication required",
                              [("WWW-Authenticate", self.challenge(scope, error))], detail)

    def valid_user(self, user: str, password: str) -> bool:
        return hmac.compare_digest(user, self.username) and hmac.compare_digest(password, self.password)

    def grant_for(self, req: Incoming) -> Grant | None:
        """The grant the request's Authorization carries (None: none or invalid)."""
        value = req.header("Authorization")
        if not self.bearer:
            creds = basic_credentials(value)
            if creds and self.valid_user(*creds):
                return Grant(creds[0], {"*": {"pull", "push", "delete", "*"}})
            return None
        return self.tokens.get(bearer_token(value)) if value.lower().startswith("bearer ") else None

    def allows(self, grant: Grant | None, repository: str, action: str) -> bool:
        if grant is None:
            return False
        actions = grant.access.get(repository, set()) | grant.access.get("*", set())
        return action in actions or "*" in actions

    def issue(self, user: str | None, scopes: list[str]) -> str:
        access: dict[str, set] = {}
        for scope in scopes:
            parts = scope.split(":")
            if len(parts) < 3:
                continue
            kind, name, actions = parts[0], ":".join(parts[1:-1]), set(parts[-1].split(","))
            if kind == "registry" and name == "catalog":
                if user is not None and self.catalog:
                    access.setdefault("catalog", set()).update(actions)
                continue
            if kind != "repository":
                continue
            granted = actions if user is not None else (actions & {"pull"} if self.anonymous_pull else set())
            access.setdefault(name, set()).update(granted)
        token = self.new_token({"sub": user or "", "aud": self.token_service, "iat": int(time.time())})
        with self._lock:
            self.tokens[token] = Grant(user, access)
        return token

    @staticmethod
    def new_token(claims: dict) -> str:
        token = fake_jwt(claims)
        transcripts.add_secret(token)
        return token

    def token_endpoint(self, req: Incoming) -> Reply | None:
        """The distribution token protocol at the realm: GET with optional Basic credentials."""
        if req.path != self.realm_path or req.method != "GET":
            return None
        user = None
        creds = basic_credentials(req.header("Authorization"))
        if creds is not None:
            if not self.valid_user(*creds):
                return json_reply(401, {"details": "incorrect username or password"})
            user = creds[0]
        token = self.issue(user, req.query.get("scope", []))
        return json_reply(200, {"token": token, "access_token": token, "expires_in": 300,
                                "issued_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())})

    # --- V2 ------------------------------------------------------------------------------------------

    def ping(self, req: Incoming) -> Reply:
        if self.grant_for(req) is None:
            return self.unauthorized(None)
        return json_reply(200, {}, [("Docker-Distribution-API-Version", "registry/2.0")])

    def v2_catalog(self, req: Incoming) -> Reply:
        grant = self.grant_for(req)
        if not self.catalog or not self.allows(grant, "catalog", "*"):
            error = "insufficient_scope" if grant is not None else None
            return self.unauthorized("registry:catalog:*", error=error)
        return self.forward(req)

    def v2(self, req: Incoming, name: str, kind: str, rest: str) -> Reply:
        action = {"GET": "pull", "HEAD": "pull", "DELETE": "delete"}.get(req.method, "push")
        grant = self.grant_for(req)
        if not self.allows(grant, name, action):
            scope = f"repository:{name}:{action if action != 'push' else 'pull,push'}"
            error = "insufficient_scope" if grant is not None else None
            return self.unauthorized(scope, name, action, error)
        if kind == "manifests" and req.method == "DELETE":
            return self.delete_manifest(req, name, rest)
        if kind == "manifests" and req.method in ("GET", "HEAD"):
            return self.read_manifest(req)
        if kind == "tags" and rest == "list" and req.method == "GET":
            return self.tags_list(req, name)
        if kind == "blobs" and req.method == "GET" and rest.startswith("sha256:") and self.redirect_blobs:
            return self.redirect_blob(name, rest)
        if kind == "referrers":
            if not self.referrers_api:
                return registry_error(404, "MANIFEST_UNKNOWN", "manifest unknown")
            return self.referrers_reply(req, name, rest)
        if kind == "manifests" and req.method == "PUT" and self.referrers_api:
            return self.put_manifest_with_subject(req, name)
        return self.forward(req)

    def read_manifest(self, req: Incoming) -> Reply:
        return self.forward(req)

    # --- deletes -------------------------------------------------------------------------------------

    def delete_manifest(self, req: Incoming, name: str, reference: str) -> Reply:
        rule = self.digest_delete if reference.startswith("sha256:") else self.tag_delete
        if rule == FORWARD:
            reply = self.forward(req)
            if reply.status == 202 and reference.startswith("sha256:"):
                self.forget_referrer(name, reference)
            return reply
        if rule == UNTAGGED_BY_API:
            return self.untag_reply(name, reference, 202)
        status, code = rule
        return registry_error(int(status), code, self.refusal_message(reference))

    def refusal_message(self, reference: str) -> str:
        return "The operation is unsupported."

    def untag_reply(self, name: str, tag: str, status: int) -> Reply:
        if not self.untag(name, tag):
            return registry_error(404, "MANIFEST_UNKNOWN", "manifest unknown", detail={"Tag": tag})
        return Reply(status, [("Docker-Distribution-API-Version", "registry/2.0")])

    def repo_dir(self, name: str) -> Path:
        path = (self.upstream_root / name).resolve()
        if self.upstream_root.resolve() not in path.parents:
            raise ValueError(f"repository name escapes the storage root: {name!r}")
        return path

    def untag(self, name: str, tag: str) -> bool:
        """What distribution's tag store does on untag: remove the tag's directory (its history goes with it)."""
        if "/" in tag or tag in ("", ".", ".."):
            return False
        path = self.repo_dir(name) / "_manifests" / "tags" / tag
        if not (path / "current" / "link").is_file():
            return False
        shutil.rmtree(path)
        return True

    def tag_links(self, name: str) -> dict[str, str]:
        """tag -> digest, from the upstream's storage."""
        tags_dir = self.repo_dir(name) / "_manifests" / "tags"
        links = {}
        for link in sorted(tags_dir.glob("*/current/link")) if tags_dir.is_dir() else ():
            try:
                links[link.parent.parent.name] = link.read_text().strip()
            except FileNotFoundError:  # deleted by a concurrent request since the glob: gone
                continue
        return links

    def tags_by_digest(self, name: str) -> dict[str, list[str]]:
        found: dict[str, list[str]] = {}
        for tag, digest in self.tag_links(name).items():  # sorted by tag
            found.setdefault(digest, []).append(tag)
        return found

    def revisions(self, name: str) -> list[tuple[str, float]]:
        """(digest, mtime) of every manifest the repository holds, newest first."""
        base = self.repo_dir(name) / "_manifests" / "revisions" / "sha256"
        found = []
        for link in base.glob("*/link") if base.is_dir() else ():
            try:
                found.append((f"sha256:{link.parent.name}", link.stat().st_mtime))
            except FileNotFoundError:  # deleted by a concurrent request since the glob: gone
                continue
        return sorted(found, key=lambda item: (-item[1], item[0]))

    def delete_upstream(self, name: str, digest: str) -> int:
        return self.session().delete(f"{self.upstream.url}/v2/{name}/manifests/{digest}", timeout=30).status_code

    # --- tag lists -----------------------------------------------------------------------------------

    def tags_list(self, req: Incoming, name: str) -> Reply:
        answer = self.session().get(f"{self.upstream.url}/v2/{name}/tags/list", timeout=30)
        if answer.status_code != 200:
            return self.relay(answer, "GET")
        tags = sorted(answer.json().get("tags") or [])
        if self.tags_max is not None and req.arg("n") and int(req.arg("n")) > self.tags_max:
            return registry_error(400, "UNSUPPORTED", f"invalid number of results requested: maximum {self.tags_max}")
        if self.tags_paging == "quay":
            return self.quay_page(req, name, tags)
        return self.last_page(req, name, tags)

    def last_page(self, req: Incoming, name: str, tags: list[str]) -> Reply:
        """``n``/``last`` paging with a relative ``Link``, as the distribution spec describes."""
        last = req.arg("last")
        if last:
            tags = [t for t in tags if t > last]
        if not req.arg("n"):
            return json_reply(200, {"name": name, "tags": tags})
        size = max(0, int(req.arg("n")))
        page = tags[:size]
        headers = []
        if size and len(tags) > size:
            headers.append(("Link", f'</v2/{name}/tags/list?{urlencode({"n": size, "last": page[-1]})}>; rel="next"'))
        return json_reply(200, {"name": name, "tags": page}, headers)

    def quay_page(self, req: Incoming, name: str, tags: list[str]) -> Reply:
        """Quay: ``n`` clamped into [1, 100] (50 when absent), an absolute ``Link`` carrying a ``next_page`` token."""
        size = min(100, max(1, int(req.arg("n") or 50)))
        start = 0
        token = req.arg("next_page")
        if token:
            try:
                start = int(json.loads(base64.urlsafe_b64decode(token.encode()))["offset"])
            except (ValueError, KeyError, TypeError):
                return registry_error(400, "UNSUPPORTED", "invalid next_page token")
        page = tags[start:start + size]
        headers = []
        if start + size < len(tags):
            token = base64.urlsafe_b64encode(json.dumps({"offset": start + size}).encode()).decode()
            query = urlencode({"n": size, "next_page": token})
            headers.append(("Link", f'<{self.url}/v2/{name}/tags/list?{query}>; rel="next"'))
        return json_reply(200, {"name": name, "tags": page}, headers)

    # --- blobs and the storage host -------------------------------------------------------------------

    def signature(self, name: str, digest: str) -> str:
        return hmac.new(self._signing_key, f"{name}@{digest}".encode(), hashlib.sha256).hexdigest()

    def redirect_blob(self, name: str, digest: str) -> Reply:
        """307 to a presigned URL on the storage host (the query string carries the authorization)."""
        query = urlencode({"X-Amz-Algorithm": "AWS4-HMAC-SHA256", "X-Amz-Expires": "1200",
                           "X-Amz-Signature": self.signature(name, digest)})
        location = f"{self.origin('storage')}/bucket/{quote(name)}/blobs/{digest}?{query}"
        return Reply(307, [("Location", location), ("Docker-Distribution-API-Version", "registry/2.0")])

    def storage(self, req: Incoming) -> Reply:
        """The storage host: a presigned URL works alone; another credential beside it is refused (S3: 400)."""
        match = fullmatch(r"/bucket/(?P<name>.+)/blobs/(?P<digest>sha256:[0-9a-f]{64})", req.path)
        if match is None or req.method not in ("GET", "HEAD"):
            return Reply(404, [("Content-Type", "application/xml")], b"<Error><Code>NoSuchKey</Code></Error>")
        if req.header("Authorization"):
            return Reply(400, [("Content-Type", "application/xml")],
                         b"<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>InvalidArgument</Code><Message>"
                         b"Only one auth mechanism allowed; only the X-Amz-Algorithm query parameter, Signature query"
                         b" string parameter or the Authorization header should be specified</Message></Error>")
        if not hmac.compare_digest(req.arg("X-Amz-Signature"), self.signature(match["name"], match["digest"])):
            return Reply(403, [("Content-Type", "application/xml")],
                         b"<Error><Code>SignatureDoesNotMatch</Code></Error>")
        headers = {"Range": req.header("Range")} if req.header("Range") else {}
        answer = self.session().request(req.method, f"{self.upstream.url}/v2/{match['name']}/blobs/{match['digest']}",
                                        headers=headers, timeout=60, allow_redirects=False)
        reply = self.relay(answer, req.method)
        reply.headers = [(k, v) for k, v in reply.headers if k.lower() not in ("docker-distribution-api-version",)]
        return reply

    # --- forwarding ----------------------------------------------------------------------------------

    def session(self) -> requests.Session:
        session = getattr(self._local, "session", None)
        if session is None:
            session = self._local.session = requests.Session()
            session.trust_env = False
        return session

    def forward(self, req: Incoming) -> Reply:
        headers = {k: v for k, v in req.headers.items()
                   if k.lower() not in HOP_BY_HOP and k.lower() not in ("host", "authorization", "accept-encoding")}
        target = f"{self.upstream.url}{req.raw_path}" + (f"?{req.raw_query}" if req.raw_query else "")
        answer = self.session().request(req.method, target, headers=headers, data=req.body or None, timeout=60,
                                        allow_redirects=False)
        return self.relay(answer, req.method)

    def relay(self, answer: requests.Response, method: str) -> Reply:
        headers = []
        for name, value in answer.headers.items():
            if name.lower() in HOP_BY_HOP or name.lower() == "date":
                continue
            if name.lower() in ("location", "link"):
                value = value.replace(self.upstream.url, self.url)
            headers.append((name, value))
        reply = Reply(answer.status_code, headers, answer.content if method != "HEAD" else b"")
        if method == "HEAD":
            reply.content_length = answer.headers.get("Content-Length", "0")
        return reply


class DockerHub(Personality):
    """Docker Hub (registry-1.docker.io, auth.docker.io, hub.docker.com), emulated.

    - Token realm on another host (auth.docker.io), service ``registry.docker.io``, anonymous pull tokens:
      https://docs.docker.com/docker-hub/usage/pulls/ (the ``ratelimitpreview/test`` token example).
    - ``ratelimit-limit`` / ``ratelimit-remaining: N;w=21600`` on manifest GET and HEAD; only GET counts; 429
      ``TOOMANYREQUESTS`` when exhausted: https://docs.docker.com/docker-hub/usage/pulls/ ,
      https://gist.github.com/jeversol/369009aaad4cd2cd8e2610fa68d4c4be (headers of a HEAD).
    - V2 manifest DELETE refused 405 ``UNSUPPORTED``: https://github.com/docker/hub-feedback/issues/2360 ,
      https://github.com/docker/hub-feedback/issues/1759 .
    - No catalog (the token never carries ``registry:catalog:*``): https://github.com/docker/hub-feedback/issues/2094 .
    - No referrers API: https://github.com/docker/roadmap/issues/724 .
    - Blob GETs redirected to a storage host (Cloudflare R2 / S3 presigned URLs).
    - Native delete (hub.docker.com API, here on the api port): ``POST /v2/auth/token`` ``{"identifier", "secret"}``
      -> ``{"access_token"}``: https://docs.docker.com/reference/api/hub/latest/operations/AuthCreateAccessToken/ ;
      ``DELETE /v2/repositories/{namespace}/{repository}/tags/{tag}`` (``/`` at the end accepted) with
      ``Authorization: Bearer <JWT>`` -> 204: https://docs.docker.com/reference/api/hub/latest/ .
    """

    service = "dockerhub"
    title = "Docker Hub"
    token_service = "registry.docker.io"
    anonymous_pull = True
    catalog = False
    password = "dckr_pat_alice"
    referrers_api = False
    digest_delete = ("405", "UNSUPPORTED")

    def __init__(self, upstream) -> None:
        super().__init__(upstream)
        self.limit = 100
        self.remaining = 100
        self.hub_tokens: set[str] = set()

    def rate_limit(self, limit: int, remaining: int | None = None) -> None:
        """The pull budget for the next requests (per test)."""
        with self._lock:
            self.limit = limit
            self.remaining = limit if remaining is None else remaining

    def read_manifest(self, req: Incoming) -> Reply:
        with self._lock:
            if req.method == "GET" and self.remaining <= 0:
                exhausted = True
            else:
                exhausted = False
                if req.method == "GET":
                    self.remaining -= 1
            limit, remaining = self.limit, self.remaining
        headers = [("ratelimit-limit", f"{limit};w={WINDOW}"), ("ratelimit-remaining", f"{remaining};w={WINDOW}"),
                   ("docker-ratelimit-source", "127.0.0.1")]
        if exhausted:
            return registry_error(429, "TOOMANYREQUESTS", "You have reached your unauthenticated pull rate limit. "
                                  "https://www.docker.com/increase-rate-limit", headers)
        reply = self.forward(req)
        if reply.status == 200:
            reply.headers += headers
        return reply

    def native(self, req: Incoming) -> Reply | None:
        if req.path == "/v2/auth/token" and req.method == "POST":
            try:
                body = json.loads(req.body or b"{}")
            except ValueError:
                return json_reply(400, {"message": "invalid JSON"})
            if not self.valid_user(str(body.get("identifier", "")), str(body.get("secret", ""))):
                return json_reply(401, {"detail": "Incorrect authentication credentials", "message":
                                        "Incorrect authentication credentials"})
            token = self.new_token({"sub": self.username, "iss": "hub.docker.com"})
            with self._lock:
                self.hub_tokens.add(token)
            return json_reply(200, {"access_token": token})
        match = fullmatch(r"/v2/(?:repositories/(?P<ns>[^/]+)/(?P<repo>[^/]+)|namespaces/(?P<ns2>[^/]+)/repositories/"
                          r"(?P<repo2>[^/]+))/tags/(?P<tag>[^/]+)/?", req.path)
        if match is None or req.method != "DELETE":
            return None
        if bearer_token(req.header("Authorization")) not in self.hub_tokens:
            return json_reply(401, {"detail": "Authentication credentials were not provided."})
        name = f"{match['ns'] or match['ns2']}/{match['repo'] or match['repo2']}"
        if not self.untag(name, match["tag"]):
            return json_reply(404, {"message": "tag not found", "errinfo": {"tag": match["tag"]}})
        return Reply(204)


class GHCR(Personality):
    """GitHub Container Registry (ghcr.io; the GitHub REST API at api.github.com), emulated.

    - Bearer realm ``https://ghcr.io/token`` on the registry host, service ``ghcr.io``, anonymous pull tokens for
      public packages: https://docs.github.com/packages/working-with-a-github-packages-registry/working-with-the-container-registry .
    - V2 manifest DELETE refused 405 ``UNSUPPORTED``; deletes only through package versions:
      https://github.com/okxlin/docker-mirror-monitor/issues/13 .
    - No catalog: https://github.com/oras-project/oras-go/issues/621 .
    - Referrers endpoint is not the API (404 ``MANIFEST_UNKNOWN``: use the tag fallback):
      https://github.com/NVIDIA/aicr/issues/1957 , https://github.com/rtvkiz/minimal/issues/7 .
    - Blob GETs redirected to pkg-containers.githubusercontent.com (the storage host here).
    - Native API: ``GET /orgs/{org}/packages/container/{package}/versions`` and ``/users/{user}/...`` with
      ``per_page``/``page`` and ``Link``; ``DELETE .../versions/{id}`` -> 204 (the manifest, so every tag on it);
      nested package names URL-encoded (``a%2Fb``); ``Authorization: Bearer <PAT>``:
      https://docs.github.com/rest/packages/packages . Index children appear as untagged versions.
    """

    service = "ghcr"
    title = "GHCR"
    token_service = "ghcr.io"
    realm_on_auth_host = False
    anonymous_pull = True
    catalog = False
    password = "ghp_alice"
    referrers_api = False
    digest_delete = ("405", "UNSUPPORTED")

    def version_id(self, digest: str) -> int:
        return int(digest.split(":", 1)[1][:8], 16)

    def versions(self, name: str) -> list[dict]:
        tags = self.tags_by_digest(name)
        stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        return [{"id": self.version_id(digest), "name": digest, "url": "", "created_at": stamp, "updated_at": stamp,
                 "metadata": {"package_type": "container", "container": {"tags": tags.get(digest, [])}}}
                for digest, _mtime in self.revisions(name)]

    def native(self, req: Incoming) -> Reply | None:
        match = fullmatch(r"/(?P<kind>orgs|users)/(?P<owner>[^/]+)/packages/container/(?P<pkg>[^/]+)/versions"
                          r"(?:/(?P<id>\d+))?", req.raw_path)
        if match is None:
            return None
        if bearer_token(req.header("Authorization")) != self.api_token:
            return json_reply(401, {"message": "Bad credentials", "documentation_url":
                                    "https://docs.github.com/rest"})
        name = f"{unquote(match['owner'])}/{unquote(match['pkg'])}"
        versions = self.versions(name)
        if match["id"] is None and req.method == "GET":
            return self.versions_page(req, match.group(0), versions)
        version = next((v for v in versions if str(v["id"]) == match["id"]), None)
        if version is None:
            return json_reply(404, {"message": "Not Found"})
        if req.method == "DELETE":
            status = self.delete_upstream(name, version["name"])
            return Reply(204) if status == 202 else json_reply(500, {"message": f"upstream answered {status}"})
        return json_reply(200, version) if req.method == "GET" else None

    def versions_page(self, req: Incoming, path: str, versions: list[dict]) -> Reply:
        size = min(100, max(1, int(req.arg("per_page") or 30)))
        page = max(1, int(req.arg("page") or 1))
        last = max(1, -(-len(versions) // size))
        links = []
        if page < last:
            links.append(f'<{self.url}{path}?{urlencode({"per_page": size, "page": page + 1})}>; rel="next"')
            links.append(f'<{self.url}{path}?{urlencode({"per_page": size, "page": last})}>; rel="last"')
        return json_reply(200, versions[(page - 1) * size:page * size], [("Link", ", ".join(links))] if links else [])


class Quay(Personality):
    """Quay (quay.io / Red Hat Quay), emulated.

    - ``/v2/`` answers 401 to an anonymous ping even for public repositories, yet the realm (``/v2/auth`` on the
      registry host, service = the host) gives anonymous pull tokens: the RG-07 note in the protocol facts,
      https://docs.quay.io/ (robot accounts ``org+name`` log in with Basic to the realm).
    - V2 DELETE by tag: 202, removes only that tag (since 2024, PROJQUAY-7599):
      https://github.com/quay/quay/pull/3128 , https://github.com/regclient/regclient/issues/393 .
    - Tag lists: ``n`` clamped into [1, 100] (50 by default), absolute ``Link`` with a ``next_page`` token:
      https://github.com/TritonDataCenter/node-docker-registry-client/issues/12 ,
      https://github.com/deitch/docker_registry2/issues/107 .
    - Blob GETs redirected to S3/CloudFront.
    - Native delete: ``DELETE /api/v1/repository/{namespace}/{repository}/tag/{tag}`` with an OAuth Bearer token ->
      204, removes only that tag: https://docs.quay.io/api/swagger/ (deleteFullTag).
    - The referrers API (behind a feature flag on Quay): https://github.com/quay/quay/pull/2597 .
    """

    service = "quay"
    title = "Quay"
    token_service = ""
    realm_path = "/v2/auth"
    realm_on_auth_host = False
    anonymous_pull = True
    tag_delete = UNTAGGED_BY_API
    tags_paging = "quay"
    username = "org+robot"

    def __init__(self, upstream) -> None:
        super().__init__(upstream)
        self.token_service = self.host

    def native(self, req: Incoming) -> Reply | None:
        match = fullmatch(r"/api/v1/repository/(?P<name>.+)/tag/(?P<tag>[^/]+)", req.path)
        if match is None or req.method != "DELETE":
            return None
        if bearer_token(req.header("Authorization")) != self.api_token:
            return json_reply(401, {"error": "invalid_token", "error_description": "The access token is invalid"})
        if not self.untag(match["name"], match["tag"]):
            return json_reply(404, {"detail": "Not Found", "error_message": "Not Found", "status": 404,
                                    "title": "not_found"})
        return Reply(204)


class Harbor(Personality):
    """Harbor 2.x, emulated.

    - Bearer realm ``/service/token`` on the registry host, service ``harbor-registry``; private projects here (no
      anonymous pull): https://goharbor.io/docs/ (robot accounts ``robot$name``).
    - V2 DELETE by tag refused: 400 ``UNSUPPORTED`` "unsupported digest <tag>: ..." (Harbor's deleteManifest parses
      the reference as a digest, "v2 doesn't support delete by tag", and maps ``UNSUPPORTED`` to 400:
      goharbor/harbor ``src/server/registry/manifest.go``, ``src/lib/http/error.go``); DELETE by digest removes the
      artifact with every tag on it: https://github.com/goharbor/harbor/issues/11971 ,
      https://github.com/goharbor/harbor/issues/2663 .
    - Catalog for system admins only (alice is one here).
    - Blobs served directly (Harbor redirects only with a redirecting storage driver).
    - Native: ``GET /api/v2.0/systeminfo`` (200, ``harbor_version``, anonymous);
      ``DELETE /api/v2.0/projects/{project}/repositories/{repository}/artifacts/{reference}/tags/{tag}`` with Basic
      credentials -> 200; a nested repository name is URL-encoded twice (``a%252Fb``):
      https://goharbor.io/docs/latest/build-customize-contribute/configure-swagger/ ,
      https://github.com/goharbor/harbor/issues/17928 .
    - The referrers API (since 2.8): https://github.com/goharbor/community/commit/b4c27b41d53418c4a18f0f91b54f36c38c333b4e ,
      https://github.com/goharbor/harbor/issues/19690 .
    """

    service = "harbor"
    title = "Harbor"
    token_service = "harbor-registry"
    realm_path = "/service/token"
    realm_on_auth_host = False
    tag_delete = ("400", "UNSUPPORTED")
    redirect_blobs = False
    username = "robot$ci"
    version = "v2.11.0-personality"

    def refusal_message(self, reference: str) -> str:
        return f"unsupported digest {reference}: invalid checksum digest format"

    def native(self, req: Incoming) -> Reply | None:
        if req.path == "/api/v2.0/systeminfo" and req.method == "GET":
            return json_reply(200, {"harbor_version": self.version, "auth_mode": "db_auth",
                                    "registry_url": self.host, "with_chartmuseum": False})
        match = fullmatch(r"/api/v2\.0/projects/(?P<project>[^/]+)/repositories/(?P<repo>[^/]+)/artifacts/"
                          r"(?P<ref>[^/]+)/tags/(?P<tag>[^/]+)", req.raw_path)
        if match is None:
            return None
        creds = basic_credentials(req.header("Authorization"))
        if creds is None or not self.valid_user(*creds):
            return json_reply(401, {"errors": [{"code": "UNAUTHORIZED", "message": "unauthorized"}]})
        if req.method != "DELETE":
            return json_reply(405, {"errors": [{"code": "METHOD_NOT_ALLOWED", "message": "method not allowed"}]})
        name = f"{unquote(match['project'])}/{unquote(unquote(match['repo']))}"
        reference, tag = unquote(match["ref"]), unquote(match["tag"])
        links = self.tag_links(name)
        artifact = reference if reference.startswith("sha256:") else links.get(reference)
        if links.get(tag) is None or links.get(tag) != artifact or not self.untag(name, tag):
            return json_reply(404, {"errors": [{"code": "NOT_FOUND", "message": f"tag {tag} not found"}]})
        return Reply(200)


class GitLab(Personality):
    """GitLab container registry, emulated.

    - Bearer realm ``/jwt/auth`` on the GitLab host (another host than the registry), service ``container_registry``;
      private projects (PAT or deploy token as password): https://docs.gitlab.com/ee/user/packages/container_registry/ ,
      https://github.com/werf/werf/issues/7866 .
    - V2 DELETE by tag and by digest work (202; a tag DELETE removes only that tag):
      https://github.com/oras-project/oras-go/issues/1396 .
    - No catalog (401 on ``registry:catalog:*``; GitLab's REST API lists repositories):
      https://github.com/Joxit/docker-registry-ui/issues/443 .
    - Blob GETs redirected to object storage (gitlab.com: Google Cloud Storage).
    - No referrers API (404), and ``sha256-<hex>`` with no such tag resolves to the subject itself:
      https://github.com/oras-project/oras-go/issues/1396 .
    """

    service = "gitlab"
    title = "GitLab"
    token_service = "container_registry"
    realm_path = "/jwt/auth"
    catalog = False
    tag_delete = UNTAGGED_BY_API
    password = "glpat-alice"
    referrers_api = False

    def read_manifest(self, req: Incoming) -> Reply:
        return self.fallback_tag_as_subject(req) or self.forward(req)


class ECR(Personality):
    """Amazon ECR, emulated.

    - Basic auth only: user ``AWS``, password the 12-hour token of GetAuthorizationToken; no Bearer realm:
      https://docs.aws.amazon.com/AmazonECR/latest/userguide/registry_auth.html .
    - V2 DELETE by digest supported (it long answered 404, https://github.com/fluxcd/pkg/pull/328 ; marked shipped:
      https://github.com/aws/containers-roadmap/issues/1229 ); a tag DELETE is refused (the status is not documented:
      405 ``UNSUPPORTED`` here; ECR removes tags through BatchDeleteImage, which needs AWS request signing).
    - ``n`` above 1000 refused: https://github.com/google/go-containerregistry/issues/681 .
    - Blob GETs 307 to S3 presigned URLs that refuse an ``Authorization`` header:
      https://github.com/renovatebot/renovate/issues/3877 , https://github.com/open-policy-agent/opa/issues/6728 .
    - Uploads: every part but the last at least 5 MiB, checked when the upload is closed (LayerPartTooSmallException
      "Layer parts must be at least 5 MiB in size" is an error of CompleteLayerUpload, the call behind the closing
      PUT: https://docs.rs/aws-sdk-ecr/0.24.0/aws_sdk_ecr/error/enum.CompleteLayerUploadErrorKind.html ; CloudTrail
      "All layer parts except the last part should be at least 5MB":
      https://github.com/dotnet/sdk-container-builds/issues/424 , and
      https://github.com/dotnet/sdk-container-builds/pull/279 by the AWS SDK team). The V2 status of that refusal is
      not documented: 400 ``BLOB_UPLOAD_INVALID`` here, the upload abandoned. Nothing says ECR announces the minimum
      (``OCI-Chunk-Min-Length``, distribution spec 1.1): ``announce_chunk_min`` is off, a test may turn it on.
    - A PATCH answers 201, not 202 (dotnet/sdk-container-builds#279, https://github.com/openai/tart/issues/273 ,
      https://github.com/kitops-ml/kitops/issues/821 ).
    - The referrers API (OCI 1.1 support): https://github.com/awslabs/soci-snapshotter/pull/1327 (the 405 reported on
      some referrer pushes, https://github.com/aws/containers-roadmap/issues/2783 , is not emulated).
    """

    service = "ecr"
    title = "Amazon ECR"
    token_service = "ecr.amazonaws.com"
    bearer = False
    username = "AWS"
    password = "ecr-authorization-token"
    tags_max = 1000
    chunk_min = 5 << 20
    announce_chunk_min = False

    def __init__(self, upstream) -> None:
        super().__init__(upstream)
        self.parts: dict[str, list[int]] = {}  # upload session -> sizes of its PATCHes

    def v2(self, req: Incoming, name: str, kind: str, rest: str) -> Reply:
        if kind == "blobs" and rest.startswith("uploads") and self.allows(self.grant_for(req), name, "push"):
            return self.upload(req, rest)
        return super().v2(req, name, kind, rest)

    def upload(self, req: Incoming, rest: str) -> Reply:
        session = rest.rstrip("/").rpartition("/")[2]
        if req.method == "PATCH":
            reply = self.forward(req)
            if reply.status == 202:
                with self._lock:
                    self.parts.setdefault(session, []).append(len(req.body))
                reply.status = 201
            return reply
        if req.method == "PUT":
            with self._lock:
                parts = self.parts.pop(session, []) + ([len(req.body)] if req.body else [])
            if any(part < self.chunk_min for part in parts[:-1]):
                self.forward(Incoming(req.server, "DELETE", req.path, {}, {}, b"", req.raw_path, req.raw_query))
                return registry_error(400, "BLOB_UPLOAD_INVALID",
                                      "All layer parts except the last part should be at least 5MB")
            return self.forward(req)
        reply = self.forward(req)
        if req.method == "POST" and reply.status == 202 and self.announce_chunk_min:
            reply.headers.append(("OCI-Chunk-Min-Length", str(self.chunk_min)))
        return reply


class GCR(Personality):
    """Google Artifact Registry / gcr.io, emulated.

    - Bearer realm ``/v2/token`` on the registry host, service ``gcr.io``; user ``oauth2accesstoken`` with an access
      token (or ``_json_key``): https://cloud.google.com/artifact-registry/docs/docker/authentication .
    - A digest DELETE is refused with 400 ``GOOGLE_MANIFEST_DANGLING_TAG`` while a tag points at the manifest; a tag
      DELETE answers 202 and removes that tag: https://github.com/genuinetools/reg/issues/136 ,
      https://github.com/GoogleCloudPlatform/docker-credential-gcr/issues/73 .
    - Blob GETs redirected to Cloud Storage.
    - The referrers API (Artifact Registry; reported, no Google page found).
    """

    service = "gcr"
    title = "Artifact Registry / GCR"
    token_service = "gcr.io"
    realm_path = "/v2/token"
    realm_on_auth_host = False
    tag_delete = UNTAGGED_BY_API
    username = "oauth2accesstoken"
    password = "ya29.alice-access-token"

    def delete_manifest(self, req: Incoming, name: str, reference: str) -> Reply:
        if reference.startswith("sha256:"):
            dangling = sorted(tag for tag, digest in self.tag_links(name).items() if digest == reference)
            if dangling:
                return registry_error(400, "GOOGLE_MANIFEST_DANGLING_TAG",
                                      f"Manifest is still referenced by tag: {dangling[0]}")
        return super().delete_manifest(req, name, reference)


class Nexus(Personality):
    """Sonatype Nexus Repository (a Docker hosted repository), emulated from reported behaviour.

    - HEAD of a manifest by tag answers 404 (an HTML page) where GET works: reported for 3.2.1 (2017) and still for
      Nexus OSS in 2026: https://github.com/andrey-pohilko/registry-cli/issues/14 ,
      https://github.com/andrey-pohilko/registry-cli/issues/43 , https://github.com/crazy-max/diun/issues/1614 .
      HEAD by digest works here (no report says otherwise).
    - Tag lists without pagination: ``n`` ignored, no ``Link``: https://github.com/sonatype/nexus-public/issues/209
      (reported working again in 3.64).
    - No ``Docker-Content-Digest`` on manifest answers (reported with some setups; distribution/distribution#3792,
      regclient/regclient#363 list registries that omit it): the digest is the hash of the bytes.
    - Basic auth (Nexus's default realm; the Docker Bearer Token Realm is optional); blobs served by Nexus itself.
    - V2 DELETE by digest forwarded (Nexus documents deleting images by manifest digest); a tag DELETE refused
      (405 ``UNSUPPORTED``: the status is not documented).
    - No referrers API (none documented or reported): 404, clients use the ``sha256-<hex>`` fallback tag.
    """

    service = "nexus"
    title = "Nexus"
    token_service = "nexus"
    bearer = False
    redirect_blobs = False
    username = "deployer"
    referrers_api = False

    def read_manifest(self, req: Incoming) -> Reply:
        reference = req.path.rpartition("/manifests/")[2]
        if req.method == "HEAD" and not reference.startswith("sha256:"):
            return Reply(404, [("Content-Type", "text/html")], b"<html><title>404 - Nexus Repository Manager</title>")
        reply = self.forward(req)
        reply.headers = [(k, v) for k, v in reply.headers if k.lower() != "docker-content-digest"]
        return reply

    def last_page(self, req: Incoming, name: str, tags: list[str]) -> Reply:
        return json_reply(200, {"name": name, "tags": tags})


class Artifactory(Personality):
    """JFrog Artifactory (a Docker repository reached by its repository path), emulated from reported behaviour.

    - The V2 API under a path prefix, ``/artifactory/api/docker/<repo-key>/v2/...`` (JFrog's repository path method;
      the form used in https://github.com/renovatebot/renovate/issues/15080 ); the registry URL carries that prefix.
    - Its ``Link`` for the next page of tags drops the repository part of the path (JFrog RTFACT-18971, deferred;
      renovatebot/renovate#15080, https://github.com/renovatebot/renovate/pull/20745 ): ``</v2/<name>/tags/list?...>``.
      The catalog's next link, forwarded from the upstream, loses the prefix the same way.
    - Bearer tokens from a realm under the same prefix, service = the host.
    - V2 DELETE by digest forwarded; a tag DELETE refused (405 ``UNSUPPORTED``: the status is not documented).
    - The referrers API (since 7.90.1): https://jfrog.com/help/r/jfrog-artifactory-documentation/use-referrers-rest-api-to-discover-oci-references .
    """

    service = "artifactory"
    title = "Artifactory"
    prefix = "/artifactory/api/docker/docker-local"
    realm_path = "/v2/token"
    realm_on_auth_host = False
    redirect_blobs = False
    username = "ci-deployer"

    def __init__(self, upstream) -> None:
        super().__init__(upstream)
        self.token_service = self.origin("api").split("://", 1)[1]

    @property
    def url(self) -> str:
        """The registry URL, prefix included (what ``registry`` is set to)."""
        return self.origin("api") + self.prefix

    @property
    def host(self) -> str:
        """The host image references name (the prefix lives in the registry URL only)."""
        return self.origin("api").split("://", 1)[1]

    def handle(self, req: Incoming) -> Reply:
        if req.server != "api":
            return super().handle(req)
        if not req.path.startswith(self.prefix + "/"):
            return Reply(404, [("Content-Type", "application/json")], b'{"errors":[{"status":404,"message":"Not Found"}]}')
        inner = replace(req, path=req.path[len(self.prefix):], raw_path=req.raw_path[len(self.prefix):])
        return super().handle(inner)


class ACR(Personality):
    """Azure Container Registry, emulated.

    - Bearer realm ``/oauth2/token`` on the registry host, service = the host; the admin user's Basic credentials
      at the realm; the AAD flow: ``POST /oauth2/exchange`` (``grant_type=access_token``, ``service``,
      ``access_token``) -> ``refresh_token``, then ``POST /oauth2/token`` (``grant_type=refresh_token``, ``service``,
      ``scope``, ``refresh_token``) -> ``access_token``; an identity token in config.json is such a refresh token:
      https://azure.github.io/acr/AAD-OAuth.html .
    - V2 DELETE by digest works; a tag DELETE is refused (https://github.com/fluxcd/pkg/pull/328 ; the status is not
      documented: 405 ``UNSUPPORTED`` here; ACR untags through its own API).
    - Native: ``DELETE /acr/v1/{repository}/_tags/{tag}`` -> 202 (removes only the tag);
      ``GET /acr/v1/{repository}/_manifests?orderby=timedesc`` (``n``/``last``); a Bearer token of the realm
      (scope ``repository:<name>:delete`` / ``metadata_read``) or the admin's Basic credentials:
      https://learn.microsoft.com/rest/api/containerregistry/ .
    - Blob GETs redirected to the registry's blob storage (``*.blob.core.windows.net``).
    - The referrers API: https://learn.microsoft.com/azure/container-registry/container-registry-oras-artifacts .
    """

    service = "acr"
    title = "Azure ACR"
    realm_path = "/oauth2/token"
    realm_on_auth_host = False
    username = "acradmin"
    aad_token = "aad-access-token-alice"

    def __init__(self, upstream) -> None:
        super().__init__(upstream)
        self.token_service = self.host
        self.refresh_tokens: set[str] = set()
        transcripts.add_secret(self.aad_token)

    def token_endpoint(self, req: Incoming) -> Reply | None:
        if req.path == "/oauth2/exchange" and req.method == "POST":
            form = req.form()
            if form.get("grant_type") != "access_token" or form.get("access_token") != self.aad_token:
                return json_reply(401, {"errors": [{"code": "UNAUTHORIZED", "message": "invalid AAD token"}]})
            refresh = self.new_token({"sub": self.username, "grant_type": "refresh_token"})
            with self._lock:
                self.refresh_tokens.add(refresh)
            return json_reply(200, {"refresh_token": refresh})
        if req.path == self.realm_path and req.method == "POST":
            form = req.form()
            if form.get("grant_type") != "refresh_token" or form.get("refresh_token") not in self.refresh_tokens:
                return json_reply(401, {"errors": [{"code": "UNAUTHORIZED", "message": "invalid refresh token"}]})
            scopes = [s for values in parse_qs(req.body.decode()).get("scope", []) for s in values.split(" ")]
            return json_reply(200, {"access_token": self.issue(self.username, scopes)})
        return super().token_endpoint(req)

    def native(self, req: Incoming) -> Reply | None:
        tags = fullmatch(r"/acr/v1/(?P<name>.+)/_tags/(?P<tag>[^/]+)", req.path)
        manifests = fullmatch(r"/acr/v1/(?P<name>.+)/_manifests", req.path)
        match = tags or manifests
        if match is None:
            return None
        name = match["name"]
        action = "delete" if req.method == "DELETE" else "metadata_read"
        creds = basic_credentials(req.header("Authorization"))
        grant = self.grant_for(req)
        if not (creds and self.valid_user(*creds)) and not self.allows(grant, name, action):
            return self.unauthorized(f"repository:{name}:{action}", name, action)
        if tags is not None and req.method == "DELETE":
            return self.untag_reply(name, tags["tag"], 202)
        if manifests is not None and req.method == "GET":
            return self.manifests_page(req, name)
        return registry_error(405, "UNSUPPORTED", "The operation is unsupported.")

    def manifests_page(self, req: Incoming, name: str) -> Reply:
        tags = self.tags_by_digest(name)
        revisions = self.revisions(name)
        if req.arg("orderby") == "timeasc":
            revisions.reverse()
        entries = [{"digest": digest, "createdTime": time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime(mtime)),
                    "lastUpdateTime": time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime(mtime)),
                    "tags": tags.get(digest, []),
                    "changeableAttributes": {"deleteEnabled": True, "writeEnabled": True}}
                   for digest, mtime in revisions]
        last = req.arg("last")
        if last:
            position = next((i for i, e in enumerate(entries) if e["digest"] == last), len(entries) - 1)
            entries = entries[position + 1:]
        headers = []
        if req.arg("n") and len(entries) > int(req.arg("n")):
            entries = entries[:int(req.arg("n"))]
            query = urlencode({"n": req.arg("n"), "last": entries[-1]["digest"], "orderby": req.arg("orderby")})
            headers.append(("Link", f'</acr/v1/{name}/_manifests?{query}>; rel="next"'))
        return json_reply(200, {"registry": self.host, "imageName": name, "manifests": entries}, headers)


CLASSES = {cls.service: cls for cls in (DockerHub, GHCR, Quay, Harbor, GitLab, ECR, GCR, ACR, Nexus, Artifactory)}


def personality_for(service: str, upstream) -> Personality:
    """A started personality of ``service`` in front of the plain lab ``upstream``."""
    return CLASSES[service](upstream)
