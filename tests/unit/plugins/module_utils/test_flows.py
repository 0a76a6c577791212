"""uploads, copy and deletion against an in-memory registry: the paths a real lab cannot easily produce."""

from __future__ import annotations

import json

import pytest

from ansible_collections.regops.registry.plugins.module_utils import _transport
from ansible_collections.regops.registry.plugins.module_utils import client as client_module
from ansible_collections.regops.registry.plugins.module_utils import deletion
from ansible_collections.regops.registry.plugins.module_utils.copy import copy_image
from ansible_collections.regops.registry.plugins.module_utils.errors import RegistryError
from ansible_collections.regops.registry.plugins.module_utils.reference import OCI_INDEX, OCI_MANIFEST
from ansible_collections.regops.registry.plugins.module_utils.uploads import file_digest, transfer_blob, upload_file
from tests.unit.plugins.module_utils.fake_registry import MemoryRegistry, make_client
from tests.unit.plugins.module_utils.fake_registry import error as fake_error

WRITES = ("PUT", "PATCH", "POST", "DELETE")


@pytest.fixture(autouse=True)
def no_sleep(monkeypatch):
    monkeypatch.setattr(_transport.time, "sleep", lambda s: None)


def image(registry: MemoryRegistry, repo: str, tags, seed: str = "x"):
    config = registry.add_blob(repo, json.dumps({"architecture": "amd64", "os": "linux", "seed": seed}).encode())
    layer = registry.add_blob(repo, f"layer-{seed}".encode() * 100)
    manifest = {"schemaVersion": 2, "mediaType": OCI_MANIFEST,
                "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config,
                           "size": len(registry.blobs[repo][config])},
                "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": layer,
                            "size": len(registry.blobs[repo][layer])}]}
    raw = json.dumps(manifest).encode()
    digest = registry.add_manifest(repo, raw and digest_of(raw), raw, OCI_MANIFEST)
    for tag in tags:
        registry.add_manifest(repo, tag, raw, OCI_MANIFEST)
    return digest, raw


def digest_of(raw: bytes) -> str:
    import hashlib
    return "sha256:" + hashlib.sha256(raw).hexdigest()


@pytest.mark.parametrize("mode,method", [("none", "throwaway"), ("native", "native"), ("greedy", "native")])
def test_tag_delete_keeps_siblings(mode, method):  # EP-18, RG-03
    registry = MemoryRegistry(tag_delete=mode)
    digest, _raw = image(registry, "a", ["keep", "drop"])
    client, adapter = make_client(registry.route)
    warnings = []
    client._warn = warnings.append
    plan = deletion.plan_delete(client, "a", tags=["drop"])
    result = deletion.apply_delete(client, "a", plan)
    assert result[0]["method"] == method and result[0]["shared_tags"] == ["keep"]
    assert registry.tags["a"] == {"keep": digest}
    assert digest in registry.manifests["a"]
    if mode == "greedy":  # the registry took the sibling too: restored, and reported
        assert "restored" in warnings[0]
    if mode == "none":  # the throwaway manifest is gone again
        assert set(registry.manifests["a"]) == {digest}
    first_write = next(s for s in adapter.sent if s.method in WRITES)
    assert first_write.method == "DELETE" and deletion.PROBE_DIGEST in first_write.url


def test_deletes_disabled_stops_before_any_write():  # EP-19
    registry = MemoryRegistry(deletes=False)
    digest, _raw = image(registry, "a", ["keep", "drop"])
    client, adapter = make_client(registry.route)
    plan = deletion.plan_delete(client, "a", tags=["drop"], digests=[digest])
    with pytest.raises(deletion.DeletesDisabled, match="deletes disabled"):
        deletion.apply_delete(client, "a", plan)
    assert [s.method for s in adapter.writes()] == ["DELETE"]  # the probe only
    assert registry.tags["a"] == {"keep": digest, "drop": digest}


def test_digest_delete_names_every_tag_and_is_idempotent():  # EP-17
    registry = MemoryRegistry()
    digest, _raw = image(registry, "a", ["x", "y"])
    client = make_client(registry.route)[0]
    plan = deletion.plan_delete(client, "a", digests=[digest], tags=["x"])
    assert deletion.predicted(plan) == [{"type": "digest", "name": digest, "digest": digest, "removed_tags": ["x", "y"],
                                        "api": "v2"}]
    assert plan.absent == [] and plan.tags == []  # x goes with its digest, named in removed_tags
    deletion.apply_delete(client, "a", plan)
    again = deletion.plan_delete(client, "a", digests=[digest])
    assert not again.changes and again.absent == [{"type": "digest", "name": digest}]


def test_chunked_upload_resumes_after_interruption(tmp_path):  # EP-28, EP-29
    registry = MemoryRegistry(fail_patch={2})
    path = tmp_path / "blob"
    path.write_bytes(bytes(range(256)) * 4096 * 3)  # 3 MiB
    client, adapter = make_client(registry.route)
    warnings = []
    client._warn = warnings.append
    result = upload_file(client, "a", str(path), chunk_size=1 << 20)
    digest, size = file_digest(str(path))
    assert (result.digest, result.how) == (digest, "uploaded") and registry.blobs["a"][digest] == path.read_bytes()
    assert "resuming at byte" in warnings[0]
    assert len([s for s in adapter.sent if s.method == "GET" and "/blobs/uploads/" in s.url]) == 1  # one status request
    again = upload_file(client, "a", str(path), chunk_size=1 << 20)  # EP-32
    assert again.how == "exists" and not again.changed


