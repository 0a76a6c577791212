"""client with recorded exchanges: pagination, retries, auth flow, redirects, digests (EP, ER, AU, CN ids)."""

from __future__ import annotations

import hashlib
import json

import pytest

from ansible_collections.regops.registry.plugins.module_utils import _transport
from ansible_collections.regops.registry.plugins.module_utils._credentials import Credentials
from ansible_collections.regops.registry.plugins.module_utils.errors import RegistryError
from ansible_collections.regops.registry.plugins.module_utils.reference import MANIFEST_ACCEPT, OCI_MANIFEST

from tests.unit.plugins.module_utils.fake_registry import Answer, error, json_answer, make_client

PASSWORD = "pa55-word-never-shown"


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


@pytest.fixture(autouse=True)
def no_sleep(monkeypatch):
    waits = []
    monkeypatch.setattr(_transport.time, "sleep", waits.append)
    return waits


def ping_ok(sent):
    return Answer(200, [], b"{}") if sent.url.endswith("/v2/") else None


def test_ping_404_is_not_a_registry():  # EP-01
    client = make_client(lambda s: Answer(404, [], b"404 page not found"))[0]
    with pytest.raises(RegistryError, match="not a Docker Registry V2"):
        client.catalog()


def test_catalog_follows_relative_link_and_sorts():  # EP-02, EP-04, EP-05
    pages = {
        "https://reg.test/v2/_catalog?n=2": (["b/x", "a/y"], '</v2/_catalog?last=a%2Fy&n=2>; rel="next"'),
        "https://reg.test/v2/_catalog?last=a%2Fy&n=2": (["c/z"], '<https://reg.test/v2/prev>; rel="prev", </v2/_catalog?last=c%2Fz&n=2>; rel=next'),
        "https://reg.test/v2/_catalog?last=c%2Fz&n=2": (["a/y", "d/w"], None),
    }

    def route(sent):
        if sent.url.endswith("/v2/"):
            return Answer(200)
        repos, link = pages[sent.url]
        return json_answer({"repositories": repos}, [("Link", link)] if link else [])

    client, adapter = make_client(route)
    assert client.catalog(page_size=2) == ["a/y", "b/x", "c/z", "d/w"]
    assert len(adapter.sent) == 4


def test_absolute_link_followed_verbatim():  # EP-03
    def route(sent):
        if sent.url.endswith("/v2/"):
            return Answer(200)
        if "next_page" in sent.url:
            return json_answer({"name": "a", "tags": ["2"]})
        return json_answer({"name": "a", "tags": ["1"]}, [("Link", '<https://reg.test/v2/a/tags/list?n=100&next_page=opaque>; rel="next"')])

    client, adapter = make_client(route)
    assert client.list_tags("a") == ["1", "2"]
    assert adapter.sent[-1].url == "https://reg.test/v2/a/tags/list?n=100&next_page=opaque"


def test_next_link_without_the_base_path_gets_it_back():  # EP-10, Artifactory RTFACT-18971
    prefix = "https://reg.test/artifactory/api/docker/local"
    pages = {f"{prefix}/v2/a/tags/list?n=2": (["1", "2"], '</v2/a/tags/list?last=2&n=2>; rel="next"'),
             f"{prefix}/v2/a/tags/list?last=2&n=2": (["3"], None)}

    def route(sent):
        if sent.url.endswith("/v2/"):
            return Answer(200)
        tags, link = pages[sent.url]
        return json_answer({"name": "a", "tags": tags}, [("Link", link)] if link else [])

    client, adapter = make_client(route, registry=prefix)
    assert client.list_tags("a", page_size=2) == ["1", "2", "3"]
    assert adapter.sent[-1].url == f"{prefix}/v2/a/tags/list?last=2&n=2"


def test_pagination_loop_guards():  # EP-06
    def route(sent):
        if sent.url.endswith("/v2/"):
            return Answer(200)
        return json_answer({"repositories": ["a"]}, [("Link", '</v2/_catalog?n=1>; rel="next"')])

    client, adapter = make_client(route)
    warnings = []
    client._warn = warnings.append
    assert client.catalog(page_size=1) == ["a"]
    assert len(adapter.sent) == 2  # ping, page; the link repeats the page -> stop
    assert "repeated a pagination link" in warnings[0]


def test_page_size_refused_retries_with_default():  # EP-07
    def route(sent):
        if sent.url.endswith("/v2/"):
            return Answer(200)
        if "n=5000" in sent.url:
            return error(400, "PAGINATION_NUMBER_INVALID", "n too large")
        return json_answer({"repositories": ["a"]})

    client = make_client(route)[0]
    assert client.catalog(page_size=5000) == ["a"]


