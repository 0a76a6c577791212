"""Real `docker-registry` (CNCF distribution 2.8) processes on 127.0.0.1: plain, TLS+Basic, TLS+token."""

from __future__ import annotations

import atexit
import re
import shutil
import socket
import subprocess
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import requests

from tests.lab.pki import make_pki
from tests.lab.tokenserver import ISSUER, SERVICE, TokenServer

REGISTRY_BIN = shutil.which("docker-registry") or "/usr/bin/docker-registry"
ACCESS_RE = re.compile(r'"(GET|HEAD|PUT|POST|PATCH|DELETE|OPTIONS) (\S+) HTTP/[\d.]+" (\d{3}) (\d+|-)')
MODES = ("plain", "basic", "token")

DEFAULT_USERS = {
    "alice": {"password": "alice-Secret-7f3e", "grants": {"*": ["pull", "push", "delete"]}},
    "pusher": {"password": "pusher-Secret-91ab", "grants": {"*": ["pull", "push"]}},
    "reader": {"password": "reader-Secret-c0de", "grants": {"*": ["pull"]}},
}
_RUNNING: list = []


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class Request:
    method: str
    path: str
    status: int
    size: int


@dataclass
class Lab:
    mode: str
    workdir: Path
    port: int
    delete_enabled: bool = True
    readonly: bool = False
    users: dict = field(default_factory=dict)
    token_server: TokenServer | None = None
    ca_path: str | None = None
    process: subprocess.Popen | None = None

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
    def admin(self) -> tuple[str, str] | None:
        """The user allowed everything (None in plain mode)."""
        return None if self.mode == "plain" else ("alice", self.users["alice"])

    def conn(self, user: str | None = "alice") -> dict:
        """Connection options for the collection's modules."""
        options = {"registry": self.url}
        if self.ca_path:
            options["ca_path"] = self.ca_path
        if self.mode != "plain" and user:
            options.update(username=user, password=self.users[user])
        return options

    # --- process -----------------------------------------------------------------------------

    def write_config(self) -> None:
        lines = [
            "version: 0.1",
            "log:",
            "  level: info",
            "  formatter: text",
            "storage:",
            "  filesystem:",
            f"    rootdirectory: {self.workdir / 'storage'}",
            "  delete:",
            f"    enabled: {'true' if self.delete_enabled else 'false'}",
            "  maintenance:",
            "    uploadpurging:",
            "      enabled: false",
            "    readonly:",
            f"      enabled: {'true' if self.readonly else 'false'}",
            "http:",
            f"  addr: 127.0.0.1:{self.port}",
            "  secret: regops-lab-http-secret",
            "  headers:",
            "    X-Content-Type-Options: [nosniff]",
        ]
        if self.mode != "plain":
            lines += ["  tls:", f"    certificate: {self.workdir / 'pki' / 'server.pem'}",
                      f"    key: {self.workdir / 'pki' / 'server.key'}"]
        if self.mode == "basic":
            lines += ["auth:", "  htpasswd:", "    realm: regops-lab", f"    path: {self.workdir / 'htpasswd'}"]
        if self.mode == "token":
            lines += ["auth:", "  token:", f"    realm: {self.token_server.realm}", f"    service: {SERVICE}",
                      f"    issuer: {ISSUER}", f"    rootcertbundle: {self.ca_path}"]
        self.config_path.write_text("\n".join(lines) + "\n")

    def start(self) -> Lab:
        self.write_config()
        log = open(self.log_path, "ab")  # noqa: SIM115 - owned by the process
        self.process = subprocess.Popen([REGISTRY_BIN, "serve", str(self.config_path)], stdout=log, stderr=log,
                                        stdin=subprocess.DEVNULL, start_new_session=True)
        log.close()
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                break
            try:
                answer = requests.get(f"{self.url}/v2/", verify=self.ca_path or True, timeout=1)
                if answer.status_code in (200, 401):
                    return self
            except requests.RequestException:
                pass
            time.sleep(0.05)
        tail = self.log_path.read_text(errors="replace")[-3000:]
        self.stop()
        raise RuntimeError(f"docker-registry did not start ({self.mode}):\n{tail}")

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None

    def restart(self, *, delete_enabled: bool | None = None, readonly: bool | None = None) -> Lab:
        self.stop()
        if delete_enabled is not None:
            self.delete_enabled = delete_enabled
        if readonly is not None:
            self.readonly = readonly
        return self.start()

    def close(self) -> None:
        self.stop()
        if self.token_server:
            self.token_server.stop()
            self.token_server = None

    def garbage_collect(self) -> str:
        running = self.process is not None
        self.stop()
        out = subprocess.run([REGISTRY_BIN, "garbage-collect", str(self.config_path)], capture_output=True, text=True,
                             check=True).stdout
        if running:
            self.start()
        return out

    # --- access log --------------------------------------------------------------------------

    def mark(self) -> int:
        """A position in the access log; ``requests(since=mark)`` lists what came after."""
        time.sleep(0.05)  # the registry writes its access line just after answering
        return self.log_path.stat().st_size if self.log_path.exists() else 0

    def requests(self, since: int = 0) -> list[Request]:
        time.sleep(0.05)
        with open(self.log_path, "rb") as handle:
            handle.seek(since)
            text = handle.read().decode("utf-8", "replace")
        return [Request(m.group(1), m.group(2), int(m.group(3)), int(m.group(4)) if m.group(4) != "-" else 0)
                for m in ACCESS_RE.finditer(text)]

    def count(self, since: int = 0, methods=("PUT", "PATCH", "POST", "DELETE")) -> Counter:
        return Counter(r.method for r in self.requests(since) if r.method in methods)


def start_registry(mode: str, workdir: Path | None = None, *, delete_enabled: bool = True, readonly: bool = False,
                   users: dict | None = None, token_expires_in: int = 300, port: int | None = None) -> Lab:
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}")
    workdir = Path(workdir or tempfile.mkdtemp(prefix=f"regops-lab-{mode}-"))
    workdir.mkdir(parents=True, exist_ok=True)
    users = {name: dict(spec) for name, spec in (users or DEFAULT_USERS).items()}
    lab = Lab(mode, workdir, port or free_port(), delete_enabled, readonly,
              users={name: spec["password"] for name, spec in users.items()})
    if mode != "plain":
        pki = make_pki(workdir / "pki")
        lab.ca_path = str(pki.ca_cert)
        if mode == "basic":
            lines = [subprocess.run(["htpasswd", "-Bbn", name, spec["password"]], capture_output=True, text=True,
                                    check=True).stdout.strip() for name, spec in users.items()]
            (workdir / "htpasswd").write_text("\n".join(lines) + "\n")
        else:
            lab.token_server = TokenServer(users, pki.signing_cert, pki.signing_key, pki.server_cert, pki.server_key,
                                           expires_in=token_expires_in).start()
    _RUNNING.append(lab)
    return lab.start()


@atexit.register
def _stop_all() -> None:
    for lab in _RUNNING:
        try:
            lab.close()
        except Exception:  # noqa: BLE001 - best effort at exit
            pass
