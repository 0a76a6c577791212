"""Benchmark: promotion of a 5-layer ~250 MB image, to another repository of the same registry and to a second
registry, by regops.registry (the module's own work in-process, and the whole role run), `skopeo copy` (cold and warm
blob-info cache) and curl doing the same requests by hand. Same run, same two registries on 127.0.0.1, tools
alternated per round. Not a test: it prints medians and writes .tmp/bench/promote.json.

    .venv/bin/python bench/promote.py --rounds 3
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / ".tmp" / "collections")]

from tests.integration.runner import ensure_collection_link, run_playbook  # noqa: E402
from tests.lab import seed  # noqa: E402
from tests.lab.registry import start_registry  # noqa: E402

LAYER = 50 << 20
# skopeo keeps it under /var/lib/containers when run as root, under ~/.local/share/containers otherwise.
BLOB_INFO_CACHES = [Path("/var/lib/containers/cache/blob-info-cache-v1.boltdb"),
                    Path.home() / ".local/share/containers/cache/blob-info-cache-v1.boltdb"]


def make_layer(index: int) -> bytes:
    return os.urandom(LAYER)


def push_big_image(session) -> dict:
    layers = [make_layer(i) for i in range(5)]
    digests = [seed.push_blob(session, "bench/src", data) for data in layers]
    config = json.dumps({"architecture": "amd64", "os": "linux", "created": "2024-01-01T00:00:00Z",
                         "rootfs": {"type": "layers", "diff_ids": digests}}).encode()
    config_digest = seed.push_blob(session, "bench/src", config)
    manifest = {"schemaVersion": 2, "mediaType": seed.OCI_MANIFEST,
                "config": {"mediaType": seed.OCI_CONFIG, "digest": config_digest, "size": len(config)},
                "layers": [{"mediaType": seed.OCI_LAYER, "digest": d, "size": LAYER} for d in digests]}
    raw = json.dumps(manifest).encode()
    seed.put_manifest(session, "bench/src", "1", raw, seed.OCI_MANIFEST)
    return {"raw": raw, "blobs": [config_digest] + digests}


def curl_same_registry(src, repo: str, image: dict) -> None:
    for digest in image["blobs"]:
        subprocess.run(["curl", "-sf", "-o", "/dev/null", "-X", "POST",
                        f"{src.url}/v2/{repo}/blobs/uploads/?mount={digest}&from=bench/src"], check=True)
    subprocess.run(["curl", "-sf", "-o", "/dev/null", "-X", "PUT", "-H", f"Content-Type: {seed.OCI_MANIFEST}",
                    "--data-binary", "@-", f"{src.url}/v2/{repo}/manifests/1"], input=image["raw"], check=True)


def curl_cross_registry(src, dst, repo: str, image: dict) -> None:
    for digest in image["blobs"]:
        location = subprocess.run(["curl", "-sf", "-o", "/dev/null", "-X", "POST", "-w", "%header{location}",
                                   f"{dst.url}/v2/{repo}/blobs/uploads/"], capture_output=True, text=True,
                                  check=True).stdout.strip()
        location = location if location.startswith("http") else dst.url + location
        sep = "&" if "?" in location else "?"
        get = subprocess.Popen(["curl", "-sf", f"{src.url}/v2/bench/src/blobs/{digest}"], stdout=subprocess.PIPE)
        subprocess.run(["curl", "-sf", "-o", "/dev/null", "-X", "PUT", "-H", "Content-Type: application/octet-stream",
                        "-H", "Transfer-Encoding: chunked", "--data-binary", "@-", f"{location}{sep}digest={digest}"],
                       stdin=get.stdout, check=True)
        get.wait()
    subprocess.run(["curl", "-sf", "-o", "/dev/null", "-X", "PUT", "-H", f"Content-Type: {seed.OCI_MANIFEST}",
                    "--data-binary", "@-", f"{dst.url}/v2/{repo}/manifests/1"], input=image["raw"], check=True)


def skopeo_copy(src, dst, repo: str, cold: bool) -> None:
    if cold:  # as on a fresh CI runner
        for cache in BLOB_INFO_CACHES:
            cache.unlink(missing_ok=True)
    subprocess.run(["skopeo", "copy", "-q", "--src-tls-verify=false", "--dest-tls-verify=false",
                    f"docker://{src.host}/bench/src:1", f"docker://{dst.host}/{repo}:1"], check=True)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    ensure_collection_link()
    if not shutil.which("curl"):
        print("curl is needed", file=sys.stderr)
        return 1
    from ansible_collections.regops.registry.plugins.module_utils.common import build_client
    from ansible_collections.regops.registry.plugins.module_utils.copy import copy_image

    src, dst = start_registry("plain"), start_registry("plain")
    try:
        image = push_big_image(seed.LabSession(src))
        counter = iter(range(10_000))

        def fresh() -> str:
            return f"bench/t{next(counter)}"

        def module(to):
            def run():
                source, target = build_client(src.conn().get), build_client(to.conn().get)
                copy_image(source, "bench/src", "1", target, fresh(), "1", concurrency=8)
                source.close()
                target.close()
            return run

        def role(to):
            def run():
                result = run_playbook("promote.yml", {"promote_source": f"{src.host}/bench/src:1",
                                                      "promote_targets": [f"{to.host}/{fresh()}:1"],
                                                      "promote_registries": {src.host: src.conn(), to.host: to.conn()}})
                assert result.ok, result.output[-2000:]
            return run

        cases = {
            "same registry": {
                "regops module work (in-process)": module(src),
                "regops role, whole ansible-playbook run": role(src),
                "skopeo copy, cold blob-info cache": lambda: skopeo_copy(src, src, fresh(), True),
                "skopeo copy, warm blob-info cache": lambda: skopeo_copy(src, src, fresh(), False),
                "curl by hand (6 mounts + manifest PUT)": lambda: curl_same_registry(src, fresh(), image),
            },
            "other registry": {
                "regops module work (in-process)": module(dst),
                "regops role, whole ansible-playbook run": role(dst),
                "skopeo copy, cold blob-info cache": lambda: skopeo_copy(src, dst, fresh(), True),
                "skopeo copy, warm blob-info cache": lambda: skopeo_copy(src, dst, fresh(), False),
                "curl by hand (6 streamed GET|PUT + manifest PUT)": lambda: curl_cross_registry(src, dst, fresh(), image),
            },
        }
        summary = {}
        for group, group_cases in cases.items():
            times = {name: [] for name in group_cases}
            for _round in range(args.rounds):
                for name, func in group_cases.items():
                    start = time.perf_counter()
                    func()
                    times[name].append(time.perf_counter() - start)
            curl = statistics.median(next(t for n, t in times.items() if n.startswith("curl")))
            print(f"\n{group}: 5 layers x 50 MiB\n{'case':<50} {'median s':>9} {'min':>7} {'max':>7} {'vs curl':>8}")
            summary[group] = {}
            for name, values in times.items():
                median = statistics.median(values)
                summary[group][name] = {"median": median, "min": min(values), "max": max(values), "ratio_to_curl": median / curl}
                print(f"{name:<50} {median:>9.3f} {min(values):>7.3f} {max(values):>7.3f} {median / curl:>7.2f}x")
        out = ROOT / ".tmp" / "bench" / "promote.json"
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps({"rounds": args.rounds, "layers": 5, "layer_bytes": LAYER, "results": summary}, indent=2))
        print(f"\nwritten to {out}")
    finally:
        src.close()
        dst.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
