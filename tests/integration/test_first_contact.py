"""What a new user tries first, as the README and the getting-started guide say it: reading a module's
documentation from a clone, installing the collection for their own playbooks, what `make demo` installs, where
`make test` writes, and the contributor docs a clone must hold (no link out of the repository)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import yaml

from tests.integration.runner import ROOT

VENV_BIN = Path(sys.executable).parent
PLACEHOLDER_REPO = "https://git.example.com/platform/regops.registry.git"
TEST_ONLY_TOOLS = {"shellcheck", "skopeo", "apache2-utils", "curl", "time", "openssl", "chromium"}


def user_env(**extra) -> dict:
    """A user's shell: the venv's programs on PATH, none of the variables `make` exports to its recipes. Tests that
    run Ansible's programs give it a fresh HOME too (ansible-galaxy and ansible-doc keep caches in ~/.ansible)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ANSIBLE_", "MAKE", "MFLAGS"))}
    env["PATH"] = f"{VENV_BIN}:{env.get('PATH', os.defpath)}"
    env.update(extra)
    return env


def shell(command: str, cwd: Path, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", "-c", command], cwd=cwd, env=env or user_env(), capture_output=True, text=True,
                          timeout=300, stdin=subprocess.DEVNULL, check=False)


def code_blocks(path: Path, language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", path.read_text(), re.S)


def assert_renders_registry_tags(proc: subprocess.CompletedProcess, where: str) -> None:
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert "not found" not in proc.stderr, proc.stderr
    text = re.sub(r"\x1b\[[0-9;]*m", "", proc.stdout)  # a terminal's colours, when ANSIBLE_NOCOLOR is not set
    assert re.search(r"^> MODULE regops\.registry\.registry_tags \(", text, re.M), text[:500]
    assert f"{where}/ansible_collections/regops/registry/plugins/modules/registry_tags.py" in text
    assert "repository" in text and "RETURN VALUES" in text


# --- reading the docs from a clone -------------------------------------------------------------------------------

def readme_doc_commands() -> list[str]:
    """The README's ways to read registry_tags' documentation from a clone: its `make doc` line and the
    environment line it says that runs."""
    text = (ROOT / "README.md").read_text()
    commands = re.findall(r"`(make doc NAME=registry_tags)`", text)
    commands += re.findall(r"`(ANSIBLE_COLLECTIONS_PATH=\S+ \S*ansible-doc regops\.registry\.registry_tags)`", text)
    return commands


def test_the_readme_says_how_to_read_a_module_doc_from_a_clone_and_it_works(tmp_path):
    commands = readme_doc_commands()
    assert len(commands) == 2, commands
    for command in commands:
        proc = shell(command, ROOT, user_env(HOME=str(tmp_path)))
        assert_renders_registry_tags(proc, str(ROOT / ".tmp" / "collections"))


# --- installing the collection -----------------------------------------------------------------------------------

def guide_install_commands() -> list[str]:
    return [line.strip() for block in code_blocks(ROOT / "docs" / "getting-started.md", "sh")
            for line in block.splitlines() if line.startswith("ansible-galaxy collection install")]


def test_the_install_instructions_install_the_collection(tmp_path):
    """Each `ansible-galaxy collection install` of the guide, as written, with a clone of this repository in place
    of the placeholder URL (its branch main at this commit) and a tarball built where `make galaxy` puts it."""
    commands = guide_install_commands()
    assert [c.split()[3][:8] for c in commands] == ["git+http", ".tmp/rel", "-r"], commands
    repo, home = tmp_path / "regops.registry.git", user_env(HOME=str(tmp_path / "home"))
    subprocess.run(["git", "clone", "-q", "--no-hardlinks", str(ROOT), str(repo)], check=True, timeout=120)
    subprocess.run(["git", "-C", str(repo), "checkout", "-q", "-B", "main", "HEAD"], check=True, timeout=60)
    built = shell(f"ansible-galaxy collection build --output-path {repo}/.tmp/release {repo}", repo, home)
    assert built.returncode == 0, built.stderr
    [requirements] = [yaml.safe_load(b) for b in code_blocks(ROOT / "docs" / "getting-started.md", "yaml")
                      if "collections:" in b]
    (repo / "requirements.yml").write_text(yaml.safe_dump(requirements).replace(PLACEHOLDER_REPO, f"file://{repo}"))
    version = yaml.safe_load((ROOT / "galaxy.yml").read_text())["version"]
    for number, command in enumerate(commands):
        dest = tmp_path / f"installed{number}"
        proc = shell(f"{command.replace(PLACEHOLDER_REPO, f'file://{repo}')} -p {dest}", repo, home)
        assert proc.returncode == 0, (command, proc.stdout[-2000:], proc.stderr[-2000:])
        manifest = json.loads((dest / "ansible_collections/regops/registry/MANIFEST.json").read_text())
        assert manifest["collection_info"]["version"] == version, command
        # Once installed, plain ansible-doc finds the module (here through -p's directory).
        doc = shell("ansible-doc regops.registry.registry_tags", tmp_path, {**home, "ANSIBLE_COLLECTIONS_PATH": str(dest)})
        assert_renders_registry_tags(doc, str(dest))


# --- what make demo and make test install ------------------------------------------------------------------------

def apt_packages(target: str) -> set[str]:
    """The packages `make <target>` would install with apt-get (from `make -n`: nothing runs)."""
    proc = subprocess.run(["make", "-n", target], cwd=ROOT, env=user_env(), capture_output=True, text=True,
                          timeout=60, check=True)
    found = re.findall(r"apt-get install -y -qq --no-install-recommends\s+([^>;\n]+?)\s*(?:>|;|$)", proc.stdout, re.M)
    return {package for line in found for package in line.split()}


def test_make_demo_installs_only_what_the_demo_needs():
    demo, test = apt_packages("demo"), apt_packages("test")
    assert "docker-registry" in demo and "python3-venv" in demo
    assert not demo & TEST_ONLY_TOOLS, demo & TEST_ONLY_TOOLS
    assert demo <= test and TEST_ONLY_TOOLS <= test, test  # make test still installs everything from a fresh machine


# --- where ansible-test writes -----------------------------------------------------------------------------------

def test_sanity_keeps_ansible_test_out_of_the_home_directory(tmp_path):
    """hacking/sanity.sh runs ansible-test (and its offline pip bootstrap) with a home inside the clone, so the
    ~130 MB of ansible-test environments never land in the user's ~/.ansible/test. A stand-in ansible-test records
    its HOME and writes where the real one would; the bootstrap is the real script."""
    home, venv = tmp_path / "home", tmp_path / "venv"
    (home / ".config" / "pip").mkdir(parents=True)
    (venv / "bin").mkdir(parents=True)
    stubs = {"python": f'#!/bin/sh\nexec "{sys.executable}" "$@"\n',  # this venv's, with ansible_test importable
             "ansible-test": '#!/bin/sh\nmkdir -p "$HOME/.ansible/test/venv" && echo "$HOME" >"$RECORD"\n'}
    for name, script in stubs.items():
        (venv / "bin" / name).write_text(script)
        (venv / "bin" / name).chmod(0o755)
    ansible_test_home = tmp_path / "ansible-test-home"
    record = tmp_path / "home-seen"
    proc = subprocess.run(["hacking/sanity.sh", "--test", "shebang"], cwd=ROOT, capture_output=True, text=True,
                          env=user_env(HOME=str(home), VENV=str(venv), RECORD=str(record),
                                       ANSIBLE_TEST_HOME=str(ansible_test_home)),
                          timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert record.read_text().strip() == str(ansible_test_home)
    assert not (home / ".ansible").exists()
    assert list((ansible_test_home / ".ansible" / "test" / "cache").glob("get_pip_*.py"))  # the offline bootstrap
    assert (ansible_test_home / ".config" / "pip").resolve() == (home / ".config" / "pip").resolve()  # pip config kept


def test_sanity_home_defaults_into_the_clone():
    text = (ROOT / "hacking" / "sanity.sh").read_text()
    assert 'export HOME=${ANSIBLE_TEST_HOME:-$here/.tmp/' in text
    assert text.index("export HOME=") < text.index("offline_get_pip.py") < text.index("ansible-test\" sanity")
    assert "hacking/sanity.sh" in (ROOT / "hacking" / "sanity-matrix.sh").read_text()  # the matrix goes through it


# --- contributor docs --------------------------------------------------------------------------------------------

def test_docs_name_no_file_outside_the_repository():
    """Links and quoted ``.md`` paths of the README and docs resolve to files of the clone (the design contract
    included: it used to live outside the repository)."""
    missing = []
    for doc in [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md")), *sorted((ROOT / "roles").glob("*/README.md"))]:
        text = doc.read_text()
        targets = re.findall(r"\]\(([^)#\s]+\.md)(?:#[^)]*)?\)", text) + re.findall(r"`(\.\./[^`\s]+\.md)`", text)
        for target in targets:
            if "://" in target:
                continue
            path = (doc.parent / target).resolve()
            if not path.is_file() or ROOT.resolve() not in path.parents:
                missing.append(f"{doc.relative_to(ROOT)} -> {target}")
    assert not missing, missing
    for doc in ("README.md", "docs/dev/architecture.md"):
        assert "dev/design.md" in (ROOT / doc).read_text() or "(design.md)" in (ROOT / doc).read_text(), doc
    design = (ROOT / "docs" / "dev" / "design.md").read_text()
    for contract in ("## Shared connection options (*contract*", "`promote_registries`", "`prune_keep_latest`",
                     "`regops.registry.connection`"):
        assert contract in design
