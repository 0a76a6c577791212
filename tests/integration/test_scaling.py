"""docs/scaling.md (issue 17): the sharded prune playbook, run exactly as the guide shows it.

The guide's one YAML block is the playbook; only the registry's name is pointed at the lab, and the shard count,
the repositories and the report directory are given with ``-e``, as a user would. With one shard and with three
(``--forks 3``) the merged reports must be the same plan: one shard plans in check mode, three shards prune for real.
"""

from __future__ import annotations

import json

from tests.integration.runner import ROOT, run_ansible
from tests.integration.test_doc_examples import BLOCK
from tests.lab import seed

GUIDE = ROOT / "docs" / "scaling.md"
REPOSITORIES = 5


def documented_playbook(tmp_path, registry: str):
    [text] = [match.group(1) for match in BLOCK.finditer(GUIDE.read_text())]  # the guide's only YAML block
    path = tmp_path / "prune-shards.yml"
    path.write_text(text.replace("registry.example.com", registry))
    return path


def run_shards(playbook, reports, shards: int, *, check: bool) -> dict:
    extra = {"shard_count": shards, "shard_filter": "^shards/", "shard_report_dir": str(reports)}
    proc = run_ansible("ansible-playbook", ["--forks", str(shards), str(playbook), "-e", json.dumps(extra)], check=check)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    return json.loads((reports / "prune.json").read_text())


def comparable(report: dict) -> dict:
    """The plan: the report without what differs between a check-mode run and a real one of the same plan (the
    moments, the mode, what changed, where it was written)."""
    from ansible_collections.regops.registry.plugins.filter.prune import _timeless

    copy = _timeless(report)
    for key in ("report", "check_mode", "changed", "refused"):
        copy.pop(key)
    return copy


def test_sharded_prune_merges_into_the_single_run_report(lab_plain, tmp_path):
    session = seed.LabSession(lab_plain)
    seeded = seed.seed_prune(session, repositories=REPOSITORIES, prefix="shards", builds=15, images_per_repository=15)
    playbook = documented_playbook(tmp_path, lab_plain.url)

    single = run_shards(playbook, tmp_path / "one", 1, check=True)
    assert sorted(p["repository"] for p in single["repositories"]) == sorted(seeded)
    assert single["check_mode"] is True and single["summary"]["deleted"] > 0
    assert {repo: sorted(seed.list_tags(session, repo)) for repo in seeded} == {
        repo: sorted(data["tags"]) for repo, data in seeded.items()}  # check mode deleted nothing

    sharded = run_shards(playbook, tmp_path / "three", 3, check=False)
    assert comparable(sharded) == comparable(single)
    assert sharded["check_mode"] is False and sharded["changed"] is True and sharded["refused"] == []
    assert sharded["report"] == {"json": str(tmp_path / "three" / "prune.json"),
                                 "markdown": str(tmp_path / "three" / "prune.md")}
    # every shard wrote its own report, and each repository is in exactly one of them
    shards = [json.loads((tmp_path / "three" / f"registry-shard-{n}.json").read_text()) for n in range(3)]
    assert sorted(p["repository"] for s in shards for p in s["repositories"]) == sorted(seeded)
    assert all(s["repositories"] for s in shards)
    markdown = (tmp_path / "three" / "prune.md").read_text()
    assert all(f"## {repo}" in markdown for repo in seeded) and "Mode: applied" in markdown
    for plan in single["repositories"]:  # exactly what the single run planned to keep is left
        assert sorted(seed.list_tags(session, plan["repository"])) == sorted(plan["keep_tags"]), plan["repository"]
