"""The registry inventory plugin (issue 3): hosts per image, groups per repository, keyed groups, caching."""

from __future__ import annotations

import json

import yaml

from tests.integration.runner import run_ansible
from tests.lab import seed


def write_inventory(tmp_path, lab, **extra) -> str:
    config = {"plugin": "regops.registry.registry", **lab.conn(), "repositories": ["inv/.*", "inv2/app"],
              "keyed_groups": [{"key": "registry_image_architectures", "prefix": "arch"},
                               {"key": "registry_image_labels['com.example.team'] | default('none')", "prefix": "team"}],
              "compose": {"image_pin": "registry_image_repository ~ '@' ~ registry_image_digest"},
              # a conditional group over a composed variable: composed before the groups are made
              "groups": {"pinned_web": "image_pin.startswith('inv/web@')"},
              "cache": True, "cache_plugin": "ansible.builtin.jsonfile", "cache_connection": str(tmp_path / "cache"),
              **extra}
    path = tmp_path / "lab.registry.yml"
    path.write_text(yaml.safe_dump(config))
    return str(path)


def test_inventory_graph_groups_and_cache(lab, tmp_path):
    session = seed.LabSession(lab)
    web = seed.push_image(session, "inv/web", "1.0", labels={"com.example.team": "web"}, seed=11)
    seed.tag_manifest(session, "inv/web", "stable", web["raw"], web["media_type"])
    multi = seed.push_index(session, "inv/api", "2.0", labels={"com.example.team": "api"}, seed=12, with_attestation=True)
    arm = seed.push_image(session, "inv2/app", "arm", architecture="arm64", seed=13,
                          labels={"com.example.team": "{{ lookup('pipe', 'id') }}"})
    path = write_inventory(tmp_path, lab)

    proc = run_ansible_inventory(path, "--graph")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "@repo_inv_web:" in proc.stdout and "inv/web@1.0" in proc.stdout and "inv/web@stable" in proc.stdout
    assert "@repo_inv_api:" in proc.stdout and "@repo_inv2_app:" in proc.stdout

    listing = unwrap(json.loads(run_ansible_inventory(path, "--list").stdout))
    hostvars = listing["_meta"]["hostvars"]
    assert hostvars["inv/web@1.0"]["registry_image_digest"] == web["digest"]
    assert hostvars["inv/web@1.0"]["registry_image_reference"] == f"{lab.host}/inv/web:1.0"
    assert hostvars["inv/web@1.0"]["registry_image_shared_tags"] == ["stable"]
    assert hostvars["inv/api@2.0"]["registry_image_digest"] == multi["digest"]
    assert hostvars["inv/api@2.0"]["image_pin"] == f"inv/api@{multi['digest']}"
    assert set(listing["arch_arm64"]["hosts"]) == {"inv/api@2.0", "inv2/app@arm"}
    assert set(listing["arch_amd64"]["hosts"]) == {"inv/api@2.0", "inv/web@1.0", "inv/web@stable"}
    assert set(listing["team_web"]["hosts"]) == {"inv/web@1.0", "inv/web@stable"}
    assert set(listing["pinned_web"]["hosts"]) == {"inv/web@1.0", "inv/web@stable"}
    # A label that looks like a template stays text: never evaluated.
    assert hostvars["inv2/app@arm"]["registry_image_labels"]["com.example.team"] == "{{ lookup('pipe', 'id') }}"
    assert arm["digest"] == hostvars["inv2/app@arm"]["registry_image_digest"]

    # Host names work in host patterns (no ':'), alone and combined with groups.
    hosts = run_ansible("ansible", ["-i", path, "inv/web@1.0:arch_arm64", "--list-hosts"], local=False)
    assert hosts.returncode == 0, hosts.stdout + hosts.stderr
    assert {"inv/web@1.0", "inv/api@2.0", "inv2/app@arm"} <= set(hosts.stdout.split())

    # Cached: a second run sends no manifest request (and no request at all).
    mark = lab.mark()
    again = unwrap(json.loads(run_ansible_inventory(path, "--list").stdout))
    assert again["_meta"]["hostvars"] == hostvars
    assert [r for r in lab.requests(mark) if "/manifests/" in r.path] == []


def test_inventory_tag_filter_and_limit(lab_plain, tmp_path):
    session = seed.LabSession(lab_plain)
    for i, day in enumerate(["01", "03", "02", "04"]):
        seed.push_image(session, "lim/app", f"1.0.{i}", created=f"2024-01-{day}T00:00:00Z", seed=30 + i)
    seed.push_image(session, "lim/app", "dev", seed=40)
    path = write_inventory(tmp_path, lab_plain, repositories=["lim/app"], tags=[r"^\d+\.\d+\.\d+$"], tag_limit=2,
                           cache=False)
    listing = unwrap(json.loads(run_ansible_inventory(path, "--list").stdout))
    assert sorted(listing["repo_lim_app"]["hosts"]) == ["lim/app@1.0.1", "lim/app@1.0.3"]


def test_inventory_errors_are_clear(lab_plain, tmp_path):
    path = write_inventory(tmp_path, lab_plain, tags=["(["], cache=False)
    proc = run_ansible_inventory(path, "--list")
    assert "not a valid regular expression" in proc.stdout + proc.stderr
    assert "Traceback" not in proc.stdout + proc.stderr


def unwrap(value):
    """ansible-inventory --list prints values read back from a cache as {"__ansible_unsafe": ...}."""
    if isinstance(value, dict):
        if set(value) == {"__ansible_unsafe"}:
            return value["__ansible_unsafe"]
        return {k: unwrap(v) for k, v in value.items()}
    if isinstance(value, list):
        return [unwrap(v) for v in value]
    return value


def run_ansible_inventory(path: str, *args: str):
    return run_ansible("ansible-inventory", ["-i", path, *args], local=False)


def test_inventory_connection_options_may_be_templates(lab_basic, tmp_path):
    """``registry`` from an extra variable, credentials from environment lookups: rendered, not used as text
    (before: "invalid registry '{{ corp_registry }}'")."""
    image = seed.push_image(seed.LabSession(lab_basic), "inv/templated", "1.0", seed=14)
    path = write_inventory(tmp_path, lab_basic, repositories=["inv/templated"], cache=False,
                           registry="{{ corp_registry }}", username="{{ lookup('env', 'INV_USER') }}",
                           password="{{ lookup('env', 'INV_PASSWORD') }}")
    proc = run_ansible("ansible-inventory", ["-i", path, "--list", "-e", f"corp_registry={lab_basic.url}"],
                       local=False, env={"INV_USER": "reader", "INV_PASSWORD": lab_basic.users["reader"]})
    assert proc.returncode == 0 and "invalid registry" not in proc.stderr, proc.stderr[-2000:]
    hostvars = unwrap(json.loads(proc.stdout))["_meta"]["hostvars"]
    assert hostvars["inv/templated@1.0"]["registry_image_digest"] == image["digest"]
