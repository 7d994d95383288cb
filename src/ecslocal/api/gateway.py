"""The AWS gateway: every AWS request goes through the same stages, in this order.

1. **route** (:class:`~ecslocal.api.routing.ServiceRouter`): which service, from the request
   line and headers only;
2. **faults** (:class:`FaultStage`): ``ecslocal fault add sts refuse|http-503|slow``;
3. **limit**: a ``Content-Length`` over the service's limit is refused (413) unread;
4. **authenticate, headers** (:meth:`Authenticator.check_claims`): no signature, an unknown
   key, a wrong scope or an expired token are refused before the body is read;
5. **read** the body (bounded in size and in idle time, :class:`BodyReader`);
6. **authenticate, signature**: the signature, which covers the payload hash;
7. **parse** with the service's protocol (:mod:`ecslocal.api.protocols`), **validate**
   against the model, **dispatch** to the handler, **serialize**.

There is one ``try``: an :class:`AwsError` or a SigV4 failure at any stage is rendered by the
service's protocol (or the protocol the request looks like, when no service was found), any
other exception is logged and answered as the protocol's 500; every answer carries the
request id, and a time-warped caller's answer its clock's ``Date``. LocalStack ASF's gateway
is a handler chain of the same shape (``localstack/aws/app.py``), read for structure only.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from email.utils import formatdate
from typing import TYPE_CHECKING

from ecslocal.api.protocols import HttpRequest, HttpResponse, WireProtocol, by_name
from ecslocal.api.protocols.query import form_of
from ecslocal.api.routing import Route, ServiceRouter
from ecslocal.api.service import JSON_AUTH_ERRORS, QUERY_AUTH_ERRORS, Service
from ecslocal.auth import sigv4
from ecslocal.auth.authenticator import Authenticator
from ecslocal.auth.caller import Caller
from ecslocal.errors import AwsError

if TYPE_CHECKING:
    from ecslocal.endpoints.faults import Faults

log = logging.getLogger("ecslocal.api")

_IDS = random.Random()  # seeded from os.urandom once; request ids need not be secret

_ANONYMOUS = Caller(access_key_id="", account_id="", arn="", user_id="", anonymous=True)

#: The largest body read from a request without a signature: enough for the operations AWS
#: serves unsigned (AssumeRoleWithWebIdentity: a 20,000-character token, a 2,048-character
#: policy and ten policy ARNs, form-encoded), far less than a body worth buffering.
UNSIGNED_BODY_LIMIT = 128 * 1024

#: A 500 in each protocol's words: AWS JSON services' ``ServerException`` (ECS's and Logs'
#: models), the query services' ``InternalFailure`` (AWS's common errors), Lambda's
#: ``ServiceException`` (its model), S3's ``InternalError`` (S3 error responses).
INTERNAL_ERRORS = {
    "json": "ServerException",
    "query": "InternalFailure",
    "rest-json": "ServiceException",
    "rest-xml": "InternalError",
}


def new_request_id() -> str:
    """A UUID-4-formatted request id (uuid.uuid4() reads os.urandom on every call, which
    costs tens of microseconds on some virtual machines; building a ``uuid.UUID`` costs
    more than the formatting): RFC 4122 version 4, variant bits ``10``."""
    n = (_IDS.getrandbits(128) & _UUID4_CLEAR) | _UUID4_SET
    h = f"{n:032x}"
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


#: What ``uuid.UUID(int=n, version=4)`` does to ``n``: the variant (bits 62-63 of the low
#: half: ``10``) and the version (bits 76-79: ``4``).
_UUID4_CLEAR = ~((0xC000 << 48) | (0xF000 << 64))
_UUID4_SET = (0x8000 << 48) | (4 << 76)


class BodyTimeout(Exception):
    """The client stopped sending the body: the connection is closed without an answer."""


#: Reads the request body: ``(limit) -> bytes``; raises :class:`AwsError` (413) past
#: ``limit`` and :class:`BodyTimeout` when the client stalls.
BodyReader = Callable[[int], Awaitable[bytes]]


def too_large(limit: int) -> AwsError:
    """HTTP 413 as AWS's front ends answer an oversized request (the code Lambda's model
    gives its 413, ``RequestTooLargeException``, is service-specific; this one is generic)."""
    return AwsError(
        "RequestEntityTooLarge", f"Request must be smaller than {limit} bytes", status=413
    )


@dataclass(slots=True)
class Exchange:
    """One request on its way through the stages."""

    request: HttpRequest
    request_id: str
    route: Route
    protocol: WireProtocol
    read_body: BodyReader
    caller: Caller | None = None
    #: The body, once read (by the unsigned-request check or the read stage).
    body: bytes | None = None

    async def body_within(self, limit: int) -> bytes:
        if self.body is None:
            self.body = await self.read_body(limit)
        return self.body


class FaultStage:
    """Faults on the AWS APIs, as a stage: the one place they are applied, for every protocol.
    A fault scoped to a task hits the requests signed with that task's role credentials."""

    def __init__(self, faults: Faults | None, task_of_key: Callable[[str], str | None]) -> None:
        self.faults = faults
        self.task_of_key = task_of_key

    async def __call__(self, ex: Exchange) -> HttpResponse | None:
        """None to go on, or the answer to give instead (``abort`` for ``refuse``)."""
        service = ex.route.service
        if self.faults is None or service is None or not self.faults.list():
            return None
        credential = ex.route.credential or sigv4.credential_parts(
            ex.request.headers, dict(sigv4.parse_query_string(ex.request.query_string))
        )
        task_id = self.task_of_key(credential[0]) if credential else None
        fault = self.faults.active(service.name, task_id)
        if fault is None:
            return None
        if fault.kind == "http-503":
            raise AwsError("ServiceUnavailable", "Service is unavailable", 503)
        if fault.kind == "slow":
            await asyncio.sleep(fault.delayMs / 1000)
            return None
        return HttpResponse(500, {}, abort=True)  # refuse: the connection is dropped


