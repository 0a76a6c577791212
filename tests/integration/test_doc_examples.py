"""Every YAML example of the README, the guides, the role READMEs and the plugins' EXAMPLES parses, means what it
says, and runs.

Playbooks and task lists go through ``ansible-playbook --syntax-check`` (all in one run); prune policies through
the retention planner (a wrong term or regex fails there); the inventory examples through the plugin's own option
list. Then every example runs, as written, against two TLS+Basic lab registries standing in for the hosts the
docs name, with the module examples' placeholder digests and files pointed at seeded ones: see
``test_every_example_runs``.
"""

from __future__ import annotations

import ast
import base64
import datetime
import json
import re
import secrets
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import yaml

from tests.integration.runner import ROOT, ansible_env, run_ansible
from tests.lab import seed
from tests.lab.registry import start_registry

SOURCES = ["README.md", *sorted(str(p.relative_to(ROOT)) for p in (ROOT / "docs").glob("*.md")),
           *sorted(str(p.relative_to(ROOT)) for p in (ROOT / "roles").glob("*/README.md"))]
BLOCK = re.compile(r"```yaml\n(.*?)```", re.S)
ROLE_TERMS = {"prune_keep_latest": "keep_latest", "prune_group_by": "group_by", "prune_keep_tags": "keep_tags",
              "prune_match_tags": "match_tags", "prune_older_than": "older_than", "prune_order": "order"}


def example_texts() -> list[tuple[str, str]]:
    """The README's, guides' and role READMEs' YAML blocks, then every plugin's and module's EXAMPLES (filters first:
    a module example may use what a filter example planned)."""
    found = [(f"{source} example {number}", match.group(1))
             for source in SOURCES for number, match in enumerate(BLOCK.finditer((ROOT / source).read_text()), 1)]
    for path in sorted((ROOT / "plugins" / "filter").glob("*.yml")) + sorted((ROOT / "plugins").glob("*/*.py")):
        if path.suffix == ".yml":
            text = (yaml.safe_load(path.read_text()) or {}).get("EXAMPLES")
        else:
            text = next((ast.literal_eval(node.value) for node in ast.parse(path.read_text()).body
                         if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", None) == "EXAMPLES"), None)
        if text:
            found.append((f"{path.relative_to(ROOT)} EXAMPLES", text))
    return found


def examples() -> list[tuple[str, object]]:
    return [(name, yaml.safe_load(text)) for name, text in example_texts()]


def is_play(item) -> bool:
    return isinstance(item, dict) and ("hosts" in item or "import_playbook" in item)


def write_example_playbooks(directory: Path) -> list[str]:
    """Every playbook and task list as a user would paste it: playbooks as written, task lists under a named play."""
    files = []
    for number, (name, text) in enumerate(example_texts()):
        data = yaml.safe_load(text)
        if not isinstance(data, list):
            continue
        body = text if all(is_play(item) for item in data) else (
            "- name: Example\n  hosts: localhost\n  gather_facts: false\n  tasks:\n" + textwrap.indent(text, "    "))
        path = directory / f"example{number:02d}.yml"
        path.write_text(f"---\n# {name}\n{body}")
        files.append(str(path))
    return files


def test_every_playbook_and_task_list_passes_syntax_check(tmp_path):
    paths = write_example_playbooks(tmp_path)
    assert len(paths) >= 20
    proc = run_ansible("ansible-playbook", ["--syntax-check", *paths])
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]


def test_every_playbook_and_task_list_passes_ansible_lint_production(tmp_path):
    files = write_example_playbooks(tmp_path)
    assert len(files) >= 20
    proc = subprocess.run([str(Path(sys.executable).parent / "ansible-lint"), "--offline", "--nocolor",
                           "--profile", "production", *files], cwd=tmp_path, env=ansible_env(), capture_output=True,
                          text=True, timeout=600, stdin=subprocess.DEVNULL, check=False)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]


def is_prune_policy(data) -> bool:
    return isinstance(data, dict) and bool(data) and all(k.startswith("prune_") for k in data)


