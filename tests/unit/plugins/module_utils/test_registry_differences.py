"""What registries other than distribution 2.8 do, from recorded (constructed) exchanges: Docker Hub names and rate
limits, legacy schema 1 manifests, paginated referrers, the referrers fallback tag a client must keep."""

from __future__ import annotations

import hashlib
import json

import pytest

from ansible_collections.regops.registry.plugins.module_utils import _transport, images
from ansible_collections.regops.registry.plugins.module_utils.client import TransientReadError, referrers_tag
from ansible_collections.regops.registry.plugins.module_utils.copy import copy_image
from ansible_collections.regops.registry.plugins.module_utils.errors import RegistryError
from ansible_collections.regops.registry.plugins.module_utils.facts import FactsGatherer
from ansible_collections.regops.registry.plugins.module_utils.ratelimit import (
    RateLimit,
    parse_quota,
    parse_ratelimit,
    pulls_refused,
)
from ansible_collections.regops.registry.plugins.module_utils.reference import (
    DOCKER_SCHEMA1,
    DOCKER_SCHEMA1_SIGNED,
    OCI_INDEX,
    OCI_MANIFEST,
    parse_reference,
    parse_registry,
    registry_repository,
)
from tests.lab import schema1
from tests.unit.plugins.module_utils.fake_registry import Answer, MemoryRegistry, json_answer, make_client


@pytest.fixture(autouse=True)
def no_sleep(monkeypatch):
    monkeypatch.setattr(_transport.time, "sleep", lambda s: None)


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


# --- Docker Hub names ------------------------------------------------------------------------------

@pytest.mark.parametrize("host", ["docker.io", "index.docker.io", "registry-1.docker.io", "Docker.IO"])
def test_docker_hub_official_images_live_under_library(host):
    assert registry_repository(host, "nginx") == "library/nginx"
    assert registry_repository(host, "team/app") == "team/app"
    assert parse_registry(host).repository("nginx") == "library/nginx"


def test_other_registries_take_names_as_given_and_the_parser_agrees():
    assert parse_registry("ghcr.io").repository("nginx") == "nginx"
    assert parse_registry("127.0.0.1:5000").repository("nginx") == "nginx"
    for text in ("nginx", "docker.io/nginx", "index.docker.io/nginx:1", "registry-1.docker.io/nginx"):
        assert parse_reference(text).repository == "library/nginx"


# --- schema 1 -----------------------------------------------------------------------------------

V1_NEWEST = {"id": "b" * 64, "parent": "a" * 64, "created": "2016-03-04T05:06:07.123456789Z", "os": "linux",
             "architecture": "arm", "variant": "v7", "config": {"Labels": {"maintainer": "ops"}}, "Size": 1200}
V1_EMPTY = {"id": "c" * 64, "created": "2016-03-04T05:06:00Z", "throwaway": True}
V1_BASE = {"id": "a" * 64, "created": "2016-01-01T00:00:00Z", "Size": 3400}


def schema1_payload_bytes() -> bytes:
    """A schema 1 manifest as docker 1.x pretty-printed it, fsLayers newest first."""
    return schema1.payload("library/old", "1.0", [(sha256(b"layer-2"), V1_NEWEST), (sha256(b"empty"), V1_EMPTY),
                                                  (sha256(b"layer-1"), V1_BASE)], architecture="arm")


def sign_schema1(payload: bytes) -> bytes:
    return schema1.sign(payload)


def schema1_route(raw: bytes, media_type: str, header_digest: str | None, tag: str = "1.0"):
    digest = sha256(images.manifest_digest_content(media_type, raw))

    def route(sent):
        if sent.url.endswith("/v2/"):
            return Answer(200, [], b"{}")
        if sent.url.endswith(f"/manifests/{tag}") or sent.url.endswith(f"/manifests/{digest}"):
            headers = [("Content-Type", media_type)] + ([("Docker-Content-Digest", header_digest)] if header_digest else [])
            return Answer(200, headers, raw)
        if sent.url.endswith("/tags/list"):
            return json_answer({"name": "library/old", "tags": [tag]})
        return Answer(404, [], b"")
    return route, digest


