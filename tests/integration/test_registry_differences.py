"""What the modules do where a registry differs from plain distribution 2.8, end to end on a real registry.

A small proxy in front of the plain lab registry adds Docker Hub's pull accounting: ``ratelimit-limit`` and
``ratelimit-remaining`` on manifest GET and HEAD, one pull per manifest GET, 429 ``TOOMANYREQUESTS`` when none are
left (protocol reference 5.3). Request counts come from the registry's own access log; expected values from the
seeding (tests/lab/seed.py), never from the collection's client.
"""

from __future__ import annotations

import http.client
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from tests.integration.runner import run_playbook
from tests.lab import seed

LIMIT = 100
WINDOW = 21600
HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "content-length"}


class PullLimitProxy:
    """Docker Hub's pull accounting in front of a plain lab registry (HTTP, one thread per connection)."""

    def __init__(self, upstream_host: str, remaining: int) -> None:
        self.upstream_host = upstream_host
        self.remaining = remaining
        self.lock = threading.Lock()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format, *args):  # noqa: A002 - base class signature
                pass

            def do_any(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else None
                is_manifest = "/manifests/" in self.path and self.command in ("GET", "HEAD")
                with proxy.lock:
                    if is_manifest and self.command == "GET" and proxy.remaining <= 0:
                        return self.answer(429, [], b'{"errors":[{"code":"TOOMANYREQUESTS","message":"pull limit"}]}')
                upstream = http.client.HTTPConnection(proxy.upstream_host, timeout=30)
                headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP | {"host"}}
                upstream.request(self.command, self.path, body=body, headers=headers)
                response = upstream.getresponse()
                data = response.read()
                upstream.close()
                extra = []
                if is_manifest:
                    with proxy.lock:
                        if self.command == "GET" and response.status == 200:
                            proxy.remaining -= 1
                        extra = [("ratelimit-limit", f"{LIMIT};w={WINDOW}"),
                                 ("ratelimit-remaining", f"{proxy.remaining};w={WINDOW}"),
                                 ("docker-ratelimit-source", "192.0.2.7")]
                kept = [(k, v) for k, v in response.getheaders() if k.lower() not in HOP_BY_HOP]
                length = response.getheader("Content-Length") if self.command == "HEAD" else None
                return self.answer(response.status, kept + extra, data, length)

            def answer(self, status, headers, data, length=None):
                self.send_response(status)
                for name, value in headers:
                    self.send_header(name, value)
                self.send_header("Content-Length", length or str(len(data)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(data)

            do_GET = do_HEAD = do_PUT = do_POST = do_PATCH = do_DELETE = do_any

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="module")
def seeded(lab_plain):
    session = seed.LabSession(lab_plain)
    read = seed.push_image(session, "cf/read", "1.0", seed=501)
    promote = seed.push_image(session, "cf/promote", "1.0", seed=502)
    seed.tag_manifest(session, "cf/promote", "stable", promote["raw"], promote["media_type"])
    tags = [seed.push_image(session, "cf/tags", f"v{n}", seed=510 + n) for n in range(3)]
    seed.tag_manifest(session, "cf/tags", "latest", tags[2]["raw"], tags[2]["media_type"])
    empty = seed.push_blob(session, "cf/read", b"{}")
    signature = {"schemaVersion": 2, "mediaType": seed.OCI_MANIFEST, "artifactType": "application/vnd.example.sig",
                 "config": {"mediaType": "application/vnd.oci.empty.v1+json", "digest": empty, "size": 2},
                 "layers": [{"mediaType": "application/vnd.oci.empty.v1+json", "digest": empty, "size": 2}],
                 "subject": {"mediaType": read["media_type"], "digest": read["digest"], "size": read["manifest_size"]},
                 "annotations": {"org.opencontainers.image.created": "2024-06-01T00:00:00Z"}}
    return {"session": session, "read": read, "promote": promote, "tags": tags, "signature": signature}


def test_pulls_referrers_fallback_and_rate_limits(lab_plain, seeded):
    remaining = 40
    proxy = PullLimitProxy(lab_plain.host, remaining)
    mark = lab_plain.mark()
    try:
        run = run_playbook("registry_differences.yml", {
            "conn": {"registry": proxy.url}, "signature": seeded["signature"], "reserve_too_big": remaining})
    finally:
        proxy.close()
    assert run.ok, run.output
    res = run.results
    log = lab_plain.requests(mark)

    def manifest_requests(repo):
        return sorted((r.method, r.path.rsplit("/", 1)[1]) for r in log
                      if r.path.startswith(f"/v2/{repo}/manifests/") and r.method in ("GET", "HEAD"))

    # registry_manifest reads with one HEAD and one GET (one pull), not two GETs.
    read = seeded["read"]
    assert res["read"]["digest"] == read["digest"] and res["read"]["image"]["size"] == read["size"]
    reads = [r for r in manifest_requests("cf/read") if r[1] in ("1.0", read["digest"])]
    assert reads == [("GET", read["digest"]), ("HEAD", "1.0")]

    # A promotion whose target already has the digest sends HEADs only.
    assert not res["promote"]["changed"] and res["promote"]["digest"] == seeded["promote"]["digest"]
    assert manifest_requests("cf/promote") == [("HEAD", "1.0"), ("HEAD", "stable")]

    # A referrer written where the registry has no referrers API is listed in the subject's fallback tag, once.
    signature_digest = res["signature_write"]["digest"]
    assert res["signature_write"]["changed"] and not res["signature_again"]["changed"]
    fallback = "sha256-" + read["digest"].split(":", 1)[1]
    raw, media_type, _digest = seed.get_manifest(seeded["session"], "cf/read", fallback)
    index = json.loads(raw)
    signature_raw, _type, _digest = seed.get_manifest(seeded["session"], "cf/read", signature_digest)
    assert media_type == seed.OCI_INDEX and index["manifests"] == [{
        "mediaType": seed.OCI_MANIFEST, "digest": signature_digest, "size": len(signature_raw),
        "artifactType": "application/vnd.example.sig",
        "annotations": {"org.opencontainers.image.created": "2024-06-01T00:00:00Z"}}]
    assert [r.method for r in log if r.path == f"/v2/cf/read/manifests/{fallback}" and r.method == "PUT"] == ["PUT"]

    # Details that would use every pull left fail before their GETs, saying so; within the limit they report it.
    assert res["refused"]["failed"]
    assert "3 manifest pulls are needed" in res["refused"]["msg"] and "of 100 per 21600 s remain" in res["refused"]["msg"]
    tag_gets = [r for r in log if r.path.startswith("/v2/cf/tags/manifests/") and r.method == "GET"]
    assert len(tag_gets) == 3  # the distinct digests, all from the second call (v2 and latest share one)
    expected_left = remaining - 1 - 3  # the read's GET, then the three of details (the promotion pulled nothing)
    assert res["details"]["ratelimit"] == {"limit": LIMIT, "remaining": expected_left, "window": WINDOW,
                                           "source": "192.0.2.7"}
    assert res["read"]["ratelimit"]["remaining"] == remaining - 1
    assert [i["digest"] for i in res["details"]["images"]] == [seeded["tags"][2]["digest"]] + [
        t["digest"] for t in seeded["tags"]]
