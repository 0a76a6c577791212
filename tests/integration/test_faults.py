"""Faults injected between the modules and the real registry (issue 7), by the proxy of tests/lab/faultproxy.py.

Each test scripts one fault, runs a module through the proxy, checks the outcome against the registry itself
(the seeding, skopeo, the registry's access log and what the proxy saw), and adds a row to the reliability table
with how many times the fault was injected and the tags lost according to ``skopeo list-tags`` before and after.
"""

from __future__ import annotations

import time

import pytest

from tests.integration.runner import run_module, run_playbook
from tests.lab import reliability, seed
from tests.lab.faultproxy import FaultProxy, Rule
from tests.lab.registry import start_registry

REPO = "f/app"
TAGS = ("v1", "v2", "v3", "v4", "v5")


@pytest.fixture(scope="module")
def faulty(tmp_path_factory):
    """A seeded plain registry with a proxy in front: ``(lab, proxy, truth)``, truth = tag -> digest."""
    lab = start_registry("plain", tmp_path_factory.mktemp("lab-faults"))
    proxy = FaultProxy(lab.url)
    try:
        session = seed.LabSession(lab)
        truth = {tag: seed.push_image(session, REPO, tag, seed=300 + i, layer_sizes=(4096, 1 << 20))["digest"]
                 for i, tag in enumerate(TAGS)}
        truth["multi"] = seed.push_index(session, REPO, "multi", seed=390)["digest"]
        yield lab, proxy, truth
    finally:
        proxy.close()
        lab.close()


@pytest.fixture
def proxy(faulty):
    faulty[1].clear()
    faulty[1].seen.clear()
    yield faulty[1]
    faulty[1].clear()


def via(proxy, **extra) -> dict:
    return {"registry": proxy.url, "retries": 3, **extra}


def facts(proxy, **extra) -> dict:
    result, _rss = run_module("registry_tags", {**via(proxy, **extra), "repository": REPO, "details": True})
    return result


def digests(result: dict) -> dict:
    return {i["tag"]: i["digest"] for i in result.get("images", [])}


def record(lab, name: str, outcome: str, tries: int, before: dict, deleted: dict | None = None) -> int:
    """A row of the reliability table, with the tags lost since ``before`` (skopeo, straight to the registry)."""
    lost = reliability.lost(before, reliability.snapshot(lab, list(before)), deleted)
    reliability.row("fault", name, outcome, tries=tries, tags_lost=lost, mode=lab.mode)
    return lost


RETRIED = [  # (status, method, path, what it hits)
    (503, "HEAD", r"/manifests/", "manifest HEAD"),
    (502, "GET", r"/manifests/sha256:", "manifest GET"),
    (504, "GET", r"/blobs/sha256:", "config blob GET"),
    (500, "GET", r"/blobs/sha256:", "config blob GET"),
    (503, "GET", r"/tags/list", "tag list"),
]


@pytest.mark.parametrize("status,method,path,what", RETRIED, ids=[f"{s}-{w}" for s, _m, _p, w in RETRIED])
def test_retryable_statuses_are_retried_with_backoff(faulty, proxy, status, method, path, what):
    lab, _proxy, truth = faulty
    before = reliability.snapshot(lab, [REPO])
    rule = proxy.add(Rule("status", method=method, path=path, status=status, times=2))
    result = facts(proxy)
    assert digests(result) == truth, result
    assert rule.hits == 2
    faulted = [s for s in proxy.seen if s.fault == "status"]
    assert len(faulted) == 2 and all(s.method == method for s in faulted)
    assert record(lab, f"HTTP {status} on the {what}, twice", "retried with backoff; right answer", rule.hits,
                  before) == 0


def test_429_waits_as_long_as_retry_after_says(faulty, proxy):
    lab, _proxy, truth = faulty
    before = reliability.snapshot(lab, [REPO])
    rule = proxy.add(Rule("status", method="GET", path=r"/tags/list", status=429, headers={"Retry-After": "3"}))
    start = time.monotonic()
    result = facts(proxy)
    elapsed = time.monotonic() - start
    assert digests(result) == truth and rule.hits == 1
    assert elapsed >= 3.0, elapsed  # the backoff alone would have waited under 0.5 s
    assert record(lab, "HTTP 429 with Retry-After: 3 on the tag list", f"waited (run took {elapsed:.1f} s); right "
                  "answer", rule.hits, before) == 0


