"""botocore's service models as the single schema.

Input is validated with botocore's own :class:`~botocore.validate.ParamValidator` against the
operation's input shape; output is filtered through the output shape, so every field name that
leaves ecslocal is one the AWS model defines.
"""

from __future__ import annotations

from datetime import datetime
from functools import cache
from typing import Any

import botocore.session
from botocore.model import ListShape, MapShape, ServiceModel, Shape, StructureShape
from botocore.validate import ParamValidator


@cache
def service_model(name: str) -> ServiceModel:
    return botocore.session.get_session().get_service_model(name)


def shape(service: str, name: str) -> Shape:
    return service_model(service).shape_for(name)


def validation_errors(value: dict[str, Any], model_shape: Shape) -> list[str]:
    """botocore's validation messages for ``value`` against ``model_shape`` (empty if valid)."""
    report = ParamValidator().validate(value, model_shape)
    if not report.has_errors():
        return []
    return report.generate_report().splitlines()


def strip_unknown(value: Any, model_shape: Shape) -> Any:
    """Drop members the shape does not define (as AWS servers ignore unknown JSON members)."""
    if isinstance(model_shape, StructureShape) and isinstance(value, dict):
        members = model_shape.members
        return {k: strip_unknown(v, members[k]) for k, v in value.items() if k in members}
    if isinstance(model_shape, ListShape) and isinstance(value, list):
        return [strip_unknown(v, model_shape.member) for v in value]
    if isinstance(model_shape, MapShape) and isinstance(value, dict):
        return {k: strip_unknown(v, model_shape.value) for k, v in value.items()}
    return value


def to_wire(value: Any, model_shape: Shape) -> Any:
    """Serialize ``value`` as AWS JSON for ``model_shape``: known members only, no nulls,
    timestamps as epoch seconds."""
    if value is None:
        return None
    if isinstance(model_shape, StructureShape):
        out: dict[str, Any] = {}
        for key, member in model_shape.members.items():
            if key in value and value[key] is not None:
                out[key] = to_wire(value[key], member)
        return out
    if isinstance(model_shape, ListShape):
        return [to_wire(v, model_shape.member) for v in value]
    if isinstance(model_shape, MapShape):
        return {k: to_wire(v, model_shape.value) for k, v in value.items()}
    if model_shape.type_name == "timestamp":
        if isinstance(value, datetime):
            return value.timestamp()
        return float(value)
    return value
