# Copyright: regops.registry contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The action of regops.registry.report_files: write a report's files on the controller, in the controller's own
process. ansible.builtin.copy delegated to localhost starts two module processes per file (stat, then copy or
file), about half a second each; a report of two files cost a role more than its registry work.

Every path is checked before the first file is written, and each file is replaced in one rename, so a failed run
leaves the earlier report whole.
"""

from __future__ import annotations

import os
import re
import tempfile

from ansible import constants as C
from ansible.errors import AnsibleActionFail
from ansible.plugins.action import ActionBase

ARGUMENT_SPEC = {
    "files": {"type": "list", "elements": "dict", "required": True, "options": {
        "path": {"type": "path", "required": True},
        "content": {"type": "str", "required": True},
    }},
    "mode": {"type": "str", "default": "0644"},
}


def file_mode(mode: str) -> int:
    if not re.fullmatch(r"0?[0-7]{3}", mode):
        raise AnsibleActionFail(f"mode must be octal permissions such as 0644, not {mode!r}")
    return int(mode, 8)


def nearest_existing(path: str) -> str:
    while not os.path.exists(path):
        path = os.path.dirname(path)
    return path


def planned(files: list[dict]) -> list[dict]:
    """Each file with its absolute path and what is there now (None: nothing). Fails, before anything is written,
    on two entries for one path, a path that is a directory, and a directory that cannot be made or written."""
    out, seen = [], set()
    for entry in files:
        path = os.path.abspath(entry["path"])
        if path in seen:
            raise AnsibleActionFail(f"{path} is given twice")
        seen.add(path)
        if os.path.isdir(path):
            raise AnsibleActionFail(f"{path} is a directory, not a file")
        ancestor = nearest_existing(os.path.dirname(path))
        if not os.path.isdir(ancestor):
            raise AnsibleActionFail(f"cannot write {path}: {ancestor} is not a directory")
        if not os.access(ancestor, os.W_OK | os.X_OK):
            raise AnsibleActionFail(f"cannot write {path}: no permission to write in {ancestor}")
        before = None
        if os.path.exists(path):
            with open(path, "rb") as current:
                before = current.read()
        out.append({"path": path, "content": entry["content"].encode("utf-8"), "before": before})
    return out


def replace(path: str, content: bytes, mode: int) -> None:
    """Write beside the file, then rename over it: a reader sees the old report or the new one, never half."""
    directory = os.path.dirname(path)
    os.makedirs(directory, mode=0o755, exist_ok=True)
    fd, temp = tempfile.mkstemp(dir=directory, prefix=f".{os.path.basename(path)}.")
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(content)
        os.chmod(temp, mode)
        os.replace(temp, path)
    except BaseException:
        if os.path.exists(temp):
            os.unlink(temp)
        raise


def diff_of(item: dict) -> dict:
    """Before and after as text, or only the headers when either is over Ansible's diff size limit."""
    diff = {"before_header": item["path"] if item["before"] is not None else "(absent)", "after_header": item["path"]}
    if max(len(item["before"] or b""), len(item["content"])) <= C.MAX_FILE_SIZE_FOR_DIFF:
        diff.update(before=(item["before"] or b"").decode("utf-8", "replace"), after=item["content"].decode("utf-8"))
    return diff


def write_reports(files: list[dict], mode: str, check_mode: bool) -> tuple[list[dict], list[dict]]:
    """Write what differs (content or permissions); in check mode only say so. Returns the per-file results and
    the diffs of the files that change."""
    permissions = file_mode(mode)
    results, diffs = [], []
    for item in planned(files):
        content_changes = item["content"] != item["before"]
        changed = content_changes or (os.stat(item["path"]).st_mode & 0o7777) != permissions
        if changed and not check_mode:
            if content_changes:
                replace(item["path"], item["content"], permissions)
            else:
                os.chmod(item["path"], permissions)
        if content_changes:
            diffs.append(diff_of(item))
        results.append({"path": item["path"], "changed": changed, "size": len(item["content"])})
    return results, diffs


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _supports_check_mode = True
    _supports_async = False
    _requires_connection = False  # the controller's own files: no connection to the host is opened

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        _spec, args = self.validate_argument_spec(argument_spec=ARGUMENT_SPEC)
        try:
            files, diffs = write_reports(args["files"], args["mode"], bool(self._task.check_mode))
        except OSError as exc:
            where = exc.filename or "a report file"
            raise AnsibleActionFail(f"could not write {where}: {exc.strerror or exc}") from None
        result.update(changed=any(f["changed"] for f in files), files=files)
        if self._task.diff and diffs:
            result["diff"] = diffs
        return result
