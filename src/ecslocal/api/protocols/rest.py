"""What rest-json (Lambda) and rest-xml (S3) share: the operation is found by method and
``requestUri`` template (:mod:`ecslocal.api.routing`), and each input member is read from
where its ``location`` puts it — ``uri`` (a template label), ``querystring``, ``header``,
``headers`` (a header-name prefix map), or the body (the ``payload`` member, or every member
without a location). Output members go back the same way, plus ``statusCode``.

This is the inverse of botocore's ``BaseRestSerializer`` (botocore/serialize.py) on the way
in and of ``BaseRestParser`` (botocore/parsers.py) on the way out; the subclasses say how a
body is encoded.
"""

from __future__ import annotations

import base64
import json
from abc import abstractmethod
from typing import TYPE_CHECKING, Any

from ecslocal.api.protocols.base import HttpRequest, HttpResponse, WireProtocol
from ecslocal.api.protocols.values import b64, scalar_from_text, scalar_to_text, to_bytes
from ecslocal.api.routing import OperationRouter
from ecslocal.auth.sigv4 import parse_query_string
from ecslocal.errors import AwsError

if TYPE_CHECKING:
    from botocore.model import OperationModel, ServiceModel, Shape, StructureShape

    from ecslocal.api.service import Service

_BAD_VALUE = "SerializationException"


def _split_header_list(raw: str) -> list[str]:
    """A comma-separated header list, with botocore's quoting of items holding ``,`` or ``"``."""
    items, current, quoted, escaped = [], [], False, False
    for ch in raw:
        if escaped:
            current.append(ch)
            escaped = False
        elif ch == "\\" and quoted:
            escaped = True
        elif ch == '"':
            quoted = not quoted
        elif ch == "," and not quoted:
            items.append("".join(current).strip())
            current = []
        else:
            current.append(ch)
    items.append("".join(current).strip())
    return items


def _header_value(raw: str, shape: Shape, where: str) -> Any:
    if shape.type_name == "list":
        return [_header_value(item, shape.member, where) for item in _split_header_list(raw)]
    if shape.type_name == "string" and shape.serialization.get("jsonvalue"):
        try:
            return json.loads(base64.b64decode(raw))
        except ValueError:
            raise AwsError(_BAD_VALUE, f"Header {where} is not base64-encoded JSON.") from None
    if shape.type_name == "timestamp" and "timestampFormat" not in shape.serialization:
        return scalar_from_text(raw, shape, where, _BAD_VALUE)  # rfc822 (any format accepted)
    return scalar_from_text(raw, shape, where, _BAD_VALUE)


def _header_text(value: Any, shape: Shape) -> str:
    if shape.type_name == "list":
        items = []
        for v in value:
            text = _header_text(v, shape.member)
            if shape.member.type_name == "string" and ("," in text or '"' in text):
                text = '"' + text.replace('"', '\\"') + '"'
            items.append(text)
        return ",".join(items)
    if shape.type_name == "string" and shape.serialization.get("jsonvalue"):
        return b64(json.dumps(value, separators=(",", ":")))
    return scalar_to_text(value, shape, "rfc822")


