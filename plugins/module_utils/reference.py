# Copyright: regops.registry contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Image reference grammar, registry locations, media types and digests. Pure: no I/O."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, replace
from urllib.parse import urlsplit

from ansible_collections.regops.registry.plugins.module_utils.errors import InvalidInput

# --- media types -------------------------------------------------------------------------------

OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_EMPTY = "application/vnd.oci.empty.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar"
OCI_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
OCI_LAYER_ZSTD = "application/vnd.oci.image.layer.v1.tar+zstd"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER = "application/vnd.docker.image.rootfs.diff.tar.gzip"
DOCKER_SCHEMA1_SIGNED = "application/vnd.docker.distribution.manifest.v1+prettyjws"
DOCKER_SCHEMA1 = "application/vnd.docker.distribution.manifest.v1+json"

INDEX_MEDIA_TYPES = frozenset({OCI_INDEX, DOCKER_LIST})
IMAGE_MANIFEST_MEDIA_TYPES = frozenset({OCI_MANIFEST, DOCKER_MANIFEST})
SCHEMA1_MEDIA_TYPES = frozenset({DOCKER_SCHEMA1_SIGNED, DOCKER_SCHEMA1})
IMAGE_CONFIG_MEDIA_TYPES = frozenset({OCI_CONFIG, DOCKER_CONFIG})
MANIFEST_MEDIA_TYPES = INDEX_MEDIA_TYPES | IMAGE_MANIFEST_MEDIA_TYPES | SCHEMA1_MEDIA_TYPES

# One Accept header for every manifest GET/HEAD. Without the OCI types distribution answers 404 for OCI
# content; without the Docker types it converts to schema 1 (protocol reference 3.2).
MANIFEST_ACCEPT = ", ".join((OCI_INDEX, OCI_MANIFEST, DOCKER_LIST, DOCKER_MANIFEST))

# --- grammar (OCI distribution spec, distribution/reference) -------------------------------------

_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
REPOSITORY_RE = re.compile(rf"^{_COMPONENT}(?:/{_COMPONENT})*$")
TAG_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._-]{0,127}$")
DIGEST_RE = re.compile(r"^[a-z0-9]+(?:[+._-][a-z0-9]+)*:[a-zA-Z0-9=_-]+$")
KNOWN_DIGESTS = {"sha256": re.compile(r"^[a-f0-9]{64}$"), "sha512": re.compile(r"^[a-f0-9]{128}$")}
_HOST_LABEL = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
HOST_RE = re.compile(rf"^(?:{_HOST_LABEL}(?:\.{_HOST_LABEL})*|\[[0-9a-fA-F:.]+\])(?::[0-9]{{1,5}})?$")
MAX_NAME_LENGTH = 255

# Docker Hub, written once: names, API host, and the key Docker CLI stores its credentials under.
DOCKER_HUB = "docker.io"
DOCKER_HUB_API = "registry-1.docker.io"
DOCKER_HUB_INDEX = "index.docker.io"
DOCKER_HUB_ALIASES = frozenset({DOCKER_HUB, DOCKER_HUB_INDEX, DOCKER_HUB_API})
DOCKER_HUB_CREDENTIAL_KEY = f"https://{DOCKER_HUB_INDEX}/v1/"


def validate_repository(name: str) -> str:
    if not isinstance(name, str) or not name:
        raise InvalidInput("invalid repository name '': a repository name must not be empty")
    if name != name.lower() and REPOSITORY_RE.match(name.lower()):
        raise InvalidInput(f"invalid repository name '{name}': repository names must be lowercase")
    if not REPOSITORY_RE.match(name):
        raise InvalidInput(
            f"invalid repository name '{name}': components of [a-z0-9] separated by '.', '_', '__' or runs of '-', "
            "joined by '/', each starting and ending with a letter or digit")
    if len(name) > MAX_NAME_LENGTH:
        raise InvalidInput(f"invalid repository name '{name[:40]}...': longer than {MAX_NAME_LENGTH} characters")
    return name


def registry_repository(host: str, repository: str) -> str:
    """The repository as the registry names it: Docker Hub keeps its official images under ``library/``, so
    ``nginx`` there is ``library/nginx`` (protocol reference 2.2). Every module and the reference parser go
    through here; other registries take names as given."""
    if host.lower() in DOCKER_HUB_ALIASES and "/" not in repository:
        return f"library/{repository}"
    return repository


