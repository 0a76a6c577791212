"""Facts for 1,000 tags across 20 repositories agree, tag for tag, with skopeo inspect (issue 3)."""

from __future__ import annotations

import json
import subprocess
from concurrent.futures import ThreadPoolExecutor

from tests.integration.runner import run_playbook
from tests.lab import seed


def skopeo_inspect(lab, repository: str, tag: str) -> dict:
    out = subprocess.run(["skopeo", "inspect", "--tls-verify=false", "--no-tags", f"docker://{lab.host}/{repository}:{tag}"],
                         capture_output=True, text=True, check=True, timeout=120).stdout
    return json.loads(out)


def test_facts_for_1000_tags_agree_with_skopeo(lab_plain):
    session = seed.LabSession(lab_plain)
    expected = seed.seed_scale(session, repositories=20, tags_per_repository=50)
    assert sum(len(tags) for tags in expected.values()) >= 1000
    repositories = sorted(expected)
    run = run_playbook("scale.yml", {"conn": lab_plain.conn(), "repositories": repositories})
    assert run.ok, run.output[-3000:]
    facts = {repo: {image["tag"]: image for image in images} for repo, images in zip(repositories, run.results)}

    pairs = [(repo, tag) for repo in repositories for tag in sorted(expected[repo])]
    with ThreadPoolExecutor(max_workers=4) as pool:
        skopeo = dict(zip(pairs, pool.map(lambda p: skopeo_inspect(lab_plain, *p), pairs)))

    for repo, tag in pairs:
        ours, theirs, truth = facts[repo][tag], skopeo[(repo, tag)], expected[repo][tag]
        assert ours["digest"] == theirs["Digest"] == truth["digest"], (repo, tag)
        assert ours["created"] == truth["created"]
        assert seed_time(theirs["Created"]) == truth["created"], (repo, tag)
        platforms = {(p["os"], p["architecture"]) for p in ours["platforms"]}
        assert (theirs["Os"], theirs["Architecture"]) in platforms and (truth["os"], truth["architecture"]) in platforms
        assert ours["labels"] == (theirs["Labels"] or {}) == truth["labels"], (repo, tag)
        assert set(ours["shared_tags"]) == {t for t, v in expected[repo].items() if v["digest"] == truth["digest"]} - {tag}


def seed_time(value: str) -> str:
    """skopeo prints Go times (``2024-01-01T00:00:00Z``); normalise the same way as the seed."""
    return value.replace("+00:00", "Z")