def test_upload_with_a_given_digest_hashes_alongside_the_chunks(tmp_path):
    registry = MemoryRegistry()
    path = tmp_path / "blob"
    path.write_bytes(bytes(range(256)) * 4096 * 3)  # 3 MiB: three chunks
    digest, size = file_digest(str(path))
    client, adapter = make_client(registry.route)
    result = upload_file(client, "a", str(path), digest=digest, chunk_size=1 << 20)
    assert (result.digest, result.size, result.how) == (digest, size, "uploaded")
    assert registry.blobs["a"][digest] == path.read_bytes()
    assert [s.method for s in adapter.sent] == ["GET", "HEAD", "POST", "PATCH", "PATCH", "PATCH", "PUT"]
    sent = len(adapter.sent)
    again = upload_file(client, "a", str(path), digest=digest, chunk_size=1 << 20)  # present: the file is still checked
    assert again.how == "exists" and [s.method for s in adapter.sent[sent:]] == ["HEAD"]


def test_a_resumed_upload_given_its_digest_hashes_each_byte_once_and_reads_the_file_once(tmp_path, monkeypatch):
    """Half a PATCH stored, then a 503: the resume sends again from the registry's offset, and the running hash skips
    the bytes it already saw (hashed twice, the digest would be wrong and the upload refused)."""
    from ansible_collections.regops.registry.plugins.module_utils import uploads

    registry = MemoryRegistry(fail_patch={2})
    path = tmp_path / "blob"
    path.write_bytes(bytes(range(256)) * 4096 * 3)  # 3 MiB
    digest, size = file_digest(str(path))
    monkeypatch.setattr(uploads, "file_digest", lambda *_a: pytest.fail("the file was read a second time to hash it"))
    client, _adapter = make_client(registry.route)
    client._warn = lambda _message: None
    result = upload_file(client, "a", str(path), digest=digest, chunk_size=1 << 20)
    assert (result.digest, result.size, result.how) == (digest, size, "uploaded")
    assert registry.blobs["a"][digest] == path.read_bytes()


def test_the_running_digest_skips_bytes_fed_again_and_hashes_the_file_after_a_gap(tmp_path):
    from ansible_collections.regops.registry.plugins.module_utils.uploads import RunningDigest

    path = tmp_path / "blob"
    path.write_bytes(b"abcdef")
    expected = file_digest(str(path))[0]
    running = RunningDigest(str(path))
    for offset, data in ((0, b"abc"), (0, b"abc"), (2, b"cde"), (5, b"f")):  # a retry, then a resume mid-chunk
        running.feed(offset, data)
    assert running.digest(6) == expected
    gapped = RunningDigest(str(path))
    gapped.feed(0, b"ab")
    gapped.feed(4, b"ef")  # bytes after a gap are not hashed in that order: the file is hashed whole instead
    assert gapped.digest(6) == expected


@pytest.mark.parametrize("given_digest", [False, True])
def test_chunks_grow_to_the_minimum_the_registry_announces(tmp_path, given_digest):
    """ECR: non-final parts of at least 5 MiB (OCI-Chunk-Min-Length on the POST), PATCH answered 201."""
    registry = MemoryRegistry(chunk_min=5 << 20)
    path = tmp_path / "blob"
    path.write_bytes(bytes(range(256)) * 4096 * 12)  # 12 MiB
    digest, size = file_digest(str(path))
    client, adapter = make_client(registry.route)
    result = upload_file(client, "a", str(path), digest=digest if given_digest else None, chunk_size=2 << 20)
    assert (result.digest, result.how) == (digest, "uploaded") and registry.blobs["a"][digest] == path.read_bytes()
    patches = [len(s.body) for s in adapter.sent if s.method == "PATCH"]
    assert patches == [5 << 20, 5 << 20, 2 << 20]


def test_small_chunks_refused_at_the_close_are_sent_again_in_5_mib_parts(tmp_path):
    """ECR as documented: no minimum announced, the closing PUT refused (400) after parts under 5 MiB."""
    registry = MemoryRegistry(chunk_min=5 << 20, announce_chunk_min=False)
    path = tmp_path / "blob"
    path.write_bytes(bytes(range(256)) * 4096 * 12)  # 12 MiB
    digest, _size = file_digest(str(path))
    client, adapter = make_client(registry.route)
    warnings = []
    client._warn = warnings.append
    result = upload_file(client, "a", str(path), chunk_size=4 << 20)
    assert (result.digest, result.how) == (digest, "uploaded") and registry.blobs["a"][digest] == path.read_bytes()
    methods = [s.method for s in adapter.sent if s.method in WRITES]
    assert methods == ["POST", "PATCH", "PATCH", "PATCH", "PUT", "DELETE", "POST", "PATCH", "PATCH", "PATCH", "PUT"]
    assert [len(s.body) for s in adapter.sent if s.method == "PATCH"][3:] == [5 << 20, 5 << 20, 2 << 20]
    assert "5242880-byte chunks" in warnings[0]


