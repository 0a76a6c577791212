# Copyright: regops.registry contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The promote role's two ends (pure): its targets as registry_manifest's ``targets``, and what happened to each."""

from __future__ import annotations

import re
from collections import Counter

from ansible.errors import AnsibleFilterError

from ansible_collections.regops.registry.plugins.module_utils.errors import InvalidInput
from ansible_collections.regops.registry.plugins.module_utils.reference import parse_reference


def connection_keys() -> tuple[str, ...]:
    """What a promote_registries entry may hold besides ``registry``: registry_manifest's options of a target
    registry. Imported when needed: the module glue (requests, AnsibleModule) costs a task that only summarises."""
    from ansible_collections.regops.registry.plugins.module_utils.common import target_connection_spec

    return tuple(target_connection_spec()["options"])


def promote_targets(references, registries=None, source_registry=None) -> list[dict]:
    """``promote_targets`` (full references with a tag) -> registry_manifest's ``targets``, for a task on the source's
    registry. A target on another registry gets that registry's own entry of ``registries`` (keyed by host[:port]
    as written in the references) and nothing of any other: its URL as ``registry``, the rest as ``connection``,
    with ``validate_certs`` on unless that entry turns it off (the task's, the source's, is not taken over)."""
    if isinstance(references, str) or not isinstance(references, (list, tuple)) or not references:
        raise AnsibleFilterError(f"promote_targets must be a non-empty list of references (host/repo:tag): {references}")
    registries = registries or {}
    targets = []
    for text in references:
        try:
            ref = parse_reference(str(text), default_tag=None)
        except InvalidInput as exc:
            raise AnsibleFilterError(f"promote_targets: {exc}") from None
        if not ref.tag or ref.digest:
            raise AnsibleFilterError("promote_targets must be references with a tag and without a digest "
                                     f"(host/repo:tag): {text}")
        target = {"repository": ref.repository, "tag": ref.tag}
        if ref.registry != source_registry:
            entry = registries.get(ref.registry) or {}
            target["registry"] = entry.get("registry") or ref.registry
            target["connection"] = {"validate_certs": True,
                                    **{k: v for k, v in entry.items() if k in connection_keys() and v is not None}}
        targets.append(target)
    return targets


def promote_summary(result: dict) -> dict:
    """What happened to one target: an entry of registry_manifest's ``targets``, or a registered write (a loop
    item of a playbook's own)."""
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
    """registry_manifest names each of its ``targets``; a playbook's own loop has the target in its item or in the
    task's arguments."""
    if result.get("target"):
        return result["target"]
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
        return {"promote_summary": promote_summary, "promote_targets": promote_targets}
