"""What every AWS wire protocol implements, and the plain request/response it works on.

A protocol turns an HTTP request into ``(operation, params)`` for one service, and a result or
an :class:`~ecslocal.errors.AwsError` back into an HTTP response, driven by the service's
botocore model — as botocore's own serializers and parsers are on the client side. It sees a
:class:`HttpRequest` (method, raw path, raw query, headers, body, host), not aiohttp's request,
so the round-trip tests can feed it what botocore itself put on the wire.

The protocol is picked by the model's ``metadata["protocol"]`` (:func:`ecslocal.api.protocols.
for_service`), the way LocalStack ASF's ``create_parser`` picks its parser class.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ecslocal.errors import AwsError

if TYPE_CHECKING:
    from botocore.model import OperationModel, ServiceModel

    from ecslocal.api.service import Service


@dataclass(frozen=True, slots=True)
class HttpRequest:
    method: str
    #: The path as sent (still percent-encoded), without the query string.
    path: str
    #: The query string as sent (still percent-encoded).
    query_string: str
    #: Looked up case-insensitively (aiohttp's ``CIMultiDictProxy``, ``multidict.CIMultiDict``).
    headers: Mapping[str, str]
    body: bytes = b""
    #: The ``Host`` header without the port, lower-cased.
    host: str = ""


@dataclass(slots=True)
class HttpResponse:
    status: int
    headers: dict[str, str]
    body: bytes = b""
    #: Set by a ``refuse`` fault: close the connection without an answer.
    abort: bool = field(default=False)


class WireProtocol(ABC):
    """One AWS protocol (``json``, ``query``, ``rest-json``, ``rest-xml``)."""

    #: botocore's name for the protocol (``metadata["protocol"]``).
    name: str = ""

    @abstractmethod
    def parse(
        self, request: HttpRequest, service: Service
    ) -> tuple[OperationModel, dict[str, Any]]:
        """The operation the request names and its params (not yet validated); raises
        :class:`AwsError` for an unknown operation or a body that does not decode."""

    @abstractmethod
    def serialize(self, result: Any, operation: OperationModel, request_id: str) -> HttpResponse:
        """The success response for ``result`` (a dict shaped by the output shape)."""

    @abstractmethod
    def serialize_error(
        self, error: AwsError, request_id: str, model: ServiceModel | None = None
    ) -> HttpResponse:
        """The error response; ``model`` is None when no service was routed to."""
