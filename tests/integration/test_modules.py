"""The five modules through real ansible-playbook runs against real registries in three modes.

Expected values come from the seeding (raw requests in tests/lab/seed.py), never from the collection's client.
"""

from __future__ import annotations

import json
import os

import pytest

from tests.integration.runner import run_adhoc, run_module, run_playbook
from tests.lab import reliability, seed, transcripts
from tests.lab.registry import free_port, start_registry

BULK = 105
WRITES = ("PUT", "PATCH", "POST", "DELETE")


@pytest.fixture(scope="session")
def world(lab):
    """Seed a lab once per mode; returns what was pushed (the independent truth)."""
    session = seed.LabSession(lab)
    bulk = seed.seed_many_repositories(session, "bulk", BULK)
    labels = {"org.opencontainers.image.title": "it", "com.example.team": "platform"}
    read = {
        "1.0.0": seed.push_image(session, "it/read", "1.0.0", created="2024-01-01T10:00:00Z", labels=labels, seed=1),
        "1.1.0": seed.push_image(session, "it/read", "1.1.0", created="2024-02-01T10:00:00.123456789Z",
                                 labels=labels, seed=2, layer_sizes=(3000, 70)),
        "2.0.0-rc.1": seed.push_image(session, "it/read", "2.0.0-rc.1", created="2023-12-01T10:00:00+02:00", seed=3),
        "multi": seed.push_index(session, "it/read", "multi", with_attestation=True, labels=labels),
        "legacy": seed.push_image(session, "it/read", "legacy", kind="docker", created="2022-05-05T05:05:05Z", seed=4),
    }
    seed.tag_manifest(session, "it/read", "latest", read["1.1.0"]["raw"], read["1.1.0"]["media_type"])
    write = {
        "base": seed.push_image(session, "it/write", "base", seed=20, layer_sizes=(5000, 100)),
        "doomed": seed.push_image(session, "it/write", "doomed", seed=21),
        "index": seed.push_index(session, "it/write", "index", seed=40),
    }
    for tag in ("shared-a", "shared-b"):
        seed.tag_manifest(session, "it/write", tag, write["base"]["raw"], write["base"]["media_type"])
    return {"session": session, "bulk": bulk, "read": read, "write": write}


