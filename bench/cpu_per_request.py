"""CPU seconds (user + sys) of the registry_tags module process and of curl --parallel 16 for the same requests (20,000 tags in 20 repositories: a HEAD per tag, a GET of each distinct manifest and config), against the cached bulk storage. Not a test.

    .venv/bin/python bench/cpu_per_request.py
"""
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
sys.path[:0] = ["bench", ".", ".tmp/collections"]
import scale
from tests.lab import bulk
from tests.lab.registry import start_registry
from tests.integration.runner import ansible_env, ensure_collection_link

def children_cpu():
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime

shape = scale.SHAPES["20000"]
with tempfile.TemporaryDirectory() as tmp:
    tmp = Path(tmp)
    (tmp / "read").mkdir()
    (tmp / "read" / "storage").symlink_to(bulk.cached_storage(shape))
    with start_registry("plain", tmp / "read") as lab:
        before = children_cpu(); start = time.perf_counter()
        scale.curl_floor(lab, shape, tmp)
        curl = children_cpu() - before; curl_wall = time.perf_counter() - start
        args = tmp / "args.json"
        args.write_text(json.dumps({"ANSIBLE_MODULE_ARGS": {"registry": lab.url, "repositories": shape.names(),
                                                            "details": True, "sort": "none"}}))
        env = ansible_env({"PYTHONPATH": str(ensure_collection_link())})
        before = children_cpu(); start = time.perf_counter()
        subprocess.run([sys.executable, "-m", "ansible_collections.regops.registry.plugins.modules.registry_tags",
                        str(args)], env=env, check=True, stdout=subprocess.DEVNULL)
        module = children_cpu() - before; module_wall = time.perf_counter() - start
requests = 20000 + 2 * 2000
print(f"requests {requests}: curl CPU {curl:.1f} s ({curl*1000/requests:.2f} ms/request, wall {curl_wall:.0f} s); "
      f"module CPU {module:.1f} s ({module*1000/requests:.2f} ms/request, wall {module_wall:.0f} s)")