def test_schema1_payload_is_the_manifest_without_its_signatures():
    payload = schema1_payload_bytes()
    signed = sign_schema1(payload)
    assert signed != payload and b'"signatures"' in signed
    assert images.schema1_payload(signed) == payload
    assert images.manifest_digest_content(DOCKER_SCHEMA1_SIGNED, signed) == payload
    assert images.manifest_digest_content("application/json", signed) == payload  # detected by shape
    assert images.manifest_digest_content(DOCKER_SCHEMA1, payload) == payload  # unsigned: the bytes
    protected = json.loads(signed)["signatures"][0]["protected"]
    broken = signed.replace(protected.encode(), schema1.b64url(b'{"formatLength": "many"}').encode())
    assert images.schema1_payload(broken) == broken  # unusable header: hashed as is, and so refused by the digest


@pytest.mark.parametrize("signed", [True, False])
def test_schema1_is_read_with_its_payload_digest_and_gives_facts(signed):
    payload = schema1_payload_bytes()
    raw = sign_schema1(payload) if signed else payload
    media_type = DOCKER_SCHEMA1_SIGNED if signed else DOCKER_SCHEMA1
    route, digest = schema1_route(raw, media_type, sha256(payload))
    assert digest == sha256(payload)
    client, _adapter = make_client(route, registry="https://registry-1.docker.io")
    by_tag = client.get_manifest("library/old", "1.0")
    by_digest = client.get_manifest("library/old", digest)
    assert by_tag.digest == by_digest.digest == digest and by_tag.media_type == media_type and by_tag.raw == raw
    [facts] = FactsGatherer(client).tag_details("library/old", ["1.0"])
    assert facts["digest"] == digest and facts["media_type"] == media_type
    assert facts["created"] == "2016-03-04T05:06:07.123456Z" and facts["created_source"] == "config"
    assert facts["platforms"] == [{"os": "linux", "architecture": "arm", "variant": "v7"}]
    assert facts["labels"] == {"maintainer": "ops"}
    assert facts["layers"] == 2 and facts["size"] == 1200 + 3400  # the throwaway layer counts for nothing
    assert facts["manifest_size"] == len(raw)


def test_schema1_with_a_corrupted_payload_is_still_refused():
    payload = schema1_payload_bytes()
    signed = sign_schema1(payload)
    route, _digest = schema1_route(signed.replace(b"\"tag\": \"1.0\"", b"\"tag\": \"1.1\""), DOCKER_SCHEMA1_SIGNED, sha256(payload))
    client, _adapter = make_client(route, retries=0)
    with pytest.raises(TransientReadError, match="digest mismatch"):
        client.get_manifest("library/old", "1.0")


def test_schema1_source_is_copied_with_its_layers():
    registry = MemoryRegistry()
    layers = [registry.add_blob("old", data) for data in (b"layer-2", b"empty", b"layer-1")]
    payload = schema1_payload_bytes()
    assert [json.loads(payload)["fsLayers"][i]["blobSum"] for i in range(3)] == layers
    route, digest = schema1_route(payload, DOCKER_SCHEMA1, None)
    client, _adapter = make_client(registry.route)
    registry.add_manifest("old", "1.0", payload, DOCKER_SCHEMA1)
    result = copy_image(client, "old", "1.0", client, "new", "1.0")
    assert result["digest"] == digest and {b["digest"] for b in result["blobs"]} == set(layers)
    assert set(registry.blobs["new"]) == set(layers)


# --- referrers -----------------------------------------------------------------------------------

