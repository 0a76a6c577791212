"""What the modules do where a registry differs from plain distribution 2.8, end to end on a real registry.

A small proxy in front of the plain lab registry adds Docker Hub's pull accounting: ``ratelimit-limit`` and
``ratelimit-remaining`` on manifest GET and HEAD, one pull per manifest GET, 429 ``TOOMANYREQUESTS`` when none are
left (protocol reference 5.3). Request counts come from the registry's own access log; expected values from the
seeding (tests/lab/seed.py), never from the collection's client.
"""

from __future__ import annotations

import http.client
import json
import tempfile
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from tests.integration.runner import run_playbook
from tests.lab import schema1, seed
from tests.lab.registry import Lab, free_port

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


class Schema1Lab(Lab):
    """A plain lab registry that still accepts signed schema 1 pushes (distribution 2.8 refuses them by default)."""

    def write_config(self) -> None:
        super().write_config()
        with open(self.config_path, "a", encoding="utf-8") as config:
            config.write("compatibility:\n  schema1:\n    enabled: true\n")


V1_NEWEST = {"id": "b" * 64, "parent": "a" * 64, "created": "2016-03-04T05:06:07Z", "os": "linux",
             "architecture": "arm64", "config": {"Labels": {"maintainer": "ops"}}}
V1_BASE = {"id": "a" * 64, "created": "2016-01-01T00:00:00Z"}


@pytest.fixture(scope="module")
def schema1_lab():
    """A registry holding one signed schema 1 image, ``old/app:1.0``; yields (lab, payload digest, layer digests)."""
    lab = Schema1Lab("plain", Path(tempfile.mkdtemp(prefix="regops-lab-schema1-")), free_port(),
                     owns_workdir=True).start()
    try:
        session = seed.LabSession(lab)
        layers = [seed.push_blob(session, "old/app", seed.random_bytes(700 + n, 600 + n)) for n in range(2)]
        payload = schema1.payload("old/app", "1.0", [(layers[1], V1_NEWEST), (layers[0], V1_BASE)], "arm64")
        answer = session.put("/v2/old/app/manifests/1.0", data=schema1.sign(payload),
                             headers={"Content-Type": schema1.SIGNED})
        assert answer.status_code == 201, answer.text
        assert answer.headers["Docker-Content-Digest"] == schema1.sha256(payload)  # the registry agrees: the payload
        yield lab, schema1.sha256(payload), layers
    finally:
        lab.close()


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


def test_pulls_referrers_fallback_rate_limits_and_schema1(lab_plain, seeded, schema1_lab):
    remaining = 40
    proxy = PullLimitProxy(lab_plain.host, remaining)
    mark = lab_plain.mark()
    old_lab, old_digest, old_layers = schema1_lab
    try:
        run = run_playbook("registry_differences.yml", {
            "conn": {"registry": proxy.url}, "signature": seeded["signature"], "reserve_too_big": remaining,
            "schema1_registry": old_lab.url})
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

    # Signed schema 1 is read with the digest the registry gives it (over the JWS payload), facts from v1Compatibility.
    [old] = run.results["schema1_tags"]["images"]
    assert old["digest"] == old_digest and old["media_type"] == schema1.SIGNED
    assert old["created"] == "2016-03-04T05:06:07Z" and old["labels"] == {"maintainer": "ops"}
    assert old["platforms"] == [{"os": "linux", "architecture": "arm64"}] and old["layers"] == 2
    copied = run.results["schema1_copy"]
    assert copied["changed"] and copied["digest"] == old_digest
    assert sorted(b["digest"] for b in copied["blobs"]) == sorted(old_layers)
    assert seed.head_manifest(seed.LabSession(old_lab), "old/copy", "1.0") == old_digest
