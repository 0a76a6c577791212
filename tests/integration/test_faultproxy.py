"""Self-tests of tests/lab/faultproxy.py against real lab registries, with plain ``requests`` and sockets.

Fault-injection tests of the collection trust the proxy to forward faithfully and to fail exactly as scripted,
so both are checked here independently of the collection's client.
"""

from __future__ import annotations

import http.client
import socket
import time
from urllib.parse import quote

import pytest
import requests

from tests.lab import seed
from tests.lab.faultproxy import FaultProxy, Rule
from tests.lab.registry import free_port, start_registry

REPO = "fp/app"
BLOB_SIZE = 256 * 1024


@pytest.fixture(scope="module")
def plain():
    lab = start_registry("plain")
    try:
        session = seed.LabSession(lab)
        image = seed.push_image(session, REPO, "v1", seed=1, layer_sizes=(BLOB_SIZE,))
        yield lab, session, image
    finally:
        lab.close()


@pytest.fixture(scope="module")
def basic():
    lab = start_registry("basic")
    try:
        yield lab
    finally:
        lab.close()


@pytest.fixture
def proxy(plain):
    with FaultProxy(upstream_url=plain[0].url) as fault_proxy:
        yield fault_proxy


@pytest.fixture
def web():
    with requests.Session() as session:
        session.trust_env = False  # no HTTP(S)_PROXY from the environment between us and 127.0.0.1
        yield session


def manifest_path(reference: str = "v1") -> str:
    return f"/v2/{REPO}/manifests/{reference}"


def blob(plain) -> tuple[str, bytes]:
    """Path and bytes (fetched directly) of the image's 256 KiB layer."""
    lab, session, image = plain
    path = f"/v2/{REPO}/blobs/{image['layers'][0]}"
    return path, session.get(path).content


def raw_get(proxy: FaultProxy, path: str) -> tuple[bytes, bytes, BaseException | None]:
    """One GET over a bare socket: (head, body, error), reading until EOF (FIN) or an error (RST)."""
    data, error = b"", None
    with socket.create_connection(("127.0.0.1", proxy.port), timeout=10) as sock:
        sock.sendall(f"GET {path} HTTP/1.1\r\nHost: {proxy.host}\r\n\r\n".encode())
        try:
            while True:
                piece = sock.recv(65536)
                if not piece:
                    break
                data += piece
        except OSError as exc:
            error = exc
    head, _sep, body = data.partition(b"\r\n\r\n")
    return head, body, error


# --- forwarding -------------------------------------------------------------------------------------

def test_forwards_manifest_get_and_head(plain, proxy, web):
    lab, session, image = plain
    direct = session.get(manifest_path(), headers={"Accept": seed.ACCEPT})
    via = web.get(proxy.url + manifest_path(), headers={"Accept": seed.ACCEPT, "X-Probe": "One"})
    assert via.status_code == 200 and via.content == direct.content == image["raw"]
    assert via.headers["Docker-Content-Digest"] == image["digest"]
    head = web.head(proxy.url + manifest_path(), headers={"Accept": seed.ACCEPT})
    assert head.status_code == 200 and head.content == b""
    assert int(head.headers["Content-Length"]) == len(image["raw"])
    first = proxy.seen[0]
    assert (first.method, first.path, first.fault, first.status) == ("GET", manifest_path(), None, 200)
    assert first.headers["X-Probe"] == "One" and first.headers["Host"] == proxy.host  # original case kept
    assert [s.method for s in proxy.seen] == ["GET", "HEAD"]


def test_blob_upload_through_proxy_rewrites_location(plain, proxy, web):
    lab, session, _image = plain
    monolithic = seed.random_bytes(300_000, 11)
    chunked = seed.random_bytes(200_000, 12)
    for data, streamed in ((monolithic, False), (chunked, True)):
        digest = seed.sha256(data)
        start = web.post(f"{proxy.url}/v2/{REPO}/blobs/uploads/", headers={"Content-Length": "0"})
        assert start.status_code == 202
        location = start.headers["Location"]
        assert location.startswith(proxy.url + "/v2/") and lab.url not in location
        if streamed:  # a generator body goes out chunked: the proxy decodes it and forwards a Content-Length
            patch = web.patch(location, data=(data[i:i + 65536] for i in range(0, len(data), 65536)),
                              headers={"Content-Type": "application/octet-stream"})
            assert patch.status_code == 202 and patch.headers["Range"] == f"0-{len(data) - 1}"
            location, data = patch.headers["Location"], b""
        done = web.put(f"{location}&digest={quote(digest)}", data=data,
                       headers={"Content-Type": "application/octet-stream"})
        assert done.status_code == 201, done.text
        assert done.headers["Location"] == f"{proxy.url}/v2/{REPO}/blobs/{digest}"
        assert session.get(f"/v2/{REPO}/blobs/{digest}").content == (monolithic if not streamed else chunked)
    assert [s.status for s in proxy.seen] == [202, 201, 202, 202, 201]
    assert "chunked" in proxy.seen[3].headers.get("Transfer-Encoding", "")


