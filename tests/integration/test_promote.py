"""The promote role (issue 4) against real registries: same repository, another repository, another registry."""

from __future__ import annotations

import base64
import hashlib
import json
import subprocess

from tests.integration.runner import run_playbook
from tests.lab import seed
from tests.lab.faultproxy import FaultProxy, Rule

WRITES = ("PUT", "PATCH", "POST", "DELETE")


def registries(*labs) -> dict:
    return {lab.host: lab.conn() for lab in labs}


def skopeo_raw_digest(lab, reference: str) -> str:
    """The digest of the manifest bytes skopeo reads back (independent of the collection)."""
    cmd = ["skopeo", "inspect", "--raw", *lab.skopeo_options()]
    raw = subprocess.run(cmd + [f"docker://{reference}"], capture_output=True, check=True, timeout=60).stdout
    return "sha256:" + hashlib.sha256(raw).hexdigest()


def promote(source, targets, regs, check=False, **extra):
    return run_playbook("promote.yml", {"promote_source": source, "promote_targets": targets,
                                        "promote_registries": regs, **extra}, check=check)


def test_promote_within_one_registry_mounts_everything(lab_plain):
    session = seed.LabSession(lab_plain)
    image = seed.push_image(session, "staging/app", "1.4.2", layer_sizes=(4096, 2048, 1024), seed=500)
    host = lab_plain.host
    targets = [f"{host}/staging/app:stable", f"{host}/prod/app:1.4.2", f"{host}/prod/app:stable"]
    regs = registries(lab_plain)

    mark = lab_plain.mark()
    checked = promote(f"{host}/staging/app:1.4.2", targets, regs, check=True)
    assert checked.ok, checked.output
    assert lab_plain.count(mark, WRITES) == {}
    assert seed.head_manifest(session, "prod/app", "1.4.2") is None

    mark = lab_plain.mark()
    run = promote(f"{host}/staging/app:1.4.2", targets, regs)
    assert run.ok, run.output
    result = run.results
    assert result["digest"] == image["digest"] and result["changed"]
    for target in targets:
        assert skopeo_raw_digest(lab_plain, target) == image["digest"]
    by_target = {t["target"]: t for t in result["targets"]}
    assert by_target[f"{host}/staging/app:stable"]["blobs"] == {"mounted": 0, "uploaded": 0, "exists": 0}
    assert by_target[f"{host}/prod/app:1.4.2"]["blobs"]["mounted"] == 4  # config + 3 layers
    requests = lab_plain.requests(mark)
    # No blob bytes: no PATCH, no blob PUT, and every blob POST is a mount (the config blob included).
    assert not [r for r in requests if r.method == "PATCH" or (r.method == "PUT" and "/blobs/" in r.path)]
    mounts = [r for r in requests if r.method == "POST"]
    assert mounts and all("mount=" in r.path and r.status == 201 for r in mounts)
    assert any(image["config_digest"].replace(":", "%3A") in r.path for r in mounts)

    mark = lab_plain.mark()
    again = promote(f"{host}/staging/app:1.4.2", targets, regs)
    assert again.ok and not again.results["changed"]
    assert lab_plain.count(mark, WRITES) == {}


def test_promote_index_by_digest_to_another_registry(lab_plain, lab_token):
    source_session = seed.LabSession(lab_plain)
    index = seed.push_index(source_session, "ci/app", "build-77", seed=600, with_attestation=True)
    source = f"{lab_plain.host}/ci/app@{index['digest']}"
    targets = [f"{lab_token.host}/release/app:2.0.0", f"{lab_token.host}/release/app:latest",
               f"{lab_token.host}/mirror/app:2.0.0"]
    regs = registries(lab_plain, lab_token)

    mark = lab_token.mark()
    checked = promote(source, targets, regs, check=True)
    assert checked.ok, checked.output
    assert lab_token.count(mark, WRITES) == {}

    source_mark = lab_plain.mark()
    run = promote(source, targets, regs)
    assert run.ok, run.output
    assert run.results["digest"] == index["digest"]
    # One module call for the three targets: the index and its children are read from the source once.
    reads = [r for r in lab_plain.requests(source_mark) if r.method == "GET" and "/manifests/" in r.path]
    assert len(reads) == 1 + len(index["manifest"]["manifests"]), reads  # the index, its children, its attestation
    for target in targets:
        assert skopeo_raw_digest(lab_token, target) == index["digest"]
    first, second, third = run.results["targets"]
    assert first["blobs"]["uploaded"] > 0 and first["manifests_written"] == 4  # 3 children, then the index
    assert second["blobs"]["uploaded"] == 0  # the second target found every blob already there
    # The third target, in another repository of the target registry, mounts from the first: nothing streamed twice.
    assert third["blobs"]["uploaded"] == 0 and third["blobs"]["mounted"] == first["blobs"]["uploaded"]
    for child in index["children"]:
        assert seed.blob_exists(seed.LabSession(lab_token), "release/app", child["config_digest"])

    mark, source_mark = lab_token.mark(), lab_plain.mark()
    again = promote(source, targets, regs)
    assert again.ok and not again.results["changed"]
    assert lab_token.count(mark, WRITES) == {}
    # Every target is there already: the source is asked with one HEAD, and nothing is read.
    assert not [r for r in lab_plain.requests(source_mark) if r.method == "GET" and "/manifests/" in r.path]


