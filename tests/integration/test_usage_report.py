"""The usage report playbook (issue 18): its numbers equal an independent count from ``skopeo inspect --raw``, and
the page it writes renders every chart in a real browser (headless Chromium) without fetching anything."""

from __future__ import annotations

import json
import re
import subprocess
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.integration import browser
from tests.integration.runner import ROOT, run_ansible
from tests.lab import seed

PREFIX = "usage"
HOSTILE = '<script>document.title="owned"</script><img src=x onerror=alert(1)>'
CHART_COLORS = {(0x2B, 0x6C, 0xB0), (0x90, 0xCD, 0xF4)}  # usage_html.COLORS[0:2], the bars
SCREENSHOT = ROOT / ".tmp" / "usage-report" / "usage-report.png"
INDEX_TYPES = ("application/vnd.oci.image.index.v1+json", "application/vnd.docker.distribution.manifest.list.v2+json")


def seed_usage(session) -> dict:
    """Three repositories sharing a base image's layers, an index with an attestation, old and new images.
    Returns (repository, tag) -> created."""
    created = {}
    for name, offset in (("api", 0), ("web", 10), ("jobs", 20)):
        repo = f"{PREFIX}/{name}"
        # the same image (same seed, same config) in every repository: its blobs are stored once
        seed.push_image(session, repo, "base", seed=7, layer_sizes=(6000, 900), created="2024-01-10T00:00:00Z")
        created[(repo, "base")] = "2024-01-10T00:00:00Z"
        for month in range(1, 4):
            created[(repo, f"old-{month}")] = f"2023-0{month}-15T00:00:00Z"
            seed.push_image(session, repo, f"old-{month}", seed=offset + month, layer_sizes=(2000 * month,),
                            created=created[(repo, f"old-{month}")])
        seed.push_image(session, repo, "1.0", seed=offset + 5, layer_sizes=(3000 + offset,),
                        created="2024-03-01T00:00:00Z", labels={"org.opencontainers.image.title": HOSTILE})
        created[(repo, "1.0")] = "2024-03-01T00:00:00Z"
    seed.push_index(session, f"{PREFIX}/web", "multi", seed=300, with_attestation=True, created="2024-02-02T00:00:00Z")
    created[(f"{PREFIX}/web", "multi")] = "2024-02-02T00:00:00Z"
    image = seed.push_image(session, f"{PREFIX}/api", "old-same", seed=1, layer_sizes=(2000,),
                            created="2023-01-15T00:00:00Z")  # old-1 of api again, under a second tag
    created[(f"{PREFIX}/api", "old-same")] = "2023-01-15T00:00:00Z"
    assert image["digest"] == seed.head_manifest(session, f"{PREFIX}/api", "old-1")
    return created


def skopeo_raw(lab, repository: str, reference: str) -> dict:
    sep = "@" if reference.startswith("sha256:") else ":"
    out = subprocess.run(["skopeo", "inspect", "--raw", *lab.skopeo_options(), f"docker://{lab.host}/{repository}{sep}{reference}"],
                         capture_output=True, text=True, check=True, timeout=120).stdout
    return json.loads(out)


def independent_blobs(lab, repository: str, tag: str) -> tuple[str, dict]:
    """(digest of the tag's manifest, blob digest -> size) from skopeo alone: config and layers; for an index, those
    of every manifest it lists (platforms and attestations)."""
    manifest = skopeo_raw(lab, repository, tag)
    digest = seed.head_manifest(seed.LabSession(lab), repository, tag)
    manifests = [skopeo_raw(lab, repository, m["digest"]) for m in manifest["manifests"]] \
        if manifest.get("mediaType") in INDEX_TYPES or "manifests" in manifest else [manifest]
    return digest, {d["digest"]: d["size"] for m in manifests for d in [m["config"]] + m["layers"]}


