"""One AWS service: its botocore model, its operation handlers and its error vocabulary.

A :class:`Service` knows nothing about HTTP or wire formats. A protocol (AWS JSON, query,
rest-json, rest-xml: :mod:`ecslocal.api.protocols`) turns a request into ``(operation,
params)``, and the service validates the params against the model and calls the handler with
the authenticated :class:`Caller`. Models load on first use, so an idle daemon holds only the
models of the services it has been asked about.
"""

from __future__ import annotations

import gc
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ecslocal.auth.caller import Caller
from ecslocal.auth.sigv4 import Failure
from ecslocal.errors import AwsError
from ecslocal.model.shapes import service_model, to_wire
from ecslocal.model.validate import validate

Handler = Callable[[dict[str, Any], Caller], Awaitable[dict[str, Any]] | dict[str, Any]]

if TYPE_CHECKING:
    from botocore.model import OperationModel, ServiceModel, Shape


@dataclass(frozen=True)
class AuthErrorCodes:
    """How a protocol family names SigV4 failures: ``(code, status)`` per
    :class:`~ecslocal.auth.sigv4.Failure` (a field per member, so the mapping is total)."""

    unrecognized_client: tuple[str, int]
    bad_signature: tuple[str, int]
    expired_token: tuple[str, int]
    missing_token: tuple[str, int]
    incomplete_signature: tuple[str, int]
    #: The message of a request with neither an Authorization header nor a presigned query.
    missing_message: str = "Missing Authentication Token"

    def of(self, kind: Failure) -> tuple[str, int]:
        code: tuple[str, int] = getattr(self, kind.value)
        return code


JSON_AUTH_ERRORS = AuthErrorCodes(
    unrecognized_client=("UnrecognizedClientException", 400),
    bad_signature=("InvalidSignatureException", 400),
    expired_token=("ExpiredTokenException", 400),
    missing_token=("MissingAuthenticationTokenException", 400),
    incomplete_signature=("IncompleteSignatureException", 400),
)

QUERY_AUTH_ERRORS = AuthErrorCodes(
    unrecognized_client=("InvalidClientTokenId", 403),
    bad_signature=("SignatureDoesNotMatch", 403),
    expired_token=("ExpiredToken", 403),
    missing_token=("MissingAuthenticationToken", 403),
    incomplete_signature=("IncompleteSignature", 400),
    missing_message="Request is missing Authentication Token",
)

#: Lambda's front end answers SigV4 failures with 403 and the JSON services' codes.
REST_JSON_AUTH_ERRORS = AuthErrorCodes(
    unrecognized_client=("UnrecognizedClientException", 403),
    bad_signature=("InvalidSignatureException", 403),
    expired_token=("ExpiredTokenException", 403),
    missing_token=("MissingAuthenticationTokenException", 403),
    incomplete_signature=("IncompleteSignatureException", 403),
)

#: S3's codes (https://docs.aws.amazon.com/AmazonS3/latest/API/ErrorResponses.html).
REST_XML_AUTH_ERRORS = AuthErrorCodes(
    unrecognized_client=("InvalidAccessKeyId", 403),
    bad_signature=("SignatureDoesNotMatch", 403),
    expired_token=("ExpiredToken", 400),
    missing_token=("AccessDenied", 403),
    incomplete_signature=("AuthorizationHeaderMalformed", 400),
    missing_message="Access Denied",
)

_AUTH_ERRORS = {
    "json": JSON_AUTH_ERRORS,
    "query": QUERY_AUTH_ERRORS,
    "rest-json": REST_JSON_AUTH_ERRORS,
    "rest-xml": REST_XML_AUTH_ERRORS,
}

#: The largest body the gateway reads for a service unless it says otherwise (aiohttp's
#: ``client_max_size`` of ecslocal's app before this limit moved into the gateway).
DEFAULT_MAX_REQUEST_BYTES = 16 * 1024 * 1024


def _resolve(shape: Shape, seen: set[str]) -> None:
    """Walk ``shape`` so botocore resolves (and caches) every member shape."""
    if shape.name in seen:
        return
    seen.add(shape.name)
    if shape.type_name == "structure":
        for member in shape.members.values():
            _resolve(member, seen)
    elif shape.type_name == "list":
        _resolve(shape.member, seen)
    elif shape.type_name == "map":
        _resolve(shape.key, seen)
        _resolve(shape.value, seen)


@dataclass
class Service:
    #: botocore's name for the service ("ecs", "logs", "sts", "iam").
    name: str
    handlers: dict[str, Handler]
    #: SigV4 credential-scope name. Declared rather than read from the model so requests can
    #: be routed before the model is loaded; tests check both against botocore.
    signing_name: str
    #: ``X-Amz-Target`` prefix of AWS JSON services (None for query services).
    target_prefix: str | None = None
    #: Error code (and status) for a failed model constraint (length, range, enum, required).
    validation_error: tuple[str, int] = ("ValidationException", 400)
    #: Error code for a value of the wrong type.
    type_error: tuple[str, int] = ("SerializationException", 400)
    #: Operations AWS serves without a signature (e.g. sts:AssumeRoleWithWebIdentity).
    unsigned_operations: frozenset[str] = frozenset()
    #: A body longer than this is refused (413) before it is read.
    max_request_bytes: int = DEFAULT_MAX_REQUEST_BYTES
    _model: ServiceModel | None = field(default=None, repr=False)
    _async: dict[str, bool] = field(default_factory=dict, repr=False)

    @property
    def model(self) -> ServiceModel:
        if self._model is None:
            self._model = service_model(self.name)
            # A model is a large, permanent object graph that botocore builds lazily. Build
            # the parts the handlers use now, then move it all out of the garbage collector's
            # reach: collections stay short, and they show in the API's tail latency.
            for name in self.handlers:
                if name in self._model.operation_names:
                    op = self._model.operation_model(name)
                    for shape in (op.input_shape, op.output_shape):
                        if shape is not None:
                            to_wire({}, shape)
                            _resolve(shape, set())
            gc.collect()
            gc.freeze()
        return self._model

    @property
    def protocol(self) -> str:
        """botocore's protocol name; an AWS JSON service is known by its target prefix
        without loading its model."""
        if self.target_prefix:
            return "json"
        return str(self.model.metadata["protocol"])

    @property
    def auth_errors(self) -> AuthErrorCodes:
        return _AUTH_ERRORS[self.protocol]

    def operation(self, name: str) -> OperationModel | None:
        if name not in self.handlers or name not in self.model.operation_names:
            return None
        return self.model.operation_model(name)

    def check_input(self, op: OperationModel, params: dict[str, Any]) -> None:
        if op.input_shape is None:
            return
        report = validate(params, op.input_shape)
        if report.type_errors:
            code, status = self.type_error
            raise AwsError(code, report.type_errors[0], status)
        if report.constraint_errors:
            code, status = self.validation_error
            raise AwsError(code, report.message(), status)

    async def call(self, op: OperationModel, params: dict[str, Any], caller: Caller) -> Any:
        handler = self.handlers[op.name]
        result = handler(params, caller)
        is_async = self._async.get(op.name)
        if is_async is None:
            is_async = self._async[op.name] = hasattr(result, "__await__")
        if is_async:
            result = await result  # type: ignore[misc]
        return result
