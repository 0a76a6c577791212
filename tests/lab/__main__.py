"""Lab CLI for the demo: ``python -m tests.lab up|seed-demo|down --state PATH``.

``up`` starts a registry in a detached process (``serve``) on 127.0.0.1 and returns once it answers;
the state file (JSON: url, host, ca_path, users, pid, workdir) is what the other commands and the
demo playbook read.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def serve(args) -> int:
    from tests.lab.registry import start_registry

    workdir = Path(tempfile.mkdtemp(prefix=f"regops-demo-{args.mode}-"))
    lab = start_registry(args.mode, workdir, port=args.port)
    state = {"mode": lab.mode, "url": lab.url, "host": lab.host, "ca_path": lab.ca_path, "users": lab.users,
             "pid": os.getpid(), "workdir": str(workdir), "log_path": str(lab.log_path), "conn": lab.conn()}
    tmp = Path(args.state).with_suffix(".tmp")
    tmp.write_text(json.dumps(state, indent=2))
    tmp.replace(args.state)
    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
    signal.signal(signal.SIGINT, lambda *_: stop.append(1))
    while not stop:
        time.sleep(0.2)
    lab.close()
    shutil.rmtree(workdir, ignore_errors=True)
    return 0


def up(args) -> int:
    state = Path(args.state)
    state.parent.mkdir(parents=True, exist_ok=True)
    if state.exists():
        down(args)
    cmd = [sys.executable, "-m", "tests.lab", "serve", "--mode", args.mode, "--state", str(state)]
    if args.port:
        cmd += ["--port", str(args.port)]
    log = open(state.with_suffix(".log"), "ab")  # noqa: SIM115 - handed to the child
    proc = subprocess.Popen(cmd, stdout=log, stderr=log, stdin=subprocess.DEVNULL, start_new_session=True,
                            cwd=Path(__file__).resolve().parents[2])
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if state.exists():
            info = json.loads(state.read_text())
            print(f"registry ({info['mode']}) listening at {info['url']}")
            return 0
        if proc.poll() is not None:
            break
        time.sleep(0.1)
    print(state.with_suffix(".log").read_text(errors="replace")[-2000:], file=sys.stderr)
    return 1


def down(args) -> int:
    state = Path(args.state)
    if not state.exists():
        return 0
    info = json.loads(state.read_text())
    try:
        os.kill(info["pid"], signal.SIGTERM)
        for _attempt in range(100):
            os.kill(info["pid"], 0)
            time.sleep(0.1)
    except ProcessLookupError:
        pass
    state.unlink()
    print("registry stopped")
    return 0


def seed_demo(args) -> int:
    from tests.lab import seed

    info = json.loads(Path(args.state).read_text())

    class _Lab:  # the attributes LabSession needs
        url, mode, ca_path, users = info["url"], info["mode"], info["ca_path"], info["users"]

    session = seed.LabSession(_Lab)
    labels = {"org.opencontainers.image.source": "https://example.invalid/demo/app"}
    pushed = []
    for i, (tag, created) in enumerate([("1.0.0", "2024-01-10T09:00:00Z"), ("1.1.0", "2024-03-02T12:30:00Z"),
                                        ("2.0.0-rc.1", "2024-05-20T08:15:00Z")]):
        image = seed.push_image(session, "demo/app", tag, created=created, seed=10 + i, layer_sizes=(4096, 1024),
                                labels={**labels, "org.opencontainers.image.version": tag})
        pushed.append((f"demo/app:{tag}", image["digest"]))
        if tag == "1.1.0":
            seed.tag_manifest(session, "demo/app", "latest", image["raw"], image["media_type"])
            pushed.append(("demo/app:latest", image["digest"]))
    index = seed.push_index(session, "demo/multi", "1.0", labels=labels)
    pushed.append(("demo/multi:1.0", index["digest"]))
    legacy = seed.push_image(session, "demo/legacy", "1", kind="docker", created="2023-06-01T00:00:00Z", seed=30)
    pushed.append(("demo/legacy:1", legacy["digest"]))
    for name, digest in pushed:
        print(f"pushed {name:<22} {digest}")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.lab")
    sub = parser.add_subparsers(dest="command", required=True)
    for name in ("up", "serve"):
        cmd = sub.add_parser(name)
        cmd.add_argument("--mode", choices=("plain", "basic", "token"), default="plain")
        cmd.add_argument("--state", required=True)
        cmd.add_argument("--port", type=int)
    for name in ("down", "seed-demo"):
        sub.add_parser(name).add_argument("--state", required=True)
    args = parser.parse_args()
    return {"up": up, "serve": serve, "down": down, "seed-demo": seed_demo}[args.command](args)


if __name__ == "__main__":
    sys.exit(main())