def validate_tag(tag: str) -> str:
    if not isinstance(tag, str) or not TAG_RE.match(tag):
        raise InvalidInput(f"invalid tag '{tag}': a tag is 1-128 characters of [A-Za-z0-9_.-] "
                           "and must not start with '.' or '-'")
    return tag


def is_digest(value: str) -> bool:
    try:
        validate_digest(value)
    except InvalidInput:
        return False
    return True


def validate_digest(digest: str) -> str:
    if not isinstance(digest, str) or not DIGEST_RE.match(digest):
        raise InvalidInput(f"invalid digest '{digest}': expected '<algorithm>:<hex>', for example 'sha256:' and 64 hex digits")
    algorithm, encoded = digest.split(":", 1)
    rule = KNOWN_DIGESTS.get(algorithm)
    if rule is not None and not rule.match(encoded):
        length = 64 if algorithm == "sha256" else 128
        raise InvalidInput(f"invalid digest '{digest}': {algorithm} digests are {length} lowercase hex digits")
    return digest


def supported_digest(digest: str) -> str:
    """A digest a user asks the registry about: well-formed, and of an algorithm this collection can verify.

    The grammar admits any algorithm, but distribution answers an unknown one with 500 (retried, then a confusing
    error), and nothing could check the content anyway: refuse it before any request.
    """
    validate_digest(digest)
    if digest.split(":", 1)[0] not in KNOWN_DIGESTS:
        raise InvalidInput(f"invalid digest '{digest}': only {' and '.join(KNOWN_DIGESTS)} digests are supported")
    return digest


def validate_reference(reference: str) -> str:
    """A tag or a digest (the ``reference`` of a manifest request)."""
    if isinstance(reference, str) and ":" in reference:
        return supported_digest(reference)
    return validate_tag(reference)


@dataclass(frozen=True)
class ImageReference:
    registry: str
    repository: str
    tag: str | None = None
    digest: str | None = None

    @property
    def reference(self) -> str | None:
        """What to ask the registry for: the digest wins over the tag."""
        return self.digest or self.tag

    def __str__(self) -> str:
        text = f"{self.registry}/{self.repository}"
        if self.tag:
            text += f":{self.tag}"
        if self.digest:
            text += f"@{self.digest}"
        return text

    def familiar(self) -> str:
        """Docker's short form: ``ubuntu:22.04`` for Docker Hub official images."""
        if self.registry != DOCKER_HUB:
            return str(self)
        name = self.repository[len("library/"):] if self.repository.startswith("library/") else self.repository
        return name + (f":{self.tag}" if self.tag else "") + (f"@{self.digest}" if self.digest else "")

    def with_tag(self, tag: str) -> ImageReference:
        return replace(self, tag=validate_tag(tag), digest=None)

    def with_digest(self, digest: str) -> ImageReference:
        return replace(self, digest=validate_digest(digest))


def _is_registry_host(component: str) -> bool:
    return "." in component or ":" in component or component == "localhost" or component != component.lower() \
        or component.startswith("[")


def parse_reference(text: str, default_tag: str | None = "latest") -> ImageReference:
    """``[host[:port]/]path[:tag][@digest]`` with Docker Hub normalisation (protocol reference 2.2)."""
    if not isinstance(text, str) or not text or text.strip() != text or any(c.isspace() for c in text):
        raise InvalidInput(f"invalid image reference '{text}': empty or contains whitespace")
    if re.fullmatch(r"[a-f0-9]{64}", text):
        raise InvalidInput(f"invalid image reference '{text}': a bare 64-hex string is ambiguous (an image ID?)")
    rest, at, digest = text.rpartition("@")
    if not at:
        rest, digest = text, None
    else:
        validate_digest(digest)
    tag = None
    last_slash = rest.rfind("/")
    colon = rest.rfind(":")
    if colon > last_slash:
        rest, tag = rest[:colon], rest[colon + 1:]
        validate_tag(tag)
    first, slash, remainder = rest.partition("/")
    if not slash and not digest and tag and tag.isdigit() and ("." in first or first == "localhost"):
        raise InvalidInput(f"invalid image reference '{text}': looks like host:port without a repository")
    if slash and _is_registry_host(first):
        if not HOST_RE.match(first):
            raise InvalidInput(f"invalid image reference '{text}': '{first}' is not a valid registry host")
        registry, path = first.lower(), remainder
    else:
        registry, path = DOCKER_HUB, rest
    if not path:
        raise InvalidInput(f"invalid image reference '{text}': no repository")
    if registry in DOCKER_HUB_ALIASES:
        registry = DOCKER_HUB
    path = registry_repository(registry, path)
    try:
        validate_repository(path)
    except InvalidInput as exc:
        raise InvalidInput(f"invalid image reference '{text}': {exc}") from None
    if len(f"{registry}/{path}") > MAX_NAME_LENGTH:
        raise InvalidInput(f"invalid image reference '{text}': name longer than {MAX_NAME_LENGTH} characters")
    if tag is None and digest is None:
        tag = default_tag
    return ImageReference(registry, path, tag, digest)


