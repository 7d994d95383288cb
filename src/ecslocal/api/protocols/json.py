"""AWS JSON 1.0/1.1 (ECS, CloudWatch Logs; ECR and SQS next).

``POST /`` with ``X-Amz-Target: <targetPrefix>.<Operation>`` and a JSON body; results as JSON
shaped by the output shape (timestamps as epoch seconds, botocore's default for ``json``);
errors as ``{"__type", "message"}`` with the code repeated in ``x-amzn-ErrorType`` (what
botocore's ``JSONParser`` and the JS SDK read: botocore/parsers.py ``BaseJSONParser``).
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from ecslocal.api.protocols.base import HttpRequest, HttpResponse, WireProtocol
from ecslocal.errors import AwsError
from ecslocal.model.nulls import drop_null_members
from ecslocal.model.shapes import to_wire

if TYPE_CHECKING:
    from botocore.model import OperationModel, ServiceModel

    from ecslocal.api.service import Service

_NOT_A_STRUCTURE = "Start of structure or map found where not expected."
_DEFAULT_CONTENT_TYPE = "application/x-amz-json-1.1"


def content_type(model: ServiceModel | None) -> str:
    if model is None:
        return _DEFAULT_CONTENT_TYPE
    return f"application/x-amz-json-{model.metadata.get('jsonVersion', '1.0')}"


def decode_object(body: bytes) -> dict[str, Any]:
    """A JSON object, or the ``SerializationException`` AWS answers for anything else."""
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
    return params


class Encoded:
    """A result a handler has serialized itself (already shaped by the output shape with
    :func:`to_wire`), e.g. from per-resource fragments it caches (DescribeTasks)."""

    __slots__ = ("body",)

    def __init__(self, body: bytes) -> None:
        self.body = body


class JsonProtocol(WireProtocol):
    name = "json"

    def parse(
        self, request: HttpRequest, service: Service
    ) -> tuple[OperationModel, dict[str, Any]]:
        operation = request.headers.get("X-Amz-Target", "").rpartition(".")[2]
        op = service.operation(operation)
        if op is None:
            raise AwsError("UnknownOperationException", f"Operation {operation} is not supported.")
        # A null member is an absent one (Smithy awsJson1_1 null.smithy; see model/nulls.py),
        # for every service and before validation looks at the request.
        return op, drop_null_members(decode_object(request.body), op.input_shape)

    def serialize(self, result: Any, operation: OperationModel, request_id: str) -> HttpResponse:
        if isinstance(result, Encoded):
            body = result.body
        else:
            shape = operation.output_shape
            body = json.dumps(to_wire(result, shape) if shape is not None else {}).encode()
        return HttpResponse(
            200,
            {
                "Content-Type": content_type(operation.service_model),
                "x-amzn-RequestId": request_id,
            },
            body,
        )

    def serialize_error(
        self, error: AwsError, request_id: str, model: ServiceModel | None = None
    ) -> HttpResponse:
        body = {"__type": error.code, "message": error.message}
        return HttpResponse(
            error.status,
            {
                "Content-Type": content_type(model),
                "x-amzn-ErrorType": error.code,
                "x-amzn-RequestId": request_id,
            },
            json.dumps(body).encode(),
        )
