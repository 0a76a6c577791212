"""Self-tests of the personalities (tests/lab/personalities.py): with raw ``requests``, not the collection's client,
each emulation answers as its service's documentation says (challenge and realm, anonymous tokens, refused deletes,
the native API, blob redirects to a storage host that refuses ``Authorization``, rate limits, pagination)."""

from __future__ import annotations

import hashlib
import json
import re
from urllib.parse import quote, urlsplit

import requests

from tests.lab import seed
from tests.lab.personalities import WINDOW

ACCEPT = seed.ACCEPT
ANONYMOUS_PULL = {"dockerhub", "ghcr", "quay"}
REDIRECTS_BLOBS = {"dockerhub", "ghcr", "quay", "gitlab", "ecr", "gcr", "acr"}
NO_CATALOG = {"dockerhub", "ghcr", "gitlab"}


def challenge_of(answer: requests.Response) -> tuple[str, dict]:
    scheme, _sep, rest = answer.headers.get("WWW-Authenticate", "").partition(" ")
    return scheme.lower(), dict(re.findall(r'(\w+)="([^"]*)"', rest))


class Raw:
    """The least a client does: on a 401, Basic (ECR) or a realm token for the challenge's scope (with the
    personality's credentials unless ``anonymous``), then the request again. Nothing else."""

    def __init__(self, persona, anonymous: bool = False) -> None:
        self.persona = persona
        self.creds = None if anonymous else (persona.username, persona.password)
        self.http = requests.Session()
        self.http.trust_env = False

    def token(self, params: dict) -> str:
        query = {"service": params.get("service", "")}
        if params.get("scope"):
            query["scope"] = params["scope"]
        answer = self.http.get(params["realm"], params=query, auth=self.creds, timeout=10)
        assert answer.status_code == 200, answer.text
        return answer.json()["token"]

    def send(self, method: str, path: str, **kwargs) -> requests.Response:
        kwargs.setdefault("allow_redirects", False)
        kwargs.setdefault("timeout", 30)
        url = self.persona.url + path
        answer = self.http.request(method, url, **kwargs)
        if answer.status_code != 401:
            return answer
        scheme, params = challenge_of(answer)
        headers = dict(kwargs.pop("headers", None) or {})
        if scheme == "basic":
            if self.creds is None:
                return answer
            return self.http.request(method, url, auth=self.creds, headers=headers, **kwargs)
        headers["Authorization"] = f"Bearer {self.token(params)}"
        return self.http.request(method, url, headers=headers, **kwargs)


def upstream_tags(persona, repo: str) -> dict:
    return persona.tag_links(repo)


def push_twice_tagged(persona, repo: str, seed_number: int) -> dict:
    """An image in the upstream under tags a and b (one digest)."""
    session = seed.LabSession(persona.upstream)
    image = seed.push_image(session, repo, "a", layer_sizes=(200,), seed=seed_number)
    seed.tag_manifest(session, repo, "b", image["raw"], image["media_type"])
    return image


# --- every personality ----------------------------------------------------------------------------------

def test_ping_challenges_with_the_service_auth(personality):
    answer = requests.get(personality.url + "/v2/", timeout=10)
    assert answer.status_code == 401
    assert answer.json()["errors"][0]["code"] == "UNAUTHORIZED"
    scheme, params = challenge_of(answer)
    if not personality.bearer:  # ECR, Nexus
        assert scheme == "basic"
        assert requests.get(personality.url + "/v2/", timeout=10,
                            headers={"Authorization": "Bearer anything"}).status_code == 401
    else:
        assert scheme == "bearer"
        assert params["realm"] == personality.realm and params["service"] == personality.token_service
        realm_port = urlsplit(params["realm"]).port
        # Docker Hub and GitLab keep the realm on another host; the others on the registry host itself.
        assert (realm_port != urlsplit(personality.url).port) == (personality.service in ("dockerhub", "gitlab"))
    assert Raw(personality).send("GET", "/v2/").status_code == 200


def test_anonymous_pull_token_only_where_the_service_gives_one(personality):
    answer = Raw(personality, anonymous=True).send("GET", "/v2/seed/app/manifests/1.0", headers={"Accept": ACCEPT})
    if personality.service in ANONYMOUS_PULL:
        assert answer.status_code == 200
        assert answer.headers["Docker-Content-Digest"] == personality.images["app"]["digest"]
    else:
        assert answer.status_code == 401


