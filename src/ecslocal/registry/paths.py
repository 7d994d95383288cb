"""Registry paths, parsed from the right: a repository name may hold slashes
(``/v2/a/b/c/manifests/x``), what follows it never does (distribution-spec v1.1.1
"Endpoints": ``/v2/<name>/blobs/<digest>``, ``/v2/<name>/manifests/<reference>``,
``/v2/<name>/blobs/uploads/[<reference>]``, ``/v2/<name>/tags/list``,
``/v2/<name>/referrers/<digest>``).

The aiohttp routes that lead here (:func:`route_patterns`) match only those shapes, so the
container-facing ``/v2/credentials/<id>`` sub-app keeps every other ``/v2/`` path.
"""

from __future__ import annotations

from dataclasses import dataclass

BASE = "base"
BLOB = "blob"
UPLOAD_START = "upload-start"
UPLOAD = "upload"
MANIFEST = "manifest"
TAGS = "tags"
REFERRERS = "referrers"


_SHAPES = r"(?:manifests/[^/]+|blobs/[^/]+|blobs/uploads/?[^/]*|tags/list|referrers/[^/]+)"


@dataclass(frozen=True)
class RegistryPath:
    kind: str
    name: str = ""
    #: the digest, tag, or upload id after the name ("" when there is none)
    reference: str = ""


def parse(path: str) -> RegistryPath | None:
    """The endpoint ``path`` (the decoded URL path) addresses, or None."""
    if path in ("/v2", "/v2/"):
        return RegistryPath(BASE)
    if not path.startswith("/v2/"):
        return None
    parts = path[len("/v2/") :].split("/")
    if len(parts) >= 3 and parts[-3:-1] == ["blobs", "uploads"]:
        return RegistryPath(UPLOAD if parts[-1] else UPLOAD_START, "/".join(parts[:-3]), parts[-1])
    if len(parts) >= 3 and parts[-2:] == ["blobs", "uploads"]:
        return RegistryPath(UPLOAD_START, "/".join(parts[:-2]))
    if len(parts) >= 3 and parts[-2:] == ["tags", "list"]:
        return RegistryPath(TAGS, "/".join(parts[:-2]))
    if len(parts) < 3 or not parts[-1]:
        return None
    kind = {"manifests": MANIFEST, "blobs": BLOB, "referrers": REFERRERS}.get(parts[-2])
    if kind is None:
        return None
    return RegistryPath(kind, "/".join(parts[:-2]), parts[-1])


def route_patterns(shadowing_prefixes: tuple[str, ...] = ("/v2/credentials",)) -> list[str]:
    """aiohttp paths for every registry endpoint.

    aiohttp resolves a URL by its longest matching static prefix first: a sub-app mounted at
    ``/v2/credentials`` would take ``/v2/credentials/manifests/x`` (the repository
    ``credentials``) before a route keyed at ``/v2``. A route of the same prefix, registered
    before the sub-app, is tried first; it matches registry shapes only."""
    patterns = ["/v2", "/v2/", "/v2/{path:.+/" + _SHAPES + "}"]
    for prefix in shadowing_prefixes:
        patterns.append(prefix + "/{path:(?:.+/)?" + _SHAPES + "}")
    return patterns
