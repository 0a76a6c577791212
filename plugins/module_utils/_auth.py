# Copyright: regops.registry contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Pure authentication logic: challenges, scopes, token requests and responses, the token cache, realm
validation, redaction.

Never does I/O: it *describes* token requests and *reads* token responses; ``_authenticator`` sends them
through the transport, and ``_credentials`` finds what to authenticate with.
Protocol reference section 4 (checklist AU-01..AU-13) is the specification followed here.
"""

from __future__ import annotations

import base64
import ipaddress
import math
import re
import socket
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING
from urllib.parse import quote, quote_plus, unquote_plus, urlencode, urlsplit, urlunsplit

from ansible_collections.regops.registry.plugins.module_utils.errors import InvalidInput

if TYPE_CHECKING:  # pragma: no cover - typing only
    from ansible_collections.regops.registry.plugins.module_utils._credentials import Credentials

CLIENT_ID = "regops.registry"
MIN_TOKEN_LIFETIME = 60.0  # D-auth: absent -> 60 s, and servers SHOULD NOT issue less
MAX_TOKEN_MARGIN = 30.0
REDACTED = "REDACTED"
# Query keys whose values are credentials or signatures (presigned blob URLs, upload state, tokens).
SECRET_QUERY_KEYS = frozenset({
    "x-amz-signature", "x-amz-credential", "x-amz-security-token", "x-goog-signature", "x-goog-credential",
    "signature", "sig", "token", "access_token", "refresh_token", "_state", "password", "client_secret",
})


class AuthError(Exception):
    """Credentials could not be resolved, or a token exchange is unsafe or unusable.

    The message never contains a secret: it names the source (path, helper, user), never the value.
    """


# --- challenges (AU-01) ---------------------------------------------------------------------------

@dataclass(frozen=True)
class Challenge:
    """One ``WWW-Authenticate`` challenge; scheme and parameter names lowercased (RFC 7235: case-insensitive)."""

    scheme: str
    params: dict[str, str] = field(default_factory=dict)

    @property
    def realm(self) -> str:
        return self.params.get("realm", "")

    @property
    def service(self) -> str:
        return self.params.get("service", "")

    @property
    def error(self) -> str:
        """``invalid_token`` (drop the cached token, refetch once) or ``insufficient_scope`` (merge scopes)."""
        return self.params.get("error", "")

    @property
    def scopes(self) -> list[Scope]:
        return parse_scope_param(self.params.get("scope"))


_TCHARS = frozenset("!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")
_TOKEN68_RE = re.compile(r"[A-Za-z0-9._~+/-]+=*[ \t]*(?:,|$)")


def _read_token(value: str, pos: int) -> int:
    end = pos
    while end < len(value) and value[end] in _TCHARS:
        end += 1
    return end


def _read_quoted(value: str, pos: int) -> tuple[str, int]:
    """``value[pos] == '"'``: the unescaped content and the position after the closing quote."""
    out: list[str] = []
    pos += 1
    while pos < len(value):
        char = value[pos]
        if char == "\\" and pos + 1 < len(value):
            out.append(value[pos + 1])
            pos += 2
            continue
        if char == '"':
            return "".join(out), pos + 1
        out.append(char)
        pos += 1
    return "".join(out), pos  # unterminated: keep what is there


def _parse_field(value: str) -> list[Challenge]:
    """Challenges of one header field: a token followed by ``=`` is a parameter, any other token a new scheme."""
    challenges: list[Challenge] = []
    current: dict[str, str] | None = None
    pos = 0
    size = len(value)
    while pos < size:
        while pos < size and value[pos] in " \t,":
            pos += 1
        if pos >= size:
            break
        end = _read_token(value, pos)
        if end == pos:  # stray character (a quote, '=' ...): skip it, or the quoted string it opens
            pos = _read_quoted(value, pos)[1] if value[pos] == '"' else pos + 1
            continue
        word = value[pos:end]
        after = end
        while after < size and value[after] in " \t":
            after += 1
        if after < size and value[after] == "=":
            pos = after + 1
            while pos < size and value[pos] in " \t":
                pos += 1
            if pos < size and value[pos] == '"':
                param, pos = _read_quoted(value, pos)
            else:  # token value; lenient: anything up to a comma or blank (unquoted URLs are met in practice)
                start = pos
                while pos < size and value[pos] not in ", \t":
                    pos += 1
                param = value[start:pos]
            if current is not None:
                current.setdefault(word.lower(), param)
            continue
        current = {}
        challenges.append(Challenge(word.lower(), current))
        pos = end
        token68 = _TOKEN68_RE.match(value, after)
        if after > end and token68:  # "Negotiate abc==": credentials blob, not parameters
            pos = token68.end()
    return challenges


def parse_challenges(header_values: Iterable[str] | str | None) -> list[Challenge]:
    """All challenges in ``WWW-Authenticate`` values: separate fields, or several joined in one field.

    Pass ``response.raw.headers.getlist('WWW-Authenticate')`` or the merged ``response.headers`` value:
    both give the same result because one field is split into challenges here.
    """
    if header_values is None:
        return []
    if isinstance(header_values, str):
        header_values = [header_values]
    out: list[Challenge] = []
    for value in header_values:
        if value:
            out.extend(_parse_field(str(value)))
    return out


def choose_challenge(challenges: Iterable[Challenge]) -> Challenge | None:
    """Bearer if offered (one with a realm preferred), else Basic; other schemes (Negotiate...) are ignored."""
    challenges = list(challenges)
    bearers = [c for c in challenges if c.scheme == "bearer"]
    basics = [c for c in challenges if c.scheme == "basic"]
    with_realm = [c for c in bearers if c.realm]
    if with_realm:
        return with_realm[0]
    if basics:
        return basics[0]
    return bearers[0] if bearers else None


# --- scopes (AU-02) -------------------------------------------------------------------------------

_SCOPE_PART_RE = re.compile(r"^[^\s:]+$")
_ACTION_RE = re.compile(r"^[A-Za-z0-9_*-]+$")


@dataclass(frozen=True, order=True)
class Scope:
    """``type:name:actions``; actions sorted and deduplicated, so equal access compares and prints equal."""

    type: str
    name: str
    actions: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        actions: Iterable[str] = self.actions.split(",") if isinstance(self.actions, str) else self.actions
        object.__setattr__(self, "actions", tuple(sorted({a.strip() for a in actions if a and a.strip()})))

    @classmethod
    def parse(cls, text: str) -> Scope:
        """The name may hold ``:port`` (``repository:localhost:5000/app:pull``): type at the first colon, actions at the last."""
        text = text.strip() if isinstance(text, str) else ""
        kind, sep, rest = text.partition(":")
        name, sep2, actions = rest.rpartition(":")
        parts = [a for a in actions.split(",") if a]
        if (not sep or not sep2 or not _SCOPE_PART_RE.match(kind) or not name or any(c.isspace() for c in name)
                or not parts or not all(_ACTION_RE.match(a) for a in parts)):
            raise InvalidInput(f"invalid scope '{text}': expected 'type:name:action[,action...]', "
                               "for example 'repository:team/app:pull,push'")
        return cls(kind, name, tuple(parts))

    @classmethod
    def repository(cls, name: str, *actions: str) -> Scope:
        return cls("repository", name, tuple(actions))

    def __str__(self) -> str:
        return f"{self.type}:{self.name}:{','.join(self.actions)}"


def parse_scope_param(value: str | None) -> list[Scope]:
    """The space-separated ``scope`` of a challenge; unparseable items (server text) are skipped."""
    out: list[Scope] = []
    for part in (value or "").split():
        try:
            out.append(Scope.parse(part))
        except InvalidInput:
            continue
    return out


def merge_scopes(existing: Iterable[Scope], new: Iterable[Scope]) -> list[Scope]:
    """Union of actions per (type, name); resources of ``new`` first, since some servers read only the first scope."""
    merged: dict[tuple[str, str], set[str]] = {}
    for scope in [*new, *existing]:
        merged.setdefault((scope.type, scope.name), set()).update(scope.actions)
    return [Scope(kind, name, tuple(actions)) for (kind, name), actions in merged.items()]


def scopes_missing(granted_or_requested: Iterable[Scope], wanted: Iterable[Scope]) -> list[Scope]:
    """The part of ``wanted`` not held: one Scope per resource with only the missing actions.

    An action ``*`` held on a resource covers every action there (distribution's rule).
    """
    have: dict[tuple[str, str], set[str]] = {}
    for scope in granted_or_requested:
        have.setdefault((scope.type, scope.name), set()).update(scope.actions)
    missing: list[Scope] = []
    for scope in merge_scopes([], wanted):
        held = have.get((scope.type, scope.name), set())
        if "*" in held:
            continue
        lacking = [a for a in scope.actions if a not in held]
        if lacking:
            missing.append(Scope(scope.type, scope.name, tuple(lacking)))
    return missing


def scopes_cover(granted: Iterable[Scope], wanted: Iterable[Scope]) -> bool:
    return not scopes_missing(granted, wanted)


# --- token requests (AU-03, AU-08, AU-12) ---------------------------------------------------------

@dataclass(frozen=True)
class TokenRequest:
    """What the client sends to the token realm. ``use_basic``: add the credentials' Basic header."""

    method: str
    url: str
    params: list[tuple[str, str]] = field(default_factory=list)
    data: dict[str, str] | None = None
    use_basic: bool = False

    def __repr__(self) -> str:
        data = None if self.data is None else {k: (REDACTED if k in ("refresh_token", "password") else v)
                                               for k, v in self.data.items()}
        return (f"TokenRequest(method={self.method!r}, url={redact_url(self.url)!r}, params={self.params!r}, "
                f"data={data!r}, use_basic={self.use_basic!r})")

    __str__ = __repr__

    @property
    def full_url(self) -> str:
        """The realm with ``params`` appended after any query it already had."""
        if not self.params:
            return self.url
        parts = urlsplit(self.url)
        query = "&".join(q for q in (parts.query, urlencode(self.params)) if q)
        return urlunsplit((parts.scheme, parts.netloc, parts.path, query, parts.fragment))


_PRIVATE_NETS = tuple(ipaddress.ip_network(n) for n in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "fc00::/7"))