@pytest.mark.parametrize("tags", [None, []])
def test_null_and_empty_tags(tags):  # EP-08
    client = make_client(lambda s: Answer(200) if s.url.endswith("/v2/") else json_answer({"name": "a", "tags": tags}))[0]
    assert client.list_tags("a") == []


def manifest_bytes():
    return json.dumps({"schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": {}, "layers": []}, indent=1).encode()


def test_manifest_get_verifies_and_sends_accept():  # EP-11, CN-01, CN-04, CN-05
    raw = manifest_bytes()

    def route(sent):
        if sent.url.endswith("/v2/"):
            return Answer(200)
        return Answer(200, [("Content-Type", OCI_MANIFEST + "; charset=utf-8"), ("Docker-Content-Digest", sha(raw))], raw)

    client, adapter = make_client(route)
    manifest = client.get_manifest("a", "latest")
    assert manifest.digest == sha(raw) and manifest.raw == raw
    assert client.get_manifest("a", sha(raw)).digest == sha(raw)
    assert all(s.headers["Accept"] == MANIFEST_ACCEPT for s in adapter.sent[1:])


def test_manifest_digest_mismatch_and_size_cap():  # CN-05, CN-06
    raw = manifest_bytes()
    client, _adapter = make_client(lambda s: Answer(200) if s.url.endswith("/v2/") else Answer(
        200, [("Content-Type", OCI_MANIFEST), ("Docker-Content-Digest", "sha256:" + "0" * 64)], raw))
    with pytest.raises(RegistryError, match="digest mismatch"):
        client.get_manifest("a", "latest")
    big = b"{" + b" " * (4 << 20) + b"}"
    client = make_client(lambda s: Answer(200) if s.url.endswith("/v2/") else Answer(200, [("Content-Type", OCI_MANIFEST)], big))[0]
    with pytest.raises(RegistryError, match="larger than"):
        client.get_manifest("a", "latest")


def test_head_without_digest_header_falls_back_to_get():  # EP-12
    raw = manifest_bytes()

    def route(sent):
        if sent.url.endswith("/v2/"):
            return Answer(200)
        return Answer(200, [("Content-Type", OCI_MANIFEST)], b"" if sent.method == "HEAD" else raw)

    client, adapter = make_client(route)
    assert client.head_manifest("a", "latest").digest == sha(raw)
    assert [s.method for s in adapter.sent[1:]] == ["HEAD", "GET"]


def test_retry_after_and_give_up(no_sleep):  # ER-03
    calls = []

    def route(sent):
        if sent.url.endswith("/v2/"):
            return Answer(200)
        calls.append(1)
        if len(calls) == 1:
            return Answer(429, [("Retry-After", "2")])
        if len(calls) == 2:
            return Answer(429, [("Retry-After", "Wed, 21 Oct 2015 07:28:00 GMT")])
        return json_answer({"name": "a", "tags": ["x"]})

    client = make_client(route)[0]
    assert client.list_tags("a") == ["x"]
    assert no_sleep[0] == 2.0 and no_sleep[1] == 0.0
    client = make_client(lambda s: Answer(200) if s.url.endswith("/v2/") else Answer(503))[0]
    with pytest.raises(RegistryError) as err:
        client.list_tags("a")
    assert err.value.status == 503


def test_patch_is_not_blindly_retried():  # ER-04
    client, adapter = make_client(lambda s: Answer(200) if s.url.endswith("/v2/") else Answer(503))
    with pytest.raises(RegistryError):
        client.patch_upload("https://reg.test/v2/a/blobs/uploads/u1", "a", b"data", 4, start=0)
    assert [s.method for s in adapter.sent].count("PATCH") == 1


def test_manifest_delete_racing_in_the_registry_is_retried(no_sleep):
    """distribution 2.8 answers 500 when deletes in one repository race; a DELETE is safe to repeat."""
    answers = iter([error(500, "UNKNOWN", "invalid checksum digest format"), Answer(202)])
    client, adapter = make_client(lambda s: Answer(200) if s.url.endswith("/v2/") else next(answers))
    assert client.delete_manifest("a", "sha256:" + "1" * 64) is True
    assert [s.method for s in adapter.sent].count("DELETE") == 2


