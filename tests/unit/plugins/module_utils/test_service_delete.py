"""The services' own delete APIs, on recorded exchange shapes: a fake of each API (as its documentation describes it) in
front of the in-memory registry, every request recorded."""

from __future__ import annotations

import json
import re
from urllib.parse import parse_qs, unquote, urlsplit

import pytest

from ansible_collections.regops.registry.plugins.module_utils import _service_delete as services
from ansible_collections.regops.registry.plugins.module_utils import _transport
from ansible_collections.regops.registry.plugins.module_utils import deletion
from ansible_collections.regops.registry.plugins.module_utils._credentials import Credentials
from ansible_collections.regops.registry.plugins.module_utils.errors import RegistryError
from tests.unit.plugins.module_utils.fake_registry import Answer, MemoryRegistry, error, json_answer, make_client
from tests.unit.plugins.module_utils.test_flows import image, one_child_index

TOKEN = "api-secret-123"
JWT = "eyJhbGciOiJIUzI1NiJ9.hub.jwt"
WRITES = ("PUT", "PATCH", "POST", "DELETE")


@pytest.fixture(autouse=True)
def no_sleep(monkeypatch):
    monkeypatch.setattr(_transport.time, "sleep", lambda s: None)


class FakeServices:
    """Docker Hub, GitHub, Quay, Harbor and ACR APIs over one MemoryRegistry. ``api`` = the API's origin."""

    def __init__(self, registry: MemoryRegistry, api: str, owner_kind: str = "orgs", page_size: int = 100,
                 redirect_to: str | None = None) -> None:
        self.registry = registry
        self.api = api
        self.owner_kind = owner_kind
        self.page_size = page_size
        self.redirect_to = redirect_to
        self.ids: dict[str, int] = {}

    def route(self, sent):
        parts = urlsplit(sent.url)
        here = f"{parts.scheme}://{parts.netloc}"
        path = parts.path
        if here == self.api:
            for prefix, handler in (("/v2/auth/token", self.hub_login), ("/v2/repositories/", self.hub_tag),
                                    ("/orgs/", self.github), ("/users/", self.github), ("/api/v1/", self.quay),
                                    ("/api/v2.0/", self.harbor), ("/acr/v1/", self.acr)):
                if path.startswith(prefix):
                    if self.redirect_to and prefix != "/v2/auth/token":
                        return Answer(307, [("Location", self.redirect_to + path)])
                    return handler(sent, path, parse_qs(parts.query))
        if path.startswith("/api/v2.0/systeminfo") or not path.startswith("/v2/"):
            return error(404, "NOT_FOUND")
        return self.registry.route(sent)

    def _drop_tag(self, repo: str, tag: str, status: int) -> Answer:
        if self.registry.tags.get(repo, {}).pop(tag, None) is None:
            return error(404, "NOT_FOUND")
        return Answer(status)

    # Docker Hub: POST /v2/auth/token {identifier, secret} -> {access_token}; DELETE .../tags/{tag} -> 204
    def hub_login(self, sent, path, query):
        body = json.loads(sent.body)
        if body != {"identifier": "bot", "secret": TOKEN}:
            return json_answer({"detail": "Incorrect authentication credentials"}, status=401)
        return json_answer({"access_token": JWT})

    def hub_tag(self, sent, path, query):
        if sent.headers.get("Authorization") != f"Bearer {JWT}":
            return json_answer({"detail": "authentication required"}, status=401)
        match = re.fullmatch(r"/v2/repositories/([^/]+)/([^/]+)/tags/([^/]+)", path)
        return self._drop_tag(f"{match.group(1)}/{match.group(2)}", match.group(3), 204)

    # GitHub: versions of a container package (paginated, Link), DELETE a version (its manifest and every tag)
    def _version_id(self, digest: str) -> int:
        return self.ids.setdefault(digest, len(self.ids) + 1)

    def github(self, sent, path, query):
        if sent.headers.get("Authorization") != f"Bearer {TOKEN}":
            return json_answer({"message": "Bad credentials"}, status=401)
        match = re.fullmatch(r"/(orgs|users)/([^/]+)/packages/container/([^/]+)/versions(?:/(\d+))?", path)
        if not match or match.group(1) != self.owner_kind:
            return json_answer({"message": "Not Found"}, status=404)
        repo = f"{match.group(2)}/{unquote(match.group(3))}"
        manifests = sorted(self.registry.manifests.get(repo, {}))
        if match.group(4):
            digest = next((d for d in manifests if self._version_id(d) == int(match.group(4))), None)
            if digest is None:
                return json_answer({"message": "Not Found"}, status=404)
            del self.registry.manifests[repo][digest]
            self.registry.tags[repo] = {t: d for t, d in self.registry.tags.get(repo, {}).items() if d != digest}
            return Answer(204)
        per_page = min(int(query.get("per_page", ["30"])[0]), self.page_size)
        page = int(query.get("page", ["1"])[0])
        chosen = manifests[(page - 1) * per_page: page * per_page]
        versions = [{"id": self._version_id(d), "name": d, "metadata": {"package_type": "container", "container": {
            "tags": sorted(t for t, dd in self.registry.tags.get(repo, {}).items() if dd == d)}}} for d in chosen]
        headers = []
        if page * per_page < len(manifests):
            headers.append(("Link", f'<{self.api}{path}?per_page={per_page}&page={page + 1}>; rel="next"'))
        return json_answer(versions, headers)

    # Quay: DELETE /api/v1/repository/{ns}/{repo}/tag/{tag} -> 204 (Bearer)
    def quay(self, sent, path, query):
        if sent.headers.get("Authorization") != f"Bearer {TOKEN}":
            return json_answer({"error": "unauthorized"}, status=401)
        match = re.fullmatch(r"/api/v1/repository/([^/]+)/([^/]+)/tag/([^/]+)", path)
        return self._drop_tag(f"{match.group(1)}/{match.group(2)}", match.group(3), 204)

    # Harbor: systeminfo; DELETE .../repositories/{twice-encoded}/artifacts/{ref}/tags/{tag} -> 200 (Basic)
    def harbor(self, sent, path, query):
        if path == "/api/v2.0/systeminfo":
            return json_answer({"harbor_version": "v2.11.0", "auth_mode": "db_auth"})
        match = re.fullmatch(r"/api/v2.0/projects/([^/]+)/repositories/([^/]+)/artifacts/([^/]+)/tags/([^/]+)", path)
        if not sent.headers.get("Authorization", "").startswith("Basic "):
            return json_answer({"errors": [{"code": "UNAUTHORIZED"}]}, status=401)
        name = unquote(unquote(match.group(2)))
        repo = f"{match.group(1)}/{name}"
        if self.registry.tags.get(repo, {}).get(match.group(4)) != match.group(3):
            return error(404, "NOT_FOUND")
        return self._drop_tag(repo, match.group(4), 200)

    # ACR: DELETE /acr/v1/{repo}/_tags/{tag} -> 202
    def acr(self, sent, path, query):
        if sent.headers.get("Authorization") != f"Bearer {TOKEN}":
            return error(401, "UNAUTHORIZED")
        repo, tag = path[len("/acr/v1/"):].split("/_tags/")
        return self._drop_tag(repo, tag, 202)


