"""Benchmark: upload of a 1 GiB blob from a file, with the peak RSS of the process doing it.

regops.registry as the module runs (registry_blob_upload in its own process, as Ansible starts it, measured with
wait4) and as the whole ansible-playbook run, against python-dxf `push_blob` and curl (POST, then one streamed PUT
of the file), each into a fresh repository of the same throwaway registry on 127.0.0.1. Like-for-like rows give
every tool the digest (curl cannot hash); two more rows show regops and python-dxf hashing the file first. Not a test.

    make bench            (or: .venv/bin/python bench/upload.py, 5 rounds by default)
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
from itertools import count
from pathlib import Path

from common import ROOT, measure_rounds, run_measured, summarise, write_results
from facts import counting_cpu

from tests.integration.runner import ensure_collection_link, run_ansible, run_module
from tests.lab import seed
from tests.lab.registry import start_registry

DXF_PUSH = """
import sys
from dxf import DXF
host, repo, path, digest = sys.argv[1:5]


def chunks():  # push_blob takes a known digest only with data=
    with open(path, "rb") as handle:
        while block := handle.read(1 << 20):
            yield block


with DXF(host, repo, insecure=True) as dxf:
    print(dxf.push_blob(data=chunks(), digest=digest) if digest else dxf.push_blob(path))
"""

CURL_PUSH = """
set -e
location=$(curl -sf -o /dev/null -X POST -w '%header{location}' "$1/v2/$2/blobs/uploads/")
case "$location" in http*) ;; *) location="$1$location" ;; esac
case "$location" in *\\?*) sep='&' ;; *) sep='?' ;; esac
curl -sf -o /dev/null -X PUT -H 'Content-Type: application/octet-stream' -T "$3" "$location${sep}digest=$4"
"""


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--size-mib", type=int, default=1024)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    ensure_collection_link()
    from ansible_collections.regops.registry.plugins.module_utils.uploads import file_digest

    workdir = Path(tempfile.mkdtemp(prefix="regops-bench-upload-"))
    lab = start_registry("plain", workdir / "lab")
    blob = workdir / "blob"
    try:
        with open(blob, "wb") as handle:  # random bytes, 64 MiB at a time
            for _chunk in range(args.size_mib // 64):
                handle.write(os.urandom(64 << 20))
        digest, size = file_digest(str(blob))
        names = count()
        repos: list[str] = []

        def fresh() -> str:
            repos.append(f"bench/up{next(names)}")
            return repos[-1]

        def module_process(given: bool):
            args = {"registry": lab.url, "repository": fresh(), "path": str(blob)}
            result, rss = run_module("registry_blob_upload", {**args, "digest": digest} if given else args)
            assert result.get("digest") == digest and result.get("changed"), result
            return None, rss / (1 << 20)

        def playbook_run():
            proc = run_ansible("ansible-playbook", [str(ROOT / "bench" / "upload.yml"), "-e", json.dumps(
                {"registry": lab.url, "repository": fresh(), "path": str(blob), "digest": digest})])
            assert proc.returncode == 0, proc.stdout[-2000:]

        def dxf_push(given: bool):
            return run_measured([sys.executable, "-c", DXF_PUSH, lab.host, fresh(), str(blob), digest if given else ""])

        def curl_push():
            return run_measured(["bash", "-c", CURL_PUSH, "curl-push", lab.url, fresh(), str(blob), digest])

        cases = {"regops registry_blob_upload, digest given (module process)": lambda: module_process(True),
                 "regops ansible-playbook run, digest given (1 task)": playbook_run,
                 "python-dxf push_blob, digest given (data=)": lambda: dxf_push(True),
                 "curl POST + streamed PUT, digest given": curl_push,
                 "regops registry_blob_upload, hashing the file first (module process)": lambda: module_process(False),
                 "python-dxf push_blob, hashing the file first": lambda: dxf_push(False)}
        # Each case starts with nothing dirty in the page cache: 1 GiB written by the previous tool would otherwise be
        # flushed to disk during the next one's run, and whichever tool came next would pay for it.
        # Where the time goes on 2 cores: the CPU each upload costs the tool (its process and what it started) and the
        # registry (hashing and writing what it receives), next to the wall time.
        registry_cpu = {name: [] for name in cases}
        client_cpu = {name: [] for name in cases}
        samples = measure_rounds({name: counting_cpu(lab.pid, func, registry_cpu[name], client_cpu[name])
                                  for name, func in cases.items()}, args.rounds, prepare=lambda _name: os.sync())
        cpu_note = ("CPU per upload, medians (user + system): " + "; ".join(
            f"{name}: the tool {statistics.median(client_cpu[name]):.2f} s, the registry "
            f"{statistics.median(registry_cpu[name]):.2f} s" for name in cases)
            + f". Load average when the run ended: {', '.join(f'{x:.1f}' for x in os.getloadavg())} (2 cores).")
        session = seed.LabSession(lab)
        assert all(seed.blob_exists(session, repo, digest) for repo in repos)  # every tool stored the very blob
        rows = summarise(samples)
        group = f"{args.size_mib} MiB blob from a file"
        write_results("upload", "Upload of a 1 GiB blob", {group: rows},
                      {group: ["python-dxf push_blob, digest given (data=)", "curl POST + streamed PUT, digest given",
                               "python-dxf push_blob, hashing the file first"]},
                      ["Peak RSS is that of the process doing the upload, measured by GNU time: the module process as "
                       "Ansible starts it, the python-dxf script, the curl process.",
                       "The digest is part of the upload. Given it, regops asks the registry for the blob by it and "
                       "hashes the file while the chunks go out (it still refuses a file that does not match); "
                       "python-dxf takes it only with data= (a chunked PUT of a generator). Without it, both hash "
                       "the file before uploading, which is what the last two rows show.",
                       "Every case starts after a sync, so none pays for the disk writes of the one before.",
                       cpu_note],
                      rounds=args.rounds, size_mib=args.size_mib)
    finally:
        lab.close()
        blob.unlink(missing_ok=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
