"""TLS trust and client certificates per host (issue 14 item 2), against small TLS servers on 127.0.0.1.

Two unrelated CAs: A is the private one (the registry's, given as ``ca_path`` or through a ``certs.d``
directory), B stands for the public roots (``SSL_CERT_FILE`` points at it, as OpenSSL's default trust).
The servers record, per request, whether the client presented a certificate (``CERT_OPTIONAL``), so what
reaches which host is checked on the server side.
"""

from __future__ import annotations

import hashlib
import json
import socket
import socketserver
import ssl
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from ansible_collections.regops.registry.plugins.module_utils._credentials import Credentials
from ansible_collections.regops.registry.plugins.module_utils._transport import CERTS_DIR_ENV
from ansible_collections.regops.registry.plugins.module_utils.client import RegistryClient
from ansible_collections.regops.registry.plugins.module_utils.errors import RegistryError
from ansible_collections.regops.registry.plugins.module_utils.reference import parse_registry
from tests.integration.runner import run_module
from tests.lab.pki import Pki, issue_client_cert, make_pki

BLOB = b"layer bytes held in object storage"
DIGEST = "sha256:" + hashlib.sha256(BLOB).hexdigest()
TOKEN = "token-from-the-realm-on-ca-b"


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self):  # noqa: N802 - http.server's naming
        self.server.seen.append((self.path, self.connection.getpeercert() is not None))
        status, headers, body = self.server.route(self)
        self.send_response(status)
        for name, value in headers:
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):  # quiet
        pass


class TlsServer:
    """An HTTPS server on 127.0.0.1 with a certificate from ``pki``; asks for (but does not require) a client
    certificate issued by ``client_ca`` and records whether one came: ``seen`` = [(path, had_cert)]."""

    def __init__(self, pki: Pki, client_ca: Path, route) -> None:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(pki.server_cert, pki.server_key)
        context.verify_mode = ssl.CERT_OPTIONAL
        context.load_verify_locations(cafile=str(client_ca))
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self.httpd.socket = context.wrap_socket(self.httpd.socket, server_side=True)
        self.httpd.seen = []
        self.httpd.route = route
        self.port = self.httpd.server_address[1]
        self.url = f"https://127.0.0.1:{self.port}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    @property
    def seen(self) -> list:
        return self.httpd.seen

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture(scope="module")
def pkis(tmp_path_factory):
    root = tmp_path_factory.mktemp("two-cas")
    private, public = make_pki(root / "a", ca_name="private CA A"), make_pki(root / "b", ca_name="public CA B")
    cert, key = issue_client_cert(private, root / "client")
    return private, public, cert, key


@pytest.fixture
def hosts(pkis, monkeypatch):
    """The registry on CA A (Bearer auth, blobs redirected) and storage + token realm on CA B, trusted as a
    system root through SSL_CERT_FILE. Both ask for client certificates of CA A."""
    private, public, _cert, _key = pkis
    monkeypatch.setenv("SSL_CERT_FILE", str(public.ca_cert))
    monkeypatch.setenv(CERTS_DIR_ENV, "/nonexistent")  # no certs.d unless a test makes one
    other = TlsServer(public, private.ca_cert, lambda h: (
        (200, [("Content-Type", "application/json")], json.dumps({"token": TOKEN, "expires_in": 300}).encode())
        if h.path.startswith("/token") else (200, [], BLOB)))

    def registry_route(handler):
        if handler.headers.get("Authorization") != f"Bearer {TOKEN}":
            return 401, [("WWW-Authenticate", f'Bearer realm="{other.url}/token",service="lab"')], b""
        return 307, [("Location", f"{other.url}/storage/blob?X-Amz-Signature=s")], b""

    registry = TlsServer(private, private.ca_cert, registry_route)
    yield registry, other
    registry.close()
    other.close()


def client_for(registry: TlsServer, **options) -> RegistryClient:
    return RegistryClient(parse_registry(registry.url), Credentials(), retries=0, **options)


def test_ca_path_adds_to_the_system_roots(hosts, pkis):
    """The registry verifies with ca_path (CA A); the token realm and the blob redirect target on another host
    verify with the system roots (CA B). Replacing the roots with ca_path broke both."""
    registry, other = hosts
    client = client_for(registry, ca_path=str(pkis[0].ca_cert))
    assert client.get_blob_bytes("app", DIGEST) == BLOB
    assert [path.split("?")[0] for path, _cert in other.seen] == ["/token", "/storage/blob"]


def test_ca_path_alone_does_not_trust_the_other_host(hosts, pkis, monkeypatch):
    """Without CA B among the system roots, the other host fails verification: the trust really comes from there."""
    monkeypatch.setenv("SSL_CERT_FILE", str(pkis[0].ca_cert))
    registry, _other = hosts
    with pytest.raises(RegistryError, match="TLS error talking to the token server .*certificate verify failed"):
        client_for(registry, ca_path=str(pkis[0].ca_cert)).get_blob_bytes("app", DIGEST)


