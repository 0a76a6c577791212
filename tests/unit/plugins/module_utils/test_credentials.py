"""_credentials: Docker config.json (AU-09) and credential helpers (AU-10)."""

from __future__ import annotations

import base64
import os
import stat
import time

import pytest

from ansible_collections.regops.registry.plugins.module_utils import _credentials as auth
from ansible_collections.regops.registry.plugins.module_utils._auth import AuthError
from ansible_collections.regops.registry.plugins.module_utils.errors import InvalidInput
from ansible_collections.regops.registry.plugins.module_utils.reference import parse_registry

from tests.unit.plugins.module_utils.test_auth import BEARER, HUB_KEY, REFRESH, REGTOKEN, SECRET, b64, write_config

# --- AU-09 docker config.json ---------------------------------------------------------------------

CONFIG = {"auths": {
    "https://registry.example.com/v2/": {"auth": b64(f"bob:{SECRET}")},
    "r2.example.com": {"username": "carol", "password": "pw2", "auth": ""},
    HUB_KEY: {"auth": b64("hubuser:hubpw")},
    "r3.example.com": {"auth": b64("dave:"), "identitytoken": REFRESH},
    "r4.example.com": {"registrytoken": REGTOKEN},
    "r5.example.com": {"auth": b64("eve:pw5"), "email": "obsolete@example.com"},
    "r6.example.com:5000": {"auth": base64.b64encode(b"frank:pw6\x00\x00").decode()},
    "ghcr.io": {},
    "127.0.0.1:5000": {"auth": b64("lab:labpw")},
    "http://plain.example.com": {"auth": b64("plain:plainpw")},
}}


@pytest.mark.parametrize("registry,username,password,extra", [
    ("registry.example.com", "bob", SECRET, {}),  # ':' in the password; key with scheme and /v2/
    ("https://registry.example.com", "bob", SECRET, {}),
    ("r2.example.com", "carol", "pw2", {}),  # username/password fields when auth is empty
    ("docker.io", "hubuser", "hubpw", {}),
    ("index.docker.io", "hubuser", "hubpw", {}),
    ("registry-1.docker.io", "hubuser", "hubpw", {}),
    ("r3.example.com", "dave", None, {"identity_token": REFRESH}),
    ("r4.example.com", None, None, {"registry_token": REGTOKEN}),
    ("r5.example.com", "eve", "pw5", {}),
    ("r6.example.com:5000", "frank", "pw6", {}),  # trailing NULs trimmed
    ("127.0.0.1:5000", "lab", "labpw", {}),
    ("http://plain.example.com", "plain", "plainpw", {}),
])
def test_docker_config_entries(tmp_path, registry, username, password, extra):  # AU-09
    path = write_config(tmp_path, CONFIG)
    creds = auth.resolve_credentials(parse_registry(registry), docker_config=path, environ={"PATH": "/nonexistent"})
    assert (creds.username, creds.password) == (username, password)
    for name, value in extra.items():
        assert getattr(creds, name) == value
    assert creds.source.startswith(f"docker config {path} (auths[")


@pytest.mark.parametrize("registry", ["ghcr.io", "other.example.com", "r6.example.com"])
def test_docker_config_no_entry_is_anonymous(tmp_path, registry):  # AU-09: {} and unknown hosts -> anonymous
    path = write_config(tmp_path, CONFIG)
    creds = auth.resolve_credentials(parse_registry(registry), docker_config=path, environ={"PATH": "/nonexistent"})
    assert creds.is_anonymous and creds.source.startswith("anonymous") and path in creds.source


def test_docker_config_exact_key_beats_normalised(tmp_path):  # AU-09
    path = write_config(tmp_path, {"auths": {"https://r.example.com/v1/": {"auth": b64("norm:pw")},
                                             "r.example.com": {"auth": b64("exact:pw")}}})
    assert auth.resolve_credentials(parse_registry("r.example.com"), docker_config=path, environ={}).username == "exact"


