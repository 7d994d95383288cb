"""Content negotiation for manifest GET/HEAD on ``Accept``.

docker sends its accepted manifest types as *several* ``Accept`` header lines (one per type);
reading only the first served a client a type it had not asked for (issue 10 item 3), so every
line is read and each is comma-split (RFC 9110 §5.3: a list header may be sent either way).

What is served (the reference implementation's rules, distribution ``registry/handlers/
manifests.go``, without its schema-1 conversion, which ECR's OCI clients never need):

* no ``Accept``, ``*/*``, ``application/*``, or the stored type listed: the manifest as pushed;
* an index or manifest list the client does not accept, but whose ``linux/amd64`` entry is of
  a type it does: that entry (the reference implementation's "default platform" rewrite);
* otherwise 404 ``MANIFEST_UNKNOWN`` saying what was found.
"""

from __future__ import annotations

import json
from collections.abc import Iterable

from ecslocal.ecr.manifest import DOCKER_MANIFEST, INDEX_TYPES, OCI_INDEX, OCI_MANIFEST


def accepted(lines: Iterable[str]) -> set[str]:
    """The media types of every ``Accept`` line, parameters (``;q=``) dropped."""
    types: set[str] = set()
    for line in lines:
        for item in line.split(","):
            media_type = item.split(";", 1)[0].strip().lower()
            if media_type:
                types.add(media_type)
    return types


def acceptable(media_type: str, types: set[str]) -> bool:
    return not types or bool(types & {"*/*", "application/*", media_type.lower()})


def default_platform_child(index: bytes, types: set[str]) -> str | None:
    """The digest of an index's ``linux/amd64`` manifest when its type is acceptable."""
    try:
        doc = json.loads(index)
        entries = doc.get("manifests", [])
    except (ValueError, AttributeError):
        return None
    for entry in entries if isinstance(entries, list) else []:
        if not isinstance(entry, dict):
            continue
        platform = entry.get("platform") or {}
        if not isinstance(platform, dict):
            continue
        if platform.get("os") == "linux" and platform.get("architecture") == "amd64":
            media_type = entry.get("mediaType")
            digest = entry.get("digest")
            if (
                isinstance(media_type, str)
                and isinstance(digest, str)
                and acceptable(media_type, types)
            ):
                return digest
    return None


def not_acceptable_message(media_type: str) -> str:
    """The reference implementation's words when the client cannot take what is stored."""
    if media_type == OCI_MANIFEST:
        return "OCI manifest found, but accept header does not support OCI manifests"
    if media_type == OCI_INDEX:
        return "OCI index found, but accept header does not support OCI indexes"
    if media_type in INDEX_TYPES:
        return "manifest list found, but accept header does not support manifest lists"
    if media_type == DOCKER_MANIFEST:
        return "Schema 2 manifest found, but accept header does not support it"
    return f"{media_type} manifest found, but accept header does not support it"
