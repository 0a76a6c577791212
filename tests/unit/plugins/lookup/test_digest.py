"""The digest lookup: which host a term goes to and which options go with it (no request is sent here)."""

from __future__ import annotations

import pytest
from ansible.parsing.dataloader import DataLoader
from ansible.template import Templar, trust_as_template

from ansible_collections.regops.registry.plugins.lookup.digest import LookupModule, configured_host, connection_for
from ansible_collections.regops.registry.plugins.module_utils.errors import InvalidInput
from ansible_collections.regops.registry.plugins.module_utils.reference import parse_reference

OPTIONS = {"registry": "http://127.0.0.1:5000", "username": "alice", "password": "pw-1", "token": None,
           "client_cert": "/c.pem", "client_key": "/c.key", "ca_path": "/ca.pem", "docker_config": "/cfg.json",
           "validate_certs": True, "timeout": 5.0, "retries": 0}


def getter(**changes):
    return {**OPTIONS, **changes}.get


def test_a_term_on_the_configured_host_gets_its_url_and_every_option():
    get = getter()
    registry, options = connection_for(parse_reference("127.0.0.1:5000/app:1"), get, configured_host(get))
    assert registry == "http://127.0.0.1:5000"
    assert [options(n) for n in ("username", "password", "client_cert")] == ["alice", "pw-1", "/c.pem"]


@pytest.mark.parametrize("term", ["127.0.0.1:5001/app:1", "registry.example.com/app:1", "nginx:1"])
def test_a_term_on_another_host_goes_there_without_the_credentials(term):
    get = getter()
    ref = parse_reference(term)
    registry, options = connection_for(ref, get, configured_host(get))
    assert registry == ref.registry  # the bare host: HTTPS, not the configured URL
    assert [options(n) for n in ("username", "password", "token", "client_cert", "client_key")] == [None] * 5
    # trust, limits and the Docker config (which holds that host's own entry) still apply
    assert [options(n) for n in ("ca_path", "docker_config", "timeout")] == ["/ca.pem", "/cfg.json", 5.0]


@pytest.mark.parametrize("registry", ["docker.io", "https://index.docker.io", "registry-1.docker.io"])
@pytest.mark.parametrize("term", ["nginx:1", "docker.io/library/nginx:1", "index.docker.io/library/nginx"])
def test_docker_hub_terms_count_as_host_docker_io(registry, term):
    get = getter(registry=registry)
    _url, options = connection_for(parse_reference(term), get, configured_host(get))
    assert options("password") == "pw-1"


def test_credentials_without_a_registry_are_refused_by_name():
    with pytest.raises(InvalidInput, match="username, password, client_cert, client_key given without a registry") \
            as raised:
        configured_host(getter(registry=None))
    assert "pw-1" not in str(raised.value)
    assert configured_host(getter(registry=None, username=None, password=None, client_cert=None,
                                  client_key=None)) is None


def test_variables_the_lookup_reads_are_templated():
    """ansible-core 2.19 hands lookups their variables untemplated (group_vars: ``"{{ corp_registry }}"``); the
    whole run is in tests/integration/test_lookup.py."""
    variables = {"corp_registry": "127.0.0.1:5000", "corp_user": "alice", "other": trust_as_template("{{ nope }}"),
                 "regops_registry": trust_as_template("{{ corp_registry }}"),
                 "regops_registry_username": trust_as_template("{{ corp_user }}")}
    lookup = LookupModule(loader=DataLoader(), templar=Templar(DataLoader(), variables=variables))
    lookup._defs = {"registry": {"vars": [{"name": "regops_registry"}]},  # what the doc fragment declares
                    "username": {"vars": [{"name": "regops_registry_username"}]}, "platform": {}}
    templated = lookup._templated(variables)
    assert (templated["regops_registry"], templated["regops_registry_username"]) == ("127.0.0.1:5000", "alice")
    assert templated["other"] == "{{ nope }}"  # a variable no option reads is left alone
