"""A small Docker token server (GET flow and OAuth2 POST) issuing RS256 JWTs that distribution trusts."""

from __future__ import annotations

import base64
import fnmatch
import json
import ssl
import threading
import time
import uuid
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding

SERVICE = "regops-lab"
ISSUER = "regops-lab-issuer"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class TokenServer:
    """Users: {name: {"password": str, "grants": {repo_pattern: [actions]}}}."""

    def __init__(self, users: dict, signing_cert: Path, signing_key: Path, server_cert: Path, server_key: Path,
                 expires_in: int = 300, port: int = 0) -> None:
        self.users = users
        self.expires_in = expires_in
        self.counts: Counter = Counter()
        self.refresh_tokens: dict[str, str] = {}
        cert = x509.load_pem_x509_certificate(signing_cert.read_bytes())
        self._x5c = [base64.b64encode(cert.public_bytes(serialization.Encoding.DER)).decode()]
        self._key = serialization.load_pem_private_key(signing_key.read_bytes(), password=None)
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # quiet
                pass

            def _answer(self, status: int, body: dict) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self):  # noqa: N802
                query = parse_qs(urlsplit(self.path).query)
                server.counts["GET"] += 1
                user = server.check_basic(self.headers.get("Authorization"))
                if user is False:
                    return self._answer(401, {"errors": [{"code": "UNAUTHORIZED", "message": "bad credentials"}]})
                scopes = [s for value in query.get("scope", []) for s in value.split()]
                return self._answer(200, server.issue(user, scopes, query.get("offline_token") == ["true"]))

            def do_POST(self):  # noqa: N802
                length = int(self.headers.get("Content-Length") or 0)
                form = parse_qs(self.rfile.read(length).decode())
                server.counts["POST"] += 1
                grant = (form.get("grant_type") or [""])[0]
                user = None
                if grant == "password":
                    name = (form.get("username") or [""])[0]
                    user = name if server.users.get(name, {}).get("password") == (form.get("password") or [""])[0] else False
                elif grant == "refresh_token":
                    user = server.refresh_tokens.get((form.get("refresh_token") or [""])[0], False)
                if user is False or user is None:
                    return self._answer(401, {"error": "invalid_grant"})
                scopes = (form.get("scope") or [""])[0].split()
                body = server.issue(user, scopes, (form.get("access_type") or [""])[0] == "offline")
                body["access_token"] = body.pop("token")
                return self._answer(200, body)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(str(server_cert), str(server_key))
        self.httpd.socket = context.wrap_socket(self.httpd.socket, server_side=True)
        self.port = self.httpd.server_address[1]
        self.realm = f"https://127.0.0.1:{self.port}/token"
        self._thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def start(self) -> TokenServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def check_basic(self, header: str | None):
        """None for anonymous, the user name, or False for wrong credentials."""
        if not header:
            return None
        try:
            name, _sep, password = base64.b64decode(header.split(" ", 1)[1]).decode().partition(":")
        except (ValueError, IndexError):
            return False
        user = self.users.get(name)
        return name if user and user["password"] == password else False

    def granted(self, user: str | None, scope: str) -> dict | None:
        kind, _sep, rest = scope.partition(":")
        name, _sep2, actions = rest.rpartition(":")
        grants = (self.users.get(user) or {}).get("grants", {}) if user else {}
        if kind == "registry":
            allowed = ["*"] if "*" in grants else []
        else:
            allowed = sorted({a for pattern, acts in grants.items() if fnmatch.fnmatchcase(name, pattern) for a in acts})
        wanted = actions.split(",")
        if "*" in allowed and kind == "registry":
            given = wanted
        else:
            given = [a for a in wanted if a in allowed]
        return {"type": kind, "name": name, "actions": given} if given else None

    def issue(self, user: str | None, scopes: list[str], offline: bool) -> dict:
        now = int(time.time())
        access = [g for g in (self.granted(user, s) for s in scopes) if g]
        claims = {"iss": ISSUER, "sub": user or "", "aud": SERVICE, "exp": now + self.expires_in, "nbf": now - 10,
                  "iat": now, "jti": uuid.uuid4().hex, "access": access}
        header = {"typ": "JWT", "alg": "RS256", "x5c": self._x5c}
        signing_input = f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(claims).encode())}"
        signature = self._key.sign(signing_input.encode(), padding.PKCS1v15(), hashes.SHA256())
        token = f"{signing_input}.{_b64(signature)}"
        self.counts["tokens"] += 1
        body = {"token": token, "expires_in": self.expires_in,
                "issued_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now))}
        if offline and user:
            refresh = uuid.uuid4().hex
            self.refresh_tokens[refresh] = user
            body["refresh_token"] = refresh
        return body