def setup(kind: str, registry_url: str, api: str | None = None, registry: MemoryRegistry | None = None, *,
          credentials=None, api_token=TOKEN, **service_kw):
    registry = registry or MemoryRegistry(deletes=kind not in ("dockerhub", "ghcr"))
    client, adapter = make_client(None, registry=registry_url, credentials=credentials)
    origin = api or services.registry_origin_url(client)
    fake = FakeServices(registry, origin, **service_kw)
    adapter.route = fake.route
    warnings: list[str] = []
    client._warn = warnings.append
    handle = services.make_api(client, kind, api_url=api, api_token=api_token)
    return registry, client, adapter, handle, warnings


def delete(client, repo, api, **kw):
    plan = deletion.plan_delete(client, repo, **kw)
    deletion.fit_to_api(client, repo, plan, api)
    return plan, deletion.apply_delete(client, repo, plan, api=api)


def sent_to(adapter, origin: str):
    return [s for s in adapter.sent if s.url.startswith(origin + "/")]


# ---------------------------------------------------------------------- which API


@pytest.mark.parametrize("host,expected", [("docker.io", "dockerhub"), ("registry-1.docker.io", "dockerhub"),
                                           ("index.docker.io", "dockerhub"), ("ghcr.io", "ghcr"), ("quay.io", "quay"),
                                           ("myreg.azurecr.io", "acr"), ("registry.example.com", "v2")])