def test_every_prune_policy_is_one_the_planner_accepts():
    from ansible_collections.regops.registry.plugins.filter.prune import retention_plan

    policies = [(name, data) for name, data in examples() if is_prune_policy(data)]
    assert len(policies) >= 3
    for name, policy in policies:
        terms = {ROLE_TERMS[k]: v for k, v in policy.items() if k in ROLE_TERMS}
        assert terms, name
        plan = retention_plan([], repository="docs/example", **terms)  # raises on a wrong term, regex or duration
        assert plan["keep_tags"] == [] and plan["delete_tags"] == [], name


def test_the_inventory_examples_use_only_options_the_plugin_has():
    proc = run_ansible("ansible-doc", ["-t", "inventory", "--json", "regops.registry.registry"], local=False)
    assert proc.returncode == 0, proc.stderr[-2000:]
    doc = json.loads(proc.stdout)["regops.registry.registry"]["doc"]
    options = set(doc["options"])  # with the doc fragments' (connection, constructed, inventory cache)
    configs = [(name, data) for name, data in examples()
               if isinstance(data, dict) and data.get("plugin") == "regops.registry.registry"]
    assert len(configs) >= 2
    for name, config in configs:
        assert set(config) - {"plugin"} <= options, (name, set(config) - options)


# --- running every example ---------------------------------------------------------------------------------------

COMMIT = "3f2a9c1"  # the ci_commit_sha of the promotion guide: the tag CI gave the tested image
DOC_USERS = ("alice", "ci", "deployer", "pruner", "reader")
# Digests the module EXAMPLES write out: a layer, an image of team/app and one of team/worker (replaced by the
# seeded ones, as the host names are)
LAYER_PLACEHOLDER = "sha256:4f53cda18c2baa0c0354bb5f9a3ecbe5ed12ab4d8e11ba873c2f11161202b945"
IMAGE_PLACEHOLDER = "sha256:b7c1e402dc8ce4298fceded9ac3f12cf16dc228b81c4ca7326ae4243ced0b50f"
WORKER_PLACEHOLDER = "sha256:b5e93cc391e4d304fa6a31385313cbdec55915f4041733f914da42db076d72de"
CI_REPOS = {  # tags in creation order (oldest first): branches of numbered builds and releases
    "ci/web": ["v1.0.0", *[f"feature-{n}" for n in range(1, 4)], *[f"main-{n}" for n in range(1, 15)]],
    "ci/api": [*[f"main-{n}" for n in range(1, 9)], "v2.0.0", *[f"main-{n}" for n in range(9, 13)]],
}


@pytest.fixture(scope="module")
def doc_labs(tmp_path_factory):
    """``registry.example.com`` and ``staging.example.com`` (also ``ci.example.com``): TLS+Basic registries with the
    users the docs name, one CA bundle trusting both, and a Docker config logged in to both as ``ci``."""
    users = {name: {"password": secrets.token_urlsafe(12)} for name in DOC_USERS}
    work = tmp_path_factory.mktemp("doc-examples")
    with start_registry("basic", work / "prod", users=users) as prod, \
            start_registry("basic", work / "staging", users=users) as staging:
        bundle = work / "ca-bundle.pem"
        bundle.write_text(Path(prod.ca_path).read_text() + Path(staging.ca_path).read_text())
        login = base64.b64encode(f"ci:{prod.users['ci']}".encode()).decode()
        (work / "docker").mkdir()
        (work / "docker" / "config.json").write_text(json.dumps(
            {"auths": {lab.host: {"auth": login} for lab in (prod, staging)}}))
        (work / "reports").mkdir()
        yield {"prod": prod, "staging": staging, "work": work,
               "env": {"DOCKER_CONFIG": str(work / "docker"), "REGOPS_REGISTRY_CA_PATH": str(bundle)}}


