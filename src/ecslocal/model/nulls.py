"""JSON ``null`` in a request, read the way the AWS JSON protocols read it.

Smithy's awsJson1_0/awsJson1_1 protocol tests (smithy-lang/smithy,
smithy-aws-protocol-tests/model/awsJson1_1/null.smithy, test
``AwsJson11ServersDontDeserializeNullStructureValues``): a server reads ``{"string": null}``
as ``{}`` — a null structure member is the member left out. Lists and maps are *dense* unless
the model marks them ``@sparse`` (https://smithy.io/2.0/spec/type-refinement-traits.html
#sparse-trait), and Smithy's server SDKs reject a null inside a dense collection
(aws/aws-sdk-js-v3#2771 "reject null in non-sparse collections"): those nulls are kept here so
that validation (:mod:`ecslocal.model.validate`) reports them as ``Member must not be null``.
No model ecslocal serves (ECS, Logs, STS, IAM, ECR) has a sparse collection.

The walk is compiled once per shape and edits the freshly decoded request in place; subtrees
with no structure inside are not visited.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from botocore.model import Shape

Dropper = Callable[[Any], None]

#: Compiled walks by shape identity (the shape kept alongside so its id is never reused);
#: ``None``: the shape holds no structure, nothing to drop.
_DROPPERS: dict[int, tuple[Shape, Dropper | None]] = {}


def drop_null_members(value: Any, shape: Shape | None) -> Any:
    """``value`` with every null structure member removed (in place), at any depth."""
    if shape is not None:
        dropper = _compiled(shape)
        if dropper is not None:
            dropper(value)
    return value


def _compiled(shape: Shape) -> Dropper | None:
    cached = _DROPPERS.get(id(shape))
    if cached is not None:
        return cached[1]
    kind = shape.type_name
    if kind == "structure":
        members: dict[str, Dropper | None] = {}

        def structure(value: Any) -> None:
            if not isinstance(value, dict):
                return  # a type error, reported by validation
            for key in [k for k, v in value.items() if v is None]:
                del value[key]
            for key, v in value.items():
                member = members.get(key)
                if member is not None:
                    member(v)

        # registered before the members compile, so recursive shapes terminate
        _DROPPERS[id(shape)] = (shape, structure)
        members.update((k, _compiled(m)) for k, m in shape.members.items())
        return structure
    dropper: Dropper | None = None
    if kind == "list":
        item = _compiled(shape.member)
        if item is not None:

            def items(value: Any) -> None:
                if isinstance(value, list):
                    for v in value:
                        if v is not None:
                            item(v)

            dropper = items
    elif kind == "map":
        inner = _compiled(shape.value)
        if inner is not None:

            def values(value: Any) -> None:
                if isinstance(value, dict):
                    for v in value.values():
                        if v is not None:
                            inner(v)

            dropper = values
    _DROPPERS[id(shape)] = (shape, dropper)
    return dropper