def test_a_digest_refusal_at_the_close_is_not_sent_again(tmp_path):
    registry = MemoryRegistry(chunk_min=5 << 20, announce_chunk_min=False)
    path = tmp_path / "blob"
    path.write_bytes(b"y" * (6 << 20))
    original = registry.route

    def corrupt_close(sent):
        if sent.method == "PUT" and "/blobs/uploads/" in sent.url:
            return fake_error(400, "DIGEST_INVALID")
        return original(sent)
    client, adapter = make_client(corrupt_close)
    with pytest.raises(RegistryError):
        upload_file(client, "a", str(path), chunk_size=2 << 20)
    assert [s.method for s in adapter.sent if s.method in ("POST", "PUT")] == ["POST", "PUT"]


def test_streamed_copy_to_a_registry_with_a_chunk_minimum_is_one_put():
    registry = MemoryRegistry(chunk_min=5 << 20, mount=False)
    blob = registry.add_blob("src", bytes(range(256)) * 4096 * 7)  # 7 MiB
    source = make_client(registry.route)[0]
    target, adapter = make_client(registry.route, registry="https://other.test")
    result = transfer_blob(source, "src", target, "dst", blob, len(registry.blobs["src"][blob]))
    assert result.how == "uploaded" and registry.blobs["dst"][blob] == registry.blobs["src"][blob]
    assert not [s for s in adapter.sent if s.method == "PATCH"]


def test_upload_with_a_wrong_digest_is_refused_and_cancelled(tmp_path):
    registry = MemoryRegistry()
    path = tmp_path / "blob"
    path.write_bytes(b"x" * (3 << 20))
    wrong = "sha256:" + "0" * 64
    client, adapter = make_client(registry.route)
    with pytest.raises(RegistryError, match="hashes to sha256:.*not the expected sha256:0000"):
        upload_file(client, "a", str(path), digest=wrong, chunk_size=1 << 20)
    assert not registry.blobs.get("a") and not registry.uploads  # nothing stored, the session cancelled
    assert adapter.sent[-1].method == "DELETE" and "/blobs/uploads/" in adapter.sent[-1].url
    assert not [s for s in adapter.sent if s.method == "PUT"]  # never closed under the wrong digest


def test_mount_declined_streams_through_the_session():  # EP-31
    registry = MemoryRegistry(mount=False)
    data = b"blob" * 1000
    digest = registry.add_blob("src", data)
    client = make_client(registry.route)[0]
    result = transfer_blob(client, "src", client, "dst", digest, len(data))
    assert result.how == "uploaded" and registry.blobs["dst"][digest] == data


def two_registries():
    source, target = MemoryRegistry(), MemoryRegistry()
    src_client, src_adapter = make_client(source.route, registry="https://src.test")
    dst_client, dst_adapter = make_client(target.route, registry="https://dst.test")
    return source, target, src_client, dst_client, src_adapter, dst_adapter


def test_cross_registry_mount_from_candidate_sends_no_bytes():
    source, target, src_client, dst_client, src_adapter, dst_adapter = two_registries()
    data = b"layer" * 1000
    digest = source.add_blob("staging/app", data)
    target.add_blob("prod/app-previous", data)
    checked = transfer_blob(src_client, "staging/app", dst_client, "prod/app", digest, len(data), check_mode=True,
                            mount_from=("nothere", "prod/app-previous"))
    assert (checked.how, checked.source) == ("mounted", "prod/app-previous") and dst_adapter.writes() == []
    result = transfer_blob(src_client, "staging/app", dst_client, "prod/app", digest, len(data),
                           mount_from=("nothere", "prod/app-previous"))
    assert (result.how, result.source) == ("mounted", "prod/app-previous")
    assert target.blobs["prod/app"][digest] == data and not target.uploads  # the first miss's session was cancelled
    assert not [s for s in src_adapter.sent if "/blobs/sha256" in s.url and s.method == "GET"]  # nothing read
    assert not [s for s in dst_adapter.sent if s.method in ("PUT", "PATCH")]


def test_cross_registry_mount_miss_streams_through_its_session():
    source, target, src_client, dst_client, _src_adapter, dst_adapter = two_registries()
    data = b"layer" * 1000
    digest = source.add_blob("staging/app", data)
    result = transfer_blob(src_client, "staging/app", dst_client, "prod/app", digest, len(data), mount_from=("prod/old",))
    assert result.how == "uploaded" and target.blobs["prod/app"][digest] == data
    assert [s.method for s in dst_adapter.writes()] == ["POST", "PUT"]  # the refused mount carried the upload


