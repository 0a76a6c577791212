# Copyright: regops.registry contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Image facts from manifests, indexes and configs. Pure: no I/O (the fetching is in ``facts``)."""

from __future__ import annotations

import base64
import binascii
import json
import re
from datetime import datetime, timedelta, timezone

from ansible_collections.regops.registry.plugins.module_utils.reference import (
    DOCKER_SCHEMA1,
    DOCKER_SCHEMA1_SIGNED,
    IMAGE_CONFIG_MEDIA_TYPES,
    IMAGE_MANIFEST_MEDIA_TYPES,
    INDEX_MEDIA_TYPES,
    MANIFEST_MEDIA_TYPES,
    OCI_INDEX,
    OCI_MANIFEST,
    SCHEMA1_MEDIA_TYPES,
    bare_media_type,
)

CREATED_LABELS = ("org.opencontainers.image.created", "org.label-schema.build-date")


class ManifestError(ValueError):
    """The manifest content contradicts itself or is not what was asked for."""


def detect_media_type(content_type: str | None, manifest: dict) -> str:
    """Header when it names a manifest type, else the body's ``mediaType``, else the shape."""
    header = bare_media_type(content_type)
    if header in MANIFEST_MEDIA_TYPES:
        return header
    field = manifest.get("mediaType")
    if isinstance(field, str) and field:
        return field
    if "manifests" in manifest:
        return OCI_INDEX
    if "config" in manifest and "layers" in manifest:
        return OCI_MANIFEST
    if "fsLayers" in manifest:
        return DOCKER_SCHEMA1_SIGNED if "signatures" in manifest else DOCKER_SCHEMA1
    return header or "application/octet-stream"


def check_media_type(content_type: str | None, manifest: dict) -> None:
    """Refuse bodies whose ``mediaType`` contradicts ``Content-Type`` (EP-13).

    Schema 1 is read as stored content: we never leave the schema 2 types out of ``Accept``, so a registry
    answering schema 1 stores it that way (an image pushed long ago), not a conversion (CN-03).
    """
    header = bare_media_type(content_type)
    field = manifest.get("mediaType")
    if header in MANIFEST_MEDIA_TYPES and isinstance(field, str) and field and field != header:
        raise ManifestError(f"the manifest says mediaType {field} but was served as {header}")


def _b64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def schema1_payload(raw: bytes) -> bytes:
    """The bytes a signed schema 1 manifest's digest covers: the JWS payload, the manifest without its
    ``signatures`` block, rebuilt from the first signature's ``protected`` header (``formatLength`` bytes of the
    original, then the base64url ``formatTail``), as distribution (libtrust) does. Anything else is its own payload.
    """
    try:
        signatures = json.loads(raw.decode("utf-8")).get("signatures")
        protected = json.loads(_b64url(signatures[0]["protected"]).decode("utf-8"))
        length, tail = protected["formatLength"], _b64url(protected["formatTail"])
    except (ValueError, AttributeError, TypeError, KeyError, IndexError, binascii.Error):
        return raw  # unsigned (v1+json), or not schema 1 at all: the digest is over the bytes
    if not isinstance(length, int) or not 0 < length <= len(raw):
        return raw
    return raw[:length] + tail


def manifest_digest_content(content_type: str | None, raw: bytes) -> bytes:
    """What a manifest's digest is computed over: the bytes, except for signed schema 1 (``schema1_payload``)."""
    header = bare_media_type(content_type)
    if header == DOCKER_SCHEMA1_SIGNED or (header not in MANIFEST_MEDIA_TYPES and b'"signatures"' in raw
                                           and b'"fsLayers"' in raw):
        return schema1_payload(raw)
    return raw


def manifest_kind(media_type: str) -> str:
    if media_type in INDEX_MEDIA_TYPES:
        return "index"
    if media_type in IMAGE_MANIFEST_MEDIA_TYPES:
        return "image"
    if media_type in SCHEMA1_MEDIA_TYPES:
        return "schema1"
    return "unknown"


_RFC3339 = re.compile(
    r"^(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2}):(\d{2})(?:\.(\d+))?(?:([Zz])|([+-])(\d{2}):?(\d{2}))$")


def parse_created(value) -> datetime | None:
    """RFC 3339 with ``Z`` or offsets and up to nanoseconds, on any Python >= 3.10; None when unusable."""
    if not isinstance(value, str):
        return None
    match = _RFC3339.match(value.strip())
    if not match:
        return None
    year, month, day, hour, minute, second, fraction, zulu, sign, off_h, off_m = match.groups()
    micro = int((fraction or "0")[:6].ljust(6, "0"))
    try:
        offset = timedelta(0) if zulu else timedelta(hours=int(off_h), minutes=int(off_m))
        if sign == "-":
            offset = -offset
        moment = datetime(int(year), int(month), int(day), int(hour), int(minute), int(second), micro,
                          tzinfo=timezone(offset))
    except ValueError:
        return None
    return moment.astimezone(timezone.utc)


