# Copyright: regops.registry contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Ansible glue shared by every module: the connection options (declared once), client construction,
and one place where registry errors become a failed task without a traceback."""

from __future__ import annotations

import traceback
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable

from ansible.module_utils.basic import AnsibleModule, env_fallback, missing_required_lib

from ansible_collections.regops.registry.plugins.module_utils._auth import AuthError
from ansible_collections.regops.registry.plugins.module_utils._credentials import resolve_credentials
from ansible_collections.regops.registry.plugins.module_utils._transport import HAS_REQUESTS, REQUESTS_IMPORT_ERROR
from ansible_collections.regops.registry.plugins.module_utils.client import RegistryClient
from ansible_collections.regops.registry.plugins.module_utils.errors import InvalidInput, RegistryError
from ansible_collections.regops.registry.plugins.module_utils.reference import parse_registry


# A private CA is machine configuration: the variable the lookup and inventory plugins read serves modules too.
CA_PATH = {"type": "path", "fallback": (env_fallback, ["REGOPS_REGISTRY_CA_PATH"])}


def connection_argument_spec() -> dict[str, dict]:
    """The shared connection options; mirrored by doc fragment ``regops.registry.connection``."""
    return {
        "registry": {"type": "str", "required": True},
        "username": {"type": "str"},
        "password": {"type": "str", "no_log": True},
        "token": {"type": "str", "no_log": True},
        "docker_config": {"type": "path"},
        "validate_certs": {"type": "bool", "default": True},
        "ca_path": dict(CA_PATH),
        "client_cert": {"type": "path"},
        "client_key": {"type": "path", "no_log": False},
        "timeout": {"type": "float", "default": 60.0},
        "retries": {"type": "int", "default": 3},
    }


# What a second registry's client takes over from the module's own options when its ``source_connection`` leaves
# them unset: how to trust and how long to wait. Credentials (username, password, token) and the client certificate
# belong to one host and are never handed to another; ``docker_config`` is a map of host -> credentials, so the
# same file answers for the other host with that host's own entry (or none).
INHERITED_BY_SOURCE = ("validate_certs", "ca_path", "timeout", "retries", "docker_config")


def source_connection_spec() -> dict:
    """``source_connection``: a second registry's options (doc fragment ``regops.registry.connection.SOURCE``).

    The same options as the module's own, without defaults (unset ones are inherited, see INHERITED_BY_SOURCE),
    without environment fallbacks (the module's own option already read them), and ``registry`` not required.
    """
    options = {}
    for name, spec in connection_argument_spec().items():
        options[name] = {k: v for k, v in spec.items() if k not in ("default", "required", "fallback")}
    return {"type": "dict", "options": options}


def target_connection_spec() -> dict:
    """``targets[].connection`` of registry_manifest: a target registry's options, as ``source_connection`` (unset
    ones inherited the same way) without ``registry``, which the target names itself."""
    spec = source_connection_spec()
    del spec["options"]["registry"]
    return spec


def source_options(own: Callable[[str], Any], source: dict | None) -> dict:
    """The connection options of a second registry: ``source`` as given, the unset ones in INHERITED_BY_SOURCE
    taken from the module's own options (read through ``own``)."""
    options = {name: own(name) for name in INHERITED_BY_SOURCE}
    options.update({k: v for k, v in (source or {}).items() if v is not None})
    return options


