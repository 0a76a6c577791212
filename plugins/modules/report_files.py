#!/usr/bin/python
# Copyright: regops.registry contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: report_files
short_description: Write a report's files on the Ansible controller
version_added: 0.2.0
description:
  - Writes one or more files on the controller, where the roles and playbooks of this collection keep their reports
    (the prune and mirror roles, the tag and usage report playbooks), whatever host the play targets.
  - Runs in the controller's own process (an action plugin); no module process is started and no connection to the
    host is opened. C(ansible.builtin.copy) delegated to C(localhost) starts two module processes per file.
  - A file is written only when its content or permissions differ, so a rerun with the same report reports no change.
    Each file is written beside its path and renamed over it; a reader sees the earlier file or the new one, never
    part of one. Every path is checked before the first file is written.
  - Missing directories of a path are created (mode C(0755)).
author:
  - regops.registry contributors (@regops)
options:
  files:
    description:
      - The files to write.
    type: list
    elements: dict
    required: true
    suboptions:
      path:
        description:
          - Where, on the controller. A relative path is relative to the directory C(ansible-playbook) runs in.
        type: path
        required: true
      content:
        description:
          - The whole content, written as UTF-8.
        type: str
        required: true
  mode:
    description:
      - The permissions of every file written, in octal.
    type: str
    default: "0644"
attributes:
  check_mode:
    description: Says which files would change, writes nothing.
    support: full
  diff_mode:
    description: Returns each changed file's content before and after (only the paths when over C(MAX_FILE_SIZE_FOR_DIFF)).
    support: full
  idempotent:
    description: The same content twice writes nothing the second time.
    support: full
notes:
  - "The roles run this task with C(check_mode: false): a plan in check mode still writes its report, which is what
    check mode is for."
"""

EXAMPLES = r"""
- name: Every tag with its digest and creation date
  regops.registry.registry_tags:
    registry: registry.example.com
    repository: team/app
    details: true
    sort: created
  register: report_tags

- name: Write the report, JSON and Markdown, on the controller
  regops.registry.report_files:
    files:
      - path: "{{ playbook_dir }}/reports/tags.json"
        content: "{{ report_tags.images | regops.registry.tag_rows | to_nice_json }}\n"
      - path: "{{ playbook_dir }}/reports/tags.md"
        content: "{{ report_tags.images | regops.registry.tag_rows(format='markdown', title='team/app') }}"
    mode: "0640"
  check_mode: false  # a plan in check mode still writes its report
  run_once: true
"""

RETURN = r"""
files:
  description: Each file, in the order given.
  returned: success
  type: list
  elements: dict
  contains:
    path:
      description: The file's absolute path.
      type: str
      sample: /srv/ci/reports/tags.json
    changed:
      description: Whether it was written (or would be, in check mode).
      type: bool
      sample: true
    size:
      description: Its size in bytes.
      type: int
      sample: 2048
"""
