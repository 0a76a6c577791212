"""Self-tests of the lab harness (tests/lab): registries in three modes, token server, seeding, access log, CLI.

Everything else in tests/integration trusts these pieces, so they are checked against real processes and an
independent client (skopeo).
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from tests.lab import registry, seed
from tests.lab.registry import ROOT, Lab, pid_alive, start_registry
from tests.lab.tokenserver import decode_jwt

SKOPEO = "/usr/bin/skopeo"


def skopeo(lab, *args: str) -> str:
    cmd = [SKOPEO, *args[:-1], *lab.skopeo_options()]
    return subprocess.run(cmd + [args[-1]], capture_output=True, text=True, check=True, timeout=60).stdout


def test_each_mode_starts_fast_and_cleans_up():
    for mode in ("plain", "basic", "token"):
        started = time.monotonic()
        with start_registry(mode) as lab:
            elapsed = time.monotonic() - started
            print(f"\n[measure] {mode}: lab ready in {elapsed:.3f} s (registry process {lab.startup_seconds:.3f} s)")
            assert elapsed < 5
            workdir, pid = lab.workdir, lab.pid
            assert pid_alive(pid, "docker-registry")
            answer = requests.get(f"{lab.url}/v2/", verify=lab.verify, timeout=5)
            assert answer.status_code == (200 if mode == "plain" else 401)
            if mode != "plain":
                assert answer.url.startswith("https://127.0.0.1:")
        assert not workdir.exists() and not pid_alive(pid, "docker-registry")


def test_a_port_taken_meanwhile_gets_another_one_a_chosen_port_never(monkeypatch, tmp_path):
    """Parallel workers pick free ports at the same time: a registry whose picked port was taken before it bound
    it starts on another one; a port the caller chose stays, and the start fails."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        busy = taken.getsockname()[1]
        picks = iter([busy])
        pick_free = registry.free_port
        monkeypatch.setattr(registry, "free_port", lambda: next(picks, None) or pick_free())
        with start_registry("plain", tmp_path / "picked") as lab:
            assert lab.port != busy
            assert requests.get(f"{lab.url}/v2/", timeout=5).status_code == 200
        with pytest.raises(RuntimeError, match="did not answer"):
            start_registry("plain", tmp_path / "chosen", port=busy)


def test_log_counter_sees_exactly_what_was_sent(lab):
    session = seed.session_for(lab)
    mark = lab.mark()
    image = seed.push_image(session, "harness/exact", "v1", seed=501, layer_sizes=(300, 200))
    seed.tag_manifest(session, "harness/exact", "v1-alias", image["manifest_bytes"], image["media_type"])
    assert [(r.method, r.path, r.status) for r in lab.requests(mark)] == session.history
    sent_writes = [h for h in session.history if h[0] in ("PUT", "PATCH", "POST", "DELETE")]
    assert sum(lab.count_requests(("PUT", "PATCH", "POST", "DELETE"), since=mark).values()) == len(sent_writes)
    assert len(lab.blob_uploads(mark)) == 3  # config + 2 layers, one monolithic PUT each
    # a second push of the same image sends no blob bytes (HEAD finds every blob)
    mark = lab.mark()
    seed.push_image(session, "harness/exact", "v1", seed=501, layer_sizes=(300, 200))
    assert lab.blob_uploads(mark) == [] and lab.count_requests(("POST", "PATCH"), since=mark) == {}
    assert seed.tag_map(session, "harness/exact") == {"v1": image["digest"], "v1-alias": image["digest"]}


