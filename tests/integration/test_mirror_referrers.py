"""registry_sync / the mirror role with ``referrers: true`` (issue 16): signatures, SBOMs and a signature of the SBOM
go along with their images, by digest, after them.

The source is a plain lab (distribution 2.8: no referrers API, so the referrers are listed in ``sha256-<hex>`` fallback
tags, as cosign and oras leave them); the destination a TLS+Basic lab (no API either: the copy keeps its fallback
tags). Then the API path, through the Harbor personality (tests/lab/personalities.py): written there it is indexed by
the API (no fallback tag written), and read back from it with ``GET /v2/<name>/referrers/<digest>``.
"""

from __future__ import annotations

import json

from tests.integration.runner import run_module, run_playbook
from tests.lab import seed

WRITES = ("PUT", "PATCH", "POST", "DELETE")
EMPTY = b"{}"
EMPTY_TYPE = "application/vnd.oci.empty.v1+json"
SIG = "application/vnd.dev.cosign.artifact.sig.v1+json"
SBOM = "application/spdx+json"
ATTESTATION = "application/vnd.in-toto+json"


def fallback_tag(digest: str) -> str:
    return digest.replace(":", "-")


def push_referrer(session, repo: str, subject: dict, artifact_type: str, n: int, *, list_it: bool = True) -> dict:
    """An OCI 1.1 artifact about ``subject``, pushed by digest and (where the registry has no referrers API, as a client
    must then do) listed in the subject's fallback tag."""
    payload = f"{artifact_type} of {subject['digest']} #{n}".encode()
    empty = {"mediaType": EMPTY_TYPE, "digest": seed.push_blob(session, repo, EMPTY), "size": len(EMPTY)}
    manifest = {"schemaVersion": 2, "mediaType": seed.OCI_MANIFEST, "artifactType": artifact_type, "config": empty,
                "layers": [{"mediaType": "application/octet-stream", "digest": seed.push_blob(session, repo, payload),
                            "size": len(payload)}],
                "subject": {"mediaType": subject["media_type"], "digest": subject["digest"],
                            "size": len(subject["raw"])},
                "annotations": {"org.example.n": str(n)}}
    raw = json.dumps(manifest).encode()
    digest = seed.put_manifest(session, repo, seed.sha256(raw), raw, seed.OCI_MANIFEST)
    if list_it:
        tag = fallback_tag(subject["digest"])
        current = seed.get_manifest(session, repo, tag)
        index = json.loads(current[0]) if current else {"schemaVersion": 2, "mediaType": seed.OCI_INDEX, "manifests": []}
        index["manifests"].append({"mediaType": seed.OCI_MANIFEST, "digest": digest, "size": len(raw),
                                   "artifactType": artifact_type})
        seed.put_manifest(session, repo, tag, json.dumps(index).encode(), seed.OCI_INDEX)
    return {"digest": digest, "raw": raw, "media_type": seed.OCI_MANIFEST, "artifact_type": artifact_type}


def listed(session, repo: str, subject: str) -> list[str] | None:
    """The digests a fallback tag lists (None: no such tag)."""
    found = seed.get_manifest(session, repo, fallback_tag(subject))
    return None if found is None else [m["digest"] for m in json.loads(found[0])["manifests"]]


def referrers_by_tag(result: dict) -> dict:
    [entry] = result["images"]
    return {i["tag"]: [(r["digest"], r["artifact_type"], r["subject"]) for r in i["referrers"]]
            for key in ("copied", "unchanged") for i in entry[key]}


def as_item(referrer: dict, subject: dict) -> tuple:
    return referrer["digest"], referrer["artifact_type"], subject["digest"]


