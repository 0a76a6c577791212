"""Benchmark: facts (digest, created, size, platforms, labels) for 1,000 tags of one repository.

regops.registry in one call (the module's own work in-process, and a whole ansible-playbook run) against a loop of
`skopeo inspect`, python-dxf (one session, configs cached per digest as a careful script would), and the floor of
curl with keep-alive doing the same requests (a HEAD per tag, then each distinct manifest and config once), in the
same run, on the same throwaway registry on 127.0.0.1. Not a test.

    make bench            (or: .venv/bin/python bench/facts.py --rounds 3)
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from common import ROOT, measure_rounds, summarise, write_results

from tests.integration.runner import ensure_collection_link, run_ansible
from tests.lab import seed
from tests.lab.registry import start_registry

ACCEPT = seed.ACCEPT


def walk(session, repo: str, digests) -> tuple[list[str], list[str]]:
    """Every manifest (index children included) and config blob behind ``digests``: what the floor must GET."""
    manifests, configs, pending = [], [], list(digests)
    while pending:
        digest = pending.pop()
        if digest in manifests:
            continue
        manifests.append(digest)
        raw, _media_type, _digest = seed.get_manifest(session, repo, digest)
        data = json.loads(raw)
        pending += [m["digest"] for m in data.get("manifests") or []]
        if data.get("config", {}).get("digest") and data["config"]["digest"] not in configs:
            configs.append(data["config"]["digest"])
    return manifests, configs


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (/proc/<pid>/stat fields 14 and 15)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def counting_cpu(pid: int, func, seconds: list, children: list | None = None):
    """``func``, noting in ``seconds`` the registry CPU time each call costs, and in ``children`` the CPU time of the
    processes it started and waited for (GNU time and the tool under it: the client's side)."""
    def run():
        before, started = cpu_seconds(pid), resource.getrusage(resource.RUSAGE_CHILDREN)
        outcome = func()
        seconds.append(cpu_seconds(pid) - before)
        if children is not None:
            ended = resource.getrusage(resource.RUSAGE_CHILDREN)
            children.append(ended.ru_utime + ended.ru_stime - started.ru_utime - started.ru_stime)
        return outcome
    return run


def curl_config(path: Path, urls: list[str]) -> Path:
    path.write_text("".join(f'url = "{u}"\noutput = "/dev/null"\n' for u in urls))
    return path


def dxf_facts(host: str, repo: str, tags: list[str]) -> int:
    """What a python-dxf script does for the same facts: GET each tag's manifest, then configs and children once."""
    from dxf import DXF

    configs: dict[str, dict] = {}
    facts = 0
    with DXF(host, repo, insecure=True) as dxf:
        def config_of(manifest: dict) -> dict:
            digest = manifest["config"]["digest"]
            if digest not in configs:
                configs[digest] = json.loads(b"".join(dxf.pull_blob(digest)))
            return configs[digest]

        for tag in tags:
            text, _response = dxf.get_manifest_and_response(tag)
            manifest = json.loads(text)
            if manifest.get("manifests"):
                for child in manifest["manifests"]:
                    child_text, _r = dxf.get_manifest_and_response(child["digest"])
                    config_of(json.loads(child_text))
            else:
                config_of(manifest)
            facts += 1
    return facts


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tags", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    ensure_collection_link()
    from ansible_collections.regops.registry.plugins.module_utils.common import build_client
    from ansible_collections.regops.registry.plugins.module_utils.facts import FactsGatherer

    lab = start_registry("plain")
    tmp = Path(tempfile.mkdtemp(prefix="regops-bench-"))
    try:
        session = seed.LabSession(lab)
        expected = seed.seed_scale(session, repositories=1, tags_per_repository=args.tags, images_per_repository=50,
                                   prefix="bench")
        repo, tags = next(iter(expected.items()))
        tag_list = sorted(tags)
        manifests, configs = walk(session, repo, {t["digest"] for t in tags.values()})
        heads = curl_config(tmp / "heads", [f"{lab.url}/v2/{repo}/manifests/{t}" for t in tag_list])
        gets = curl_config(tmp / "gets", [f"{lab.url}/v2/{repo}/manifests/{d}" for d in manifests]
                           + [f"{lab.url}/v2/{repo}/blobs/{d}" for d in configs])
        print(f"seeded {len(tag_list)} tags ({len(manifests)} manifests, {len(configs)} configs) in {repo} on {lab.url}")

        def module_work():
            client = build_client(lab.conn().get)
            images = FactsGatherer(client, 16).tag_details(repo, client.list_tags(repo))
            assert len(images) == len(tag_list)
            client.close()

        def playbook_run():
            proc = run_ansible("ansible-playbook", [str(ROOT / "bench" / "facts.yml"), "-e", json.dumps(
                {"registry": lab.url, "repository": repo, "expected": len(tag_list)})])
            assert proc.returncode == 0, proc.stdout[-2000:]

        def ansible_floor():
            proc = run_ansible("ansible-playbook", [str(ROOT / "bench" / "facts_floor.yml")])
            assert proc.returncode == 0, proc.stdout[-2000:]

        def skopeo_loop():
            for tag in tag_list:
                subprocess.run(["skopeo", "inspect", "--tls-verify=false", "--no-tags", f"docker://{lab.host}/{repo}:{tag}"],
                               capture_output=True, check=True)

        def dxf_loop():
            assert dxf_facts(lab.host, repo, tag_list) == len(tag_list)

        def curl(parallel: bool):
            extra = ["--parallel", "--parallel-max", "16"] if parallel else []
            for config, head in ((heads, ["--head"]), (gets, [])):
                subprocess.run(["curl", "-sf", *head, "-H", f"Accept: {ACCEPT}", *extra, "-K", str(config)], check=True,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

        cases = {
            "regops module work (in-process, 1 call)": module_work,
            "regops ansible-playbook run (1 task)": playbook_run,
            "ansible-playbook alone (same play, no-op task)": ansible_floor,
            "skopeo inspect loop": skopeo_loop,
            "python-dxf (1 session, configs cached)": dxf_loop,
            "curl keep-alive floor (sequential)": lambda: curl(False),
            "curl --parallel 16 (concurrent floor)": lambda: curl(True),
        }
        registry_cpu: dict[str, list[float]] = {name: [] for name in cases}
        rows = summarise(measure_rounds({name: counting_cpu(lab.pid, func, registry_cpu[name])
                                         for name, func in cases.items()}, args.rounds))
        cpu_note = "Registry CPU time per run (median, user + system, from /proc): " + ", ".join(
            f"{name} {statistics.median(seconds):.2f} s" for name, seconds in registry_cpu.items())
        group = f"{len(tag_list)} tags, {len(manifests)} distinct manifests"
        write_results("facts", "Facts for 1,000 tags", {group: rows},
                      {group: ["skopeo inspect loop", "python-dxf (1 session, configs cached)",
                               "curl keep-alive floor (sequential)"]},
                      ["The curl floors know every URL in advance (tags, manifests and configs) and only fetch; "
                       "the others discover them as they go.",
                       "skopeo inspect and python-dxf GET each tag's manifest; regops sends a HEAD per tag and GETs "
                       "each distinct manifest and config once, 16 at a time.",
                       cpu_note,
                       "The whole run cannot go below Ansible's share (the no-op row) plus the registry's work spread "
                       "over the cores: a whole run 10x faster than the skopeo loop would need the rest to fit in the "
                       "difference."],
                      rounds=args.rounds, tags=len(tag_list))
    finally:
        lab.close()
        for path in tmp.iterdir():
            path.unlink()
        tmp.rmdir()
    return 0


if __name__ == "__main__":
    sys.exit(main())
