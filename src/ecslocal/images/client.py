"""A small distribution-v2 registry client over httpx: what ``ecslocal image load/push`` and the
pull-through cache need, against any registry (ecslocal's own, docker-registry, Docker Hub,
ECR). Blobs stream from an iterator to the registry and from the registry to disk; a pulled
blob or manifest is verified against its digest before it is kept.

Protocol: OCI distribution-spec v1.1 (spec.md: "Pushing blobs" — monolithic POST+PUT, chunked
POST+PATCH…+PUT with Content-Range, "Mounting a blob from another repository"; "Pulling
manifests" with Accept; "Listing tags" with Link pagination; "Deleting manifests").
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import tempfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlencode, urljoin

import httpx

from ecslocal.images.auth import Authenticator, AuthError
from ecslocal.images.media import ACCEPT, is_digest, sha256_digest

Progress = Callable[[int], None]
#: Manifests are small (the spec asks registries to take at least 4 MiB); refuse more.
MAX_MANIFEST = 4 << 20
DEFAULT_CHUNK = 8 << 20


class RegistryError(Exception):
    """The registry refused: its status and the first ``errors[]`` entry of the body."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}" if code else message)
        self.status, self.code, self.message = status, code, message


@dataclass(frozen=True)
class PulledManifest:
    media_type: str
    data: bytes
    digest: str


def _error(response: httpx.Response, what: str, body: bytes | None = None) -> RegistryError:
    """The registry's error (``body``: what was read of a streamed response's body)."""
    code, message = "", f"{what}: HTTP {response.status_code}"
    with contextlib.suppress(Exception):
        doc = json.loads(body) if body is not None else response.json()
        first = (doc.get("errors") or [{}])[0]
        code = str(first.get("code") or "")
        message = str(first.get("message") or message)
    return RegistryError(response.status_code, code, message)