def test_failed_copy_cancels_the_session():  # EP-33, EP-24
    registry = MemoryRegistry(mount=False)
    digest = registry.add_blob("src", b"original")
    registry.blobs["src"][digest] = b"tampered"  # the stored bytes no longer match their digest
    client, adapter = make_client(registry.route)
    with pytest.raises(Exception):
        transfer_blob(client, "src", client, "dst", digest, 8)
    assert digest not in registry.blobs.get("dst", {})
    assert any(s.method == "DELETE" and "/blobs/uploads/" in s.url for s in adapter.sent) or not registry.uploads


def test_copy_within_registry_mounts_config_too_and_is_idempotent():  # EP-14, EP-16
    registry = MemoryRegistry()
    digest, _raw = image(registry, "staging/app", ["1.0"])
    client, adapter = make_client(registry.route)
    result = copy_image(client, "staging/app", "1.0", client, "prod/app", "1.0")
    assert result["digest"] == digest and {b["how"] for b in result["blobs"]} == {"mounted"} and len(result["blobs"]) == 2
    assert not [s for s in adapter.sent if s.method == "PATCH" or (s.method == "PUT" and "/blobs/" in s.url)]
    writes = len(adapter.writes())
    assert not copy_image(client, "staging/app", "1.0", client, "prod/app", "1.0")["changed"]
    assert len(adapter.writes()) == writes


def test_index_children_written_before_index_and_check_mode_writes_nothing():  # EP-14
    registry = MemoryRegistry()
    child_a, raw_a = image(registry, "src", [], seed="a")
    child_b, raw_b = image(registry, "src", [], seed="b")
    index = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [
        {"mediaType": OCI_MANIFEST, "digest": child_a, "size": len(raw_a), "platform": {"os": "linux", "architecture": "amd64"}},
        {"mediaType": OCI_MANIFEST, "digest": child_b, "size": len(raw_b), "platform": {"os": "linux", "architecture": "arm64"}}]}
    index_raw = json.dumps(index).encode()
    registry.add_manifest("src", "multi", index_raw, OCI_INDEX)
    client, adapter = make_client(registry.route)
    checked = copy_image(client, "src", "multi", client, "dst", "multi", check_mode=True)
    assert checked["changed"] and adapter.writes() == []
    copy_image(client, "src", "multi", client, "dst", "multi")
    puts = [s.url.rsplit("/", 1)[-1] for s in adapter.sent if s.method == "PUT" and "/manifests/" in s.url]
    assert set(puts[:2]) == {child_a, child_b} and puts[2] == "multi"
    assert registry.tags["dst"]["multi"] == digest_of(index_raw)


def test_protected_tag_on_a_doomed_digest_stops_everything():
    registry = MemoryRegistry()
    digest, _raw = image(registry, "a", ["old", "moved-here"])
    client, adapter = make_client(registry.route)
    with pytest.raises(deletion.ProtectedTag, match="moved-here, which must stay"):
        deletion.plan_delete(client, "a", digests=[digest], protect=["moved-here"])
    assert adapter.writes() == [] and registry.tags["a"] == {"old": digest, "moved-here": digest}


def one_child_index(registry: MemoryRegistry, repo: str, tag: str) -> tuple[str, str]:
    """An untagged image and an index of it under ``tag``: (child digest, index digest)."""
    child, raw = image(registry, repo, [], seed="c")
    index = json.dumps({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [
        {"mediaType": OCI_MANIFEST, "digest": child, "size": len(raw)}]}).encode()
    return child, registry.add_manifest(repo, tag, index, OCI_INDEX)


def test_tagged_digests_are_deleted_before_untagged_ones():
    registry = MemoryRegistry()
    child, index_digest = one_child_index(registry, "a", "multi")
    client, adapter = make_client(registry.route)
    plan = deletion.plan_delete(client, "a", digests=[child, index_digest], concurrency=1)
    deletion.apply_delete(client, "a", plan, concurrency=1)
    deletes = [s.url.rsplit("/", 1)[-1] for s in adapter.sent if s.method == "DELETE" and deletion.PROBE_DIGEST not in s.url]
    assert deletes == [index_digest, child]


def test_tags_left_dangling_by_a_racing_registry_are_cleared():
    registry = MemoryRegistry(racing_deletes=2)  # the marker of "drop", then the digest of old+older
    keep, _raw = image(registry, "a", ["keep", "drop"], seed="k")
    old, _raw = image(registry, "a", ["old", "older"], seed="o")
    client, adapter = make_client(registry.route)
    warnings = []
    client._warn = warnings.append
    plan = deletion.plan_delete(client, "a", tags=["drop"], digests=[old])
    deletion.apply_delete(client, "a", plan)
    assert registry.tags["a"] == {"keep": keep}
    assert set(registry.manifests["a"]) == {keep}  # the throwaway copies are gone too
    assert "left drop, old, older behind" in warnings[-1]


def test_throwaway_markers_are_all_written_before_any_is_deleted():
    registry = MemoryRegistry()
    digest, _raw = image(registry, "a", ["keep", "t1", "t2", "t3"])
    client, adapter = make_client(registry.route)
    deletion.apply_delete(client, "a", deletion.plan_delete(client, "a", tags=["t1", "t2", "t3"]))
    writes = [s.method for s in adapter.writes() if deletion.PROBE_DIGEST not in s.url
              and not (s.method == "DELETE" and "/manifests/t1" in s.url)]  # the native tag DELETE, refused (400)
    assert writes == ["PUT"] * 3 + ["DELETE"] * 3
    assert registry.tags["a"] == {"keep": digest}