def test_plain_push_then_skopeo_sees_the_same_digests(lab_plain):
    session = seed.session_for(lab_plain)
    image = seed.push_image(session, "harness/plain", "1.0", kind="docker", seed=502, labels={"a": "b"},
                            created="2024-01-02T03:04:05Z", tar_gzip=True)
    index = seed.push_index(session, "harness/plain", "multi", seed=503, with_attestation=True)
    inspect = json.loads(skopeo(lab_plain, "inspect", f"docker://{lab_plain.host}/harness/plain:1.0"))
    assert inspect["Digest"] == image["digest"] == seed.head_manifest(session, "harness/plain", "1.0")
    assert inspect["Labels"] == {"a": "b"} and inspect["Created"].startswith("2024-01-02T03:04:05")
    assert inspect["Architecture"] == "amd64" and inspect["Os"] == "linux"
    raw = skopeo(lab_plain, "inspect", "--raw", f"docker://{lab_plain.host}/harness/plain:multi")
    assert raw.encode() == index["manifest_bytes"]
    assert seed.sha256(raw.encode()) == index["digest"]
    arm = index["children"][1]
    assert arm["platform"] == {"os": "linux", "architecture": "arm64", "variant": "v8"}
    got = seed.get_manifest(session, "harness/plain", arm["digest"])
    assert got == (arm["manifest_bytes"], seed.OCI_MANIFEST, arm["digest"])
    assert seed.list_tags(session, "harness/plain") == ["1.0", "multi"]


def test_basic_wrong_password_is_refused(lab_basic):
    url = f"{lab_basic.url}/v2/_catalog"
    anonymous = requests.get(url, verify=lab_basic.ca_path, timeout=10)
    assert anonymous.status_code == 401 and anonymous.headers["WWW-Authenticate"].startswith("Basic ")
    wrong = requests.get(url, auth=("alice", "not-the-password"), verify=lab_basic.ca_path, timeout=10)
    assert wrong.status_code == 401
    right = requests.get(url, auth=("alice", lab_basic.users["alice"]), verify=lab_basic.ca_path, timeout=10)
    assert right.status_code == 200
    session = seed.session_for(lab_basic)
    image = seed.push_image(session, "harness/basic", "1", seed=504)
    inspect = json.loads(skopeo(lab_basic, "inspect", f"docker://{lab_basic.host}/harness/basic:1"))
    assert inspect["Digest"] == image["digest"]
    if shutil.which("curl"):  # an HTTP/2 client: its requests are logged as "HTTP/2.0" and still counted
        mark = lab_basic.mark()
        subprocess.run(["curl", "-sf", "--http2", "--cacert", lab_basic.ca_path, "-u", f"alice:{lab_basic.users['alice']}",
                        "-o", "/dev/null", f"{lab_basic.url}/v2/harness/basic/tags/list"], check=True, timeout=30)
        assert [(r.method, r.path, r.status) for r in lab_basic.requests(mark)] == \
            [("GET", "/v2/harness/basic/tags/list", 200)]
        assert '"GET /v2/harness/basic/tags/list HTTP/2.0" 200' in lab_basic.log_path.read_text()
    with pytest.raises(requests.exceptions.SSLError):  # the lab CA is needed
        requests.get(url, timeout=10)


def _token(lab, user, scopes, password=None):
    auth = (user, password or lab.users[user]) if user else None
    return requests.get(lab.token_server.realm, params=[("service", "regops-lab")] + [("scope", s) for s in scopes],
                        auth=auth, verify=lab.ca_path, timeout=10)