class Gateway:
    def __init__(
        self,
        services: Sequence[Service],
        authenticator: Authenticator,
        faults: Faults | None = None,
    ) -> None:
        self.services = list(services)
        self.router = ServiceRouter(self.services)
        self.authenticator = authenticator
        self.faults = FaultStage(faults, lambda key_id: authenticator.keys.tasks.get(key_id))

    async def serve(
        self, request: HttpRequest, read_body: BodyReader, content_length: int | None
    ) -> HttpResponse:
        """The answer to one request whose line and headers are in ``request`` (its body is
        read through ``read_body`` once the header-only checks have passed)."""
        query = dict(sigv4.parse_query_string(request.query_string))
        route = self.router.route(request.headers, query, request.host)
        protocol = self._protocol(route, request)
        ex = Exchange(request, new_request_id(), route, protocol, read_body)
        try:
            response = await self._stages(ex, query, content_length)
        except AwsError as error:
            response = self._error(ex, error)
        except sigv4.SigV4Error as failure:
            response = self._error(ex, self._auth_error(ex, failure))
        except BodyTimeout:
            raise
        except Exception:  # never a traceback on the wire: an AWS-shaped 500
            service = ex.route.service
            log.exception("%s request failed", service.name if service else "AWS")
            code = INTERNAL_ERRORS.get(ex.protocol.name, "InternalFailure")
            response = self._error(ex, AwsError(code, "An internal error occurred.", 500))
        caller = ex.caller
        if caller is not None and caller.clock is not None:
            # A time-warped task is answered in its clock's Date (the JS SDK v3, for one,
            # moves its signing clock to the server's Date when they are 5 minutes apart).
            response.headers["Date"] = formatdate(caller.clock.time(), usegmt=True)
        return response

    # -- the stages ----------------------------------------------------------------------------
    async def _stages(
        self,
        ex: Exchange,
        query: Mapping[str, str],
        content_length: int | None,
    ) -> HttpResponse:
        request = ex.request
        service = ex.route.service
        if service is None:
            return await self._unrouted(ex, query, content_length)
        injected = await self.faults(ex)
        if injected is not None:
            return injected
        limit = service.max_request_bytes
        if content_length is not None and content_length > limit:
            raise too_large(limit)
        claims = None
        if "Authorization" in request.headers or "X-Amz-Algorithm" in query:
            claims = sigv4.parse_claims(
                request.method, request.path, request.query_string, request.headers
            )
            key = self.authenticator.check_claims(claims, service.signing_name)
        elif not service.unsigned_operations:
            raise sigv4.SigV4Error(sigv4.Failure.MISSING_TOKEN, "")
        else:
            limit = UNSIGNED_BODY_LIMIT
            if content_length is not None and content_length > limit:
                raise sigv4.SigV4Error(sigv4.Failure.MISSING_TOKEN, "")
        body = await ex.body_within(limit)
        request = ex.request = _with_body(request, body, ex.route.bucket)
        if claims is None:
            op, params = ex.protocol.parse(request, service)
            if op.name not in service.unsigned_operations:
                raise sigv4.SigV4Error(sigv4.Failure.MISSING_TOKEN, "")
            ex.caller = _ANONYMOUS
        else:
            ex.caller = self.authenticator.verify(sigv4.with_payload(claims, body), key)
            op, params = ex.protocol.parse(request, service)
        service.check_input(op, params)
        result = await service.call(op, params, ex.caller)
        return ex.protocol.serialize(result, op, ex.request_id)

    async def _unrouted(
        self,
        ex: Exchange,
        query: Mapping[str, str],
        content_length: int | None,
    ) -> HttpResponse:
        """No service named by target, scope or host: an unknown target or scope, or an
        unsigned query request — allowed for the operations AWS serves unsigned."""
        request = ex.request
        target = request.headers.get("X-Amz-Target")
        if target is not None:
            raise AwsError("UnknownOperationException", f"Unknown target: {target}")
        if ex.route.credential is not None:
            scope = ex.route.credential[3]
            raise AwsError(
                "InvalidClientTokenId", f"Unknown service in credential scope: {scope}", 403
            )
        action = query.get("Action")
        if action is None and (content_length or 0) <= UNSIGNED_BODY_LIMIT:
            body = await ex.body_within(UNSIGNED_BODY_LIMIT)
            action = form_of(_with_body(request, body, None)).get("Action")
        service = self.router.unsigned_service(action or "")
        if service is None:
            raise sigv4.SigV4Error(sigv4.Failure.MISSING_TOKEN, "")
        ex.route = Route(service, None)
        ex.protocol = by_name(service.protocol)
        return await self._stages(ex, query, content_length)

    # -- errors --------------------------------------------------------------------------------
    def _protocol(self, route: Route, request: HttpRequest) -> WireProtocol:
        if route.service is not None:
            return by_name(route.service.protocol)
        return by_name("json" if "X-Amz-Target" in request.headers else "query")

    def _auth_error(self, ex: Exchange, failure: sigv4.SigV4Error) -> AwsError:
        service = ex.route.service
        if service is not None:
            codes = service.auth_errors
        else:
            codes = JSON_AUTH_ERRORS if ex.protocol.name == "json" else QUERY_AUTH_ERRORS
        code, status = codes.of(failure.kind)
        message = failure.message
        if failure.kind is sigv4.Failure.MISSING_TOKEN:
            message = codes.missing_message
        return AwsError(code, message, status)

    def _error(self, ex: Exchange, error: AwsError) -> HttpResponse:
        service = ex.route.service
        model = service.model if service is not None else None
        return ex.protocol.serialize_error(error, ex.request_id, model)


def _with_body(request: HttpRequest, body: bytes, bucket: str | None) -> HttpRequest:
    """The request with its body; for S3 virtual-hosted style, with the bucket the host names
    put back in front of the path, where botocore's path-style ``requestUri`` has it."""
    path = request.path
    if bucket is not None:
        path = f"/{bucket}" if path in ("", "/") else f"/{bucket}{path}"
    return HttpRequest(
        request.method, path, request.query_string, request.headers, body, request.host
    )