def referrer(registry: MemoryRegistry, repo: str, subject: str, seed: str) -> str:
    config = registry.add_blob(repo, b"{}")
    layer = registry.add_blob(repo, f"signature-{seed}".encode())
    raw = json.dumps({"schemaVersion": 2, "mediaType": OCI_MANIFEST, "artifactType": "application/vnd.dev.sigstore.bundle",
                      "config": {"mediaType": "application/vnd.oci.empty.v1+json", "digest": config, "size": 2},
                      "layers": [{"mediaType": "application/octet-stream", "digest": layer, "size": 11 + len(seed)}],
                      "subject": {"mediaType": OCI_MANIFEST, "digest": subject, "size": 1}}).encode()
    return registry.add_manifest(repo, digest_of(raw), raw, OCI_MANIFEST)


@pytest.mark.parametrize("api", [True, False])
def test_referrers_go_with_their_image(api):
    from ansible_collections.regops.registry.plugins.module_utils.facts import FactsGatherer
    from ansible_collections.regops.registry.plugins.module_utils.retention import make_policy, plan_retention

    registry = MemoryRegistry(referrers_api=api)
    old, _raw = image(registry, "a", ["old"], seed="o")
    new, _raw = image(registry, "a", ["new"], seed="n")
    signature = referrer(registry, "a", old, "s")
    countersignature = referrer(registry, "a", signature, "c")
    kept_signature = referrer(registry, "a", new, "k")
    client, adapter = make_client(registry.route)
    images = FactsGatherer(client, 4).tag_details("a", ["new", "old"], referrers=True)
    asked = [s for s in adapter.sent if "/referrers/" in s.url]
    if not api:  # one request tells there is no API; nothing else is asked
        assert len(asked) == 1 and all(i["referrers"] == [] for i in images)
        return
    by_tag = {i["tag"]: i for i in images}
    assert by_tag["old"]["referrers"] == [signature, countersignature] and by_tag["new"]["referrers"] == [kept_signature]
    plan = plan_retention(images, make_policy(keep_latest=0, keep_tags=["^new$"]))
    assert plan["keep_tags"] == ["new"]
    assert set(plan["delete_digests"]) == {old, signature, countersignature} and kept_signature not in plan["delete_digests"]


def test_a_tag_that_cannot_be_marked_puts_the_others_back_and_deletes_nothing():
    from tests.unit.plugins.module_utils.fake_registry import error

    registry = MemoryRegistry()
    digest, _raw = image(registry, "a", ["keep", "t1", "t2", "t3"])

    def route(sent):
        if sent.method == "PUT" and sent.url.endswith("/manifests/t2"):
            return error(400, "MANIFEST_INVALID", "refused")
        return registry.route(sent)

    client, adapter = make_client(route)
    plan = deletion.plan_delete(client, "a", tags=["t1", "t2", "t3"])
    with pytest.raises(Exception, match="MANIFEST_INVALID|refused"):
        deletion.apply_delete(client, "a", plan, concurrency=1)
    assert registry.tags["a"] == {"keep": digest, "t1": digest, "t2": digest, "t3": digest}  # every tag as it was
    assert not [s for s in adapter.sent if s.method == "DELETE" and "/manifests/sha256:" in s.url
                and deletion.PROBE_DIGEST not in s.url]


