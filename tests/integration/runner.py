"""Run real ``ansible-playbook`` (and single modules) against lab registries and collect their results."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from tests.lab import transcripts

ROOT = Path(__file__).resolve().parents[2]
PLAYBOOKS = Path(__file__).resolve().parent / "playbooks"
COLLECTIONS = ROOT / ".tmp" / "collections"
# Every Ansible run of the suite is verbose (-vvvv unless REGOPS_TEST_VERBOSITY says otherwise), so the secret check
# at the end of the session (test_zz_secrets.py) sees everything a user could ever print.
VERBOSITY = int(os.environ.get("REGOPS_TEST_VERBOSITY", "4"))


# Every module result of the run's Ansible runs (tests/integration/callback) and of run_module, one JSON line each,
# for test_zz_return_keys.py: one file per pytest process in the run's directory (tests/lab/transcripts.py).
CALLBACKS = Path(__file__).resolve().parent / "callback"
RESULTS_KIND = "module-results"


def results_log() -> Path:
    return transcripts.process_file(RESULTS_KIND)


def record_module_result(module: str, result: dict, check_mode: bool) -> None:
    with open(results_log(), "a", encoding="utf-8") as log:
        log.write(json.dumps({"module": module, "status": "failed" if result.get("failed") else "ok",
                              "check_mode": check_mode, "result": result}) + "\n")


def ensure_collection_link() -> Path:
    """The tree must be importable as ansible_collections.regops.registry."""
    link = COLLECTIONS / "ansible_collections" / "regops" / "registry"
    if not link.exists():
        link.parent.mkdir(parents=True, exist_ok=True)
        try:
            link.symlink_to(ROOT, target_is_directory=True)
        except FileExistsError:  # another xdist worker made it meanwhile
            pass
    return COLLECTIONS


def ansible_env(extra: dict | None = None) -> dict:
    env = dict(os.environ)
    env.update({
        "ANSIBLE_COLLECTIONS_PATH": str(ensure_collection_link()),
        "ANSIBLE_NOCOLOR": "1",
        "ANSIBLE_FORCE_COLOR": "0",
        "ANSIBLE_RETRY_FILES_ENABLED": "0",
        "ANSIBLE_LOCALHOST_WARNING": "0",
        "ANSIBLE_INVENTORY_UNPARSED_WARNING": "0",
        "ANSIBLE_PYTHON_INTERPRETER": sys.executable,
        "ANSIBLE_HOST_KEY_CHECKING": "0",
        "ANSIBLE_VERBOSE_TO_STDERR": "1",  # -vvvv lines on stderr: stdout stays the JSON ansible-inventory prints
        "ANSIBLE_CALLBACK_PLUGINS": str(CALLBACKS),
        "ANSIBLE_CALLBACKS_ENABLED": "regops_results",
        "REGOPS_RESULTS_LOG": str(results_log()),
    })
    env.update(extra or {})
    return env


def run_ansible(program: str, args: list, check: bool = False, verbosity: int = 0, timeout: float = 600,
                local: bool = True, env: dict | None = None):
    """Run an Ansible CLI of this venv (on localhost unless ``local`` is false), without stdin; ``env`` adds
    environment variables."""
    cmd = [str(Path(sys.executable).parent / program)] + (["-i", "localhost,", "-c", "local"] if local else []) + args
    if check:
        cmd.append("--check")
    verbosity = max(verbosity, VERBOSITY)
    if verbosity:
        cmd.append("-" + "v" * verbosity)
    proc = subprocess.run(cmd, capture_output=True, text=True, env=ansible_env(env), timeout=timeout,
                          stdin=subprocess.DEVNULL, check=False)
    transcripts.record(" ".join([program, *args[:1]]), proc.stdout + proc.stderr)
    return proc


@dataclass
class PlaybookRun:
    rc: int
    output: str
    results: dict

    @property
    def ok(self) -> bool:
        return self.rc == 0


def run_playbook(name: str, variables: dict, *, check: bool = False, diff: bool = False,
                 verbosity: int = 0, timeout: float = 600, env: dict | None = None) -> PlaybookRun:
    """Run ``playbooks/<name>``; the playbook writes what it registered to ``results_path`` as JSON. ``env`` adds
    environment variables (what a controller-side plugin reads from the environment)."""
    with tempfile.TemporaryDirectory(prefix="regops-run-") as tmp:
        results_path = Path(tmp) / "results.json"
        vars_path = Path(tmp) / "vars.json"
        vars_path.write_text(json.dumps({**variables, "results_path": str(results_path)}))
        args = [str(PLAYBOOKS / name), "-e", f"@{vars_path}"] + (["--diff"] if diff else [])
        proc = run_ansible("ansible-playbook", args, check, verbosity, timeout, env=env)
        results = json.loads(results_path.read_text()) if results_path.exists() else {}
        transcripts.record(f"results of {name}", json.dumps(results))
    return PlaybookRun(proc.returncode, proc.stdout + proc.stderr, results)


TIME = "/usr/bin/time"  # GNU time (Debian package "time")


def peak_rss_kib(path: Path) -> int:
    """The peak RSS GNU time wrote (``-f %M``): the last line, in KiB."""
    return int(path.read_text().strip().splitlines()[-1])


def run_module(module: str, args: dict, *, check: bool = False) -> tuple[dict, int]:
    """Run one module as Ansible runs it (a child Python process reading its args) and return
    its result and the process's peak RSS in bytes (measured with wait4, for that process alone)."""
    ensure_collection_link()
    with tempfile.TemporaryDirectory(prefix="regops-mod-") as tmp:
        args_path = Path(tmp) / "args.json"
        payload = dict(args)
        payload["_ansible_check_mode"] = check
        args_path.write_text(json.dumps({"ANSIBLE_MODULE_ARGS": payload}))
        env = ansible_env({"PYTHONPATH": str(COLLECTIONS)})
        err_path = Path(tmp) / "stderr"
        rss_path = Path(tmp) / "rss"
        with open(err_path, "wb") as err:
            # GNU time forks the module from its own small process: a child forked straight from this (large) one
            # would report this process's RSS as its peak (Linux keeps the high-water mark across fork and exec).
            proc = subprocess.run(
                [TIME, "-f", "%M", "-o", str(rss_path), sys.executable, "-m",
                 f"ansible_collections.regops.registry.plugins.modules.{module}", str(args_path)],
                stdout=subprocess.PIPE, stderr=err, env=env, stdin=subprocess.DEVNULL, check=False)
        text = proc.stdout.decode()
        transcripts.record(f"module {module}", text + err_path.read_text(errors="replace"))
        try:
            result = json.loads(text[text.index("{"):])
        except ValueError:
            raise AssertionError(f"module printed no JSON: {text!r} {err_path.read_text()!r}") from None
        record_module_result(module, result, check)
        return result, peak_rss_kib(rss_path) * 1024


def run_adhoc(module: str, args: dict, *, check: bool = False, verbosity: int = 0,
              timeout: float = 300) -> PlaybookRun:
    """``ansible localhost -m regops.registry.<module> -a <json>``: what a user sees on the terminal."""
    proc = run_ansible("ansible", ["localhost", "-m", f"regops.registry.{module}", "-a", json.dumps(args)],
                       check, verbosity, timeout)
    output = proc.stdout + proc.stderr
    result: dict = {}
    marker = output.find("=> {")
    if marker >= 0:
        decoder = json.JSONDecoder()
        try:
            result, _end = decoder.raw_decode(output[marker + 3:])
        except ValueError:
            result = {}
    return PlaybookRun(proc.returncode, output, result)
