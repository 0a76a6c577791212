"""_auth: challenges, scopes, token requests, token cache, realm validation, redaction (pure).

Checklist IDs (protocol reference section 4): AU-01..AU-05, AU-07, AU-08, AU-12, AU-13.
Credentials (AU-09, AU-10) are in test_credentials.py.
"""

from __future__ import annotations

import base64
import json
import threading
import time

import pytest

from ansible_collections.regops.registry.plugins.module_utils import _auth as auth
from ansible_collections.regops.registry.plugins.module_utils import _credentials as credentials
from ansible_collections.regops.registry.plugins.module_utils._auth import AuthError, Challenge, Scope
from ansible_collections.regops.registry.plugins.module_utils._credentials import Credentials
from ansible_collections.regops.registry.plugins.module_utils.errors import InvalidInput
from ansible_collections.regops.registry.plugins.module_utils.reference import parse_registry

SECRET = "s3cr3t:with:colons+/="
REFRESH = "refresh-token-value-9f8e7d"
BEARER = "pre-issued-bearer-4242"
REGTOKEN = "registry-token-value-1234"
HUB_KEY = "https://index.docker.io/v1/"


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def bearer(realm: str = "https://auth.example.com/token", **params: str) -> Challenge:
    return Challenge("bearer", {"realm": realm, **params})


def token_request(challenge: Challenge, scopes, creds: Credentials, **kwargs) -> auth.TokenRequest:
    kwargs.setdefault("registry_scheme", "https")
    kwargs.setdefault("registry_host", "registry.example.com")
    return auth.build_token_request(challenge, scopes, creds, **kwargs)


# --- AU-01 challenges -------------------------------------------------------------------------------

@pytest.mark.parametrize("values,expected", [
    pytest.param(['Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:samalba/my-app:pull,push"'],
                 [("bearer", {"realm": "https://auth.docker.io/token", "service": "registry.docker.io",
                              "scope": "repository:samalba/my-app:pull,push"})], id="docker-hub"),
    pytest.param(['bEaReR Realm="https://a/t" , SERVICE=svc'], [("bearer", {"realm": "https://a/t", "service": "svc"})], id="case-variants"),
    pytest.param(['BASIC REALM="r"'], [("basic", {"realm": "r"})], id="upper-case"),
    pytest.param(['Basic realm="say \\"hi\\" \\\\ bye"'], [("basic", {"realm": 'say "hi" \\ bye'})], id="quoted-escapes"),
    pytest.param(["Bearer realm=https://a/t,service=reg.example,error=invalid_token"],
                 [("bearer", {"realm": "https://a/t", "service": "reg.example", "error": "invalid_token"})], id="unquoted-tokens"),
    pytest.param(['Bearer realm = "https://a/t" , service = "s"'], [("bearer", {"realm": "https://a/t", "service": "s"})], id="spaces-around-equals"),
    pytest.param(['Bearer realm="https://a/t",scope="repository:dst:pull,push repository:src:pull"'],
                 [("bearer", {"realm": "https://a/t", "scope": "repository:dst:pull,push repository:src:pull"})], id="comma-inside-quotes"),
    pytest.param(['Basic realm="r", Bearer realm="https://a/t",service="s"'],
                 [("basic", {"realm": "r"}), ("bearer", {"realm": "https://a/t", "service": "s"})], id="two-in-one-field"),
    pytest.param(['Basic realm="r"', 'Bearer realm="https://a/t",service="s"'],
                 [("basic", {"realm": "r"}), ("bearer", {"realm": "https://a/t", "service": "s"})], id="two-fields"),
    pytest.param(['Negotiate abc==, Basic realm="r"'], [("negotiate", {}), ("basic", {"realm": "r"})], id="token68-then-basic"),
    pytest.param(['Negotiate, Basic realm="r"'], [("negotiate", {}), ("basic", {"realm": "r"})], id="bare-scheme"),
    pytest.param(['Bearer realm="https://a/t", realm="https://evil/t"'], [("bearer", {"realm": "https://a/t"})], id="first-param-wins"),
    pytest.param(['Bearer realm="unterminated'], [("bearer", {"realm": "unterminated"})], id="unterminated-quote"),
    pytest.param(['realm="orphan", Basic realm="r"'], [("basic", {"realm": "r"})], id="param-before-scheme-dropped"),
    pytest.param(["", None], [], id="empty"),
])
def test_parse_challenges(values, expected):  # AU-01
    got = auth.parse_challenges(values)
    assert [(c.scheme, c.params) for c in got] == expected


