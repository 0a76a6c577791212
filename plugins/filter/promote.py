# Copyright: regops.registry contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Summaries of promotion results for the promote role (pure)."""

from __future__ import annotations

import re
from collections import Counter


def promote_summary(result: dict) -> dict:
    """One registered registry_manifest write (a loop item) -> what happened to that target."""
    blobs = Counter(b.get("how") for b in result.get("blobs") or [])
    manifests = result.get("manifests") or []
    return {
        "target": _target(result),
        "digest": result.get("digest"),
        "previous_digest": result.get("previous_digest"),
        "changed": bool(result.get("changed")),
        "blobs": {"mounted": blobs.get("mounted", 0), "uploaded": blobs.get("uploaded", 0),
                  "exists": blobs.get("exists", 0)},
        "manifests_written": len([m for m in manifests if m.get("how") == "written"]),
    }


def _target(result: dict) -> str | None:
    """The promote role loops over parsed references (``item.canonical``); a playbook's own loop has the target in
    the task's arguments."""
    item = result.get("item")
    if isinstance(item, dict) and item.get("canonical"):
        return item["canonical"]
    args = (result.get("invocation") or {}).get("module_args") or {}
    if args.get("repository") and args.get("tag"):
        registry = re.sub(r"^https?://", "", str(args.get("registry") or "")).rstrip("/")
        return f"{registry + '/' if registry else ''}{args['repository']}:{args['tag']}"
    return item if isinstance(item, str) else None


class FilterModule:
    def filters(self):
        return {"promote_summary": promote_summary}