@pytest.mark.parametrize("how", ["DOCKER_CONFIG", "HOME", "directory"])
def test_docker_config_location(tmp_path, how):  # AU-09: DOCKER_CONFIG, ~/.docker/config.json, a directory option
    directory = tmp_path / ".docker"
    directory.mkdir()
    write_config(directory, CONFIG)
    environ = {"DOCKER_CONFIG": str(directory)} if how == "DOCKER_CONFIG" else {"HOME": str(tmp_path)}
    docker_config = str(directory) if how == "directory" else None
    creds = auth.resolve_credentials(parse_registry("registry.example.com"), docker_config=docker_config, environ=environ)
    assert creds.username == "bob" and str(directory / "config.json") in creds.source


def test_docker_config_option_beats_environment(tmp_path):  # AU-09
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    write_config(tmp_path / "a", {"auths": {"r.example.com": {"auth": b64("from-env:pw")}}})
    path = write_config(tmp_path / "b", {"auths": {"r.example.com": {"auth": b64("from-option:pw")}}})
    creds = auth.resolve_credentials(parse_registry("r.example.com"), docker_config=path, environ={"DOCKER_CONFIG": str(tmp_path / "a")})
    assert creds.username == "from-option"


def test_missing_config_is_anonymous(tmp_path):  # AU-09
    creds = auth.resolve_credentials(parse_registry("r.example.com"), docker_config=str(tmp_path / "nope.json"), environ={})
    assert creds.is_anonymous and "no Docker config" in creds.source


@pytest.mark.parametrize("content,match", [
    ("{not json", "cannot read the Docker config"),
    ("[1, 2]", "not a JSON object"),
    ('{"auths": []}', "'auths' is not a JSON object"),
    ('{"auths": {"r.example.com": "x"}}', "not a JSON object"),
    ('{"auths": {"r.example.com": {"auth": "%%%%"}}}', "not the base64"),
    ('{"auths": {"r.example.com": {"auth": "' + b64("no-colon") + '"}}}', "not the base64"),
    ('{"credsStore": 5}', "'credsStore' is not a string"),
    ('{"credHelpers": {"r.example.com": "../evil"}}', "invalid credential helper"),
])
def test_broken_config_is_an_error_naming_the_path(tmp_path, content, match):  # AU-09
    path = write_config(tmp_path, content)
    with pytest.raises(AuthError, match=match) as err:
        auth.resolve_credentials(parse_registry("r.example.com"), docker_config=path, environ={})
    assert path in str(err.value)


def test_unreadable_config(tmp_path):  # AU-09
    path = tmp_path / "config.json"
    path.write_bytes(b'{"auths": {"\xff\xfe": {}}}')  # not UTF-8
    with pytest.raises(AuthError, match="cannot read the Docker config") as err:
        auth.resolve_credentials(parse_registry("r.example.com"), docker_config=str(path), environ={})
    assert str(path) in str(err.value)


def test_option_precedence(tmp_path):  # AU-09: token option -> username/password -> docker config -> anonymous
    path = write_config(tmp_path, {"auths": {"r.example.com": {"auth": b64("cfg:pw")}}})
    location = parse_registry("r.example.com")
    by_token = auth.resolve_credentials(location, token=BEARER, username="u", password="p", docker_config=path, environ={})
    assert (by_token.bearer_token, by_token.username, by_token.source) == (BEARER, None, "token option")
    by_user = auth.resolve_credentials(location, username="u", password=SECRET, docker_config=path, environ={})
    assert (by_user.username, by_user.password, by_user.source) == ("u", SECRET, "username option")
    assert auth.resolve_credentials(location, docker_config=path, environ={}).username == "cfg"


@pytest.mark.parametrize("username,password,match", [
    (None, SECRET, "needs the username"),
    ("u", None, "without a password"),
    ("u", "", "without a password"),
])
def test_incomplete_options(username, password, match):  # AU-09
    with pytest.raises(InvalidInput, match=match) as err:
        auth.resolve_credentials(parse_registry("r.example.com"), username=username, password=password, environ={})
    assert SECRET not in str(err.value)


def test_environment_is_not_consulted_when_given(monkeypatch, tmp_path):  # AU-09: environ replaces os.environ
    directory = tmp_path / "cfg"
    directory.mkdir()
    write_config(directory, {"auths": {"r.example.com": {"auth": b64("from-os:pw")}}})
    monkeypatch.setenv("DOCKER_CONFIG", str(directory))
    assert auth.resolve_credentials(parse_registry("r.example.com")).username == "from-os"
    assert auth.resolve_credentials(parse_registry("r.example.com"), environ={"HOME": str(tmp_path)}).is_anonymous
    assert os.environ["DOCKER_CONFIG"] == str(directory)


