"""A small Docker token server for the lab: GET flow and OAuth2 POST, JWTs that distribution 2.8 trusts.

Facts that matter for distribution 2.8 (registry/auth/token): the JWT header needs ``alg`` and one of
``x5c`` (certificate chain verified against ``auth.token.rootcertbundle``), ``jwk`` or ``kid`` (a libtrust
fingerprint of a public key *in* the bundle); ``aud`` must be a JSON string equal to ``auth.token.service``,
``iss`` equal to ``auth.token.issuer``; ``exp``/``nbf`` are checked with 60 s leeway, so a token with
``exp`` in the past stays usable for a minute (``exp_offset`` makes already-rejected tokens).

Users: ``{name: {"password": str, "grants": {repository_pattern: [actions]}}}`` (fnmatch patterns);
``registry:catalog:*`` is granted to users with a grant on ``"*"``. The answer is the intersection of
requested and granted actions (never an error for a partial grant); wrong credentials get 401.
"""

from __future__ import annotations

import base64
import fnmatch
import json
import ssl
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

from tests.lab import transcripts
from tests.lab.pki import libtrust_key_id

SERVICE = "regops-lab"
ISSUER = "regops-lab-issuer"


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def decode_jwt(token: str) -> tuple[dict, dict]:
    """(header, claims) of a JWT, unverified: for tests that look at what was granted."""
    def part(text: str) -> dict:
        return json.loads(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)))
    header, claims, _signature = token.split(".")
    return part(header), part(claims)


@dataclass
class TokenRequest:
    """One request the token server answered (kept in ``TokenServer.log``)."""
    kind: str                  # "get", "post_password", "post_refresh", "post_other"
    user: str | None           # authenticated user, None for anonymous / failed
    status: int
    scopes: list = field(default_factory=list)     # requested scope strings
    access: list = field(default_factory=list)     # granted access claim
    service: str | None = None
    account: str | None = None
    client_id: str | None = None
    offline: bool = False