def seed_doc_labs(prod, staging) -> dict:
    """What the examples name: team/app:1.4.2 (two platforms), the tested image (tag COMMIT) on staging and, as
    earlier promotions left it, on the production registry, CI branches to prune, demo repositories to inventory,
    and for the module examples a layer in team/base (and on staging), images to delete in team/app and team/worker."""
    on_prod, on_staging = seed.session_for(prod), seed.session_for(staging)
    app = seed.push_index(on_prod, "team/app", "1.4.2")
    seed.push_image(on_prod, "team/app", "1.4.1", created="2024-01-01T00:00:00Z", seed=7)
    doomed = {tag: seed.push_image(on_prod, "team/app", tag, seed=8 + n)["digest"]
              for n, tag in enumerate(("old-build", "pr-1234", "pr-1235"))}
    seed.push_image(on_prod, "team/worker", "stable", seed=20)
    worker_old = seed.push_image(on_prod, "team/worker", "old", seed=21)["digest"]
    layer = seed.random_bytes(4096, 30)
    assert seed.push_blob(on_prod, "team/base", layer) == seed.push_blob(on_staging, "team/app", layer)

    def tested(session, repo):
        return seed.push_index(session, repo, COMMIT, created="2024-06-01T00:00:00Z", seed=300)["digest"]

    digests = {tested(on_staging, "team/app"), tested(on_prod, "staging/app"), tested(on_prod, "team/app-canary")}
    assert len(digests) == 1
    for repo, tags in CI_REPOS.items():
        for day, tag in enumerate(tags, 1):
            seed.push_image(on_prod, repo, tag, created=f"2024-02-{day:02d}T00:00:00Z", seed=1000 + day,
                            layer_sizes=(256,))
    for repo in ("demo/web", "demo/api", "demo/multi"):
        seed.push_index(on_prod, repo, "1.0", seed=500)
    return {"app": app, "tested": digests.pop(), "doomed": doomed, "worker_old": worker_old,
            "layer": seed.sha256(layer)}


def replacements(labs: dict, seeded: dict) -> list[tuple[str, str]]:
    """What the examples name, in the order to replace it (longer host names first), and what stands in for it:
    the labs, the seeded digests, files in a scratch directory."""
    prod, staging, work = labs["prod"].host, labs["staging"].host, labs["work"]
    return [("prod-registry.example.com", prod), ("ci-registry.example.com", staging),
            ("staging.example.com", staging), ("ci.example.com", staging), ("registry.example.com", prod),
            ("http://127.0.0.1:5000", labs["prod"].url), ("127.0.0.1:5000", prod),
            (LAYER_PLACEHOLDER, seeded["layer"]), (IMAGE_PLACEHOLDER, seeded["doomed"]["old-build"]),
            (WORKER_PLACEHOLDER, seeded["worker_old"]), ("/tmp/layer.tar.gz", str(work / "layer.tar.gz")),
            ("~/.cache/regops-registry-inventory", str(work / "inventory-cache")),
            ("/var/log/registry/", f"{work}/reports/"), ("prune_report_path: reports/", f"prune_report_path: {work}/reports/"),
            ("dest: prune-report.md", f"dest: {work}/reports/retention.md")]


def on_labs(text: str, replace: list[tuple[str, str]]) -> str:
    """The example with the docs' hosts, digests and paths pointed at the labs and a scratch directory."""
    for old, new in replace:
        text = text.replace(old, new)
    return text


def as_plays(name: str, data, labs: dict) -> list | None:
    """Plays as written; task lists and variable snippets in a play on localhost; a prune policy as the prune
    role in check mode over the CI repositories. None for what is not run here (result samples, inventory)."""
    def play(tasks):
        return [{"name": name, "hosts": "localhost", "gather_facts": False, "tasks": tasks}]

    if isinstance(data, list):
        return data if all(is_play(item) for item in data) else play(data)
    if is_prune_policy(data):
        role = {"name": f"Plan {name}", "ansible.builtin.include_role": {"name": "regops.registry.prune"},
                "vars": {"prune_registry": labs["prod"].host, "prune_repositories": ["^ci/"], **data}}
        return play([{"block": [role], "check_mode": True}])
    if is_lookup_vars(data):
        return play([{"ansible.builtin.set_fact": data}])
    if isinstance(data, dict) and ("plugin" in data or "targets" in data):
        return None
    raise AssertionError(f"{name}: an example of a kind this test does not know how to run")


def is_requirements_file(data) -> bool:
    return isinstance(data, dict) and set(data) <= {"collections", "roles"} and bool(data)


def is_lookup_vars(data) -> bool:
    return isinstance(data, dict) and bool(data) and all("lookup(" in str(value) for value in data.values())


def run_order(text: str) -> int:
    """Examples that pin facts with the lookup first, the rest next, prunes (which delete most) last; docs order
    within each."""
    data = yaml.safe_load(text)
    if "lookup('regops.registry.digest'" in text and "regops.registry.registry_" not in text:
        return 0
    return 2 if "regops.registry.prune" in text or is_prune_policy(data) else 1


