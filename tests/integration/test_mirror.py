"""registry_sync and the mirror role (issue 16): from a plain lab to a TLS+Basic lab (three ansible-playbook runs), and
from a TLS+token lab to a TLS+Basic lab through an interruption."""

from __future__ import annotations

import json

from tests.integration.runner import run_module, run_playbook
from tests.integration.test_promote import skopeo_raw_digest
from tests.lab import reliability, seed
from tests.lab.faultproxy import FaultProxy, Rule

WRITES = ("PUT", "PATCH", "POST", "DELETE")
APP = [{"repository": "up/app", "target": "mirror/app", "semver": ">=1 <3", "exclude": ["^2\\.0\\.1$"]}]
BAD = [
    {"images": [{"repository": "up/app", "target": "m/app", "tags": ["("]}]},
    {"images": [{"repository": "up/app", "target": "m/app", "semver": ">=1 <two"}]},
    {"images": [{"repository": "up/app", "target": "m/app", "latest": 0}]},
    {"images": [{"repository": "up/app", "target": "Not A/Repo"}]},
    {"images": [{"repository": "up/app"}]},
    {"images": [{"repository": "up/app", "target": "m/app", "exclude": ["+"]}], "referrers": True},
]


def tags_of(entry: dict, outcome: str) -> dict:
    return {item["tag"]: item for item in entry[outcome]}


def test_mirror_plans_copies_reruns_for_free_and_keeps_or_deletes_as_told(lab_plain, lab_basic, tmp_path):
    up, down = seed.LabSession(lab_plain), seed.LabSession(lab_basic)
    source = {
        "1.0.0": seed.push_image(up, "up/app", "1.0.0", seed=1601)["digest"],
        "1.1.0": seed.push_index(up, "up/app", "1.1.0", seed=1602)["digest"],  # two platforms
        "2.0.1": seed.push_image(up, "up/app", "2.0.1", seed=1603)["digest"],
    }
    seed.push_image(up, "up/app", "1.2.0-rc.1", seed=1604)
    seed.push_image(up, "up/app", "build-9", seed=1605)
    tools = {tag: seed.push_image(up, "up/tools", tag, seed=1610 + n)["digest"] for n, tag in enumerate("abc")}
    seed.push_image(down, "mirror/tools", "a", seed=1620)  # a moved tag that overwrite: false must leave
    seed.push_image(down, "mirror/tools", "gone", seed=1621)  # upstream no longer has it
    seed.push_image(down, "mirror/tools", "keep-me", seed=1622)  # not selected by the filters
    report = tmp_path / "mirror"
    role_vars = {"mirror_source_registry": lab_plain.url, "mirror_registry": lab_basic.host,
                 "mirror_registries": {lab_basic.host: lab_basic.conn()}, "mirror_images": APP,
                 "mirror_report_path": str(report)}

    # 1. check mode (after the bad input): the plan, no write
    mark = lab_basic.mark()
    checked = run_playbook("mirror.yml", {**role_vars, "bad_inputs": BAD}, check=True, diff=True)
    assert checked.ok, checked.output
    diff_lines = [line.split() for line in checked.output.splitlines() if line.startswith(("-", "+"))]
    assert ["-", '"1.1.0":', "null"] in diff_lines and ["+", '"1.1.0":', f'"{source["1.1.0"]}"'] in diff_lines
    assert lab_basic.count(mark, WRITES) == {}
    messages = [b["msg"] for b in checked.results["bad"]]
    assert all(b["failed"] for b in checked.results["bad"]) and len(messages) == len(BAD)
    for message, expected in zip(messages, ["images[0].tags: '(' is not a valid regular expression",
                                            "images[0].semver: '>=1 <two' is not a semver range",
                                            "images[0].latest must be at least 1, not 0", "Not A/Repo",
                                            "the source and the destination are the same repository",
                                            "images[0].exclude: '+' is not a valid regular expression"]):
        assert expected in message, message  # not a connection error: nothing was sent to 127.0.0.1:1
    [planned] = checked.results["mirror_result"]["images"]
    planned_copies = {t: i["digest"] for t, i in tags_of(planned, "copied").items()}
    assert planned_copies == {"1.0.0": source["1.0.0"], "1.1.0": source["1.1.0"]}
    assert set(tags_of(planned, "excluded")) == {"2.0.1", "1.2.0-rc.1", "build-9"}
    assert tags_of(planned, "excluded")["2.0.1"]["reason"] == "matches exclude '^2\\.0\\.1$'"
    assert seed.head_manifest(down, "mirror/app", "1.0.0") is None

    # 2. the copy: digests equal as skopeo reads them back, the report written
    ran = run_playbook("mirror.yml", role_vars)
    assert ran.ok, ran.output
    assert ran.results["mirror_result"]["changed"]
    for tag in ("1.0.0", "1.1.0"):
        assert skopeo_raw_digest(lab_basic, f"{lab_basic.host}/mirror/app:{tag}") == source[tag]
    assert seed.head_manifest(down, "mirror/app", "2.0.1") is None
    written = json.loads((tmp_path / "mirror.json").read_text())
    assert written["images"] == ran.results["mirror_result"]["images"]
    assert "| `1.1.0` | copied |" in (tmp_path / "mirror.md").read_text()
    report_mtime = (tmp_path / "mirror.json").stat().st_mtime_ns

    # 3. the rerun: no source manifest GET, no destination write; then overwrite: false and delete_extra
    source_mark, mark = lab_plain.mark(), lab_basic.mark()
    calls = [{"images": [{"repository": "up/tools", "target": "mirror/tools", "tags": ["^[a-z]+$"],
                          "exclude": ["^keep"]}], "overwrite": False, "delete_extra": True}]
    again = run_playbook("mirror.yml", {**role_vars, "sync_calls": calls, "destination": lab_basic.conn(),
                                        "source": {"registry": lab_plain.url}})
    assert again.ok, again.output
    assert not again.results["mirror_result"]["changed"]
    assert lab_plain.requests(source_mark, methods=("GET",), path=r"/v2/up/app/manifests/") == []
    assert lab_basic.requests(mark, methods=WRITES, path=r"/v2/mirror/app/") == []
    assert {t: i["digest"] for t, i in tags_of(again.results["mirror_result"]["images"][0], "unchanged").items()} == \
        {"1.0.0": source["1.0.0"], "1.1.0": source["1.1.0"]}
    assert (tmp_path / "mirror.json").stat().st_mtime_ns != report_mtime  # copied -> unchanged: a new report
    [call] = again.results["calls"]
    [tools_entry] = call["images"]
    assert set(tags_of(tools_entry, "copied")) == {"b", "c"}
    assert tags_of(tools_entry, "unchanged")["a"]["source_digest"] == tools["a"]
    assert set(tags_of(tools_entry, "deleted")) == {"gone"}
    assert seed.tag_map(down, "mirror/tools") == {
        "a": seed.head_manifest(down, "mirror/tools", "a"), "b": tools["b"], "c": tools["c"],
        "keep-me": seed.head_manifest(down, "mirror/tools", "keep-me")}
    assert seed.head_manifest(down, "mirror/tools", "a") != tools["a"]

    # 4. the same outcome again: the report files are left as they are
    stamps = [(tmp_path / name).stat().st_mtime_ns for name in ("mirror.json", "mirror.md")]
    last = run_playbook("mirror.yml", role_vars)
    assert last.ok and not last.results["mirror_result"]["changed"], last.output
    assert [(tmp_path / name).stat().st_mtime_ns for name in ("mirror.json", "mirror.md")] == stamps


