"""What every repository-scoped registry handler gets: the caller, the repository, and the
helpers that read a request body a chunk at a time."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

from aiohttp import web

from ecslocal.api.gateway import BodyTimeout
from ecslocal.registry.auth import Caller
from ecslocal.registry.blobs import upload_owner_key

if TYPE_CHECKING:
    from ecslocal.ecr.store import Repository


@dataclass(frozen=True)
class Context:
    caller: Caller
    repo: Repository
    #: the repository name as the path spells it (the name in Location headers)
    name: str

    @property
    def owner(self) -> str:
        """Whose an upload session is: a session belongs to one repository of one account."""
        return upload_owner_key(self.caller.account, self.caller.region, self.name)


async def body_chunks(request: web.Request, idle_timeout: float) -> AsyncIterator[bytes]:
    """The request body as it arrives (never all of it at once), with or without a
    Content-Length (docker's chunked PATCH has none); :class:`BodyTimeout` when the client
    sends nothing for ``idle_timeout`` seconds (nginx's client_body_timeout is per read too)."""
    content = request.content
    while True:
        try:
            async with asyncio.timeout(idle_timeout):
                chunk = await content.readany()
        except TimeoutError:
            raise BodyTimeout from None
        if not chunk:
            return
        yield chunk


async def read_bounded(request: web.Request, limit: int, idle_timeout: float) -> bytes | None:
    """The whole body if it is at most ``limit`` bytes, else None (for manifests only).

    A body somewhat over the limit is read to its end and dropped, so that the client, still
    sending, reads the 413 instead of a reset connection; past ``4 * limit`` the connection
    is closed after the answer (aiohttp does so for an unread body)."""
    if request.content_length is not None and request.content_length > 4 * limit:
        return None
    parts: list[bytes] = []
    size = 0
    async for chunk in body_chunks(request, idle_timeout):
        size += len(chunk)
        if size > 4 * limit:
            return None
        if size <= limit:
            parts.append(chunk)
    return b"".join(parts) if size <= limit else None


def drop(request: web.Request) -> None:
    """Close the connection without an answer (a stalled body)."""
    if request.transport is not None:
        request.transport.abort()
