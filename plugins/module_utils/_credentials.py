# Copyright: regops.registry contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Credentials: what to authenticate with, from the options, a Docker ``config.json`` or a
``docker-credential-*`` helper (checklist AU-09, AU-10, AU-13).

The only I/O of authentication lives here: reading the config file and running helpers.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass, field

from ansible_collections.regops.registry.plugins.module_utils._auth import AuthError
from ansible_collections.regops.registry.plugins.module_utils.errors import InvalidInput
from ansible_collections.regops.registry.plugins.module_utils.reference import (
    DOCKER_HUB,
    DOCKER_HUB_ALIASES,
    DOCKER_HUB_CREDENTIAL_KEY,
    RegistryLocation,
)

HELPER_SUFFIX_RE = re.compile(r"^[A-Za-z0-9._-]+$")
HELPER_NOT_FOUND = "credentials not found"
# Environment handed to credential helpers: what they need to find their stores and reach their cloud,
# nothing of ours (REGOPS_REGISTRY_PASSWORD and the like match none of these).
HELPER_ENV_NAMES = frozenset({"PATH", "HOME", "DBUS_SESSION_BUS_ADDRESS", "PASSWORD_STORE_DIR", "GNUPGHOME",
                              "SSL_CERT_FILE", "SSL_CERT_DIR", "NO_PROXY", "no_proxy"})
# ecr-login reads AWS_*, gcloud GOOGLE_*/CLOUDSDK_*, acr-env AZURE_*.
HELPER_ENV_PREFIXES = ("DOCKER_", "XDG_", "AWS_", "GOOGLE_", "CLOUDSDK_", "AZURE_")
HELPER_ENV_SUFFIXES = ("_PROXY", "_proxy")  # HTTP(S)_PROXY, ALL_PROXY in both spellings


class HelperNotFound(AuthError):
    """The ``docker-credential-*`` program is not on PATH (a ``credsStore`` copied from another machine)."""


# --- credentials (AU-09, AU-10, AU-13) ------------------------------------------------------------

@dataclass
class Credentials:
    """What to authenticate with, and where it came from (``source``: words for messages, never a secret)."""

    username: str | None = None
    password: str | None = field(default=None, repr=False)
    bearer_token: str | None = field(default=None, repr=False)  # pre-issued: sent as-is, no exchange
    identity_token: str | None = field(default=None, repr=False)  # OAuth2 refresh token: only to the token realm
    registry_token: str | None = field(default=None, repr=False)  # config.json registrytoken: sent as Bearer
    source: str = "anonymous"

    def __repr__(self) -> str:
        held = [name for name in ("password", "bearer_token", "identity_token", "registry_token") if getattr(self, name)]
        return f"Credentials(username={self.username!r}, secrets={held} (redacted), source={self.source!r})"

    __str__ = __repr__

    @property
    def kind(self) -> str:
        """``bearer`` / ``registry_token`` / ``identity_token`` / ``basic`` / ``anonymous``: what the client does."""
        if self.bearer_token:
            return "bearer"
        if self.registry_token:
            return "registry_token"
        if self.identity_token:
            return "identity_token"
        if self.basic_header() is not None:
            return "basic"
        return "anonymous"

    @property
    def is_anonymous(self) -> bool:
        return self.kind == "anonymous"

    @property
    def identity(self) -> str:
        """Non-secret, stable cache-key part: token caches never mix credentials. Not meant for logs."""
        material = "\0".join(f"{name}={getattr(self, name) or ''}"
                             for name in ("username", "password", "bearer_token", "identity_token", "registry_token"))
        digest = hashlib.sha256(b"regops.registry/credentials\0" + material.encode("utf-8")).hexdigest()[:16]
        return f"{self.username or ''}#{digest}"

    def basic_header(self) -> str | None:
        if not self.username or self.password is None:
            return None
        return "Basic " + base64.b64encode(f"{self.username}:{self.password}".encode()).decode("ascii")

    def secrets(self) -> list[str]:
        """Every string that must never appear in output, including the Basic header's base64 payload."""
        values = [s for s in (self.password, self.bearer_token, self.identity_token, self.registry_token) if s]
        basic = self.basic_header()
        if basic:
            values.append(basic.split(" ", 1)[1])
        return values


def _normalise_key(key: str) -> str:
    """config.json key -> host[:port]: strip scheme, cut at the first '/', every Docker Hub alias -> docker.io."""
    host = re.sub(r"^[A-Za-z][A-Za-z0-9+.-]*://", "", key.strip()).split("/", 1)[0].lower()
    return DOCKER_HUB if host in DOCKER_HUB_ALIASES else host


