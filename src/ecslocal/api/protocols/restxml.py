"""rest-xml (S3; CloudFront and Route 53 share it): REST routing, XML bodies.

A structured payload is the member's shape written as XML under its ``locationName`` (S3's
``CreateBucketConfiguration``, ``Tagging``); output bodies are rooted at the output shape's
name with timestamps in ISO 8601 (S3 writes milliseconds: ``2009-10-12T17:50:30.000Z``).
Errors are S3's ``<Error><Code>…</Code><Message>…</Message><RequestId>…`` (other rest-xml
services wrap that in ``<ErrorResponse>``; botocore's ``RestXMLParser`` reads both). S3 names
its request id ``x-amz-request-id``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any
from xml.sax.saxutils import escape

from ecslocal.api.protocols import xmlwire
from ecslocal.api.protocols.base import HttpResponse
from ecslocal.api.protocols.rest import RestProtocol
from ecslocal.errors import AwsError

if TYPE_CHECKING:
    from botocore.model import ServiceModel, Shape

_MALFORMED = "MalformedXML"
_MALFORMED_MESSAGE = (
    "The XML you provided was not well-formed or did not validate against our published schema"
)


class RestXmlProtocol(RestProtocol):
    name = "rest-xml"
    content_type = "application/xml"

    def base_headers(self, request_id: str) -> dict[str, str]:
        return {"x-amz-request-id": request_id, "x-amzn-RequestId": request_id}

    def decode_body(self, body: bytes, shape: Shape) -> Any:
        root = xmlwire.parse_document(body, _MALFORMED, _MALFORMED_MESSAGE)
        return xmlwire.read(root, shape, shape.name, _MALFORMED)

    def encode_body(self, value: Any, shape: Shape, root: str) -> bytes:
        parts = ['<?xml version="1.0" encoding="UTF-8"?>']
        xmlwire.write(value, shape, root, parts, millis=True)
        return "".join(parts).encode()

    def serialize_error(
        self, error: AwsError, request_id: str, model: ServiceModel | None = None
    ) -> HttpResponse:
        inner = (
            f"<Error><Code>{escape(error.code)}</Code><Message>{escape(error.message)}</Message>"
            f"<RequestId>{request_id}</RequestId></Error>"
        )
        if model is not None and model.service_name != "s3":
            kind = "Receiver" if error.status >= 500 else "Sender"
            inner = (
                f"<ErrorResponse><Error><Type>{kind}</Type><Code>{escape(error.code)}</Code>"
                f"<Message>{escape(error.message)}</Message></Error>"
                f"<RequestId>{request_id}</RequestId></ErrorResponse>"
            )
        headers = {**self.base_headers(request_id), "Content-Type": self.content_type}
        body = '<?xml version="1.0" encoding="UTF-8"?>' + inner
        return HttpResponse(error.status, headers, body.encode())
