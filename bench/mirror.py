"""Benchmark: mirroring 3 repositories x 30 tags (~250 MB, some multi-platform indexes, base layers shared as real
images share them) from one throwaway registry to another, regops.registry against `skopeo sync` (YAML source, the
same selection: every tag of the 3 repositories), in the same run, tools alternating per round.

Cases: the first run into a fresh empty registry, a rerun with nothing new, and a rerun after one new tag was pushed
upstream. regops runs three ways: `registry_sync` in-process (the module's own work, its main() with its arguments,
no Ansible around it), the module process as Ansible starts it (peak RSS by GNU time) and the whole
`ansible-playbook` run of the `regops.registry.mirror` role (with its task count and its time over Ansible's no-op run
of the same play, bench/promote_noop.yml). Both registries' access logs give the request counts.
Not a test: it asserts nothing but prints a "goal met / missed" line per goal and writes .tmp/bench/mirror.json.

    .venv/bin/python bench/mirror.py --rounds 3
"""

from __future__ import annotations

import contextlib
import gzip
import io
import json
import os
import shutil
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

from common import OUT, bench_arguments, playbook, role_columns, run_measured, summarise, write_results

from tests.integration.runner import ensure_collection_link, run_module
from tests.lab import seed
from tests.lab.registry import WRITES, start_registry

MIB = 1 << 20
REPOSITORIES = ("bench/alpha", "bench/beta", "bench/gamma")
# skopeo sync writes a YAML source's repository under its last path component: regops is given the same targets.
TARGETS = {r: r.rsplit("/", 1)[-1] for r in REPOSITORIES}
MULTI_PLATFORM = "bench/gamma"  # every third version of it is an index (amd64 + arm64)
VERSIONS = [f"1.{i // 10}.{i % 10}" for i in range(28)]  # + latest and stable: 30 tags, 28 images per repository
ALIASES = {"latest": VERSIONS[-1], "stable": VERSIONS[19]}
# Layer seeds and sizes: one base under every image, one per repository, one under every arm64 image, one per image.
SHARED_BASE, ARM64_BASE = (1, 40 * MIB), (2, 20 * MIB)
REPOSITORY_BASE_SIZE, IMAGE_LAYER_SIZE = 20 * MIB, 1400 * 1024
SEED_VERSION = 1  # bump when the content below changes: the cached source is then seeded again
CACHE = OUT / "mirror-source"
NEW_TAG = "1.99.0"

FIRST, RERUN, NEW = "first run, empty destination", "rerun, nothing new", "rerun after one new tag upstream"
IN_PROCESS = "regops registry_sync, module work (in-process)"
MODULE_PROCESS = "regops registry_sync, module process"
ROLE = "regops mirror role, whole ansible-playbook run"
SKOPEO = "skopeo sync --src yaml --all --preserve-digests"
TOOLS = (IN_PROCESS, MODULE_PROCESS, ROLE, SKOPEO)
NOOP = "ansible-playbook alone (no-op play)"
ROLE_TASKS: list[int] = []  # tasks the role ran (argument validation and skipped ones included), per run


# --- the source registry ----------------------------------------------------------------------------------------

class Layers:
    """Real gzip'ed tar layers of random bytes (deterministic per seed), pushed once per repository.

    Random bytes labelled gzip would make skopeo compress them itself on copy and write other digests.
    """

    def __init__(self, session) -> None:
        self.session = session
        self.made: dict[int, tuple[bytes, str]] = {}  # seed -> (blob, diff_id), for the shared layers

    def layer(self, layer_seed: int, size: int, keep: bool) -> tuple[bytes, str]:
        if layer_seed in self.made:
            return self.made[layer_seed]
        blob = seed.random_layer(size, layer_seed, tar_gzip=True)
        made = (blob, seed.sha256(gzip.decompress(blob)))
        if keep:
            self.made[layer_seed] = made
        return made

    def push_image(self, repository: str, layers: list[tuple[int, int, bool]], architecture: str, created: str,
                   tag: str | None) -> dict:
        """``layers``: (seed, size, shared). Returns the descriptor of the manifest pushed (by tag, else by digest)."""
        made = [self.layer(*spec) for spec in layers]
        digests = [seed.push_blob(self.session, repository, blob) for blob, _diff_id in made]
        config = json.dumps({"architecture": architecture, "os": "linux", "created": created,
                             "rootfs": {"type": "layers", "diff_ids": [diff_id for _blob, diff_id in made]}},
                            sort_keys=True).encode()
        config_digest = seed.push_blob(self.session, repository, config)
        manifest = {"schemaVersion": 2, "mediaType": seed.OCI_MANIFEST,
                    "config": {"mediaType": seed.OCI_CONFIG, "digest": config_digest, "size": len(config)},
                    "layers": [{"mediaType": seed.OCI_LAYER, "digest": d, "size": len(blob)}
                               for d, (blob, _diff_id) in zip(digests, made)]}
        raw = json.dumps(manifest, indent=3).encode()
        digest = seed.put_manifest(self.session, repository, tag or seed.sha256(raw), raw, seed.OCI_MANIFEST)
        return {"mediaType": seed.OCI_MANIFEST, "digest": digest, "size": len(raw), "raw": raw}