def test_promote_mounts_from_an_earlier_promotion_on_the_target_registry(lab_plain, lab_token):
    """A later run (another repository of the target registry) mounts what an earlier run streamed there."""
    image = seed.push_image(seed.LabSession(lab_plain), "ci/web", "9", layer_sizes=(8192, 4096), seed=700)
    source, regs = f"{lab_plain.host}/ci/web:9", registries(lab_plain, lab_token)
    first = promote(source, [f"{lab_token.host}/canary/web:9"], regs)
    assert first.ok, first.output
    assert first.results["targets"][0]["blobs"]["uploaded"] == 3  # config + 2 layers streamed

    extra = {"promote_mount_from": ["missing/repo", "canary/web"]}
    checked = promote(source, [f"{lab_token.host}/prod/web:9"], regs, check=True, **extra)
    assert checked.ok and checked.results["targets"][0]["blobs"]["mounted"] == 3
    mark = lab_token.mark()
    run = promote(source, [f"{lab_token.host}/prod/web:9"], regs, **extra)
    assert run.ok, run.output
    assert run.results["targets"][0]["blobs"] == {"mounted": 3, "uploaded": 0, "exists": 0}
    assert lab_token.blob_uploads(mark) == []  # not one blob byte sent (the config blob included)
    assert skopeo_raw_digest(lab_token, f"{lab_token.host}/prod/web:9") == image["digest"]


def test_promote_rejects_a_target_without_tag(lab_plain):
    run = promote(f"{lab_plain.host}/x/y:1", [f"{lab_plain.host}/x/z@sha256:{'a' * 64}"], registries(lab_plain))
    assert not run.ok and "must be references with a tag" in run.output


def test_promote_reaches_the_source_registry_with_its_whole_connection(lab_basic, lab_plain, tmp_path):
    """The source's entry of promote_registries serves the streamed copy whole: its credentials from a Docker config
    file of its own, its retries (the target allows none), its timeout."""
    image = seed.push_image(seed.LabSession(lab_basic), "ci/edge", "5", layer_sizes=(4096, 2048), seed=800)
    with FaultProxy(lab_basic.url, upstream_ca=lab_basic.ca_path) as proxy:
        login = base64.b64encode(f"alice:{lab_basic.users['alice']}".encode()).decode()
        (tmp_path / "config.json").write_text(json.dumps({"auths": {proxy.host: {"auth": login}}}))
        flaky = proxy.add(Rule(action="status", method="GET", path=r"/blobs/sha256:", status=503, times=2))
        regs = {proxy.host: {"registry": proxy.url, "docker_config": str(tmp_path / "config.json"),
                             "retries": 2, "timeout": 30},
                lab_plain.host: {**lab_plain.conn(), "retries": 0}}
        run = promote(f"{proxy.host}/ci/edge:5", [f"{lab_plain.host}/edge/app:5"], regs)
        assert run.ok, run.output
        assert run.results["targets"][0]["blobs"]["uploaded"] == 3  # config + 2 layers, streamed from the source
        assert flaky.hits == 2  # the source's own retries, not the target's none
        blob_reads = [s for s in proxy.seen if s.method == "GET" and "/blobs/" in s.path]
        assert blob_reads and all(s.headers.get("Authorization", "").startswith("Basic ") for s in blob_reads)
    assert skopeo_raw_digest(lab_plain, f"{lab_plain.host}/edge/app:5") == image["digest"]
