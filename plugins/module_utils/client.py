# Copyright: regops.registry contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The registry API: catalog, tags, manifests, blobs, uploads, deletes - what the rest of the collection calls.

``RegistryClient`` puts three parts together: the transport (``_transport``: connections, TLS per host,
retries, redirects), the auth flow (``_authenticator``: challenges, tokens) and the credentials it was given
(``_credentials``). Everything read is verified against its digest.
"""

from __future__ import annotations

import json
import re
import threading
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Iterator
from urllib.parse import quote, urljoin, urlsplit, urlunsplit

from ansible_collections.regops.registry.plugins.module_utils import _auth
from ansible_collections.regops.registry.plugins.module_utils._authenticator import Authenticator
from ansible_collections.regops.registry.plugins.module_utils._credentials import Credentials
from ansible_collections.regops.registry.plugins.module_utils._transport import (
    HAS_REQUESTS,
    STREAM_CHUNK,
    RetryableError,
    TlsSettings,
    Transport,
    header_values,
    origin,
    response_error,
    rewind,
)
from ansible_collections.regops.registry.plugins.module_utils.errors import RegistryError
from ansible_collections.regops.registry.plugins.module_utils.ratelimit import RateLimit, parse_ratelimit, pulls_refused
from ansible_collections.regops.registry.plugins.module_utils.reference import (
    MANIFEST_ACCEPT,
    OCI_INDEX,
    RegistryLocation,
    bare_media_type,
    compute_digest,
    DigestHasher,
)

if HAS_REQUESTS:
    import requests

MAX_MANIFEST_SIZE = 4 << 20
MAX_CONFIG_SIZE = 16 << 20
MAX_PAGES = 10000


class TransientReadError(RetryableError):
    """A body that broke off, came short or did not hash to its digest: the whole read is worth repeating, as a 503
    is (a reset connection or a corrupting hop are usually gone on the next try)."""


@dataclass(frozen=True)
class ManifestHead:
    """What a manifest HEAD tells: enough to compare digests without downloading."""

    digest: str
    media_type: str
    size: int | None


@dataclass(frozen=True)
class Manifest:
    """A manifest as stored: the exact bytes (for byte-exact copies), parsed JSON and its digest."""

    digest: str
    media_type: str
    raw: bytes
    data: dict


def parse_link_next(values: Iterable[str]) -> str | None:
    """The target of ``rel=next`` in one or more ``Link`` header values (quoted or not)."""
    for value in values:
        for match in re.finditer(r"<([^>]*)>([^<]*)", value):
            params = match.group(2)
            rel = re.search(r"""rel\s*=\s*"?([^";,]+(?:\s[^";,]+)*)"?""", params, re.I)
            if rel and "next" in rel.group(1).lower().split():
                return match.group(1)
    return None


class RegistryClient:
    """A client for one registry. Thread-safe: module code runs many requests concurrently."""

    def __init__(
        self,
        location: RegistryLocation,
        credentials: Credentials,
        *,
        validate_certs: bool = True,
        ca_path: str | None = None,
        client_cert: str | None = None,
        client_key: str | None = None,
        timeout: float = 30.0,
        retries: int = 3,
        pool_size: int = 16,
        backoff: float = 0.5,
        warn: Callable[[str], None] | None = None,
        session: Any = None,
        certs_dir: str | None = None,
    ) -> None:
        self.location = location
        self.credentials = credentials
        self.timeout = timeout
        self.retries = max(0, int(retries))
        self._warn = warn or (lambda msg: None)
        self._warned: set[str] = set()
        self._pinged = False
        self._ping_lock = threading.Lock()
        # Learned per run by the safe tag delete: None = not tried yet, then whether OCI tag DELETE works.
        self.native_tag_delete: bool | None = None
        self.referrers_api: bool | None = None  # learnt on first use: None unknown, False absent (404)
        self.head_misses_tags = False  # learnt: a tag's HEAD answered 404 where its GET found it (Nexus)
        self.ratelimit: RateLimit | None = None  # the pull rate limit manifest answers announced (lowest remaining)
        # The smallest non-final upload chunk the registry accepts, as its upload sessions announce it
        # (OCI-Chunk-Min-Length, distribution spec 1.1); 0 until one does.
        self.chunk_min_length = 0
        self._ratelimit_lock = threading.Lock()
        self._secrets = credentials.secrets()  # includes the base64 of user:password
        self.origin = origin(location.base_url)
        tls = TlsSettings(self.origin, validate_certs=validate_certs, ca_path=ca_path, client_cert=client_cert,
                          client_key=client_key, directory=certs_dir)
        self.transport = Transport(tls, timeout=timeout, retries=self.retries, backoff=backoff, pool_size=pool_size,
                                   session=session, redact=self.redact)
        self.auth = Authenticator(credentials, self.transport, registry_origin=self.origin,
                                  registry_scheme=location.scheme, registry_host=location.api_host, redact=self.redact)

    # ------------------------------------------------------------------ plumbing

    def warn(self, message: str) -> None:
        if message not in self._warned:
            self._warned.add(message)
            self._warn(message)

    def close(self) -> None:
        self.transport.close()

    def _note_ratelimit(self, response) -> None:
        """Keep the lowest ``remaining`` announced: concurrent answers arrive in any order, and within a run (far
        shorter than the window) the count only goes down."""
        announced = parse_ratelimit(response.headers)
        if announced is None:
            return
        with self._ratelimit_lock:
            if self.ratelimit is None or announced.remaining < self.ratelimit.remaining:
                self.ratelimit = announced

    def require_pulls(self, needed: int, reserve: int = 0, operation: str = "reading manifests") -> None:
        """Refuse, before sending them, ``needed`` manifest GETs that the last announced rate limit (less
        ``reserve``) cannot pay for: a clear error now rather than a 429 halfway through."""
        refused = pulls_refused(self.ratelimit, needed, reserve)
        if refused:
            raise RegistryError(refused, operation=operation, status=429)

    def redact(self, text: str) -> str:
        return _auth.redact(text, self._secrets)

    def url(self, path: str) -> str:
        """An API path (``/v2/...``) under the registry's base URL, or an absolute URL as is."""
        if path.startswith(("http://", "https://")):
            return path
        return self.location.url(path)

    def ping(self) -> int:
        """``GET /v2/``: learns the auth scheme once; refuses what is not a V2 registry (EP-01)."""
        url = self.url("/v2/")
        operation = "contacting the registry"
        response = self.transport.send("GET", url, headers={}, operation=operation)
        response.close()
        if response.status_code == 401:
            self.auth.learn(response)
        elif response.status_code == 404:
            raise RegistryError(f"{_auth.redact_url(url)} is not a Docker Registry V2 / OCI distribution endpoint",
                                operation=operation, method="GET", url=_auth.redact_url(url), status=404)
        elif response.status_code >= 400:
            raise response_error(response, operation, "GET", url, self.redact)
        self._pinged = True
        return response.status_code

    def _ensure_pinged(self) -> None:
        if self._pinged:
            return
        with self._ping_lock:
            if not self._pinged:
                self.ping()

    def request(
        self,
        method: str,
        path: str,
        *,
        scopes: list[_auth.Scope],
        operation: str,
        headers: dict | None = None,
        body: Any = None,
        stream: bool = False,
        ok: Iterable[int] = (200,),
        retry_safe: bool | None = None,
        follow_redirects: bool = True,
        accept_status: Iterable[int] = (),
        timeout: float | None = None,
    ):
        """Send one registry request with auth, retries and safe redirects.

        Returns the response when its status is in ``ok`` or ``accept_status`` (the caller then
        decides), raises ``RegistryError`` otherwise.
        """
        self._ensure_pinged()
        ok = set(ok) | set(accept_status)
        if retry_safe is None:
            retry_safe = method in ("GET", "HEAD", "DELETE")
        url = self.url(path)
        auth = self.auth.round(scopes)
        while True:
            response = self.transport.follow(method, url, authorize=auth.headers, headers=headers, body=body,
                                             stream=stream, timeout=timeout, retry_safe=retry_safe,
                                             follow_redirects=follow_redirects, ok=ok, operation=operation)
            if response.status_code == 401 and origin(response.url or url) == self.origin:
                response.close()
                auth.after_401(response, operation, method, url)
                if not rewind(body):
                    raise RegistryError("authentication was required after the request body was sent",
                                        operation=operation, method=method, url=_auth.redact_url(url), status=401)
                continue
            if response.status_code in ok:
                return response
            error = response_error(response, operation, method, response.url or url, self.redact)
            response.close()
            raise error

    # ------------------------------------------------------------------ scopes

    @staticmethod
    def pull(repository: str) -> list[_auth.Scope]:
        return [_auth.Scope.repository(repository, "pull")]

    @staticmethod
    def push(repository: str) -> list[_auth.Scope]:
        return [_auth.Scope.repository(repository, "pull", "push")]

    @staticmethod
    def delete_scope(repository: str) -> list[_auth.Scope]:
        return [_auth.Scope.repository(repository, "delete")]

    # ------------------------------------------------------------------ listing

    def _paginate(self, path: str, key: str, scopes, operation: str, page_size: int | None, *,
                  accept: str = "application/json", absent: Iterable[int] = ()) -> list | None:
        """Follow ``Link: rel=next`` until it stops, with guards against broken servers (EP-02..07).

        Returns the ``key`` lists of every page joined; None when the first page answers a status in ``absent``
        (an endpoint the registry does not have).
        """
        items: list = []
        seen_urls: set[str] = set()
        url = self.url(path) + (f"?n={page_size}" if page_size else "")
        pages = 0
        retried_without_n = False
        while url:
            if url in seen_urls:
                self.warn(f"{operation}: the registry repeated a pagination link; stopping")
                break
            seen_urls.add(url)
            pages += 1
            if pages > MAX_PAGES:
                self.warn(f"{operation}: more than {MAX_PAGES} pages; stopping")
                break
            try:
                response = self.request("GET", url, scopes=scopes, operation=operation, headers={"Accept": accept},
                                        accept_status=absent if pages == 1 else ())
            except RegistryError as exc:
                if page_size and not retried_without_n and exc.status in (400, 405) and (
                        exc.has_code("PAGINATION_NUMBER_INVALID", "UNSUPPORTED")):
                    retried_without_n = True
                    self.warn(f"{operation}: the registry refused page_size {page_size}; using its default")
                    url = self.url(path)
                    seen_urls.clear()
                    continue
                raise
            if response.status_code != 200:
                response.close()
                return None
            try:
                data = response.json()
            except ValueError:
                raise RegistryError("the registry answered something that is not JSON", operation=operation,
                                    method="GET", url=_auth.redact_url(url), status=response.status_code) from None
            page = (data or {}).get(key) or []
            if not isinstance(page, list):
                raise RegistryError(f"unexpected answer: '{key}' is not a list", operation=operation,
                                    method="GET", url=_auth.redact_url(url), status=response.status_code)
            items.extend(page)
            nxt = parse_link_next(header_values(response, "Link"))
            if nxt and not page:
                self.warn(f"{operation}: the registry sent an empty page with a next link; stopping")
                break
            url = self._under_base_path(urljoin(response.url or url, nxt)) if nxt else None
        return items

    def _under_base_path(self, url: str) -> str:
        """A next link of this registry's host that lost the registry's base path gets it back: Artifactory's links
        drop the repository prefix (JFrog RTFACT-18971, renovatebot/renovate#15080)."""
        base = self.location.base_path.rstrip("/")
        parts = urlsplit(url)
        if not base or parts.path.startswith(base + "/") or not parts.path.startswith("/v2/"):
            return url
        if parts.netloc != urlsplit(self.location.base_url).netloc:
            return url
        return urlunsplit(parts._replace(path=base + parts.path))

    def catalog(self, page_size: int | None = None) -> list[str]:
        scopes = [_auth.Scope("registry", "catalog", ("*",))]
        try:
            repos = [str(r) for r in self._paginate("/v2/_catalog", "repositories", scopes, "listing the catalog",
                                                    page_size)]
        except RegistryError as exc:
            if exc.status in (401, 403, 404, 405) and exc.operation == "listing the catalog":
                raise RegistryError(
                    "the catalog is not offered by this registry (or not to this credential); "
                    "name repositories explicitly", operation="listing the catalog", method=exc.method,
                    url=exc.url, status=exc.status, errors=exc.errors) from None
            raise
        return sorted(set(repos))

    def list_tags(self, repository: str, page_size: int | None = None) -> list[str]:
        path = f"/v2/{repository}/tags/list"
        tags = self._paginate(path, "tags", self.pull(repository), f"listing the tags of {repository}", page_size)
        return list(dict.fromkeys(str(t) for t in tags))

    # ------------------------------------------------------------------ manifests

    def head_manifest(self, repository: str, reference: str, confirm_missing: bool = False) -> ManifestHead | None:
        """Resolve a tag or digest cheaply; ``None`` when it does not exist (EP-12).

        ``confirm_missing``: a 404 is confirmed with a GET (Nexus answers HEAD 404 for a tag where GET works);
        worth it for tags that were just listed or must exist. Once a GET contradicted a HEAD, the client confirms
        every tag's 404 (``head_misses_tags``).
        """
        op = f"resolving {repository}@{reference}" if ":" in reference else f"resolving {repository}:{reference}"
        response = self.request("HEAD", f"/v2/{repository}/manifests/{reference}", scopes=self.pull(repository),
                                operation=op, headers={"Accept": MANIFEST_ACCEPT}, accept_status=(404,))
        response.close()
        self._note_ratelimit(response)
        if response.status_code == 404:
            if not (confirm_missing or (self.head_misses_tags and ":" not in reference)):
                return None
            manifest = self.get_manifest(repository, reference, missing_ok=True)
            if manifest is None:
                return None
            self.head_misses_tags = True  # from now on every tag's HEAD 404 is confirmed with a GET
            return ManifestHead(manifest.digest, manifest.media_type, len(manifest.raw))
        digest = response.headers.get("Docker-Content-Digest")
        media_type = bare_media_type(response.headers.get("Content-Type", ""))
        size = response.headers.get("Content-Length")
        if not digest or (":" in reference and digest != reference):
            # No usable header (older ECR, Nexus): the digest of the bytes is the digest.
            manifest = self.get_manifest(repository, reference)
            return ManifestHead(manifest.digest, manifest.media_type, len(manifest.raw))
        return ManifestHead(digest, media_type, int(size) if size and size.isdigit() else None)

    def get_manifest(self, repository: str, reference: str, missing_ok: bool = False) -> Manifest | None:
        """GET a manifest, capped at 4 MiB, digest verified against the request or the header (retried when the
        body breaks or does not verify)."""
        return self.transport.retrying(lambda: self._get_manifest_once(repository, reference, missing_ok))

    def _get_manifest_once(self, repository: str, reference: str, missing_ok: bool) -> Manifest | None:
        from ansible_collections.regops.registry.plugins.module_utils.images import (
            check_media_type, detect_media_type, manifest_digest_content)
        op = f"reading the manifest {repository}@{reference}" if ":" in reference else f"reading the manifest {repository}:{reference}"
        response = self.request("GET", f"/v2/{repository}/manifests/{reference}", scopes=self.pull(repository),
                                operation=op, headers={"Accept": MANIFEST_ACCEPT}, stream=True,
                                accept_status=(404,) if missing_ok else ())
        self._note_ratelimit(response)
        if response.status_code == 404:
            response.close()
            return None
        raw = self._read_capped(response, MAX_MANIFEST_SIZE, op)
        content_type = response.headers.get("Content-Type", "")
        is_digest_ref = ":" in reference
        expected = reference if is_digest_ref else response.headers.get("Docker-Content-Digest")
        algorithm = expected.split(":", 1)[0] if expected and ":" in expected else "sha256"
        # The digest first: corrupted bytes may still parse, and only the digest says they were corrupted.
        content = manifest_digest_content(content_type, raw)
        try:
            actual = compute_digest(content, algorithm)
        except ValueError:
            actual = compute_digest(content)
        if expected and actual != expected:
            raise TransientReadError(f"digest mismatch: expected {expected}, received content hashes to {actual}",
                                     operation=op, method="GET", url=_auth.redact_url(response.url), status=response.status_code)
        try:
            data = _json_object(raw)
        except ValueError as exc:
            raise RegistryError(f"the manifest is not valid JSON: {exc}", operation=op, method="GET",
                                url=_auth.redact_url(response.url), status=response.status_code) from None
        try:
            media_type = detect_media_type(content_type, data)
            check_media_type(content_type, data)
        except ValueError as exc:
            raise RegistryError(str(exc), operation=op, method="GET", url=_auth.redact_url(response.url),
                                status=response.status_code) from None
        digest = actual if algorithm == "sha256" or not is_digest_ref else reference
        return Manifest(digest=digest, media_type=media_type, raw=raw, data=data)

    def list_referrers(self, repository: str, digest: str) -> list[dict] | None:
        """OCI 1.1 referrers of a manifest (descriptors), or None when the registry has no referrers API.

        A registry with the API answers 200 with an index even when there are none; 404 means no API, and is
        remembered so that the next digests cost nothing.
        """
        if self.referrers_api is False:
            return None
        manifests = self._paginate(f"/v2/{repository}/referrers/{digest}", "manifests", self.pull(repository),
                                   f"listing the referrers of {repository}@{digest}", None, accept=OCI_INDEX,
                                   absent=(404, 400, 405))
        self.referrers_api = manifests is not None
        if manifests is None:
            return None
        return [m for m in manifests if isinstance(m, dict) and isinstance(m.get("digest"), str)]

    def _read_capped(self, response, cap: int, operation: str) -> bytes:
        length = response.headers.get("Content-Length")
        if length and length.isdigit() and int(length) > cap:
            response.close()
            raise RegistryError(f"the content is larger than {cap} bytes; refusing to read it", operation=operation,
                                method="GET", url=_auth.redact_url(response.url), status=response.status_code)
        chunks = []
        total = 0
        try:
            for chunk in response.iter_content(65536):
                total += len(chunk)
                if total > cap:
                    raise RegistryError(f"the content is larger than {cap} bytes; refusing to read it",
                                        operation=operation, method="GET", url=_auth.redact_url(response.url),
                                        status=response.status_code)
                chunks.append(chunk)
        except requests.exceptions.RequestException:
            raise TransientReadError("the connection broke while reading the response", operation=operation,
                                     method="GET", url=_auth.redact_url(response.url)) from None
        finally:
            response.close()
        return b"".join(chunks)

    def put_manifest(self, repository: str, reference: str, raw: bytes, media_type: str,
                     list_referrer: bool = False) -> str:
        """PUT exact bytes; the registry's digest must equal ours (promotion invariant).

        ``list_referrer``: the write adds content (a copy, user content), so a referrer (a manifest with ``subject``)
        is also listed in its subject's fallback tag when the registry does not index it itself. Off for the
        bookkeeping writes of deletes (throwaway markers must never be listed as referrers).
        """
        from ansible_collections.regops.registry.plugins.module_utils.images import manifest_digest_content
        digest = compute_digest(manifest_digest_content(media_type, raw))
        op = f"writing the manifest {repository}:{reference}" if ":" not in reference else f"writing the manifest {repository}@{reference}"
        response = self.request("PUT", f"/v2/{repository}/manifests/{reference}", scopes=self.push(repository),
                                operation=op, headers={"Content-Type": media_type}, body=raw, ok=(200, 201, 202, 204),
                                retry_safe=True)
        response.close()
        returned = response.headers.get("Docker-Content-Digest")
        if returned and returned.startswith("sha256:") and returned != digest:
            raise RegistryError(f"the registry stored digest {returned}, expected {digest}", operation=op,
                                method="PUT", url=_auth.redact_url(response.url), status=response.status_code)
        if list_referrer and not response.headers.get("OCI-Subject"):
            self._list_in_referrers_fallback(repository, raw, media_type, digest)
        return digest

    def _list_in_referrers_fallback(self, repository: str, raw: bytes, media_type: str, digest: str) -> None:
        """OCI distribution 1.1: a registry that answers a PUT with ``subject`` without ``OCI-Subject`` does not
        index referrers, and the client must add the new manifest to the ``<alg>-<hex>`` tag of its subject, an
        OCI index of referrers (read, add, write back; the others kept, never listed twice)."""
        from ansible_collections.regops.registry.plugins.module_utils import images
        try:
            data = _json_object(raw)
        except ValueError:
            return
        subject = images.subject_digest(data)
        if not subject or ":" not in subject:
            return
        tag = referrers_tag(subject)
        op = f"listing {repository}@{digest} in the referrers fallback tag {tag}"
        current = self.get_manifest(repository, tag, missing_ok=True)
        if current is not None and current.digest == subject:
            # GitLab reads any sha256-<hex> reference as the digest itself (RG-08): there is no tag to keep, and
            # overwriting it would write over the subject's name. The referrer itself is written; say so once.
            self.warn(f"{self.location.host} resolves the referrers fallback tag {tag} to the subject itself (as "
                      "GitLab does): referrers written there are stored but cannot be listed for their subject")
            return
        if current is not None and current.media_type != OCI_INDEX:
            raise RegistryError(f"the referrers fallback tag {repository}:{tag} is not an OCI index of referrers "
                                f"({current.media_type}); {digest} was written but is not listed there",
                                operation=op)
        index = images.with_referrer(current.data if current else None,
                                     images.referrer_descriptor(data, media_type, digest, len(raw)))
        if index is not None:
            self.put_manifest(repository, tag, json.dumps(index, separators=(",", ":")).encode("utf-8"), OCI_INDEX)

    def delete_manifest(self, repository: str, digest: str) -> bool:
        """DELETE by digest; True when deleted, False when already absent (EP-17)."""
        response = self.request("DELETE", f"/v2/{repository}/manifests/{digest}",
                                scopes=self.delete_scope(repository), operation=f"deleting {repository}@{digest}",
                                ok=(200, 202, 204), accept_status=(404,))
        response.close()
        return response.status_code != 404

    def delete_tag_native(self, repository: str, tag: str):
        """OCI 1.1 tag DELETE. Returns the response; the caller judges support (400/405 = none)."""
        response = self.request("DELETE", f"/v2/{repository}/manifests/{tag}", scopes=self.delete_scope(repository),
                                operation=f"deleting the tag {repository}:{tag}", ok=(200, 202, 204),
                                accept_status=(400, 404, 405))
        response.close()
        return response

    # ------------------------------------------------------------------ blobs

    def head_blob(self, repository: str, digest: str) -> int | None:
        """Size of a blob in the repository, -1 when it exists but the size is unknown, None when absent."""
        response = self.request("HEAD", f"/v2/{repository}/blobs/{digest}", scopes=self.pull(repository),
                                operation=f"checking the blob {digest} in {repository}", follow_redirects=False,
                                accept_status=(404, 301, 302, 303, 307, 308))
        response.close()
        if response.status_code == 404:
            return None
        if response.status_code in (301, 302, 303, 307, 308):
            return -1  # a redirect to storage means it exists (EP-22)
        length = response.headers.get("Content-Length")
        return int(length) if length and length.isdigit() else -1

    def open_blob(self, repository: str, digest: str, headers: dict | None = None):
        """A streaming GET of a blob (redirects followed without credentials)."""
        hdrs = {"Accept-Encoding": "identity"}
        hdrs.update(headers or {})
        return self.request("GET", f"/v2/{repository}/blobs/{digest}", scopes=self.pull(repository),
                            operation=f"reading the blob {digest} from {repository}", headers=hdrs, stream=True,
                            ok=(200, 206))

    def iter_blob(self, repository: str, digest: str, size: int | None = None,
                  chunk_size: int = STREAM_CHUNK) -> Iterator[bytes]:
        """Open a blob now and return an iterator over its bytes.

        The request is sent before this returns (so a missing blob fails before a target upload starts);
        the iterator's last step verifies size and digest, raising before the caller can commit.
        """
        hasher = DigestHasher(digest)
        response = self.open_blob(repository, digest)
        return self._verified_chunks(response, hasher, size, chunk_size,
                                     f"reading the blob {digest} from {repository}")

    @staticmethod
    def _verified_chunks(response, hasher, size, chunk_size, op) -> Iterator[bytes]:
        try:
            for chunk in response.iter_content(chunk_size):
                hasher.update(chunk)
                yield chunk
        except requests.exceptions.RequestException:
            raise TransientReadError("the connection broke while reading the blob", operation=op, method="GET",
                                     url=_auth.redact_url(response.url)) from None
        finally:
            response.close()
        if size is not None and size >= 0 and hasher.size != size:
            raise TransientReadError(f"size mismatch: expected {size} bytes, received {hasher.size}", operation=op,
                                     method="GET", url=_auth.redact_url(response.url))
        if not hasher.matches():
            raise TransientReadError(f"digest mismatch: received content hashes to {hasher.digest}", operation=op,
                                     method="GET", url=_auth.redact_url(response.url))

    def get_blob_bytes(self, repository: str, digest: str, cap: int = MAX_CONFIG_SIZE) -> bytes:
        """A small blob (image config) read whole, capped and verified (retried when it breaks or does not verify)."""
        op = f"reading the blob {digest} from {repository}"

        def read() -> bytes:
            response = self.open_blob(repository, digest)
            data = self._read_capped(response, cap, op)
            actual = compute_digest(data, digest.split(":", 1)[0])
            if actual != digest:
                raise TransientReadError(f"digest mismatch: received content hashes to {actual}", operation=op,
                                         method="GET", url=_auth.redact_url(response.url))
            return data

        return self.transport.retrying(read)

    def delete_blob(self, repository: str, digest: str) -> bool:
        response = self.request("DELETE", f"/v2/{repository}/blobs/{digest}", scopes=self.delete_scope(repository),
                                operation=f"deleting the blob {digest} from {repository}", ok=(200, 202, 204),
                                accept_status=(404,))
        response.close()
        return response.status_code != 404

    # ------------------------------------------------------------------ uploads (primitives)

    def start_upload(self, repository: str) -> str:
        response = self.request("POST", f"/v2/{repository}/blobs/uploads/", scopes=self.push(repository),
                                operation=f"starting an upload to {repository}", headers={"Content-Length": "0"},
                                ok=(202,), retry_safe=True)
        response.close()
        self._note_chunk_minimum(response)
        return self._upload_location(response, "starting an upload")

    def mount_blob(self, repository: str, digest: str, source_repository: str) -> str | None:
        """Cross-repository mount. ``None`` when mounted (201); else the upload session opened instead."""
        scopes = self.push(repository) + self.pull(source_repository)
        path = f"/v2/{repository}/blobs/uploads/?mount={quote(digest, safe='')}&from={quote(source_repository, safe='/')}"
        response = self.request("POST", path, scopes=scopes, operation=f"mounting {digest} into {repository}",
                                headers={"Content-Length": "0"}, ok=(201, 202), retry_safe=True)
        response.close()
        if response.status_code == 201:
            return None
        self._note_chunk_minimum(response)
        return self._upload_location(response, "mounting a blob")

    def _note_chunk_minimum(self, response) -> None:
        """Remember the registry's minimum chunk (an S3-backed store refuses smaller non-final parts)."""
        value = (response.headers.get("OCI-Chunk-Min-Length") or "").strip()
        if value.isdigit():
            self.chunk_min_length = max(self.chunk_min_length, int(value))

    def _upload_location(self, response, operation: str) -> str:
        location = response.headers.get("Location")
        if not location:
            raise RegistryError("the registry opened an upload without a Location", operation=operation,
                                method=response.request.method, url=_auth.redact_url(response.url),
                                status=response.status_code)
        return urljoin(response.url, location)

    def patch_upload(self, location: str, repository: str, body, length: int | None,
                     start: int | None = None) -> tuple[str, int | None]:
        """Send bytes to an upload session; returns the newest Location and the server's end offset."""
        headers = {"Content-Type": "application/octet-stream"}
        if length is not None:
            headers["Content-Length"] = str(length)
            if start is not None:
                headers["Content-Range"] = f"{start}-{start + length - 1}"
        response = self.request("PATCH", location, scopes=self.push(repository),
                                operation=f"uploading to {repository}", headers=headers, body=body,
                                ok=(201, 202, 204), retry_safe=False, timeout=max(self.timeout, 300.0))
        response.close()
        return self._upload_location(response, "uploading"), _range_end(response.headers.get("Range"))

    def upload_status(self, location: str, repository: str) -> tuple[str, int | None]:
        response = self.request("GET", location, scopes=self.push(repository),
                                operation=f"checking an upload to {repository}", ok=(204,), retry_safe=True)
        response.close()
        return self._upload_location(response, "checking an upload"), _range_end(response.headers.get("Range"))

    def finish_upload(self, location: str, repository: str, digest: str, body: Any = b"",
                      length: int | None = None) -> str:
        sep = "&" if urlsplit(location).query else "?"
        url = f"{location}{sep}digest={quote(digest, safe='')}"
        headers = {"Content-Type": "application/octet-stream",
                   "Content-Length": str(length if length is not None else len(body))}
        response = self.request("PUT", url, scopes=self.push(repository), operation=f"finishing an upload to {repository}",
                                headers=headers, body=body, ok=(201, 204), retry_safe=False,
                                timeout=max(self.timeout, 300.0))
        response.close()
        returned = response.headers.get("Docker-Content-Digest")
        if returned and returned != digest:
            raise RegistryError(f"the registry stored digest {returned}, expected {digest}",
                                operation=f"finishing an upload to {repository}", method="PUT",
                                url=_auth.redact_url(url), status=response.status_code)
        return digest

    def cancel_upload(self, location: str, repository: str) -> None:
        """Best effort: a failed cancel must never hide the error that made us cancel (EP-33)."""
        try:
            response = self.request("DELETE", location, scopes=self.push(repository),
                                    operation="cancelling an upload", ok=(200, 202, 204), accept_status=(404, 400, 405),
                                    retry_safe=False)
            response.close()
        except RegistryError:
            pass


def referrers_tag(digest: str) -> str:
    """The referrers fallback tag of a digest: ``sha256-<hex>`` (algorithm cut to 32 characters, the encoded part to
    64, characters a tag cannot hold replaced by ``-``, as the OCI distribution spec says)."""
    algorithm, _sep, encoded = digest.partition(":")
    return re.sub(r"[^A-Za-z0-9_.-]", "-", f"{algorithm[:32]}-{encoded[:64]}")


def _range_end(value: str | None) -> int | None:
    """End offset from an upload ``Range`` header: ``0-1234`` or ``bytes=0-1234``."""
    if not value:
        return None
    match = re.match(r"^(?:bytes=)?(\d+)-(\d+)$", value.strip())
    return int(match.group(2)) if match else None


def _json_object(raw: bytes) -> dict:
    data = json.loads(raw.decode("utf-8"))
    if not isinstance(data, dict):
        raise ValueError("not a JSON object")
    return data