def test_blob_get_redirects_to_a_storage_host_that_refuses_authorization(personality):
    raw = Raw(personality)
    digest = personality.images["app"]["config_digest"]
    answer = raw.send("GET", f"/v2/seed/app/blobs/{digest}")
    if personality.service not in REDIRECTS_BLOBS:
        assert answer.status_code == 200 and hashlib.sha256(answer.content).hexdigest() == digest.split(":")[1]
        return
    assert answer.status_code == 307
    location = answer.headers["Location"]
    assert urlsplit(location).port not in (urlsplit(personality.url).port, urlsplit(personality.realm).port)
    refused = requests.get(location, headers={"Authorization": "Bearer leaked"}, timeout=10)
    assert refused.status_code == 400 and b"Only one auth mechanism allowed" in refused.content
    tampered = requests.get(location.replace("X-Amz-Signature=", "X-Amz-Signature=0"), timeout=10)
    assert tampered.status_code == 403
    served = requests.get(location, timeout=10)
    assert served.status_code == 200 and hashlib.sha256(served.content).hexdigest() == digest.split(":")[1]
    assert personality.requests_to("storage", "GET", digest)[-1].status == 200


EXPECTED_DELETES = {  # service: (tag DELETE status, its error code or None, digest DELETE status while tagged, code)
    "dockerhub": (405, "UNSUPPORTED", 405, "UNSUPPORTED"),
    "ghcr": (405, "UNSUPPORTED", 405, "UNSUPPORTED"),
    "quay": (202, None, 202, None),
    "harbor": (400, "UNSUPPORTED", 202, None),
    "gitlab": (202, None, 202, None),
    "ecr": (405, "UNSUPPORTED", 202, None),
    "gcr": (202, None, 400, "GOOGLE_MANIFEST_DANGLING_TAG"),
    "acr": (405, "UNSUPPORTED", 202, None),
    "nexus": (405, "UNSUPPORTED", 202, None),
    "artifactory": (405, "UNSUPPORTED", 202, None),
}


def test_v2_deletes_as_the_service_documents_them(personality):
    repo = f"v2del/{personality.service}"
    image = push_twice_tagged(personality, repo, 1800 + len(personality.service))
    raw = Raw(personality)
    tag_status, tag_code, digest_status, digest_code = EXPECTED_DELETES[personality.service]

    by_tag = raw.send("DELETE", f"/v2/{repo}/manifests/a")
    assert by_tag.status_code == tag_status, by_tag.text
    if tag_code:
        assert by_tag.json()["errors"][0]["code"] == tag_code
        assert upstream_tags(personality, repo) == {"a": image["digest"], "b": image["digest"]}
    else:
        assert upstream_tags(personality, repo) == {"b": image["digest"]}  # only that tag

    by_digest = raw.send("DELETE", f"/v2/{repo}/manifests/{image['digest']}")
    assert by_digest.status_code == digest_status, by_digest.text
    if digest_code:
        assert by_digest.json()["errors"][0]["code"] == digest_code
        assert "b" in upstream_tags(personality, repo)
    else:
        assert upstream_tags(personality, repo) == {}  # the artifact and every tag on it
    if personality.service == "gcr":  # tags first, then the digest
        assert raw.send("DELETE", f"/v2/{repo}/manifests/b").status_code == 202
        assert raw.send("DELETE", f"/v2/{repo}/manifests/{image['digest']}").status_code == 202
        assert seed.head_manifest(seed.LabSession(personality.upstream), repo, image["digest"]) is None


def follow_pages(raw: Raw, first: str) -> tuple[list[str], list[str]]:
    """Every tag through the ``Link`` headers, and each ``Link`` target as sent."""
    tags, links, path = [], [], first
    while path:
        answer = raw.send("GET", path)
        assert answer.status_code == 200, answer.text
        tags += answer.json()["tags"]
        match = re.match(r"<([^>]+)>", answer.headers.get("Link", ""))
        path = None
        if match:
            links.append(match.group(1))
            split = urlsplit(match.group(1))
            path = f"{split.path}?{split.query}"
    return tags, links