def test_referrers_pages_are_followed():  # EP-37
    subject = "sha256:" + "1" * 64
    pages = {
        f"/v2/app/referrers/{subject}": ([{"digest": "sha256:" + "a" * 64}], f"</v2/app/referrers/{subject}?last=a>"),
        f"/v2/app/referrers/{subject}?last=a": ([{"digest": "sha256:" + "b" * 64}], f'</v2/app/referrers/{subject}?last=b>; rel="next"'),
        f"/v2/app/referrers/{subject}?last=b": ([{"digest": "sha256:" + "c" * 64}, {"no": "digest"}], None),
    }

    def route(sent):
        path = sent.url.split("https://reg.test", 1)[1]
        if path == "/v2/":
            return Answer(200, [], b"{}")
        manifests, link = pages[path]
        headers = [("Link", link + ('' if 'rel=' in link else '; rel="next"'))] if link else []
        return json_answer({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": manifests}, headers)

    client, adapter = make_client(route)
    found = client.list_referrers("app", subject)
    assert [d["digest"][-1] for d in found] == ["a", "b", "c"]
    assert client.referrers_api is True
    assert all(s.headers["Accept"] == OCI_INDEX for s in adapter.sent if "/referrers/" in s.url)


def test_no_referrers_api_is_learnt_from_the_first_404():
    registry = MemoryRegistry(referrers_api=False)
    client, adapter = make_client(registry.route)
    assert client.list_referrers("app", "sha256:" + "1" * 64) is None
    assert client.list_referrers("app", "sha256:" + "2" * 64) is None
    assert len([s for s in adapter.sent if "/referrers/" in s.url]) == 1


def signature_of(subject_digest: str, subject_size: int, n: int) -> bytes:
    return json.dumps({"schemaVersion": 2, "mediaType": OCI_MANIFEST, "artifactType": "application/vnd.dev.sig",
                       "config": {"mediaType": "application/vnd.oci.empty.v1+json", "digest": sha256(b"{}"),
                                  "size": 2},
                       "layers": [],
                       "subject": {"mediaType": OCI_MANIFEST, "digest": subject_digest, "size": subject_size},
                       "annotations": {"n": str(n)}}).encode()


def test_a_referrer_written_without_oci_subject_is_listed_in_the_fallback_tag():  # EP-36
    registry = MemoryRegistry()
    subject_raw = json.dumps({"schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": {}, "layers": []}).encode()
    subject = registry.add_manifest("app", "1.0", subject_raw, OCI_MANIFEST)
    client, adapter = make_client(registry.route)
    first, second = (signature_of(subject, len(subject_raw), n) for n in (1, 2))
    client.put_manifest("app", sha256(first), first, OCI_MANIFEST, list_referrer=True)
    client.put_manifest("app", sha256(second), second, OCI_MANIFEST, list_referrer=True)
    tag = referrers_tag(subject)
    assert tag == "sha256-" + subject.split(":")[1]
    raw, media_type = registry.manifests["app"][registry.tags["app"][tag]]
    index = json.loads(raw)
    assert media_type == OCI_INDEX and index["mediaType"] == OCI_INDEX
    assert index["manifests"] == [
        {"mediaType": OCI_MANIFEST, "digest": sha256(first), "size": len(first),
         "artifactType": "application/vnd.dev.sig", "annotations": {"n": "1"}},
        {"mediaType": OCI_MANIFEST, "digest": sha256(second), "size": len(second),
         "artifactType": "application/vnd.dev.sig", "annotations": {"n": "2"}}]
    writes = len(adapter.writes())
    client.put_manifest("app", sha256(first), first, OCI_MANIFEST, list_referrer=True)  # written again: listed once, index not rewritten
    assert len(adapter.writes()) == writes + 1
    assert json.loads(registry.manifests["app"][registry.tags["app"][tag]][0])["manifests"] == index["manifests"]


def test_a_registry_that_indexes_referrers_itself_gets_no_fallback_write():
    registry = MemoryRegistry()

    def route(sent):
        answer = registry.route(sent)
        if sent.method == "PUT" and "/manifests/" in sent.url:
            answer.headers.append(("OCI-Subject", json.loads(sent.body)["subject"]["digest"]))
        return answer

    client, adapter = make_client(route)
    signature = signature_of("sha256:" + "1" * 64, 10, 1)
    client.put_manifest("app", "sig", signature, OCI_MANIFEST, list_referrer=True)
    assert len(adapter.writes()) == 1 and "sha256-" + "1" * 64 not in registry.tags["app"]


def test_a_fallback_tag_that_resolves_to_the_subject_is_left_alone_with_a_warning():
    registry = MemoryRegistry()
    subject_raw = json.dumps({"schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": {}, "layers": []}).encode()
    subject = registry.add_manifest("app", "1.0", subject_raw, OCI_MANIFEST)
    registry.add_manifest("app", referrers_tag(subject), subject_raw, OCI_MANIFEST)  # GitLab: the subject itself
    client, adapter = make_client(registry.route)
    warnings = []
    client._warn = warnings.append  # pylint: disable=protected-access
    signature = signature_of(subject, len(subject_raw), 1)
    client.put_manifest("app", "sig", signature, OCI_MANIFEST, list_referrer=True)
    assert registry.tags["app"]["sig"] == sha256(signature)  # the referrer itself was written
    assert len(adapter.writes()) == 1 and registry.tags["app"][referrers_tag(subject)] == subject
    assert len(warnings) == 1 and "resolves the referrers fallback tag" in warnings[0]


def test_a_fallback_tag_that_is_not_an_index_is_reported():
    registry = MemoryRegistry()
    subject_raw = json.dumps({"schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": {}, "layers": []}).encode()
    subject = registry.add_manifest("app", "1.0", subject_raw, OCI_MANIFEST)
    other_raw = json.dumps({"schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": {}, "layers": [],
                            "annotations": {"a": "b"}}).encode()
    registry.add_manifest("app", referrers_tag(subject), other_raw, OCI_MANIFEST)  # a user's image on that tag
    client, _adapter = make_client(registry.route)
    signature = signature_of(subject, len(subject_raw), 1)
    with pytest.raises(RegistryError, match="not an OCI index of referrers"):
        client.put_manifest("app", "sig", signature, OCI_MANIFEST, list_referrer=True)
    assert registry.tags["app"]["sig"] == sha256(signature)  # the referrer itself was written


def test_bookkeeping_writes_list_nothing():
    registry = MemoryRegistry()
    client, adapter = make_client(registry.route)
    signature = signature_of("sha256:" + "1" * 64, 10, 1)
    client.put_manifest("app", "marker", signature, OCI_MANIFEST)  # e.g. a safe tag delete's throwaway marker
    assert len(adapter.writes()) == 1 and list(registry.tags["app"]) == ["marker"]


# --- rate limits ---------------------------------------------------------------------------------

def test_rate_limit_headers_are_parsed():
    assert parse_quota("100;w=21600") == (100, 21600)
    assert parse_quota(" 76 ; w=21600") == (76, 21600)
    assert parse_quota("100") == (100, None)
    assert parse_quota("lots") is None and parse_quota(None) is None
    headers = {"ratelimit-limit": "100;w=21600", "ratelimit-remaining": "76;w=21600",
               "docker-ratelimit-source": "192.0.2.1"}
    assert parse_ratelimit(headers) == RateLimit(100, 76, 21600, "192.0.2.1")
    assert parse_ratelimit(headers).as_dict() == {"limit": 100, "remaining": 76, "window": 21600,
                                                  "source": "192.0.2.1"}
    assert parse_ratelimit({"ratelimit-limit": "100;w=21600"}) is None
    assert parse_ratelimit({}) is None


def test_pulls_refused_only_when_they_do_not_fit():
    limit = RateLimit(100, 5, 21600)
    assert pulls_refused(None, 1000) is None  # no limit announced
    assert pulls_refused(limit, 5) is None and pulls_refused(limit, 0) is None
    assert pulls_refused(limit, 3, reserve=2) is None
    message = pulls_refused(limit, 6)
    assert "6 manifest pulls are needed" in message and "5 of 100 per 21600 s remain" in message
    assert "min_ratelimit_remaining" in pulls_refused(limit, 4, reserve=2)


class HubCounter:
    """Docker Hub's accounting in front of a MemoryRegistry: the headers on manifest GET and HEAD, GETs counted."""

    def __init__(self, registry: MemoryRegistry, remaining: int) -> None:
        self.registry, self.remaining = registry, remaining

    def route(self, sent):
        answer = self.registry.route(sent)
        if "/manifests/" in sent.url and sent.method in ("GET", "HEAD"):
            if sent.method == "GET" and answer.status == 200:
                self.remaining -= 1
            answer.headers += [("ratelimit-limit", "100;w=21600"), ("ratelimit-remaining", f"{self.remaining};w=21600")]
        return answer


def three_images(registry):
    digests = []
    for n in range(3):
        raw = json.dumps({"schemaVersion": 2, "mediaType": OCI_MANIFEST, "artifactType": "application/x.test",
                          "config": {"mediaType": "application/vnd.oci.empty.v1+json", "digest": sha256(b"{}"),
                                     "size": 2}, "layers": [], "annotations": {"n": str(n)}}).encode()
        digests.append(registry.add_manifest("library/app", f"t{n}", raw, OCI_MANIFEST))
    return digests


def test_details_stop_before_the_gets_the_rate_limit_cannot_pay():
    registry = MemoryRegistry()
    three_images(registry)
    hub = HubCounter(registry, remaining=2)
    client, adapter = make_client(hub.route, registry="https://registry-1.docker.io")
    with pytest.raises(RegistryError, match="3 manifest pulls are needed, 2 of 100 per 21600 s remain") as caught:
        FactsGatherer(client).tag_details("library/app", ["t0", "t1", "t2"])
    assert caught.value.status == 429
    assert [s.method for s in adapter.sent if "/manifests/" in s.url] == ["HEAD"] * 3  # HEADs only: nothing pulled
    assert hub.remaining == 2


def test_details_within_the_limit_report_it_and_honour_the_reserve():
    registry = MemoryRegistry()
    three_images(registry)
    hub = HubCounter(registry, remaining=5)
    client, _adapter = make_client(hub.route, registry="https://registry-1.docker.io")
    with pytest.raises(RegistryError, match="kept in reserve"):
        FactsGatherer(client, min_ratelimit_remaining=3).tag_details("library/app", ["t0", "t1", "t2"])
    facts = FactsGatherer(client, min_ratelimit_remaining=2).tag_details("library/app", ["t0", "t1", "t2"])
    assert len(facts) == 3 and hub.remaining == 2
    assert client.ratelimit.remaining == 2 and client.ratelimit.limit == 100 and client.ratelimit.window == 21600


def test_copy_to_a_target_that_already_has_the_digest_reads_nothing():
    registry = MemoryRegistry()
    digests = three_images(registry)
    raw, media_type = registry.manifests["library/app"][digests[0]]
    registry.add_manifest("library/app", "stable", raw, media_type)
    hub = HubCounter(registry, remaining=10)
    client, adapter = make_client(hub.route)
    result = copy_image(client, "library/app", "t0", client, "library/app", "stable")
    assert not result["changed"] and result["digest"] == digests[0]
    assert [s.method for s in adapter.sent if s.url.endswith(("/t0", "/stable"))] == ["HEAD", "HEAD"]
    assert hub.remaining == 10


# --- the modules, in process, on a scripted Docker Hub ----------------------------------------------

def run_module(monkeypatch, capsys, module, args: dict, route) -> tuple[dict, list]:
    """Run a module's main() as Ansible would, its client talking to ``route``; returns its result and requests."""
    from ansible.module_utils.testing import patch_module_args

    from ansible_collections.regops.registry.plugins.module_utils import common

    sent = []

    def fake_client(location, credentials, **kwargs):
        client, adapter = make_client(route, registry=location.base_url)
        sent.append(adapter.sent)
        return client

    monkeypatch.setattr(common, "RegistryClient", fake_client)
    with patch_module_args(args), pytest.raises(SystemExit):
        module.main()
    result = json.loads(capsys.readouterr().out)
    return result, [s for batch in sent for s in batch]


def test_modules_name_docker_hub_official_images_as_docker_does(monkeypatch, capsys):
    from ansible_collections.regops.registry.plugins.modules import registry_delete, registry_manifest, registry_tags

    registry = MemoryRegistry()
    digests = three_images(registry)
    hub = HubCounter(registry, remaining=50)
    result, sent = run_module(monkeypatch, capsys, registry_tags,
                              {"registry": "docker.io", "repositories": ["app"], "details": True}, hub.route)
    assert not result.get("failed"), result
    assert result["repositories"][0]["repository"] == "library/app" and result["repositories"][0]["count"] == 3
    assert {s.url.split("/v2/", 1)[1].split("/")[0:2] == ["library", "app"] for s in sent if "/v2/" in s.url
            and not s.url.endswith("/v2/")} == {True}
    assert all(s.url.startswith("https://registry-1.docker.io/") for s in sent)
    assert result["ratelimit"] == {"limit": 100, "remaining": 47, "window": 21600}

    result, sent = run_module(monkeypatch, capsys, registry_manifest,
                              {"registry": "index.docker.io", "repository": "app", "reference": "t1"}, hub.route)
    assert not result.get("failed"), result
    assert result["digest"] == digests[1] and result["image"]["annotations"] == {"n": "1"}
    manifest_requests = [(s.method, s.url.rsplit("/", 1)[1]) for s in sent if "/manifests/" in s.url]
    assert manifest_requests == [("HEAD", "t1"), ("GET", digests[1])]  # one pull, not two
    assert result["ratelimit"]["remaining"] == 46

    check = {"registry": "docker.io", "repository": "app", "tags": ["t1"], "delete_api": "v2", "_ansible_check_mode": True}
    result, sent = run_module(monkeypatch, capsys, registry_delete, check, hub.route)
    assert not result.get("failed"), result
    assert [d["name"] for d in result["deleted"]] == ["t1"]
    assert {s.url.split("/v2/", 1)[1].split("/")[0:2] == ["library", "app"] for s in sent if "/v2/" in s.url
            and not s.url.endswith("/v2/")} == {True}


def test_registry_manifest_refuses_a_read_the_limit_cannot_pay(monkeypatch, capsys):
    from ansible_collections.regops.registry.plugins.modules import registry_manifest

    registry = MemoryRegistry()
    three_images(registry)
    hub = HubCounter(registry, remaining=3)
    args = {"registry": "docker.io", "repository": "app", "reference": "t0", "min_ratelimit_remaining": 3}
    result, sent = run_module(monkeypatch, capsys, registry_manifest, args, hub.route)
    assert result["failed"] and "1 manifest pull is needed, 3 of 100" in result["msg"]
    assert [s.method for s in sent if "/manifests/" in s.url] == ["HEAD"] and hub.remaining == 3


def test_the_lowest_remaining_is_kept_whatever_order_answers_arrive_in():
    answers = iter(["7;w=60", "5;w=60", "6;w=60"])

    def route(sent):
        if sent.url.endswith("/v2/"):
            return Answer(200, [], b"{}")
        return Answer(200, [("Docker-Content-Digest", "sha256:" + "1" * 64), ("Content-Type", OCI_MANIFEST),
                            ("ratelimit-limit", "10;w=60"), ("ratelimit-remaining", next(answers))], b"")

    client, _adapter = make_client(route)
    for _n in range(3):
        client.head_manifest("app", "latest")
    assert client.ratelimit == RateLimit(10, 5, 60)


def test_a_promoted_referrer_is_listed_at_the_target():
    registry = MemoryRegistry()
    subject_raw = json.dumps({"schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": {}, "layers": []}).encode()
    subject = registry.add_manifest("src", "1.0", subject_raw, OCI_MANIFEST)
    registry.add_manifest("dst", "1.0", subject_raw, OCI_MANIFEST)
    registry.add_blob("src", b"{}")
    signature = signature_of(subject, len(subject_raw), 1)
    registry.add_manifest("src", "sig", signature, OCI_MANIFEST)
    client, _adapter = make_client(registry.route)
    copy_image(client, "src", "sig", client, "dst", "sig")
    index = json.loads(registry.manifests["dst"][registry.tags["dst"][referrers_tag(subject)]][0])
    assert [m["digest"] for m in index["manifests"]] == [sha256(signature)]
    assert referrers_tag(subject) not in registry.tags["src"]  # the source registry is only read


def test_a_negative_reserve_is_refused_before_any_request(monkeypatch, capsys):
    from ansible_collections.regops.registry.plugins.modules import registry_tags

    registry = MemoryRegistry()
    result, sent = run_module(monkeypatch, capsys, registry_tags,
                              {"registry": "docker.io", "repository": "app", "min_ratelimit_remaining": -1},
                              registry.route)
    assert result["failed"] and "min_ratelimit_remaining must be zero or more" in result["msg"] and sent == []