def image_layers(repo_index: int, image_seed: int, architecture: str) -> list[tuple[int, int, bool]]:
    base = ARM64_BASE if architecture == "arm64" else SHARED_BASE
    return [(*base, True), (10 + repo_index, REPOSITORY_BASE_SIZE, True), (image_seed, IMAGE_LAYER_SIZE, False)]


def push_version(layers: Layers, repo_index: int, version_index: int, tag: str) -> tuple[str, str]:
    """One version of a repository (an index of amd64 + arm64 for some versions of MULTI_PLATFORM): (digest, raw)."""
    repository = REPOSITORIES[repo_index]
    image_seed = 1000 + repo_index * 100 + version_index * 2
    created = f"2025-{1 + version_index // 28:02d}-{1 + version_index % 28:02d}T00:00:00Z"
    if repository != MULTI_PLATFORM or version_index % 3:
        pushed = layers.push_image(repository, image_layers(repo_index, image_seed, "amd64"), "amd64", created, tag)
        return pushed["digest"], pushed["raw"]
    children = [layers.push_image(repository, image_layers(repo_index, image_seed + n, arch), arch, created, None)
                for n, arch in enumerate(("amd64", "arm64"))]
    index = {"schemaVersion": 2, "mediaType": seed.OCI_INDEX,
             "manifests": [{"mediaType": c["mediaType"], "digest": c["digest"], "size": c["size"],
                            "platform": {"os": "linux", "architecture": arch}}
                           for c, arch in zip(children, ("amd64", "arm64"))]}
    raw = json.dumps(index).encode()
    return seed.put_manifest(layers.session, repository, tag, raw, seed.OCI_INDEX), raw


def seed_source(lab) -> dict[str, dict[str, str]]:
    """Every repository's tags -> digests."""
    layers = Layers(seed.LabSession(lab))
    tags: dict[str, dict[str, str]] = {}
    for repo_index, repository in enumerate(REPOSITORIES):
        tags[repository] = {}
        raws = {}
        for version_index, version in enumerate(VERSIONS):
            tags[repository][version], raws[version] = push_version(layers, repo_index, version_index, version)
        for alias, version in ALIASES.items():
            media_type = json.loads(raws[version])["mediaType"]
            tags[repository][alias] = seed.put_manifest(layers.session, repository, alias, raws[version], media_type)
    return tags


def source_registry():
    """The seeded source, from the cache when it holds exactly what this version of the bench seeds."""
    stamp = CACHE / "seeded.json"
    if stamp.exists():
        expected = json.loads(stamp.read_text())
        if expected.get("version") == SEED_VERSION:
            lab = start_registry("plain", CACHE / "lab")
            session = seed.LabSession(lab)
            if all(seed.tag_map(session, repo) == tags for repo, tags in expected["tags"].items()):
                print(f"source registry from the cache in {CACHE}")
                return lab, expected["tags"]
            lab.close()
    shutil.rmtree(CACHE, ignore_errors=True)
    CACHE.mkdir(parents=True)
    lab = start_registry("plain", CACHE / "lab")
    started = time.perf_counter()
    tags = seed_source(lab)
    stamp.write_text(json.dumps({"version": SEED_VERSION, "tags": tags}))
    print(f"seeded the source in {time.perf_counter() - started:.1f} s")
    return lab, tags


