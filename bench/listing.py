"""Benchmark: the catalog of 2,000 repositories, and the tags of a 1,000-tag repository.

regops.registry (the client in-process as the modules call it, and whole ansible-playbook runs) against python-dxf
(`list_repos`, `list_aliases`), `skopeo list-tags` (skopeo has no catalog), and curl following the `Link` pages by
hand, on one throwaway registry on 127.0.0.1, the registry's default page size for everybody. Not a test.

    make bench            (or: .venv/bin/python bench/listing.py --rounds 3)
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

from common import ROOT, measure_rounds, summarise, write_results

from tests.integration.runner import ensure_collection_link, run_ansible
from tests.lab import seed
from tests.lab.registry import start_registry

CURL_PAGES = r"""
set -e
url="$1$2"; count=0
while [ -n "$url" ]; do
  link=$(curl -sf -D - -o /dev/null "$url" | tr -d '\r' | sed -n 's/^[Ll]ink: *<\([^>]*\)>.*/\1/p')
  count=$((count + 1))
  if [ -n "$link" ]; then case "$link" in http*) url="$link" ;; *) url="$1$link" ;; esac; else url=""; fi
done
echo "$count"
"""


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repositories", type=int, default=2000)
    parser.add_argument("--tags", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    ensure_collection_link()
    from ansible_collections.regops.registry.plugins.module_utils.common import build_client
    from dxf import DXF, DXFBase

    lab = start_registry("plain")
    try:
        session = seed.LabSession(lab)
        repos = seed.seed_many_repositories(session, "many", args.repositories - 1)
        tag_repo, tags = next(iter(seed.seed_scale(session, repositories=1, tags_per_repository=args.tags - 1,
                                                   images_per_repository=10, prefix="tags").items()))
        total_repos, total_tags = len(repos) + 1, len(tags)
        print(f"seeded {total_repos} repositories and {total_tags} tags in {tag_repo} on {lab.url}")

        def in_process(what):
            def run():
                client = build_client(lab.conn().get)
                found = client.catalog() if what == "catalog" else client.list_tags(tag_repo)
                assert len(found) == (total_repos if what == "catalog" else total_tags), len(found)
                client.close()
            return run

        def playbook(what):
            def run():
                proc = run_ansible("ansible-playbook", [str(ROOT / "bench" / "listing.yml"), "-e", json.dumps(
                    {"registry": lab.url, "what": what, "repository": tag_repo,
                     "expected": total_repos if what == "catalog" else total_tags})])
                assert proc.returncode == 0, proc.stdout[-2000:]
            return run

        def dxf_catalog():
            with DXFBase(lab.host, insecure=True) as dxf:
                assert len(dxf.list_repos()) == total_repos

        def dxf_tags():
            with DXF(lab.host, tag_repo, insecure=True) as dxf:
                assert len(dxf.list_aliases()) == total_tags

        def skopeo_tags():
            out = subprocess.run(["skopeo", "list-tags", "--tls-verify=false", f"docker://{lab.host}/{tag_repo}"],
                                 capture_output=True, check=True).stdout
            assert len(json.loads(out)["Tags"]) == total_tags

        def curl(path):
            return lambda: subprocess.run(["bash", "-c", CURL_PAGES, "pages", lab.url, path], check=True,
                                          stdout=subprocess.DEVNULL)

        catalog = {"regops module work (in-process)": in_process("catalog"),
                   "regops ansible-playbook run (registry_catalog)": playbook("catalog"),
                   "python-dxf list_repos": dxf_catalog,
                   "curl following Link pages": curl("/v2/_catalog")}
        tag_cases = {"regops module work (in-process)": in_process("tags"),
                     "regops ansible-playbook run (registry_tags)": playbook("tags"),
                     "python-dxf list_aliases": dxf_tags,
                     "skopeo list-tags": skopeo_tags,
                     "curl following Link pages": curl(f"/v2/{tag_repo}/tags/list")}
        groups = {f"catalog of {total_repos} repositories": summarise(measure_rounds(catalog, args.rounds)),
                  f"tags of a {total_tags}-tag repository": summarise(measure_rounds(tag_cases, args.rounds))}
        peers = {name: [n for n in rows if not n.startswith("regops")] for name, rows in groups.items()}
        write_results("listing", "Catalog and tag listing", groups, peers,
                      ["Everybody uses the registry's default page size (distribution pages its catalog by 100)."],
                      rounds=args.rounds)
    finally:
        lab.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