# --- AU-10 credential helpers ---------------------------------------------------------------------

HELPERS = {
    "test": 'cat > "$HOME/stdin.txt"; env > "$HOME/env.txt"\n'
            'echo \'{"ServerURL":"x","Username":"helper-user","Secret":"helper-secret-77"}\'',
    "token": 'echo \'{"ServerURL":"x","Username":"<token>","Secret":"' + REFRESH + '"}\'',
    "none": 'echo "credentials not found in native keychain"; exit 1',
    "nonestderr": 'echo "credentials not found in native keychain" >&2; exit 1',
    "broken": 'echo "leaky output helper-secret-77"; echo "more helper-secret-77" >&2; exit 3',
    "hang": "sleep 30",
    "garbage": 'echo "not json helper-secret-77"',
    "empty": 'echo \'{"ServerURL":"x","Username":"","Secret":""}\'',
}


@pytest.fixture
def helper_env(tmp_path):
    bindir = tmp_path / "bin"
    bindir.mkdir()
    for name, body in HELPERS.items():
        path = bindir / f"docker-credential-{name}"
        path.write_text(f"#!/bin/sh\n{body}\n")
        path.chmod(path.stat().st_mode | stat.S_IEXEC)
    return {"PATH": f"{bindir}:/usr/bin:/bin", "HOME": str(tmp_path), "DOCKER_HOST": "unix:///x", "XDG_RUNTIME_DIR": "/run/x",
            "LEAKY_SECRET": "do-not-pass", "AWS_PROFILE": "ecr"}


def test_helper_success_protocol_and_clean_environment(helper_env, tmp_path):  # AU-10
    found = auth.run_credential_helper("test", "r.example.com:5000", 5, helper_env)
    assert (found.username, found.password, found.source) == ("helper-user", "helper-secret-77", "credential helper docker-credential-test")
    assert (tmp_path / "stdin.txt").read_text() == "r.example.com:5000"
    env = dict(line.split("=", 1) for line in (tmp_path / "env.txt").read_text().splitlines() if "=" in line)
    assert "LEAKY_SECRET" not in env
    assert {env.get(k) for k in ("DOCKER_HOST", "XDG_RUNTIME_DIR", "AWS_PROFILE")} == {"unix:///x", "/run/x", "ecr"}


def test_helper_token_username_is_identity_token(helper_env):  # AU-10
    found = auth.run_credential_helper("token", "r.example.com", 5, helper_env)
    assert (found.identity_token, found.username, found.password) == (REFRESH, None, None)


@pytest.mark.parametrize("name", ["none", "nonestderr", "empty"])
def test_helper_not_found_is_no_credentials(helper_env, name):  # AU-10
    assert auth.run_credential_helper(name, "r.example.com", 5, helper_env) is None


@pytest.mark.parametrize("name,match", [
    ("broken", "docker-credential-broken failed with exit code 3"),
    ("garbage", "did not answer a JSON object"),
    ("missing", "credential helper docker-credential-missing not found on PATH"),
])
def test_helper_failures(helper_env, name, match):  # AU-10, AU-13: helper output never in the message
    with pytest.raises(AuthError, match=match) as err:
        auth.run_credential_helper(name, "r.example.com", 5, helper_env)
    assert "helper-secret-77" not in str(err.value) and "leaky" not in str(err.value)


def test_helper_hang_times_out(helper_env):  # AU-10
    started = time.monotonic()
    with pytest.raises(AuthError, match=r"credential helper docker-credential-hang timed out after 0.5 s"):
        auth.run_credential_helper("hang", "r.example.com", 0.5, helper_env)
    assert time.monotonic() - started < 3


@pytest.mark.parametrize("suffix", ["../evil", "a b", "x;rm", "", "$(id)"])
def test_helper_suffix_validated(helper_env, suffix):  # AU-10
    with pytest.raises(InvalidInput, match="invalid credential helper name"):
        auth.run_credential_helper(suffix, "r.example.com", 5, helper_env)


