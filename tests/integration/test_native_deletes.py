"""registry_delete through a service's own tag API, end to end against the real lab registry.

Tiny stand-ins for Harbor's and GitHub's APIs listen on its own port (another origin than the registry): it answers
``GET /api/v2.0/systeminfo`` and, for ``DELETE /api/v2.0/projects/{p}/repositories/{r}/artifacts/{digest}/tags/{tag}``
with Basic auth, removes that one tag from the registry's storage (the tag link directory, which is all a tag is in
distribution 2.8). The GitHub one lists a package's versions from the storage (one per manifest revision, with
its tags) and deletes a version (the manifest revision and every tag on it), in front of a registry whose V2 DELETE
answers 405 as GHCR's does. Every read goes to the real registry. The personalities of tests/lab emulate the services fully;
this checks the module's own path: choice by probe, credentials to the API origin only, check mode, siblings kept.
"""

from __future__ import annotations

import base64
import json
import shutil
import threading
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

import pytest

from tests.integration.runner import run_module
from tests.lab import seed
from tests.lab.registry import start_registry

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


@contextmanager
def serving(server: ThreadingHTTPServer):
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def harbor(lab_plain):
    with serving(HarborStandIn(Path(lab_plain.storage_path))) as server:
        yield lab_plain, server


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


GH_TOKEN = "ghp_standin_0c9e"


class GithubStandIn(ThreadingHTTPServer):
    """``GET /orgs/{owner}/packages/container/{package}/versions`` (``per_page``/``page`` + ``Link``) and
    ``DELETE .../versions/{id}`` over the registry's storage; a version id is the position of its digest."""

    def __init__(self, storage: Path) -> None:
        super().__init__(("127.0.0.1", 0), GithubHandler)
        self.storage = storage
        self.seen: list[tuple[str, str, str | None]] = []
        self.ids: dict[str, int] = {}

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def manifests(self, repo: str) -> Path:
        return self.storage / "docker/registry/v2/repositories" / repo / "_manifests"

    def versions(self, repo: str) -> list[dict]:
        root = self.manifests(repo)
        tags: dict[str, list[str]] = {}
        for link in sorted((root / "tags").glob("*/current/link")):
            tags.setdefault(link.read_text().strip(), []).append(link.parent.parent.name)
        digests = sorted("sha256:" + d.name for d in (root / "revisions/sha256").iterdir())
        return [{"id": self.ids.setdefault(d, len(self.ids) + 1), "name": d,
                 "metadata": {"package_type": "container", "container": {"tags": tags.get(d, [])}}} for d in digests]

    def delete_version(self, repo: str, version_id: int) -> bool:
        digest = next((d for d, i in self.ids.items() if i == version_id), None)
        root = self.manifests(repo)
        if digest is None or not (root / "revisions/sha256" / digest.split(":")[1]).exists():
            return False
        for link in list((root / "tags").glob("*/current/link")):
            if link.read_text().strip() == digest:
                shutil.rmtree(link.parent.parent)
        shutil.rmtree(root / "revisions/sha256" / digest.split(":")[1])
        return True


class GithubHandler(HarborHandler):
    server: GithubStandIn

    def route(self) -> tuple[str, int | None] | None:
        parts = urlsplit(self.path).path.split("/")  # /orgs/OWNER/packages/container/PKG/versions[/ID]
        if self.headers.get("Authorization") != f"Bearer {GH_TOKEN}":
            self.answer(401, b'{"message": "Bad credentials"}')
            return None
        if len(parts) < 7 or parts[1] != "orgs" or parts[6] != "versions":
            self.answer(404, b'{"message": "Not Found"}')
            return None
        return f"{parts[2]}/{unquote(parts[5])}", int(parts[7]) if len(parts) > 7 else None

    def do_GET(self) -> None:  # noqa: N802
        self.server.seen.append(("GET", self.path, self.headers.get("Authorization")))
        found = self.route()
        if found is None:
            return
        query = parse_qs(urlsplit(self.path).query)
        per_page, page = int(query.get("per_page", ["30"])[0]), int(query.get("page", ["1"])[0])
        versions = self.server.versions(found[0])
        chosen = versions[(page - 1) * per_page: page * per_page]
        body = json.dumps(chosen).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        if page * per_page < len(versions):
            path = urlsplit(self.path).path
            self.send_header("Link", f'<{self.server.url}{path}?per_page={per_page}&page={page + 1}>; rel="next"')
        self.end_headers()
        self.wfile.write(body)

    def do_DELETE(self) -> None:  # noqa: N802
        self.server.seen.append(("DELETE", self.path, self.headers.get("Authorization")))
        found = self.route()
        if found is not None:
            self.answer(204, b"") if self.server.delete_version(*found) else self.answer(404)


@pytest.fixture(scope="module")
def github(tmp_path_factory):
    lab = start_registry("plain", tmp_path_factory.mktemp("ghcr-like"), delete_enabled=False)
    try:
        with serving(GithubStandIn(Path(lab.storage_path))) as server:
            yield lab, server
    finally:
        lab.close()


def test_ghcr_versions_keep_every_image_a_kept_tag_needs(github):
    lab, standin = github
    session = seed.LabSession(lab)
    repo = "org/app"
    kept = seed.push_index(session, repo, "stable", seed=930)  # its children are untagged versions
    shared = seed.push_image(session, repo, "keep", seed=940)
    seed.tag_manifest(session, repo, "drop", shared["raw"], shared["media_type"])
    old = seed.push_image(session, repo, "old", seed=950)
    seed.tag_manifest(session, repo, "older", old["raw"], old["media_type"])
    children = [c["digest"] for c in kept["children"]]
    args = {**lab.conn(), "delete_api": "ghcr", "delete_api_url": standin.url, "api_token": GH_TOKEN,
            "repository": repo, "tags": ["drop", "old", "older"], "digests": children}

    mark = lab.mark()
    checked, _rss = run_module("registry_delete", args, check=True)
    assert "failed" not in checked, checked
    assert not [s for s in standin.seen if s[0] == "DELETE"] and lab.count(mark) == {}

    done, _rss = run_module("registry_delete", args)
    assert "failed" not in done, done
    assert sorted((d["name"], d["method"], d["api"]) for d in done["deleted"]) == [
        ("old", "version", "ghcr"), ("older", "version", "ghcr")]
    assert sorted((d["name"], d["api"]) for d in checked["deleted"]) == [("old", "ghcr"), ("older", "ghcr")]
    refused = {r["name"]: r for r in done["refused"]}
    assert refused["drop"]["staying_tags"] == ["keep"]
    assert {refused[c]["of"] for c in children} == {kept["digest"]}
    assert {r["name"] for r in checked["refused"]} == set(refused)
    assert seed.tag_map(session, repo) == {"stable": kept["digest"], "keep": shared["digest"], "drop": shared["digest"]}
    assert all(seed.head_manifest(session, repo, c) == c for c in children)  # the kept index still pulls
    assert seed.head_manifest(session, repo, old["digest"]) is None
    assert all(s[2] == f"Bearer {GH_TOKEN}" for s in standin.seen)
    # V2 DELETE answers 405 here, as on GHCR: the module never sent one
    assert lab.requests(mark, methods=("DELETE",)) == []
