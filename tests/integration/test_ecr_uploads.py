"""Uploads through the ECR personality (tests/lab/personalities.py): every part but the last at least 5 MiB, checked
when the upload is closed, PATCH answered 201. One ``registry_blob_upload`` call with the minimum announced
(``OCI-Chunk-Min-Length``, as the OCI distribution spec 1.1 lets a registry do): a 12 MiB file with 2 MiB chunks and a
12 MiB blob streamed from another registry; one with nothing announced (ECR as documented), where the refused close is
answered with 5 MiB parts. Part sizes come from the personality's record of requests, digests from the upstream."""

from __future__ import annotations

import hashlib

import pytest

from tests.integration.runner import run_module
from tests.lab import seed

MIB = 1 << 20


def upstream_digest(upstream, repository: str, digest: str) -> str:
    answer = seed.LabSession(upstream).get(f"/v2/{repository}/blobs/{digest}")
    assert answer.status_code == 200, answer.status_code
    return "sha256:" + hashlib.sha256(answer.content).hexdigest()


def uploads(persona, mark: int, repository: str) -> list[list]:
    """(method, size, status) of the PATCHes and PUTs of each upload session to ``repository``, in the order the
    sessions were first written to."""
    sessions: dict[str, list] = {}
    prefix = f"/v2/{repository}/blobs/uploads/"
    for request in persona.seen[mark:]:
        if not request.path.startswith(prefix) or request.method not in ("PATCH", "PUT"):
            continue
        session = request.path[len(prefix):].partition("?")[0]
        size = int(request.headers.get("Content-Length") or 0)
        sessions.setdefault(session, []).append((request.method, size, request.status))
    return list(sessions.values())


def big_file(tmp_path, name: str, seed_byte: int):
    path = tmp_path / name
    path.write_bytes(bytes((i + seed_byte) % 251 for i in range(256)) * 4096 * 12)  # 12 MiB
    return path, "sha256:" + hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def announced_run(personas, personas_upstream, personas_target, tmp_path_factory):
    ecr = personas("ecr")
    path, file_digest = big_file(tmp_path_factory.mktemp("ecr"), "layer.bin", 7)
    source_blob = bytes(range(256)) * 4096 * 12 + b"tail"
    source_digest = seed.push_blob(seed.LabSession(personas_target), "ecr-src/big", source_blob)
    mark = len(ecr.seen)
    ecr.announce_chunk_min = True
    try:
        result, _rss = run_module("registry_blob_upload", {
            **ecr.conn(), "repository": "ecr-up/announced", "chunk_size": "2MiB",
            "blobs": [{"path": str(path)}, {"digest": source_digest, "source": f"{personas_target.host}/ecr-src/big"}],
            "source_connection": {"registry": personas_target.url}})
    finally:
        ecr.announce_chunk_min = False
    return ecr, mark, result, file_digest, source_digest


def test_file_chunks_grow_to_the_announced_minimum(announced_run, personas_upstream):
    ecr, mark, result, file_digest, source_digest = announced_run
    assert not result.get("failed"), result
    assert {b["digest"]: b["how"] for b in result["blobs"]} == {file_digest: "uploaded", source_digest: "uploaded"}
    sessions = uploads(ecr, mark, "ecr-up/announced")
    chunked = [s for s in sessions if any(method == "PATCH" for method, _size, _status in s)]
    assert len(chunked) == 1
    patches = [(size, status) for method, size, status in chunked[0] if method == "PATCH"]
    assert patches == [(5 * MIB, 201), (5 * MIB, 201), (2 * MIB, 201)]
    assert chunked[0][-1] == ("PUT", 0, 201)
    assert upstream_digest(personas_upstream, "ecr-up/announced", file_digest) == file_digest


def test_blob_streamed_from_another_registry_closes_in_one_put(announced_run, personas_upstream):
    ecr, mark, result, _file_digest, source_digest = announced_run
    assert not result.get("failed"), result
    streamed = [s for s in uploads(ecr, mark, "ecr-up/announced") if not any(m == "PATCH" for m, _z, _s in s)]
    assert streamed == [[("PUT", 12 * MIB + 4, 201)]]
    assert upstream_digest(personas_upstream, "ecr-up/announced", source_digest) == source_digest


def test_small_chunks_refused_at_the_close_are_sent_again_in_5_mib_parts(personas, personas_upstream, tmp_path):
    """ECR as documented: no minimum announced; the close refuses parts under 5 MiB; the module sends it again."""
    ecr = personas("ecr")
    path, file_digest = big_file(tmp_path, "layer.bin", 11)
    mark = len(ecr.seen)
    result, _rss = run_module("registry_blob_upload", {**ecr.conn(), "repository": "ecr-up/silent",
                                                       "path": str(path), "chunk_size": "4MiB"})
    assert not result.get("failed"), result
    assert result["blobs"][0]["digest"] == file_digest and result["changed"] is True
    refused, accepted = uploads(ecr, mark, "ecr-up/silent")
    assert refused == [("PATCH", 4 * MIB, 201), ("PATCH", 4 * MIB, 201), ("PATCH", 4 * MIB, 201), ("PUT", 0, 400)]
    assert accepted == [("PATCH", 5 * MIB, 201), ("PATCH", 5 * MIB, 201), ("PATCH", 2 * MIB, 201), ("PUT", 0, 201)]
    assert "5242880-byte chunks" in str(result.get("warnings")), sorted(result)
    assert upstream_digest(personas_upstream, "ecr-up/silent", file_digest) == file_digest