def test_the_api_is_chosen_from_the_host(host, expected):
    registry = MemoryRegistry()
    client, adapter = make_client(lambda sent: error(404, "NOT_FOUND") if "systeminfo" in sent.url else registry.route(sent),
                                  registry=f"https://{host}")
    assert services.choose_api(client) == expected
    # a known host needs no request; an unknown one is asked whether it is Harbor, once
    assert [urlsplit(s.url).path for s in adapter.sent] == ([] if expected != "v2" else ["/api/v2.0/systeminfo"])


def test_harbor_is_found_by_its_systeminfo():
    _registry, client, adapter, _api, _w = setup("harbor", "https://harbor.test")
    assert services.choose_api(client) == "harbor"
    assert adapter.sent[0].method == "GET" and adapter.sent[0].url == "https://harbor.test/api/v2.0/systeminfo"
    assert "Authorization" not in adapter.sent[0].headers


def test_a_forced_api_sends_nothing_to_choose():
    _registry, client, adapter, _api, _w = setup("harbor", "https://ghcr.io")
    assert services.choose_api(client, "quay") == "quay"
    assert services.choose_api(client, "v2") == "v2"
    assert adapter.sent == []


def test_default_api_urls():
    client, _adapter = make_client(lambda s: Answer(200), registry="https://myreg.azurecr.io:8443")
    assert services.make_api(client, "dockerhub").base_url == "https://hub.docker.com"
    assert services.make_api(client, "ghcr").base_url == "https://api.github.com"
    assert services.make_api(client, "acr").base_url == "https://myreg.azurecr.io:8443"
    assert services.make_api(client, "v2") is None


# ---------------------------------------------------------------------- Docker Hub


HUB_API = "https://hub.test"


def test_docker_hub_deletes_one_tag_through_its_api_and_the_siblings_stay():
    registry, client, adapter, api, _w = setup("dockerhub", "https://docker.io", HUB_API,
                                               credentials=Credentials(username="bot", password="pw"))
    digest, _raw = image(registry, "team/app", ["keep", "drop"])
    _plan, deleted = delete(client, "team/app", api, tags=["drop"])
    assert deleted == [{"type": "tag", "name": "drop", "digest": digest, "method": "api", "shared_tags": ["keep"],
                        "api": "dockerhub"}]
    assert registry.tags["team/app"] == {"keep": digest}
    login = sent_to(adapter, HUB_API)[0]
    assert (login.method, urlsplit(login.url).path) == ("POST", "/v2/auth/token")
    assert json.loads(login.body) == {"identifier": "bot", "secret": TOKEN}
    # no V2 delete probe (Hub answers 405 to every V2 DELETE): signing in is the check before the first write
    assert not [s for s in sent_to(adapter, "https://registry-1.docker.io") if s.method in WRITES]


def test_docker_hub_credentials_go_to_the_api_origin_only():
    registry, client, adapter, api, _w = setup("dockerhub", "https://docker.io", HUB_API,
                                               credentials=Credentials(username="bot", password="pw"))
    image(registry, "team/app", ["a", "b"])
    delete(client, "team/app", api, tags=["a"])
    for sent in sent_to(adapter, "https://registry-1.docker.io"):
        assert TOKEN not in json.dumps(sent.headers) and JWT not in json.dumps(sent.headers)
    api_sends = sent_to(adapter, HUB_API)
    assert api_sends[1].headers["Authorization"] == f"Bearer {JWT}"
    assert all("pw" not in s.body.decode() for s in api_sends)  # api_token is the secret, not the registry password


def test_docker_hub_deletes_a_digest_by_deleting_every_tag_and_refuses_an_untagged_one():
    registry, client, adapter, api, _w = setup("dockerhub", "https://docker.io", HUB_API,
                                               credentials=Credentials(username="bot"))
    old, _raw = image(registry, "team/app", ["old", "older"], seed="old")
    child, index = one_child_index(registry, "team/app", "multi")
    plan, deleted = delete(client, "team/app", api, digests=[old, index, child])
    by_name = {d["name"]: d for d in deleted}
    assert by_name[old]["removed_tags"] == ["old", "older"] and by_name[old]["method"] == "tags"
    assert by_name[index]["removed_tags"] == ["multi"] and by_name[index]["api"] == "dockerhub"
    assert registry.tags["team/app"] == {}
    assert [(r["name"], "untagged manifest cannot be deleted" in r["reason"]) for r in plan.refused] == [(child, True)]


