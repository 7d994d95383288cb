"""botocore's service models as the single schema.

Input is validated with botocore's own :class:`~botocore.validate.ParamValidator` against the
operation's input shape; output is filtered through the output shape, so every field name that
leaves ecslocal is one the AWS model defines.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from functools import cache
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # botocore is imported when a model is first needed, not at start-up
    from botocore.model import ServiceModel, Shape


@cache
def service_model(name: str) -> ServiceModel:
    """botocore's model of ``name`` ("ecs", "logs", ...), as botocore's session loads it."""
    from botocore.loaders import create_loader
    from botocore.model import ServiceModel

    return ServiceModel(create_loader().load_service_model(name, "service-2"), service_name=name)


@cache
def shape(service: str, name: str) -> Shape:
    """The model's shape ``name``, one object per name: ``ServiceModel.shape_for`` builds a
    new one on every call, and with it every member shape botocore caches on it (resolving
    TaskDefinition's members again was a third of a RegisterTaskDefinition)."""
    return service_model(service).shape_for(name)


def validation_errors(value: dict[str, Any], model_shape: Shape) -> list[str]:
    """botocore's validation messages for ``value`` against ``model_shape`` (empty if valid)."""
    from botocore.validate import ParamValidator

    report = ParamValidator().validate(value, model_shape)
    if not report.has_errors():
        return []
    return report.generate_report().splitlines()


def strip_unknown(value: Any, model_shape: Shape) -> Any:
    """Drop members the shape does not define (as AWS servers ignore unknown JSON members).
    Structures, lists and maps come back as new containers; the walk is compiled once per
    shape."""
    return _stripper(model_shape)(value)


def _same(value: Any) -> Any:
    return value


#: Compiled strip_unknown walks by shape identity (the shape kept alongside, as below).
_STRIPPERS: dict[int, tuple[Shape, Callable[[Any], Any]]] = {}


def _stripper(model_shape: Shape) -> Callable[[Any], Any]:
    cached = _STRIPPERS.get(id(model_shape))
    if cached is not None:
        return cached[1]
    kind = model_shape.type_name
    strip: Callable[[Any], Any] = _same
    if kind == "structure":
        members: dict[str, Callable[[Any], Any]] = {}

        def structure(value: Any) -> Any:
            if not isinstance(value, dict):
                return value
            return {k: members[k](v) for k, v in value.items() if k in members}

        # registered before the members compile, so recursive shapes terminate
        _STRIPPERS[id(model_shape)] = (model_shape, structure)
        members.update((k, _stripper(m)) for k, m in model_shape.members.items())
        return structure
    if kind == "list":
        item = _stripper(model_shape.member)
        if item is _same:
            strip = lambda value: list(value) if isinstance(value, list) else value  # noqa: E731
        else:
            strip = lambda value: [item(v) for v in value] if isinstance(value, list) else value  # noqa: E731
    elif kind == "map":
        inner = _stripper(model_shape.value)
        strip = lambda value: (  # noqa: E731
            {k: inner(v) for k, v in value.items()} if isinstance(value, dict) else value
        )
    _STRIPPERS[id(model_shape)] = (model_shape, strip)
    return strip


Serializer = Callable[[Any], Any]

#: Compiled serializers by shape identity (botocore caches shape objects per model, and the
#: shape is kept alongside so its id is never reused). ``None`` means "pass through".
_SERIALIZERS: dict[int, tuple[Shape, Serializer | None]] = {}


def _timestamp(value: Any) -> float:
    return value.timestamp() if isinstance(value, datetime) else float(value)


def _compile(model_shape: Shape) -> Serializer | None:
    cached = _SERIALIZERS.get(id(model_shape))
    if cached is not None:
        return cached[1]
    if model_shape.type_name == "structure":
        members: dict[str, Serializer | None] = {}
        #: The member names, when every member passes through (no member to serialize: the
        #: structure is only filtered, in one comprehension).
        plain: frozenset[str] | None = None

        def structure(value: Any) -> Any:
            if plain is not None:
                return {k: v for k, v in value.items() if v is not None and k in plain}
            out: dict[str, Any] = {}
            for key, v in value.items():
                if v is None or key not in members:
                    continue
                member = members[key]
                out[key] = v if member is None else member(v)
            return out

        # registered before the members compile, so recursive shapes terminate
        _SERIALIZERS[id(model_shape)] = (model_shape, structure)
        members.update((k, _compile(m)) for k, m in model_shape.members.items())
        if all(m is None for m in members.values()):
            plain = frozenset(members)
        return structure
    serializer: Serializer | None = None
    if model_shape.type_name == "list":
        item = _compile(model_shape.member)
        if item is not None:
            serializer = lambda value: [item(v) for v in value]  # noqa: E731
    elif model_shape.type_name == "map":
        inner = _compile(model_shape.value)
        if inner is not None:
            serializer = lambda value: {k: inner(v) for k, v in value.items()}  # noqa: E731
    elif model_shape.type_name == "timestamp":
        serializer = _timestamp
    _SERIALIZERS[id(model_shape)] = (model_shape, serializer)
    return serializer


def to_wire(value: Any, model_shape: Shape) -> Any:
    """Serialize ``value`` as AWS JSON for ``model_shape``: known members only, no nulls,
    timestamps as epoch seconds. The walk over the shape is compiled once per shape."""
    if value is None:
        return None
    serializer = _compile(model_shape)
    return value if serializer is None else serializer(value)