def test_read_modules(lab, world):
    mark = lab.mark()
    run = run_playbook("read.yml", {"conn": lab.conn(), "repo": "it/read", "index_tag": "multi",
                                    "docker_tag": "legacy"})
    assert run.ok, run.output
    res = run.results
    requests = lab.requests(mark)

    # Catalog: > 100 repositories, in pages of 10 (one GET per page at least), sorted.
    repos = res["catalog"]["repositories"]
    assert set(world["bulk"]) | {"it/read", "it/write"} <= set(repos)
    assert len(repos) > 100 and repos == sorted(repos)
    catalog_gets = [r for r in requests if r.method == "GET" and r.path.startswith("/v2/_catalog") and r.status == 200]
    assert len(catalog_gets) >= 2 * (len(repos) // 10)  # two catalog tasks
    assert all("n=10" in r.path for r in catalog_gets)
    assert res["catalog_filtered"]["repositories"] == sorted(world["bulk"])

    # Tags with details agree with what was pushed.
    read = world["read"]
    expected_digests = {tag: read[tag]["digest"] for tag in read} | {"latest": read["1.1.0"]["digest"]}
    assert res["tag_list"]["tags"] == ["latest", "legacy", "multi", "1.0.0", "1.1.0", "2.0.0-rc.1"]
    images = {i["tag"]: i for i in res["tag_list"]["images"]}
    assert {t: i["digest"] for t, i in images.items()} == expected_digests
    assert images["1.1.0"]["shared_tags"] == ["latest"] and images["latest"]["shared_tags"] == ["1.1.0"]
    assert images["1.0.0"]["created"] == "2024-01-01T10:00:00Z"
    assert images["1.1.0"]["created"] == "2024-02-01T10:00:00.123456Z"
    assert images["2.0.0-rc.1"]["created"] == "2023-12-01T08:00:00Z"
    assert images["1.0.0"]["labels"] == {"org.opencontainers.image.title": "it", "com.example.team": "platform"}
    assert images["2.0.0-rc.1"]["labels"] == {}
    assert images["1.1.0"]["size"] == read["1.1.0"]["size"]
    assert images["1.0.0"]["platforms"] == [{"os": "linux", "architecture": "amd64"}]
    assert images["legacy"]["media_type"] == seed.DOCKER_MANIFEST

    # Sorted by creation date, oldest first.
    assert res["tags_created"]["tags"] == ["legacy", "2.0.0-rc.1", "1.0.0", "1.1.0", "latest", "multi"]

    # OCI index: per-platform facts, attestation left out, size counts every blob once.
    index = res["index"]
    multi = read["multi"]
    assert index["digest"] == multi["digest"] and index["media_type"] == seed.OCI_INDEX
    assert index["image"]["platforms"] == [{"os": "linux", "architecture": "amd64"},
                                           {"os": "linux", "architecture": "arm64", "variant": "v8"}]
    assert [m["digest"] for m in index["image"]["manifests"]] == [c["digest"] for c in multi["children"]]
    assert index["image"]["size"] == sum(c["size"] for c in multi["children"])
    assert index["manifest"]["manifests"][2]["platform"]["os"] == "unknown"

    # Docker schema 2 image.
    docker = res["docker"]
    assert docker["digest"] == read["legacy"]["digest"] and docker["media_type"] == seed.DOCKER_MANIFEST
    assert docker["image"]["created"] == "2022-05-05T05:05:05Z"
    assert docker["image"]["config_digest"] == read["legacy"]["config_digest"]
    assert res["by_digest"]["digest"] == docker["digest"]

    # Reads only.
    assert not [r for r in requests if r.method in WRITES]


def write_vars(lab, world, blob_path):
    write = world["write"]
    return {"conn": lab.conn(), "repo": "it/write", "blob_path": str(blob_path), "mount_target": "it/mounted",
            "mount_digest": write["base"]["layers"][0], "retag_tag": "stable", "retag_source": "base",
            "index_tag": "index", "promote_repo": "it/promoted", "tag_to_delete": "shared-a",
            "digest_to_delete": write["doomed"]["digest"]}


STEPS = ("upload", "mount", "retag", "content", "promote", "delete_tag", "delete_digest")


def test_write_modules_check_mode_then_apply_then_idempotent(lab, world, tmp_path):
    session = world["session"]
    write = world["write"]
    blob = seed.random_bytes(3 * 1024 * 1024 + 17, 99)  # 4 chunks of 1 MiB
    blob_path = tmp_path / "blob.bin"
    blob_path.write_bytes(blob)
    variables = write_vars(lab, world, blob_path)
    before = seed.tag_map(session, "it/write")

    # Check mode: everything reported as a change, and the registry receives no write at all.
    mark = lab.mark()
    run = run_playbook("write.yml", variables, check=True, diff=True)
    assert run.ok, run.output
    assert all(run.results[step]["changed"] for step in STEPS), run.results
    assert lab.count(mark, WRITES) == {}, lab.requests(mark)
    assert seed.tag_map(session, "it/write") == before
    assert run.results["delete_tag"]["deleted"] == [{"type": "tag", "name": "shared-a", "digest": write["base"]["digest"],
                                                     "shared_tags": ["base", "shared-b"], "api": "v2"}]
    assert run.results["delete_digest"]["deleted"][0]["removed_tags"] == ["doomed"]
    assert run.results["mount"]["how"] == "mounted" and run.results["upload"]["how"] == "uploaded"

    # Apply.
    mark = lab.mark()
    run = run_playbook("write.yml", variables, diff=True)
    assert run.ok, run.output
    assert all(run.results[step]["changed"] for step in STEPS), run.results
    res = run.results
    assert res["upload"]["digest"] == seed.sha256(blob) and seed.blob_exists(session, "it/write", seed.sha256(blob))
    assert lab.count(mark, ("PATCH",))["PATCH"] == 4  # chunked
    assert res["mount"]["how"] == "mounted" and seed.blob_exists(session, "it/mounted", variables["mount_digest"])
    assert res["promote"]["digest"] == write["index"]["digest"]
    assert {b["how"] for b in res["promote"]["blobs"]} == {"mounted"}
    after = seed.tag_map(session, "it/write")
    assert after["stable"] == write["base"]["digest"]
    assert "shared-a" not in after and after["shared-b"] == write["base"]["digest"] == after["base"]
    assert "doomed" not in after and seed.head_manifest(session, "it/write", write["doomed"]["digest"]) is None
    assert seed.head_manifest(session, "it/write", write["base"]["digest"]) == write["base"]["digest"]
    assert seed.tag_map(session, "it/promoted") == {"promoted": write["index"]["digest"]}
    assert after["from-content"] == res["content"]["digest"] != write["base"]["digest"]  # compact JSON: new bytes
    # Within one registry no blob bytes are uploaded for the promotion: mounts are POSTs with mount=.
    promote_posts = [r for r in lab.requests(mark) if r.method in ("PATCH", "PUT") and "/it/promoted/blobs/" in r.path]
    assert promote_posts == []
    assert res["delete_tag"]["diff"]["before"]["tags"]["shared-a"] == write["base"]["digest"]
    assert "shared-a" not in res["delete_tag"]["diff"]["after"]["tags"]

    # Second identical run: no change, no write request.
    mark = lab.mark()
    run = run_playbook("write.yml", variables)
    assert run.ok, run.output
    assert not any(run.results[step]["changed"] for step in STEPS), run.results
    assert lab.count(mark, WRITES) == {}, lab.requests(mark)


def test_cross_registry_promotion_and_blob_copy(lab_plain, lab_token):
    """From a plain registry to a token-auth one: only streamed copies, the target digest equals the source's."""
    source = seed.LabSession(lab_plain)
    index = seed.push_index(source, "x/src", "v1", seed=80)
    layer = index["children"][0]["layers"][0]
    variables = {"conn": lab_token.conn(), "source": f"{lab_plain.host}/x/src:v1",
                 "source_connection": {"registry": lab_plain.url}, "blob_source": f"{lab_plain.host}/x/src",
                 "blob_digest": layer}
    run = run_playbook("cross.yml", variables)
    assert run.ok, run.output
    assert run.results["promote"]["changed"] and run.results["promote"]["digest"] == index["digest"]
    assert {b["how"] for b in run.results["promote"]["blobs"]} == {"uploaded"}
    assert run.results["blob"]["how"] == "uploaded"
    target = seed.LabSession(lab_token)
    assert seed.head_manifest(target, "x/dst", "v1") == index["digest"]
    assert seed.blob_exists(target, "x/blobs", layer)
    mark = lab_token.mark()
    again = run_playbook("cross.yml", variables)
    assert again.ok and not again.results["promote"]["changed"] and not again.results["blob"]["changed"]
    assert lab_token.count(mark, WRITES) == {}


def test_credentials_from_docker_config(lab_basic, tmp_path):
    import base64
    user, password = "reader", lab_basic.users["reader"]
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"auths": {lab_basic.host: {"auth": base64.b64encode(f"{user}:{password}".encode()).decode()}}}))
    run = run_adhoc("registry_catalog", {"registry": lab_basic.url, "ca_path": lab_basic.ca_path,
                                         "docker_config": str(config), "filter": "^it/"})
    assert run.rc == 0 and "it/read" in run.results["repositories"], run.output