@pytest.mark.parametrize("fields", [
    ['Basic realm="Registry"', 'Bearer realm="https://auth.example/token",service="reg",scope="repository:a:pull"'],
    ['Negotiate abc==', 'Basic realm="x, y"', 'Bearer realm="https://auth.example/token",error="insufficient_scope"'],
])
def test_separate_fields_equal_requests_merged_value(fields):  # AU-01: raw getlist() and requests' ", "-merged value agree
    separate = auth.parse_challenges(fields)
    assert separate == auth.parse_challenges(", ".join(fields)) == auth.parse_challenges([", ".join(fields)])
    assert len(separate) == len(fields)


@pytest.mark.parametrize("values,scheme", [
    (['Negotiate, Basic realm="r"'], "basic"),
    (['Negotiate abc', 'Basic realm="r"'], "basic"),
    (['Basic realm="r", Bearer realm="https://a/t"'], "bearer"),
    (['Bearer realm="https://a/t"', 'Basic realm="r"'], "bearer"),
    (['Bearer error="x", Basic realm="r"'], "basic"),  # a Bearer without realm is unusable when Basic is offered
    (['Bearer error="x"'], "bearer"),
    (['Negotiate', 'NTLM'], None),
    ([], None),
])
def test_choose_challenge(values, scheme):  # AU-01
    chosen = auth.choose_challenge(auth.parse_challenges(values))
    assert (chosen.scheme if chosen else None) == scheme


def test_challenge_properties():  # AU-01
    field = 'Bearer realm="https://a/t",service="s",scope="repository:a:push,pull registry:catalog:*",error="insufficient_scope"'
    challenge = auth.parse_challenges([field])[0]
    assert (challenge.realm, challenge.service, challenge.error) == ("https://a/t", "s", "insufficient_scope")
    assert challenge.scopes == [Scope.repository("a", "pull", "push"), Scope("registry", "catalog", ("*",))]


# --- AU-02 scopes ---------------------------------------------------------------------------------

@pytest.mark.parametrize("text,kind,name,actions", [
    ("repository:localhost:5000/app:pull,push", "repository", "localhost:5000/app", ("pull", "push")),
    ("repository:team/app:push,pull,push", "repository", "team/app", ("pull", "push")),
    ("registry:catalog:*", "registry", "catalog", ("*",)),
    ("repository(plugin):a/b:pull", "repository(plugin)", "a/b", ("pull",)),
    ("repository:[::1]:5000/x:delete", "repository", "[::1]:5000/x", ("delete",)),
])
def test_scope_parse(text, kind, name, actions):  # AU-02
    scope = Scope.parse(text)
    assert (scope.type, scope.name, scope.actions) == (kind, name, actions)
    assert Scope.parse(str(scope)) == scope


@pytest.mark.parametrize("text", ["", "repository", "repository:app", "repository::pull", ":a:pull", "repository:a:",
                                  "repository:localhost:5000/app", "repository:a b:pull"])
def test_scope_parse_invalid(text):  # AU-02
    with pytest.raises(InvalidInput, match="invalid scope"):
        Scope.parse(text)


def test_scope_helpers():  # AU-02
    assert str(Scope.repository("a/b", "push", "pull", "pull")) == "repository:a/b:pull,push"
    assert Scope.repository("a", "pull") < Scope.repository("b", "pull")
    assert auth.parse_scope_param("repository:dst:push,pull  repository:src:pull garbage") == [
        Scope.repository("dst", "pull", "push"), Scope.repository("src", "pull")]
    assert auth.parse_scope_param(None) == []


