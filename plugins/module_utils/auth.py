# Copyright: regops.registry contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Authentication logic: challenges, scopes, credentials, token requests and the token cache.

Never does HTTP: it describes token requests and reads token responses; the client sends them. The
only I/O is reading a Docker config.json and running ``docker-credential-*`` helpers.
"""

from __future__ import annotations

import base64
import hashlib
import ipaddress
import json
import os
import re
import subprocess
import threading
from dataclasses import dataclass, field
from typing import Iterable
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from ansible_collections.regops.registry.plugins.module_utils.errors import InvalidInput

CLIENT_ID = "regops.registry"
MIN_TOKEN_LIFETIME = 60.0
HELPER_SUFFIX_RE = re.compile(r"^[A-Za-z0-9._-]+$")
SECRET_QUERY_KEYS = frozenset({"x-amz-signature", "x-amz-credential", "x-amz-security-token", "signature", "sig",
                               "token", "access_token", "_state", "x-goog-signature"})


class AuthError(Exception):
    """Credentials could not be resolved or a token could not be obtained. Never carries a secret."""


# --- challenges ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class Challenge:
    scheme: str
    params: dict = field(default_factory=dict)


_TOKEN = r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+"
_PARAM_RE = re.compile(rf'\s*({_TOKEN})\s*=\s*("(?:[^"\\]|\\.)*"|{_TOKEN})\s*')


def _parse_one_field(value: str) -> list[Challenge]:
    challenges: list[Challenge] = []
    pos = 0
    current: Challenge | None = None
    while pos < len(value):
        while pos < len(value) and value[pos] in " ,":
            pos += 1
        if pos >= len(value):
            break
        param = _PARAM_RE.match(value, pos)
        if param and current is not None:
            name, raw = param.group(1).lower(), param.group(2)
            if raw.startswith('"'):
                raw = re.sub(r"\\(.)", r"\1", raw[1:-1])
            current.params[name] = raw
            pos = param.end()
            continue
        scheme = re.match(_TOKEN, value[pos:])
        if not scheme:
            break  # garbage: keep what was understood
        current = Challenge(scheme.group(0).lower(), {})
        challenges.append(current)
        pos += scheme.end()
        # token68 form ("Basic abc=="): skip it
        t68 = re.match(r"\s+([A-Za-z0-9._~+/-]+=*)\s*(?:,|$)", value[pos:])
        if t68 and "=" not in t68.group(1).rstrip("="):
            pos += t68.end()
    return challenges


def parse_challenges(header_values: Iterable[str]) -> list[Challenge]:
    """All challenges in ``WWW-Authenticate`` values (several fields, or several challenges in one)."""
    out: list[Challenge] = []
    for value in header_values or []:
        if value:
            out.extend(_parse_one_field(value))
    return out


def choose_challenge(challenges: list[Challenge]) -> Challenge | None:
    for wanted in ("bearer", "basic"):
        for challenge in challenges:
            if challenge.scheme == wanted:
                return challenge
    return None


# --- scopes -------------------------------------------------------------------------------------

@dataclass(frozen=True, order=True)
class Scope:
    type: str
    name: str
    actions: tuple = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "actions", tuple(sorted(set(a for a in self.actions if a))))

    @classmethod
    def parse(cls, text: str) -> Scope:
        """``type:name:actions``; the name may hold a ``:port``, so split at the first and the last colon."""
        kind, sep, rest = text.partition(":")
        name, sep2, actions = rest.rpartition(":")
        if not sep or not sep2 or not kind or not name:
            raise InvalidInput(f"invalid scope '{text}'")
        return cls(kind, name, tuple(actions.split(",")))

    @classmethod
    def repository(cls, name: str, *actions: str) -> Scope:
        return cls("repository", name, tuple(actions))

    def __str__(self) -> str:
        return f"{self.type}:{self.name}:{','.join(self.actions)}"


def parse_scope_param(value: str | None) -> list[Scope]:
    out = []
    for part in (value or "").split():
        try:
            out.append(Scope.parse(part))
        except InvalidInput:
            continue
    return out


def merge_scopes(existing: Iterable[Scope], new: Iterable[Scope]) -> list[Scope]:
    """Union of actions per resource; the resources of ``new`` first (some servers read only the first)."""
    merged: dict[tuple[str, str], set] = {}
    order: list[tuple[str, str]] = []
    for scope in list(new) + list(existing):
        key = (scope.type, scope.name)
        if key not in merged:
            merged[key] = set()
            order.append(key)
        merged[key].update(scope.actions)
    return [Scope(k[0], k[1], tuple(merged[k])) for k in order]


def scopes_cover(granted: Iterable[Scope], wanted: Iterable[Scope]) -> bool:
    have: dict[tuple[str, str], set] = {}
    for scope in granted:
        have.setdefault((scope.type, scope.name), set()).update(scope.actions)
    for scope in wanted:
        actions = have.get((scope.type, scope.name), set())
        if "*" not in actions and not set(scope.actions) <= actions:
            return False
    return True


# --- credentials --------------------------------------------------------------------------------

@dataclass
class Credentials:
    username: str | None = None
    password: str | None = None
    bearer_token: str | None = None
    identity_token: str | None = None
    registry_token: str | None = None
    source: str = "anonymous"

    def __repr__(self) -> str:
        secrets = [name for name in ("password", "bearer_token", "identity_token", "registry_token") if getattr(self, name)]
        return f"Credentials(username={self.username!r}, secrets={secrets}, source={self.source!r})"

    __str__ = __repr__

    @property
    def identity(self) -> str:
        """Non-secret cache key part: token caches never mix credentials."""
        secret = self.password or self.bearer_token or self.identity_token or self.registry_token or ""
        return f"{self.username or ''}#{hashlib.sha256(secret.encode()).hexdigest()[:16]}"

    def basic_header(self) -> str | None:
        if self.username is None or self.password is None:
            return None
        raw = f"{self.username}:{self.password}".encode("utf-8")
        return "Basic " + base64.b64encode(raw).decode("ascii")

    def secrets(self) -> list[str]:
        return [s for s in (self.password, self.bearer_token, self.identity_token, self.registry_token) if s]


def _normalise_key(key: str) -> str:
    host = re.sub(r"^[a-z]+://", "", key.strip().lower()).split("/", 1)[0]
    return "index.docker.io" if host in ("docker.io", "registry-1.docker.io") else host


def _config_path(docker_config: str | None, environ: dict) -> str:
    if docker_config:
        path = os.path.expanduser(docker_config)
        return os.path.join(path, "config.json") if os.path.isdir(path) else path
    if environ.get("DOCKER_CONFIG"):
        return os.path.join(environ["DOCKER_CONFIG"], "config.json")
    return os.path.join(os.path.expanduser("~"), ".docker", "config.json")


def _from_auth_entry(entry: dict, where: str) -> Credentials | None:
    username = entry.get("username")
    password = entry.get("password")
    encoded = entry.get("auth")
    if encoded:
        try:
            decoded = base64.b64decode(encoded).decode("utf-8")
        except (ValueError, UnicodeDecodeError):
            raise AuthError(f"{where}: 'auth' is not base64 of user:password") from None
        username, sep, password = decoded.partition(":")
        if not sep:
            raise AuthError(f"{where}: 'auth' is not base64 of user:password")
        password = password.rstrip("\x00")
    if entry.get("identitytoken"):
        return Credentials(username=username, identity_token=entry["identitytoken"], source=where)
    if entry.get("registrytoken"):
        return Credentials(registry_token=entry["registrytoken"], source=where)
    if username and password is not None:
        return Credentials(username=username, password=password, source=where)
    return None


def resolve_credentials(location, *, username: str | None = None, password: str | None = None,
                        token: str | None = None, docker_config: str | None = None,
                        helper_timeout: float = 10.0, environ: dict | None = None) -> Credentials:
    """Options first, then the Docker config (helpers, then ``auths``), then anonymous."""
    environ = dict(os.environ if environ is None else environ)
    if token:
        return Credentials(bearer_token=token, source="token option")
    if password is not None and not username:
        raise InvalidInput("password needs username")
    if username:
        if password is None:
            raise InvalidInput(f"username '{username}' needs password")
        return Credentials(username=username, password=password, source="username option")
    path = _config_path(docker_config, environ)
    if not os.path.exists(path):
        return Credentials(source="anonymous")
    try:
        with open(path, encoding="utf-8") as handle:
            config = json.load(handle)
    except (OSError, ValueError) as exc:
        raise AuthError(f"cannot read the Docker config {path}: {type(exc).__name__}") from None
    if not isinstance(config, dict):
        raise AuthError(f"the Docker config {path} is not a JSON object")
    helper_url = "https://index.docker.io/v1/" if location.is_docker_hub else location.host
    helper = (config.get("credHelpers") or {}).get(location.host) or (config.get("credHelpers") or {}).get(
        location.canonical_host) or config.get("credsStore")
    notes = ""
    if helper:
        found = run_credential_helper(helper, helper_url, helper_timeout, environ)
        if found is not None:
            return found
        notes = f" (helper docker-credential-{helper} had none)"
    auths = config.get("auths") or {}
    entry_key = next((k for k in location.credential_keys if k in auths), None)
    if entry_key is None:
        wanted = _normalise_key(location.host)
        entry_key = next((k for k in auths if _normalise_key(k) == wanted), None)
    if entry_key is not None and isinstance(auths[entry_key], dict):
        found = _from_auth_entry(auths[entry_key], f"docker config {path} (auths['{entry_key}']){notes}")
        if found is not None:
            return found
    return Credentials(source=f"anonymous (nothing for {location.host} in {path}){notes}")


def run_credential_helper(suffix: str, server_url: str, timeout: float, environ: dict | None = None) -> Credentials | None:
    if not HELPER_SUFFIX_RE.match(suffix or ""):
        raise InvalidInput(f"invalid credential helper name '{suffix}'")
    environ = dict(os.environ if environ is None else environ)
    env = {k: v for k, v in environ.items()
           if k in ("PATH", "HOME", "DBUS_SESSION_BUS_ADDRESS", "PASSWORD_STORE_DIR")
           or k.startswith(("DOCKER_", "XDG_", "AWS_"))}
    program = f"docker-credential-{suffix}"
    try:
        proc = subprocess.run([program, "get"], input=server_url.encode(), capture_output=True, timeout=timeout,
                              env=env, check=False)
    except FileNotFoundError:
        raise AuthError(f"credential helper {program} not found on PATH") from None
    except subprocess.TimeoutExpired:
        raise AuthError(f"credential helper {program} timed out after {timeout:g} s") from None
    out = proc.stdout.decode("utf-8", "replace")
    if proc.returncode != 0:
        if "credentials not found" in (out + proc.stderr.decode("utf-8", "replace")).lower():
            return None
        raise AuthError(f"credential helper {program} failed with exit code {proc.returncode}")
    try:
        data = json.loads(out)
    except ValueError:
        raise AuthError(f"credential helper {program} did not answer JSON") from None
    username, secret = data.get("Username"), data.get("Secret")
    if not secret:
        return None
    where = f"credential helper {program}"
    if username == "<token>":
        return Credentials(identity_token=secret, source=where)
    return Credentials(username=username, password=secret, source=where)


# --- token requests -----------------------------------------------------------------------------

@dataclass(frozen=True)
class TokenRequest:
    method: str
    url: str
    params: list = field(default_factory=list)
    data: dict | None = None
    use_basic: bool = False


def _private_ip(host: str) -> bool:
    try:
        addr = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return host == "localhost"
    return addr.is_loopback or addr.is_link_local or addr.is_private or addr.is_reserved or addr.is_unspecified


def validate_realm(realm: str, registry_scheme: str, registry_host: str) -> None:
    """Refuse token realms that would leak credentials (protocol reference 4.5).

    Rules: http(s) only; an https registry needs an https realm; a realm on a loopback, link-local or
    private address is accepted only when the registry itself is on such an address (a lab or an
    internal registry), so a public registry cannot point us at 169.254.169.254.
    """
    parts = urlsplit(realm or "")
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise AuthError(f"refusing token realm '{realm}': not an http(s) URL")
    if registry_scheme == "https" and parts.scheme != "https":
        raise AuthError(f"refusing token realm '{realm}': plain http for an https registry")
    registry_hostname = urlsplit(f"//{registry_host}").hostname or registry_host
    if _private_ip(parts.hostname) and not _private_ip(registry_hostname) and parts.hostname != registry_hostname:
        raise AuthError(f"refusing token realm '{realm}': a private or link-local address for a public registry")


def build_token_request(challenge: Challenge, scopes: Iterable[Scope], credentials: Credentials, *,
                        registry_scheme: str = "https", registry_host: str = "") -> TokenRequest:
    realm = challenge.params.get("realm", "")
    service = challenge.params.get("service")
    scope_list = [str(s) for s in scopes]
    if credentials.identity_token:
        data = {"grant_type": "refresh_token", "refresh_token": credentials.identity_token,
                "client_id": CLIENT_ID}
        if service:
            data["service"] = service
        if scope_list:
            data["scope"] = " ".join(scope_list)
        return TokenRequest("POST", realm, [], data, False)
    params: list = []
    if service:
        params.append(("service", service))
    params.extend(("scope", s) for s in scope_list)
    has_basic = credentials.basic_header() is not None
    if has_basic:
        params.append(("account", credentials.username))
    params.append(("client_id", CLIENT_ID))
    return TokenRequest("GET", realm, params, None, has_basic)


def fallback_to_get(request: TokenRequest, credentials: Credentials) -> TokenRequest | None:
    """An OAuth2 POST answered 404: the GET form, when a password exists."""
    if request.method != "POST" or credentials.basic_header() is None:
        return None
    data = request.data or {}
    params = [("service", data["service"])] if data.get("service") else []
    params += [("scope", s) for s in (data.get("scope") or "").split()]
    params += [("account", credentials.username), ("client_id", CLIENT_ID)]
    return TokenRequest("GET", request.url, params, None, True)


def parse_token_response(payload: dict, received_at: float) -> tuple[str, float]:
    """(token, local expiry). Expiry counts from receipt: a skewed ``issued_at`` must not matter."""
    if not isinstance(payload, dict):
        raise AuthError("the token server answered something that is not a JSON object")
    token = payload.get("token") or payload.get("access_token")
    if not token or not isinstance(token, str):
        raise AuthError("the token server answered without a token")
    try:
        lifetime = float(payload.get("expires_in") or MIN_TOKEN_LIFETIME)
    except (TypeError, ValueError):
        lifetime = MIN_TOKEN_LIFETIME
    lifetime = max(lifetime, MIN_TOKEN_LIFETIME)
    margin = min(30.0, lifetime * 0.1)
    return token, received_at + lifetime - margin


class TokenCache:
    """Tokens per (realm, service, scope set, credential identity), with one fetch in flight per key."""

    def __init__(self) -> None:
        self._tokens: dict = {}
        self._locks: dict = {}
        self._lock = threading.Lock()

    def get(self, key, now: float) -> str | None:
        with self._lock:
            entry = self._tokens.get(key)
        if entry and entry[1] > now:
            return entry[0]
        return None

    def put(self, key, token: str, expires_at: float) -> None:
        with self._lock:
            self._tokens[key] = (token, expires_at)

    def invalidate(self, key) -> None:
        with self._lock:
            self._tokens.pop(key, None)

    def lock_for(self, key) -> threading.Lock:
        with self._lock:
            return self._locks.setdefault(key, threading.Lock())

    def covering(self, realm: str, service: str, identity: str, wanted: Iterable[Scope], now: float) -> str | None:
        """A live token whose scopes include every wanted one (a pull,push token serves pulls)."""
        wanted = list(wanted)
        with self._lock:
            entries = list(self._tokens.items())
        for (k_realm, k_service, k_scopes, k_identity), (token, expires_at) in entries:
            if (k_realm, k_service, k_identity) != (realm, service, identity) or expires_at <= now:
                continue
            if scopes_cover([Scope.parse(s) for s in k_scopes], wanted):
                return token
        return None


# --- redaction ----------------------------------------------------------------------------------

def redact(text: str, secrets: Iterable[str]) -> str:
    for secret in sorted((s for s in secrets if s), key=len, reverse=True):
        text = text.replace(secret, "********")
        encoded = base64.b64encode(secret.encode()).decode()
        text = text.replace(encoded, "********")
    return text


def redact_url(url: str | None) -> str | None:
    """Drop user info and signature-like query values from a URL before it goes in a message."""
    if not url:
        return url
    parts = urlsplit(url)
    netloc = parts.netloc.rsplit("@", 1)[-1]
    query = urlencode([(k, "REDACTED" if k.lower() in SECRET_QUERY_KEYS else v)
                       for k, v in parse_qsl(parts.query, keep_blank_values=True)], safe=":/")
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))