def test_token_scopes_pusher_cannot_delete_alice_can(lab_token):
    alice = seed.session_for(lab_token)
    image = seed.push_image(alice, "harness/token", "del", seed=505)
    seed.tag_manifest(alice, "harness/token", "keep", image["manifest_bytes"], image["media_type"])

    answer = _token(lab_token, "pusher", ["repository:harness/token:pull,push,delete", "registry:catalog:*"])
    assert answer.status_code == 200
    body = answer.json()
    assert body["token"] == body["access_token"] and body["expires_in"] == 300 and body["issued_at"].endswith("Z")
    header, claims = decode_jwt(body["token"])
    assert header["alg"] == "RS256" and header["x5c"]
    assert claims["aud"] == "regops-lab" and claims["sub"] == "pusher"
    assert claims["access"] == [{"type": "repository", "name": "harness/token", "actions": ["pull", "push"]},
                                {"type": "registry", "name": "catalog", "actions": ["*"]}]  # grant on "*"
    assert _token(lab_token, "pusher", [], password="wrong").status_code == 401
    assert decode_jwt(_token(lab_token, None, ["repository:harness/token:pull"]).json()["token"])[1]["access"] == []

    pusher = seed.session_for(lab_token, "pusher")
    mark = lab_token.mark()
    refused = seed.delete_manifest(pusher, "harness/token", image["digest"])
    assert refused.status_code == 401
    assert 'error="insufficient_scope"' in refused.headers["WWW-Authenticate"]
    assert "repository:harness/token:delete" in refused.headers["WWW-Authenticate"]
    assert refused.json()["errors"][0]["code"] == "UNAUTHORIZED"
    assert seed.head_manifest(alice, "harness/token", "keep") == image["digest"]
    deleted = seed.delete_manifest(alice, "harness/token", image["digest"])
    assert deleted.status_code == 202
    assert seed.head_manifest(alice, "harness/token", "keep") is None
    assert [(r.method, r.status) for r in lab_token.requests(mark, methods=("DELETE",))] == \
        [("DELETE", 401), ("DELETE", 401), ("DELETE", 202)]


def test_token_fetched_once_for_many_requests_and_oauth2(lab_token):
    alice = seed.session_for(lab_token)
    image = seed.push_image(alice, "harness/many", "1", seed=506)
    before = lab_token.token_server.stats()
    fresh = seed.session_for(lab_token)
    for _attempt in range(20):
        assert seed.head_manifest(fresh, "harness/many", "1") == image["digest"]
    after = lab_token.token_server.stats()
    assert fresh.token_fetches == 1 and after["get"] - before.get("get", 0) == 1

    oauth = requests.post(lab_token.token_server.realm, verify=lab_token.ca_path, timeout=10,
                          data={"grant_type": "password", "username": "reader", "password": lab_token.users["reader"],
                                "service": "regops-lab", "client_id": "regops.registry", "access_type": "offline",
                                "scope": "repository:harness/many:pull,push"})
    assert oauth.status_code == 200 and "refresh_token" in oauth.json() and "token" not in oauth.json()
    assert oauth.json()["scope"] == "repository:harness/many:pull"
    refreshed = requests.post(lab_token.token_server.realm, verify=lab_token.ca_path, timeout=10,
                              data={"grant_type": "refresh_token", "refresh_token": oauth.json()["refresh_token"],
                                    "service": "regops-lab", "client_id": "regops.registry",
                                    "scope": "repository:harness/many:pull"})
    assert refreshed.status_code == 200
    bearer = {"Authorization": f"Bearer {refreshed.json()['access_token']}", "Accept": seed.ACCEPT}
    assert requests.head(f"{lab_token.url}/v2/harness/many/manifests/1", headers=bearer, verify=lab_token.ca_path,
                         timeout=10).status_code == 200
    bad = requests.post(lab_token.token_server.realm, verify=lab_token.ca_path, timeout=10,
                        data={"grant_type": "refresh_token", "refresh_token": "nope", "client_id": "x"})
    assert bad.status_code == 401
    stats = lab_token.token_server.stats()
    assert stats["post_password"] >= 1 and stats["post_refresh"] >= 2 and stats["denied"] >= 1


def test_expired_token_is_invalid_token(lab_token):
    server = lab_token.token_server
    server.exp_offset = -120  # past the registry's 60 s leeway
    try:
        token = _token(lab_token, "alice", ["repository:harness/exp:pull"]).json()["token"]
    finally:
        server.exp_offset = None
    answer = requests.get(f"{lab_token.url}/v2/harness/exp/tags/list", headers={"Authorization": f"Bearer {token}"},
                          verify=lab_token.ca_path, timeout=10)
    assert answer.status_code == 401 and 'error="invalid_token"' in answer.headers["WWW-Authenticate"]