@pytest.mark.parametrize("existing,new,expected", [
    (["repository:a:pull"], ["repository:a:delete"], ["repository:a:delete,pull"]),
    (["repository:a:pull,push"], ["repository:src:pull"], ["repository:src:pull", "repository:a:pull,push"]),
    (["repository:a:pull", "repository:b:pull"], ["repository:b:push", "repository:a:pull"], ["repository:b:pull,push", "repository:a:pull"]),
    ([], ["repository:a:pull", "repository:a:push"], ["repository:a:pull,push"]),
])
def test_merge_scopes(existing, new, expected):  # AU-02: union per resource, new ones first, deterministic
    parse = auth.parse_scope_param
    merged = auth.merge_scopes(parse(" ".join(existing)), parse(" ".join(new)))
    assert [str(s) for s in merged] == expected
    assert merged == auth.merge_scopes(parse(" ".join(existing)), parse(" ".join(new)))


@pytest.mark.parametrize("held,wanted,missing", [
    ("repository:a:pull,push", "repository:a:pull", []),
    ("repository:a:pull", "repository:a:pull,push", ["repository:a:push"]),
    ("repository:a:*", "repository:a:delete", []),
    ("repository:a:pull,push", "repository:b:pull", ["repository:b:pull"]),
    ("repository:a:pull repository:src:pull", "repository:a:pull repository:src:pull,push", ["repository:src:push"]),
])
def test_scopes_missing(held, wanted, missing):  # AU-02
    got = auth.scopes_missing(auth.parse_scope_param(held), auth.parse_scope_param(wanted))
    assert [str(s) for s in got] == missing
    assert auth.scopes_cover(auth.parse_scope_param(held), auth.parse_scope_param(wanted)) is (not missing)


# --- AU-03 token GET ------------------------------------------------------------------------------

def test_token_get_with_basic():  # AU-03
    creds = Credentials(username="bob", password=SECRET)
    req = token_request(bearer("https://auth.example.com/token?tenant=1", service="registry.example"),
                        [Scope.repository("a", "pull"), Scope.repository("b", "pull", "push")], creds)
    assert (req.method, req.url, req.use_basic, req.data) == ("GET", "https://auth.example.com/token?tenant=1", True, None)
    assert req.params == [("service", "registry.example"), ("scope", "repository:a:pull"), ("scope", "repository:b:pull,push"),
                          ("account", "bob"), ("client_id", "regops.registry")]
    assert req.full_url.startswith("https://auth.example.com/token?tenant=1&service=registry.example&scope=repository%3Aa%3Apull&")


@pytest.mark.parametrize("creds", [Credentials(), Credentials(source="anonymous (no Docker config)")])
def test_token_get_anonymous(creds):  # AU-03: no Basic, no account
    req = token_request(bearer(service="svc"), [Scope.repository("library/alpine", "pull")], creds)
    assert req.method == "GET" and not req.use_basic
    assert [k for k, _v in req.params] == ["service", "scope", "client_id"]


def test_token_get_without_service_and_scopes():  # AU-03: service only when the challenge names one
    req = token_request(bearer(), [], Credentials(username="u", password="p"))
    assert req.params == [("account", "u"), ("client_id", "regops.registry")] and req.use_basic


def test_token_request_merges_duplicate_scopes_keeping_order():  # AU-03
    req = token_request(bearer(), [Scope.repository("dst", "push"), Scope.repository("src", "pull"), Scope.repository("dst", "pull")],
                        Credentials())
    assert [v for k, v in req.params if k == "scope"] == ["repository:dst:pull,push", "repository:src:pull"]


def test_token_request_password_grant_when_preferred():  # AU-03 / AU-08
    req = token_request(bearer(service="s"), [Scope.repository("a", "pull")], Credentials(username="u", password=SECRET),
                        prefer_oauth=True)
    assert req.method == "POST" and not req.use_basic and req.params == []
    assert req.data == {"grant_type": "password", "username": "u", "password": SECRET, "service": "s",
                        "client_id": "regops.registry", "scope": "repository:a:pull"}


