# Copyright: regops.registry contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Summaries of promotion results for the promote role (pure)."""

from __future__ import annotations

from collections import Counter


def promote_summary(result: dict) -> dict:
    """One registered registry_manifest write (a loop item) -> what happened to that target."""
    item = result.get("item") or {}
    blobs = Counter(b.get("how") for b in result.get("blobs") or [])
    manifests = result.get("manifests") or []
    return {
        "target": item.get("canonical"),
        "digest": result.get("digest"),
        "previous_digest": result.get("previous_digest"),
        "changed": bool(result.get("changed")),
        "blobs": {"mounted": blobs.get("mounted", 0), "uploaded": blobs.get("uploaded", 0),
                  "exists": blobs.get("exists", 0)},
        "manifests_written": len([m for m in manifests if m.get("how") == "written"]),
    }


class FilterModule:
    def filters(self):
        return {"promote_summary": promote_summary}