def test_tag_list_pagination_as_the_service_pages(personality):
    raw = Raw(personality)
    expected = personality.images["paged"]
    tags, links = follow_pages(raw, "/v2/seed/paged/tags/list?n=2")
    if personality.service == "nexus":  # n ignored, no Link (sonatype/nexus-public#209)
        assert tags == expected and links == []
        return
    assert tags == expected and len(links) == 2
    if personality.service == "quay":
        assert all(link.startswith(personality.url + "/v2/") and "next_page=" in link for link in links)
        assert raw.send("GET", "/v2/seed/paged/tags/list?n=0").json()["tags"] == expected[:1]  # clamped to 1
        assert raw.send("GET", "/v2/seed/paged/tags/list?n=500").json()["tags"] == expected  # clamped to 100
    else:
        assert links[0] == "/v2/seed/paged/tags/list?n=2&last=t02"
        assert raw.send("GET", "/v2/seed/paged/tags/list").json()["tags"] == expected
    if personality.service == "ecr":
        refused = raw.send("GET", "/v2/seed/paged/tags/list?n=1001")
        assert refused.status_code == 400 and refused.json()["errors"][0]["code"] == "UNSUPPORTED"


def test_catalog_refused_where_the_service_refuses_it(personality):
    answer = Raw(personality).send("GET", "/v2/_catalog")
    if personality.service in NO_CATALOG:
        assert answer.status_code == 401
    else:
        assert answer.status_code == 200 and "seed/app" in answer.json()["repositories"]


# --- one service each ----------------------------------------------------------------------------------

def test_dockerhub_rate_limit_headers_count_get_only_and_429(personas):
    hub = personas("dockerhub")
    raw = Raw(hub)
    hub.rate_limit(limit=3)
    try:
        path = "/v2/seed/app/manifests/1.0"
        for _head in range(2):
            head = raw.send("HEAD", path, headers={"Accept": ACCEPT})
            assert head.status_code == 200 and head.headers["ratelimit-remaining"] == f"3;w={WINDOW}"
        assert head.headers["ratelimit-limit"] == f"3;w={WINDOW}"
        remaining = [raw.send("GET", path, headers={"Accept": ACCEPT}).headers["ratelimit-remaining"]
                     for _get in range(3)]
        assert remaining == [f"2;w={WINDOW}", f"1;w={WINDOW}", f"0;w={WINDOW}"]
        refused = raw.send("GET", path, headers={"Accept": ACCEPT})
        assert refused.status_code == 429 and refused.json()["errors"][0]["code"] == "TOOMANYREQUESTS"
        assert raw.send("HEAD", path, headers={"Accept": ACCEPT}).status_code == 200  # HEAD is not a pull
    finally:
        hub.rate_limit(limit=100)


def test_dockerhub_native_tag_delete_with_an_access_token(personas):
    hub = personas("dockerhub")
    image = push_twice_tagged(hub, "nathub/app", 1900)
    wrong = requests.post(hub.url + "/v2/auth/token", json={"identifier": hub.username, "secret": "nope"}, timeout=10)
    assert wrong.status_code == 401
    token = requests.post(hub.url + "/v2/auth/token", json={"identifier": hub.username, "secret": hub.password},
                          timeout=10).json()["access_token"]
    path = hub.url + "/v2/repositories/nathub/app/tags/a/"
    assert requests.delete(path, timeout=10).status_code == 401
    assert requests.delete(path, headers={"Authorization": f"Bearer {token}"}, timeout=10).status_code == 204
    assert upstream_tags(hub, "nathub/app") == {"b": image["digest"]}
    assert requests.delete(path, headers={"Authorization": f"Bearer {token}"}, timeout=10).status_code == 404


def test_ghcr_package_versions_list_untagged_children_and_delete_manifests(personas):
    ghcr = personas("ghcr")
    index = seed.push_index(seed.LabSession(ghcr.upstream), "natghcr/a/b", "v1", seed=1950)
    api = f"{ghcr.url}/users/natghcr/packages/container/{quote('a/b', safe='')}/versions"
    auth = {"Authorization": f"Bearer {ghcr.api_token}"}
    assert requests.get(api, timeout=10).status_code == 401
    first = requests.get(api, params={"per_page": 2}, headers=auth, timeout=10)
    assert first.status_code == 200 and len(first.json()) == 2 and 'rel="next"' in first.headers["Link"]
    versions = requests.get(api, params={"per_page": 100}, headers=auth, timeout=10).json()
    by_digest = {v["name"]: v for v in versions}
    assert set(by_digest) == {index["digest"], *(c["digest"] for c in index["children"])}
    assert by_digest[index["digest"]]["metadata"] == {"package_type": "container", "container": {"tags": ["v1"]}}
    assert all(by_digest[c["digest"]]["metadata"]["container"]["tags"] == [] for c in index["children"])
    referrers = Raw(ghcr).send("GET", f"/v2/natghcr/a/b/referrers/{index['digest']}")
    assert referrers.status_code == 404 and referrers.json()["errors"][0]["code"] == "MANIFEST_UNKNOWN"
    org_api = api.replace("/users/", "/orgs/")
    gone = requests.delete(f"{org_api}/{by_digest[index['digest']]['id']}", headers=auth, timeout=10)
    assert gone.status_code == 204
    assert upstream_tags(ghcr, "natghcr/a/b") == {}