@pytest.mark.parametrize("action,path,what", [
    ("reset", r"/manifests/sha256:", "manifest GET"),
    ("reset", r"/blobs/sha256:", "config blob GET"),
    ("truncate", r"/manifests/sha256:", "manifest GET"),
    ("truncate", r"/blobs/sha256:", "config blob GET"),
    ("flip", r"/manifests/sha256:", "manifest GET"),
    ("flip", r"/blobs/sha256:", "config blob GET"),
], ids=lambda v: v if isinstance(v, str) and "/" not in v else None)
def test_broken_or_corrupted_bodies_are_read_again(faulty, proxy, action, path, what):
    lab, _proxy, truth = faulty
    before = reliability.snapshot(lab, [REPO])
    rule = proxy.add(Rule(action, method="GET", path=path, after_bytes=40, times=2))
    result = facts(proxy)
    assert digests(result) == truth, result
    assert rule.hits == 2
    words = {"reset": "connection reset after 40 bytes of the", "truncate": "body cut short after 40 bytes of the",
             "flip": "one byte flipped in the"}[action]
    outcome = "detected by digest, read again; right answer" if action == "flip" else "read again; right answer"
    assert record(lab, f"{words} {what}, twice", outcome, rule.hits, before) == 0


def test_delay_beyond_the_timeout(faulty, proxy):
    lab, _proxy, truth = faulty
    before = reliability.snapshot(lab, [REPO])
    rule = proxy.add(Rule("delay", method="HEAD", path=r"/manifests/v3$", delay=4, times=1))
    result = facts(proxy, timeout=1.5)
    assert digests(result) == truth and rule.hits == 1
    record(lab, "4 s delay on a manifest HEAD (timeout 1.5 s), once", "timed out, retried; right answer",
           rule.hits, before)
    always = proxy.add(Rule("delay", method="HEAD", path=r"/manifests/v3$", delay=3, times=0))
    failed = facts(proxy, timeout=1, retries=1)
    assert failed.get("failed") and "timed out" in failed["msg"] and "Traceback" not in str(failed), failed
    record(lab, "3 s delay on every HEAD of one manifest (timeout 1 s, retries 1)",
           f"failed task: \"{failed['msg']}\"", always.hits, before)


@pytest.fixture
def target_lab(tmp_path):
    lab = start_registry("plain", tmp_path / "target")
    yield lab
    lab.close()


def promote(proxy, target, tag: str = "v2") -> dict:
    result, _rss = run_module("registry_manifest", {**target.conn(), "repository": "prod/app", "tag": tag,
                                                    "source": f"{proxy.host}/{REPO}:{tag}", "retries": 2,
                                                    "source_connection": {"registry": proxy.url}})
    return result


def test_corrupted_blob_is_never_written_onward(faulty, proxy, target_lab):
    lab, _proxy, truth = faulty
    before = reliability.snapshot(lab, [REPO])
    layer = r"/blobs/sha256:"
    rule = proxy.add(Rule("flip", method="GET", path=layer, after_bytes=100_000, times=0))
    failed = promote(proxy, target_lab)
    assert failed.get("failed") and "digest mismatch" in failed["msg"], failed
    assert reliability.snapshot(target_lab, ["prod/app"]) == {"prod/app": set()}  # no tag, no half-written image
    committed = [r for r in target_lab.requests() if r.method == "PUT" and r.status == 201]
    assert committed == [] or all("/blobs/" in r.path for r in committed)  # only blobs that verified (none flipped)
    assert not [r for r in target_lab.requests() if r.method == "PUT" and "/manifests/" in r.path]
    tries = rule.hits
    proxy.clear()
    again = promote(proxy, target_lab)
    assert again.get("changed") is True and again["digest"] == truth["v2"], again
    assert reliability.snapshot(target_lab, ["prod/app"]) == {"prod/app": {"v2"}}
    record(lab, "a byte flipped in every blob GET of a cross-registry promotion",
           "failed by digest after retries; target has no tag; the rerun converges", tries, before)


