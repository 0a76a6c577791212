"""Benchmark: the CPU time (user + sys) a client spends per request, the registry_tags module process against curl.

The same requests for both: 20,000 tags in 20 repositories (bench/scale.py's cached storage), a HEAD per tag, then a
GET of each distinct manifest and config. On 2 cores the client's CPU is taken from the registry's: this is the
module-to-floor gap of bench/scale.py when the machine is busy (docs/scaling.md). Not a test.

    .venv/bin/python bench/cpu_per_request.py
"""

from __future__ import annotations

import resource
import tempfile
import time
from pathlib import Path

from scale import SHAPES, curl_floor, module_process

from tests.integration.runner import ensure_collection_link
from tests.lab import bulk
from tests.lab.registry import start_registry


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def cpu_and_wall(run) -> tuple[float, float]:
    cpu, start = children_cpu(), time.perf_counter()
    run()
    return children_cpu() - cpu, time.perf_counter() - start


def main() -> None:
    ensure_collection_link()
    shape = SHAPES["20000"]
    requests = shape.tags + 2 * shape.images * shape.repositories
    with tempfile.TemporaryDirectory(prefix="regops-cpu-") as tmp:
        tmp = Path(tmp)
        (tmp / "read").mkdir()
        (tmp / "read" / "storage").symlink_to(bulk.cached_storage(shape))
        with start_registry("plain", tmp / "read") as lab:
            for name, run in (("curl --parallel 16", lambda: curl_floor(lab, shape, tmp)),
                              ("registry_tags module process", lambda: module_process(lab, shape, tmp))):
                cpu, wall = cpu_and_wall(run)
                print(f"{name}: {requests:,} requests, CPU {cpu:.1f} s ({cpu * 1000 / requests:.2f} ms per request), "
                      f"wall {wall:.0f} s")


if __name__ == "__main__":
    main()
