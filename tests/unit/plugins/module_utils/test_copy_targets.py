"""copy_to_targets and registry_manifest's targets: several targets in one call, on an in-memory registry pair."""

from __future__ import annotations

import json

import pytest

from ansible_collections.regops.registry.plugins.module_utils import _transport
from ansible_collections.regops.registry.plugins.module_utils._credentials import Credentials
from ansible_collections.regops.registry.plugins.module_utils.copy import Target, copy_to_targets
from ansible_collections.regops.registry.plugins.module_utils.errors import RegistryError
from tests.unit.plugins.module_utils.fake_registry import MemoryRegistry, make_client
from tests.unit.plugins.module_utils.test_flows import image

WRITES = ("PUT", "PATCH", "POST", "DELETE")


@pytest.fixture(autouse=True)
def no_sleep(monkeypatch):
    monkeypatch.setattr(_transport.time, "sleep", lambda s: None)


def pair():
    source, target = MemoryRegistry(), MemoryRegistry()
    src_client, src_adapter = make_client(source.route, registry="https://src.test")
    dst_client, dst_adapter = make_client(target.route, registry="https://dst.test")
    return source, target, src_client, src_adapter, dst_client, dst_adapter


def manifest_reads(adapter, repository="staging/app") -> list[tuple[str, str]]:
    return [(s.method, s.url.rsplit("/", 1)[-1]) for s in adapter.sent if f"/{repository}/manifests/" in s.url]


def test_the_source_is_read_once_and_later_targets_mount_from_an_earlier_one():
    source, target, src_client, src_adapter, dst_client, dst_adapter = pair()
    digest, _raw = image(source, "staging/app", ["1.0"])
    targets = [Target(src_client, "prod/app", "1.0"),  # the source's registry: mounted from the source
               Target(dst_client, "release/app", "1.0"),  # another registry: streamed
               Target(dst_client, "release/app", "stable"),  # the same repository: every blob is there
               Target(dst_client, "mirror/app", "1.0")]  # another repository there: mounted from release/app
    result = copy_to_targets(src_client, "staging/app", "1.0", targets)
    assert result["changed"] and result["digest"] == digest
    assert [t["digest"] for t in result["targets"]] == [digest] * 4
    hows = [sorted({b["how"] for b in t["blobs"]}) for t in result["targets"]]
    assert hows == [["mounted"], ["uploaded"], ["exists"], ["mounted"]]
    assert {b["source"] for b in result["targets"][3]["blobs"]} == {"release/app"}
    # One HEAD by tag, then one GET by the digest it gave, whatever the number of targets.
    assert manifest_reads(src_adapter)[:2] == [("HEAD", "1.0"), ("GET", digest)]
    assert [m for m, _ref in manifest_reads(src_adapter)].count("GET") == 1
    assert len([s for s in src_adapter.sent if s.method == "GET" and "/blobs/sha256" in s.url]) == 2  # streamed once
    assert target.tags["mirror/app"]["1.0"] == digest and source.tags["prod/app"]["1.0"] == digest
    # release/app:stable writes its tag only: the blobs release/app:1.0 just wrote are not looked for again
    assert len([s for s in dst_adapter.sent if s.method == "HEAD" and "/release/app/blobs/" in s.url]) == 2


def test_targets_that_already_have_the_digest_cost_a_head_each_and_no_read():
    source, target, src_client, src_adapter, dst_client, dst_adapter = pair()
    digest, raw = image(source, "staging/app", ["1.0"])
    copy_to_targets(src_client, "staging/app", "1.0", [Target(dst_client, "prod/app", "1.0")])
    src_adapter.sent.clear()
    dst_adapter.sent.clear()
    result = copy_to_targets(src_client, "staging/app", "1.0", [Target(dst_client, "prod/app", "1.0")] * 2)
    assert not result["changed"] and [t["previous_digest"] for t in result["targets"]] == [digest, digest]
    assert manifest_reads(src_adapter) == [("HEAD", "1.0")]
    assert dst_adapter.writes() == [] and [s.method for s in dst_adapter.sent] == ["HEAD", "HEAD"]


def test_check_mode_writes_nothing_and_mounts_from_no_earlier_target():
    source, target, src_client, _src_adapter, dst_client, dst_adapter = pair()
    image(source, "staging/app", ["1.0"])
    targets = [Target(dst_client, "release/app", "1.0"), Target(dst_client, "mirror/app", "1.0")]
    result = copy_to_targets(src_client, "staging/app", "1.0", targets, check_mode=True)
    assert result["changed"] and dst_adapter.writes() == [] and not target.tags
    # release/app was not written, so mirror/app would stream too rather than mount from it.
    assert [sorted({b["how"] for b in t["blobs"]}) for t in result["targets"]] == [["uploaded"], ["uploaded"]]