def image_bytes(lab, tags: dict[str, dict[str, str]]) -> int:
    """Bytes of the distinct blobs the tags reference (the storage also keeps blobs of earlier runs' new tags)."""
    session, sizes = seed.LabSession(lab), {}
    for repository, by_tag in tags.items():
        pending = list(set(by_tag.values()))
        while pending:
            manifest = json.loads(seed.get_manifest(session, repository, pending.pop())[0])
            pending += [child["digest"] for child in manifest.get("manifests", [])]
            sizes.update({blob["digest"]: blob["size"] for blob in [manifest.get("config")] + manifest.get("layers", [])
                          if blob})
    return sum(sizes.values())


# --- the tools --------------------------------------------------------------------------------------------------

def images() -> list[dict]:
    return [{"repository": r, "target": TARGETS[r]} for r in REPOSITORIES]


def module_args(src, dst) -> dict:
    return {"registry": dst.url, "source_registry": src.url, "images": images()}


def run_in_process(src, dst) -> None:
    """registry_sync's main() with its arguments, in this process: the module's work without Python's start."""
    from ansible.module_utils import basic

    from ansible_collections.regops.registry.plugins.modules import registry_sync

    basic._ANSIBLE_PROFILE = "legacy"  # what Ansible sends with the arguments
    basic._ANSIBLE_ARGS = json.dumps({"ANSIBLE_MODULE_ARGS": module_args(src, dst)}).encode()
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        try:
            registry_sync.main()
        except SystemExit:
            pass
    result = json.loads(out.getvalue())
    if result.get("failed"):
        raise RuntimeError(result.get("msg"))


def run_module_process(src, dst) -> tuple[None, float]:
    result, rss = run_module("registry_sync", module_args(src, dst))
    if result.get("failed"):
        raise RuntimeError(result.get("msg"))
    return None, rss / MIB


def run_role(src, dst, workdir: Path) -> tuple[float, float]:
    """The whole ansible-playbook run as users run it (no -v); its wall time and peak RSS."""
    seconds, rss, tasks = playbook("mirror.yml", {"registry": dst.url, "source_registry": src.url,
                                                  "images": images()}, workdir)
    ROLE_TASKS.append(len(tasks))
    return seconds, rss


def run_skopeo(src, dst, workdir: Path) -> tuple[float, float]:
    # An empty tag list is every tag: skopeo lists them, as registry_sync does.
    config = workdir / "skopeo-sync.yml"
    config.write_text(json.dumps({src.host: {"tls-verify": False, "images": {r: [] for r in REPOSITORIES}}}))
    return run_measured(["skopeo", "sync", "--src", "yaml", "--dest", "docker", "--all", "--preserve-digests",
                         "--src-tls-verify=false", "--dest-tls-verify=false", str(config), dst.host])


# --- requests ---------------------------------------------------------------------------------------------------

def kind_of(path: str) -> str:
    parts = path.split("?")[0].rstrip("/").split("/")
    if "uploads" in parts:
        return "upload"
    for kind in ("manifests", "blobs", "tags"):
        if kind in parts:
            return {"manifests": "manifest", "blobs": "blob", "tags": "tag list"}[kind]
    return "ping" if parts == ["", "v2"] else "other"


def request_counts(lab, since: int) -> dict[str, int]:
    """'GET manifest' -> number of requests, and so on, after ``since``."""
    counts = Counter(f"{r.method} {kind_of(r.path)}" for r in lab.requests(since))
    return dict(sorted(counts.items()))


def manifest_gets(counts: dict[str, int]) -> int:
    return counts.get("GET manifest", 0)


def writes(counts: dict[str, int]) -> int:
    return sum(n for key, n in counts.items() if key.split()[0] in WRITES)


# --- the run ----------------------------------------------------------------------------------------------------

