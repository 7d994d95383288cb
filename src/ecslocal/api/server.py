"""One HTTP endpoint for every AWS API ecslocal serves, routed as a regional endpoint would be.

- AWS JSON services (ECS, CloudWatch Logs): ``POST /`` with ``X-Amz-Target``; the prefix picks
  the service.
- Query services (STS, IAM): ``POST /`` (form body) or ``GET /?Action=…``; the service is the
  one named in the SigV4 credential scope. Unsigned operations AWS allows
  (``AssumeRoleWithWebIdentity``) are recognised by their Action.
- Everything else is routed by path (``/_ecslocal/v1/...``; REST services plug in here).

Every AWS request is SigV4-verified before its operation is looked at.
"""

from __future__ import annotations

import logging
import random
import uuid
from collections.abc import Sequence
from email.utils import formatdate
from typing import Any

from aiohttp import web

from ecslocal.api import json_protocol, query_protocol
from ecslocal.api.service import Service
from ecslocal.auth import sigv4
from ecslocal.auth.authenticator import Authenticator
from ecslocal.auth.caller import Caller
from ecslocal.endpoints import faults
from ecslocal.endpoints.faults import Faults
from ecslocal.errors import AwsError

log = logging.getLogger("ecslocal.api")

_IDS = random.Random()  # seeded from os.urandom once; request ids need not be secret


def new_request_id() -> str:
    """A UUID-4-formatted request id (uuid.uuid4() reads os.urandom on every call, which
    costs tens of microseconds on some virtual machines)."""
    return str(uuid.UUID(int=_IDS.getrandbits(128), version=4))


_ANONYMOUS = Caller(access_key_id="", account_id="", arn="", user_id="", anonymous=True)


class AwsRouter:
    def __init__(
        self,
        services: Sequence[Service],
        authenticator: Authenticator,
        faults: Faults | None = None,
    ) -> None:
        self.faults = faults
        self.services = list(services)
        self.by_target = {s.target_prefix: s for s in services if s.target_prefix}
        self.by_scope = {s.signing_name: s for s in services}
        self.authenticator = authenticator

    async def handle(self, request: web.Request) -> web.Response:
        request_id = new_request_id()
        body = await request.read()
        target = request.headers.get("X-Amz-Target")
        if target is not None:
            return await self._json(request, body, target, request_id)
        return await self._query(request, body, request_id)

    # -- AWS JSON ---------------------------------------------------------------------------
    async def _json(
        self, request: web.Request, body: bytes, target: str, request_id: str
    ) -> web.Response:
        prefix, _, operation = target.rpartition(".")
        service = self.by_target.get(prefix)
        if service is None:
            return json_protocol.error_response(
                AwsError("UnknownOperationException", f"Unknown target: {target}"), request_id
            )
        ctype = json_protocol.content_type(service)
        caller: Caller | None = None
        try:
            caller = self._authenticate(request, body, service)
            op, params = json_protocol.parse_operation(service, operation, body)
            result = await service.call(op, params, caller)
            return _dated(json_protocol.result_response(service, op, result, request_id), caller)
        except AwsError as error:
            return _dated(json_protocol.error_response(error, request_id, ctype), caller)
        except Exception:  # never a traceback on the wire: an AWS-shaped 500
            log.exception("%s %s failed", service.name, operation)
            error = AwsError("ServerException", "An internal error occurred.", status=500)
            return json_protocol.error_response(error, request_id, ctype)

    # -- query ------------------------------------------------------------------------------
    async def _query(self, request: web.Request, body: bytes, request_id: str) -> web.Response:
        form: dict[str, str] = dict(sigv4.parse_query_string(request.query_string))
        ctype = request.headers.get("Content-Type", "")
        if body and (not ctype or ctype.startswith("application/x-www-form-urlencoded")):
            try:
                form.update(sigv4.parse_query_string(body.decode()))
            except UnicodeDecodeError:
                pass
        credential = sigv4.credential_parts(request.headers, form)
        scope = credential[3] if credential else None
        service = self.by_scope.get(scope) if scope else None
        if service is None:
            action = form.get("Action", "")
            service = next(
                (
                    s
                    for s in self.services
                    if action in s.unsigned_operations and not s.target_prefix
                ),
                None,
            )
        if service is None:
            error = (
                AwsError(
                    "InvalidClientTokenId", f"Unknown service in credential scope: {scope}", 403
                )
                if scope
                else AwsError(
                    "MissingAuthenticationToken", "Request is missing Authentication Token", 403
                )
            )
            return query_protocol.error_response(error, request_id)
        namespace = str(service.model.metadata.get("xmlNamespace", ""))
        fault = None
        if self.faults is not None:  # `ecslocal fault add sts refuse|http-503|slow [--task T]`
            # A task's own credentials say which task is calling (static keys do not).
            task_id = self.authenticator.keys.tasks.get(credential[0]) if credential else None
            fault = self.faults.active(service.name, task_id)
        if fault is not None:
            if fault.kind == "http-503":
                error = AwsError("ServiceUnavailable", "Service is unavailable", 503)
                return query_protocol.error_response(error, request_id, namespace)
            injected = await faults.apply(fault, request)
            if injected is not None:
                return injected
        caller: Caller | None = None
        try:
            if (
                form.get("Action") in service.unsigned_operations
                and "Authorization" not in request.headers
            ):
                caller = _ANONYMOUS
            else:
                caller = self._authenticate(request, body, service)
            op, params = query_protocol.parse_operation(service, form)
            result = await service.call(op, params, caller)
            return _dated(query_protocol.result_response(service, op, result, request_id), caller)
        except AwsError as error:
            return _dated(query_protocol.error_response(error, request_id, namespace), caller)
        except Exception:
            log.exception("%s %s failed", service.name, form.get("Action"))
            error = AwsError("InternalFailure", "An internal error occurred.", status=500)
            return query_protocol.error_response(error, request_id, namespace)

    # -- auth -------------------------------------------------------------------------------
    def _authenticate(self, request: web.Request, body: bytes, service: Service) -> Caller:
        codes = service.auth_errors
        try:
            signed = sigv4.parse(
                request.method,
                request.raw_path.split("?", 1)[0],
                request.query_string,
                request.headers,
                body,
            )
            return self.authenticator.authenticate(signed, service.signing_name)
        except sigv4.SigV4Error as failure:
            code, status = getattr(codes, failure.kind)
            message = failure.message
            if failure.kind == "missing_token":
                message = (
                    "Request is missing Authentication Token"
                    if not service.target_prefix
                    else "Missing Authentication Token"
                )
            raise AwsError(code, message, status) from None


def _dated(response: web.Response, caller: Caller | None) -> web.Response:
    """A time-warped task's request is answered in its clock's ``Date`` (the JS SDK v3, for
    one, moves its signing clock to the server's ``Date`` when they are 5 minutes apart)."""
    if caller is not None and caller.clock is not None:
        response.headers["Date"] = formatdate(caller.clock.time(), usegmt=True)
    return response


def build_app(router: AwsRouter, extra_routes: list[web.RouteDef]) -> web.Application:
    app = web.Application(client_max_size=16 * 1024 * 1024)
    routes: list[Any] = [web.post("/", router.handle), web.get("/", router.handle)]
    app.add_routes([*routes, *extra_routes])
    return app
