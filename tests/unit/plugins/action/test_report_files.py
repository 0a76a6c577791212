"""regops.registry.report_files: what it writes on the controller, what it leaves alone, and that nothing is
half-written (the action run end to end is in tests/integration/test_report_files.py)."""

from __future__ import annotations

import os

import pytest
from ansible.errors import AnsibleActionFail

from ansible_collections.regops.registry.plugins.action import report_files
from ansible_collections.regops.registry.plugins.action.report_files import write_reports


def entry(path, content: str) -> dict:
    return {"path": str(path), "content": content}


def test_new_files_are_written_with_their_directories_and_mode(tmp_path):
    files, diffs = write_reports([entry(tmp_path / "a" / "r.json", "{}\n"), entry(tmp_path / "r.md", "# r\n")],
                                 "0640", check_mode=False)
    assert [(f["changed"], f["size"]) for f in files] == [(True, 3), (True, 4)]
    assert (tmp_path / "a" / "r.json").read_text() == "{}\n"
    assert oct((tmp_path / "r.md").stat().st_mode & 0o777) == "0o640"
    assert [d["before_header"] for d in diffs] == ["(absent)", "(absent)"]
    assert diffs[1]["after"] == "# r\n"


def test_the_same_content_twice_writes_nothing(tmp_path):
    target = tmp_path / "r.md"
    write_reports([entry(target, "same")], "0644", check_mode=False)
    written = target.stat().st_mtime_ns
    os.utime(target, ns=(1, 1))
    files, diffs = write_reports([entry(target, "same")], "0644", check_mode=False)
    assert files[0]["changed"] is False and diffs == []
    assert target.stat().st_mtime_ns == 1 != written


def test_only_the_permissions_differ(tmp_path):
    target = tmp_path / "r.md"
    write_reports([entry(target, "x")], "0600", check_mode=False)
    files, diffs = write_reports([entry(target, "x")], "0644", check_mode=False)
    assert files[0]["changed"] is True and diffs == []
    assert target.stat().st_mode & 0o777 == 0o644


def test_check_mode_says_what_would_change_and_writes_nothing(tmp_path):
    old = tmp_path / "old.md"
    old.write_text("before\n")
    files, diffs = write_reports([entry(old, "after\n"), entry(tmp_path / "new" / "n.md", "n")], "0644",
                                 check_mode=True)
    assert [f["changed"] for f in files] == [True, True]
    assert old.read_text() == "before\n" and not (tmp_path / "new").exists()
    assert (diffs[0]["before"], diffs[0]["after"]) == ("before\n", "after\n")


def test_a_bad_entry_fails_before_any_file_is_written(tmp_path):
    (tmp_path / "dir.md").mkdir()
    first = tmp_path / "first.md"
    with pytest.raises(AnsibleActionFail, match="is a directory"):
        write_reports([entry(first, "1"), entry(tmp_path / "dir.md", "2")], "0644", check_mode=False)
    with pytest.raises(AnsibleActionFail, match="given twice"):
        write_reports([entry(first, "1"), entry(tmp_path / "." / "first.md", "2")], "0644", check_mode=False)
    (tmp_path / "plain").write_text("a file, not a directory")
    with pytest.raises(AnsibleActionFail, match="plain is not a directory"):
        write_reports([entry(first, "1"), entry(tmp_path / "plain" / "sub" / "r.md", "2")], "0644", check_mode=False)
    with pytest.raises(AnsibleActionFail, match="octal permissions"):
        write_reports([entry(first, "1")], "rw-r--r--", check_mode=False)
    assert not first.exists()


def test_a_write_that_fails_leaves_the_earlier_report_whole(tmp_path, monkeypatch):
    target = tmp_path / "r.json"
    target.write_text('{"old": true}\n')

    def full_disk(_src, _dst):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(report_files.os, "replace", full_disk)
    with pytest.raises(OSError):
        write_reports([entry(target, '{"new": true}\n')], "0644", check_mode=False)
    assert target.read_text() == '{"old": true}\n'
    assert os.listdir(tmp_path) == ["r.json"]  # no temporary file left beside it


def test_a_large_file_diffs_by_name_only(tmp_path, monkeypatch):
    monkeypatch.setattr(report_files.C, "MAX_FILE_SIZE_FOR_DIFF", 10)
    _files, diffs = write_reports([entry(tmp_path / "big.json", "x" * 11)], "0644", check_mode=True)
    assert diffs == [{"before_header": "(absent)", "after_header": str(tmp_path / "big.json")}]


def test_a_change_of_the_same_size_is_found_block_by_block(tmp_path, monkeypatch):
    monkeypatch.setattr(report_files, "COMPARE_BLOCK", 4)  # several blocks for a short file
    target = tmp_path / "r.json"
    write_reports([entry(target, '{"tag": "v1.0.1"}')], "0644", check_mode=False)
    assert write_reports([entry(target, '{"tag": "v1.0.1"}')], "0644", check_mode=False)[0][0]["changed"] is False
    files, diffs = write_reports([entry(target, '{"tag": "v1.0.2"}')], "0644", check_mode=False, want_diff=False)
    assert files[0]["changed"] is True and diffs == []
    assert target.read_text() == '{"tag": "v1.0.2"}'