def test_an_interrupted_mirror_leaves_nothing_half_written_tagged_and_converges(lab_token, lab_basic):
    """From a TLS+token lab to a TLS+Basic lab, each with its own credentials: manifest writes fail after the first
    three (fault proxy, no retries): the run fails; every destination tag it left has the source digest; the rerun
    finishes the job; a third run changes nothing."""
    up, down = seed.LabSession(lab_token), seed.LabSession(lab_basic)
    before = reliability.snapshot(lab_basic, ["conv/app"])
    source = {f"1.{n}.0": seed.push_image(up, "conv/app", f"1.{n}.0", seed=1700 + n)["digest"] for n in range(4)}
    source["2.0.0"] = seed.push_index(up, "conv/app", "2.0.0", seed=1710)["digest"]
    # pull rights are enough on the source
    args = {"source_registry": lab_token.url, "source_connection": lab_token.conn("reader"),
            "images": [{"repository": "conv/app"}], "retries": 0}
    with FaultProxy(lab_basic.url, upstream_ca=lab_basic.ca_path) as proxy:
        broken = proxy.add(Rule(action="status", method="PUT", path=r"/manifests/", status=500, skip=3, times=0))
        failed, _rss = run_module("registry_sync", {**lab_basic.conn(), "registry": proxy.url, **args})
        assert failed.get("failed") and broken.hits > 0, failed
    left = seed.tag_map(down, "conv/app")
    assert set(left) < set(source), left  # interrupted: not every tag got there
    assert {tag: source[tag] for tag in left} == left  # and none that did is half-written

    rerun, _rss = run_module("registry_sync", {**lab_basic.conn(), **args})
    assert rerun["changed"] and not rerun.get("failed"), rerun
    assert {i["tag"] for i in rerun["images"][0]["copied"]} == set(source) - set(left)
    assert seed.tag_map(down, "conv/app") == source
    third, _rss = run_module("registry_sync", {**lab_basic.conn(), **args})
    assert not third["changed"] and third["images"][0]["copied"] == [] and len(third["images"][0]["unchanged"]) == 5
    reliability.row("fault", "registry_sync: manifest writes to the destination fail mid-mirror (500, no retries), "
                    "then rerun", f"the run failed, no tag half-written; the rerun copied the "
                    f"{len(source) - len(left)} missing tags; a third run changed nothing", tries=broken.hits,
                    tags_lost=reliability.lost(before, reliability.snapshot(lab_basic, ["conv/app"])),
                    mode=lab_basic.mode)