def bearer_route(grants, log, challenge_error=""):
    """A registry with a token server: tokens carry the scopes the user is granted."""
    def route(sent):
        if sent.url.startswith("https://auth.test/token"):
            log.append(sent)
            wanted = [v for k, v in (p.split("=", 1) for p in sent.url.split("?", 1)[1].split("&")) if k == "scope"]
            from urllib.parse import unquote
            given = [unquote(w) for w in wanted if unquote(w) in grants]
            return json_answer({"token": "T:" + "|".join(sorted(given)), "expires_in": 300})
        needed = "repository:a:delete" if sent.method == "DELETE" else "repository:a:pull"
        token = sent.headers.get("Authorization", "")
        if sent.url.endswith("/v2/") or needed not in token:
            scope = "" if sent.url.endswith("/v2/") else f',scope="{needed}"'
            err = f',error="{challenge_error or "insufficient_scope"}"' if token else ""
            return Answer(401, [("WWW-Authenticate", f'Bearer realm="https://auth.test/token",service="reg"{scope}{err}')])
        if sent.method == "DELETE":
            return Answer(202)
        return json_answer({"name": "a", "tags": ["1"]})
    return route


def test_bearer_one_token_for_many_requests():  # AU-03, AU-05
    log = []
    client, _adapter = make_client(bearer_route({"repository:a:pull"}, log),
                                   credentials=Credentials(username="u", password=PASSWORD, source="username option"))
    for _attempt in range(20):
        assert client.list_tags("a") == ["1"]
    assert len(log) == 1 and log[0].headers["Authorization"].startswith("Basic ")


def test_insufficient_scope_names_the_permission():  # AU-06, AU-13
    log = []
    client, adapter = make_client(bearer_route({"repository:a:pull"}, log),
                                  credentials=Credentials(username="u", password=PASSWORD, source="username option"))
    with pytest.raises(RegistryError) as err:
        client.delete_manifest("a", "sha256:" + "1" * 64)
    assert "repository:a:delete" in str(err.value) and "'u'" in str(err.value)
    assert PASSWORD not in str(err.value) and PASSWORD not in repr(err.value)
    assert len([s for s in adapter.sent if s.method == "DELETE"]) == 2  # one retry, then stop


def test_redirect_to_other_host_drops_authorization():  # EP-21, AU-11
    blob = b"blob-bytes"

    def route(sent):
        if sent.url.endswith("/v2/"):
            return Answer(401, [("WWW-Authenticate", 'Basic realm="r"')])
        if sent.url.startswith("https://storage.test/"):
            return Answer(200, [], blob)
        return Answer(307, [("Location", "https://storage.test/blob?X-Amz-Signature=zzz")])

    client, adapter = make_client(route, credentials=Credentials(username="u", password=PASSWORD))
    assert b"".join(client.iter_blob("a", sha(blob), len(blob))) == blob
    storage = [s for s in adapter.sent if s.url.startswith("https://storage.test/")]
    assert storage and "Authorization" not in storage[0].headers
    assert adapter.sent[-2].headers["Authorization"].startswith("Basic ")


def test_https_to_http_redirect_refused():  # AU-11
    client = make_client(lambda s: Answer(200) if s.url.endswith("/v2/") else Answer(307, [("Location", "http://evil.test/x")]))[0]
    with pytest.raises(RegistryError, match="https to plain http"):
        client.get_blob_bytes("a", "sha256:" + "2" * 64)


def test_blob_digest_mismatch():  # EP-24
    client = make_client(lambda s: Answer(200) if s.url.endswith("/v2/") else Answer(200, [], b"tampered"))[0]
    with pytest.raises(RegistryError, match="digest mismatch"):
        list(client.iter_blob("a", sha(b"original"), None))


def test_blob_head_redirect_means_exists():  # EP-22
    client, adapter = make_client(lambda s: Answer(200) if s.url.endswith("/v2/") else Answer(307, [("Location", "https://s.test/x")]))
    assert client.head_blob("a", "sha256:" + "3" * 64) == -1
    assert len(adapter.sent) == 2


@pytest.mark.parametrize("answer", [error(405, "UNSUPPORTED", "deletes disabled"), Answer(405, [("Content-Type", "text/plain")], b"Method not allowed")])
def test_deletes_disabled_in_words(answer):  # EP-19
    client = make_client(lambda s: Answer(200) if s.url.endswith("/v2/") else answer)[0]
    with pytest.raises(RegistryError) as err:
        client.delete_manifest("a", "sha256:" + "4" * 64)
    assert err.value.status == 405 and ("UNSUPPORTED" in str(err.value) or "deletes disabled" in str(err.value))


def test_delete_absent_is_not_an_error():  # EP-17
    client = make_client(lambda s: Answer(200) if s.url.endswith("/v2/") else error(404, "MANIFEST_UNKNOWN"))[0]
    assert client.delete_manifest("a", "sha256:" + "5" * 64) is False


