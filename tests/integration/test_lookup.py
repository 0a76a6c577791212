"""The digest lookup against real registries, compared with skopeo (issue 3); its credentials go to the configured
registry only (issue 14)."""

from __future__ import annotations

import base64
import json
import subprocess
from pathlib import Path

import pytest

from tests.integration.runner import run_playbook
from tests.lab import reliability, seed
from tests.lab.faultproxy import FaultProxy, Rule
from tests.lab.registry import DEFAULT_USERS, start_registry


def skopeo_digest(lab, reference: str) -> str:
    cmd = ["skopeo", "inspect", "--format", "{{.Digest}}", *lab.skopeo_options()]
    return subprocess.run(cmd + [f"docker://{reference}"], capture_output=True, text=True, check=True,
                          timeout=60).stdout.strip()


def test_digest_lookup_matches_skopeo(lab):
    session = seed.LabSession(lab)
    image = seed.push_image(session, "lookup/app", "1.0", seed=90)
    index = seed.push_index(session, "lookup/app", "multi", seed=91)
    conn = lab.conn()
    run = run_playbook("lookup.yml", {"conn": conn, "ref_tag": f"{lab.host}/lookup/app:1.0",
                                      "ref_index": f"{lab.host}/lookup/app:multi",
                                      "ref_missing": f"{lab.host}/lookup/app:nope"})
    assert run.ok, run.output
    digests = run.results["digests"]
    assert digests["tag"] == image["digest"] == skopeo_digest(lab, f"{lab.host}/lookup/app:1.0")
    assert digests["index"] == index["digest"]
    assert digests["arm64"] == index["children"][1]["digest"]
    missing = run.results["missing"]
    assert missing["failed"] and "lookup/app:nope does not exist" in missing["msg"]
    assert "Traceback" not in run.output


# --- credentials per host (issue 14, item 1) --------------------------------------------------------------------

CFG_USER = ("cfguser", "cfg-Secret-b0b5")  # known to the lab only through the Docker config.json entry of host B
REALM_TOKEN = "c-realm-token"  # what the token realm of host C hands out


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def secret_forms(user: str, password: str) -> set[str]:
    """How a credential can appear in a request: the password, and base64 of it and of ``user:password``."""
    return {password, base64.b64encode(password.encode()).decode(),
            base64.b64encode(f"{user}:{password}".encode()).decode()}


def leaks(proxy: FaultProxy, allowed: set[str], foreign: set[str]) -> list:
    """Requests ``proxy`` saw carrying an Authorization other than ``allowed`` or a ``foreign`` secret in any
    header."""
    found = []
    for seen in proxy.seen:
        headers = {k.lower(): v for k, v in seen.headers.items()}
        stray = headers.get("authorization") not in allowed | {None}
        if stray or any(secret in value for value in headers.values() for secret in foreign):
            found.append((seen.method, seen.path))
    return found


def stray_credentials(proxy: dict, users: dict) -> dict:
    """Per proxy, the requests that carried credentials not its own: the lab users' belong to A (the configured
    host), cfguser's to B (its config.json entry), the realm's token to C."""
    lab_secrets = set().union(*(secret_forms(*identity) for identity in users.values()))
    cfg_secrets = secret_forms(*CFG_USER)
    return {
        "A": leaks(proxy["A"], {basic(*identity) for identity in users.values()}, cfg_secrets),
        "B": leaks(proxy["B"], {basic(*CFG_USER)}, lab_secrets),
        "C": leaks(proxy["C"], {f"Bearer {REALM_TOKEN}"}, lab_secrets | cfg_secrets),
        "R": leaks(proxy["R"], set(), lab_secrets | cfg_secrets),
        "D": leaks(proxy["D"], set(), lab_secrets | cfg_secrets),
    }


@pytest.fixture(scope="module")
def hosts(tmp_path_factory):
    """One Basic registry (alice, pusher, reader and cfguser) behind recording proxies, each its own host:
    A (configured, http), B and C (terms on other hosts, https), R (C's token realm, https), D (redirect target)."""
    lab = start_registry("basic", tmp_path_factory.mktemp("lab-hosts"),
                         users={**DEFAULT_USERS, CFG_USER[0]: {"password": CFG_USER[1]}})
    pki = Path(lab.ca_path).parent
    tls = (str(pki / "server.pem"), str(pki / "server.key"))
    proxies = {}
    try:
        proxies["A"] = FaultProxy(lab.url, upstream_ca=lab.ca_path)
        proxies["B"] = FaultProxy(lab.url, upstream_ca=lab.ca_path, tls=tls)
        proxies["C"] = FaultProxy(lab.url, upstream_ca=lab.ca_path, tls=tls)
        proxies["R"] = FaultProxy(lab.url, upstream_ca=lab.ca_path, tls=tls)
        proxies["D"] = FaultProxy(lab.url, upstream_ca=lab.ca_path, upstream_basic=("reader", lab.users["reader"]))
        yield lab, proxies
    finally:
        for proxy in proxies.values():
            proxy.close()
        lab.close()