def push_new_tag(src, salt: int) -> str:
    """One new version upstream: the bases of an existing image and its own top layer. Returns its digest."""
    session, repository = seed.LabSession(src), REPOSITORIES[0]
    raw, _media_type, _digest = seed.get_manifest(session, repository, VERSIONS[0])
    manifest = json.loads(raw)
    bases = manifest["layers"][:-1]
    config_data = session.get(f"/v2/{repository}/blobs/{manifest['config']['digest']}").json()
    top = seed.random_layer(IMAGE_LAYER_SIZE, 100_000 + salt, tar_gzip=True)
    top_digest = seed.push_blob(session, repository, top)
    config_data["rootfs"]["diff_ids"][-1] = seed.sha256(gzip.decompress(top))
    config = json.dumps(config_data, sort_keys=True).encode()
    manifest["config"] = {**manifest["config"], "digest": seed.push_blob(session, repository, config),
                          "size": len(config)}
    manifest["layers"] = bases + [{"mediaType": seed.OCI_LAYER, "digest": top_digest, "size": len(top)}]
    return seed.put_manifest(session, repository, NEW_TAG, json.dumps(manifest, indent=3).encode(), seed.OCI_MANIFEST)


def drop_new_tag(src, digest: str) -> None:
    """Back to the cached content: deleting the manifest by digest removes its tag."""
    answer = seed.delete_manifest(seed.LabSession(src), REPOSITORIES[0], digest)
    if answer.status_code != 202:
        raise RuntimeError(f"could not delete {NEW_TAG} from the source: {answer.status_code}")


def check_mirror(src, dst, tags: dict[str, dict[str, str]], tool: str) -> None:
    """Every tool must leave the destination holding the source's tags at the source's digests."""
    session = seed.LabSession(dst)
    source_session = seed.LabSession(src)
    for repository in tags:
        if seed.tag_map(session, TARGETS[repository]) != seed.tag_map(source_session, repository):
            raise RuntimeError(f"{tool} left {TARGETS[repository]} different from {repository} of the source")


def run_case(tool: str, src, dst, workdir: Path) -> tuple[float, float | None]:
    if tool == IN_PROCESS:
        start = time.perf_counter()
        run_in_process(src, dst)
        return time.perf_counter() - start, None
    if tool == MODULE_PROCESS:
        start = time.perf_counter()
        _none, rss = run_module_process(src, dst)
        return time.perf_counter() - start, rss
    if tool == ROLE:
        return run_role(src, dst, workdir)
    return run_skopeo(src, dst, workdir)


def measure(src, tags, rounds: int, workdir: Path) -> tuple[dict, dict]:
    samples = {case: {tool: {"times": [], "rss": []} for tool in TOOLS} for case in (FIRST, RERUN, NEW)}
    counts: dict[str, dict[str, dict]] = {case: {} for case in samples}
    for round_index in range(rounds):
        for tool_index, tool in enumerate(TOOLS):
            with start_registry("plain") as dst:
                for case in (FIRST, RERUN, NEW):
                    new_digest = push_new_tag(src, round_index * len(TOOLS) + tool_index) if case == NEW else None
                    src_mark, dst_mark = src.mark(), dst.mark()
                    seconds, rss = run_case(tool, src, dst, workdir)
                    sample = samples[case][tool]
                    sample["times"].append(seconds)
                    if rss is not None:
                        sample["rss"].append(rss)
                    counts[case].setdefault(tool, {"source": request_counts(src, src_mark),
                                                   "destination": request_counts(dst, dst_mark)})
                    check_mirror(src, dst, tags, tool)
                    if new_digest:
                        drop_new_tag(src, new_digest)
                    print(f"round {round_index + 1}, {tool}, {case}: {seconds:.2f} s"
                          + (f", peak RSS {rss:.1f} MiB" if rss else ""), flush=True)
        noop = playbook("promote_noop.yml", {}, workdir)[0]
        for case in samples:  # Ansible's own share, the same in every case
            samples[case].setdefault(NOOP, {"times": [], "rss": []})["times"].append(noop)
    groups = {case: summarise(by_tool) for case, by_tool in samples.items()}
    for rows in groups.values():
        role_columns(rows, {ROLE: max(ROLE_TASKS)}, NOOP)
    return groups, counts


