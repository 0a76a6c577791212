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
COMPARE_BLOCK = 1 << 20


def file_mode(mode: str) -> int:
    if not re.fullmatch(r"0?[0-7]{3}", mode):
        raise AnsibleActionFail(f"mode must be octal permissions such as 0644, not {mode!r}")
    return int(mode, 8)


def nearest_existing(path: str) -> str:
    while not os.path.exists(path):
        path = os.path.dirname(path)
    return path


def planned(files: list[dict]) -> list[dict]:
    """Each file with its absolute path and content. Fails, before anything is written, on two entries for one path,
    a path that is a directory, and a directory that cannot be made or written."""
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
        out.append({"path": path, "content": entry["content"].encode("utf-8")})
    return out


def same_content(path: str, content: bytes) -> bool:
    """Whether the file holds exactly ``content``: sizes first, then block by block, never the whole file in memory
    (a report of 100,000 tags runs to tens of MiB)."""
    if not os.path.isfile(path) or os.path.getsize(path) != len(content):
        return False
    view = memoryview(content)
    with open(path, "rb") as current:
        for offset in range(0, len(content), COMPARE_BLOCK):
            if current.read(COMPARE_BLOCK) != view[offset:offset + COMPARE_BLOCK]:
                return False
    return True


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


def diff_of(path: str, content: bytes) -> dict:
    """Before and after as text, or only the headers when either is over Ansible's diff size limit."""
    exists = os.path.isfile(path)
    diff = {"before_header": path if exists else "(absent)", "after_header": path}
    if max(os.path.getsize(path) if exists else 0, len(content)) <= C.MAX_FILE_SIZE_FOR_DIFF:
        before = b""
        if exists:
            with open(path, "rb") as current:
                before = current.read()
        diff.update(before=before.decode("utf-8", "replace"), after=content.decode("utf-8"))
    return diff


def write_reports(files: list[dict], mode: str, check_mode: bool,
                  want_diff: bool = True) -> tuple[list[dict], list[dict]]:
    """Write what differs (content or permissions); in check mode only say so. Returns the per-file results and,
    when ``want_diff``, the diffs of the files whose content changes."""
    permissions = file_mode(mode)
    results, diffs = [], []
    for item in planned(files):
        path, content = item["path"], item["content"]
        content_changes = not same_content(path, content)
        changed = content_changes or (os.stat(path).st_mode & 0o7777) != permissions
        if content_changes and want_diff:
            diffs.append(diff_of(path, content))  # before the file is replaced
        if changed and not check_mode:
            if content_changes:
                replace(path, content, permissions)
            else:
                os.chmod(path, permissions)
        results.append({"path": path, "changed": changed, "size": len(content)})
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
            files, diffs = write_reports(args["files"], args["mode"], bool(self._task.check_mode),
                                         want_diff=bool(self._task.diff))
        except OSError as exc:
            where = exc.filename or "a report file"
            raise AnsibleActionFail(f"could not write {where}: {exc.strerror or exc}") from None
        result.update(changed=any(f["changed"] for f in files), files=files)
        if diffs:
            result["diff"] = diffs
        return result