def test_upload_300mb_in_constant_memory(lab, tmp_path):
    path = tmp_path / "big.bin"
    with open(path, "wb") as handle:
        for i in range(300):
            handle.write(os.urandom(1 << 20) if i % 50 == 0 else bytes([i % 251]) * (1 << 20))
    result, peak_rss = run_module("registry_blob_upload", {**lab.conn(), "repository": "it/big", "path": str(path)})
    assert result.get("changed") is True and result["how"] == "uploaded", result
    assert result["size"] == 300 << 20
    print(f"\n[measure] {lab.mode}: 300 MiB upload, module peak RSS {peak_rss / 2**20:.1f} MiB")
    assert peak_rss < 64 * 1024 * 1024, f"peak RSS {peak_rss / 2**20:.1f} MiB"  # the target: under 64 MiB whatever the size
    session = seed.LabSession(lab)
    assert seed.blob_exists(session, "it/big", result["digest"])
    path.unlink()


def test_unreachable_registry(lab):
    run = run_adhoc("registry_catalog", {**lab.conn(), "registry": f"127.0.0.1:{free_port()}", "retries": 1})
    assert run.rc != 0 and "cannot reach the registry" in run.results["msg"], run.output
    assert "Traceback" not in run.output
    reliability.row("refusing registry", "nothing listening at the registry's address (retries: 1)",
                    f"failed task: \"{run.results['msg']}\"", mode=lab.mode)


