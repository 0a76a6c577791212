"""registry_delete through a service's own tag API, end to end against the real lab registry.

A tiny stand-in for Harbor's API listens on its own port (another origin than the registry): it answers
``GET /api/v2.0/systeminfo`` and, for ``DELETE /api/v2.0/projects/{p}/repositories/{r}/artifacts/{digest}/tags/{tag}``
with Basic auth, removes that one tag from the registry's storage (the tag link directory, which is all a tag is in
distribution 2.8). Every read goes to the real registry. The personalities of tests/lab emulate the services fully;
this checks the module's own path: choice by probe, credentials to the API origin only, check mode, siblings kept.
"""

from __future__ import annotations

import base64
import shutil
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote

import pytest

from tests.integration.runner import run_module
from tests.lab import seed

REPO = "native/app"
USER, SECRET = "robot$ci", "standin-secret-8d1f"


class HarborStandIn(ThreadingHTTPServer):
    def __init__(self, storage: Path) -> None:
        super().__init__(("127.0.0.1", 0), HarborHandler)
        self.storage = storage
        self.seen: list[tuple[str, str, str | None]] = []

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class HarborHandler(BaseHTTPRequestHandler):
    server: HarborStandIn

    def log_message(self, *args) -> None:  # quiet
        pass

    def answer(self, status: int, body: bytes = b"{}") -> None:
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        self.server.seen.append(("GET", self.path, self.headers.get("Authorization")))
        self.answer(200, b'{"harbor_version": "stand-in"}' if self.path == "/api/v2.0/systeminfo" else b"{}")

    def do_DELETE(self) -> None:  # noqa: N802
        self.server.seen.append(("DELETE", self.path, self.headers.get("Authorization")))
        expected = "Basic " + base64.b64encode(f"{USER}:{SECRET}".encode()).decode()
        if self.headers.get("Authorization") != expected:
            self.answer(401, b'{"errors": [{"code": "UNAUTHORIZED"}]}')
            return
        parts = self.path.split("/")  # /api/v2.0/projects/P/repositories/R/artifacts/D/tags/T
        project, name, digest, tag = parts[4], unquote(unquote(parts[6])), parts[8], parts[10]
        link = (self.server.storage / "docker/registry/v2/repositories" / project / name / "_manifests/tags" / tag)
        current = link / "current" / "link"
        if not current.exists() or current.read_text().strip() != digest:
            self.answer(404, b'{"errors": [{"code": "NOT_FOUND"}]}')
            return
        shutil.rmtree(link)
        self.answer(200)


@pytest.fixture
def harbor(lab_plain):
    server = HarborStandIn(Path(lab_plain.storage_path))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield lab_plain, server
    finally:
        server.shutdown()
        server.server_close()


def test_tag_deletes_go_through_the_harbor_api_found_by_probe(harbor):
    lab, standin = harbor
    session = seed.LabSession(lab)
    image = seed.push_image(session, REPO, "keep", seed=910)
    seed.tag_manifest(session, REPO, "drop", image["raw"], image["media_type"])
    other = seed.push_image(session, REPO, "old", seed=911)
    args = {**lab.conn(), "username": USER, "password": "registry-pw", "api_token": SECRET, "delete_api_url": standin.url,
            "repository": REPO, "tags": ["drop"], "digests": [other["digest"]]}

    mark = lab.mark()
    checked, _rss = run_module("registry_delete", args, check=True)
    assert checked["changed"] and "failed" not in checked, checked
    assert [(d["name"], d["api"]) for d in checked["deleted"]] == [("drop", "harbor"), (other["digest"], "v2")]
    assert lab.count(mark) == {} and [s for s in standin.seen if s[0] == "DELETE"] == []
    assert seed.tag_map(session, REPO) == {"keep": image["digest"], "drop": image["digest"], "old": other["digest"]}

    done, _rss = run_module("registry_delete", args)
    assert done["changed"] and "failed" not in done, done
    by_name = {d["name"]: d for d in done["deleted"]}
    assert (by_name["drop"]["method"], by_name["drop"]["api"], by_name["drop"]["shared_tags"]) == ("api", "harbor", ["keep"])
    assert (by_name[other["digest"]]["method"], by_name[other["digest"]]["api"]) == ("digest", "v2")
    assert seed.tag_map(session, REPO) == {"keep": image["digest"]}
    assert seed.head_manifest(session, REPO, "keep") == image["digest"]
    # the API's credential went to the stand-in's origin only; the registry never saw a tag DELETE or the secret
    deletes = [s for s in standin.seen if s[0] == "DELETE"]
    assert len(deletes) == 1 and deletes[0][1].endswith(f"/artifacts/{image['digest']}/tags/drop")
    assert not [r for r in lab.requests(mark, methods=("DELETE",)) if r.path.endswith("/manifests/drop")]
    assert SECRET not in str(done)

    again, _rss = run_module("registry_delete", args)
    assert again["changed"] is False and {a["name"] for a in again["absent"]} == {"drop", other["digest"]}


def test_forced_v2_ignores_the_service_api(harbor):
    lab, standin = harbor
    session = seed.LabSession(lab)
    image = seed.push_image(session, REPO, "keep2", seed=920)
    seed.tag_manifest(session, REPO, "drop2", image["raw"], image["media_type"])
    done, _rss = run_module("registry_delete", {**lab.conn(), "username": USER, "password": "pw", "api_token": SECRET,
                                                "delete_api_url": standin.url, "delete_api": "v2",
                                                "repository": REPO, "tags": ["drop2"]})
    assert done["deleted"][0]["method"] == "throwaway" and done["deleted"][0]["api"] == "v2", done
    assert standin.seen == []
    assert seed.tag_map(session, REPO)["keep2"] == image["digest"] and "drop2" not in seed.tag_map(session, REPO)