def format_created(moment: datetime | None) -> str | None:
    if moment is None:
        return None
    text = moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S")
    if moment.microsecond:
        text += f".{moment.microsecond:06d}".rstrip("0")
    return text + "Z"


def is_attestation(descriptor: dict) -> bool:
    platform = descriptor.get("platform") or {}
    annotations = descriptor.get("annotations") or {}
    return annotations.get("vnd.docker.reference.type") == "attestation-manifest" or (
        platform.get("os") == "unknown" and platform.get("architecture") == "unknown")


def platform_dict(platform: dict) -> dict:
    out = {"os": platform.get("os"), "architecture": platform.get("architecture")}
    for key in ("variant", "os.version"):
        if platform.get(key):
            out[key.replace(".", "_")] = platform[key]
    return out


def platform_string(platform: dict) -> str:
    parts = [platform.get("os") or "unknown", platform.get("architecture") or "unknown"]
    if platform.get("variant"):
        parts.append(platform["variant"])
    return "/".join(parts)


def config_descriptor(manifest: dict) -> dict | None:
    config = manifest.get("config")
    return config if isinstance(config, dict) else None


def needs_config(manifest: dict, media_type: str) -> bool:
    """Only image configs are read: an artifact's config (Helm, signatures) is not an image config."""
    if manifest_kind(media_type) != "image":
        return False
    descriptor = config_descriptor(manifest) or {}
    config_type = descriptor.get("mediaType")
    return config_type is None or config_type in IMAGE_CONFIG_MEDIA_TYPES


def _labels(config: dict | None) -> dict:
    inner = (config or {}).get("config") or {}
    labels = inner.get("Labels") if isinstance(inner, dict) else None
    return dict(labels) if isinstance(labels, dict) else {}


def _created(config: dict | None, annotations: dict, labels: dict) -> tuple[datetime | None, str]:
    moment = parse_created((config or {}).get("created"))
    if moment is not None:
        return moment, "config"
    moment = parse_created(annotations.get("org.opencontainers.image.created"))
    if moment is not None:
        return moment, "annotation"
    for label in CREATED_LABELS:
        moment = parse_created(labels.get(label))
        if moment is not None:
            return moment, "label"
    history = [parse_created(h.get("created")) for h in (config or {}).get("history") or [] if isinstance(h, dict)]
    history = [h for h in history if h is not None]
    if history:
        return max(history), "history"
    return None, "unknown"


def _v1_entries(manifest: dict) -> list[dict]:
    """The parsed ``history[].v1Compatibility`` strings of a schema 1 manifest, newest first (unusable ones as {})."""
    entries = []
    for item in manifest.get("history") or []:
        try:
            entry = json.loads(item.get("v1Compatibility") or "{}")
        except (ValueError, AttributeError, TypeError):
            entry = {}
        entries.append(entry if isinstance(entry, dict) else {})
    return entries


def _schema1_facts(manifest: dict, media_type: str, digest: str, manifest_size: int | None) -> dict:
    """Schema 1 keeps its facts in ``history[0].v1Compatibility`` (created, os, architecture, labels); its layers
    are ``fsLayers`` (newest first, parallel to ``history``), whose ``throwaway`` entries are empty layers."""
    entries = _v1_entries(manifest)
    v1 = entries[0] if entries else {}
    labels = _labels(v1)
    created, source = _created(v1, {}, labels)
    layers = [layer.get("blobSum") for layer in manifest.get("fsLayers") or [] if isinstance(layer, dict)]
    kept = [i for i in range(len(layers)) if not (i < len(entries) and entries[i].get("throwaway"))]
    sizes = [entries[i].get("Size") for i in kept if i < len(entries)]
    return {"digest": digest, "media_type": media_type, "created": format_created(created), "created_source": source,
            # The v1 entries carry layer sizes only where the pushing client wrote them: no size beats a wrong one.
            "size": sum(sizes) if sizes and all(isinstance(n, int) for n in sizes) else None,
            "manifest_size": manifest_size,
            "platforms": [platform_dict(v1)] if v1.get("architecture") else [], "labels": labels,
            "annotations": {}, "artifact_type": None, "layers": len(kept),
            "config_digest": None, "subject": None, "blob_sizes": {}}