class RegistryClient:
    """One registry (``base_url`` like ``http://127.0.0.1:5000``), optionally with a username
    and password (Basic, or for a Bearer token server)."""

    def __init__(
        self,
        base_url: str,
        username: str | None = None,
        password: str | None = None,
        timeout: float = 300,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.auth = Authenticator(username, password)
        self.http = httpx.Client(
            timeout=httpx.Timeout(timeout, connect=30), follow_redirects=True, transport=transport
        )

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> RegistryClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- requests with auth ----------------------------------------------------------------
    def _url(self, path: str) -> str:
        return (
            urljoin(self.base_url + "/", path.lstrip("/"))
            if not path.startswith(("http://", "https://"))
            else path
        )

    def request(
        self,
        method: str,
        path: str,
        scope: str = "",
        *,
        content: Callable[[], Iterable[bytes] | bytes] | None = None,
        headers: dict[str, str] | None = None,
        stream: bool = False,
        params: dict[str, str] | None = None,
    ) -> httpx.Response:
        """One request; a 401 is answered (Basic, Bearer) and the request sent again with a
        fresh body from ``content()``. A streamed response must be closed by the caller."""
        for _ in range(3):
            sent = dict(headers or {})
            authorization = self.auth.header(scope)
            if authorization:
                sent["Authorization"] = authorization
            request = self.http.build_request(
                method,
                self._url(path),
                headers=sent,
                params=params,
                content=content() if content is not None else None,
            )
            response = self.http.send(request, stream=stream)
            if response.status_code != 401:
                return response
            response.read()
            response.close()
            if not self.auth.answer(response, scope, self.http):
                break
        raise AuthError(f"{method} {path}: the registry refused the credentials (401)")

    @staticmethod
    def scope(repository: str, push: bool = False) -> str:
        return f"repository:{repository}:{'pull,push' if push else 'pull'}"

    def ping(self) -> None:
        """GET /v2/ (learns the auth challenge up front)."""
        response = self.request("GET", "/v2/")
        if response.status_code != 200:
            raise _error(response, "GET /v2/")

    # -- blobs ---------------------------------------------------------------------------------
    def blob_size(self, repository: str, digest: str) -> int | None:
        response = self.request("HEAD", f"/v2/{repository}/blobs/{digest}", self.scope(repository))
        if response.status_code == 404:
            return None
        if response.status_code != 200:
            raise _error(response, f"HEAD blob {digest}")
        return int(response.headers.get("content-length", "-1"))

    def mount_blob(self, repository: str, digest: str, source: str) -> bool:
        """Cross-repository mount; False (and the upload it opened cancelled) if refused."""
        scope = f"{self.scope(repository, push=True)} {self.scope(source)}"
        response = self.request(
            "POST",
            f"/v2/{repository}/blobs/uploads/",
            scope,
            params={"mount": digest, "from": source},
            headers={"Content-Length": "0"},
        )
        if response.status_code == 201:
            return True
        if response.status_code == 202 and response.headers.get("location"):
            with contextlib.suppress(httpx.HTTPError):
                self.request("DELETE", self._location(response), scope)
        elif response.status_code not in (202, 404):
            raise _error(response, f"mount {digest}")
        return False

    def _location(self, response: httpx.Response) -> str:
        # The spec: the location may be relative; clients reuse it verbatim.
        return urljoin(str(response.request.url), response.headers["location"])

    def _start_upload(self, repository: str) -> str:
        response = self.request(
            "POST",
            f"/v2/{repository}/blobs/uploads/",
            self.scope(repository, push=True),
            headers={"Content-Length": "0"},
        )
        if response.status_code != 202 or "location" not in response.headers:
            raise _error(response, "start upload")
        return self._location(response)

    @staticmethod
    def _with_digest(location: str, digest: str) -> str:
        return location + ("&" if "?" in location else "?") + urlencode({"digest": digest})

    def push_blob(
        self,
        repository: str,
        digest: str,
        size: int,
        chunks: Callable[[], Iterator[bytes]],
        *,
        chunk_size: int | None = None,
        mount_from: Iterable[str] = (),
        progress: Progress | None = None,
    ) -> str:
        """Upload a blob unless the repository has it; how: "exists", "mounted",
        "monolithic" (POST, one streamed PUT) or "chunked" (PATCHes of ``chunk_size``)."""
        if self.blob_size(repository, digest) is not None:
            return "exists"
        for source in mount_from:
            if source != repository and self.mount_blob(repository, digest, source):
                return "mounted"
        scope = self.scope(repository, push=True)
        location = self._start_upload(repository)
        if chunk_size is None:
            response = self.request(
                "PUT",
                self._with_digest(location, digest),
                scope,
                content=lambda: _counting(chunks(), progress),
                headers={"Content-Type": "application/octet-stream", "Content-Length": str(size)},
            )
            if response.status_code != 201:
                raise _error(response, f"PUT blob {digest}")
            return "monolithic"
        offset = 0
        for chunk in _rechunk(chunks(), chunk_size):
            end = offset + len(chunk) - 1
            response = self.request(
                "PATCH",
                location,
                scope,
                content=lambda c=chunk: c,  # type: ignore[misc]
                headers={
                    "Content-Type": "application/octet-stream",
                    "Content-Range": f"{offset}-{end}",
                    "Content-Length": str(len(chunk)),
                },
            )
            if response.status_code != 202:
                raise _error(response, f"PATCH blob {digest} at {offset}")
            location = self._location(response)
            offset = end + 1
            if progress:
                progress(len(chunk))
        response = self.request(
            "PUT",
            self._with_digest(location, digest),
            scope,
            content=lambda: b"",
            headers={"Content-Length": "0"},
        )
        if response.status_code != 201:
            raise _error(response, f"PUT blob {digest}")
        return "chunked"

    def pull_blob(
        self, repository: str, digest: str, dest: Path, progress: Progress | None = None
    ) -> int:
        """Stream a blob to ``dest`` (via a temporary file beside it, renamed once its digest
        checked out); returns its size."""
        dest.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=".partial-")
        try:
            h, size = hashlib.sha256(), 0
            response = self.request(
                "GET", f"/v2/{repository}/blobs/{digest}", self.scope(repository), stream=True
            )
            with contextlib.closing(response), os.fdopen(fd, "wb") as out:
                if response.status_code != 200:
                    response.read()
                    raise _error(response, f"GET blob {digest}")
                for chunk in response.iter_bytes(1 << 20):
                    h.update(chunk)
                    out.write(chunk)
                    size += len(chunk)
                    if progress:
                        progress(len(chunk))
            if "sha256:" + h.hexdigest() != digest:
                raise RegistryError(
                    200, "DIGEST_INVALID", f"blob {digest} arrived as sha256:{h.hexdigest()}"
                )
            os.replace(tmp, dest)
            return size
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)

    # -- manifests ---------------------------------------------------------------------------
    def push_manifest(self, repository: str, reference: str, data: bytes, media_type: str) -> str:
        """PUT the exact bytes under a tag or their digest; returns the digest."""
        response = self.request(
            "PUT",
            f"/v2/{repository}/manifests/{reference}",
            self.scope(repository, push=True),
            content=lambda: data,
            headers={"Content-Type": media_type},
        )
        if response.status_code not in (200, 201):
            raise _error(response, f"PUT manifest {repository}:{reference}")
        digest = sha256_digest(data)
        served = response.headers.get("docker-content-digest")
        if served and served != digest:
            raise RegistryError(
                response.status_code,
                "DIGEST_INVALID",
                f"the registry stored {served}, the manifest is {digest}",
            )
        return digest

    def get_manifest(
        self, repository: str, reference: str, accept: Iterable[str] = ACCEPT, head: bool = False
    ) -> PulledManifest:
        """GET (or HEAD) a manifest by tag or digest; the digest is checked when known."""
        # One Accept header listing every type, comma separated (RFC 9110 §12.5.1).
        # Streamed: an upstream's manifest is read to at most MAX_MANIFEST + 1 bytes (a
        # Content-Length over the limit: none), never whole into memory before the check.
        response = self.request(
            "HEAD" if head else "GET",
            f"/v2/{repository}/manifests/{reference}",
            self.scope(repository),
            headers={"Accept": ", ".join(accept)},
            stream=True,
        )
        with contextlib.closing(response):
            if response.status_code != 200:
                body = _read_bounded(response, MAX_MANIFEST)
                raise _error(response, f"manifest {repository}:{reference}", body or b"")
            media_type = response.headers.get("content-type", "").split(";")[0].strip()
            served = response.headers.get("docker-content-digest", "")
            if head:
                return PulledManifest(media_type, b"", served or reference)
            data = _read_bounded(response, MAX_MANIFEST)
        if data is None:
            raise RegistryError(200, "SIZE_INVALID", f"manifest over {MAX_MANIFEST} bytes")
        digest = sha256_digest(data)
        for expected in (reference if is_digest(reference) else "", served):
            if expected and expected != digest:
                raise RegistryError(
                    200, "DIGEST_INVALID", f"manifest {expected} arrived as {digest}"
                )
        return PulledManifest(media_type, data, digest)

    def delete_manifest(self, repository: str, digest: str) -> None:
        response = self.request(
            "DELETE", f"/v2/{repository}/manifests/{digest}", self.scope(repository, push=True)
        )
        if response.status_code not in (200, 202):
            raise _error(response, f"DELETE manifest {digest}")

    def tags(self, repository: str, page_size: int | None = None) -> list[str]:
        """Every tag, following ``Link: <…>; rel="next"`` pages."""
        out: list[str] = []
        path: str | None = f"/v2/{repository}/tags/list"
        params = {"n": str(page_size)} if page_size else None
        while path:
            response = self.request("GET", path, self.scope(repository), params=params)
            if response.status_code != 200:
                raise _error(response, f"tags of {repository}")
            out += response.json().get("tags") or []
            match = re.search(r'<([^>]+)>\s*;\s*rel="?next"?', response.headers.get("link", ""))
            path = urljoin(str(response.request.url), match.group(1)) if match else None
            params = None
        return out


def _read_bounded(response: httpx.Response, limit: int) -> bytes | None:
    """A streamed response's body if it is at most ``limit`` bytes, else None: refused on its
    Content-Length, else read to ``limit + 1`` bytes at most."""
    length = response.headers.get("content-length", "")
    if length.isdigit() and int(length) > limit:
        return None
    parts: list[bytes] = []
    size = 0
    for chunk in response.iter_bytes():
        parts.append(chunk)
        size += len(chunk)
        if size > limit:
            return None
    return b"".join(parts)


def _counting(chunks: Iterator[bytes], progress: Progress | None) -> Iterator[bytes]:
    for chunk in chunks:
        yield chunk
        if progress:
            progress(len(chunk))


def _rechunk(chunks: Iterator[bytes], size: int) -> Iterator[bytes]:
    """Chunks of exactly ``size`` bytes (the last may be shorter), holding at most one."""
    buffer = bytearray()
    for chunk in chunks:
        buffer += chunk
        while len(buffer) >= size:
            yield bytes(buffer[:size])
            del buffer[:size]
    if buffer:
        yield bytes(buffer)