def independent_count(lab) -> dict:
    """Every number the report's JSON states about storage and the prune, computed without the collection."""
    session = seed.LabSession(lab)
    repositories = sorted(r for r in seed.catalog(session) if r.startswith(PREFIX + "/"))
    pairs = [(r, t) for r in repositories for t in seed.list_tags(session, r)]
    with ThreadPoolExecutor(max_workers=4) as pool:
        found = dict(zip(pairs, pool.map(lambda p: independent_blobs(lab, *p), pairs)))
    sizes, per_repo = {}, {}
    for (repo, tag), (digest, blobs) in found.items():
        sizes.update(blobs)
        per_repo.setdefault(repo, {"tags": 0, "digests": {}})
        per_repo[repo]["tags"] += 1
        per_repo[repo]["digests"][digest] = blobs
    blob_sets = {r: set().union(*v["digests"].values()) for r, v in per_repo.items()}
    shared = {b for b in sizes if sum(b in s for s in blob_sets.values()) > 1}
    # The policy of the run below: match_tags ^old- and nothing kept among them; a digest goes when all its tags go.
    doomed = {(repo, d) for (repo, tag), (d, _b) in found.items()
              if all(t.startswith("old-") for (r2, t), (d2, _x) in found.items() if r2 == repo and d2 == d)}
    kept_blobs = set().union(*(b for (repo, _t), (d, b) in found.items() if (repo, d) not in doomed))
    doomed_blobs = set().union(*(per_repo[repo]["digests"][d] for repo, d in doomed))
    return {"total_bytes": sum(sizes.values()), "blobs": len(sizes),
            "repositories": {r: {"repository": r, "tags": v["tags"], "images": len(v["digests"]),
                                 "blobs": len(blob_sets[r]), "bytes": sum(sizes[b] for b in blob_sets[r]),
                                 "shared_bytes": sum(sizes[b] for b in blob_sets[r] & shared)}
                             for r, v in per_repo.items()},
            "frees_bytes": sum(sizes[b] for b in doomed_blobs - kept_blobs),
            "digests_deleted": len(doomed)}


@pytest.fixture(scope="module")
def report(lab_plain, tmp_path_factory):
    created = seed_usage(seed.LabSession(lab_plain))
    dest = tmp_path_factory.mktemp("usage") / "reports" / "usage"
    extra = {"report_connection": lab_plain.conn(), "report_repositories": [f"^{PREFIX}/"], "report_dest": str(dest),
             "prune_match_tags": ["^old-"], "report_stale_after": "400d"}
    proc = run_ansible("ansible-playbook", ["regops.registry.usage_report", "-e", json.dumps(extra)])
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]
    return dest, created


def test_the_numbers_equal_an_independent_count_from_skopeo(lab_plain, report):
    dest, created = report
    numbers = json.loads(dest.with_suffix(".json").read_text())
    truth = independent_count(lab_plain)
    assert numbers["total_bytes"] == truth["total_bytes"] and numbers["blobs"] == truth["blobs"]
    assert {r["repository"]: r for r in numbers["repositories"]} == truth["repositories"]
    # the base image is in all three repositories: shared, and stored once in the total
    assert all(r["shared_bytes"] > 6900 for r in numbers["repositories"])
    assert numbers["total_bytes"] < sum(r["bytes"] for r in numbers["repositories"])
    prune = numbers["prune"]
    assert prune["frees_bytes"] == truth["frees_bytes"] > 0 and prune["digests_deleted"] == truth["digests_deleted"]
    assert prune["tags_deleted"] == 10  # old-1..3 in three repositories, and api's old-same
    stale = numbers["stale_tags"]
    assert stale["count"] == sum(1 for c in created.values() if c < stale["before"])
    assert numbers["age"]["unit"] == "month" and numbers["age"]["periods"][0]["period"] == "2023-01"
    assert sum(p["tags"] for p in numbers["age"]["periods"]) == len(created) == numbers["tags"]


def test_the_page_renders_every_chart_in_chromium_and_fetches_nothing(report):
    if browser.chromium() is None:
        pytest.fail("chromium is missing: make system-deps installs it (Debian package chromium)")
    page = report[0].with_suffix(".html")
    html = page.read_text()
    # nothing to fetch: no element with a source or a link, no stylesheet URL (registry text is escaped: no raw '<')
    assert not re.search(r"""<[a-z][^>]*\s(?:src|href|xlink:href)\s*=|url\(|@import""", html, re.I)
    dom = browser.dump_dom(page)
    charts = re.findall(r'<svg class="chart" data-chart="(\w+)".*?</svg>', dom, re.S)
    assert charts == ["storage", "age", "largest", "prune"]
    for chart in charts:
        body = re.search(rf'data-chart="{chart}".*?</svg>', dom, re.S).group(0)
        assert len(re.findall(r"<rect ", body)) >= 3, chart  # bars drawn
    # the hostile label is text on the page, not a script or an image
    assert "<script" not in dom and "<img" not in dom and "owned" not in re.search(r"<title>(.*?)</title>", dom).group(1)
    assert "&lt;script&gt;" in dom
    png = browser.screenshot(page, SCREENSHOT, width=1000, height=1600)
    width, height, pixels = browser.png_pixels(png)
    assert (width, height) == (1000, 1600)
    bars = sum(1 for p in pixels if p in CHART_COLORS)
    assert bars > 5000, bars  # the charts are painted, not just present in the DOM


def test_docs_show_a_screenshot():
    shown = ROOT / "docs" / "images" / "usage-report.png"
    assert shown.exists() and shown.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "images/usage-report.png" in (ROOT / "docs" / "usage-report.md").read_text()
    assert "docs/images/usage-report.png" in (ROOT / "README.md").read_text()