def corrupting(route, path_part: str, times: int):
    """A route that flips one byte in the body of the first ``times`` GETs whose URL contains ``path_part``."""
    state = {"left": times}

    def wrapped(sent):
        answer = route(sent)
        if sent.method == "GET" and path_part in sent.url and state["left"] > 0 and answer.body:
            state["left"] -= 1
            body = bytearray(answer.body)
            body[len(body) // 2] ^= 1
            answer = type(answer)(answer.status, answer.headers, bytes(body))
        return answer
    return wrapped


@pytest.mark.parametrize("corrupted", [1, 2])
def test_a_source_blob_that_does_not_verify_is_copied_again_in_a_new_session(corrupted):
    source, target = MemoryRegistry(), MemoryRegistry()
    data = b"layer" * 1000
    digest = source.add_blob("staging/app", data)
    src_client, src_adapter = make_client(corrupting(source.route, "/blobs/sha256", corrupted), "https://src.test")
    dst_client, dst_adapter = make_client(target.route, registry="https://dst.test")
    result = transfer_blob(src_client, "staging/app", dst_client, "prod/app", digest, len(data))
    assert result.how == "uploaded" and target.blobs["prod/app"][digest] == data
    assert len([s for s in src_adapter.sent if s.method == "GET" and "/blobs/" in s.url]) == corrupted + 1
    cancels = [s for s in dst_adapter.sent if s.method == "DELETE" and "/blobs/uploads/" in s.url]
    assert len(cancels) == corrupted and not target.uploads  # each abandoned session was cancelled


def test_a_source_blob_that_never_verifies_is_never_committed():
    source, target = MemoryRegistry(), MemoryRegistry()
    data = b"layer" * 1000
    digest = source.add_blob("staging/app", data)
    src_client, src_adapter = make_client(corrupting(source.route, "/blobs/sha256", 99), "https://src.test")
    dst_client, _dst_adapter = make_client(target.route, registry="https://dst.test")
    with pytest.raises(client_module.TransientReadError, match="digest mismatch"):
        transfer_blob(src_client, "staging/app", dst_client, "prod/app", digest, len(data))
    assert digest not in target.blobs.get("prod/app", {}) and not target.uploads
    assert len([s for s in src_adapter.sent if s.method == "GET" and "/blobs/" in s.url]) == src_client.retries + 1


@pytest.mark.parametrize("what", ["/manifests/", "/blobs/sha256"])
def test_a_manifest_or_config_that_does_not_verify_is_read_again(what):
    registry = MemoryRegistry()
    digest, raw = image(registry, "app", ["v1"])
    client, adapter = make_client(corrupting(registry.route, what, 1))
    manifest = client.get_manifest("app", "v1")
    assert manifest.digest == digest and manifest.raw == raw
    config = json.loads(raw)["config"]["digest"]
    assert client.get_blob_bytes("app", config) == registry.blobs["app"][config]
    assert len([s for s in adapter.sent if s.method == "GET" and what in s.url]) == 2  # read twice: the first copy did not verify
    broken, _adapter = make_client(corrupting(registry.route, what, 99))
    with pytest.raises(client_module.TransientReadError, match="digest mismatch"):
        broken.get_manifest("app", digest) if what == "/manifests/" else broken.get_blob_bytes("app", config)


def pushing_on_first_delete(registry: MemoryRegistry, repo: str, tag: str, digest: str):
    """A route that, on the first DELETE it sees (the delete probe), tags ``digest`` as CI would, then answers."""
    state = {"pushed": False}

    def route(sent):
        if sent.method == "DELETE" and not state["pushed"]:
            state["pushed"] = True
            registry.tags[repo][tag] = digest
        return registry.route(sent)

    return route


def kept_old_older():
    """A registry with ``keep`` and ``drop`` on one image, ``old`` and ``older`` on two others; the tags as seen."""
    registry = MemoryRegistry()
    digests = tuple(image(registry, "a", tags, seed=seed)[0]
                    for tags, seed in ((["keep", "drop"], "k"), (["old"], "o"), (["older"], "p")))
    return registry, digests, dict(registry.tags["a"])


def test_a_tag_pushed_onto_a_doomed_digest_after_planning_refuses_that_delete_only():
    registry, (keep, old, older), seen = kept_old_older()
    client, adapter = make_client(pushing_on_first_delete(registry, "a", "hotfix", old))
    warnings = []
    client._warn = warnings.append
    plan = deletion.plan_delete(client, "a", tags=["drop"], digests=[old, older], expected=seen)
    assert plan.refused == []  # nothing changed yet when planning
    deleted = deletion.apply_delete(client, "a", plan)
    assert registry.tags["a"] == {"keep": keep, "old": old, "hotfix": old}
    assert old in registry.manifests["a"] and older not in registry.manifests["a"]
    assert [(d["type"], d["name"]) for d in deleted] == [("tag", "drop"), ("digest", older)]
    (refused,) = plan.refused
    assert refused["name"] == old and refused["unexpected_tags"] == ["hotfix"] and refused["expected_tags"] == ["old"]
    assert "hotfix" in warnings[-1] and old in warnings[-1]


def test_a_kept_tag_moved_onto_a_doomed_digest_after_the_facts_is_read_again_and_survives():
    """The facts (expected) are minutes old at 100,000 tags: just before the digest DELETEs every tag that stays is
    read again, so a kept tag moved onto a doomed digest (a rollback) refuses that delete; the tags going with the
    doomed digests are not read again."""
    registry, (keep, old, older), seen = kept_old_older()
    client, adapter = make_client(pushing_on_first_delete(registry, "a", "keep", old))
    plan = deletion.plan_delete(client, "a", tags=["drop"], digests=[old, older], expected=seen)
    deletion.apply_delete(client, "a", plan)
    assert registry.tags["a"] == {"keep": old, "old": old}  # the rollback kept its tag and its image
    assert old in registry.manifests["a"] and older not in registry.manifests["a"]
    assert [r["name"] for r in plan.refused] == [old] and plan.refused[0]["unexpected_tags"] == ["keep"]
    heads = {r.url.rsplit("/", 1)[-1] for r in adapter.sent if r.method == "HEAD" and "/manifests/" in r.url}
    assert "keep" in heads and not heads & {"old", "older"}
    assert keep not in registry.tags["a"].values()


def test_without_expectations_a_digest_goes_with_the_tags_it_took():
    registry = MemoryRegistry()
    old, _raw = image(registry, "a", ["old"], seed="o")
    image(registry, "a", ["keep"], seed="k")
    client = make_client(pushing_on_first_delete(registry, "a", "hotfix", old))[0]
    deleted = deletion.apply_delete(client, "a", deletion.plan_delete(client, "a", digests=[old]))
    assert deleted[0]["name"] == old and "hotfix" not in registry.tags["a"]


def test_a_kept_tag_seen_on_a_doomed_digest_when_planning_refuses_it_and_its_children():
    registry = MemoryRegistry()
    child, index_digest = one_child_index(registry, "a", "multi")
    seen = dict(registry.tags["a"])
    registry.tags["a"]["rollback"] = index_digest  # moved here between the facts and the delete call
    client, adapter = make_client(registry.route)
    plan = deletion.plan_delete(client, "a", digests=[index_digest, child], expected=seen)
    assert not plan.changes and [r["name"] for r in plan.refused] == [index_digest, child]
    assert plan.refused[1]["of"] == index_digest
    assert deletion.apply_delete(client, "a", plan) == [] and adapter.writes() == []


@pytest.mark.parametrize("mode", ["none", "native"])
def test_a_tag_that_moved_since_planning_keeps_its_new_digest(mode):
    registry = MemoryRegistry(tag_delete=mode)
    keep, _raw = image(registry, "a", ["keep", "drop", "moving"], seed="k")
    new, _raw = image(registry, "a", ["new"], seed="n")
    client = make_client(pushing_on_first_delete(registry, "a", "moving", new))[0]
    plan = deletion.plan_delete(client, "a", tags=["drop", "moving"])
    deleted = deletion.apply_delete(client, "a", plan)
    assert registry.tags["a"] == {"keep": keep, "moving": new, "new": new}
    assert [d["name"] for d in deleted] == ["drop"]
    assert plan.refused == [{"type": "tag", "name": "moving", "digest": new, "expected_digest": keep,
                             "reason": plan.refused[0]["reason"]}]


def test_concurrent_copies_of_one_blob_to_one_repository_send_it_once():
    """Tags copied at once share base layers: one copy streams the blob, the others wait and find it there
    (eight uploads of one blob into one repository at once also race in the CNCF registry's storage)."""
    import threading
    import time
    from concurrent.futures import ThreadPoolExecutor

    source, target, src_client, dst_client, src_adapter, dst_adapter = two_registries()
    data = b"base layer" * 5000
    digest = source.add_blob("staging/app", data)
    first_get = threading.Event()

    def slow_source(sent):
        if sent.method == "GET" and "/blobs/sha256:" in sent.url:
            first_get.set()
            time.sleep(0.3)  # the other copies arrive while this one streams
        return source.route(sent)

    src_adapter.route = slow_source
    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(lambda _copy: transfer_blob(src_client, "staging/app", dst_client, "prod/app", digest,
                                                            len(data)), range(8)))
    assert first_get.is_set() and target.blobs["prod/app"][digest] == data
    assert sorted(r.how for r in results) == ["exists"] * 7 + ["uploaded"]
    assert len([s for s in src_adapter.sent if s.method == "GET" and "/blobs/sha256:" in s.url]) == 1
    assert [s.method for s in dst_adapter.writes()] == ["POST", "PUT"]