def test_docker_hub_without_a_credential_is_refused_before_any_write():
    registry, client, adapter, api, _w = setup("dockerhub", "https://docker.io", HUB_API, api_token=None,
                                               credentials=Credentials())
    image(registry, "team/app", ["a", "b"])
    with pytest.raises(services.ApiRefused, match="needs its API: give username and password, or api_token"):
        delete(client, "team/app", api, tags=["a"])
    assert not [s for s in adapter.sent if s.method in WRITES]
    assert set(registry.tags["team/app"]) == {"a", "b"}


def test_docker_hub_refused_sign_in_is_an_error_naming_the_credential_source():
    registry, client, adapter, api, _w = setup("dockerhub", "https://docker.io", HUB_API, api_token="wrong",
                                               credentials=Credentials(username="bot"))
    image(registry, "team/app", ["a", "b"])
    with pytest.raises(RegistryError) as caught:
        delete(client, "team/app", api, tags=["a"])
    assert caught.value.status == 401 and "api_token" in str(caught.value) and "wrong" not in str(caught.value)
    assert set(registry.tags["team/app"]) == {"a", "b"}


def test_a_tag_that_moved_since_planning_is_refused_on_docker_hub():
    registry, client, adapter, api, _w = setup("dockerhub", "https://docker.io", HUB_API,
                                               credentials=Credentials(username="bot"))
    image(registry, "team/app", ["a", "b"], seed="1")
    plan = deletion.plan_delete(client, "team/app", tags=["a"])
    moved, _raw = image(registry, "team/app", ["a"], seed="2")
    assert deletion.apply_delete(client, "team/app", plan, api=api) == []
    assert plan.refused[0]["digest"] == moved and registry.tags["team/app"]["a"] == moved


# ---------------------------------------------------------------------- GHCR


GH_API = "https://gh.test"


def ghcr(**kw):
    return setup("ghcr", "https://ghcr.io", GH_API, credentials=Credentials(username="me"), **kw)


def test_ghcr_refuses_a_tag_whose_version_carries_a_tag_that_stays():
    registry, client, adapter, api, _w = ghcr()
    digest, _raw = image(registry, "org/app", ["keep", "drop"])
    other, _raw = image(registry, "org/app", ["gone"], seed="2")
    plan, deleted = delete(client, "org/app", api, tags=["drop", "gone"])
    assert [(d["name"], d["method"], d["api"]) for d in deleted] == [("gone", "version", "ghcr")]
    assert plan.refused == [{"type": "tag", "name": "drop", "digest": digest, "staying_tags": ["keep"],
                             "reason": "GHCR deletes a whole version (the manifest and every tag on it) and keep on it "
                                       "must stay: not deleted"}]
    assert registry.tags["org/app"] == {"keep": digest, "drop": digest}
    assert other not in registry.manifests["org/app"]


def test_ghcr_deletes_a_version_when_every_tag_on_it_goes():
    registry, client, adapter, api, _w = ghcr()
    digest, _raw = image(registry, "org/app", ["a", "b"])
    _plan, deleted = delete(client, "org/app", api, tags=["a", "b"])
    assert sorted((d["name"], d["shared_tags"]) for d in deleted) == [("a", ["b"]), ("b", ["a"])]
    assert digest not in registry.manifests["org/app"]
    version_deletes = [s for s in adapter.sent if s.method == "DELETE"]
    assert len(version_deletes) == 1 and urlsplit(version_deletes[0].url).path.startswith(
        "/orgs/org/packages/container/app/versions/")
    assert all(s.headers.get("Authorization") == f"Bearer {TOKEN}" for s in sent_to(adapter, GH_API))
    assert all(TOKEN not in json.dumps(s.headers) for s in sent_to(adapter, "https://ghcr.io"))


def test_ghcr_never_deletes_an_untagged_child_of_a_kept_index():
    registry, client, adapter, api, _w = ghcr()
    child, index = one_child_index(registry, "org/app", "stable")
    loose, _raw = image(registry, "org/app", [], seed="loose")
    plan, deleted = delete(client, "org/app", api, digests=[child, loose])
    assert [d["name"] for d in deleted] == [loose]
    assert plan.refused == [{"type": "digest", "name": child, "digest": child, "of": index,
                             "reason": f"part of the kept index {index}: deleting its GHCR version would break that "
                                       "image"}]
    assert child in registry.manifests["org/app"] and registry.tags["org/app"] == {"stable": index}