def build_client(get: Callable[[str], Any], *, warn: Callable[[str], None] | None = None,
                 pool_size: int = 16, registry: str | None = None):
    """A client from options read through ``get`` (``module.params.get`` or a plugin's ``get_option``).

    Everything here is validation and credential resolution: no request is sent.
    """
    location = parse_registry(registry or get("registry"))
    timeout = get("timeout")
    retries = get("retries")
    if timeout is not None and timeout <= 0:
        raise InvalidInput(f"timeout must be a positive number of seconds, not {timeout}")
    if retries is not None and retries < 0:
        raise InvalidInput(f"retries must be zero or more, not {retries}")
    if get("client_key") and not get("client_cert"):
        raise InvalidInput("client_key needs client_cert")
    credentials = resolve_credentials(location, username=get("username"), password=get("password"),
                                      token=get("token"), docker_config=get("docker_config"))
    validate_certs = get("validate_certs")
    if validate_certs is None:
        validate_certs = True
    if not validate_certs and warn and location.scheme == "https":
        warn(f"TLS certificate verification is disabled for {location.host} (validate_certs: false)")
    return RegistryClient(
        location, credentials,
        validate_certs=validate_certs, ca_path=get("ca_path"), client_cert=get("client_cert"),
        client_key=get("client_key"), timeout=timeout or 60.0,
        retries=3 if retries is None else retries, pool_size=pool_size, warn=warn,
    )


def add_ratelimit(result: dict, client) -> dict:
    """``result`` with ``ratelimit``: the pull rate limit ``client``'s registry last announced, when it did."""
    if client.ratelimit is not None:
        result["ratelimit"] = client.ratelimit.as_dict()
    return result


# Repositories worked on at once by a multi-repository call; each also runs ``concurrency`` requests at a time.
REPOSITORY_WORKERS = 2


def for_each_repository(func: Callable, items: list) -> list:
    """``func`` over the items of a multi-repository call, REPOSITORY_WORKERS at a time, results in order."""
    if not items:
        return []
    with ThreadPoolExecutor(max_workers=min(REPOSITORY_WORKERS, len(items))) as pool:
        return list(pool.map(func, items))


class RegistryModule:
    """An AnsibleModule with the connection options, a lazily built client and error mapping.

    Modules subclass nothing: they build one of these, validate their own inputs, and call ``run``.
    """

    def __init__(self, argument_spec: dict, *, supports_check_mode: bool = True, **kwargs) -> None:
        spec = connection_argument_spec()
        spec.update(argument_spec)
        self.module = AnsibleModule(argument_spec=spec, supports_check_mode=supports_check_mode, **kwargs)
        if not HAS_REQUESTS:
            self.module.fail_json(msg=missing_required_lib("requests"), exception=str(REQUESTS_IMPORT_ERROR))
        self._client = None

    @property
    def params(self) -> dict:
        return self.module.params

    @property
    def check_mode(self) -> bool:
        return self.module.check_mode

    def pool_size(self) -> int:
        return max(16, REPOSITORY_WORKERS * int(self.params.get("concurrency") or 0))

    @property
    def client(self):
        if self._client is None:
            self._client = build_client(self.params.get, warn=self.module.warn, pool_size=self.pool_size())
        return self._client

    def repository(self, name: str) -> str:
        """A repository option, validated and named as the module's registry names it (``library/`` on Docker Hub)."""
        return parse_registry(self.params["registry"]).repository(name)

    def client_for(self, registry: str | None, options: dict | None):
        """A second client (another registry) from its ``source_connection`` (see ``source_options``)."""
        merged = source_options(self.params.get, options)
        return build_client(merged.get, warn=self.module.warn, pool_size=self.pool_size(),
                            registry=merged.get("registry") or registry)

    def run(self, body: Callable[[], dict]) -> None:
        """Run the module body; every expected failure is a clean ``fail_json`` (no traceback)."""
        try:
            result = body()
        except (InvalidInput, AuthError) as exc:
            self.module.fail_json(msg=str(exc))
        except RegistryError as exc:
            self.module.fail_json(msg=str(exc), **exc.as_result())
        except Exception as exc:  # noqa: BLE001 - last resort (a bug): still without secrets
            redact = self._client.redact if self._client is not None else str
            self.module.fail_json(msg=redact(f"unexpected error: {type(exc).__name__}: {exc}"),
                                  exception=redact(traceback.format_exc()))
        finally:
            if self._client is not None:
                self._client.close()
        self.module.exit_json(**result)