def test_a_copy_that_failed_leaves_the_waiting_copies_to_try_themselves():
    import threading
    import time
    from concurrent.futures import ThreadPoolExecutor

    source, target, src_client, dst_client, src_adapter, _dst_adapter = two_registries()
    data = b"layer" * 1000
    digest = source.add_blob("staging/app", data)
    failures = threading.Semaphore(1)

    def first_read_fails(sent):
        if sent.method == "GET" and "/blobs/sha256:" in sent.url:
            time.sleep(0.2)
            if failures.acquire(blocking=False):
                return fake_error(404, "BLOB_UNKNOWN")  # not retried: this copy fails
        return source.route(sent)

    src_adapter.route = first_read_fails
    with ThreadPoolExecutor(max_workers=3) as pool:
        futures = [pool.submit(transfer_blob, src_client, "staging/app", dst_client, "prod/app", digest, len(data))
                   for _copy in range(3)]
    outcomes = [f.exception() or f.result().how for f in futures]
    assert sum(isinstance(o, RegistryError) for o in outcomes) == 1
    assert sorted(o for o in outcomes if isinstance(o, str)) == ["exists", "uploaded"]
    assert target.blobs["prod/app"][digest] == data


@pytest.mark.parametrize("read_size", [1, 7, 16384, 1 << 20, -1])
def test_a_streamed_blob_reads_back_byte_for_byte_whatever_the_read_size(read_size):
    from ansible_collections.regops.registry.plugins.module_utils.uploads import IterStream

    data = bytes(range(256)) * 1200  # 300 KB in uneven chunks
    chunks = [data[i:i + 100003] for i in range(0, len(data), 100003)]
    stream = IterStream(iter(chunks), len(data))
    out, read = [], 0
    while block := stream.read(read_size):
        out.append(block)
        read += len(block)
        assert stream.tell() == read and (read_size < 0 or len(block) <= read_size)
        if read_size > 0:  # chunk by chunk: a block never spans two chunks, and is short only at a chunk's end
            assert (read - len(block)) // 100003 == (read - 1) // 100003
            assert len(block) == read_size or read % 100003 == 0 or read == len(data)
    assert b"".join(out) == data and len(stream) == len(data)