def test_ghcr_deletes_an_index_and_its_children_together():
    registry, client, adapter, api, _w = ghcr()
    child, index = one_child_index(registry, "org/app", "old")
    _plan, deleted = delete(client, "org/app", api, digests=[index, child])
    assert [d["name"] for d in deleted] == [index, child]  # the tagged index first
    assert registry.manifests["org/app"] == {}


def test_ghcr_versions_are_paginated_and_the_owner_is_found_under_users():
    registry, client, adapter, api, _w = ghcr(owner_kind="users", page_size=2)
    for n in range(5):
        image(registry, "me/app", [f"t{n}"], seed=str(n))
    versions = api.versions("me/app")
    assert len(versions) == 5 and len({v["id"] for v in versions}) == 5
    paths = [urlsplit(s.url).path for s in adapter.sent]
    assert paths[0] == "/orgs/me/packages/container/app/versions" and paths[1].startswith("/users/me/")


def test_ghcr_package_names_with_a_slash_are_url_encoded():
    registry, client, adapter, api, _w = ghcr()
    image(registry, "org/team/app", ["a"])
    _plan, deleted = delete(client, "org/team/app", api, tags=["a"])
    assert deleted[0]["method"] == "version"
    assert any("/packages/container/team%2Fapp/versions" in s.url for s in adapter.sent)


def test_ghcr_check_mode_sends_no_write_and_predicts_the_refusal():
    registry, client, adapter, api, _w = ghcr()
    image(registry, "org/app", ["keep", "drop"])
    other, _raw = image(registry, "org/app", ["gone"], seed="2")
    plan = deletion.plan_delete(client, "org/app", tags=["drop", "gone"])
    deletion.fit_to_api(client, "org/app", plan, api)
    assert [(p["name"], p["api"]) for p in deletion.predicted(plan, api)] == [("gone", "ghcr")]
    assert [r["name"] for r in plan.refused] == ["drop"]
    assert [s.method for s in adapter.sent if s.method not in ("GET", "HEAD")] == []


def test_ghcr_without_a_token_is_refused_before_any_write():
    registry, client, adapter, api, _w = setup("ghcr", "https://ghcr.io", GH_API, api_token=None)
    image(registry, "org/app", ["a"])
    plan = deletion.plan_delete(client, "org/app", tags=["a"])
    with pytest.raises(services.ApiRefused, match="needs the GitHub API: give api_token"):
        deletion.apply_delete(client, "org/app", plan, api=api)
    assert not [s for s in adapter.sent if s.method in WRITES]


def test_ghcr_refuses_a_version_that_gained_a_tag_after_planning():
    registry, client, adapter, api, _w = ghcr()
    digest, raw = image(registry, "org/app", ["a"])
    plan = deletion.plan_delete(client, "org/app", tags=["a"], expected={"a": digest})
    deletion.fit_to_api(client, "org/app", plan, api)
    registry.add_manifest("org/app", "hotfix", raw, "application/vnd.oci.image.manifest.v1+json")
    assert deletion.apply_delete(client, "org/app", plan, api=api) == []
    assert plan.refused[0]["unexpected_tags"] == ["hotfix"] and digest in registry.manifests["org/app"]


def test_api_credentials_never_follow_a_redirect_to_another_origin():
    registry, client, adapter, api, _w = ghcr(redirect_to="https://elsewhere.test")
    image(registry, "org/app", ["a"])
    with pytest.raises(RegistryError):
        api.versions("org/app")
    elsewhere = sent_to(adapter, "https://elsewhere.test")
    assert elsewhere and all("Authorization" not in s.headers for s in elsewhere)


# ---------------------------------------------------------------------- Quay, Harbor, ACR


def test_quay_uses_the_oci_tag_delete_where_it_works():
    registry = MemoryRegistry(tag_delete="native")
    registry, client, adapter, api, _w = setup("quay", "https://quay.io", registry=registry)
    digest, _raw = image(registry, "ns/app", ["keep", "drop"])
    _plan, deleted = delete(client, "ns/app", api, tags=["drop"])
    assert (deleted[0]["method"], deleted[0]["api"]) == ("native", "v2")
    assert not any("/api/v1/" in s.url for s in adapter.sent)


