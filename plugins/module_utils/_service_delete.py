# Copyright: regops.registry contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The services' own delete APIs, for registries that refuse (some) V2 deletes.

Which API: forced with ``delete_api``, else from the host (Docker Hub, ghcr.io, quay.io, ``*.azurecr.io``), else a
probe of Harbor's ``GET /api/v2.0/systeminfo``, else plain V2. Requests go through the client's transport (per-host
TLS, the retry loop, redirects); a credential is sent only to the origin of the API it is meant for, never to the
registry or to a redirect target on another origin.

The shapes, from each service's documentation:

* Docker Hub (https://docs.docker.com/reference/api/hub/latest/, "Create access token", ``POST /v2/auth/token`` with
  ``identifier`` and ``secret`` -> ``access_token``; the tag delete ``DELETE /v2/repositories/{namespace}/
  {repository}/tags/{tag}`` as named in docker/hub-feedback#1759). V2 DELETE answers 405; there is no digest delete:
  a digest goes by deleting every tag on it, and an untagged manifest cannot be deleted at all.
* GHCR (https://docs.github.com/rest/packages, "List package versions for a package owned by an organization" /
  "... by a user", "Delete package version for an organization" / "... for a user"): a version is one manifest
  (``name`` = its digest, tags in ``metadata.container.tags``); deleting it deletes the manifest and every tag on
  it. One tag alone cannot be removed.
* Quay (Red Hat Quay API reference, "deleteFullTag": ``DELETE /api/v1/repository/{repository}/tag/{tag}``, 204,
  OAuth bearer token). Recent Quay also takes the OCI tag DELETE (PROJQUAY-7599), tried first.
* Harbor (goharbor swagger ``/projects/{project_name}/repositories/{repository_name}/artifacts/{reference}/tags/
  {tag_name}``, 200; a repository name with ``/`` is URL-encoded twice, goharbor/harbor#11971). V2 deletes a digest.
* ACR (Azure Container Registry data-plane REST API, "Tag - Delete": ``DELETE /acr/v1/{name}/_tags/{reference}``,
  202; Basic or a bearer from the token exchange, as the V2 API). V2 deletes a digest.
"""

from __future__ import annotations

import abc
import base64
import json
import threading
from urllib.parse import quote, urlsplit

from ansible_collections.regops.registry.plugins.module_utils import _auth
from ansible_collections.regops.registry.plugins.module_utils._transport import header_values, origin, response_error
from ansible_collections.regops.registry.plugins.module_utils.client import parse_link_next
from ansible_collections.regops.registry.plugins.module_utils.errors import InvalidInput, RegistryError
from ansible_collections.regops.registry.plugins.module_utils.reference import DOCKER_HUB_ALIASES

SERVICES = ("dockerhub", "ghcr", "harbor", "quay", "acr")
DELETE_APIS = ("auto", "v2") + SERVICES
OWNER_TYPES = ("auto", "org", "user")
DEFAULT_API_URLS = {"dockerhub": "https://hub.docker.com", "ghcr": "https://api.github.com"}
GITHUB_HEADERS = {"Accept": "application/vnd.github+json", "X-GitHub-Api-Version": "2022-11-28"}
MAX_VERSION_PAGES = 1000


class ApiRefused(RegistryError):
    """The service cannot do what was asked (no credential for its API, no such API for this kind of delete)."""


def service_for_host(host: str) -> str | None:
    """The service a registry host belongs to, when the host alone tells."""
    name = host.lower().rsplit(":", 1)[0] if not host.startswith("[") else host.lower()
    if name in DOCKER_HUB_ALIASES:
        return "dockerhub"
    if name == "ghcr.io":
        return "ghcr"
    if name == "quay.io":
        return "quay"
    if name.endswith(".azurecr.io"):
        return "acr"
    return None


def registry_origin_url(client) -> str:
    return f"{client.location.scheme}://{client.location.api_host}"


def is_harbor(client, api_url: str | None = None) -> bool:
    """Harbor answers ``GET /api/v2.0/systeminfo`` with a JSON object (anonymously too); other registries 404."""
    url = (api_url or registry_origin_url(client)).rstrip("/") + "/api/v2.0/systeminfo"
    try:
        response = client.transport.follow("GET", url, authorize=lambda _u: {}, operation="asking whether the registry is Harbor")
    except RegistryError:
        return False
    try:
        return response.status_code == 200 and isinstance(json.loads(response.content or b"null"), dict)
    except ValueError:
        return False
    finally:
        response.close()


def choose_api(client, delete_api: str = "auto", api_url: str | None = None) -> str:
    """``v2`` or one of SERVICES: forced, by host, or by the Harbor probe (one GET)."""
    if delete_api not in DELETE_APIS:
        raise InvalidInput(f"delete_api must be one of {', '.join(DELETE_APIS)}, not {delete_api!r}")
    if delete_api != "auto":
        return delete_api
    by_host = service_for_host(client.location.host)
    if by_host:
        return by_host
    return "harbor" if is_harbor(client, api_url) else "v2"


def make_api(client, name: str, *, api_url: str | None = None, api_token: str | None = None,
             owner_type: str = "auto"):
    """The API object for ``name`` (None for plain V2)."""
    if name == "v2":
        return None
    base = (api_url or DEFAULT_API_URLS.get(name) or registry_origin_url(client)).rstrip("/")
    if urlsplit(base).scheme not in ("http", "https") or not urlsplit(base).netloc:
        raise InvalidInput(f"delete_api_url must be an http(s) URL, not {api_url!r}")
    cls = {"dockerhub": DockerHubApi, "ghcr": GhcrApi, "quay": QuayApi, "harbor": HarborApi, "acr": AcrApi}[name]
    api = cls(client, base, api_token)
    if isinstance(api, GhcrApi):
        if owner_type not in OWNER_TYPES:
            raise InvalidInput(f"delete_api_owner_type must be one of {', '.join(OWNER_TYPES)}, not {owner_type!r}")
        api.owner_type = owner_type
    return api


class ServiceApi(abc.ABC):
    """One service's delete API. Subclasses say what it can do and how it authenticates."""

    name = ""
    label = ""
    v2_digest_deletes = True  # digests (and blobs) go through V2 DELETE
    v2_tag_delete_first = False  # try the OCI tag DELETE before this API (its own tag API as the fallback)

    def __init__(self, client, base_url: str, api_token: str | None) -> None:
        self.client = client
        self.base_url = base_url
        self.origin = origin(base_url)
        self.api_token = api_token
        self._secrets = [s for s in (api_token,) if s]
        self._lock = threading.Lock()

    # ------------------------------------------------------------------ plumbing

    def redact(self, text: str) -> str:
        return self.client.redact(_auth.redact(text, self._secrets))

    @abc.abstractmethod
    def authorization(self) -> str | None:
        """The ``Authorization`` value for this API's origin (None: none available)."""

    @property
    def has_credential(self) -> bool:
        return bool(self.api_token) or self._registry_credential() is not None

    def _registry_credential(self) -> str | None:
        return None

    def headers_for(self, url: str, authorization: str | None) -> dict:
        """Credentials only for the API's own origin: never for a redirect target elsewhere."""
        if authorization and origin(url) == self.origin:
            return {"Authorization": authorization}
        return {}

    def call(self, method: str, path_or_url: str, *, operation: str, ok=(200,), accept=(), body=None,
             headers=None, authorization: str | None = None, authorize: bool = True):
        """One API request through the client's transport; the response when its status is in ``ok``/``accept``."""
        url = path_or_url if path_or_url.startswith(("http://", "https://")) else self.base_url + path_or_url
        value = (authorization or self.authorization()) if authorize else None
        expected = set(ok) | set(accept)
        response = self.client.transport.follow(method, url, authorize=lambda u: self.headers_for(u, value),
                                                headers=headers, body=body, operation=operation,
                                                retry_safe=method in ("GET", "HEAD", "DELETE"), ok=expected)
        if response.status_code in expected:
            return response
        error = response_error(response, operation, method, response.url or url, self.redact)
        response.close()
        if error.status in (401, 403):
            error = RegistryError(f"{error.message}; the {self.label} API refused the credential "
                                  f"({self.credential_source()})", operation=operation, method=method, url=error.url,
                                  status=error.status, errors=error.errors)
        raise error

    def credential_source(self) -> str:
        return "api_token" if self.api_token else f"the registry credentials, {self.client.auth.who()}"

    # ------------------------------------------------------------------ what deletion.py calls

    def require_credential(self, repository: str) -> None:
        """No request: fail when this API has no credential (check mode says so too)."""
        if not self.has_credential:
            raise ApiRefused(self.missing_credential(), operation=f"deleting from {repository}")

    def check(self, repository: str) -> None:
        """Before any write: fail now if this API cannot be used for the deletes planned."""
        self.require_credential(repository)

    def missing_credential(self) -> str:
        return (f"deleting on {self.label} needs its API's credential: give api_token (or the registry's username and "
                "password); nothing was deleted")


class TagDeleteApi(ServiceApi):
    """An API that deletes one tag at a time (all but GHCR, which deletes whole versions)."""

    def delete_tag(self, repository: str, tag: str, digest: str) -> bool:
        """Delete one tag through the API: True when deleted, False when it was not there."""
        response = self.call("DELETE", self.tag_path(repository, tag, digest),
                             operation=f"deleting the tag {repository}:{tag} through the {self.label} API",
                             ok=(200, 202, 204), accept=(404,))
        response.close()
        return response.status_code != 404

    @abc.abstractmethod
    def tag_path(self, repository: str, tag: str, digest: str) -> str:
        """The API path that deletes ``tag``."""


def two_parts(repository: str, label: str) -> tuple[str, str]:
    """``namespace``, ``rest`` of a repository name on a service that has namespaces."""
    if "/" not in repository:
        raise InvalidInput(f"{label} repositories are namespace/name, not {repository!r}")
    namespace, rest = repository.split("/", 1)
    return namespace, rest


class DockerHubApi(TagDeleteApi):
    name, label = "dockerhub", "Docker Hub"
    v2_digest_deletes = False

    def __init__(self, client, base_url, api_token) -> None:
        super().__init__(client, base_url, api_token)
        self._jwt: str | None = None

    def _secret(self) -> str | None:
        return self.api_token or self.client.credentials.password

    @property
    def has_credential(self) -> bool:
        return bool(self.client.credentials.username and self._secret())

    def missing_credential(self) -> str:
        return ("deleting on Docker Hub needs its API: give username and password, or api_token (a personal access "
                "token with delete rights) in place of the password; nothing was deleted")

    def authorization(self) -> str | None:
        with self._lock:
            if self._jwt is None:
                self._jwt = self._login()
                self._secrets.append(self._jwt)
            return f"Bearer {self._jwt}"

    def _login(self) -> str:
        """``POST /v2/auth/token`` (Docker Hub API, "Create access token"): a short-lived JWT for the API."""
        body = json.dumps({"identifier": self.client.credentials.username, "secret": self._secret()}).encode()
        self._secrets.append(self._secret())
        response = self.call("POST", "/v2/auth/token", operation="signing in to the Docker Hub API", body=body,
                             headers={"Content-Type": "application/json", "Accept": "application/json"},
                             authorize=False)
        try:
            token = json.loads(response.content).get("access_token")
        except (ValueError, AttributeError):
            token = None
        finally:
            response.close()
        if not isinstance(token, str) or not token:
            raise RegistryError("the Docker Hub API sent no access_token", operation="signing in to the Docker Hub API")
        return token

    def check(self, repository: str) -> None:
        super().check(repository)
        two_parts(repository, self.label)
        self.authorization()  # signing in is the probe: a refused credential fails here, before any delete

    def tag_path(self, repository, tag, digest):
        namespace, name = two_parts(repository, self.label)
        return f"/v2/repositories/{quote(namespace, safe='')}/{quote(name, safe='')}/tags/{quote(tag, safe='')}"


class GhcrApi(ServiceApi):
    name, label = "ghcr", "GitHub Packages"
    v2_digest_deletes = False
    owner_type = "auto"

    def __init__(self, client, base_url, api_token) -> None:
        super().__init__(client, base_url, api_token)
        self._owner_paths: dict[str, str] = {}
        if client.credentials.password:
            self._secrets.append(client.credentials.password)

    def _registry_credential(self) -> str | None:
        return self.client.credentials.password  # a PAT given as the registry password (docker login)

    def missing_credential(self) -> str:
        return ("deleting on GHCR needs the GitHub API: give api_token (a token with read:packages and "
                "delete:packages) or the token as the registry password; nothing was deleted")

    def authorization(self) -> str | None:
        secret = self.api_token or self._registry_credential()
        return f"Bearer {secret}" if secret else None

    def package_path(self, repository: str, owner_kind: str) -> str:
        owner, package = two_parts(repository, "GHCR")
        return f"/{owner_kind}/{quote(owner, safe='')}/packages/container/{quote(package, safe='')}"

    def _versions_path(self, repository: str) -> str:
        """``/orgs/...`` or ``/users/...``: as told, or the org path first and the user path on its 404."""
        if repository in self._owner_paths:
            return self._owner_paths[repository]
        kinds = {"org": ["orgs"], "user": ["users"], "auto": ["orgs", "users"]}[self.owner_type]
        for kind in kinds:
            path = self.package_path(repository, kind) + "/versions"
            response = self.call("GET", f"{path}?per_page=1", operation=f"finding the GHCR package of {repository}",
                                 headers=GITHUB_HEADERS, accept=(404,))
            response.close()
            if response.status_code == 200:
                self._owner_paths[repository] = path
                return path
        raise RegistryError(f"GitHub knows no container package for {repository} (looked under "
                            f"{' and '.join('/' + k for k in kinds)}; set delete_api_owner_type if the owner is known)",
                            operation=f"finding the GHCR package of {repository}", status=404)

    def versions(self, repository: str) -> list[dict]:
        """Every version of the package: ``{"id", "name" (digest), "tags"}``, following ``Link: rel=next``."""
        url = self.base_url + self._versions_path(repository) + "?per_page=100"
        found: list[dict] = []
        for _page in range(MAX_VERSION_PAGES):
            response = self.call("GET", url, operation=f"listing the GHCR versions of {repository}", headers=GITHUB_HEADERS)
            try:
                page = json.loads(response.content)
            except ValueError:
                page = None
            finally:
                response.close()
            if not isinstance(page, list):
                raise RegistryError("GitHub sent something else than a list of versions",
                                    operation=f"listing the GHCR versions of {repository}")
            found.extend(version_entry(v) for v in page if isinstance(v, dict))
            link = parse_link_next(header_values(response, "Link"))
            if not link or not page:
                return found
            url = link
        raise RegistryError("too many pages of versions", operation=f"listing the GHCR versions of {repository}")

    def check(self, repository: str) -> None:
        super().check(repository)
        self._versions_path(repository)

    def delete_version(self, repository: str, version_id) -> bool:
        path = f"{self._versions_path(repository)}/{quote(str(version_id), safe='')}"
        response = self.call("DELETE", path, operation=f"deleting the GHCR version {version_id} of {repository}",
                             headers=GITHUB_HEADERS, ok=(200, 202, 204), accept=(404,))
        response.close()
        return response.status_code != 404


def version_entry(version: dict) -> dict:
    container = ((version.get("metadata") or {}).get("container") or {}) if isinstance(version.get("metadata"), dict) else {}
    tags = container.get("tags") if isinstance(container, dict) else None
    return {"id": version.get("id"), "name": version.get("name"),
            "tags": [t for t in (tags or []) if isinstance(t, str)]}


class QuayApi(TagDeleteApi):
    name, label = "quay", "Quay"
    v2_tag_delete_first = True

    def missing_credential(self) -> str:
        return "Quay's tag API needs api_token (an OAuth access token with repo:write)"

    def authorization(self) -> str | None:
        return f"Bearer {self.api_token}" if self.api_token else None

    def tag_path(self, repository, tag, digest):
        namespace, name = two_parts(repository, self.label)
        return f"/api/v1/repository/{quote(namespace, safe='')}/{quote(name, safe='')}/tag/{quote(tag, safe='')}"


class HarborApi(TagDeleteApi):
    name, label = "harbor", "Harbor"

    def _registry_credential(self) -> str | None:
        creds = self.client.credentials
        secret = self.api_token or creds.password
        if not creds.username or not secret:
            return None
        return "Basic " + base64.b64encode(f"{creds.username}:{secret}".encode()).decode("ascii")

    @property
    def has_credential(self) -> bool:
        return self._registry_credential() is not None

    def missing_credential(self) -> str:
        return "Harbor's tag API needs a username with api_token or password (a robot account works)"

    def authorization(self) -> str | None:
        return self._registry_credential()

    def tag_path(self, repository, tag, digest):
        project, name = two_parts(repository, self.label)
        twice = quote(quote(name, safe=""), safe="")  # Harbor decodes the name once more itself: a%2Fb -> a%252Fb
        return (f"/api/v2.0/projects/{quote(project, safe='')}/repositories/{twice}/artifacts/{digest}"
                f"/tags/{quote(tag, safe='')}")


class AcrApi(TagDeleteApi):
    name, label = "acr", "ACR"

    @property
    def has_credential(self) -> bool:
        return bool(self.api_token) or not self.client.credentials.is_anonymous

    def authorization(self) -> str | None:
        return f"Bearer {self.api_token}" if self.api_token else None

    def delete_tag(self, repository: str, tag: str, digest: str) -> bool:
        if self.api_token or self.origin != self.client.origin:
            return super().delete_tag(repository, tag, digest)
        # The registry's own credentials and token exchange: /acr/v1 answers the same challenge as /v2.
        response = self.client.request("DELETE", self.base_url + self.tag_path(repository, tag, digest),
                                       scopes=self.client.delete_scope(repository),
                                       operation=f"deleting the tag {repository}:{tag} through the ACR API",
                                       ok=(200, 202, 204), accept_status=(404,))
        response.close()
        return response.status_code != 404

    def tag_path(self, repository, tag, digest):
        return f"/acr/v1/{repository}/_tags/{quote(tag, safe='')}"
