"""Offline fallbacks for the intersphinx inventories of the docsite (run by hacking/docs.sh).

The conf.py that `antsibull-docs sphinx-init` writes maps python, python3, jinja2 and ansible_devel
to their docsites, with ../<name>.inv as the fallback when an inventory cannot be downloaded. With
no way to reach those sites, Sphinx warns (an error in this build) and every reference into the
Ansible docs (the "common return values" link of each module page, the action plugins link of a
module that has one, ansible-core's configuration settings and environment variables) is left
undefined. This writes the fallbacks into the given
directory: ansible_devel.inv names the pages of docs.ansible.com those references go to, the others
are empty. Where the sites can be reached, Sphinx uses their real inventories and ignores these.

Usage: python hacking/docs_inventories.py DIR (with ansible-core importable).
"""

from __future__ import annotations

import sys
import zlib
from pathlib import Path

from ansible.config.manager import ConfigManager

CONFIG_PAGE = "reference_appendices/config.html"
LABELS = {
    "common_return_values": ("reference_appendices/common_return_values.html#common-return-values", "Return Values"),
    "ansible_configuration_settings": (f"{CONFIG_PAGE}#ansible-configuration-settings", "Ansible Configuration Settings"),
    # the note antsibull-docs puts on the page of a module with an action plugin (report_files)
    "action_plugins": ("plugins/action.html#action-plugins", "Action plugins"),
}


def inventory(project: str, entries: list[str]) -> bytes:
    """A Sphinx inventory (version 2) holding the given entry lines."""
    head = (
        f"# Sphinx inventory version 2\n# Project: {project}\n# Version: devel\n"
        "# The remainder of this file is compressed using zlib.\n"
    )
    body = "".join(f"{line}\n" for line in entries)
    return head.encode() + zlib.compress(body.encode())


def ansible_entries() -> list[str]:
    """Labels and ansible-core's environment variables, as docs.ansible.com names them."""
    entries = [f"{name} std:label -1 {uri} {title}" for name, (uri, title) in LABELS.items()]
    definitions = ConfigManager().get_configuration_definitions()
    envs = sorted({env["name"] for setting in definitions.values() for env in setting.get("env") or []})
    entries += [f"{name} std:envvar 1 {CONFIG_PAGE}#envvar-$ -" for name in envs]
    return entries


def main() -> None:
    dest = Path(sys.argv[1])
    dest.mkdir(parents=True, exist_ok=True)
    (dest / "ansible_devel.inv").write_bytes(inventory("Ansible", ansible_entries()))
    for name, project in (("python2", "Python"), ("python3", "Python"), ("jinja2", "Jinja")):
        (dest / f"{name}.inv").write_bytes(inventory(project, []))


if __name__ == "__main__":
    main()