def test_quay_falls_back_to_its_tag_api():
    registry, client, adapter, api, _w = setup("quay", "https://quay.io")
    digest, _raw = image(registry, "ns/app", ["keep", "drop"])
    _plan, deleted = delete(client, "ns/app", api, tags=["drop"])
    assert (deleted[0]["method"], deleted[0]["api"]) == ("api", "quay")
    assert registry.tags["ns/app"] == {"keep": digest} and set(registry.manifests["ns/app"]) == {digest}
    quay_call = next(s for s in adapter.sent if "/api/v1/" in s.url)
    assert urlsplit(quay_call.url).path == "/api/v1/repository/ns/app/tag/drop"
    assert quay_call.headers["Authorization"] == f"Bearer {TOKEN}"


def test_quay_without_a_token_keeps_the_throwaway_path_and_says_so():
    registry, client, adapter, api, warnings = setup("quay", "https://quay.io", api_token=None)
    digest, _raw = image(registry, "ns/app", ["keep", "drop"])
    _plan, deleted = delete(client, "ns/app", api, tags=["drop"])
    assert deleted[0]["method"] == "throwaway" and registry.tags["ns/app"] == {"keep": digest}
    assert any("needs api_token" in w for w in warnings)


def test_harbor_tag_api_encodes_nested_names_twice_and_uses_basic_auth():
    registry, client, adapter, api, _w = setup("harbor", "https://harbor.test",
                                               credentials=Credentials(username="robot$ci", password="pw"))
    digest, _raw = image(registry, "proj/team/app", ["keep", "drop"])
    _plan, deleted = delete(client, "proj/team/app", api, tags=["drop"])
    assert (deleted[0]["method"], deleted[0]["api"]) == ("api", "harbor")
    call = next(s for s in adapter.sent if "/api/v2.0/projects/" in s.url)
    assert urlsplit(call.url).path == f"/api/v2.0/projects/proj/repositories/team%252Fapp/artifacts/{digest}/tags/drop"
    assert call.headers["Authorization"].startswith("Basic ")
    assert registry.tags["proj/team/app"] == {"keep": digest}
    assert not any(s.method == "DELETE" and "/v2/proj/team/app/manifests/drop" in s.url for s in adapter.sent)


def test_harbor_digest_deletes_go_through_v2():
    registry, client, adapter, api, _w = setup("harbor", "https://harbor.test",
                                               credentials=Credentials(username="u", password="pw"))
    digest, _raw = image(registry, "proj/app", ["a", "b"])
    _plan, deleted = delete(client, "proj/app", api, digests=[digest])
    assert (deleted[0]["method"], deleted[0]["api"], deleted[0]["removed_tags"]) == ("digest", "v2", ["a", "b"])
    assert registry.manifests["proj/app"] == {}


def test_acr_tag_api_answers_202_and_the_siblings_stay():
    registry, client, adapter, api, _w = setup("acr", "https://myreg.azurecr.io")
    digest, _raw = image(registry, "team/app", ["keep", "drop"])
    _plan, deleted = delete(client, "team/app", api, tags=["drop"])
    assert (deleted[0]["method"], deleted[0]["api"]) == ("api", "acr")
    assert registry.tags["team/app"] == {"keep": digest}
    assert any(urlsplit(s.url).path == "/acr/v1/team/app/_tags/drop" for s in adapter.sent)


def test_check_mode_prediction_names_the_api_of_each_delete():
    registry, client, adapter, api, _w = setup("harbor", "https://harbor.test",
                                               credentials=Credentials(username="u", password="pw"))
    digest, _raw = image(registry, "proj/app", ["a", "b"])
    other, _raw = image(registry, "proj/app", ["c"], seed="2")
    plan = deletion.plan_delete(client, "proj/app", tags=["a"], digests=[other])
    deletion.fit_to_api(client, "proj/app", plan, api)
    assert [(p["name"], p["api"]) for p in deletion.predicted(plan, api)] == [("a", "harbor"), (other, "v2")]
    assert not [s for s in adapter.sent if s.method in WRITES]


# ---------------------------------------------------------------------- through the module


def run_module(monkeypatch, capsys, client, args: dict) -> dict:
    from ansible.module_utils.testing import patch_module_args

    from ansible_collections.regops.registry.plugins.module_utils import common
    from ansible_collections.regops.registry.plugins.modules import registry_delete

    monkeypatch.setattr(common, "build_client", lambda get, **kw: client)
    with patch_module_args(args), pytest.raises(SystemExit):
        registry_delete.main()
    return json.loads(capsys.readouterr().out)