def test_tls_basic_upstream_gets_client_authorization(basic, web):
    with FaultProxy(basic.url, upstream_ca=basic.ca_path) as proxy:
        anonymous = web.get(proxy.url + "/v2/")
        assert anonymous.status_code == 401 and anonymous.headers["WWW-Authenticate"].startswith("Basic")
        answer = web.get(proxy.url + "/v2/", auth=("alice", basic.users["alice"]))
        assert answer.status_code == 200
        assert proxy.seen[-1].headers["Authorization"].startswith("Basic ")
        assert web.get(proxy.url + "/v2/", auth=("alice", "wrong")).status_code == 401


def test_upstream_basic_replaces_client_authorization(basic, web):
    with FaultProxy(basic.url, upstream_ca=basic.ca_path, upstream_basic=("alice", basic.users["alice"])) as mirror:
        assert web.get(mirror.url + "/v2/").status_code == 200
        assert web.get(mirror.url + "/v2/", headers={"Authorization": "Bearer nonsense"}).status_code == 200
        assert mirror.seen[-1].headers["Authorization"] == "Bearer nonsense"  # as the client sent it


def test_upstream_down_answers_502(web):
    with FaultProxy(f"http://127.0.0.1:{free_port()}") as proxy:
        answer = web.get(proxy.url + "/v2/")
        assert answer.status_code == 502 and int(answer.headers["Content-Length"]) == len(answer.content)
        assert proxy.seen[-1].status == 502


# --- faults -----------------------------------------------------------------------------------------

def test_status_times_then_success(proxy, web):
    rule = proxy.add(Rule(action="status", method="GET", path=r"/manifests/", status=503, times=2))
    codes = [web.get(proxy.url + manifest_path(), headers={"Accept": seed.ACCEPT}).status_code for _attempt in range(3)]
    assert codes == [503, 503, 200]
    assert rule.hits == 2
    assert [(s.fault, s.status) for s in proxy.seen] == [("status", 503), ("status", 503), (None, 200)]
    assert web.head(proxy.url + manifest_path(), headers={"Accept": seed.ACCEPT}).status_code == 200  # method


def test_status_429_retry_after_and_custom_bodies(proxy, web):
    proxy.add(Rule(action="status", path=r"/tags/list", status=429, headers={"Retry-After": "7"}, body=b"slow down"))
    proxy.add(Rule(action="status", path=r"^/v2/$", status=401, headers={"WWW-Authenticate": 'Bearer realm="x'}))
    proxy.add(Rule(action="status", path=r"/manifests/", status=200, body=b'{"schemaVersion": 2,',
                   headers={"Content-Type": seed.OCI_MANIFEST}))
    limited = web.get(f"{proxy.url}/v2/{REPO}/tags/list")
    assert (limited.status_code, limited.headers["Retry-After"], limited.content) == (429, "7", b"slow down")
    assert web.get(proxy.url + "/v2/").headers["WWW-Authenticate"] == 'Bearer realm="x'
    broken = web.get(proxy.url + manifest_path())
    assert broken.status_code == 200 and broken.content == b'{"schemaVersion": 2,'
    with pytest.raises(ValueError):
        broken.json()


def test_status_streams_body_size(proxy, web):
    size = 8 * 1024 * 1024
    proxy.add(Rule(action="status", status=200, body_size=size))
    answer = web.get(proxy.url + manifest_path())
    assert int(answer.headers["Content-Length"]) == size == len(answer.content)
    assert answer.content.count(b"a") == size


def test_status_keeps_the_connection_alive_and_drains_the_body(proxy):
    proxy.add(Rule(action="status", method="PUT", status=500, body=b"no"))
    conn = http.client.HTTPConnection("127.0.0.1", proxy.port, timeout=10)
    try:
        conn.request("PUT", manifest_path("x"), body=b"x" * 100_000)
        first = conn.getresponse()
        assert (first.status, first.read()) == (500, b"no")
        sock = conn.sock
        conn.request("GET", manifest_path(), headers={"Accept": seed.ACCEPT})
        second = conn.getresponse()
        assert second.status == 200 and len(second.read()) > 0
        assert conn.sock is sock  # same TCP connection: the PUT body was drained
    finally:
        conn.close()


def test_delay(proxy, web):
    proxy.add(Rule(action="delay", path=r"/manifests/", delay=0.4))
    started = time.monotonic()
    answer = web.get(proxy.url + manifest_path(), headers={"Accept": seed.ACCEPT})
    assert time.monotonic() - started >= 0.4 and answer.status_code == 200
    assert proxy.seen[-1].fault == "delay"


def test_reset_cuts_with_rst_after_some_bytes(plain, proxy, web):
    path, data = blob(plain)
    proxy.add(Rule(action="reset", path=r"/blobs/", after_bytes=1000, times=2))
    with pytest.raises((requests.ConnectionError, requests.exceptions.ChunkedEncodingError)):
        web.get(proxy.url + path)
    head, body, error = raw_get(proxy, path)
    assert isinstance(error, ConnectionResetError)
    assert head.startswith(b"HTTP/1.1 200") and f"Content-Length: {len(data)}".encode() in head
    assert body == data[:len(body)] and len(body) <= 1000
    assert proxy.seen[-1].status == 200 and web.get(proxy.url + path).content == data


