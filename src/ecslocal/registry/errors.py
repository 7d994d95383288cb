"""The registry's error answers: ``{"errors": [{"code", "message", "detail"}]}``.

Codes and statuses: OCI distribution-spec v1.1.1 "Error Codes" (code-1 … code-14) and the
reference implementation's table (distribution/distribution ``registry/api/errcode`` and
``registry/api/v2/errors.go``: the status each code is sent with, and its default message).
``TAG_INVALID`` and ``RANGE_INVALID`` are the Docker-era codes the spec keeps as legacy; ECR
sends ``TAG_INVALID`` for an immutable tag (the notes §1.7).
"""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

#: code -> (HTTP status, default message) [distribution registry/api/v2/errors.go]
CODES: dict[str, tuple[int, str]] = {
    "BLOB_UNKNOWN": (404, "blob unknown to registry"),
    "BLOB_UPLOAD_INVALID": (400, "blob upload invalid"),
    "BLOB_UPLOAD_UNKNOWN": (404, "blob upload unknown to registry"),
    "DIGEST_INVALID": (400, "provided digest did not match uploaded content"),
    "MANIFEST_BLOB_UNKNOWN": (404, "manifest references a manifest or blob unknown to registry"),
    "MANIFEST_INVALID": (400, "manifest invalid"),
    "MANIFEST_UNKNOWN": (404, "manifest unknown"),
    "NAME_INVALID": (400, "invalid repository name"),
    "NAME_UNKNOWN": (404, "repository name not known to registry"),
    "SIZE_INVALID": (400, "provided length did not match content length"),
    "UNAUTHORIZED": (401, "authentication required"),
    "DENIED": (403, "requested access to the resource is denied"),
    "UNSUPPORTED": (405, "The operation is unsupported."),
    "TOOMANYREQUESTS": (429, "too many requests"),
    "TAG_INVALID": (400, "manifest tag did not match URI"),
    "RANGE_INVALID": (416, "invalid content range"),
    "PAGINATION_NUMBER_INVALID": (400, "invalid number of results requested"),
    "UNKNOWN": (500, "unknown error"),
}

API_VERSION = {"Docker-Distribution-Api-Version": "registry/2.0"}


class RegistryError(Exception):
    """An error the registry answers with; ``headers`` go along (Location, Range, ...)."""

    def __init__(
        self,
        code: str,
        message: str | None = None,
        detail: Any = None,
        *,
        status: int | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        default_status, default_message = CODES[code]
        self.code = code
        self.message = message if message is not None else default_message
        self.detail = detail
        self.status = status if status is not None else default_status
        self.headers = headers or {}
        super().__init__(f"{code}: {self.message}")

    def response(self, head: bool = False) -> web.Response:
        entry: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.detail is not None:
            entry["detail"] = self.detail
        body = json.dumps({"errors": [entry]}).encode()
        headers = {**API_VERSION, **self.headers, "Content-Type": "application/json"}
        if head:  # a HEAD answer has no body, only the status (and the length GET would send)
            return web.Response(status=self.status, headers=headers)
        return web.Response(status=self.status, body=body, headers=headers)


def name_unknown(name: str, account: str) -> RegistryError:
    """ECR's words for a repository that does not exist (notes §1.9: docker prints ``name
    unknown: The repository with name '<r>' does not exist in the registry with id '<a>'``)."""
    return RegistryError(
        "NAME_UNKNOWN",
        f"The repository with name '{name}' does not exist in the registry with id '{account}'",
    )


def manifest_unknown() -> RegistryError:
    """ECR's words for a tag or digest it has no image for (notes §1.9: docker prints
    ``manifest unknown: Requested image not found``)."""
    return RegistryError("MANIFEST_UNKNOWN", "Requested image not found")