def test_interrupted_promotion_converges_on_rerun(faulty, proxy, target_lab):
    lab, _proxy, truth = faulty
    before = reliability.snapshot(lab, [REPO])
    # Both layers (4 KiB and 1 MiB) break after 2,000 bytes, every time; the small config gets through.
    rule = proxy.add(Rule("reset", method="GET", path=r"/blobs/sha256:", after_bytes=2000, times=0))
    failed = promote(proxy, target_lab, "v4")
    assert failed.get("failed") and "Traceback" not in str(failed), failed
    assert reliability.snapshot(target_lab, ["prod/app"]) == {"prod/app": set()}
    tries = rule.hits
    proxy.clear()
    again = promote(proxy, target_lab, "v4")
    assert again.get("changed") is True and again["digest"] == truth["v4"], again
    third = promote(proxy, target_lab, "v4")
    assert third.get("changed") is False
    record(lab, "connection reset after 2,000 bytes of every blob GET, mid-promotion",
           "failed, no tag written; the rerun converges, a third run changes nothing", tries, before)


@pytest.mark.parametrize("given", [False, True], ids=["hashed-first", "digest-given"])
def test_upload_dropped_mid_chunk_resumes_from_the_registry_offset(faulty, proxy, tmp_path, given):
    """Given the digest, the file is hashed from the blocks sent: the bytes sent again after the resume must not be
    hashed twice, or the upload would be refused at its close."""
    lab, _proxy, _truth = faulty
    path = tmp_path / "blob.bin"
    path.write_bytes(bytes(range(256)) * 4096 * 8)  # 8 MiB
    digest = seed.sha256(path.read_bytes())
    rule = proxy.add(Rule("drop_request", method="PATCH", path=r"/blobs/uploads/", skip=3, after_bytes=300_000))
    result, _rss = run_module("registry_blob_upload", {**via(proxy), "repository": f"f/upload-{given}".lower(),
                                                       "path": str(path), "chunk_size": "1MiB",
                                                       **({"digest": digest} if given else {})})
    assert result.get("changed") is True and rule.hits == 1 and result["digest"] == digest, result
    assert seed.blob_exists(seed.LabSession(lab), f"f/upload-{given}".lower(), result["digest"])
    after_drop = proxy.seen[[i for i, s in enumerate(proxy.seen) if s.fault == "drop_request"][0] + 1:]
    assert after_drop[0].method == "GET" and "/blobs/uploads/" in after_drop[0].path  # asked where to resume
    patches = [s for s in proxy.seen if s.method == "PATCH"]
    assert len(patches) == 9  # 8 chunks, the dropped one sent again (not the whole file)
    reliability.row("fault", "connection dropped during the 4th 1 MiB chunk of an 8 MiB upload"
                    + (", digest given" if given else ""), "resumed from the registry's offset; blob complete",
                    tries=rule.hits)


def test_blob_redirect_to_another_host_gets_no_authorization(tmp_path):
    lab = start_registry("basic", tmp_path / "basic")
    try:
        session = seed.LabSession(lab)
        truth = {t: seed.push_image(session, REPO, t, seed=400 + i)["digest"] for i, t in enumerate(("a", "b"))}
        with FaultProxy(lab.url, upstream_ca=lab.ca_path) as front, \
                FaultProxy(lab.url, upstream_ca=lab.ca_path, upstream_basic=("reader", lab.users["reader"])) as mirror:
            rule = front.add(Rule("redirect", method="GET", path=r"/blobs/sha256:", redirect_to=mirror.url, times=0))
            result, _rss = run_module("registry_tags", {"registry": front.url, "username": "alice",
                                                        "password": lab.users["alice"], "repository": REPO,
                                                        "details": True})
            assert digests(result) == truth, result
            assert rule.hits >= 2
            at_mirror = [s for s in mirror.seen if "/blobs/" in s.path]
            assert len(at_mirror) == rule.hits
            assert all("authorization" not in {k.lower() for k in s.headers} for s in at_mirror)
            assert all("authorization" in {k.lower() for k in s.headers} for s in front.seen if s.fault)
        reliability.row("fault", "blob GETs redirected to a second host", "followed; the second host received no "
                        "Authorization header; right answer", tries=rule.hits, mode="basic")
    finally:
        lab.close()


