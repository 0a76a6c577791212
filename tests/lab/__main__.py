"""Lab CLI (``make demo``): ``python -m tests.lab up|down|seed-demo|status --state PATH``.

``up`` starts a registry (and for ``--mode token`` its token server, as ``python -m tests.lab tokenserver``)
detached from this process (own sessions), writes the JSON state file (mode, url, host, port, ca_path,
users, pids, log_path, workdir, conn, ...) and returns once ``GET /v2/`` answers. ``down`` stops the
processes named in the state file (checked by command line, so a reused pid is never hit) and removes
the temp dir. ``seed-demo`` pushes the demo set with raw requests and prints it.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path


def _read_state(path: str) -> dict:
    return json.loads(Path(path).read_text())


def up(args) -> int:
    from tests.lab.registry import start_registry

    state_path = Path(args.state)
    state_path.parent.mkdir(parents=True, exist_ok=True)
    if state_path.exists():
        down(args)
    workdir = Path(tempfile.mkdtemp(prefix=f"regops-demo-{args.mode}-"))
    started = time.monotonic()
    try:
        lab = start_registry(args.mode, workdir, port=args.port, detached=True)
    except Exception:
        shutil.rmtree(workdir, ignore_errors=True)
        raise
    lab.owns_workdir = True  # `down` removes it
    tmp = state_path.with_name(state_path.name + ".tmp")
    tmp.write_text(json.dumps(lab.state(), indent=2))
    tmp.chmod(0o600)
    tmp.replace(state_path)
    print(f"registry ({lab.mode}) listening at {lab.url} (ready in {time.monotonic() - started:.2f} s; "
          f"state {state_path})")
    return 0


def down(args) -> int:
    from tests.lab.registry import Lab

    state_path = Path(args.state)
    if not state_path.exists():
        return 0
    state = _read_state(args.state)
    lab = Lab.from_state(state)
    lab.close()  # stops registry and token server by pid; removes the workdir it owns
    if state.get("owns_workdir", True):
        shutil.rmtree(state["workdir"], ignore_errors=True)
    state_path.unlink()
    print("registry stopped")
    return 0


def status(args) -> int:
    import requests

    state = _read_state(args.state)
    try:
        code = requests.get(f"{state['url']}/v2/", verify=state["ca_path"] or True, timeout=3).status_code
    except requests.RequestException as exc:
        print(f"{state['url']}: down ({exc.__class__.__name__})")
        return 1
    print(f"{state['url']}: up (GET /v2/ -> {code}), pids {state['pids']}")
    return 0


def seed_demo(args) -> int:
    from tests.lab import seed
    from tests.lab.registry import Lab

    session = seed.session_for(Lab.from_state(_read_state(args.state)))
    labels = {"org.opencontainers.image.source": "https://example.invalid/demo/app",
              "org.opencontainers.image.vendor": "regops demo"}
    pushed = []
    for i, (tag, created) in enumerate([("1.0.0", "2024-01-10T09:00:00Z"), ("1.1.0", "2024-03-02T12:30:00Z"),
                                        ("2.0.0-rc.1", "2024-05-20T08:15:00Z")]):
        image = seed.push_image(session, "demo/app", tag, created=created, seed=10 + i, layer_sizes=(4096, 1024),
                                labels={**labels, "org.opencontainers.image.version": tag})
        pushed.append((f"demo/app:{tag}", image["digest"], image["media_type"], created))
        if tag == "1.1.0":
            seed.tag_manifest(session, "demo/app", "latest", image["raw"], image["media_type"])
            pushed.append(("demo/app:latest", image["digest"], image["media_type"], created))
    index = seed.push_index(session, "demo/multi", "1.0", labels=labels, created="2024-04-01T00:00:00Z")
    pushed.append(("demo/multi:1.0", index["digest"], index["media_type"], "2024-04-01T00:00:00Z"))
    legacy = seed.push_image(session, "demo/legacy", "1", kind="docker", created="2023-06-01T00:00:00Z", seed=30,
                             labels={"maintainer": "regops demo"})
    pushed.append(("demo/legacy:1", legacy["digest"], legacy["media_type"], "2023-06-01T00:00:00Z"))
    pushed += seed.push_ci_builds(session, "demo/ci")
    for name, digest, media_type, created in pushed:
        print(f"pushed {name:<20} {digest}  created {created}  {media_type}")
    return 0


def tokenserver(args) -> int:
    from tests.lab.tokenserver import serve_from_config

    return serve_from_config(args.config, args.port_file)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.lab", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    cmd = sub.add_parser("up", help="start a detached lab registry and write the state file")
    cmd.add_argument("--mode", choices=("plain", "basic", "token"), default="plain")
    cmd.add_argument("--state", required=True)
    cmd.add_argument("--port", type=int)
    for name in ("down", "seed-demo", "status"):
        sub.add_parser(name).add_argument("--state", required=True)
    cmd = sub.add_parser("tokenserver", help="(internal) run a token server from a JSON config")
    cmd.add_argument("--config", required=True)
    cmd.add_argument("--port-file", required=True)
    args = parser.parse_args(argv)
    handlers = {"up": up, "down": down, "seed-demo": seed_demo, "status": status, "tokenserver": tokenserver}
    return handlers[args.command](args)


if __name__ == "__main__":
    sys.exit(main())