class RevokingRegistry:
    """A registry whose token server issues T1, T2, ...; it accepts the tokens in ``valid`` (all it issued until
    ``revoke``), none once ``refuse_all`` is set."""

    def __init__(self, challenge_error):
        self.log, self.valid, self.refuse_all, self.challenge_error = [], set(), False, challenge_error

    def route(self, sent):
        if sent.url.startswith("https://auth.test/token"):
            self.log.append(sent)
            token = f"T{len(self.log)}"
            self.valid.add(token)
            return json_answer({"token": token, "expires_in": 300})
        token = sent.headers.get("Authorization", "").replace("Bearer ", "")
        if sent.url.endswith("/v2/") or token not in self.valid or self.refuse_all:
            err = f',error="{self.challenge_error}"' if token and self.challenge_error else ""
            return Answer(401, [("WWW-Authenticate", f'Bearer realm="https://auth.test/token",service="reg"{err}')])
        return json_answer({"name": "a", "tags": ["1"]})


@pytest.mark.parametrize("challenge_error", ["", "insufficient_scope", "invalid_token"])
def test_a_refused_cached_token_gets_one_fresh_token_whatever_the_error(challenge_error):  # issue 14 item 3
    registry = RevokingRegistry(challenge_error)
    client, adapter = make_client(registry.route,
                                  credentials=Credentials(username="u", password=PASSWORD, source="username option"))
    assert client.list_tags("a") == ["1"] and len(registry.log) == 1
    registry.valid.clear()  # the registry no longer takes the cached token (expired early, revoked, key rotated)
    assert client.list_tags("a") == ["1"]
    assert len(registry.log) == 2  # exactly one fresh token
    registry.refuse_all = True  # now it takes no token at all: one fresh token, then a clear error
    with pytest.raises(RegistryError) as err:
        client.list_tags("a")
    assert len(registry.log) == 3 and err.value.status == 401
    assert "username option" in str(err.value) and "'u'" in str(err.value) and "repository:a:pull" in str(err.value)
    assert PASSWORD not in str(err.value)
    assert len([s for s in adapter.sent if "/tags/list" in s.url]) == 1 + 2 + 2


def test_threads_meeting_the_same_refused_token_share_one_refresh():  # issue 14 item 3
    from concurrent.futures import ThreadPoolExecutor
    registry = RevokingRegistry("")
    client, _adapter = make_client(registry.route, credentials=Credentials(username="u", password=PASSWORD))
    assert client.list_tags("a") == ["1"]
    registry.valid.clear()
    with ThreadPoolExecutor(8) as pool:
        assert list(pool.map(lambda _i: client.list_tags("a"), range(16))) == [["1"]] * 16
    assert len(registry.log) == 2


def test_a_read_around_a_send_that_gave_up_is_not_tried_again(no_sleep):
    """One retry loop, nested: the whole-read loop of get_manifest does not multiply the send loop's tries."""
    import requests
    client, adapter = make_client(lambda s: Answer(200) if s.url.endswith("/v2/") else requests.exceptions.ConnectionError("reset"))
    with pytest.raises(RegistryError, match="cannot reach the registry"):
        client.get_manifest("a", "latest")
    assert len([s for s in adapter.sent if "/manifests/" in s.url]) == client.retries + 1 == 3


def test_a_registry_asking_for_new_scopes_forever_is_stopped():
    asked = []

    def route(sent):
        if sent.url.startswith("https://auth.test/token"):
            return json_answer({"token": f"T{len(asked)}"})
        asked.append(sent)
        scope = f'repository:extra{len(asked)}:pull'
        return Answer(401, [("WWW-Authenticate", f'Bearer realm="https://auth.test/token",service="reg",scope="{scope}"')])

    client = make_client(route)[0]
    with pytest.raises(RegistryError, match="kept asking for authentication"):
        client.list_tags("a")
    assert len(asked) <= 1 + 7  # the ping, then the capped rounds


def test_a_tag_head_404_contradicted_by_get_makes_every_tag_404_confirmed():  # Nexus: HEAD 404 where GET works
    raw = json.dumps({"schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": {}, "layers": []}).encode()
    digest = "sha256:" + hashlib.sha256(raw).hexdigest()

    def route(sent):
        if sent.url.endswith("/v2/"):
            return Answer(200)
        if sent.method == "HEAD":
            return Answer(404, [("Content-Type", "text/html")])
        if sent.url.endswith("/manifests/gone"):
            return error(404, "MANIFEST_UNKNOWN")
        return Answer(200, [("Content-Type", OCI_MANIFEST)], raw)  # no Docker-Content-Digest either

    client, adapter = make_client(route)
    assert client.head_manifest("a", "1") is None  # nothing learnt yet: a HEAD 404 is believed
    assert client.head_manifest("a", "1", confirm_missing=True).digest == digest
    assert client.head_manifest("a", "2").digest == digest  # learnt: confirmed without being asked
    assert client.head_manifest("a", "gone") is None
    assert [s.method for s in adapter.sent[-2:]] == ["HEAD", "GET"]