@pytest.mark.parametrize("name,rule,message", [
    ("401 with a Bearer challenge without realm on every request",
     Rule("status", status=401, headers={"WWW-Authenticate": 'Bearer service="registry"'}, times=0),
     "without naming a token server"),
    ("401 with a malformed WWW-Authenticate on every request",
     Rule("status", status=401, headers={"WWW-Authenticate": "Negotiate ,,, ="}, times=0), "no usable challenge"),
    ("malformed JSON tag list", Rule("replace_body", method="GET", path=r"/tags/list", body=b'{"tags": ["v1", ',
                                     times=0), "JSON"),
    ("oversized (64 MiB) manifest", Rule("status", method="GET", path=r"/manifests/", status=200, times=0,
                                         headers={"Content-Type": "application/vnd.oci.image.manifest.v1+json"},
                                         body_size=64 << 20), "larger than"),
])
def test_hostile_answers_fail_cleanly(faulty, proxy, name, rule, message):
    lab, _proxy, _truth = faulty
    before = reliability.snapshot(lab, [REPO])
    added = proxy.add(Rule(**{k: v for k, v in vars(rule).items() if not k.startswith("_") and k != "hits"}))
    result, rss = run_module("registry_manifest", {**via(proxy, retries=1), "repository": REPO, "reference": "v1"}) \
        if "manifest" in name else run_module("registry_tags", {**via(proxy, retries=1), "repository": REPO})
    assert result.get("failed") and message in result["msg"], result
    assert "Traceback" not in str(result) and rss < 64 << 20
    record(lab, name, f"failed task: \"{result['msg']}\" (peak RSS {rss / 2**20:.0f} MiB)", added.hits, before)


def test_interrupted_prune_converges_on_rerun(faulty, proxy):
    lab, _proxy, truth = faulty
    session = seed.LabSession(lab)
    repo = "f/prune"
    image = seed.push_image(session, repo, "keep", seed=500)
    doomed = [f"old-{i}" for i in range(12)]
    for tag in doomed:
        seed.tag_manifest(session, repo, tag, image["raw"], image["media_type"])
    before = reliability.snapshot(lab, [repo])
    # Deletes reach the registry but their answers are lost (the worst case: done, yet seen as failed) ...
    lost_answers = proxy.add(Rule("reset", method="DELETE", path=r"/manifests/", skip=3, times=2))
    # ... and then the registry goes away for deletes altogether.
    outage = proxy.add(Rule("status", method="DELETE", path=r"/manifests/", status=503, skip=6, times=0))
    args = {**via(proxy, retries=1), "repository": repo, "tags": doomed, "concurrency": 4}
    failed, _rss = run_module("registry_delete", args)
    assert failed.get("failed") and "Traceback" not in str(failed), failed
    middle = reliability.snapshot(lab, [repo])
    assert "keep" in middle[repo] and reliability.lost(before, middle, {repo: set(doomed)}) == 0
    tries = lost_answers.hits + outage.hits
    proxy.clear()
    again, _rss = run_module("registry_delete", args)
    assert "failed" not in again, again
    after = reliability.snapshot(lab, [repo])
    assert after == {repo: {"keep"}}
    assert seed.head_manifest(session, repo, "keep") == image["digest"]
    third, _rss = run_module("registry_delete", args)
    assert third.get("changed") is False
    record(lab, "tag deletes: 2 answers lost after the registry acted, then 503 on every DELETE",
           "failed with the kept tag intact; the rerun deletes exactly the rest; a third run changes nothing",
           tries, before, {repo: set(doomed)})


