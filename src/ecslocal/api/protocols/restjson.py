"""rest-json (Lambda; API Gateway-style services): REST routing, JSON bodies.

Body members are JSON with blobs base64-encoded and timestamps as epoch seconds unless the
member's ``timestampFormat`` says otherwise (botocore's ``RestJSONParser`` defaults). Errors
are a JSON body with ``message`` and the code in ``x-amzn-ErrorType`` (Lambda answers
``{"Type": "User", "message": …}``; botocore's ``RestJSONParser._do_error_parse`` reads the
header first, then ``code``/``__type`` in the body).
"""

from __future__ import annotations

import base64
import binascii
import json
from typing import TYPE_CHECKING, Any

from ecslocal.api.protocols.base import HttpResponse
from ecslocal.api.protocols.json import decode_object
from ecslocal.api.protocols.rest import RestProtocol
from ecslocal.api.protocols.values import b64, format_timestamp, parse_timestamp
from ecslocal.errors import AwsError

if TYPE_CHECKING:
    from botocore.model import ServiceModel, Shape


def to_json(value: Any, shape: Shape) -> Any:
    kind = shape.type_name
    if kind == "structure":
        out = {}
        for name, member in shape.members.items():
            if value.get(name) is not None:
                out[member.serialization.get("name", name)] = to_json(value[name], member)
        return out
    if kind == "list":
        return [to_json(v, shape.member) for v in value]
    if kind == "map":
        return {k: to_json(v, shape.value) for k, v in value.items()}
    if kind == "timestamp":
        return format_timestamp(value, shape.serialization.get("timestampFormat", "unixtimestamp"))
    if kind == "blob":
        return b64(value)
    return value


def from_json(value: Any, shape: Shape) -> Any:
    """The inverse of :func:`to_json`; values of the wrong JSON type are kept as sent, for the
    validator to name."""
    kind = shape.type_name
    if kind == "structure" and isinstance(value, dict):
        out = {}
        for name, member in shape.members.items():
            key = member.serialization.get("name", name)
            if value.get(key) is not None:
                out[name] = from_json(value[key], member)
        return out
    if kind == "list" and isinstance(value, list):
        return [from_json(v, shape.member) for v in value]
    if kind == "map" and isinstance(value, dict):
        return {k: from_json(v, shape.value) for k, v in value.items()}
    try:
        if kind == "timestamp" and isinstance(value, (str, int, float)):
            return parse_timestamp(value)
        if kind == "blob" and isinstance(value, str):
            return base64.b64decode(value, validate=True)
    except (ValueError, TypeError, binascii.Error):
        raise AwsError("SerializationException", f"Invalid {kind} value: {value!r}") from None
    return value


class RestJsonProtocol(RestProtocol):
    name = "rest-json"
    content_type = "application/json"

    def base_headers(self, request_id: str) -> dict[str, str]:
        return {"x-amzn-RequestId": request_id}

    def decode_body(self, body: bytes, shape: Shape) -> Any:
        return from_json(decode_object(body), shape)

    def encode_body(self, value: Any, shape: Shape, root: str) -> bytes:
        return json.dumps(to_json(value, shape)).encode()

    def serialize_error(
        self, error: AwsError, request_id: str, model: ServiceModel | None = None
    ) -> HttpResponse:
        body = {"Type": "Service" if error.status >= 500 else "User", "message": error.message}
        headers = {
            **self.base_headers(request_id),
            "Content-Type": self.content_type,
            "x-amzn-ErrorType": error.code,
        }
        return HttpResponse(error.status, headers, json.dumps(body).encode())
