# Copyright: regops.registry contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The usage report's filters: its numbers from the facts, and its HTML page from those numbers (pure)."""

from __future__ import annotations

from ansible.errors import AnsibleFilterError

from ansible_collections.regops.registry.plugins.module_utils.errors import InvalidInput

# module_utils.usage and usage_html are imported when called: Ansible loads every filter file of the collection in
# each task's worker process to find one filter (see filter/prune.py).


def usage_summary(facts, policy=None, now=None, stale_after="365d", top=10, registry=None):
    """What the registry stores and where, from registry_tags with details and blobs (see usage_summary.yml)."""
    from ansible_collections.regops.registry.plugins.module_utils.usage import usage_summary as summarize

    try:
        return summarize(facts, policy=policy, now=now, stale_after=stale_after, top=top, registry=registry)
    except InvalidInput as exc:
        raise AnsibleFilterError(f"usage_summary: {exc}") from None


def usage_html(summary, title=None):
    """The self-contained HTML page of a usage_summary result (see usage_html.yml)."""
    if not isinstance(summary, dict) or "repositories" not in summary or "age" not in summary:
        raise AnsibleFilterError("usage_html needs the result of regops.registry.usage_summary")
    from ansible_collections.regops.registry.plugins.module_utils.usage_html import usage_html as render

    return render(summary, title=title)


class FilterModule:
    def filters(self):
        return {"usage_summary": usage_summary, "usage_html": usage_html}