def test_token_expiry_mid_run_gets_a_new_token(tmp_path):
    lab = start_registry("token", tmp_path / "token")
    try:
        session = seed.LabSession(lab)
        truth = {t: seed.push_image(session, REPO, t, seed=600 + i)["digest"] for i, t in enumerate(TAGS)}
        before = reliability.snapshot(lab, [REPO])
        lab.token_server.exp_offset = -57  # the registry allows 60 s of leeway: each token lives about 3 s
        issued = lab.token_server.counts["get"]
        with FaultProxy(lab.url, upstream_ca=lab.ca_path) as proxy:
            rule = proxy.add(Rule("delay", method="HEAD", path=r"/manifests/", delay=1.5, times=0))
            result, _rss = run_module("registry_tags", {"registry": proxy.url, "ca_path": lab.ca_path,
                                                        "username": "alice", "password": lab.users["alice"],
                                                        "repository": REPO, "details": True, "concurrency": 1})
            assert digests(result) == truth, result
            refused = [s for s in proxy.seen if s.status == 401]
        tokens = lab.token_server.counts["get"] - issued
        assert tokens >= 2 and refused, (tokens, len(refused))
        record(lab, "token expiring mid-run (each token valid about 3 s, run about 8 s)",
               f"401 invalid_token answered with a new token ({tokens} tokens in the run); right answer",
               len(refused), before)
    finally:
        lab.close()


def test_tag_pushed_onto_a_doomed_digest_during_a_prune_survives(faulty, proxy):
    """The race of issue 14: CI tags an image that the prune plan deletes, between the plan and the deletes.

    The proxy pushes the tag (straight to the registry) when it sees the first DELETE of the run, the delete probe:
    after the facts and the plan, before any tag or digest is deleted."""
    lab, _proxy, _truth = faulty
    session = seed.LabSession(lab)
    repo = "f/race"
    newest = seed.push_image(session, repo, "latest", seed=700, created="2024-03-01T00:00:00Z")
    seed.tag_manifest(session, repo, "pr-9", newest["raw"], newest["media_type"])  # goes as a tag: latest stays
    old = seed.push_image(session, repo, "old-1", seed=701, created="2024-02-01T00:00:00Z")
    seed.tag_manifest(session, repo, "old-1b", old["raw"], old["media_type"])
    older = seed.push_image(session, repo, "old-2", seed=702, created="2024-01-01T00:00:00Z")
    planned = {"pr-9", "old-1", "old-1b", "old-2"}
    before = reliability.snapshot(lab, [repo])
    assert before == {repo: {"latest"} | planned}

    def ci_pushes_hotfix(_seen):
        seed.tag_manifest(seed.LabSession(lab), repo, "hotfix", old["raw"], old["media_type"])

    rule = proxy.add(Rule("hook", method="DELETE", hook=ci_pushes_hotfix))
    run = run_playbook("prune.yml", {"prune_registry": proxy.url, "prune_repositories": [repo],
                                     "prune_keep_latest": 0, "prune_keep_tags": ["^latest$"]})
    assert run.ok, run.output[-3000:]
    assert rule.hits == 1 and proxy.hook_errors == []
    first_delete = next(s for s in proxy.seen if s.method == "DELETE")
    assert first_delete.fault == "hook" and "sha256:" + "0" * 64 in first_delete.path  # the probe, before any delete
    assert [p["repository"] for p in run.results["repositories"]] == [repo]
    assert set(run.results["repositories"][0]["delete_tags"]) == {"pr-9"}
    assert set(run.results["repositories"][0]["delete_digests"]) == {old["digest"], older["digest"]}

    after = reliability.snapshot(lab, [repo])
    assert after == {repo: {"latest", "old-1", "old-1b", "hotfix"}}  # the refused digest keeps every tag
    assert seed.head_manifest(session, repo, "hotfix") == old["digest"]
    assert seed.head_manifest(session, repo, older["digest"]) is None  # the rest of the plan went
    (refused,) = run.results["refused"]
    assert refused["digest"] == old["digest"] and refused["unexpected_tags"] == ["hotfix"], refused
    assert refused["repository"] == repo and "did not see" in refused["reason"]
    assert "now also tagged hotfix" in run.output  # the warning the user sees
    lost = record(lab, "a tag pushed onto a digest to delete between the prune plan and its deletes (at the first "
                  "DELETE)", "that digest not deleted and named in refused; the rest of the plan deleted", rule.hits,
                  {repo: before[repo] | {"hotfix"}}, {repo: planned})
    assert lost == 0