@pytest.mark.parametrize("challenge,match", [
    (Challenge("basic", {"realm": "r"}), "Bearer challenge"),
    (Challenge("bearer", {"service": "s"}), "without naming a token server"),
    (bearer("http://auth.example.com/token"), "plain http"),
])
def test_token_request_refused(challenge, match):  # AU-03, AU-12
    with pytest.raises(AuthError, match=match):
        token_request(challenge, [], Credentials(username="u", password=SECRET))


# --- AU-04 token responses ------------------------------------------------------------------------

@pytest.mark.parametrize("payload,token,lifetime", [
    ({"access_token": "A"}, "A", 60),
    ({"token": "T", "access_token": "T"}, "T", 60),
    ({"token": "T", "access_token": "A"}, "T", 60),
    ({"token": "", "access_token": "A"}, "A", 60),
    ({"token": "T", "expires_in": 10}, "T", 60),
    ({"token": "T", "expires_in": -5}, "T", 60),
    ({"token": "T", "expires_in": "300"}, "T", 300),
    ({"token": "T", "expires_in": 300, "issued_at": "1999-01-01T00:00:00Z"}, "T", 300),
    ({"token": "T", "expires_in": 3600}, "T", 3600),
    ({"token": "T", "expires_in": "soon"}, "T", 60),
    ({"token": "T", "expires_in": float("inf")}, "T", 60),
])
def test_token_response(payload, token, lifetime):  # AU-04: expiry from local receipt minus min(30 s, 10 %)
    got, expires_at = auth.parse_token_response(payload, 1000.0)
    assert got == token
    assert expires_at == pytest.approx(1000.0 + lifetime - min(30.0, lifetime * 0.1))


@pytest.mark.parametrize("payload", [{"expires_in": 60}, {"token": None, "access_token": ""}, {"token": 42}, [], "token"])
def test_token_response_without_token(payload):  # AU-04
    with pytest.raises(AuthError, match=r"without a token|not a JSON object"):
        auth.parse_token_response(payload, 0.0)


# --- AU-05 / AU-07 cache --------------------------------------------------------------------------

KEY = auth.TokenCache.key("https://auth/t", "svc", [Scope.repository("a", "pull")], "u#1")