@pytest.mark.parametrize("config,registry,username,source_part", [
    ({"credHelpers": {"r.example.com": "test"}, "auths": {"r.example.com": {"auth": b64("cfg:pw")}}},
     "r.example.com", "helper-user", "credHelpers['r.example.com']"),
    ({"credsStore": "test", "auths": {"r.example.com": {}}}, "r.example.com", "helper-user", "credsStore"),
    ({"credHelpers": {"other.example.com": "none"}, "credsStore": "test"}, "r.example.com", "helper-user", "credsStore"),
    ({"credsStore": "none", "auths": {"r.example.com": {"auth": b64("fallback:pw")}}}, "r.example.com", "fallback",
     "docker-credential-none had no entry"),
    ({"credsStore": "desktop", "auths": {"r.example.com": {"auth": b64("fallback:pw")}}}, "r.example.com", "fallback",
     "credsStore helper docker-credential-desktop not found on PATH"),
    ({"credsStore": "none", "auths": {"r.example.com": {}}}, "r.example.com", None, "anonymous"),
    ({"credHelpers": {HUB_KEY: "test"}}, "docker.io", "helper-user", f"credHelpers['{HUB_KEY}']"),
])
def test_helpers_from_config(tmp_path, helper_env, config, registry, username, source_part):  # AU-09, AU-10
    path = write_config(tmp_path, config)
    creds = auth.resolve_credentials(parse_registry(registry), docker_config=path, environ=helper_env)
    assert creds.username == username and source_part in creds.source


@pytest.mark.parametrize("registry,server_url", [("docker.io", HUB_KEY), ("r.example.com:5000", "r.example.com:5000")])
def test_helper_gets_the_cred_helpers_key_form(tmp_path, helper_env, registry, server_url):  # AU-10
    path = write_config(tmp_path, {"credsStore": "test"})
    auth.resolve_credentials(parse_registry(registry), docker_config=path, environ=helper_env)
    assert (tmp_path / "stdin.txt").read_text() == server_url


def test_explicit_missing_helper_is_an_error(tmp_path, helper_env):  # AU-10
    path = write_config(tmp_path, {"credHelpers": {"r.example.com": "gone"}, "auths": {"r.example.com": {"auth": b64("x:y")}}})
    with pytest.raises(AuthError, match="docker-credential-gone not found on PATH"):
        auth.resolve_credentials(parse_registry("r.example.com"), docker_config=path, environ=helper_env)


def test_helper_timeout_from_config(tmp_path, helper_env):  # AU-10
    path = write_config(tmp_path, {"credsStore": "hang"})
    with pytest.raises(AuthError, match="timed out"):
        auth.resolve_credentials(parse_registry("r.example.com"), docker_config=path, environ=helper_env, helper_timeout=0.3)


HELPER_NEEDS = {  # what cloud helpers read: proxies, TLS trust, their SDK's settings (issue 14 item 3)
    "HTTPS_PROXY": "http://proxy:3128", "https_proxy": "http://proxy:3128", "HTTP_PROXY": "http://proxy:3128",
    "http_proxy": "http://proxy:3128", "ALL_PROXY": "socks5://proxy", "NO_PROXY": ".corp", "no_proxy": ".corp",
    "SSL_CERT_FILE": "/etc/corp/ca.pem", "SSL_CERT_DIR": "/etc/corp/certs", "AWS_REGION": "eu-west-1",
    "GOOGLE_APPLICATION_CREDENTIALS": "/k.json", "CLOUDSDK_CONFIG": "/gcloud", "AZURE_CLIENT_ID": "app-id",
}
OUR_SECRETS = {"REGOPS_REGISTRY_PASSWORD": "ours-1", "REGOPS_REGISTRY_TOKEN": "ours-2", "LEAKY_SECRET": "x",
               "ANSIBLE_VAULT_PASSWORD": "v", "PROXY_SETTINGS_NOTE": "not a proxy variable"}


def test_helper_gets_its_usual_environment_and_none_of_ours(helper_env, tmp_path):  # AU-10
    auth.run_credential_helper("test", "r.example.com", 5, {**helper_env, **HELPER_NEEDS, **OUR_SECRETS})
    env = dict(line.split("=", 1) for line in (tmp_path / "env.txt").read_text().splitlines() if "=" in line)
    assert {name: env.get(name) for name in HELPER_NEEDS} == HELPER_NEEDS
    assert not set(OUR_SECRETS) & set(env)