def capture(name: str) -> dict:
    """A play noting what the example left in the role results (written out by the last play)."""
    note = {"example": name, "promote_result": "{{ promote_result | default(None) }}",
            "prune_result": "{{ prune_result | default(None) }}"}
    return {"name": f"Note what {name} did", "hosts": "localhost", "gather_facts": False, "tasks": [
        {"ansible.builtin.set_fact": {"doc_notes": "{{ doc_notes | default([]) + [__note] }}"},
         "vars": {"__note": note}}]}


def write_playbooks(texts: list[tuple[str, str]], labs: dict, tmp_path: Path) -> tuple[list[Path], list, list]:
    """A playbook file per runnable example (with its capture play); the result samples and inventory configs."""
    paths, samples, inventories = [], [], []
    for name, text in texts:
        data = yaml.safe_load(text)
        if is_requirements_file(data):
            continue  # a requirements.yml: installed as written by test_first_contact.py
        plays = as_plays(name, data, labs)
        if plays is None:
            (inventories if "plugin" in data else samples).append((name, data))
            continue
        path = tmp_path / f"{len(paths):02d}.yml"
        path.write_text(f"# {name}\n" + yaml.safe_dump([*plays, capture(name)], sort_keys=False))
        paths.append(path)
    return paths, samples, inventories


def facts_playbook(tmp_path: Path, dest: Path, names: list[str]) -> Path:
    """The last playbook: the facts the examples set (None when unset), as JSON in ``dest``."""
    values = {name: f"{{{{ {name} | default(None) }}}}" for name in names}
    path = tmp_path / "zz-facts.yml"
    path.write_text(yaml.safe_dump([{"name": "Write out the facts the examples set", "hosts": "localhost",
                                     "gather_facts": False, "tasks": [{
                                         "ansible.builtin.copy": {"dest": str(dest), "mode": "0600",
                                                                  "content": "{{ __facts | to_json }}"},
                                         "vars": {"__facts": values}}]}]))
    return path