def test_signatures_and_sboms_follow_their_images_through_the_fallback_tag_and_a_rerun_brings_only_new_ones(
        lab_plain, lab_basic, tmp_path):
    up, down = seed.LabSession(lab_plain), seed.LabSession(lab_basic)
    signed = seed.push_image(up, "ref/app", "1.0", seed=1801)
    multi = seed.push_index(up, "ref/app", "2.0", seed=1802)
    plain = seed.push_image(up, "ref/app", "3.0", seed=1803)
    sig = push_referrer(up, "ref/app", signed, SIG, 1)
    sbom = push_referrer(up, "ref/app", signed, SBOM, 2)
    sbom_sig = push_referrer(up, "ref/app", sbom, SIG, 3)  # a signature of the SBOM
    multi_sig = push_referrer(up, "ref/app", multi, SIG, 4)
    expected = {"1.0": [as_item(sig, signed), as_item(sbom, signed), as_item(sbom_sig, sbom)],
                "2.0": [as_item(multi_sig, multi)], "3.0": []}
    args = {**lab_basic.conn(), "source_registry": lab_plain.url, "referrers": True,
            "images": [{"repository": "ref/app", "target": "mirror-ref/app"}]}

    # 1. check mode: the plan names every referrer, nothing is written
    mark = lab_basic.mark()
    checked, _rss = run_module("registry_sync", args, check=True)
    assert checked["changed"] and referrers_by_tag(checked) == expected, checked
    assert {i["tag"] for i in checked["images"][0]["excluded"]} == {fallback_tag(d["digest"]) for d in (signed, sbom, multi)}
    assert checked["diff"][0]["after"]["referrers"] == sorted(r[0] for items in expected.values() for r in items)
    assert lab_basic.count(mark, WRITES) == {}

    # 2. the role: images, then their referrers by digest, byte for byte, listed in the destination's fallback tags
    report = tmp_path / "mirror"
    ran = run_playbook("mirror.yml", {
        "mirror_source_registry": lab_plain.url, "mirror_registry": lab_basic.host, "mirror_referrers": True,
        "mirror_registries": {lab_basic.host: lab_basic.conn()}, "mirror_report_path": str(report),
        "mirror_images": [{"repository": "ref/app", "target": "mirror-ref/app"}]})
    assert ran.ok, ran.output
    result = ran.results["mirror_result"]
    assert result["changed"] and referrers_by_tag(result) == expected
    for referrer in (sig, sbom, sbom_sig, multi_sig):
        assert seed.get_manifest(down, "mirror-ref/app", referrer["digest"])[0] == referrer["raw"]
    assert listed(down, "mirror-ref/app", signed["digest"]) == [sig["digest"], sbom["digest"]]
    assert listed(down, "mirror-ref/app", sbom["digest"]) == [sbom_sig["digest"]]
    assert listed(down, "mirror-ref/app", multi["digest"]) == [multi_sig["digest"]]
    assert listed(down, "mirror-ref/app", plain["digest"]) is None
    assert f"| `1.0` | {sbom_sig['digest']} | {SIG} | {sbom['digest']} |" in (tmp_path / "mirror.md").read_text()

    # 3. an attestation added upstream after the mirror: the rerun brings it, and only it, to the unchanged image
    attestation = push_referrer(up, "ref/app", signed, ATTESTATION, 5)
    source_mark, mark = lab_plain.mark(), lab_basic.mark()
    again, _rss = run_module("registry_sync", args)
    assert again["changed"] and not again["images"][0]["copied"], again
    assert referrers_by_tag(again) == {"1.0": [as_item(attestation, signed)], "2.0": [], "3.0": []}
    assert listed(down, "mirror-ref/app", signed["digest"]) == [sig["digest"], sbom["digest"], attestation["digest"]]
    source_gets = lab_plain.requests(source_mark, methods=("GET",), path=r"/manifests/")
    manifest_gets = {r.path.rsplit("/", 1)[1] for r in source_gets}
    assert manifest_gets == {attestation["digest"]} | {fallback_tag(d["digest"]) for d in (signed, sbom, multi)}
    assert [r.path for r in lab_basic.requests(mark, methods=WRITES) if "/manifests/" in r.path] == [
        f"/v2/mirror-ref/app/manifests/{attestation['digest']}",
        f"/v2/mirror-ref/app/manifests/{fallback_tag(signed['digest'])}"]

    # 4. nothing new: no write; on the source, tags and fallback tags with HEAD, a GET only of fallback tags that exist
    source_mark, mark = lab_plain.mark(), lab_basic.mark()
    last, _rss = run_module("registry_sync", args)
    assert not last["changed"] and referrers_by_tag(last) == {"1.0": [], "2.0": [], "3.0": []}, last
    assert lab_basic.count(mark, WRITES) == {}
    seen = lab_plain.requests(source_mark)
    gets = sorted(r.path.rsplit("/", 1)[1] for r in seen if r.method == "GET" and "/manifests/" in r.path)
    assert gets == sorted(fallback_tag(d["digest"]) for d in (signed, sbom, multi))
    subjects = (signed, multi, plain, sig, sbom, sbom_sig, multi_sig, attestation)
    heads = sorted(r.path.rsplit("/", 1)[1] for r in seen if r.method == "HEAD" and "/manifests/" in r.path)
    assert heads == sorted(["1.0", "2.0", "3.0"] + [fallback_tag(d["digest"]) for d in subjects])
    assert len([r for r in seen if "/referrers/" in r.path]) == 1  # the 404 that says there is no API


def test_the_referrers_api_is_used_to_write_and_to_read_where_the_registry_has_it(lab_plain, lab_basic, personas):
    harbor = personas("harbor")  # the OCI 1.1 referrers API
    up, down = seed.LabSession(lab_plain), seed.LabSession(lab_basic)
    image = seed.push_image(up, "refapi/app", "1.0", seed=1811)
    sbom = push_referrer(up, "refapi/app", image, SBOM, 11)
    sbom_sig = push_referrer(up, "refapi/app", sbom, SIG, 12)
    expected = {"1.0": [as_item(sbom, image), as_item(sbom_sig, sbom)]}

    # Into the service: each referrer indexed by its API (OCI-Subject), no fallback tag written there.
    mark = len(harbor.seen)
    into, _rss = run_module("registry_sync", {
        **harbor.conn(), "source_registry": lab_plain.url, "referrers": True,
        "images": [{"repository": "refapi/app", "target": "mref/app"}]})
    assert into["changed"] and referrers_by_tag(into) == expected, into
    assert [d["digest"] for d in harbor.referrers_of("mref/app", image["digest"])] == [sbom["digest"]]
    assert [d["digest"] for d in harbor.referrers_of("mref/app", sbom["digest"])] == [sbom_sig["digest"]]
    assert not [s for s in harbor.seen[mark:] if s.method == "PUT" and "/manifests/sha256-" in s.path]

    # Out of the service: listed with the API (no fallback tag asked for), copied into a registry without one.
    mark = len(harbor.seen)
    out, _rss = run_module("registry_sync", {
        **lab_basic.conn(), "source_registry": harbor.url, "source_connection": harbor.conn(), "referrers": True,
        "images": [{"repository": "mref/app", "target": "mref-back/app"}]})
    assert out["changed"] and referrers_by_tag(out) == expected, out
    asked = [s.path for s in harbor.seen[mark:] if s.method == "GET" and "/referrers/" in s.path]
    assert sorted(asked) == sorted(f"/v2/mref/app/referrers/{d['digest']}" for d in (image, sbom, sbom_sig))
    assert not [s for s in harbor.seen[mark:] if "/manifests/sha256-" in s.path]
    assert listed(down, "mref-back/app", image["digest"]) == [sbom["digest"]]
    assert seed.get_manifest(down, "mref-back/app", sbom_sig["digest"])[0] == sbom_sig["raw"]