@dataclass(frozen=True)
class RegistryLocation:
    scheme: str
    host: str
    base_path: str = ""

    @property
    def is_docker_hub(self) -> bool:
        return self.host in DOCKER_HUB_ALIASES

    @property
    def api_host(self) -> str:
        return DOCKER_HUB_API if self.is_docker_hub else self.host

    @property
    def canonical_host(self) -> str:
        return DOCKER_HUB if self.is_docker_hub else self.host

    @property
    def base_url(self) -> str:
        return f"{self.scheme}://{self.api_host}{self.base_path}"

    @property
    def credential_keys(self) -> list[str]:
        """Keys to look up in a Docker config.json ``auths``, most specific first."""
        if self.is_docker_hub:
            return [DOCKER_HUB_CREDENTIAL_KEY, DOCKER_HUB_INDEX, DOCKER_HUB, DOCKER_HUB_API]
        return [self.host, f"https://{self.host}", f"http://{self.host}"]

    def repository(self, name: str) -> str:
        """A user-given repository name, validated and named as this registry names it (``registry_repository``)."""
        return registry_repository(self.host, validate_repository(name))

    def url(self, path: str) -> str:
        return self.base_url + (path if path.startswith("/") else "/" + path)


def parse_registry(value: str) -> RegistryLocation:
    """``host[:port]`` or a URL; no scheme means https, a URL path is a base path kept for every request."""
    if not isinstance(value, str) or not value or value.strip() != value or any(c.isspace() for c in value):
        raise InvalidInput(f"invalid registry '{value}': give host[:port] or an http(s) URL")
    text = value if "://" in value else f"https://{value}"
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https"):
        raise InvalidInput(f"invalid registry '{value}': only http:// and https:// are supported")
    if parts.username or parts.password or "@" in parts.netloc:
        raise InvalidInput("invalid registry: credentials must not be part of the URL; use username and password")
    if parts.query or parts.fragment:
        raise InvalidInput(f"invalid registry '{value}': no query or fragment allowed")
    host = parts.netloc.lower()
    if not host or not HOST_RE.match(host):
        raise InvalidInput(f"invalid registry '{value}': '{parts.netloc}' is not a valid host[:port]")
    base = parts.path[:-1] if parts.path.endswith("/") else parts.path
    if base.endswith("/v2"):
        base = base[:-3]  # users paste the API root; the client adds /v2/ itself
    return RegistryLocation(parts.scheme, host, base)


# --- digests -------------------------------------------------------------------------------------

def _hasher(algorithm: str):
    if algorithm not in KNOWN_DIGESTS:
        raise InvalidInput(f"cannot verify {algorithm} digests: only sha256 and sha512 are supported")
    return hashlib.new(algorithm)


def compute_digest(data: bytes, algorithm: str = "sha256") -> str:
    hasher = _hasher(algorithm)
    hasher.update(data)
    return f"{algorithm}:{hasher.hexdigest()}"


class DigestHasher:
    """Incremental digest check for streamed content."""

    def __init__(self, expected_digest: str) -> None:
        validate_digest(expected_digest)
        self.expected = expected_digest
        self.algorithm = expected_digest.split(":", 1)[0]
        self._hash = _hasher(self.algorithm)
        self.size = 0

    def update(self, chunk: bytes) -> None:
        self._hash.update(chunk)
        self.size += len(chunk)

    @property
    def digest(self) -> str:
        return f"{self.algorithm}:{self._hash.hexdigest()}"

    def matches(self) -> bool:
        return self.digest == self.expected


def bare_media_type(content_type: str | None) -> str:
    return (content_type or "").split(";", 1)[0].strip().lower()