class RestProtocol(WireProtocol):
    """rest-json and rest-xml; subclasses encode bodies and errors."""

    #: ``Content-Type`` of a structured body.
    content_type = ""

    def __init__(self) -> None:
        self._routers: dict[str, OperationRouter] = {}

    def router(self, service: Service) -> OperationRouter:
        router = self._routers.get(service.name)
        if router is None:
            implemented = [n for n in service.handlers if n in service.model.operation_names]
            router = self._routers[service.name] = OperationRouter(service.model, implemented)
        return router

    # -- request ----------------------------------------------------------------------------
    def parse(
        self, request: HttpRequest, service: Service
    ) -> tuple[OperationModel, dict[str, Any]]:
        pairs = parse_query_string(request.query_string)
        query = dict(pairs)
        found = self.router(service).resolve(request.method, request.path, query)
        if found is None:
            raise self.unknown_operation(request)
        name, labels = found
        op = service.operation(name)
        assert op is not None  # the router holds implemented operations only
        shape = op.input_shape
        if shape is None:
            return op, {}
        return op, self._parse_input(request, shape, labels, pairs)

    def unknown_operation(self, request: HttpRequest) -> AwsError:
        return AwsError(
            "UnknownOperationException",
            f"No operation matches {request.method} {request.path}",
            404,
        )

    def _parse_input(
        self,
        request: HttpRequest,
        shape: StructureShape,
        labels: dict[str, str],
        pairs: list[tuple[str, str]],
    ) -> dict[str, Any]:
        params: dict[str, Any] = {}
        claimed: set[str] = set()
        query_map: str | None = None
        payload = shape.serialization.get("payload")
        body_members: dict[str, Shape] = {}
        for name, member in shape.members.items():
            location = member.serialization.get("location")
            key = member.serialization.get("name", name)
            if location == "uri":
                if key in labels:
                    params[name] = scalar_from_text(labels[key], member, name, _BAD_VALUE)
            elif location == "querystring":
                if member.type_name == "map":
                    query_map = name
                    continue
                claimed.add(key)
                values = [v for k, v in pairs if k == key]
                if not values:
                    continue
                if member.type_name == "list":
                    params[name] = [
                        scalar_from_text(v, member.member, name, _BAD_VALUE) for v in values
                    ]
                else:
                    params[name] = scalar_from_text(values[0], member, name, _BAD_VALUE)
            elif location == "header":
                raw = request.headers.get(key)
                if raw is not None:
                    params[name] = _header_value(raw, member, name)
            elif location == "headers":
                prefix = key.lower()
                found = {
                    k[len(prefix) :]: v
                    for k, v in request.headers.items()
                    if k.lower().startswith(prefix)
                }
                if found:
                    params[name] = found
            elif location is None and name != payload:
                body_members[name] = member
        if query_map is not None:
            rest = {k: v for k, v in pairs if k not in claimed}
            if rest:
                params[query_map] = rest
        if payload is not None:
            member = shape.members[payload]
            if member.type_name in ("blob", "string"):
                if request.body or member.type_name == "blob":
                    body = request.body
                    params[payload] = body if member.type_name == "blob" else body.decode()
            elif request.body:
                params[payload] = self.decode_body(request.body, member)
        elif body_members and request.body:
            decoded = self.decode_body(request.body, shape)
            params.update((k, v) for k, v in decoded.items() if k in body_members)
        return params

    # -- response ---------------------------------------------------------------------------
    def serialize(self, result: Any, operation: OperationModel, request_id: str) -> HttpResponse:
        status = int(operation.http.get("responseCode", 200))
        headers = self.base_headers(request_id)
        shape = operation.output_shape
        body = b""
        if shape is None or not result:
            return HttpResponse(status, headers, body)
        payload = shape.serialization.get("payload")
        body_value: dict[str, Any] = {}
        for name, member in shape.members.items():
            value = result.get(name)
            if value is None:
                continue
            location = member.serialization.get("location")
            key = member.serialization.get("name", name)
            if location == "statusCode":
                status = int(value)
            elif location == "header":
                if member.type_name == "list" and not value:
                    continue
                headers[key] = _header_text(value, member)
            elif location == "headers":
                for k, v in value.items():
                    headers[key + k] = str(v)
            elif name == payload:
                if member.type_name in ("blob", "string"):
                    body = to_bytes(value)
                    headers.setdefault("Content-Type", "application/octet-stream")
                else:
                    body = self.encode_body(value, member, key)
                    headers["Content-Type"] = self.content_type
            elif location is None:
                body_value[name] = value
        if payload is None and body_value:
            root = shape.serialization.get("name", shape.name)
            body = self.encode_body(body_value, shape, root)
            headers["Content-Type"] = self.content_type
        return HttpResponse(status, headers, body)

    @abstractmethod
    def base_headers(self, request_id: str) -> dict[str, str]:
        """The headers of every answer (the request id, in the service's header)."""

    @abstractmethod
    def decode_body(self, body: bytes, shape: Shape) -> Any:
        """A structured body as the value of ``shape``."""

    @abstractmethod
    def encode_body(self, value: Any, shape: Shape, root: str) -> bytes:
        """``value`` as a structured body (``root`` names the XML root element)."""

    def serialize_error(
        self, error: AwsError, request_id: str, model: ServiceModel | None = None
    ) -> HttpResponse:
        raise NotImplementedError