def test_the_module_in_check_mode_reports_the_ghcr_plan_and_writes_nothing(monkeypatch, capsys):
    registry, client, adapter, _api, _w = ghcr()
    digest, _raw = image(registry, "org/app", ["keep", "drop"])
    other, _raw = image(registry, "org/app", ["gone"], seed="2")
    result = run_module(monkeypatch, capsys, client, {
        "registry": "ghcr.io", "repository": "org/app", "tags": ["drop", "gone"], "api_token": TOKEN,
        "delete_api_url": GH_API, "_ansible_check_mode": True, "_ansible_diff": True})
    assert result["changed"] is True
    assert [(d["name"], d["api"]) for d in result["deleted"]] == [("gone", "ghcr")]
    assert [(r["name"], r["staying_tags"]) for r in result["refused"]] == [("drop", ["keep"])]
    assert result["diff"]["after"]["tags"] == {"keep": digest, "drop": digest}
    assert not [s for s in adapter.sent if s.method in WRITES]
    assert TOKEN not in json.dumps(result)
    assert set(registry.tags["org/app"]) == {"keep", "drop", "gone"}


def test_the_module_deletes_on_docker_hub_and_names_the_api(monkeypatch, capsys):
    registry, client, adapter, _api, _w = setup("dockerhub", "https://docker.io", HUB_API,
                                                credentials=Credentials(username="bot"))
    digest, _raw = image(registry, "team/app", ["keep", "drop"])
    result = run_module(monkeypatch, capsys, client, {
        "registry": "docker.io", "repository": "team/app", "tags": ["drop"], "api_token": TOKEN,
        "delete_api_url": HUB_API})
    assert result["changed"] is True and result["deleted"][0]["api"] == "dockerhub"
    assert registry.tags["team/app"] == {"keep": digest}
    assert TOKEN not in json.dumps(result) and JWT not in json.dumps(result)


def test_the_module_in_check_mode_refuses_docker_hub_without_a_credential(monkeypatch, capsys):
    registry, client, adapter, _api, _w = setup("dockerhub", "https://docker.io", HUB_API, api_token=None)
    image(registry, "team/app", ["keep", "drop"])
    result = run_module(monkeypatch, capsys, client, {
        "registry": "docker.io", "repository": "team/app", "tags": ["drop"], "delete_api_url": HUB_API,
        "_ansible_check_mode": True})
    assert result["failed"] and "needs its API: give username and password, or api_token" in result["msg"]
    assert sent_to(adapter, HUB_API) == []


# ---------------------------------------------------------------------- Artifact Registry / GCR (plain V2)


class DanglingTagRegistry(MemoryRegistry):
    """Artifact Registry / GCR: a digest DELETE while a tag points at it answers 400 GOOGLE_MANIFEST_DANGLING_TAG."""

    def _manifests(self, sent, repo, ref):
        if sent.method == "DELETE" and ref.startswith("sha256:") and ref in self.tags.get(repo, {}).values():
            return error(400, "GOOGLE_MANIFEST_DANGLING_TAG", "Manifest is still referenced by tag")
        return super()._manifests(sent, repo, ref)


def test_gcr_dangling_tag_refusal_deletes_the_tags_first_then_the_digest():
    registry = DanglingTagRegistry(tag_delete="native")
    client, adapter = make_client(registry.route, registry="https://gcr.test")
    old, _raw = image(registry, "team/app", ["old", "older"], seed="old")
    kept, _raw = image(registry, "team/app", ["stable"], seed="kept")
    plan, deleted = delete(client, "team/app", None, digests=[old])
    assert deleted == [{"type": "digest", "name": old, "digest": old, "removed_tags": ["old", "older"],
                        "method": "digest", "api": "v2"}]
    assert registry.tags["team/app"] == {"stable": kept} and old not in registry.manifests["team/app"]
    deletes = [urlsplit(s.url).path.rsplit("/", 1)[1] for s in adapter.sent if s.method == "DELETE"]
    deletes = [d for d in deletes if d != "sha256:" + "0" * 64]  # the probe: do deletes work at all
    assert deletes[0] == old and sorted(deletes[1:3]) == ["old", "older"] and deletes[3:] == [old]
    assert not plan.refused