def test_wrong_password(lab, world):
    if lab.mode == "plain":
        pytest.skip("no credentials in plain mode")
    before = seed.tag_map(world["session"], "it/read")
    run = run_adhoc("registry_delete", {**lab.conn(), "password": "not-the-password-4242",
                                        "repository": "it/read", "tags": ["1.0.0"]})
    transcripts.add_secret("not-the-password-4242")
    assert run.rc != 0 and "alice" in run.results["msg"], run.output
    assert "not-the-password-4242" not in run.output and "Traceback" not in run.output
    assert seed.tag_map(world["session"], "it/read") == before
    reliability.row("refusing registry", "wrong password", f"failed task: \"{run.results['msg']}\"",
                    mode=lab.mode, tags_lost=len(set(before) - set(seed.tag_map(world["session"], "it/read"))))


def test_token_without_delete_scope(lab_token):
    session = seed.LabSession(lab_token)
    image = seed.push_image(session, "it/scoped", "keep", seed=60)
    seed.tag_manifest(session, "it/scoped", "keep-too", image["raw"], image["media_type"])
    before = reliability.snapshot(lab_token, ["it/scoped"])
    mark = lab_token.mark()
    run = run_adhoc("registry_delete", {**lab_token.conn("pusher"), "repository": "it/scoped", "tags": ["keep"]})
    assert run.rc != 0 and "delete" in run.results["msg"] and "pusher" in run.results["msg"], run.output
    assert "Traceback" not in run.output
    assert not [r for r in lab_token.requests(mark) if r.method in ("PUT", "PATCH", "POST")]
    after = reliability.snapshot(lab_token, ["it/scoped"])
    assert after == before
    reliability.row("refusing registry", "a token without the delete scope",
                    f"failed task: \"{run.results['msg']}\"", mode="token", tags_lost=reliability.lost(before, after))


@pytest.mark.parametrize("flag", ["deletes_disabled", "read_only"])
def test_registry_refusing_deletes_changes_nothing(tmp_path, flag):
    lab = start_registry("plain", tmp_path / "lab", delete_enabled=flag != "deletes_disabled",
                         readonly=False)
    try:
        session = seed.LabSession(lab)
        image = seed.push_image(session, "it/app", "a", seed=70)
        seed.tag_manifest(session, "it/app", "b", image["raw"], image["media_type"])
        if flag == "read_only":
            lab.restart(readonly=True)
        before = reliability.snapshot(lab, ["it/app"])
        mark = lab.mark()
        run = run_adhoc("registry_delete", {**lab.conn(), "repository": "it/app", "tags": ["a"],
                                            "digests": [image["digest"]]})
        assert run.rc != 0, run.output
        assert "deletes disabled or is read-only" in run.results["msg"], run.output
        assert "Traceback" not in run.output
        assert not [r for r in lab.requests(mark) if r.method in ("PUT", "PATCH", "POST")]
        after = reliability.snapshot(lab, ["it/app"])
        assert after == before
        reliability.row("refusing registry", flag.replace("_", " ").replace("read only", "registry in read-only mode"),
                        f"failed task: \"{run.results['msg']}\"", tags_lost=reliability.lost(before, after))
    finally:
        lab.close()


def test_verbose_run_leaks_no_secret(lab, world):
    if lab.mode == "plain":
        pytest.skip("no credentials in plain mode")
    run = run_playbook("read.yml", {"conn": lab.conn(), "repo": "it/read", "index_tag": "multi",
                                    "docker_tag": "legacy"}, verbosity=4)
    assert run.ok, run.output[-3000:]
    assert "Authorization" not in run.output