def test_a_missing_source_fails_before_any_target_is_asked():
    _source, _target, src_client, _src_adapter, dst_client, dst_adapter = pair()
    with pytest.raises(RegistryError, match="does not exist"):
        copy_to_targets(src_client, "staging/app", "9.9", [Target(dst_client, "prod/app", "1.0")])
    assert dst_adapter.sent == []


# --- the module ------------------------------------------------------------------------------------

def run_manifest_module(monkeypatch, capsys, args: dict, registries: dict) -> tuple[dict, dict]:
    """registry_manifest's main() with one in-memory registry per host; returns its result and, per host, the
    credentials its client was built with."""
    from ansible.module_utils.testing import patch_module_args

    from ansible_collections.regops.registry.plugins.module_utils import common
    from ansible_collections.regops.registry.plugins.modules import registry_manifest

    credentials: dict[str, list] = {}

    def fake_client(location, given, **kwargs):
        credentials.setdefault(location.host, []).append(given)
        client, _adapter = make_client(registries[location.host].route, registry=location.base_url,
                                       credentials=Credentials())
        return client

    monkeypatch.setattr(common, "RegistryClient", fake_client)
    with patch_module_args(args), pytest.raises(SystemExit):
        registry_manifest.main()
    return json.loads(capsys.readouterr().out), credentials


def test_the_module_writes_every_target_each_registry_with_its_own_credentials(monkeypatch, capsys):
    source, other = MemoryRegistry(), MemoryRegistry()
    digest, _raw = image(source, "staging/app", ["1.0"])
    args = {"registry": "src.test", "username": "ci", "password": "ci-secret", "repository": "staging/app",
            "source": "1.0", "targets": [
                {"tag": "stable"},
                {"repository": "prod/app", "tag": "1.0"},
                {"registry": "https://dst.test", "repository": "prod/app", "tag": "1.0",
                 "connection": {"username": "deployer", "password": "deploy-secret"}},
                {"registry": "dst.test", "repository": "prod/app", "tag": "stable"}]}
    result, credentials = run_manifest_module(monkeypatch, capsys, args, {"src.test": source, "dst.test": other})
    assert not result.get("failed"), result
    assert [t["target"] for t in result["targets"]] == [
        "src.test/staging/app:stable", "src.test/prod/app:1.0", "dst.test/prod/app:1.0", "dst.test/prod/app:stable"]
    assert result["digest"] == digest and all(t["digest"] == digest and t["changed"] for t in result["targets"])
    assert other.tags["prod/app"] == {"1.0": digest, "stable": digest}
    assert [len(c) for c in credentials.values()] == [1, 1]  # one client per registry
    assert (credentials["src.test"][0].username, credentials["dst.test"][0].username) == ("ci", "deployer")
    assert "ci-secret" not in json.dumps(result) and "deploy-secret" not in json.dumps(result)
    assert [d["after"] for d in result["diff"]][2] == {"target": "dst.test/prod/app:1.0", "digest": digest}
    assert result["diff"][2]["before"]["digest"] is None


def test_the_module_in_check_mode_reports_every_target_and_writes_nothing(monkeypatch, capsys):
    source = MemoryRegistry()
    digest, _raw = image(source, "staging/app", ["1.0"])
    args = {"registry": "src.test", "repository": "staging/app", "source": "1.0", "_ansible_check_mode": True,
            "targets": [{"tag": "stable"}, {"repository": "prod/app", "tag": "1.0"}]}
    result, _credentials = run_manifest_module(monkeypatch, capsys, args, {"src.test": source})
    assert result["changed"] and [t["changed"] for t in result["targets"]] == [True, True]
    assert source.tags["staging/app"] == {"1.0": digest} and "prod/app" not in source.tags


@pytest.mark.parametrize("targets,message", [
    ([], "names no target"),
    ([{"tag": "1.0"}], "names no repository"),
    ([{"repository": "a/b", "tag": "bad tag"}], "invalid tag"),
    ([{"registry": "dst.test", "repository": "a/b", "tag": "1", "connection": {"token": "x"}},
      {"registry": "dst.test", "repository": "a/c", "tag": "1", "connection": {"token": "y"}}], "different connection"),
])
def test_the_module_refuses_bad_targets_before_any_request(monkeypatch, capsys, targets, message):
    source = MemoryRegistry()
    image(source, "staging/app", ["1.0"])
    sent = []
    source_route = source.route
    source.route = lambda s: sent.append(s) or source_route(s)
    args = {"registry": "src.test", "source": "staging/app:1.0", "targets": targets}
    result, _credentials = run_manifest_module(monkeypatch, capsys, args, {"src.test": source, "dst.test": source})
    assert result["failed"] and message in result["msg"] and sent == []
