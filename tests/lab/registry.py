"""Real ``docker-registry`` (CNCF distribution 2.8) processes on 127.0.0.1: plain, TLS+Basic, TLS+token.

``start_registry(mode, workdir)`` returns a started :class:`Lab` (also a context manager). Every process
is stopped by ``Lab.close()``, by the context manager, at interpreter exit (atexit), and — for labs
started from the main thread — by the kernel if the test process dies (``setpriv --pdeathsig TERM``).

Counting requests: the registry writes one combined-log-format line per request, *including* requests
refused by auth (401) that never reach the app's ``response completed`` logrus line::

    127.0.0.1 - - [22/Nov/2026:16:27:48 +0000] "PUT /v2/x/y/manifests/t1 HTTP/1.1" 201 0 "" "python-requests/2.34.2"

``Lab.requests(since=lab.mark())`` parses those lines (method, request URI with query, status, response
bytes; ``HTTP/2.0`` for clients that speak it, e.g. skopeo over TLS). Request body sizes are not logged:
"no blob bytes sent" is shown by ``lab.blob_uploads(since)`` (PATCH/PUT under ``/blobs/uploads/``) being empty.
"""

from __future__ import annotations

import atexit
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import requests

from tests.lab import transcripts
from tests.lab.pki import make_pki
from tests.lab.tokenserver import ISSUER, SERVICE, TokenServer

REGISTRY_BIN = shutil.which("docker-registry") or "/usr/bin/docker-registry"
ACCESS_RE = re.compile(r'^\S+ \S+ \S+ \[[^\]]+\] "([A-Z]+) (\S+) HTTP/[\d.]+" (\d{3}) (\d+|-)', re.MULTILINE)
MODES = ("plain", "basic", "token")
WRITES = ("PUT", "PATCH", "POST", "DELETE")
START_TIMEOUT = 15.0
ROOT = Path(__file__).resolve().parents[2]

DEFAULT_USERS = {
    "alice": {"password": "alice-Secret-7f3e", "grants": {"*": ["pull", "push", "delete"]}},
    "pusher": {"password": "pusher-Secret-91ab", "grants": {"*": ["pull", "push"]}},
    "reader": {"password": "reader-Secret-c0de", "grants": {"*": ["pull"]}},
}
_RUNNING: list[Lab] = []


