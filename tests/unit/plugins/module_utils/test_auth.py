"""auth: challenges, scopes, credentials, token requests and cache (AU-01..AU-05, AU-07..AU-10, AU-12, AU-13)."""

from __future__ import annotations

import base64
import json
import os
import stat
import threading
import time

import pytest

from ansible_collections.regops.registry.plugins.module_utils import auth
from ansible_collections.regops.registry.plugins.module_utils.errors import InvalidInput
from ansible_collections.regops.registry.plugins.module_utils.reference import parse_registry

SECRET = "s3cr3t:with:colons"


@pytest.mark.parametrize("values,scheme,params", [  # AU-01
    (['Bearer realm="https://auth.example/token",service="registry.example",scope="repository:a/b:pull,push"'],
     "bearer", {"realm": "https://auth.example/token", "service": "registry.example", "scope": "repository:a/b:pull,push"}),
    (['bEaReR Realm="https://a/t", Service=svc'], "bearer", {"realm": "https://a/t", "service": "svc"}),
    (['Basic realm="say \\"hi\\""'], "basic", {"realm": 'say "hi"'}),
    (['Negotiate, Basic realm="r"'], "basic", {"realm": "r"}),
    (['Basic realm="r", Bearer realm="https://a/t",service="s"'], "bearer", {"realm": "https://a/t", "service": "s"}),
    (['Negotiate abc', 'Basic realm="r"'], "basic", {"realm": "r"}),
])
def test_challenges(values, scheme, params):
    chosen = auth.choose_challenge(auth.parse_challenges(values))
    assert chosen.scheme == scheme and chosen.params == params


def test_scopes():  # AU-02
    scope = auth.Scope.parse("repository:localhost:5000/app:push,pull")
    assert (scope.type, scope.name, scope.actions) == ("repository", "localhost:5000/app", ("pull", "push"))
    assert str(scope) == "repository:localhost:5000/app:pull,push"
    two = auth.parse_scope_param("repository:dst:pull,push repository:src:pull")
    assert [s.name for s in two] == ["dst", "src"]
    merged = auth.merge_scopes([auth.Scope.repository("a", "pull")], [auth.Scope.repository("a", "delete")])
    assert merged == [auth.Scope.repository("a", "delete", "pull")]


def test_token_get_request():  # AU-03
    challenge = auth.Challenge("bearer", {"realm": "https://auth.example/token?x=1", "service": "svc"})
    creds = auth.Credentials(username="u", password=SECRET)
    req = auth.build_token_request(challenge, [auth.Scope.repository("a", "pull"), auth.Scope.repository("b", "pull")],
                                   creds)
    assert req.method == "GET" and req.use_basic and req.url == "https://auth.example/token?x=1"
    assert [v for k, v in req.params if k == "scope"] == ["repository:a:pull", "repository:b:pull"]
    assert ("service", "svc") in req.params and ("account", "u") in req.params
    anonymous = auth.build_token_request(challenge, [], auth.Credentials())
    assert not anonymous.use_basic and not [k for k, _value in anonymous.params if k == "account"]


@pytest.mark.parametrize("payload,token,lifetime", [  # AU-04
    ({"access_token": "A"}, "A", 60), ({"token": "T", "access_token": "T"}, "T", 60),
    ({"token": "T", "expires_in": 10}, "T", 60), ({"token": "T", "expires_in": 300}, "T", 300)])
def test_token_response(payload, token, lifetime):
    got, expires_at = auth.parse_token_response(payload, 1000.0)
    assert got == token and 1000 + lifetime - 30 <= expires_at < 1000 + lifetime


def test_token_response_without_token():
    with pytest.raises(auth.AuthError):
        auth.parse_token_response({"expires_in": 60}, 0)


