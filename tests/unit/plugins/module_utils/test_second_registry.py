"""A second registry (``source_connection``): its options are the module's own connection options, and it takes
over only how to trust and how long to wait, never another host's credentials or client certificate. And the one
check that tells a mount within a registry from a copy across registries."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from ansible.module_utils.testing import patch_module_args

from ansible_collections.regops.registry.plugins.module_utils import common
from ansible_collections.regops.registry.plugins.module_utils.reference import parse_registry
from ansible_collections.regops.registry.plugins.module_utils.uploads import same_registry

OWN = {"registry": "https://target.example.com", "username": "deployer", "password": "target-secret",
       "token": "target-token", "docker_config": "/etc/ci/docker.json", "validate_certs": False,
       "ca_path": "/etc/ci/ca.pem", "client_cert": "/etc/ci/target.crt", "client_key": "/etc/ci/target.key",
       "timeout": 12.5, "retries": 7}
NOT_FOR_ANOTHER_HOST = ("username", "password", "token", "client_cert", "client_key")


def test_source_connection_has_every_connection_option_without_defaults():
    own = common.connection_argument_spec()
    source = common.source_connection_spec()
    assert source["type"] == "dict"
    assert set(source["options"]) == set(own)
    for name, spec in source["options"].items():
        assert spec["type"] == own[name]["type"], name
        assert spec.get("no_log") == own[name].get("no_log"), name
        # unset must stay unset (None), so that the module's own value can be inherited
        assert not {"default", "required", "fallback"} & set(spec), name
    assert source["options"]["password"]["no_log"] and source["options"]["token"]["no_log"]


def test_an_unset_source_inherits_trust_and_timing_only():
    merged = common.source_options(OWN.get, {"registry": "http://source.example.com"})
    assert merged == {"registry": "http://source.example.com", "docker_config": "/etc/ci/docker.json",
                      "validate_certs": False, "ca_path": "/etc/ci/ca.pem", "timeout": 12.5, "retries": 7}
    assert not set(NOT_FOR_ANOTHER_HOST) & set(merged)


def test_the_source_own_options_win_and_none_means_unset():
    source = {"username": "reader", "password": "source-secret", "client_cert": "/etc/ci/source.crt",
              "client_key": None, "docker_config": "/etc/ci/source.json", "validate_certs": True, "ca_path": None,
              "timeout": 99.0, "retries": 0}
    merged = common.source_options(OWN.get, source)
    assert merged["username"] == "reader" and merged["password"] == "source-secret"
    assert merged["client_cert"] == "/etc/ci/source.crt" and "client_key" not in merged
    assert merged["docker_config"] == "/etc/ci/source.json" and merged["validate_certs"] is True
    assert merged["ca_path"] == "/etc/ci/ca.pem"  # unset there: the module's own
    assert merged["timeout"] == 99.0 and merged["retries"] == 0  # zero is a value, not "unset"
    assert "token" not in merged


def test_client_for_builds_the_source_client_from_the_whole_source_connection(monkeypatch):
    built = []
    monkeypatch.setattr(common, "build_client",
                        lambda get, **kw: built.append(({k: get(k) for k in common.connection_argument_spec()}, kw)))
    source = {"docker_config": "/etc/ci/source.json", "client_cert": "/etc/ci/source.crt",
              "client_key": "/etc/ci/source.key", "timeout": 5.0, "retries": 1}
    with patch_module_args(dict(OWN)):
        module = common.RegistryModule({"source_connection": common.source_connection_spec()})
    module.client_for("source.example.com:5000", source)
    [(options, kw)] = built
    assert kw["registry"] == "source.example.com:5000"
    assert options["docker_config"] == "/etc/ci/source.json"
    assert (options["client_cert"], options["client_key"]) == ("/etc/ci/source.crt", "/etc/ci/source.key")
    assert (options["timeout"], options["retries"]) == (5.0, 1)
    assert (options["validate_certs"], options["ca_path"]) == (False, "/etc/ci/ca.pem")
    assert options["username"] is None and options["password"] is None and options["token"] is None


def test_client_for_sends_no_client_certificate_of_the_target_to_the_source(monkeypatch):
    built = []
    monkeypatch.setattr(common, "build_client", lambda get, **kw: built.append((get, kw)))
    with patch_module_args(dict(OWN)):
        module = common.RegistryModule({"source_connection": common.source_connection_spec()})
    module.client_for("source.example.com", None)
    [(get, kw)] = built
    assert kw["registry"] == "source.example.com"
    assert all(get(name) is None for name in NOT_FOR_ANOTHER_HOST)
    assert get("timeout") == 12.5 and get("retries") == 7


def client_at(url: str):
    return SimpleNamespace(location=parse_registry(url))


@pytest.mark.parametrize("source, target, expected", [
    ("registry.example.com", "https://registry.example.com", True),
    ("registry.example.com", "registry.example.com:5000", False),
    ("http://127.0.0.1:5000", "https://127.0.0.1:5000", False),  # another scheme: another server
    ("https://r.example.com/mirror", "https://r.example.com", False),  # another base path
    ("docker.io", "registry-1.docker.io", True),  # Docker Hub's aliases are one registry
])
def test_same_registry_compares_scheme_host_and_base_path(source, target, expected):
    assert same_registry(client_at(source), client_at(target)) is expected


def test_one_client_is_one_registry():
    client = client_at("registry.example.com")
    assert same_registry(client, client)