def test_quay_native_tag_delete_removes_only_that_tag(personas):
    quay = personas("quay")
    image = push_twice_tagged(quay, "natquay/app", 1960)
    path = f"{quay.url}/api/v1/repository/natquay/app/tag/a"
    assert requests.delete(path, headers={"Authorization": "Bearer wrong"}, timeout=10).status_code == 401
    answer = requests.delete(path, headers={"Authorization": f"Bearer {quay.api_token}"}, timeout=10)
    assert answer.status_code == 204
    assert upstream_tags(quay, "natquay/app") == {"b": image["digest"]}


def test_harbor_systeminfo_and_tag_api_with_a_twice_encoded_name(personas):
    harbor = personas("harbor")
    info = requests.get(harbor.url + "/api/v2.0/systeminfo", timeout=10)
    assert info.status_code == 200 and info.json()["harbor_version"].startswith("v2.")
    image = push_twice_tagged(harbor, "natharbor/a/b", 1970)
    path = f"{harbor.url}/api/v2.0/projects/natharbor/repositories/a%252Fb/artifacts/{image['digest']}/tags/a"
    assert requests.delete(path, timeout=10).status_code == 401
    assert requests.delete(path, auth=(harbor.username, harbor.password), timeout=10).status_code == 200
    assert upstream_tags(harbor, "natharbor/a/b") == {"b": image["digest"]}


def test_acr_refresh_token_exchange_and_native_untag(personas):
    acr = personas("acr")
    image = push_twice_tagged(acr, "natacr/app", 1980)
    refused = requests.post(acr.url + "/oauth2/exchange", data={"grant_type": "access_token", "service": acr.host,
                                                                "access_token": "wrong"}, timeout=10)
    assert refused.status_code == 401
    refresh = requests.post(acr.url + "/oauth2/exchange", data={"grant_type": "access_token", "service": acr.host,
                                                                "access_token": acr.aad_token},
                            timeout=10).json()["refresh_token"]
    access = requests.post(acr.url + "/oauth2/token", data={
        "grant_type": "refresh_token", "service": acr.host, "refresh_token": refresh,
        "scope": "repository:natacr/app:delete repository:natacr/app:metadata_read"}, timeout=10).json()["access_token"]
    bearer = {"Authorization": f"Bearer {access}"}
    assert requests.delete(acr.url + "/acr/v1/natacr/app/_tags/a", timeout=10).status_code == 401
    assert requests.delete(acr.url + "/acr/v1/natacr/app/_tags/a", headers=bearer, timeout=10).status_code == 202
    listed = requests.get(acr.url + "/acr/v1/natacr/app/_manifests", params={"orderby": "timedesc"}, headers=bearer,
                          timeout=10).json()
    assert [(m["digest"], m["tags"]) for m in listed["manifests"]] == [(image["digest"], ["b"])]
    assert upstream_tags(acr, "natacr/app") == {"b": image["digest"]}


def test_nexus_head_by_tag_404_where_get_works_without_a_digest_header(personas):
    nexus = personas("nexus")
    raw = Raw(nexus)
    app = nexus.images["app"]
    assert raw.send("HEAD", "/v2/seed/app/manifests/1.0", headers={"Accept": ACCEPT}).status_code == 404
    got = raw.send("GET", "/v2/seed/app/manifests/1.0", headers={"Accept": ACCEPT})
    assert got.status_code == 200 and "Docker-Content-Digest" not in got.headers
    assert "sha256:" + hashlib.sha256(got.content).hexdigest() == app["digest"]
    assert raw.send("HEAD", f"/v2/seed/app/manifests/{app['digest']}", headers={"Accept": ACCEPT}).status_code == 200


def test_artifactory_serves_v2_only_under_its_prefix(personas):
    artifactory = personas("artifactory")
    assert urlsplit(artifactory.url).path == artifactory.prefix
    assert requests.get(artifactory.origin("api") + "/v2/", timeout=10).status_code == 404
    assert Raw(artifactory).send("GET", "/v2/seed/app/tags/list").json()["tags"] == ["1.0", "latest"]