def test_every_example_runs(doc_labs, tmp_path):
    prod, staging, work = doc_labs["prod"], doc_labs["staging"], doc_labs["work"]
    seeded = seed_doc_labs(prod, staging)
    (work / "layer.tar.gz").write_bytes(seed.random_layer(300_000, 31, tar_gzip=True))
    replace = replacements(doc_labs, seeded)
    texts = sorted(((name, on_labs(text, replace)) for name, text in example_texts()),
                   key=lambda item: run_order(item[1]))
    paths, samples, inventories = write_playbooks(texts, doc_labs, tmp_path)
    facts = work / "facts.json"
    pinned = ["app_image", "image", "arm64", "tested_digest", "pins", "release_pin", "tested_pin"]
    paths.append(facts_playbook(tmp_path, facts, [*pinned, "doc_notes"]))
    passwords = {"registry_password": prod.users["ci"], "vault_registry_password": prod.users["ci"],
                 "vault_staging_password": staging.users["ci"], "vault_prod_password": prod.users["deployer"],
                 "vault_pruner_password": prod.users["pruner"], "staging_password": staging.users["reader"],
                 "ci_registry_password": staging.users["ci"], "ci_commit_sha": COMMIT}
    (tmp_path / "vars.json").write_text(json.dumps(passwords))
    proc = run_ansible("ansible-playbook", [*map(str, paths), "-e", f"@{tmp_path / 'vars.json'}"],
                       env=doc_labs["env"])
    assert proc.returncode == 0, proc.stdout[-6000:] + proc.stderr[-3000:]
    assert len(paths) >= 20
    warnings = {line for line in (proc.stdout + proc.stderr).splitlines() if line.startswith("[WARNING]")}
    assert warnings <= {"[WARNING]: Could not match supplied host pattern, ignoring: registry_host"}, warnings
    got = json.loads(facts.read_text())
    tested = seeded["tested"]

    # lookups: the index digest and its arm64 child; the tested digest from the CI tag
    app = seeded["app"]
    assert got["app_image"] == got["image"] == f"{prod.host}/team/app@{app['digest']}"
    assert got["arm64"] == next(c["digest"] for c in app["children"] if c["platform"]["architecture"] == "arm64")
    assert got["tested_digest"] == tested
    # credentials for one registry, and a reference on another (read with its own config.json entry)
    assert got["pins"] == [app["digest"], tested] and [got["release_pin"], got["tested_pin"]] == got["pins"]

    # promotions: every target holds the tested digest, as the registries themselves say
    on_prod, on_staging = seed.session_for(prod), seed.session_for(staging)
    for session, ref in [(on_prod, "prod/app:1.4.2"), (on_prod, "prod/app:stable"), (on_prod, "team/app:1.5.0"),
                         (on_prod, "prod/app:1.4"), (on_prod, "prod/app:1"),
                         (on_staging, "team/app:1.4.2"), (on_staging, "prod/app:1.4.2")]:
        assert seed.head_manifest(session, *ref.split(":")) == tested, ref
    assert seed.head_manifest(on_prod, "team/app", "stable") == app["digest"]  # the retag example
    # the mirroring guide: the newest CI build of staging's team/app, mirrored with its digest
    assert seed.head_manifest(on_prod, "mirror/team-app", COMMIT) == tested
    assert seed.head_manifest(on_prod, "team/app-mirror", COMMIT) == tested  # through the air gap's transfer registry

    # the module examples' uploads and deletes: the layer mounted and copied in, the doomed tags and digests gone
    assert seed.blob_exists(on_prod, "team/app", seeded["layer"])
    assert seed.blob_exists(on_prod, "team/app", seed.sha256((work / "layer.tar.gz").read_bytes()))
    left = seed.tag_map(on_prod, "team/app")
    assert not set(seeded["doomed"]) & set(left) and "1.4.2" in left and "1.4.1" in left, left
    assert seed.tag_map(on_prod, "team/worker") == {"stable": seed.head_manifest(on_prod, "team/worker", "stable")}
    assert seed.head_manifest(on_prod, "team/worker", seeded["worker_old"]) is None
    notes = {note["example"]: note for note in got["doc_notes"]}
    canary = notes["docs/promoting-images.md example 4"]["promote_result"]["targets"][0]
    assert canary["blobs"]["uploaded"] == 0 and canary["blobs"]["mounted"] > 0, canary  # mounted from the canary

    # the result sample of the promotion guide has the keys the role returns
    [(_name, sample)] = samples
    result = notes["docs/promoting-images.md example 1"]["promote_result"]
    assert set(sample) <= set(result) and set(sample["targets"][0]) <= set(result["targets"][0])
    assert set(sample["targets"][0]["blobs"]) <= set(result["targets"][0]["blobs"])

    # prunes: the last policy run (keep the 10 newest) leaves exactly the 10 newest builds of each CI repository
    for repo, tags in CI_REPOS.items():
        assert sorted(seed.list_tags(on_prod, repo)) == sorted(tags[-10:]), repo
    assert sorted(p.name for p in (work / "reports").iterdir()) == sorted(
        [f"prune-{datetime.date.today():%Y%m%d}.json", f"prune-{datetime.date.today():%Y%m%d}.md",
         "prune.json", "prune.md", "prune-report.json", "retention.md", "mirror.json", "mirror.md",
         "usage-team-app.html"])
    assert 'data-chart="storage"' in (work / "reports" / "usage-team-app.html").read_text()  # the usage_html example

    # the inventory examples: images as hosts, keyed groups per architecture (the plugin's own as user reader)
    graphs = {}
    for number, (name, _config) in enumerate(inventories):
        config = work / f"example{number}.registry.yml"
        config.write_text(dict(texts)[name])
        env = {**doc_labs["env"], "REGOPS_REGISTRY_PASSWORD": prod.users["reader"]} if "username:" in config.read_text() \
            else doc_labs["env"]
        proc = run_ansible("ansible-inventory", ["-i", str(config), "--graph"], local=False, env=env)
        assert proc.returncode == 0, proc.stderr[-3000:]
        graphs[name] = proc.stdout
    assert len(graphs) == 2
    guide = next(graph for name, graph in graphs.items() if name.startswith("docs/gathering-facts.md"))
    plugin = graphs["plugins/inventory/registry.py EXAMPLES"]
    assert "@arch_arm64:" in guide and "demo/web@1.0" in guide and "demo/api@1.0" in guide
    # team/base (only a layer, no tag) is in the catalog and matches team/.*: skipped, not a failed inventory
    assert "@arch_amd64:" in plugin and "team/app@1.4.2" in plugin and "@vendor_none:" in plugin