class TokenServer:
    """HTTPS token server on 127.0.0.1 (threads). ``realm`` is what the registry config points at.

    ``counts`` (Counter): ``get``, ``post_password``, ``post_refresh``, ``post_other`` per request kind,
    ``issued`` (tokens handed out), ``denied`` (401/400 answers). ``log`` lists every ``TokenRequest``.
    """

    def __init__(self, users: dict, signing_cert: Path, signing_key: Path, server_cert: Path, server_key: Path, *,
                 expires_in: int = 300, port: int = 0, service: str = SERVICE, issuer: str = ISSUER,
                 key_hint: str = "x5c", anonymous: dict | None = None, require_client_id: bool = False) -> None:
        if key_hint not in ("x5c", "kid"):
            raise ValueError("key_hint must be 'x5c' or 'kid'")
        self.users = users
        self.anonymous = anonymous or {}          # grants for anonymous requests, e.g. {"public/*": ["pull"]}
        self.expires_in = expires_in              # the `expires_in` answered
        self.exp_offset: int | None = None        # JWT exp = now + exp_offset (default expires_in); < -60: rejected
        self.service = service
        self.issuer = issuer
        self.key_hint = key_hint
        self.require_client_id = require_client_id
        self.response_fields = ("token", "access_token")   # GET answer carries both (tests may drop one)
        self.counts: Counter = Counter()
        self.log: list[TokenRequest] = []
        self.refresh_tokens: dict[str, str] = {}
        self._lock = threading.Lock()
        cert = x509.load_pem_x509_certificate(Path(signing_cert).read_bytes())
        self._x5c = [base64.b64encode(cert.public_bytes(serialization.Encoding.DER)).decode()]
        self._kid = libtrust_key_id(cert.public_key())
        self._key = serialization.load_pem_private_key(Path(signing_key).read_bytes(), password=None)
        self.alg = "ES256" if isinstance(self._key, ec.EllipticCurvePrivateKey) else "RS256"

        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(str(server_cert), str(server_key))
        self.httpd = _TLSServer(("127.0.0.1", port), _handler(self), context)
        self.port = self.httpd.server_address[1]
        self.realm = f"https://127.0.0.1:{self.port}/token"
        self._thread = threading.Thread(target=self.httpd.serve_forever, name=f"tokenserver-{self.port}", daemon=True)

    # --- lifecycle ----------------------------------------------------------------------------

    def start(self) -> TokenServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def __enter__(self) -> TokenServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # --- stats --------------------------------------------------------------------------------

    def stats(self) -> dict:
        with self._lock:
            return dict(self.counts)

    def reset(self) -> None:
        with self._lock:
            self.counts.clear()
            self.log.clear()

    # --- policy -------------------------------------------------------------------------------

    def check_basic(self, header: str | None):
        """None for anonymous, the user name, or False for wrong credentials."""
        if not header:
            return None
        scheme, _sep, value = header.partition(" ")
        if scheme.lower() != "basic":
            return False
        try:
            name, _sep, password = base64.b64decode(value.strip()).decode().partition(":")
        except ValueError:
            return False
        return name if self.password_ok(name, password) else False

    def password_ok(self, name: str, password: str) -> bool:
        user = self.users.get(name)
        return bool(user) and user.get("password") == password

    def granted(self, user: str | None, scope: str) -> dict | None:
        """The access entry for one requested scope: requested ∩ granted actions, or None."""
        kind, _sep, rest = scope.partition(":")
        name, _sep2, actions = rest.rpartition(":")
        if not kind or not name:
            return None
        grants = (self.users.get(user) or {}).get("grants", {}) if user else self.anonymous
        wanted = [a for a in actions.split(",") if a]
        if kind == "registry":
            given = wanted if name == "catalog" and "*" in grants else []
        elif kind == "repository":
            allowed = {a for pattern, acts in grants.items() if fnmatch.fnmatchcase(name, pattern) for a in acts}
            given = [a for a in wanted if a in allowed]
        else:
            given = []
        return {"type": kind, "name": name, "actions": given} if given else None

    # --- tokens -------------------------------------------------------------------------------

    def sign(self, claims: dict) -> str:
        header = {"typ": "JWT", "alg": self.alg}
        if self.key_hint == "x5c":
            header["x5c"] = self._x5c
        else:
            header["kid"] = self._kid
        signing_input = f"{b64url(json.dumps(header).encode())}.{b64url(json.dumps(claims).encode())}".encode()
        if self.alg == "RS256":
            signature = self._key.sign(signing_input, padding.PKCS1v15(), hashes.SHA256())
        else:  # JWS wants r || s, 32 bytes each, not DER
            r, s = decode_dss_signature(self._key.sign(signing_input, ec.ECDSA(hashes.SHA256())))
            signature = r.to_bytes(32, "big") + s.to_bytes(32, "big")
        return f"{signing_input.decode()}.{b64url(signature)}"

    def issue(self, user: str | None, scopes: list[str], offline: bool) -> dict:
        now = int(time.time())
        access: list[dict] = []
        for entry in (self.granted(user, s) for s in scopes):
            if entry is None:
                continue
            same = next((a for a in access if a["type"] == entry["type"] and a["name"] == entry["name"]), None)
            if same:
                same["actions"] += [a for a in entry["actions"] if a not in same["actions"]]
            else:
                access.append(entry)
        claims = {"iss": self.issuer, "sub": user or "", "aud": self.service,
                  "exp": now + (self.expires_in if self.exp_offset is None else self.exp_offset),
                  "nbf": now - 10, "iat": now, "jti": uuid.uuid4().hex, "access": access}
        token = self.sign(claims)
        transcripts.add_secret(token)
        body = {"token": token, "access_token": token, "expires_in": self.expires_in,
                "issued_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now))}
        if offline and user:
            refresh = uuid.uuid4().hex
            transcripts.add_secret(refresh)
            with self._lock:
                self.refresh_tokens[refresh] = user
            body["refresh_token"] = refresh
        with self._lock:
            self.counts["issued"] += 1
        return body

    def record(self, entry: TokenRequest) -> None:
        with self._lock:
            self.counts[entry.kind] += 1
            if entry.status != 200:
                self.counts["denied"] += 1
            self.log.append(entry)


class _TLSServer(ThreadingHTTPServer):
    """TLS handshake in the worker thread (a stuck client cannot block accept)."""
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address, handler, context: ssl.SSLContext) -> None:
        self.context = context
        super().__init__(address, handler)

    def finish_request(self, request, client_address) -> None:
        request.settimeout(30)
        try:
            tls = self.context.wrap_socket(request, server_side=True)
        except (ssl.SSLError, OSError):
            return
        try:
            super().finish_request(tls, client_address)
        finally:
            try:
                tls.close()
            except OSError:
                pass