# --- the referrers API emulation ---------------------------------------------------------------------------------

def artifact_referring_to(session, repo: str, subject: dict, artifact_type: str, note: str) -> bytes:
    """An OCI 1.1 artifact manifest (empty config) whose ``subject`` is ``subject``; its blob pushed to the upstream."""
    empty = {"mediaType": "application/vnd.oci.empty.v1+json", "digest": seed.push_blob(session, repo, b"{}"),
             "size": 2}
    manifest = {"schemaVersion": 2, "mediaType": seed.OCI_MANIFEST, "artifactType": artifact_type, "config": empty,
                "layers": [empty], "annotations": {"note": note},
                "subject": {"mediaType": subject["media_type"], "digest": subject["digest"], "size": len(subject["raw"])}}
    if artifact_type == empty["mediaType"]:  # no artifactType: the config's mediaType stands for it
        del manifest["artifactType"]
    return json.dumps(manifest).encode()


def test_referrers_api_indexes_a_manifest_with_subject_filters_and_pages(personas):
    """distribution-spec v1.1 "Pushing Manifests with Subject" and "Listing Referrers", with raw requests."""
    harbor = personas("harbor")
    session = seed.LabSession(harbor.upstream)
    subject = seed.push_image(session, "natref/app", "v1", layer_sizes=(100,), seed=1960)
    raw = Raw(harbor)
    listing = f"/v2/natref/app/referrers/{subject['digest']}"
    empty = raw.send("GET", listing)
    assert empty.status_code == 200 and empty.headers["Content-Type"] == seed.OCI_INDEX
    assert empty.json() == {"schemaVersion": 2, "mediaType": seed.OCI_INDEX, "manifests": []}
    pushed = []
    for note, artifact_type in enumerate(("application/vnd.example.sig", "application/spdx+json",
                                          "application/vnd.oci.empty.v1+json")):
        body = artifact_referring_to(session, "natref/app", subject, artifact_type, str(note))
        answer = raw.send("PUT", f"/v2/natref/app/manifests/{seed.sha256(body)}", data=body,
                          headers={"Content-Type": seed.OCI_MANIFEST})
        assert answer.status_code == 201 and answer.headers["OCI-Subject"] == subject["digest"]
        pushed.append({"mediaType": seed.OCI_MANIFEST, "digest": seed.sha256(body), "size": len(body),
                       "artifactType": artifact_type, "annotations": {"note": str(note)}})
    assert not [p for p in pushed if seed.head_manifest(session, "natref/app", p["digest"]) != p["digest"]]
    listed, path = [], listing
    while path:  # one descriptor a page, a relative Link to the next
        page = raw.send("GET", path)
        assert page.status_code == 200 and "OCI-Filters-Applied" not in page.headers
        listed += page.json()["manifests"]
        path = page.links.get("next", {}).get("url")
    assert listed == pushed
    sboms = raw.send("GET", listing, params={"artifactType": "application/spdx+json"})
    assert sboms.headers["OCI-Filters-Applied"] == "artifactType" and sboms.json()["manifests"] == [pushed[1]]
    assert raw.send("DELETE", f"/v2/natref/app/manifests/{pushed[1]['digest']}").status_code == 202
    assert not raw.send("GET", listing, params={"artifactType": "application/spdx+json"}).json()["manifests"]


def test_gitlab_fallback_tag_resolves_to_the_subject(personas):
    """GitLab has no referrers API (404) and answers ``sha256-<hex>`` with the manifest ``sha256:<hex>`` itself
    (oras-project/oras-go#1396); a real tag of that name wins."""
    gitlab = personas("gitlab")
    session = seed.LabSession(gitlab.upstream)
    subject = seed.push_image(session, "natref/gl", "v1", layer_sizes=(100,), seed=1961)
    raw = Raw(gitlab)
    assert raw.send("GET", f"/v2/natref/gl/referrers/{subject['digest']}").status_code == 404
    tag = subject["digest"].replace(":", "-")
    answer = raw.send("GET", f"/v2/natref/gl/manifests/{tag}", headers={"Accept": ACCEPT})
    assert answer.status_code == 200 and answer.headers["Docker-Content-Digest"] == subject["digest"]
    other = seed.push_image(session, "natref/gl", tag, layer_sizes=(100,), seed=1962)
    answer = raw.send("GET", f"/v2/natref/gl/manifests/{tag}", headers={"Accept": ACCEPT})
    assert answer.headers["Docker-Content-Digest"] == other["digest"]
