"""The AWS query protocol (STS, IAM; ELBv2 and SNS later).

Requests are form-encoded ``Action=…&Version=…`` plus members flattened by the input shape
(``Tags.member.1.Key=…``, maps as ``….entry.N.key``), in a POST body or a GET query string.
Results are XML: ``<{Action}Response xmlns=…><{Action}Result>…</{Action}Result>
<ResponseMetadata><RequestId>…`` with lists as ``<member>`` elements; errors are
``<ErrorResponse><Error><Type>Sender</Type><Code>…``. Both directions are driven by the botocore
model, as botocore's own ``QuerySerializer`` and ``QueryParser`` are.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from xml.sax.saxutils import escape

from aiohttp import web

from ecslocal.api.service import Service
from ecslocal.errors import AwsError

_CONTENT_TYPE = "text/xml"

if TYPE_CHECKING:
    from botocore.model import OperationModel, Shape, StructureShape



def parse_operation(
    service: Service, form: Mapping[str, str]
) -> tuple[OperationModel, dict[str, Any]]:
    action = form.get("Action")
    if not action:
        raise AwsError("MissingAction", "Missing Action")
    op = service.operation(action)
    if op is None:
        version = form.get("Version", service.model.api_version)
        raise AwsError("InvalidAction", f"Could not find operation {action} for version {version}")
    params: dict[str, Any] = {}
    if op.input_shape is not None:
        params = _parse_structure(form, op.input_shape, "")
    service.check_input(op, params)
    return op, params


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


def _parse(form: Mapping[str, str], shape: Shape, key: str) -> Any:
    if shape.type_name == "structure":
        return _parse_structure(form, shape, key + ".") if _has_prefix(form, key) else None
    if shape.type_name == "list":
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
    if shape.type_name == "map":
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
    raw = form.get(key)
    if raw is None:
        return None
    return _scalar(raw, shape, key)


def _scalar(raw: str, shape: Shape, key: str) -> Any:
    kind = shape.type_name
    try:
        if kind in ("integer", "long"):
            return int(raw)
        if kind in ("float", "double"):
            return float(raw)
        if kind == "boolean":
            if raw.lower() not in ("true", "false"):
                raise ValueError
            return raw.lower() == "true"
        if kind == "timestamp":
            try:
                return float(raw)
            except ValueError:
                return datetime.fromisoformat(raw.replace("Z", "+00:00")).timestamp()
        if kind == "blob":
            return base64.b64decode(raw, validate=True)
    except ValueError:
        raise AwsError(
            "MalformedQueryString" if kind != "boolean" else "ValidationError",
            f"Value '{raw}' for parameter {key} is invalid. It must be a valid {kind}.",
        ) from None
    return raw


# -- output --------------------------------------------------------------------------------
def _timestamp(value: Any) -> str:
    if isinstance(value, datetime):
        value = value.timestamp()
    return datetime.fromtimestamp(float(value), UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _xml(value: Any, shape: Shape, tag: str, parts: list[str]) -> None:
    if value is None:
        return
    if shape.type_name == "structure":
        parts.append(f"<{tag}>")
        for name, member in shape.members.items():
            if name in value:
                _xml(value[name], member, member.serialization.get("name", name), parts)
        parts.append(f"</{tag}>")
    elif shape.type_name == "list":
        item = shape.member.serialization.get("name", "member")
        if shape.serialization.get("flattened"):
            for v in value:
                _xml(v, shape.member, tag, parts)
            return
        parts.append(f"<{tag}>")
        for v in value:
            _xml(v, shape.member, item, parts)
        parts.append(f"</{tag}>")
    elif shape.type_name == "map":
        parts.append(f"<{tag}>")
        for k, v in value.items():
            parts.append("<entry>")
            _xml(k, shape.key, shape.key.serialization.get("name", "key"), parts)
            _xml(v, shape.value, shape.value.serialization.get("name", "value"), parts)
            parts.append("</entry>")
        parts.append(f"</{tag}>")
    else:
        kind = shape.type_name
        if kind == "timestamp":
            text = _timestamp(value)
        elif kind == "boolean":
            text = "true" if value else "false"
        elif kind == "blob":
            text = base64.b64encode(value if isinstance(value, bytes) else value.encode()).decode()
        else:
            text = escape(str(value))
        parts.append(f"<{tag}>{text}</{tag}>")


def _namespace(service: Service) -> str:
    return str(service.model.metadata.get("xmlNamespace", ""))


def result_response(
    service: Service, op: OperationModel, result: dict[str, Any], request_id: str
) -> web.Response:
    parts = [f'<{op.name}Response xmlns="{_namespace(service)}">']
    shape = op.output_shape
    if shape is not None:
        wrapper = shape.serialization.get("resultWrapper", f"{op.name}Result")
        _xml(result, shape, wrapper, parts)
    parts.append(
        f"<ResponseMetadata><RequestId>{request_id}</RequestId></ResponseMetadata>"
        f"</{op.name}Response>"
    )
    return web.Response(
        body="".join(parts).encode(),
        headers={"Content-Type": _CONTENT_TYPE, "x-amzn-RequestId": request_id},
    )


def error_response(error: AwsError, request_id: str, namespace: str = "") -> web.Response:
    kind = "Receiver" if error.status >= 500 else "Sender"
    body = (
        f'<ErrorResponse xmlns="{namespace}"><Error><Type>{kind}</Type>'
        f"<Code>{escape(error.code)}</Code><Message>{escape(error.message)}</Message>"
        f"</Error><RequestId>{request_id}</RequestId></ErrorResponse>"
    )
    return web.Response(
        status=error.status,
        body=body.encode(),
        headers={"Content-Type": _CONTENT_TYPE, "x-amzn-RequestId": request_id},
    )