def _handler(server: TokenServer):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        server_version = "regops-lab-token/1"

        def log_message(self, *args):  # quiet
            pass

        def _answer(self, status: int, body: dict, headers: dict | None = None) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            for key, value in (headers or {}).items():
                self.send_header(key, value)
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self):  # noqa: N802
            url = urlsplit(self.path)
            if url.path == "/stats":
                return self._answer(200, server.stats())
            if url.path == "/healthz":
                return self._answer(200, {"ok": True})
            if url.path != "/token":
                return self._answer(404, {"error": "not_found"})
            query = parse_qs(url.query)
            first = {k: v[0] for k, v in query.items()}
            entry = TokenRequest("get", None, 200, scopes=[s for v in query.get("scope", []) for s in v.split()],
                                 service=first.get("service"), account=first.get("account"),
                                 client_id=first.get("client_id"), offline=first.get("offline_token") == "true")
            user = server.check_basic(self.headers.get("Authorization"))
            if user is False:
                entry.status = 401
                server.record(entry)
                return self._answer(401, {"errors": [{"code": "UNAUTHORIZED", "message": "authentication required"}]},
                                    {"WWW-Authenticate": 'Basic realm="regops-lab-token"'})
            entry.user = user
            body = server.issue(user, entry.scopes, entry.offline)
            entry.access = _decoded_access(body["token"])
            server.record(entry)
            return self._answer(200, {k: v for k, v in body.items()
                                      if k not in ("token", "access_token") or k in server.response_fields})

        def do_POST(self):  # noqa: N802
            if urlsplit(self.path).path != "/token":
                return self._answer(404, {"error": "not_found"})
            length = int(self.headers.get("Content-Length") or 0)
            form = {k: v[0] for k, v in parse_qs(self.rfile.read(length).decode()).items()}
            grant = form.get("grant_type", "")
            kind = {"password": "post_password", "refresh_token": "post_refresh"}.get(grant, "post_other")
            entry = TokenRequest(kind, None, 200, scopes=form.get("scope", "").split(), service=form.get("service"),
                                 client_id=form.get("client_id"), offline=form.get("access_type") == "offline")
            if kind == "post_other" or (server.require_client_id and not entry.client_id):
                entry.status = 400
                server.record(entry)
                return self._answer(400, {"error": "unsupported_grant_type" if kind == "post_other"
                                          else "invalid_request"})
            if kind == "post_password":
                name = form.get("username", "")
                user = name if server.password_ok(name, form.get("password", "")) else None
            else:
                with server._lock:
                    user = server.refresh_tokens.get(form.get("refresh_token", ""))
            if user is None:
                entry.status = 401
                server.record(entry)
                return self._answer(401, {"error": "invalid_grant"})
            entry.user = user
            body = server.issue(user, entry.scopes, entry.offline and kind == "post_password")
            entry.access = _decoded_access(body["token"])
            server.record(entry)
            answer = {"access_token": body["access_token"], "expires_in": body["expires_in"],
                      "issued_at": body["issued_at"],
                      "scope": " ".join(f"{a['type']}:{a['name']}:{','.join(a['actions'])}" for a in entry.access)}
            if "refresh_token" in body:
                answer["refresh_token"] = body["refresh_token"]
            return self._answer(200, answer)

    return Handler


def _decoded_access(token: str) -> list:
    return decode_jwt(token)[1]["access"]


def serve_from_config(config_path: str, port_file: str) -> int:
    """``python -m tests.lab tokenserver``: run from a JSON config until SIGTERM (the detached lab)."""
    import signal

    config = json.loads(Path(config_path).read_text())
    server = TokenServer(config["users"], Path(config["signing_cert"]), Path(config["signing_key"]),
                         Path(config["server_cert"]), Path(config["server_key"]),
                         expires_in=config.get("expires_in", 300), port=config.get("port", 0),
                         service=config.get("service", SERVICE), issuer=config.get("issuer", ISSUER),
                         key_hint=config.get("key_hint", "x5c"), anonymous=config.get("anonymous"))
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    server.start()
    tmp = Path(port_file + ".tmp")
    tmp.write_text(str(server.port))
    tmp.replace(port_file)
    stop.wait()
    server.stop()
    return 0