def _find_key(mapping: Mapping[str, object], location: RegistryLocation) -> str | None:
    """The config.json key for this registry: exact keys first (``credential_keys`` order), then normalised."""
    candidates = list(location.credential_keys or [location.host])
    for key in candidates:
        if key in mapping:
            return key
    wanted = _normalise_key(location.host)
    for key in mapping:  # insertion order: deterministic
        if isinstance(key, str) and _normalise_key(key) == wanted:
            return key
    return None


def config_path(docker_config: str | None = None, environ: Mapping[str, str] | None = None) -> str:
    """``docker_config`` (a file, or a directory holding config.json), else ``$DOCKER_CONFIG/config.json``, else ``~/.docker``."""
    environ = os.environ if environ is None else environ
    if docker_config:
        path = os.path.expanduser(docker_config)
        return os.path.join(path, "config.json") if os.path.isdir(path) else path
    if environ.get("DOCKER_CONFIG"):
        return os.path.join(os.path.expanduser(environ["DOCKER_CONFIG"]), "config.json")
    home = environ.get("HOME") or os.path.expanduser("~")
    return os.path.join(home, ".docker", "config.json")


def _decode_auth(encoded: str, where: str) -> tuple[str, str]:
    """cli's decodeAuth: standard base64 of ``user:password``, split at the FIRST ':', trailing NULs trimmed."""
    bad = AuthError(f"{where}: 'auth' is not the base64 of 'user:password'")
    try:
        compact = "".join(encoded.split())
        decoded = base64.b64decode(compact + "=" * (-len(compact) % 4)).decode("utf-8")
    except (ValueError, UnicodeDecodeError):
        raise bad from None
    username, sep, password = decoded.rstrip("\x00").partition(":")
    if not sep or not username:
        raise bad
    return username, password.rstrip("\x00")


def _from_auth_entry(entry: Mapping[str, object], where: str) -> Credentials | None:
    def text(name: str) -> str | None:
        value = entry.get(name)
        return value if isinstance(value, str) and value else None

    username, password = text("username"), text("password")
    if text("auth"):
        username, password = _decode_auth(text("auth") or "", where)
        password = password or None
    if text("identitytoken"):
        return Credentials(username=username, password=password, identity_token=text("identitytoken"), source=where)
    if text("registrytoken"):
        return Credentials(username=username, registry_token=text("registrytoken"), source=where)
    if username and password is not None:
        return Credentials(username=username, password=password, source=where)
    return None  # {} marks "stored in a helper"; a username alone is not a credential


def _load_config(path: str) -> dict | None:
    if not os.path.exists(path):
        return None
    try:
        with open(path, encoding="utf-8") as handle:
            config = json.load(handle)
    except (OSError, ValueError) as exc:  # ValueError covers JSON and UTF-8 decoding; the text is never quoted
        raise AuthError(f"cannot read the Docker config {path}: {type(exc).__name__}") from None
    if not isinstance(config, dict):
        raise AuthError(f"the Docker config {path} is not a JSON object")
    for name in ("auths", "credHelpers"):
        if config.get(name) is not None and not isinstance(config[name], dict):
            raise AuthError(f"the Docker config {path}: '{name}' is not a JSON object")
    if config.get("credsStore") is not None and not isinstance(config["credsStore"], str):
        raise AuthError(f"the Docker config {path}: 'credsStore' is not a string")
    return config


def resolve_credentials(location: RegistryLocation, *, username: str | None = None, password: str | None = None,
                        token: str | None = None, docker_config: str | None = None, helper_timeout: float = 10.0,
                        environ: Mapping[str, str] | None = None) -> Credentials:
    """Options first (``token``, then ``username``/``password``), then the Docker config, then anonymous.

    In the config: ``credHelpers[<host>]``, else ``credsStore`` (a helper with no entry, or a ``credsStore``
    program that is not installed, falls through to ``auths`` with a note in ``source``; Docker CLI would
    stop there), then ``auths``. A missing config file means anonymous; a broken one is an AuthError.
    """
    environ = dict(os.environ if environ is None else environ)
    if token:
        return Credentials(bearer_token=token, source="token option")
    if password and not username:
        raise InvalidInput("the password option needs the username option as well")
    if username:
        if not password:
            raise InvalidInput(f"username '{username}' was given without a password: set the password option as well")
        return Credentials(username=username, password=password, source="username option")

    path = config_path(docker_config, environ)
    config = _load_config(path)
    if config is None:
        return Credentials(source=f"anonymous (no Docker config at {path})")

    notes: list[str] = []
    helpers = config.get("credHelpers") or {}
    helper_key = _find_key(helpers, location)
    helper = helpers.get(helper_key) if helper_key is not None else None
    explicit = bool(helper)
    helper_where = f"credHelpers['{helper_key}']" if explicit else "credsStore"
    helper = helper or config.get("credsStore")
    if helper:
        if not isinstance(helper, str) or not HELPER_SUFFIX_RE.match(helper):
            raise AuthError(f"the Docker config {path}: {helper_where} names an invalid credential helper "
                            "(allowed: letters, digits, '.', '_', '-')")
        server_url = DOCKER_HUB_CREDENTIAL_KEY if location.is_docker_hub else location.host
        try:
            found = run_credential_helper(helper, server_url, helper_timeout, environ)
        except HelperNotFound:
            if explicit:
                raise
            found = None
            notes.append(f"credsStore helper docker-credential-{helper} not found on PATH")
        else:
            if found is None:
                notes.append(f"docker-credential-{helper} had no entry for {server_url}")
        if found is not None:
            found.source = f"{found.source} ({helper_where} in docker config {path})"
            return found

    note = f"; {'; '.join(notes)}" if notes else ""
    auths = config.get("auths") or {}
    entry_key = _find_key(auths, location)
    if entry_key is not None:
        where = f"docker config {path} (auths['{entry_key}'])"
        entry = auths[entry_key]
        if not isinstance(entry, dict):
            raise AuthError(f"{where}: the entry is not a JSON object")
        found = _from_auth_entry(entry, where)
        if found is not None:
            found.source += note
            return found
        return Credentials(source=f"anonymous ({where} holds no credentials{note})")
    return Credentials(source=f"anonymous (no entry for {location.host} in docker config {path}{note})")