def test_client_certificate_goes_only_to_the_registry(hosts, pkis):
    registry, other = hosts
    private, _public, cert, key = pkis
    client = client_for(registry, ca_path=str(private.ca_cert), client_cert=str(cert), client_key=str(key))
    assert client.get_blob_bytes("app", DIGEST) == BLOB
    assert registry.seen and all(had_cert for _path, had_cert in registry.seen)
    assert len(other.seen) == 2 and not any(had_cert for _path, had_cert in other.seen)


def certs_d(root: Path, hostport: str, ca: Path, cert: Path | None = None, key: Path | None = None) -> Path:
    """A Docker certs.d tree with one host's directory; returns the tree's root."""
    folder = root / "certs.d" / hostport
    folder.mkdir(parents=True)
    (folder / "ca.crt").write_bytes(Path(ca).read_bytes())
    if cert is not None:
        (folder / "client.cert").write_bytes(cert.read_bytes())
        (folder / "client.key").write_bytes(key.read_bytes())
    return folder.parent


def test_docker_certs_d_gives_the_host_its_ca_and_client_certificate(hosts, pkis, tmp_path, monkeypatch):
    """/etc/docker/certs.d/<host:port>/ (moved by REGOPS_REGISTRY_CERTS_DIR): ca.crt trusted for that host,
    client.cert + client.key presented to that host only; no ca_path, no client_cert option."""
    registry, other = hosts
    private, _public, cert, key = pkis
    monkeypatch.setenv(CERTS_DIR_ENV, str(certs_d(tmp_path, f"127.0.0.1:{registry.port}", private.ca_cert, cert, key)))
    assert client_for(registry).get_blob_bytes("app", DIGEST) == BLOB
    assert registry.seen and all(had_cert for _path, had_cert in registry.seen)
    assert other.seen and not any(had_cert for _path, had_cert in other.seen)


def test_module_trusts_the_lab_registry_through_certs_d(lab_basic, tmp_path, monkeypatch):
    """End to end: a module run with neither ca_path nor validate_certs: false, the CA in certs.d."""
    monkeypatch.setenv(CERTS_DIR_ENV, str(certs_d(tmp_path, lab_basic.host, lab_basic.ca_path)))
    monkeypatch.delenv("REGOPS_REGISTRY_CA_PATH", raising=False)
    result, _rss = run_module("registry_catalog", {"registry": lab_basic.url, "username": "alice",
                                                   "password": lab_basic.users["alice"]})
    assert not result.get("failed"), result
    assert isinstance(result["repositories"], list)


class ConnectProxy:
    """An HTTP CONNECT proxy on 127.0.0.1 that pipes bytes and records the targets: TLS stays end to end."""

    def __init__(self) -> None:
        targets = self.targets = []

        class Tunnel(socketserver.BaseRequestHandler):
            def handle(self):
                head = b""
                while b"\r\n\r\n" not in head:
                    chunk = self.request.recv(4096)
                    if not chunk:
                        return
                    head += chunk
                target = head.split(b" ", 2)[1].decode()
                targets.append(target)
                host, port = target.rsplit(":", 1)
                upstream = socket.create_connection((host, int(port)))
                self.request.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
                pipe = threading.Thread(target=self.pump, args=(upstream, self.request), daemon=True)
                pipe.start()
                self.pump(self.request, upstream)
                pipe.join(5)

            @staticmethod
            def pump(source, sink):
                try:
                    while chunk := source.recv(65536):
                        sink.sendall(chunk)
                except OSError:
                    pass
                finally:
                    for end in (source, sink):
                        try:
                            end.shutdown(socket.SHUT_RDWR)
                        except OSError:
                            pass

        self.server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Tunnel)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def test_per_host_tls_holds_through_a_proxy(hosts, pkis, monkeypatch):
    """Through an HTTPS_PROXY tunnel each host still gets its own trust and certificate."""
    registry, other = hosts
    private, _public, cert, key = pkis
    proxy = ConnectProxy()
    try:
        for name in ("NO_PROXY", "no_proxy", "https_proxy"):
            monkeypatch.delenv(name, raising=False)
        monkeypatch.setenv("HTTPS_PROXY", proxy.url)
        client = client_for(registry, ca_path=str(private.ca_cert), client_cert=str(cert), client_key=str(key))
        assert client.get_blob_bytes("app", DIGEST) == BLOB
    finally:
        proxy.close()
    assert {f"127.0.0.1:{registry.port}", f"127.0.0.1:{other.port}"} <= set(proxy.targets)
    assert registry.seen and all(had_cert for _path, had_cert in registry.seen)
    assert other.seen and not any(had_cert for _path, had_cert in other.seen)