def image_facts(manifest: dict, media_type: str, digest: str, config: dict | None,
                manifest_size: int | None = None) -> dict:
    """Facts of one single-platform manifest.

    ``blob_sizes`` (digest -> size of the config and each layer) is for ``index_facts``, which must count a
    layer shared by several platforms once; callers drop it from what users see.
    """
    kind = manifest_kind(media_type)
    if kind == "schema1":
        return _schema1_facts(manifest, media_type, digest, manifest_size)
    descriptor = config_descriptor(manifest) or {}
    layers = [layer for layer in manifest.get("layers") or [] if isinstance(layer, dict)]
    blob_sizes = {}
    for item in [descriptor] + layers:
        if item.get("digest") and isinstance(item.get("size"), int):
            blob_sizes[item["digest"]] = item["size"]
    annotations = dict(manifest.get("annotations") or {})
    is_image = needs_config(manifest, media_type)
    labels = _labels(config) if is_image else {}
    created, source = _created(config if is_image else None, annotations, labels)
    kind_of_artifact = None if is_image else artifact_type(manifest)
    platforms = []
    if is_image and config and (config.get("os") or config.get("architecture")):
        platforms.append(platform_dict(config))
    return {
        "digest": digest,
        "media_type": media_type,
        "created": format_created(created),
        "created_source": source,
        "size": sum(blob_sizes.values()),
        "manifest_size": manifest_size,
        "platforms": platforms,
        "labels": labels,
        "annotations": annotations,
        "artifact_type": kind_of_artifact,
        "layers": len(layers),
        "config_digest": descriptor.get("digest"),
        "subject": subject_digest(manifest),
        "blob_sizes": blob_sizes,
    }


def subject_digest(manifest: dict) -> str | None:
    """The manifest an OCI 1.1 referrer (signature, SBOM, attestation) is about."""
    subject = manifest.get("subject")
    return subject.get("digest") if isinstance(subject, dict) and isinstance(subject.get("digest"), str) else None


def index_children(index: dict) -> list[dict]:
    """Descriptors of the platform manifests of an index, attestations left out."""
    return [d for d in index.get("manifests") or [] if isinstance(d, dict) and d.get("digest") and not is_attestation(d)]


def index_facts(index: dict, media_type: str, digest: str, children: list[dict]) -> dict:
    """Facts of an index from its children's facts (same order as ``index_children``).

    Size counts every blob once across platforms; ``created`` is the newest child's; ``labels`` are the
    first platform's (platform builds of one source normally carry the same labels).
    """
    descriptors = index_children(index)
    blob_sizes: dict = {}
    for child in children:
        blob_sizes.update(child.get("blob_sizes") or {})
    platforms = []
    manifests = []
    for descriptor, child in zip(descriptors, children):
        platform = platform_dict(descriptor.get("platform") or {}) if descriptor.get("platform") else (
            (child.get("platforms") or [None])[0])
        if platform:
            platforms.append(platform)
        manifests.append({"digest": descriptor["digest"], "media_type": descriptor.get("mediaType"),
                          "platform": platform, "size": child.get("size"), "created": child.get("created")})
    dated = [(parse_created(c.get("created")), c.get("created_source")) for c in children]
    dated = [d for d in dated if d[0] is not None]
    annotations = dict(index.get("annotations") or {})
    if dated:
        created, source = max(dated, key=lambda d: d[0])
    else:
        created = parse_created(annotations.get("org.opencontainers.image.created"))
        source = "annotation" if created else "unknown"
    return {
        "digest": digest,
        "media_type": media_type,
        "created": format_created(created),
        "created_source": source,
        "size": sum(blob_sizes.values()),
        "platforms": platforms,
        "labels": dict(children[0].get("labels") or {}) if children else {},
        "annotations": annotations,
        "artifact_type": index.get("artifactType"),
        "manifests": manifests,
        "attestations": [d["digest"] for d in index.get("manifests") or []
                         if isinstance(d, dict) and d.get("digest") and is_attestation(d)],
        "subject": subject_digest(index),
        "blob_sizes": blob_sizes,
    }


def artifact_type(manifest: dict) -> str | None:
    """What a referrers descriptor calls ``artifactType``: the manifest's own, else its config's media type."""
    return manifest.get("artifactType") or (config_descriptor(manifest) or {}).get("mediaType")


def referrer_descriptor(manifest: dict, media_type: str, digest: str, size: int) -> dict:
    """The descriptor of a referrer in a referrers index (OCI distribution 1.1: artifactType and annotations)."""
    descriptor = {"mediaType": media_type, "digest": digest, "size": size}
    kind = artifact_type(manifest)
    if kind:
        descriptor["artifactType"] = kind
    if manifest.get("annotations"):
        descriptor["annotations"] = dict(manifest["annotations"])
    return descriptor


def with_referrer(index: dict | None, descriptor: dict) -> dict | None:
    """The referrers fallback index with ``descriptor`` added (the others kept, in order); None when it is
    already listed (nothing to write). ``index`` None: the tag does not exist yet."""
    index = dict(index) if index else {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": []}
    manifests = [m for m in index.get("manifests") or [] if isinstance(m, dict)]
    if any(m.get("digest") == descriptor["digest"] for m in manifests):
        return None
    index["manifests"] = manifests + [descriptor]
    return index