def test_credentials_go_only_to_the_configured_host(hosts, tmp_path):
    lab, proxy = hosts
    session = seed.LabSession(lab)
    a_image = seed.push_image(session, "lookup/a", "1.0", seed=92)
    a_index = seed.push_index(session, "lookup/a", "multi", seed=93)
    b_image = seed.push_image(session, "lookup/b", "1.0", seed=94)
    proxy["A"].add(Rule("redirect", method="GET", path=r"/(manifests|blobs)/sha256:", redirect_to=proxy["D"].url,
                        times=0))
    proxy["C"].add(Rule("status", status=401, times=0, headers={
        "WWW-Authenticate": f'Bearer realm="{proxy["R"].url}/token",service="c.test"'}))
    proxy["R"].add(Rule("status", path=r"^/token", status=200, times=0, headers={"Content-Type": "application/json"},
                        body=json.dumps({"token": REALM_TOKEN, "expires_in": 300}).encode()))
    (tmp_path / "config.json").write_text(json.dumps({"auths": {proxy["B"].host: {
        "auth": base64.b64encode(":".join(CFG_USER).encode()).decode()}}}))
    users = {source: (user, lab.users[user]) for source, user in (("opt", "alice"), ("var", "pusher"),
                                                                  ("env", "reader"))}
    run = run_playbook("lookup_hosts.yml", {
        "corp_registry": proxy["A"].url, "lab_ca": lab.ca_path,
        "opt_user": users["opt"][0], "opt_password": users["opt"][1],
        "var_user": users["var"][0], "var_password": users["var"][1],
        "a_ref": f"{proxy['A'].host}/lookup/a:1.0", "a_index": f"{proxy['A'].host}/lookup/a:multi",
        "a_repository": "lookup/a", "b_ref": f"{proxy['B'].host}/lookup/b:1.0",
        "c_ref": f"{proxy['C'].host}/lookup/c:1.0", "unbound_ref": f"{proxy['B'].host}/lookup/unbound:1.0",
    }, env={"REGOPS_REGISTRY_USERNAME": users["env"][0], "REGOPS_REGISTRY_PASSWORD": users["env"][1],
            "DOCKER_CONFIG": str(tmp_path)})
    # Counted first, so that the reliability row has it whatever else fails.
    found = stray_credentials(proxy, users)
    tried = sum(len(p.seen) for name, p in proxy.items() if name != "A")
    sent = sum(len(requests) for requests in found.values())
    reliability.row("credentials", "credentials from options, vars, env: lookup terms on 2 other hosts, a token "
                    "realm on a 3rd, manifest and blob redirects to a 4th", f"credentials sent to another host: {sent}",
                    tries=tried, mode="basic", credentials_sent=sent)
    assert sent == 0, found
    assert run.ok, run.output[-3000:]
    results = run.results
    # The configured host (from a templated variable) resolves with each source's credentials ...
    for source in ("by_options", "by_vars", "by_env"):
        assert results[source] == [a_image["digest"], b_image["digest"]], source
    assert results["arm64"] == a_index["children"][1]["digest"]
    assert {i["tag"]: i["digest"] for i in results["images"]} == {"1.0": a_image["digest"], "multi": a_index["digest"]}
    seen_at_a = {s.headers.get("Authorization") for s in proxy["A"].seen}
    assert {basic(*identity) for identity in users.values()} <= seen_at_a
    # ... a term on another host is resolved there, not rerouted, with its own config.json entry only ...
    assert not [s for s in proxy["A"].seen if "/lookup/b/" in s.path]
    assert {s.headers.get("Authorization") for s in proxy["B"].seen if "/lookup/b/" in s.path} >= {basic(*CFG_USER)}
    # ... the realm of a third host is asked (anonymously), and the redirect target is reached.
    assert [s for s in proxy["R"].seen if s.path.startswith("/token")]
    assert all(r["failed"] and "lookup/c:1.0" in r["msg"] for r in results["realm"]), results["realm"]
    assert [s for s in proxy["D"].seen if "/blobs/" in s.path] and [s for s in proxy["D"].seen if "/manifests/" in s.path]
    # Credentials without a configured registry: refused before any request.
    unbound = results["unbound"]
    assert unbound["failed"] and "without a registry" in unbound["msg"], unbound
    assert not [s for s in proxy["B"].seen if "/lookup/unbound/" in s.path]
