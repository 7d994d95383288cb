"""AWS JSON 1.0/1.1: ``POST /`` with ``X-Amz-Target: <targetPrefix>.<Operation>`` and a JSON
body; results as JSON shaped by the output shape; errors as ``{"__type", "message"}`` with the
code repeated in ``x-amzn-ErrorType`` (what botocore's and the JS SDK's parsers read)."""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from ecslocal.api.service import Service
from ecslocal.errors import AwsError
from ecslocal.model.shapes import to_wire

_NOT_A_STRUCTURE = "Start of structure or map found where not expected."


def content_type(service: Service) -> str:
    return f"application/x-amz-json-{service.model.metadata.get('jsonVersion', '1.0')}"


def parse_operation(service: Service, operation: str, body: bytes) -> tuple[Any, dict[str, Any]]:
    op = service.operation(operation)
    if op is None:
        raise AwsError("UnknownOperationException", f"Operation {operation} is not supported.")
    try:
        params = json.loads(body or b"{}")
        # A "\ud800" escape decodes to a lone surrogate: not text, and nothing downstream
        # (SQLite, the OS) can encode it.
        if b"\\u" in body:
            json.dumps(params, ensure_ascii=False).encode()
    except (ValueError, RecursionError):  # RecursionError: nesting too deep to decode
        raise AwsError("SerializationException", _NOT_A_STRUCTURE) from None
    if not isinstance(params, dict):
        raise AwsError("SerializationException", _NOT_A_STRUCTURE)
    service.check_input(op, params)
    return op, params


class Encoded:
    """A result a handler has serialized itself (already shaped by the output shape with
    :func:`to_wire`), e.g. from per-resource fragments it caches."""

    __slots__ = ("body",)

    def __init__(self, body: bytes) -> None:
        self.body = body


def result_response(
    service: Service, op: Any, result: dict[str, Any] | Encoded, request_id: str
) -> web.Response:
    if isinstance(result, Encoded):
        body = result.body
    else:
        out = to_wire(result, op.output_shape) if op.output_shape is not None else {}
        body = json.dumps(out).encode()
    return web.Response(
        body=body,
        headers={"Content-Type": content_type(service), "x-amzn-RequestId": request_id},
    )


def error_response(
    error: AwsError, request_id: str, ctype: str = "application/x-amz-json-1.1"
) -> web.Response:
    body = {"__type": error.code, "message": error.message}
    return web.Response(
        status=error.status,
        body=json.dumps(body).encode(),
        headers={
            "Content-Type": ctype,
            "x-amzn-ErrorType": error.code,
            "x-amzn-RequestId": request_id,
        },
    )
