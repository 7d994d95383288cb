"""Shapes to XML and back, as the query and rest-xml protocols write them.

The conventions are botocore's (``QueryParser``/``RestXMLParser``, ``RestXMLSerializer``):
a list is ``<Tag><member>…</member></Tag>`` (the member's ``locationName`` if set), or the
items repeated as ``<Tag>`` when ``flattened``; a map is ``<entry><key>…</key><value>…`` (or
flattened); a member may be an ``xmlAttribute``; a shape may carry an ``xmlNamespace``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any
from xml.etree import ElementTree
from xml.sax.saxutils import escape, quoteattr

from ecslocal.api.protocols.values import format_timestamp, scalar_from_text, scalar_to_text
from ecslocal.errors import AwsError

if TYPE_CHECKING:
    from botocore.model import Shape


def _namespace_attr(shape: Shape) -> str:
    ns = shape.serialization.get("xmlNamespace")
    if isinstance(ns, dict):
        name = f"xmlns:{ns['prefix']}" if ns.get("prefix") else "xmlns"
        return f" {name}={quoteattr(ns['uri'])}"
    if isinstance(ns, str):
        return f" xmlns={quoteattr(ns)}"
    return ""


def write(value: Any, shape: Shape, tag: str, parts: list[str], millis: bool = False) -> None:
    """Append ``<tag>`` for ``value`` to ``parts`` (nothing for None)."""
    if value is None:
        return
    kind = shape.type_name
    if kind == "structure":
        attrs = _namespace_attr(shape)
        inner: list[str] = []
        for name, member in shape.members.items():
            if name not in value or value[name] is None:
                continue
            member_tag = member.serialization.get("name", name)
            if member.serialization.get("xmlAttribute"):
                text = scalar_to_text(value[name], member, "iso8601")
                attrs += f" {member_tag}={quoteattr(text)}"
            else:
                write(value[name], member, member_tag, inner, millis)
        parts.append(f"<{tag}{attrs}>")
        parts.extend(inner)
        parts.append(f"</{tag}>")
    elif kind == "list":
        if shape.serialization.get("flattened"):
            for item in value:
                write(item, shape.member, tag, parts, millis)
            return
        item_tag = shape.member.serialization.get("name", "member")
        parts.append(f"<{tag}>")
        for item in value:
            write(item, shape.member, item_tag, parts, millis)
        parts.append(f"</{tag}>")
    elif kind == "map":
        key_tag = shape.key.serialization.get("name", "key")
        value_tag = shape.value.serialization.get("name", "value")
        flat = shape.serialization.get("flattened")
        if not flat:
            parts.append(f"<{tag}>")
        for k, v in value.items():
            parts.append(f"<{tag}>" if flat else "<entry>")
            write(k, shape.key, key_tag, parts, millis)
            write(v, shape.value, value_tag, parts, millis)
            parts.append(f"</{tag}>" if flat else "</entry>")
        if not flat:
            parts.append(f"</{tag}>")
    else:
        if kind == "timestamp" and millis and "timestampFormat" not in shape.serialization:
            text = str(format_timestamp(value, "iso8601", millis=True))
        else:
            text = scalar_to_text(value, shape, "iso8601")
        parts.append(f"<{tag}{_namespace_attr(shape)}>{escape(text)}</{tag}>")


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def read(node: ElementTree.Element, shape: Shape, where: str, bad_code: str) -> Any:
    """The value of ``node`` for ``shape`` (the inverse of :func:`write`)."""
    kind = shape.type_name
    if kind == "structure":
        out: dict[str, Any] = {}
        children: dict[str, list[ElementTree.Element]] = {}
        for child in node:
            children.setdefault(_local(child.tag), []).append(child)
        for name, member in shape.members.items():
            member_tag = member.serialization.get("name", name)
            if member.serialization.get("xmlAttribute"):
                for attr, text in node.attrib.items():
                    if _local(attr) == member_tag.rsplit(":", 1)[-1]:
                        out[name] = scalar_from_text(text, member, name, bad_code)
                continue
            found = children.get(member_tag)
            if not found:
                continue
            if member.type_name in ("list", "map") and member.serialization.get("flattened"):
                out[name] = _read_flat(found, member, name, bad_code)
            else:
                out[name] = read(found[0], member, name, bad_code)
        return out
    if kind == "list":
        return [read(item, shape.member, where, bad_code) for item in node]
    if kind == "map":
        return _read_entries(list(node), shape, where, bad_code)
    return scalar_from_text(node.text or "", shape, where, bad_code)


def _read_entries(
    entries: list[ElementTree.Element], shape: Shape, where: str, bad_code: str
) -> dict[str, Any]:
    key_tag = shape.key.serialization.get("name", "key")
    value_tag = shape.value.serialization.get("name", "value")
    out: dict[str, Any] = {}
    for entry in entries:
        parts = {_local(child.tag): child for child in entry}
        if key_tag in parts:
            value = parts.get(value_tag)
            key = parts[key_tag].text or ""
            out[key] = None if value is None else read(value, shape.value, where, bad_code)
    return out


def _read_flat(found: list[ElementTree.Element], shape: Shape, where: str, bad_code: str) -> Any:
    if shape.type_name == "list":
        return [read(item, shape.member, where, bad_code) for item in found]
    return _read_entries(found, shape, where, bad_code)


def parse_document(body: bytes, bad_code: str, message: str) -> ElementTree.Element:
    """The root of an XML body (expat refuses entity-expansion bombs since 2.4.1)."""
    try:
        return ElementTree.fromstring(body)
    except ElementTree.ParseError:
        raise AwsError(bad_code, message) from None