def free_port() -> int:
    """A port free now: another process (an xdist worker) may take it before we bind it again."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


PORT_TRIES = 3


def _start_on_a_free_port(lab: Lab, fixed_port: bool) -> Lab:
    """``lab.start()``; when the port we picked was taken meanwhile (the registry exits on "address already in use"),
    again on another one. A port the caller chose is never changed."""
    for _attempt in range(1, PORT_TRIES):
        log_start = lab.log_path.stat().st_size if lab.log_path.exists() else 0
        try:
            return lab.start()
        except RuntimeError:
            if fixed_port or b"address already in use" not in lab.log_path.read_bytes()[log_start:]:
                raise
            lab.port = free_port()
    return lab.start()


@dataclass(frozen=True)
class Request:
    """One access-log line."""
    method: str
    path: str        # request URI as sent: path and query
    status: int
    size: int        # response bytes written


SETPRIV = shutil.which("setpriv")  # util-linux: `setpriv --pdeathsig TERM -- cmd` (no preexec_fn with threads)


def pid_alive(pid: int, marker: str) -> bool:
    """Is ``pid`` still the process we started (its command line contains ``marker``)?"""
    try:
        return marker.encode() in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False


def kill_pid(pid: int, marker: str, timeout: float = 10.0) -> None:
    """SIGTERM (then SIGKILL) one process we started, identified by pid and a command-line marker."""
    if not pid_alive(pid, marker):
        return
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if os.waitpid(pid, os.WNOHANG)[0] == pid:
                return
        except ChildProcessError:  # not our child: poll /proc
            if not pid_alive(pid, marker) or _zombie(pid):
                return
        time.sleep(0.02)
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def _zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] == "Z"
    except OSError:
        return True


class RemoteTokenServer:
    """A token server running as ``python -m tests.lab tokenserver`` (detached labs)."""

    def __init__(self, port: int, pid: int, ca_path: str) -> None:
        self.port, self.pid, self.ca_path = port, pid, ca_path
        self.realm = f"https://127.0.0.1:{port}/token"

    def stats(self) -> dict:
        return requests.get(f"https://127.0.0.1:{self.port}/stats", verify=self.ca_path, timeout=5).json()

    def stop(self) -> None:
        kill_pid(self.pid, "tests.lab")


class Lab:
    """One registry (and its token server in token mode) in ``workdir``: ``storage/``, ``config.yml``,
    ``registry.log``, ``pki/``, ``htpasswd``. ``users`` maps name -> password (unused by a plain registry)."""

    def __init__(self, mode: str, workdir: Path, port: int, *, delete_enabled: bool = True, readonly: bool = False,
                 users: dict | None = None, token_server=None, ca_path: str | None = None,
                 owns_workdir: bool = False, detached: bool = False) -> None:
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}")
        self.mode = mode
        self.workdir = Path(workdir)
        self.port = port
        self.delete_enabled = delete_enabled
        self.readonly = readonly
        self.users: dict[str, str] = dict(users or {})
        self.token_server = token_server
        self.ca_path = ca_path
        self.owns_workdir = owns_workdir
        self.detached = detached
        self.process: subprocess.Popen | None = None
        self.pid: int | None = None
        self.startup_seconds: float | None = None

    # --- addresses ----------------------------------------------------------------------------

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return f"{'http' if self.mode == 'plain' else 'https'}://{self.host}"

    @property
    def log_path(self) -> Path:
        return self.workdir / "registry.log"

    @property
    def config_path(self) -> Path:
        return self.workdir / "config.yml"

    @property
    def storage_path(self) -> Path:
        return self.workdir / "storage"

    @property
    def verify(self):
        """What to pass as requests' ``verify``."""
        return self.ca_path or True

    @property
    def admin(self) -> tuple[str, str] | None:
        """The user allowed everything (None in plain mode)."""
        return None if self.mode == "plain" else ("alice", self.users["alice"])

    @property
    def pids(self) -> dict:
        pids = {"registry": self.pid} if self.pid else {}
        if self.token_server is not None and getattr(self.token_server, "pid", None):
            pids["tokenserver"] = self.token_server.pid
        return pids

    def skopeo_options(self, user: str = "alice") -> list[str]:
        """skopeo options to reach this lab: no TLS for plain, else its CA (as a cert dir) and the user's password."""
        if self.mode == "plain":
            return ["--tls-verify=false"]
        certs = self.workdir / "skopeo-certs"
        certs.mkdir(exist_ok=True)
        (certs / "ca.crt").write_bytes(Path(self.ca_path).read_bytes())
        return ["--cert-dir", str(certs), "--creds", f"{user}:{self.users[user]}"]

    def conn(self, user: str | None = "alice") -> dict:
        """Connection options for the collection's modules (``registry``, ``ca_path``, ``username``, ``password``)."""
        options = {"registry": self.url}
        if self.ca_path:
            options["ca_path"] = self.ca_path
        if self.mode != "plain" and user:
            options.update(username=user, password=self.users[user])
        return options

    def state(self) -> dict:
        """What ``python -m tests.lab up`` writes to its state file."""
        return {"mode": self.mode, "url": self.url, "host": self.host, "port": self.port, "ca_path": self.ca_path,
                "users": self.users, "pids": self.pids, "log_path": str(self.log_path), "workdir": str(self.workdir),
                "config_path": str(self.config_path), "owns_workdir": self.owns_workdir,
                "realm": getattr(self.token_server, "realm", None),
                "tokenserver_port": getattr(self.token_server, "port", None), "conn": self.conn()}

    @classmethod
    def from_state(cls, state: dict) -> Lab:
        """A handle on a detached lab (log parsing, conn(), stop via pids); its processes are not ours to wait on."""
        port = state.get("port") or int(state["host"].rsplit(":", 1)[1])
        lab = cls(state["mode"], Path(state["workdir"]), port, users=state.get("users"),
                  ca_path=state.get("ca_path"), owns_workdir=state.get("owns_workdir", False), detached=True)
        pids = state.get("pids") or {}
        lab.pid = pids.get("registry")
        if pids.get("tokenserver"):
            lab.token_server = RemoteTokenServer(state["tokenserver_port"], pids["tokenserver"], state["ca_path"])
        elif state.get("pid"):  # state file of the older `serve` supervisor: stopping it stops its registry
            lab.token_server = RemoteTokenServer(0, state["pid"], state.get("ca_path"))
        return lab

    # --- process ------------------------------------------------------------------------------

    def write_config(self) -> None:
        def yes(flag: bool) -> str:
            return "true" if flag else "false"

        lines = [
            "version: 0.1",
            "log:",
            "  level: info",
            "  formatter: text",
            "  accesslog:",
            "    disabled: false",
            "storage:",
            "  filesystem:",
            f"    rootdirectory: {self.storage_path}",
            "  delete:",
            f"    enabled: {yes(self.delete_enabled)}",
            "  maintenance:",
            "    uploadpurging:",
            "      enabled: false",
            "    readonly:",
            f"      enabled: {yes(self.readonly)}",
            "http:",
            f"  addr: 127.0.0.1:{self.port}",
            "  secret: regops-lab-http-secret",
            "  headers:",
            "    X-Content-Type-Options: [nosniff]",
        ]
        pki = self.workdir / "pki"
        if self.mode != "plain":
            lines += ["  tls:", f"    certificate: {pki / 'server.pem'}", f"    key: {pki / 'server.key'}"]
        if self.mode == "basic":
            lines += ["auth:", "  htpasswd:", "    realm: regops-lab", f"    path: {self.workdir / 'htpasswd'}"]
        if self.mode == "token":
            lines += ["auth:", "  token:", f"    realm: {self.token_server.realm}", f"    service: {SERVICE}",
                      f"    issuer: {ISSUER}", f"    rootcertbundle: {pki / 'token-bundle.pem'}"]
        self.config_path.write_text("\n".join(lines) + "\n")

    def start(self) -> Lab:
        """Write config.yml, start ``docker-registry serve``, return once ``GET /v2/`` answers 200/401."""
        if self.process is not None and self.process.poll() is None:
            return self
        started = time.monotonic()
        self.write_config()
        cmd = [REGISTRY_BIN, "serve", str(self.config_path)]
        if SETPRIV and not self.detached and threading.current_thread() is threading.main_thread():
            cmd = [SETPRIV, "--pdeathsig", "TERM", "--"] + cmd  # dies with the test process, even on SIGKILL
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                            cwd=self.workdir, start_new_session=True)
        self.pid = self.process.pid
        if not self.detached and self not in _RUNNING:
            _RUNNING.append(self)
        with requests.Session() as probe:
            probe.trust_env = False
            while time.monotonic() - started < START_TIMEOUT:
                if self.process.poll() is not None:
                    break
                try:
                    answer = probe.get(f"{self.url}/v2/", verify=self.verify, timeout=1)
                    if answer.status_code in (200, 401):
                        self.startup_seconds = time.monotonic() - started
                        return self
                except requests.RequestException:
                    pass
                time.sleep(0.02)
        tail = self.log_tail()
        self.stop()
        raise RuntimeError(f"docker-registry ({self.mode}) did not answer on {self.url} within {START_TIMEOUT:.0f} s; "
                           f"log {self.log_path}:\n{tail}")

    def stop(self) -> None:
        """Stop the registry process only (storage, PKI and token server stay: ``start()``/``restart()`` again)."""
        if self.process is not None:
            if self.process.poll() is None:
                self.process.terminate()
                try:
                    self.process.wait(10)
                except subprocess.TimeoutExpired:
                    self.process.kill()
                    self.process.wait()
            self.process = None
        elif self.pid is not None:  # detached handle
            kill_pid(self.pid, "docker-registry")
        self.pid = None

    def restart(self, *, delete_enabled: bool | None = None, readonly: bool | None = None) -> Lab:
        """Same storage and port, new flags (e.g. deletes disabled, read-only)."""
        self.stop()
        if delete_enabled is not None:
            self.delete_enabled = delete_enabled
        if readonly is not None:
            self.readonly = readonly
        return self.start()

    def close(self) -> None:
        """Stop everything; remove the workdir when the lab made it itself (a temp dir)."""
        self.stop()
        if self.log_path.exists():  # what reached the registry, as we sent it: checked for secrets at the end
            transcripts.record(f"registry log ({self.mode} {self.url})", self.log_path.read_text(errors="replace"))
        if self.token_server is not None:
            self.token_server.stop()
            self.token_server = None
        if self in _RUNNING:
            _RUNNING.remove(self)
        if self.owns_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> Lab:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def garbage_collect(self, *, delete_untagged: bool = False, dry_run: bool = False) -> str:
        """``docker-registry garbage-collect`` with the registry stopped (restarted afterwards if it ran)."""
        was_running = self.running
        self.stop()
        cmd = [REGISTRY_BIN, "garbage-collect"]
        if delete_untagged:
            cmd.append("--delete-untagged")
        if dry_run:
            cmd.append("--dry-run")
        try:
            out = subprocess.run(cmd + [str(self.config_path)], capture_output=True, text=True, check=True,
                                 timeout=120).stdout
        finally:
            if was_running:
                self.start()
        return out

    def log_tail(self, chars: int = 3000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return "(no log)"

    # --- access log ---------------------------------------------------------------------------

    def _settled_size(self) -> int:
        """Log size once it stops growing (the access line is written as the response completes)."""
        try:
            size = self.log_path.stat().st_size
            for _attempt in range(25):
                time.sleep(0.02)
                now = self.log_path.stat().st_size
                if now == size:
                    break
                size = now
            return size
        except OSError:
            return 0

    def mark(self) -> int:
        """A position in the log; ``requests(since=mark)`` lists what came after."""
        return self._settled_size()

    def requests(self, since: int = 0, *, methods=None, path: str | None = None) -> list[Request]:
        """Requests logged after ``since``; optionally only ``methods`` and paths matching regex ``path``."""
        end = self._settled_size()
        with open(self.log_path, "rb") as handle:
            handle.seek(since)
            text = handle.read(max(0, end - since)).decode("utf-8", "replace")
        found = [Request(m.group(1), m.group(2), int(m.group(3)), int(m.group(4)) if m.group(4) != "-" else 0)
                 for m in ACCESS_RE.finditer(text)]
        pattern = re.compile(path) if path else None
        return [r for r in found if (methods is None or r.method in methods)
                and (pattern is None or pattern.search(r.path))]

    def count_requests(self, methods=None, since: int = 0, *, path: str | None = None) -> Counter:
        """Counter method -> number of requests after ``since`` (all methods when ``methods`` is None)."""
        return Counter(r.method for r in self.requests(since, methods=methods, path=path))

    def count(self, since: int = 0, methods=WRITES) -> Counter:
        """Older spelling: ``count(mark, ("PUT", ...))``."""
        return self.count_requests(methods, since)

    def writes(self, since: int = 0) -> list[Request]:
        return self.requests(since, methods=WRITES)

    def blob_uploads(self, since: int = 0) -> list[Request]:
        """Requests that can carry blob bytes: PATCH/PUT on an upload session (a mount is a POST, not listed)."""
        return self.requests(since, methods=("PATCH", "PUT"), path=r"^/v2/.+/blobs/uploads/")


RegistryProcess = Lab  # the name in the harness brief


def _make_htpasswd(path: Path, users: dict) -> None:
    """bcrypt entries made with ``htpasswd -Bbn`` (apache2-utils)."""
    htpasswd = shutil.which("htpasswd")
    if not htpasswd:
        raise RuntimeError("htpasswd not found: install apache2-utils (make system-deps)")
    lines = [subprocess.run([htpasswd, "-Bbn", name, spec["password"]], capture_output=True, text=True,
                            check=True).stdout.strip() for name, spec in users.items()]
    path.write_text("\n".join(lines) + "\n")
    path.chmod(0o600)


def _start_token_subprocess(workdir: Path, users: dict, pki, expires_in: int, key_hint: str) -> RemoteTokenServer:
    config = workdir / "tokenserver.json"
    port_file = workdir / "tokenserver.port"
    config.write_text(json.dumps({"users": users, "signing_cert": str(pki.signing_cert),
                                  "signing_key": str(pki.signing_key), "server_cert": str(pki.server_cert),
                                  "server_key": str(pki.server_key), "expires_in": expires_in,
                                  "key_hint": key_hint}))
    config.chmod(0o600)
    with open(workdir / "tokenserver.log", "ab") as log:
        proc = subprocess.Popen([sys.executable, "-m", "tests.lab", "tokenserver", "--config", str(config),
                                 "--port-file", str(port_file)], stdout=log, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, cwd=ROOT, start_new_session=True)
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if port_file.exists():
            return RemoteTokenServer(int(port_file.read_text()), proc.pid, str(pki.ca_cert))
        if proc.poll() is not None:
            break
        time.sleep(0.02)
    proc.kill()
    raise RuntimeError("token server did not start:\n" + (workdir / "tokenserver.log").read_text(errors="replace"))


def start_registry(mode: str, workdir: Path | str | None = None, *, delete_enabled: bool = True,
                   readonly: bool = False, users: dict | None = None, token_expires_in: int = 300,
                   port: int | None = None, detached: bool = False, token_key_hint: str = "x5c") -> Lab:
    """Start a lab registry and return it (use ``with start_registry(...) as lab:`` or ``lab.close()``).

    ``users``: ``{name: {"password": ..., "grants": {pattern: [actions]}}}`` (default alice/pusher/reader);
    grants matter in token mode only. ``workdir`` None: a temp dir removed by ``close()``.
    ``detached``: processes survive this Python process (CLI ``up``); the token server then runs as a
    subprocess and nothing is stopped at exit.
    """
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}")
    owns = workdir is None
    workdir = Path(workdir) if workdir is not None else Path(tempfile.mkdtemp(prefix=f"regops-lab-{mode}-"))
    workdir.mkdir(parents=True, exist_ok=True)
    specs = {name: {"password": spec["password"], "grants": dict(spec.get("grants", {}))}
             for name, spec in (users or DEFAULT_USERS).items()}
    lab = Lab(mode, workdir, port or free_port(), delete_enabled=delete_enabled, readonly=readonly,
              users={name: spec["password"] for name, spec in specs.items()},
              owns_workdir=owns, detached=detached)
    if mode != "plain":
        transcripts.add_user_secrets(lab.users)
    try:
        if mode != "plain":
            pki = make_pki(workdir / "pki")
            lab.ca_path = str(pki.ca_cert)
            if mode == "basic":
                _make_htpasswd(workdir / "htpasswd", specs)
            elif detached:
                lab.token_server = _start_token_subprocess(workdir, specs, pki, token_expires_in, token_key_hint)
            else:
                lab.token_server = TokenServer(specs, pki.signing_cert, pki.signing_key, pki.server_cert,
                                               pki.server_key, expires_in=token_expires_in,
                                               key_hint=token_key_hint).start()
        return _start_on_a_free_port(lab, fixed_port=port is not None)
    except BaseException:
        lab.close()
        raise


@atexit.register
def _stop_all() -> None:
    for lab in list(_RUNNING):
        try:
            lab.close()
        except Exception:  # noqa: BLE001 - best effort at exit
            pass