def test_restart_flips_deletes_and_read_only_on_the_same_storage(tmp_path):
    with start_registry("plain", tmp_path / "lab") as lab:
        session = seed.session_for(lab)
        image = seed.push_image(session, "harness/flip", "a", seed=507)
        port = lab.port
        lab.restart(delete_enabled=False)
        assert lab.port == port and seed.head_manifest(session, "harness/flip", "a") == image["digest"]
        refused = seed.delete_manifest(session, "harness/flip", image["digest"])
        assert refused.status_code == 405 and refused.json()["errors"][0]["code"] == "UNSUPPORTED"
        lab.restart(delete_enabled=True, readonly=True)
        put = session.put("/v2/harness/flip/manifests/b", data=image["manifest_bytes"],
                          headers={"Content-Type": image["media_type"]})
        assert put.status_code == 405
        lab.restart(readonly=False)
        assert seed.delete_manifest(session, "harness/flip", image["digest"]).status_code == 202
        out = lab.garbage_collect()
        assert "blob eligible for deletion" in out or "blobs marked" in out
        assert lab.running and seed.blob_exists(session, "harness/flip", image["config_digest"]) is False


def test_seed_many_repositories_mounts(lab_token):
    session = seed.session_for(lab_token)
    mark = lab_token.mark()
    names = seed.seed_many_repositories(session, "harness-bulk", 12)
    assert set(names) <= set(seed.catalog(session))
    assert len(lab_token.blob_uploads(mark)) == 2  # only the first repository uploads
    assert seed.list_tags(session, names[-1]) == ["1"]


@pytest.mark.parametrize("mode", ["plain", "token"])
def test_cli_up_seed_demo_down(tmp_path, mode):
    state = tmp_path / "lab.json"
    cli = [sys.executable, "-m", "tests.lab"]
    run = subprocess.run(cli + ["up", "--mode", mode, "--state", str(state)], cwd=ROOT, capture_output=True,
                         text=True, timeout=60, check=False)
    assert run.returncode == 0, run.stderr
    info = json.loads(state.read_text())
    try:
        assert set(info) >= {"url", "host", "ca_path", "users", "pids", "log_path", "workdir", "conn"}
        assert sorted(info["pids"]) == (["registry", "tokenserver"] if mode == "token" else ["registry"])
        # the command has returned: the registry answers on its own
        assert requests.get(f"{info['url']}/v2/", verify=info["ca_path"] or True, timeout=5).status_code in (200, 401)
        out = subprocess.run(cli + ["seed-demo", "--state", str(state)], cwd=ROOT, capture_output=True, text=True,
                             timeout=60, check=False)
        assert out.returncode == 0, out.stderr
        assert "demo/app:latest" in out.stdout and "demo/multi:1.0" in out.stdout and "demo/legacy:1" in out.stdout
        session = seed.session_for(Lab.from_state(info))
        tags = seed.tag_map(session, "demo/app")
        assert sorted(tags) == ["1.0.0", "1.1.0", "2.0.0-rc.1", "latest"] and tags["latest"] == tags["1.1.0"]
        assert seed.get_manifest(session, "demo/multi", "1.0")[1] == seed.OCI_INDEX
        assert seed.get_manifest(session, "demo/legacy", "1")[1] == seed.DOCKER_MANIFEST
    finally:
        down = subprocess.run(cli + ["down", "--state", str(state)], cwd=ROOT, capture_output=True, text=True,
                              timeout=60, check=False)
    assert down.returncode == 0, down.stderr
    assert not state.exists() and not Path(info["workdir"]).exists()
    assert not pid_alive(info["pids"]["registry"], "docker-registry")
    assert not pid_alive(info["pids"].get("tokenserver", 0), "tests.lab")