def _split_host(host_or_hostport: str) -> str:
    """``host[:port]`` / ``[v6]:port`` -> bare lowercase host without trailing dot."""
    text = (host_or_hostport or "").strip()
    if text.count(":") > 1 and not text.startswith("["):  # a bare IPv6 literal
        return text.rstrip(".").lower()
    try:
        host = urlsplit(f"//{text}").hostname if text else None
    except ValueError:
        host = None
    return (host or text).strip("[]").rstrip(".").lower()


def _ip(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """An IP literal, including the legacy IPv4 forms a resolver accepts (``127.1``, ``0x7f.0.0.1``, ``2130706433``)."""
    try:
        address = ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        if not re.fullmatch(r"[0-9a-fA-FxX.]+", host) or not re.match(r"[0-9]", host):
            return None
        try:
            address = ipaddress.IPv4Address(socket.inet_aton(host))
        except OSError:
            return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def address_class(host: str) -> str | None:
    """``loopback`` / ``link-local`` / ``private`` / ``special`` for internal literals, ``None`` for names and public IPs.

    Only literals: this layer never resolves names (``localhost`` and ``*.localhost`` count as loopback).
    """
    host = _split_host(host)
    if host == "localhost" or host.endswith(".localhost"):
        return "loopback"
    address = _ip(host)
    if address is None:
        return None
    if address.is_loopback:
        return "loopback"
    if address.is_link_local:
        return "link-local"
    if any(address in net for net in _PRIVATE_NETS if net.version == address.version):
        return "private"
    if address.is_unspecified or address.is_multicast or address.is_reserved or not address.is_global:
        return "special"
    return None


def validate_realm(realm: str, registry_scheme: str, registry_host: str) -> None:
    """Refuse a token realm that would leak credentials or reach internal services (protocol reference 4.5).

    The exact rule, in order:

    1. The realm is an absolute ``http``/``https`` URL with a host and no user info.
    2. An ``https`` registry needs an ``https`` realm (``http`` realms only for ``http`` registries).
    3. A realm whose host is a name or a public IP literal is accepted.
    4. A realm on an internal IP literal (see ``address_class``) is accepted only when
       a. its host equals the registry's host (any port), or
       b. it is loopback and the registry host is loopback (a lab: registry and token server on 127.0.0.1), or
       c. it is private (RFC 1918 / fc00::/7) and the registry host is loopback or private.
       Link-local (169.254.0.0/16 cloud metadata, fe80::/10) and special addresses (0.0.0.0, CGNAT,
       reserved) therefore pass only under (a).
    Names are not resolved here, so a public name pointing at a private address is not caught.
    """
    if not realm:
        raise AuthError("the registry asked for a Bearer token without naming a token server (no realm in its "
                        "WWW-Authenticate challenge); check the registry's auth configuration")
    shown = redact_url(realm) if isinstance(realm, str) else repr(realm)
    try:
        parts = urlsplit(realm) if isinstance(realm, str) else None
        hostname = parts.hostname if parts else None
        _port = parts.port if parts else None  # raises on a mangled authority (user info holding '/', '?')
    except ValueError:
        parts = hostname = None
    if parts is None or parts.scheme.lower() not in ("http", "https") or not hostname:
        raise AuthError(f"refusing the token realm '{shown}': not an absolute http(s) URL")
    if "@" in parts.netloc:
        raise AuthError(f"refusing the token realm '{shown}': it carries user info")
    if (registry_scheme or "https").lower() == "https" and parts.scheme.lower() != "https":
        raise AuthError(f"refusing the token realm '{shown}': plain http for an https registry would expose the credentials")
    realm_host = _split_host(hostname)
    realm_class = address_class(realm_host)
    if realm_class is None:
        return
    registry_hostname = _split_host(registry_host)
    realm_ip, registry_ip = _ip(realm_host), _ip(registry_hostname)
    if realm_host == registry_hostname or (realm_ip is not None and realm_ip == registry_ip):
        return
    registry_class = address_class(registry_hostname)
    if realm_class == "loopback" and registry_class == "loopback":
        return
    if realm_class == "private" and registry_class in ("loopback", "private"):
        return
    raise AuthError(f"refusing the token realm '{shown}': a {realm_class} address offered by the registry "
                    f"{registry_host}, which is not on such an address itself")


def build_token_request(challenge: Challenge, scopes: Iterable[Scope], credentials: Credentials, *,
                        registry_scheme: str, registry_host: str, prefer_oauth: bool = False) -> TokenRequest:
    """Describe the token request for a Bearer challenge (validates the realm first: AuthError if unsafe).

    * identity token -> OAuth2 POST ``grant_type=refresh_token`` (the refresh token goes only to the realm);
    * username/password and ``prefer_oauth`` -> OAuth2 POST ``grant_type=password``;
    * username/password -> GET with Basic; otherwise an anonymous GET (public pulls).
    Scope order is kept (after merging duplicates): new scopes first matters to some servers.
    """
    if challenge.scheme != "bearer":
        raise AuthError(f"a token request needs a Bearer challenge, not {challenge.scheme!r}")
    realm = challenge.realm
    validate_realm(realm, registry_scheme, registry_host)  # an absent realm included
    service = challenge.service
    scope_list = [str(s) for s in merge_scopes([], scopes)]
    has_basic = credentials.basic_header() is not None
    if credentials.identity_token or (prefer_oauth and has_basic):
        if credentials.identity_token:
            data = {"grant_type": "refresh_token", "refresh_token": credentials.identity_token}
        else:
            data = {"grant_type": "password", "username": credentials.username or "", "password": credentials.password or ""}
        if service:
            data["service"] = service
        data["client_id"] = CLIENT_ID
        if scope_list:
            data["scope"] = " ".join(scope_list)
        return TokenRequest("POST", realm, [], data, False)
    params: list[tuple[str, str]] = [("service", service)] if service else []
    params += [("scope", s) for s in scope_list]
    if credentials.username:
        params.append(("account", credentials.username))
    params.append(("client_id", CLIENT_ID))
    return TokenRequest("GET", realm, params, None, has_basic)


def fallback_to_get(token_request: TokenRequest, credentials: Credentials) -> TokenRequest | None:
    """An OAuth2 POST answered 404 (no OAuth2 on that server, ggcr): the GET form, when a password exists."""
    if token_request.method != "POST" or credentials.basic_header() is None:
        return None
    data = token_request.data or {}
    params: list[tuple[str, str]] = [("service", data["service"])] if data.get("service") else []
    params += [("scope", s) for s in (data.get("scope") or "").split()]
    params += [("account", credentials.username or ""), ("client_id", CLIENT_ID)]
    return TokenRequest("GET", token_request.url, params, None, True)


# --- token responses (AU-04) ----------------------------------------------------------------------

def parse_token_response(payload: object, received_at: float) -> tuple[str, float]:
    """``(token, expires_at)``; expiry counts from LOCAL receipt minus min(30 s, 10 %): ``issued_at`` may be skewed."""
    if not isinstance(payload, dict):
        raise AuthError("the token server answered something that is not a JSON object")
    token = next((payload[k] for k in ("token", "access_token") if isinstance(payload.get(k), str) and payload[k]), None)
    if token is None:
        raise AuthError("the token server answered without a token (neither 'token' nor 'access_token')")
    raw = payload.get("expires_in")
    try:
        lifetime = float(raw) if raw is not None and not isinstance(raw, bool) else MIN_TOKEN_LIFETIME
    except (TypeError, ValueError):
        lifetime = MIN_TOKEN_LIFETIME
    if not math.isfinite(lifetime) or lifetime < MIN_TOKEN_LIFETIME:
        lifetime = MIN_TOKEN_LIFETIME
    return token, received_at + lifetime - min(MAX_TOKEN_MARGIN, lifetime * 0.1)


# --- token cache (AU-05, AU-07) -------------------------------------------------------------------

TokenKey = tuple  # (realm, service, frozenset[str] of scope strings, credentials.identity)


class TokenCache:
    """Tokens per (realm, service, scope set, credential identity); thread-safe, one fetch in flight per key.

    Single flight: ``with cache.lock_for(key): token = cache.get(key, now) or fetch-and-put`` - N threads
    needing the same token send one request.
    """

    def __init__(self) -> None:
        self._tokens: dict[TokenKey, tuple[str, float, list[Scope]]] = {}
        self._locks: dict[TokenKey, threading.Lock] = {}
        self._lock = threading.Lock()

    @staticmethod
    def key(realm: str, service: str, scopes: Iterable[Scope], identity: str) -> TokenKey:
        """The canonical key (scopes merged per resource first, so equal access gives equal keys)."""
        return (realm, service or "", frozenset(str(s) for s in merge_scopes([], scopes)), identity)

    def get(self, key: TokenKey, now: float) -> str | None:
        with self._lock:
            entry = self._tokens.get(key)
            if entry is None:
                return None
            if entry[1] <= now:
                del self._tokens[key]
                return None
            return entry[0]

    def put(self, key: TokenKey, token: str, expires_at: float) -> None:
        scopes = [s for text in key[2] for s in parse_scope_param(text)]
        with self._lock:
            self._tokens[key] = (token, expires_at, scopes)

    def discard(self, token: str) -> None:
        """Forget a token the registry refused, under every scope set it was cached for (``covering`` hands
        one token out for several): the next lookup misses and the client fetches a fresh one."""
        with self._lock:
            for key in [k for k, entry in self._tokens.items() if entry[0] == token]:
                del self._tokens[key]

    def lock_for(self, key: TokenKey) -> threading.Lock:
        with self._lock:
            lock = self._locks.get(key)
            if lock is None:
                lock = self._locks[key] = threading.Lock()
            return lock

    def covering(self, realm: str, service: str, identity: str, wanted_scopes: Iterable[Scope], now: float) -> str | None:
        """A live token for the same realm/service/identity whose scope set holds all wanted (pull,push serves pull).

        Among several, the one that lives longest. Requested scopes stand for granted ones: a partial grant
        shows up as a 401 ``insufficient_scope``, which the client answers by merging scopes.
        """
        wanted = list(wanted_scopes)
        best: tuple[float, str] | None = None
        with self._lock:
            for (k_realm, k_service, _scopes, k_identity), (token, expires_at, scopes) in self._tokens.items():
                if (k_realm, k_service or "", k_identity) != (realm, service or "", identity) or expires_at <= now:
                    continue
                if not scopes_missing(scopes, wanted) and (best is None or expires_at > best[0]):
                    best = (expires_at, token)
        return best[1] if best else None


# --- redaction (AU-13) ----------------------------------------------------------------------------

_AUTH_HEADER_RE = re.compile(r"(?i)(\bauthorization[\"']?[ \t]*[:=][ \t]*[\"']?(?:(?:basic|bearer)[ \t]+)?)([^\s\"',;]+)")
_SCHEME_VALUE_RE = re.compile(r"\b(Basic|Bearer|basic|bearer)([ \t]+)([A-Za-z0-9._~+/-]+=*)")
_JWT_RE = re.compile(r"\beyJ[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*")
_SECRET_FIELD_RE = re.compile(
    r"(?i)(\b(?:password|passwd|secret|token|access_token|refresh_token|identitytoken|identity_token|registrytoken)"
    r"[\"']?[ \t]*[:=][ \t]*[\"']?)([^\"'&\s,;}]+)")


def _scheme_value(match: re.Match) -> str:
    """``Basic <b64>`` / ``Bearer <token>`` -> value redacted; challenge params (``Bearer realm="..."``) and prose kept."""
    value = match.group(3)
    after = match.string[match.end():match.end() + 1]
    if value.endswith("=") and (after == '"' or after.isalnum()):  # realm="...": a parameter, not a credential
        return match.group(0)
    if not any(c.isdigit() or c in "+/=._~-" for c in value) and not any(c.isupper() for c in value[1:]):
        return match.group(0)  # a plain word ("basic authentication"): opaque tokens have digits or mixed case
    return f"{match.group(1)}{match.group(2)}{REDACTED}"


def redact(text: object, secrets: Iterable[str | None]) -> str:
    """``text`` without the given secrets (also URL-quoted and base64 forms), Authorization values, JWTs and
    ``password=``/``"token": ...`` style fields. The client runs every message it builds through this.

    Pass ``credentials.secrets()``: it includes the Basic header's base64 ``user:password`` payload.
    """
    text = "" if text is None else str(text)
    for secret in sorted({s for s in secrets if s}, key=len, reverse=True):
        forms = dict.fromkeys((secret, quote(secret, safe=""), quote_plus(secret), base64.b64encode(secret.encode("utf-8")).decode("ascii")))
        for form in forms:
            text = text.replace(form, REDACTED)
    text = _AUTH_HEADER_RE.sub(lambda m: m.group(1) + REDACTED, text)
    text = _SCHEME_VALUE_RE.sub(_scheme_value, text)
    text = _JWT_RE.sub(REDACTED, text)
    return _SECRET_FIELD_RE.sub(lambda m: m.group(1) + REDACTED, text)


def redact_url(url: str | None) -> str | None:
    """The URL without user info and with the values of signature/token query keys replaced by ``REDACTED``.

    The rest of the query is kept byte for byte (no re-encoding), so the URL stays recognisable.
    """
    if not url or not isinstance(url, str):
        return url
    try:
        parts = urlsplit(url)
        try:
            _port = parts.port
        except ValueError:  # user info holding '/', '?' or '#' split the authority: cut through the last '@'
            start = url.find("://") + 3 if "://" in url else 0
            if url.rfind("@") >= start:
                parts = urlsplit(url[:start] + url[url.rfind("@") + 1:])
    except ValueError:  # not a URL after all: keep it readable, drop anything that looks like user info
        return redact(re.sub(r"//[^/@\s]*@", "//", url), [])
    netloc = parts.netloc.rpartition("@")[2]
    pairs = []
    for pair in parts.query.split("&") if parts.query else []:
        name, eq, _value = pair.partition("=")
        pairs.append(f"{name}={REDACTED}" if eq and unquote_plus(name).lower() in SECRET_QUERY_KEYS else pair)
    return urlunsplit((parts.scheme, netloc, parts.path, "&".join(pairs), parts.fragment))
