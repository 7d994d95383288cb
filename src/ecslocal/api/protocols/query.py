"""The AWS query protocol (STS, IAM; ELBv2 and SNS next).

Requests are form-encoded ``Action=…&Version=…`` plus members flattened by the input shape
(``Tags.member.1.Key=…``, maps as ``….entry.N.key``), in a POST body or a GET query string —
the inverse of botocore's ``QuerySerializer``. Results are XML: ``<{Action}Response xmlns=…>
<{Action}Result>…</{Action}Result><ResponseMetadata><RequestId>…``; errors are
``<ErrorResponse><Error><Type>Sender</Type><Code>…`` — what botocore's ``QueryParser`` reads.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any
from xml.sax.saxutils import escape

from ecslocal.api.protocols import xmlwire
from ecslocal.api.protocols.base import HttpRequest, HttpResponse, WireProtocol
from ecslocal.api.protocols.values import scalar_from_text
from ecslocal.auth.sigv4 import parse_query_string
from ecslocal.errors import AwsError

if TYPE_CHECKING:
    from botocore.model import OperationModel, ServiceModel, Shape, StructureShape

    from ecslocal.api.service import Service

_CONTENT_TYPE = "text/xml"


def form_of(request: HttpRequest) -> dict[str, str]:
    """The request's parameters: the query string, then a form-encoded body."""
    form: dict[str, str] = dict(parse_query_string(request.query_string))
    ctype = request.headers.get("Content-Type", "")
    body = request.body
    if body and (not ctype or ctype.startswith("application/x-www-form-urlencoded")):
        try:
            form.update(parse_query_string(body.decode()))
        except UnicodeDecodeError:
            pass
    return form


class QueryProtocol(WireProtocol):
    name = "query"

    def parse(
        self, request: HttpRequest, service: Service
    ) -> tuple[OperationModel, dict[str, Any]]:
        form = form_of(request)
        action = form.get("Action")
        if not action:
            raise AwsError("MissingAction", "Missing Action")
        op = service.operation(action)
        if op is None:
            version = form.get("Version", service.model.api_version)
            raise AwsError(
                "InvalidAction", f"Could not find operation {action} for version {version}"
            )
        params: dict[str, Any] = {}
        if op.input_shape is not None:
            params = _parse_structure(form, op.input_shape, "")
        return op, params

    def serialize(self, result: Any, operation: OperationModel, request_id: str) -> HttpResponse:
        name = operation.name
        ns = operation.service_model.metadata.get("xmlNamespace", "")
        parts = [f'<{name}Response xmlns="{ns}">']
        shape = operation.output_shape
        if shape is not None:
            wrapper = shape.serialization.get("resultWrapper", f"{name}Result")
            xmlwire.write(result, shape, wrapper, parts)
        parts.append(
            f"<ResponseMetadata><RequestId>{request_id}</RequestId></ResponseMetadata>"
            f"</{name}Response>"
        )
        return HttpResponse(
            200,
            {"Content-Type": _CONTENT_TYPE, "x-amzn-RequestId": request_id},
            "".join(parts).encode(),
        )

    def serialize_error(
        self, error: AwsError, request_id: str, model: ServiceModel | None = None
    ) -> HttpResponse:
        ns = model.metadata.get("xmlNamespace", "") if model is not None else ""
        kind = "Receiver" if error.status >= 500 else "Sender"
        body = (
            f'<ErrorResponse xmlns="{ns}"><Error><Type>{kind}</Type>'
            f"<Code>{escape(error.code)}</Code><Message>{escape(error.message)}</Message>"
            f"</Error><RequestId>{request_id}</RequestId></ErrorResponse>"
        )
        return HttpResponse(
            error.status,
            {"Content-Type": _CONTENT_TYPE, "x-amzn-RequestId": request_id},
            body.encode(),
        )


def _has_prefix(form: Mapping[str, str], prefix: str) -> bool:
    dotted = prefix + "."
    return any(k == prefix or k.startswith(dotted) for k in form)


def _parse_structure(form: Mapping[str, str], shape: StructureShape, prefix: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, member in shape.members.items():
        key = prefix + member.serialization.get("name", name)
        value = _parse(form, member, key)
        if value is not None:
            out[name] = value
    return out


def _parse_list(form: Mapping[str, str], shape: Shape, key: str) -> list[Any] | None:
    if form.get(key) == "":  # botocore sends "Key=" for an empty list
        return []
    if shape.serialization.get("flattened"):
        item_prefix = key + "."
    else:
        item_prefix = f"{key}.{shape.member.serialization.get('name', 'member')}."
    items = []
    i = 1
    while _has_prefix(form, f"{item_prefix}{i}"):
        items.append(_parse(form, shape.member, f"{item_prefix}{i}"))
        i += 1
    return items if items else None


def _parse_map(form: Mapping[str, str], shape: Shape, key: str) -> dict[str, Any] | None:
    entry = key + "." if shape.serialization.get("flattened") else key + ".entry."
    key_name = shape.key.serialization.get("name", "key")
    value_name = shape.value.serialization.get("name", "value")
    result: dict[str, Any] = {}
    i = 1
    while f"{entry}{i}.{key_name}" in form:
        result[form[f"{entry}{i}.{key_name}"]] = _parse(
            form, shape.value, f"{entry}{i}.{value_name}"
        )
        i += 1
    return result if result else None


def _parse(form: Mapping[str, str], shape: Shape, key: str) -> Any:
    kind = shape.type_name
    if kind == "structure":
        return _parse_structure(form, shape, key + ".") if _has_prefix(form, key) else None  # type: ignore[arg-type]
    if kind == "list":
        return _parse_list(form, shape, key)
    if kind == "map":
        return _parse_map(form, shape, key)
    raw = form.get(key)
    if raw is None:
        return None
    # AWS query services call a bad boolean a ValidationError, any other bad scalar a
    # MalformedQueryString (as ecslocal's query protocol always has).
    code = "ValidationError" if kind == "boolean" else "MalformedQueryString"
    return scalar_from_text(raw, shape, key, code)
