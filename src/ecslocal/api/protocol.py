"""AWS JSON 1.0/1.1 protocol: requests routed by ``X-Amz-Target``, input validated and output
shaped by the botocore service model, errors as ``{"__type", "message"}``."""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web
from botocore.model import OperationModel, ServiceModel

from ecslocal.errors import AwsError
from ecslocal.model.shapes import to_wire, validation_errors

log = logging.getLogger("ecslocal.api")

Handler = Callable[[dict[str, Any]], Awaitable[dict[str, Any]] | dict[str, Any]]


_NOT_A_STRUCTURE = "Start of structure or map found where not expected."


class JsonService:
    """One AWS JSON-protocol service: its model, its target prefix, its operation handlers."""

    def __init__(self, model: ServiceModel, handlers: dict[str, Handler]) -> None:
        self.model = model
        self.target_prefix: str = model.metadata["targetPrefix"]
        self.content_type = f"application/x-amz-json-{model.metadata.get('jsonVersion', '1.0')}"
        self.handlers = handlers

    def error_response(self, error: AwsError) -> web.Response:
        body = {"__type": error.code, "message": error.message}
        return web.Response(
            status=error.status,
            body=json.dumps(body).encode(),
            headers={"Content-Type": self.content_type, "x-amzn-ErrorType": error.code},
        )

    async def dispatch(self, operation: str, raw_body: bytes) -> web.Response:
        try:
            return await self._dispatch(operation, raw_body)
        except AwsError as error:
            return self.error_response(error)
        except Exception:  # never a traceback on the wire: an AWS-shaped 500
            log.exception("%s.%s failed", self.target_prefix, operation)
            return self.error_response(
                AwsError("ServerException", "An internal error occurred.", status=500)
            )

    async def _dispatch(self, operation: str, raw_body: bytes) -> web.Response:
        handler = self.handlers.get(operation)
        if handler is None or operation not in self.model.operation_names:
            raise AwsError(
                "UnknownOperationException", f"Operation {operation} is not supported."
            )
        op: OperationModel = self.model.operation_model(operation)
        try:
            params = json.loads(raw_body or b"{}")
        except ValueError:
            raise AwsError("SerializationException", _NOT_A_STRUCTURE) from None
        if not isinstance(params, dict):
            raise AwsError("SerializationException", _NOT_A_STRUCTURE)
        if op.input_shape is not None:
            errors = validation_errors(params, op.input_shape)
            errors = [e for e in errors if not e.startswith("Unknown parameter")]
            if errors:
                raise AwsError("InvalidParameterException", "; ".join(errors))
        result = handler(params)
        if not isinstance(result, dict):
            result = await result
        out = to_wire(result, op.output_shape) if op.output_shape is not None else {}
        return web.Response(
            body=json.dumps(out).encode(), headers={"Content-Type": self.content_type}
        )
