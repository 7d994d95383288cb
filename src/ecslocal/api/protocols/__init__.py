"""The AWS wire protocols, one :class:`~ecslocal.api.protocols.base.WireProtocol` each, chosen
by the service model's ``metadata["protocol"]`` (as LocalStack ASF's ``create_parser`` does)."""

from __future__ import annotations

from ecslocal.api.protocols.base import HttpRequest, HttpResponse, WireProtocol
from ecslocal.api.protocols.json import JsonProtocol
from ecslocal.api.protocols.query import QueryProtocol
from ecslocal.api.protocols.restjson import RestJsonProtocol
from ecslocal.api.protocols.restxml import RestXmlProtocol

#: One instance per protocol: they hold no per-request state (rest ones cache the URI
#: templates of each service they have routed).
PROTOCOLS: dict[str, WireProtocol] = {
    p.name: p for p in (JsonProtocol(), QueryProtocol(), RestJsonProtocol(), RestXmlProtocol())
}


def by_name(protocol: str) -> WireProtocol:
    """The protocol botocore calls ``protocol``; KeyError for one ecslocal does not speak
    (``ec2``, ``smithy-rpc-v2-cbor``)."""
    return PROTOCOLS[protocol]


__all__ = ["PROTOCOLS", "HttpRequest", "HttpResponse", "WireProtocol", "by_name"]
