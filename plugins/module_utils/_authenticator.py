# Copyright: regops.registry contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The auth flow: what ``Authorization`` a registry request carries, and what to do when it is answered 401.

``Authenticator`` holds one registry's challenge and token cache and fetches tokens through the transport;
``AuthRound`` is the state of one request (its scopes, what it sent, what it already tried). The rules
(protocol reference section 4) are pure and live in ``_auth``; credentials come from ``_credentials``.

After a 401 a request gets, in this order: the scopes the challenge adds (once per new scope set), then one
fresh token in place of the one it carried - whatever the challenge's ``error=`` says, since registries word
an expired or revoked token differently - and then a clear error naming the credentials' source.
"""

from __future__ import annotations

import threading
import time

from ansible_collections.regops.registry.plugins.module_utils import _auth
from ansible_collections.regops.registry.plugins.module_utils._credentials import Credentials
from ansible_collections.regops.registry.plugins.module_utils._transport import (
    Origin,
    Transport,
    header_values,
    origin,
    response_error,
)
from ansible_collections.regops.registry.plugins.module_utils.errors import RegistryError

MAX_AUTH_ROUNDS = 6  # 401s one request may answer: a server that asks for new scopes forever is stopped


class Authenticator:
    """Authentication for one registry: its challenge, its tokens, the token server calls. Thread-safe."""

    def __init__(self, credentials: Credentials, transport: Transport, *, registry_origin: Origin,
                 registry_scheme: str, registry_host: str, redact) -> None:
        self.credentials = credentials
        self.transport = transport
        self.registry_origin = registry_origin
        self.registry_scheme = registry_scheme
        self.registry_host = registry_host
        self.redact = redact
        self.tokens = _auth.TokenCache()
        self.challenge: _auth.Challenge | None = None
        self._lock = threading.Lock()

    def who(self) -> str:
        """The credentials in words for messages: user and source, never a secret."""
        creds = self.credentials
        if creds.username:
            return f"user '{creds.username}' ({creds.source})"
        return creds.source or "anonymous"

    def learn(self, response) -> _auth.Challenge | None:
        """Keep the challenge of a 401: Bearer (with a realm) preferred, else Basic."""
        chosen = _auth.choose_challenge(_auth.parse_challenges(header_values(response, "WWW-Authenticate")))
        if chosen is not None:
            with self._lock:
                self.challenge = chosen
        return chosen

    def round(self, scopes: list[_auth.Scope]) -> AuthRound:
        return AuthRound(self, scopes)

    # ------------------------------------------------------------------ headers and tokens

    def authorization(self, scopes: list[_auth.Scope]) -> str | None:
        creds = self.credentials
        if creds.bearer_token:
            return f"Bearer {creds.bearer_token}"
        if creds.registry_token:
            return f"Bearer {creds.registry_token}"
        challenge = self.challenge
        if challenge is None:
            return None
        if challenge.scheme == "basic":
            return creds.basic_header()
        if challenge.scheme == "bearer":
            return f"Bearer {self.token(challenge, scopes)}"
        return None

    def _key(self, challenge: _auth.Challenge, scopes: list[_auth.Scope]):
        return _auth.TokenCache.key(challenge.realm, challenge.service, scopes, self.credentials.identity)

    def token(self, challenge: _auth.Challenge, scopes: list[_auth.Scope]) -> str:
        """A live cached token whose scopes cover these (pull,push serves pull), else one fetched: once per key,
        however many threads ask at the same time."""
        key = self._key(challenge, scopes)
        cached = self.tokens.covering(challenge.realm, challenge.service, key[3], scopes, time.time())
        if cached:
            return cached
        with self.tokens.lock_for(key):
            cached = self.tokens.get(key, time.time())
            if cached:
                return cached
            token, expires_at = self._fetch(challenge, scopes)
            self.tokens.put(key, token, expires_at)
            return token

    def refresh(self, challenge: _auth.Challenge, scopes: list[_auth.Scope], refused: str | None) -> None:
        """A fresh token in place of a refused one. Threads that met the same refusal share one fetch: a thread
        finding the cache already holding another token uses that one."""
        key = self._key(challenge, scopes)
        with self.tokens.lock_for(key):
            current = self.tokens.get(key, time.time())
            if current is not None and current != refused:
                return
            if refused:
                self.tokens.discard(refused)
            token, expires_at = self._fetch(challenge, scopes)
            self.tokens.put(key, token, expires_at)

    def _fetch(self, challenge: _auth.Challenge, scopes: list[_auth.Scope]) -> tuple[str, float]:
        realm = challenge.realm
        shown = _auth.redact_url(realm)
        treq = _auth.build_token_request(challenge, scopes, self.credentials,  # validates the realm first
                                         registry_scheme=self.registry_scheme, registry_host=self.registry_host)
        response = self._call(treq)
        if response.status_code == 404 and treq.method == "POST":
            fallback = _auth.fallback_to_get(treq, self.credentials)
            if fallback is not None:
                treq = fallback
                response = self._call(treq)
        if response.status_code in (401, 403):
            raise RegistryError(f"the token server refused the credentials of {self.who()}",
                                operation="authentication", method=treq.method, url=shown, status=response.status_code)
        if response.status_code != 200:
            raise response_error(response, "authentication", treq.method, realm, self.redact)
        try:
            payload = response.json()
        except ValueError:
            raise RegistryError("the token server answered something that is not JSON", operation="authentication",
                                method=treq.method, url=shown, status=response.status_code) from None
        try:
            return _auth.parse_token_response(payload, time.time())
        except _auth.AuthError as exc:
            raise RegistryError(self.redact(str(exc)), operation="authentication", method=treq.method,
                                url=shown, status=response.status_code) from None

    def _call(self, treq: _auth.TokenRequest):
        """The token request through the transport (its TLS for the realm's host, its retries); no redirects."""
        headers = {"Accept": "application/json"}
        if treq.use_basic:
            basic = self.credentials.basic_header()
            if basic:
                headers["Authorization"] = basic
        return self.transport.send(treq.method, treq.full_url, headers=headers, body=treq.data,
                                   operation="authentication", peer="the token server")


class AuthRound:
    """One request's authentication: the scopes it needs, the header it sent last, the retries it has had."""

    def __init__(self, auth: Authenticator, scopes: list[_auth.Scope]) -> None:
        self.auth = auth
        self.scopes = list(scopes)
        self.sent: str | None = None
        self.rounds = 0
        self.refreshed: set[frozenset] = set()

    def headers(self, url: str) -> dict:
        """``Authorization`` for the registry's own origin only: never for a redirect target on another host."""
        if origin(url) != self.auth.registry_origin:
            return {}
        self.sent = self.auth.authorization(self.scopes)
        return {"Authorization": self.sent} if self.sent else {}

    def after_401(self, response, operation: str, method: str, url: str) -> None:
        """Return to send the request again, or raise the error that explains the refusal."""
        auth = self.auth
        creds = auth.credentials
        shown = _auth.redact_url(url)

        def refused(message: str) -> RegistryError:
            return RegistryError(message, operation=operation, method=method, url=shown, status=401)

        challenge = auth.learn(response)
        self.rounds += 1
        if challenge is None:
            raise refused("the registry requires authentication but sent no usable challenge")
        if self.rounds > MAX_AUTH_ROUNDS:
            raise refused(f"the registry kept asking for authentication ({auth.who()})")
        if not self.sent and self.rounds == 1 and (challenge.scheme != "basic" or creds.basic_header()):
            return  # the challenge was not known yet when the request left: send it again with credentials
        if challenge.scheme == "basic":
            if not creds.basic_header():
                raise refused(f"the registry requires a username and password; none was found ({creds.source})")
            raise refused(f"the registry refused the credentials of {auth.who()}")
        if creds.bearer_token or creds.registry_token:
            raise refused(f"the registry refused the pre-issued token ({creds.source})")
        wanted = _auth.merge_scopes(self.scopes, challenge.scopes)
        if _auth.scopes_missing(self.scopes, wanted):
            self.scopes = wanted  # the challenge names more access than asked for: a token for the union
            return
        key = frozenset(str(s) for s in wanted)
        if key not in self.refreshed:
            self.refreshed.add(key)
            stale = self.sent[len("Bearer "):] if self.sent and self.sent.startswith("Bearer ") else None
            auth.refresh(challenge, wanted, stale)
            return
        needed = ", ".join(str(s) for s in wanted) or "access"
        if challenge.error == "insufficient_scope":
            raise refused(f"the credential of {auth.who()} lacks the permission needed ({needed})")
        raise refused(f"the registry refused a fresh token for {needed} obtained with the credentials of {auth.who()}")