def test_with_expectations_the_delete_plan_reads_only_unseen_tags_and_the_tags_it_deletes_alone():
    """Issue 17: the prune's delete step must not read again the 100,000 tags its facts step read moments ago."""
    registry = MemoryRegistry()
    keep, _raw = image(registry, "a", ["keep", "drop"] + [f"k{i}" for i in range(20)], seed="k")
    old, _raw = image(registry, "a", ["old"] + [f"o{i}" for i in range(20)], seed="o")
    seen = dict(registry.tags["a"])
    registry.tags["a"]["new"] = old  # pushed after the facts were read
    client, adapter = make_client(registry.route)
    plan = deletion.plan_delete(client, "a", tags=["drop"], digests=[old], protect=["keep"], expected=seen)
    heads = sorted(s.url.rsplit("/", 1)[1] for s in adapter.sent if s.method == "HEAD")
    assert heads == ["drop", "new"]
    assert len([s for s in adapter.sent if s.method == "GET" and "/tags/list" in s.url]) == 1
    assert [r["unexpected_tags"] for r in plan.refused] == [["new"]] and plan.digests == [] and plan.tags == ["drop"]
    assert plan.tags_on(keep) == sorted(["keep", "drop"] + [f"k{i}" for i in range(20)])


def test_the_race_guard_reads_again_the_tag_list_new_tags_and_kept_tags_only():
    registry = MemoryRegistry()
    image(registry, "a", ["keep"], seed="k")
    old, _raw = image(registry, "a", ["old"] + [f"o{i}" for i in range(20)], seed="o")
    older, _raw = image(registry, "a", ["older"], seed="p")
    seen = dict(registry.tags["a"])
    client, adapter = make_client(pushing_on_first_delete(registry, "a", "hotfix", old))
    plan = deletion.plan_delete(client, "a", digests=[old, older], expected=seen)
    before = len(adapter.sent)
    deletion.apply_delete(client, "a", plan)
    heads = sorted(s.url.rsplit("/", 1)[1] for s in adapter.sent[before:] if s.method == "HEAD")
    assert heads == ["hotfix", "keep"]  # not the 22 tags already known on the doomed digests
    assert [r["name"] for r in plan.refused] == [old] and old in registry.manifests["a"]
    assert older not in registry.manifests["a"] and "older" not in registry.tags["a"]


def test_tags_on_follows_the_tags_learnt_and_forgotten():
    plan = deletion.DeletePlan(tag_digests={"a": "sha256:1", "b": "sha256:1", "c": "sha256:2"})
    assert plan.tags_on("sha256:1") == ["a", "b"]
    plan.set_tags(gone=["a"], now={"d": "sha256:1", "c": "sha256:1"})
    assert plan.tags_on("sha256:1") == ["b", "c", "d"] and plan.tags_on("sha256:2") == []


def test_indexes_copied_at_once_write_the_child_they_share_once():
    """Two rebuilt indexes share a child: copied at once, one copy writes it and the other waits for it. Writing it
    twice at once races in the CNCF registry (the second PUT rewrites the link the first index's PUT checks)."""
    import threading
    from concurrent.futures import ThreadPoolExecutor

    source, target, src_client, dst_client, _src_adapter, dst_adapter = two_registries()
    shared, shared_raw = image(source, "src", [], seed="shared")
    indexes = {}
    for tag in ("1.0", "1.1"):
        own, own_raw = image(source, "src", [], seed=tag)
        index = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [
            {"mediaType": OCI_MANIFEST, "digest": d, "size": len(r), "platform": {"os": "linux", "architecture": a}}
            for d, r, a in ((shared, shared_raw, "amd64"), (own, own_raw, "arm64"))]}
        indexes[tag] = source.add_manifest("src", tag, json.dumps(index).encode(), OCI_INDEX)
    both_read = threading.Barrier(2, timeout=0.5)
    writing = threading.Lock()

    def slow_child_puts(sent):
        if sent.method == "HEAD" and sent.url.endswith(shared):
            try:
                both_read.wait()  # both copies look for the shared child before either writes it (unless one waits)
            except threading.BrokenBarrierError:
                pass
        if sent.method == "PUT" and sent.url.endswith(shared):
            assert writing.acquire(blocking=False), "the shared child is written twice at once"
            threading.Event().wait(0.2)  # time.sleep is switched off for the retries (no_sleep)
            writing.release()
        return target.route(sent)

    dst_adapter.route = slow_child_puts
    with ThreadPoolExecutor(max_workers=2) as pool:
        results = list(pool.map(lambda tag: copy_image(src_client, "src", tag, dst_client, "dst", tag),
                                ("1.0", "1.1")))
    hows = sorted(m["how"] for r in results for m in r["manifests"] if m["digest"] == shared)
    assert hows == ["exists", "written"]
    assert len([s for s in dst_adapter.writes() if s.method == "PUT" and s.url.endswith(shared)]) == 1
    assert {tag: target.tags["dst"][tag] for tag in indexes} == indexes