def test_cache_single_flight_100_threads():  # AU-05: 100 concurrent users of one key -> one fetch
    cache = auth.TokenCache()
    fetches: list[int] = []
    results: list[str] = []
    barrier = threading.Barrier(100)

    def worker() -> None:
        barrier.wait()
        token = cache.get(KEY, time.time())
        if token is None:
            with cache.lock_for(KEY):
                token = cache.get(KEY, time.time())
                if token is None:
                    fetches.append(1)
                    time.sleep(0.05)
                    token = "tok"
                    cache.put(KEY, token, time.time() + 100)
        results.append(token)

    threads = [threading.Thread(target=worker) for _index in range(100)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(fetches) == 1 and results == ["tok"] * 100


def test_cache_lifetime_and_expiry():  # AU-05
    cache = auth.TokenCache()
    cache.put(KEY, "tok", 1100.0)
    assert [cache.get(KEY, now) for now in (1000.0, 1099.9)] == ["tok", "tok"]
    assert cache.get(KEY, 1100.0) is None
    assert cache.get(KEY, 1000.0) is None  # an expired entry is gone: the next caller refetches


def test_cache_keys_per_scope_realm_service_identity():  # AU-05: a push token is not reused for another repository
    cache = auth.TokenCache()
    push_a = auth.TokenCache.key("https://auth/t", "svc", [Scope.repository("a", "pull", "push")], "u#1")
    cache.put(push_a, "push-a", 2000.0)
    pull = [Scope.repository("a", "pull")]
    assert cache.covering("https://auth/t", "svc", "u#1", pull, 1000.0) == "push-a"
    assert cache.covering("https://auth/t", "svc", "u#1", [Scope.repository("b", "pull")], 1000.0) is None
    assert cache.covering("https://auth/t", "svc", "u#1", [Scope.repository("a", "delete")], 1000.0) is None
    assert cache.covering("https://auth/t", "svc", "other#2", pull, 1000.0) is None
    assert cache.covering("https://other/t", "svc", "u#1", pull, 1000.0) is None
    assert cache.covering("https://auth/t", "svc2", "u#1", pull, 1000.0) is None
    assert cache.covering("https://auth/t", "svc", "u#1", pull, 2000.0) is None
    assert cache.get(auth.TokenCache.key("https://auth/t", "svc", [Scope.repository("b", "pull", "push")], "u#1"), 1000.0) is None


def test_cache_covering_prefers_longest_lived_and_wildcard():  # AU-05
    cache = auth.TokenCache()
    cache.put(auth.TokenCache.key("r", "s", [Scope.repository("a", "pull")], "i"), "short", 1100.0)
    cache.put(auth.TokenCache.key("r", "s", [Scope.repository("a", "pull", "push")], "i"), "long", 1500.0)
    cache.put(auth.TokenCache.key("r", "s", [Scope.repository("b", "*")], "i"), "star", 1500.0)
    assert cache.covering("r", "s", "i", [Scope.repository("a", "pull")], 1000.0) == "long"
    assert cache.covering("r", "s", "i", [Scope.repository("b", "delete")], 1000.0) == "star"


def test_cache_key_is_canonical_and_locks_are_per_key():  # AU-05
    split = auth.TokenCache.key("r", "s", [Scope.repository("a", "push"), Scope.repository("a", "pull")], "i")
    assert split == auth.TokenCache.key("r", "s", [Scope.repository("a", "pull", "push")], "i")
    cache = auth.TokenCache()
    assert cache.lock_for(split) is cache.lock_for(auth.TokenCache.key("r", "s", [Scope.repository("a", "pull", "push")], "i"))
    assert cache.lock_for(split) is not cache.lock_for(KEY)


def test_cache_discard_then_one_refetch():  # AU-07: a refused token is dropped under every key, one refetch
    cache = auth.TokenCache()
    wider = auth.TokenCache.key(KEY[0], KEY[1], [Scope.repository("a", "pull", "push")], KEY[3])
    cache.put(KEY, "stale", time.time() + 100)
    cache.put(wider, "stale", time.time() + 100)
    cache.put(auth.TokenCache.key(KEY[0], KEY[1], [Scope.repository("b", "pull")], KEY[3]), "other", time.time() + 100)
    cache.discard("stale")
    cache.discard("stale")  # idempotent
    assert cache.get(wider, time.time()) is None and len(cache._tokens) == 1
    assert cache.get(KEY, time.time()) is None
    assert cache.covering(KEY[0], KEY[1], KEY[3], [Scope.repository("a", "pull")], time.time()) is None
    fetches = []
    for _attempt in range(3):
        with cache.lock_for(KEY):
            if cache.get(KEY, time.time()) is None:
                fetches.append(1)
                cache.put(KEY, "fresh", time.time() + 100)
    assert len(fetches) == 1 and cache.get(KEY, time.time()) == "fresh"


# --- AU-08 identity tokens ------------------------------------------------------------------------

def test_identity_token_uses_oauth_refresh_grant():  # AU-08
    creds = Credentials(username="bob", identity_token=REFRESH)
    req = token_request(bearer(service="svc"), [Scope.repository("x", "pull"), Scope.repository("y", "pull", "push")], creds)
    assert req.method == "POST" and not req.use_basic and req.params == []
    assert req.data == {"grant_type": "refresh_token", "refresh_token": REFRESH, "service": "svc",
                        "client_id": "regops.registry", "scope": "repository:x:pull repository:y:pull,push"}
    assert auth.fallback_to_get(req, creds) is None  # no password: nothing to fall back to


def test_oauth_404_falls_back_to_get_with_password():  # AU-08
    creds = Credentials(username="bob", password=SECRET, identity_token=REFRESH)
    post = token_request(bearer(service="svc"), [Scope.repository("x", "pull")], creds)
    get = auth.fallback_to_get(post, creds)
    assert (get.method, get.url, get.use_basic, get.data) == ("GET", post.url, True, None)
    assert get.params == [("service", "svc"), ("scope", "repository:x:pull"), ("account", "bob"), ("client_id", "regops.registry")]
    assert REFRESH not in repr(get.params)
    assert auth.fallback_to_get(get, creds) is None  # only a POST falls back


# --- AU-12 realm validation -----------------------------------------------------------------------

@pytest.mark.parametrize("realm,scheme,host", [
    ("https://auth.example.com/token", "https", "registry.example.com"),
    ("https://auth.example.com/token?a=1", "https", "registry.example.com"),
    ("http://auth.example.com/token", "http", "registry.example.com"),
    ("https://auth.example.com/token", "http", "127.0.0.1:5000"),
    ("https://127.0.0.1:9999/token", "https", "127.0.0.1:5000"),  # lab: loopback token server on another port
    ("https://localhost:9999/token", "https", "127.0.0.1:5000"),
    ("https://[::1]:9999/token", "https", "localhost:5000"),
    ("https://10.0.0.6/token", "https", "10.0.0.5:5000"),  # internal registry, internal token server
    ("https://192.168.1.2/token", "https", "127.0.0.1:5000"),
    ("https://169.254.10.10:5001/token", "https", "169.254.10.10:5000"),  # its own host
    ("https://8.8.8.8/token", "https", "registry.example.com"),  # a public IP literal
])
def test_realm_accepted(realm, scheme, host):  # AU-12
    assert auth.validate_realm(realm, scheme, host) is None


@pytest.mark.parametrize("realm,scheme,host,match", [
    ("http://auth.example.com/token", "https", "registry.example.com", "plain http"),
    ("https://169.254.169.254/latest/meta-data", "https", "registry.example.com", "link-local"),
    ("https://169.254.169.254/latest/meta-data", "https", "10.0.0.5", "link-local"),
    ("https://169.254.169.254/latest/meta-data", "https", "127.0.0.1:5000", "link-local"),
    ("https://[::ffff:169.254.169.254]/x", "https", "registry.example.com", "link-local"),
    ("https://2852039166/x", "https", "registry.example.com", "link-local"),  # 169.254.169.254 as a decimal
    ("https://[fe80::1]/x", "https", "registry.example.com", "link-local"),
    ("https://127.0.0.1:9999/token", "https", "registry.example.com", "loopback"),
    ("https://127.1/token", "https", "registry.example.com", "loopback"),
    ("https://localhost/token", "https", "registry.example.com", "loopback"),
    ("https://10.0.0.1/token", "https", "registry.example.com", "private"),
    ("https://127.0.0.1/token", "https", "10.0.0.5:5000", "loopback"),
    ("https://0.0.0.0/token", "https", "registry.example.com", "special"),
    ("ftp://auth.example.com/token", "https", "registry.example.com", "not an absolute http"),
    ("/token", "https", "registry.example.com", "not an absolute http"),
    ("", "https", "registry.example.com", "without naming a token server"),
    ("https://user:pw@auth.example.com/token", "https", "registry.example.com", "user info"),
    ("https://user:p/w@auth.example.com/token", "https", "registry.example.com", "not an absolute http"),
])
def test_realm_refused(realm, scheme, host, match):  # AU-12
    with pytest.raises(AuthError, match=match) as err:
        auth.validate_realm(realm, scheme, host)
    assert ":pw@" not in str(err.value) and ":p/w@" not in str(err.value)


def test_token_request_validates_the_realm():  # AU-12
    with pytest.raises(AuthError, match="link-local"):
        token_request(bearer("https://169.254.169.254/token"), [], Credentials(username="u", password=SECRET))


# --- AU-13 secrets never shown --------------------------------------------------------------------

ALL_SECRETS = Credentials(username="bob", password=SECRET, bearer_token=BEARER, identity_token=REFRESH, registry_token=REGTOKEN,
                          source="username option")


@pytest.mark.parametrize("render", [repr, str, lambda c: f"{c}", lambda c: repr([c]), lambda c: repr({"c": c})])
def test_credentials_repr_redacts(render):  # AU-13
    text = render(ALL_SECRETS)
    assert "bob" in text and "username option" in text
    for secret in (SECRET, BEARER, REFRESH, REGTOKEN, b64(f"bob:{SECRET}")):
        assert secret not in text


def test_token_request_repr_redacts():  # AU-13
    text = repr(token_request(bearer(), [], Credentials(identity_token=REFRESH))) + repr(
        token_request(bearer(), [], Credentials(username="u", password=SECRET), prefer_oauth=True))
    assert REFRESH not in text and SECRET not in text and "REDACTED" in text


def test_identity_is_stable_distinct_and_not_secret():  # AU-05, AU-13: caches never mix credentials
    same = Credentials(username="bob", password=SECRET).identity
    assert same == Credentials(username="bob", password=SECRET, source="elsewhere").identity
    others = {Credentials(username="bob", password="other").identity, Credentials(username="eve", password=SECRET).identity,
              Credentials().identity, Credentials(bearer_token=SECRET).identity, Credentials(identity_token=SECRET).identity}
    assert same not in others and len(others) == 5
    assert SECRET not in same and b64(f"bob:{SECRET}") not in same and same.startswith("bob#")


def test_basic_header_and_secrets():  # AU-13
    creds = Credentials(username="bob", password=SECRET)
    assert creds.basic_header() == "Basic " + b64(f"bob:{SECRET}")
    assert b64(f"bob:{SECRET}") in creds.secrets() and SECRET in creds.secrets()
    assert Credentials(username="bob").basic_header() is None and Credentials().basic_header() is None
    assert [c.kind for c in (ALL_SECRETS, Credentials(registry_token="r"), Credentials(identity_token="i"), creds, Credentials())] == [
        "bearer", "registry_token", "identity_token", "basic", "anonymous"]


def write_config(directory, data) -> str:
    path = directory / "config.json"
    path.write_text(json.dumps(data) if not isinstance(data, str) else data)
    return str(path)


def _raise_helper_failure(tmp_path):
    bindir = tmp_path / "bin"
    bindir.mkdir()
    script = bindir / "docker-credential-leak"
    script.write_text(f"#!/bin/sh\necho '{SECRET}'; echo '{REFRESH}' >&2; exit 2\n")
    script.chmod(0o755)
    credentials.run_credential_helper("leak", SECRET, 5, {"PATH": str(bindir)})


def _raise_bad_auth_entry(tmp_path):
    path = write_config(tmp_path, {"auths": {"r.example.com": {"auth": SECRET.replace(":", "") + "!", "password": SECRET}}})
    credentials.resolve_credentials(parse_registry("r.example.com"), docker_config=path, environ={})


def _raise_bad_json(tmp_path):
    path = write_config(tmp_path, '{"auths": {"r.example.com": {"auth": "' + SECRET + '"')
    credentials.resolve_credentials(parse_registry("r.example.com"), docker_config=path, environ={})


AUTH_ERRORS = {
    "helper-output": _raise_helper_failure,
    "bad-auth-entry": _raise_bad_auth_entry,
    "bad-json": _raise_bad_json,
    "token-response": lambda _tmp: auth.parse_token_response({"token": {"v": SECRET}, "refresh_token": REFRESH}, 0),
    "realm-with-userinfo": lambda _tmp: auth.validate_realm(f"https://u:{SECRET}@auth.example.com/t?token={REFRESH}", "https", "r"),
    "realm-link-local": lambda _tmp: auth.validate_realm(f"https://169.254.169.254/t?access_token={REFRESH}", "https", "r.example.com"),
    "realm-plain-http": lambda _tmp: auth.validate_realm(f"http://auth.example.com/t?token={REFRESH}", "https", "r"),
    "token-request-basic": lambda _tmp: auth.build_token_request(Challenge("basic", {"realm": SECRET}), [], ALL_SECRETS,
                                                                 registry_scheme="https", registry_host="r"),
}


@pytest.mark.parametrize("name", sorted(AUTH_ERRORS))
def test_auth_errors_never_contain_secrets(tmp_path, name):  # AU-13
    with pytest.raises(AuthError) as err:
        AUTH_ERRORS[name](tmp_path)
    text = str(err.value) + repr(err.value) + "".join(str(a) for a in err.value.args)
    assert text.strip()
    for secret in (SECRET, REFRESH, BEARER, REGTOKEN):
        assert secret not in text
    assert err.value.__cause__ is None  # "from None": no chained exception carrying the raw value


@pytest.mark.parametrize("text,secrets,gone,kept", [
    (f"failed for {SECRET}", [SECRET], [SECRET], ["failed for"]),
    (f"sent Authorization: Basic {b64('bob:' + SECRET)}", [], [b64("bob:" + SECRET)], ["Authorization: Basic"]),
    ("authorization=Bearer abc.def.ghi123", [], ["abc.def.ghi123"], ["authorization="]),
    ('{"Authorization": "Bearer dXNlcjpwYXNz"}', [], ["dXNlcjpwYXNz"], ['"Authorization"']),
    (f"url https://x/?p={SECRET.replace(':', '%3A').replace('+', '%2B').replace('/', '%2F').replace('=', '%3D')}", [SECRET], ["s3cr3t"], []),
    ("token eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ1In0.c2lnbmF0dXJl here", [], ["eyJhbGciOiJSUzI1NiJ9"], ["here"]),
    ('{"token": "opaque123", "expires_in": 60, "refresh_token": "r3fresh"}', [], ["opaque123", "r3fresh"], ['"expires_in": 60']),
    ("password=hunter2&user=bob", [], ["hunter2"], ["user=bob"]),
    ('Bearer realm="https://auth.example/token",service="registry",error="invalid_token"', [], [],
     ['Bearer realm="https://auth.example/token"', 'error="invalid_token"']),
    ("the registry uses basic authentication; Bearer token required", [], [], ["basic authentication", "Bearer token required"]),
    (None, [SECRET], [], [""]),
])
def test_redact(text, secrets, gone, kept):  # AU-13
    out = auth.redact(text, secrets)
    assert all(g not in out for g in gone)
    assert all(k in out for k in kept)
    if gone:
        assert "REDACTED" in out


@pytest.mark.parametrize("url,expected", [
    ("https://u:p@s3.example/blob?X-Amz-Signature=abc&part=1&X-Amz-Credential=AKIA%2F1",
     "https://s3.example/blob?X-Amz-Signature=REDACTED&part=1&X-Amz-Credential=REDACTED"),
    ("https://r.example/v2/a/blobs/uploads/u1?_state=c2VjcmV0&digest=sha256%3Aab",
     "https://r.example/v2/a/blobs/uploads/u1?_state=REDACTED&digest=sha256%3Aab"),
    ("https://blob.core.example/c/b?sv=2020&sig=xyz%2B1&se=2030", "https://blob.core.example/c/b?sv=2020&sig=REDACTED&se=2030"),
    ("https://auth.example/t?service=s&token=t0k&ACCESS_TOKEN=a&Signature=z",
     "https://auth.example/t?service=s&token=REDACTED&ACCESS_TOKEN=REDACTED&Signature=REDACTED"),
    ("https://r.example/v2/_catalog?n=100&last=a%2Fb", "https://r.example/v2/_catalog?n=100&last=a%2Fb"),
    ("https://user@r.example:5000/v2/", "https://r.example:5000/v2/"),
    ("https://u:pa/ss?x#y@r.example/v2/?token=t", "https://r.example/v2/?token=REDACTED"),
    ("https://r.example/v2/a/blobs/x@y", "https://r.example/v2/a/blobs/x@y"),
    (None, None),
    ("", ""),
])
def test_redact_url(url, expected):  # AU-13
    assert auth.redact_url(url) == expected