def _helper_environment(environ: Mapping[str, str]) -> dict[str, str]:
    """What a helper needs to reach its store: names above, cloud SDK prefixes, proxies and TLS trust."""
    env = {k: v for k, v in environ.items()
           if k in HELPER_ENV_NAMES or k.startswith(HELPER_ENV_PREFIXES) or k.endswith(HELPER_ENV_SUFFIXES)}
    env.setdefault("PATH", os.defpath)
    return env


def _kill_group(proc: subprocess.Popen) -> None:
    """Kill the helper and whatever it started (GUI prompts, agents) so no orphan keeps our pipes open."""
    try:
        if hasattr(os, "killpg"):
            os.killpg(proc.pid, signal.SIGKILL)
        else:  # pragma: no cover - not POSIX
            proc.kill()
    except (ProcessLookupError, PermissionError):
        pass


def run_credential_helper(suffix: str, server_url: str, timeout: float,
                          environ: Mapping[str, str] | None = None) -> Credentials | None:
    """``docker-credential-<suffix> get`` with the server URL on stdin (docker-credential-helpers protocol).

    Argv list (no shell), validated suffix, clean environment, hard timeout (desktop helpers can hang on a
    prompt). ``None`` when the helper has no entry; AuthError (without the helper's output) otherwise.
    """
    if not isinstance(suffix, str) or not HELPER_SUFFIX_RE.match(suffix):
        raise InvalidInput(f"invalid credential helper name {suffix!r}: allowed are letters, digits, '.', '_' and '-'")
    program = f"docker-credential-{suffix}"
    env = _helper_environment(os.environ if environ is None else environ)
    executable = shutil.which(program, path=env["PATH"])
    if executable is None:
        raise HelperNotFound(f"credential helper {program} not found on PATH")
    try:
        # Shared by modules and controller plugins (lookup, inventory): there is no AnsibleModule.run_command here.
        proc = subprocess.Popen([executable, "get"], stdin=subprocess.PIPE,  # pylint: disable=ansible-bad-function
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, start_new_session=True)
    except OSError as exc:
        raise AuthError(f"credential helper {program} could not be started: {type(exc).__name__}") from None
    try:
        stdout, stderr = proc.communicate(server_url.encode("utf-8"), timeout=timeout)
    except subprocess.TimeoutExpired:
        _kill_group(proc)
        try:
            proc.communicate(timeout=1.0)
        except subprocess.TimeoutExpired:  # a grandchild escaped the group and holds the pipes
            for stream in (proc.stdout, proc.stderr):
                if stream is not None:
                    stream.close()
            proc.wait()
        raise AuthError(f"credential helper {program} timed out after {timeout:g} s") from None
    if proc.returncode != 0:
        said = (stdout + b"\n" + stderr).decode("utf-8", "replace").lower()
        if HELPER_NOT_FOUND in said:
            return None
        raise AuthError(f"credential helper {program} failed with exit code {proc.returncode} "
                        "(its output is not shown: it may contain secrets)")
    try:
        data = json.loads(stdout.decode("utf-8"))
    except (ValueError, UnicodeDecodeError):
        raise AuthError(f"credential helper {program} did not answer a JSON object") from None
    if not isinstance(data, dict):
        raise AuthError(f"credential helper {program} did not answer a JSON object")
    user, secret = data.get("Username"), data.get("Secret")
    if not isinstance(secret, str) or not secret:
        return None
    source = f"credential helper {program}"
    if user == "<token>":
        return Credentials(identity_token=secret, source=source)
    return Credentials(username=user if isinstance(user, str) and user else None, password=secret, source=source)