def test_truncate_sends_a_short_body_then_fin(plain, proxy, web):
    path, data = blob(plain)
    proxy.add(Rule(action="truncate", path=r"/blobs/", after_bytes=5000, times=2))
    answer = web.get(proxy.url + path, stream=True)
    assert int(answer.headers["Content-Length"]) == len(data)
    with pytest.raises((requests.ConnectionError, requests.exceptions.ChunkedEncodingError)):
        answer.content
    head, body, error = raw_get(proxy, path)
    assert error is None and body == data[:5000]  # graceful close, exactly after_bytes
    assert web.get(proxy.url + path).content == data


def test_flip_changes_exactly_one_byte(plain, proxy, web):
    path, data = blob(plain)
    proxy.add(Rule(action="flip", path=r"/blobs/", after_bytes=10))
    proxy.add(Rule(action="flip", path=r"/blobs/", after_bytes=10 * len(data)))  # outside: the middle byte
    for offset in (10, len(data) // 2):
        flipped = web.get(proxy.url + path).content
        assert len(flipped) == len(data)
        assert [i for i in range(len(data)) if flipped[i] != data[i]] == [offset]
        assert flipped[offset] == data[offset] ^ 1


def test_replace_body(plain, proxy, web):
    _lab, _session, image = plain
    proxy.add(Rule(action="replace_body", path=r"/manifests/", body=b'{"other": true}'))
    answer = web.get(proxy.url + manifest_path(), headers={"Accept": seed.ACCEPT})
    assert answer.status_code == 200 and answer.content == b'{"other": true}'
    assert answer.headers["Content-Length"] == "15" and answer.headers["Docker-Content-Digest"] == image["digest"]


def test_drop_request_cuts_the_upload_and_leaves_the_registry_alone(plain, proxy, web):
    lab, session, _image = plain
    data = seed.random_bytes(1024 * 1024, 21)
    start = web.post(f"{proxy.url}/v2/{REPO}/blobs/uploads/", headers={"Content-Length": "0"})
    location = start.headers["Location"]
    mark = lab.mark()
    rule = proxy.add(Rule(action="drop_request", method="PATCH", after_bytes=64 * 1024))
    with pytest.raises(requests.ConnectionError):
        web.patch(location, data=data, headers={"Content-Type": "application/octet-stream"})
    assert rule.hits == 1 and proxy.seen[-1].status is None and proxy.seen[-1].fault == "drop_request"
    assert lab.blob_uploads(mark) == []  # nothing was forwarded
    status = session.get(location.replace(proxy.url, lab.url))
    assert status.status_code == 204 and status.headers["Range"] == "0-0"
    patch = web.patch(location, data=data, headers={"Content-Type": "application/octet-stream"})
    assert patch.status_code == 202 and patch.headers["Range"] == f"0-{len(data) - 1}"
    done = web.put(f"{patch.headers['Location']}&digest={quote(seed.sha256(data))}")
    assert done.status_code == 201


def test_redirect_and_authorization_not_forwarded_across_hosts(plain, proxy, web):
    lab, _session, image = plain
    with FaultProxy(lab.url) as target:
        proxy.add(Rule(action="redirect", path=r"/manifests/", redirect_to=target.url + "/", times=2))
        url = proxy.url + manifest_path() + "?x=1"
        headers = {"Accept": seed.ACCEPT, "Authorization": "Bearer secret"}
        moved = web.get(url, headers=headers, allow_redirects=False)
        assert moved.status_code == 307 and moved.headers["Location"] == target.url + manifest_path() + "?x=1"
        assert moved.headers["Content-Length"] == "0"
        followed = web.get(url, headers=headers)
        assert followed.status_code == 200 and followed.content == image["raw"]
        assert [s.status for s in proxy.seen] == [307, 307]
        assert len(target.seen) == 1 and "Authorization" not in target.seen[0].headers


def test_skip_then_fault(proxy, web):
    rule = proxy.add(Rule(action="status", path=r"/manifests/", status=500, skip=1, times=1))
    codes = [web.get(proxy.url + manifest_path(), headers={"Accept": seed.ACCEPT}).status_code for _attempt in range(3)]
    assert codes == [200, 500, 200] and rule.hits == 1


def test_forever_method_case_and_clear(proxy, web):
    rule = proxy.add(Rule(action="status", method="get", status=418, times=0))
    assert [web.get(proxy.url + "/v2/").status_code for _attempt in range(4)] == [418] * 4
    assert web.head(proxy.url + "/v2/").status_code == 200
    assert rule.hits == 4
    proxy.clear()
    assert web.get(proxy.url + "/v2/").status_code == 200 and rule.hits == 4
    with pytest.raises(ValueError):
        Rule(action="explode")