def test_cache_single_flight_and_expiry():  # AU-05, AU-07
    cache = auth.TokenCache()
    key = ("realm", "svc", frozenset({"repository:a:pull"}), "id")
    fetches = []

    def worker():
        with cache.lock_for(key):
            if cache.get(key, time.time()) is None:
                fetches.append(1)
                time.sleep(0.01)
                cache.put(key, "tok", time.time() + 100)

    threads = [threading.Thread(target=worker) for _index in range(100)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(fetches) == 1
    assert cache.covering("realm", "svc", "id", [auth.Scope.repository("a", "pull")], time.time()) == "tok"
    assert cache.covering("realm", "svc", "other", [auth.Scope.repository("a", "pull")], time.time()) is None
    assert cache.get(key, time.time() + 1000) is None
    cache.invalidate(key)
    assert cache.get(key, time.time()) is None


def test_identity_token_uses_oauth_and_falls_back():  # AU-08
    challenge = auth.Challenge("bearer", {"realm": "https://a/t", "service": "s"})
    creds = auth.Credentials(username="u", password="p", identity_token="refresh-me")
    req = auth.build_token_request(challenge, [auth.Scope.repository("x", "pull")], creds)
    assert req.method == "POST" and req.data["grant_type"] == "refresh_token" and req.data["scope"] == "repository:x:pull"
    fallback = auth.fallback_to_get(req, creds)
    assert fallback.method == "GET" and ("scope", "repository:x:pull") in fallback.params


def write_config(tmp_path, data) -> str:
    path = tmp_path / "config.json"
    path.write_text(json.dumps(data))
    return str(path)


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def test_docker_config(tmp_path):  # AU-09
    path = write_config(tmp_path, {"auths": {
        "https://registry.example.com/v2/": {"auth": b64(f"bob:{SECRET}")},
        "r2.example.com": {"username": "carol", "password": "pw"},
        "https://index.docker.io/v1/": {"auth": b64("hub:hubpw")},
        "r3.example.com": {"identitytoken": "idtok"},
        "r4.example.com": {"registrytoken": "regtok"},
    }})
    env = {"PATH": os.environ["PATH"]}
    creds = auth.resolve_credentials(parse_registry("registry.example.com"), docker_config=path, environ=env)
    assert (creds.username, creds.password) == ("bob", SECRET)
    assert auth.resolve_credentials(parse_registry("r2.example.com"), docker_config=path, environ=env).username == "carol"
    assert auth.resolve_credentials(parse_registry("docker.io"), docker_config=path, environ=env).password == "hubpw"
    assert auth.resolve_credentials(parse_registry("r3.example.com"), docker_config=path, environ=env).identity_token == "idtok"
    assert auth.resolve_credentials(parse_registry("r4.example.com"), docker_config=path, environ=env).registry_token == "regtok"
    env_dir = {"PATH": os.environ["PATH"], "DOCKER_CONFIG": str(tmp_path)}
    assert auth.resolve_credentials(parse_registry("registry.example.com"), environ=env_dir).username == "bob"
    assert auth.resolve_credentials(parse_registry("other.example"), docker_config=path, environ=env).source.startswith("anonymous")
    assert SECRET not in repr(creds)  # AU-13


def test_options_take_precedence_and_are_validated(tmp_path):
    location = parse_registry("r.example.com")
    assert auth.resolve_credentials(location, token="tok").bearer_token == "tok"
    with pytest.raises(InvalidInput):
        auth.resolve_credentials(location, password="p")
    with pytest.raises(InvalidInput):
        auth.resolve_credentials(location, username="u")


HELPERS = {
    "ok": 'echo \'{"ServerURL":"x","Username":"helper-user","Secret":"helper-secret"}\'',
    "tok": 'echo \'{"ServerURL":"x","Username":"<token>","Secret":"refresh"}\'',
    "none": 'echo "credentials not found in native keychain"; exit 1',
    "broken": 'echo "leaky helper-secret-output"; exit 3',
    "hang": "sleep 5",
}


@pytest.fixture
def helper_env(tmp_path):
    for name, body in HELPERS.items():
        path = tmp_path / f"docker-credential-{name}"
        path.write_text(f"#!/bin/sh\ncat >/dev/null\n{body}\n")
        path.chmod(path.stat().st_mode | stat.S_IEXEC)
    return {"PATH": f"{tmp_path}:{os.environ['PATH']}", "HOME": str(tmp_path)}


def test_credential_helpers(helper_env):  # AU-10
    found = auth.run_credential_helper("ok", "r.example.com", 5, helper_env)
    assert (found.username, found.password) == ("helper-user", "helper-secret")
    assert auth.run_credential_helper("tok", "r.example.com", 5, helper_env).identity_token == "refresh"
    assert auth.run_credential_helper("none", "r.example.com", 5, helper_env) is None
    with pytest.raises(auth.AuthError) as err:
        auth.run_credential_helper("broken", "r.example.com", 5, helper_env)
    assert "exit code 3" in str(err.value) and "leaky" not in str(err.value)
    with pytest.raises(auth.AuthError, match="timed out"):
        auth.run_credential_helper("hang", "r.example.com", 0.5, helper_env)
    with pytest.raises(auth.AuthError, match="not found on PATH"):
        auth.run_credential_helper("missing", "r.example.com", 5, helper_env)
    with pytest.raises(InvalidInput):
        auth.run_credential_helper("../evil", "r.example.com", 5, helper_env)


def test_cred_helpers_in_config(tmp_path, helper_env):
    path = write_config(tmp_path, {"credHelpers": {"r.example.com": "ok"}, "credsStore": "none",
                                   "auths": {"s.example.com": {"auth": b64("fallback:pw")}}})
    assert auth.resolve_credentials(parse_registry("r.example.com"), docker_config=path,
                                    environ=helper_env).username == "helper-user"
    creds = auth.resolve_credentials(parse_registry("s.example.com"), docker_config=path, environ=helper_env)
    assert creds.username == "fallback" and "had none" in creds.source


@pytest.mark.parametrize("realm,scheme,host,ok", [  # AU-12
    ("https://auth.example/token", "https", "r.example.com", True),
    ("http://auth.example/token", "https", "r.example.com", False),
    ("https://169.254.169.254/latest", "https", "r.example.com", False),
    ("https://127.0.0.1:9999/token", "https", "127.0.0.1:5000", True),
    ("ftp://auth.example/token", "https", "r.example.com", False),
    ("http://auth.example/token", "http", "127.0.0.1:5000", True),
])
def test_realm_validation(realm, scheme, host, ok):
    if ok:
        auth.validate_realm(realm, scheme, host)
    else:
        with pytest.raises(auth.AuthError):
            auth.validate_realm(realm, scheme, host)


def test_redaction():  # AU-13
    text = f"failed for {SECRET} and Basic {b64('bob:' + SECRET)}"
    assert SECRET not in auth.redact(text, [SECRET])
    url = auth.redact_url("https://u:p@s3.example/blob?X-Amz-Signature=abc&part=1")
    assert "abc" not in url and "u:p" not in url and "part=1" in url