def goal_lines(groups: dict, counts: dict) -> list[str]:
    """One "goal met / missed by" sentence per goal of issue 16."""
    lines = []

    def speed(case: str, tool: str, factor: float, wording: str) -> None:
        ours, theirs = groups[case][tool]["median"], groups[case][SKOPEO]["median"]
        target = theirs / factor
        verdict = "met" if ours <= target else f"missed by {ours - target:.2f} s ({ours / target:.2f}x the goal)"
        pace = f"{theirs / ours:.1f}x faster" if ours < theirs else f"{ours / theirs:.1f}x slower"
        lines.append(f"{case}: {tool} {ours:.2f} s vs skopeo sync {theirs:.2f} s ({pace}); goal {wording}: {verdict}")

    for tool in (IN_PROCESS, MODULE_PROCESS, ROLE):
        speed(FIRST, tool, 1.0, "faster than skopeo sync")
        speed(RERUN, tool, 5.0, "at least 5x faster than skopeo sync")
    for tool in (IN_PROCESS, MODULE_PROCESS, ROLE):
        observed = counts[RERUN][tool]
        gets, written = manifest_gets(observed["source"]), writes(observed["destination"])
        lines.append(f"{RERUN}: {tool} sent {gets} manifest GETs to the source, {written} writes to the destination; "
                     "goal 0 and 0: " + ("met" if gets == written == 0 else f"missed by {gets} GETs, {written} writes"))
    rss = groups[FIRST][MODULE_PROCESS].get("peak_rss_mib")
    if rss is not None:
        lines.append(f"{FIRST}: module process peak RSS {rss:.1f} MiB while streaming; goal under 64 MiB: "
                     + ("met" if rss < 64 else f"missed by {rss - 64:.1f} MiB"))
    return lines


def main() -> int:
    args = bench_arguments("skopeo")
    if args is None:
        return 1
    ensure_collection_link()
    src, tags = source_registry()
    load_before = os.getloadavg()[1]
    workdir = Path(tempfile.mkdtemp(prefix="regops-bench-mirror-"))
    try:
        total = image_bytes(src, tags)
        print(f"source: {len(REPOSITORIES)} repositories, {sum(len(t) for t in tags.values())} tags, "
              f"{total / 1e6:.0f} MB of blobs")
        groups, counts = measure(src, tags, args.rounds, workdir)
    finally:
        src.close()
        shutil.rmtree(workdir, ignore_errors=True)
    goals = goal_lines(groups, counts)
    load = f"{load_before:.1f} before, {os.getloadavg()[1]:.1f} after"
    write_results("mirror", "Mirror of 3 repositories x 30 tags (~250 MB)", groups,
                  {case: [SKOPEO] for case in groups}, notes(total, load), rounds=args.rounds, requests=counts,
                  goals=goals, image_bytes=total)
    print("\n" + "\n".join(goals))
    return 0


def notes(total: int, load: str) -> list[str]:
    return [f"The source holds {len(REPOSITORIES)} repositories x {len(VERSIONS) + len(ALIASES)} tags "
            f"({len(VERSIONS)} versions, and latest and stable pointing at two of them), {total / 1e6:.0f} MB of "
            "distinct blobs: "
            f"real gzip layers of random bytes, a {SHARED_BASE[1] // MIB} MiB base under every amd64 image, a "
            f"{REPOSITORY_BASE_SIZE // MIB} MiB base per repository, an own top layer per image; every third version "
            f"of {MULTI_PLATFORM} is an index of amd64 and arm64 images (arm64 on its own {ARM64_BASE[1] // MIB} MiB "
            "base).",
            "Both tools are told the same: every tag of the 3 repositories, bench/alpha into alpha and so on (where "
            "skopeo sync puts a YAML source's repositories); registry_sync with its defaults (concurrency 8), "
            "skopeo sync (skopeo-sync(1), https://manpages.ubuntu.com/manpages/mantic/en/man1/skopeo-sync.1.html) "
            "with a YAML source whose tag lists are empty (every tag), --all, --preserve-digests, "
            "--src-tls-verify=false, --dest-tls-verify=false, "
            "skopeo's blob-info cache as a user has it.",
            "Every tool starts each round with a fresh empty destination registry; its two reruns follow on it. "
            f"Before the last rerun one new tag ({NEW_TAG}, its own top layer) is pushed to {REPOSITORIES[0]}, and "
            "removed again after it. After every case the destination's tags are checked against the source's.",
            "Peak RSS: the module process as Ansible starts it and the skopeo process, by GNU time.",
            "Request counts come from the two registries' access logs, for the first round of each tool.",
            f"The machine was shared with other work (5-minute load average {load}): registry latency and "
            "Python's start vary with it, so compare the tools within a round rather than with other sections."]


if __name__ == "__main__":
    sys.exit(main())
