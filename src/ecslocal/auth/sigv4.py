"""AWS Signature Version 4, verified on the server side.

Both forms the SDKs send are accepted: the ``Authorization: AWS4-HMAC-SHA256 Credential=…,
SignedHeaders=…, Signature=…`` header and the presigned query string (``X-Amz-Algorithm``,
``X-Amz-Credential``, ``X-Amz-Date``, ``X-Amz-Expires``, ``X-Amz-SignedHeaders``,
``X-Amz-Signature``). The canonical request is rebuilt exactly as the signing guide describes
(https://docs.aws.amazon.com/IAM/latest/UserGuide/create-signed-request.html) for every service
but S3: the path is URI-encoded once more, query parameters are decoded, re-encoded and sorted,
header values trimmed with runs of spaces folded.

:func:`parse` reads what the request claims (key id, scope, token); the caller looks the key up
and :meth:`SignedRequest.verify` checks the signature with its secret.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from urllib.parse import quote, unquote

ALGORITHM = "AWS4-HMAC-SHA256"
#: How far the request's X-Amz-Date may be from the server's clock (AWS: 15 minutes).
MAX_SKEW_SECONDS = 15 * 60

_AUTH_PARAM = re.compile(r"(\w+)=([^,\s]*)")


class Failure(StrEnum):
    """The classes of SigV4 failure; each protocol family names them with its own codes
    (``api.service.AuthErrorCodes``). A ``StrEnum``, so ``kind == "missing_token"`` still holds."""

    MISSING_TOKEN = "missing_token"
    INCOMPLETE_SIGNATURE = "incomplete_signature"
    BAD_SIGNATURE = "bad_signature"
    UNRECOGNIZED_CLIENT = "unrecognized_client"
    EXPIRED_TOKEN = "expired_token"


class SigV4Error(Exception):
    """A failed check; ``kind`` names the class of failure, each protocol names the code."""

    def __init__(self, kind: Failure | str, message: str) -> None:
        super().__init__(message)
        self.kind = Failure(kind)
        self.message = message


@dataclass(slots=True)
class SignedRequest:
    access_key_id: str
    date: str  # YYYYMMDD of the scope
    region: str
    service: str
    amz_date: str  # YYYYMMDDTHHMMSSZ
    signed_headers: tuple[str, ...]
    signature: str
    session_token: str | None
    presigned: bool
    expires: int | None
    # what the canonical request is built from
    method: str
    raw_path: str
    query_pairs: tuple[tuple[str, str], ...]
    headers: Mapping[str, str]
    payload_hash: str

    @property
    def scope(self) -> str:
        return f"{self.date}/{self.region}/{self.service}/aws4_request"

    def canonical_request(self) -> str:
        # S3 signs the path as sent; every other service encodes it once more (the signing
        # guide's "each path segment must be URI-encoded twice (except for Amazon S3)").
        raw = self.raw_path or "/"
        path = raw if self.service == "s3" else _encoded_path(raw)
        query = (
            "&".join(
                f"{quote(k, safe='-_.~')}={quote(v, safe='-_.~')}"
                for k, v in sorted(self.query_pairs)
            )
            if self.query_pairs
            else ""
        )
        headers = self.headers
        # "Trim leading and trailing spaces, convert sequential spaces to a single space":
        # str.split() splits on the same Unicode whitespace as the ``\s`` of a str pattern.
        header_lines = "".join(
            [f"{name}:{' '.join(headers.get(name, '').split())}\n" for name in self.signed_headers]
        )
        return "\n".join(
            (
                self.method,
                path,
                query,
                header_lines,
                ";".join(self.signed_headers),
                self.payload_hash,
            )
        )

    def string_to_sign(self) -> str:
        digest = hashlib.sha256(self.canonical_request().encode()).hexdigest()
        return f"{ALGORITHM}\n{self.amz_date}\n{self.scope}\n{digest}"

    def verify(self, secret: str) -> None:
        """Raise :class:`SigV4Error` unless the signature is the one ``secret`` produces.

        Every request is verified afresh: the SDKs sign each request anew (a new date, a new
        ``amz-sdk-invocation-id``), so a memo of verified signatures never hits for them, and
        building its key cost as much as the HMAC it saved."""
        key = signing_key(secret, self.date, self.region, self.service)
        expected = hmac.digest(key, self.string_to_sign().encode(), "sha256").hex()
        if hmac.compare_digest(expected, self.signature):
            return
        raise SigV4Error(
            Failure.BAD_SIGNATURE,
            "The request signature we calculated does not match the signature you"
            " provided. Check your AWS Secret Access Key and signing method. Consult the"
            " service documentation for details.",
        )

    def check_time(self, now: float | None = None) -> None:
        """The request's date must be within 15 minutes of now (presigned: within Expires)."""
        now = time.time() if now is None else now
        try:
            signed_at = _parse_amz_date(self.amz_date)
        except ValueError:
            raise SigV4Error(
                Failure.INCOMPLETE_SIGNATURE,
                f"Date must be in ISO-8601 'basic format'. Got '{self.amz_date}'.",
            ) from None
        if self.presigned:
            if now > signed_at + (self.expires or 0):
                raise SigV4Error(
                    Failure.BAD_SIGNATURE,
                    f"Signature expired: {self.amz_date} is now earlier than"
                    f" {_fmt(now - (self.expires or 0))} ({_fmt(now)} - {self.expires} sec.)",
                )
            if signed_at > now + MAX_SKEW_SECONDS:
                raise SigV4Error(Failure.BAD_SIGNATURE, _not_yet(self.amz_date, now))
            return
        if signed_at < now - MAX_SKEW_SECONDS:
            raise SigV4Error(
                Failure.BAD_SIGNATURE,
                f"Signature expired: {self.amz_date} is now earlier than"
                f" {_fmt(now - MAX_SKEW_SECONDS)} ({_fmt(now)} - 15 min.)",
            )
        if signed_at > now + MAX_SKEW_SECONDS:
            raise SigV4Error(Failure.BAD_SIGNATURE, _not_yet(self.amz_date, now))


_DATES: dict[str, float] = {}


def _parse_amz_date(amz_date: str) -> float:
    """Seconds since the epoch of ``YYYYMMDDTHHMMSSZ`` (memoised: clients sign many requests
    within the same second)."""
    ts = _DATES.get(amz_date)
    if ts is None:
        ts = datetime.strptime(amz_date, "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC).timestamp()
        if len(_DATES) > 4096:
            _DATES.clear()
        _DATES[amz_date] = ts
    return ts


def _fmt(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y%m%dT%H%M%SZ")


def _not_yet(amz_date: str, now: float) -> str:
    return (
        f"Signature not yet current: {amz_date} is still later than"
        f" {_fmt(now + MAX_SKEW_SECONDS)} ({_fmt(now)} + 15 min.)"
    )


_KEY_CACHE: dict[tuple[str, str, str, str], bytes] = {}
_PATHS: dict[str, str] = {}


def _encoded_path(raw: str) -> str:
    """``raw`` URI-encoded once more (memoised: the JSON and query services all sign ``/``)."""
    path = _PATHS.get(raw)
    if path is None:
        path = quote(raw, safe="/~")
        if len(_PATHS) > 1024:
            _PATHS.clear()
        _PATHS[raw] = path
    return path


def signing_key(secret: str, date: str, region: str, service: str) -> bytes:
    cache_key = (secret, date, region, service)
    key = _KEY_CACHE.get(cache_key)
    if key is None:
        k = hmac.digest(f"AWS4{secret}".encode(), date.encode(), "sha256")
        for part in (region, service, "aws4_request"):
            k = hmac.digest(k, part.encode(), "sha256")
        if len(_KEY_CACHE) > 1024:
            _KEY_CACHE.clear()
        key = _KEY_CACHE[cache_key] = k
    return key


def parse_query_string(raw: str) -> list[tuple[str, str]]:
    pairs = []
    for part in raw.split("&"):
        if not part:
            continue
        k, _, v = part.partition("=")
        pairs.append((unquote(k.replace("+", "%20")), unquote(v.replace("+", "%20"))))
    return pairs


def credential_parts(headers: Mapping[str, str], query: Mapping[str, str]) -> list[str] | None:
    """The request's ``Credential``: [key id, date, region, service, "aws4_request"], if the
    request is signed (header or presigned query)."""
    auth = headers.get("authorization", "")
    credential = ""
    if auth.startswith(ALGORITHM):
        m = re.search(r"Credential=([^,\s]+)", auth)
        credential = m.group(1) if m else ""
    elif "X-Amz-Credential" in query:
        credential = query["X-Amz-Credential"]
    parts = credential.split("/")
    return parts if len(parts) == 5 else None


def parse(
    method: str,
    raw_path: str,
    raw_query: str,
    headers: Mapping[str, str],
    body: bytes,
) -> SignedRequest:
    """What a request claims about its signature; raises :class:`SigV4Error` if malformed.

    ``headers`` must look names up case-insensitively (aiohttp's ``CIMultiDictProxy``)."""
    return with_payload(parse_claims(method, raw_path, raw_query, headers), body)


def with_payload(claims: SignedRequest, body: bytes) -> SignedRequest:
    """``claims`` completed with the hash of the body they sign (the body is read only once
    the claims have passed the header-only checks, so an unsigned or unknown caller never
    makes the daemon buffer a large body)."""
    payload = hashlib.sha256(body).hexdigest()
    claimed = claims.headers.get("x-amz-content-sha256")
    if claimed is not None and claimed != "UNSIGNED-PAYLOAD" and claimed != payload:
        raise SigV4Error(
            Failure.BAD_SIGNATURE,
            "The provided 'x-amz-content-sha256' header does not match what was computed.",
        )
    claims.payload_hash = claimed or payload  # in place: replace() costs ~5 us a request
    return claims


def parse_claims(
    method: str,
    raw_path: str,
    raw_query: str,
    headers: Mapping[str, str],
) -> SignedRequest:
    """What the request line and headers claim about the signature, before the body is read
    (``payload_hash`` is empty until :func:`with_payload`)."""
    pairs = parse_query_string(raw_query)
    query = dict(pairs)
    auth = headers.get("authorization")
    if auth is not None:
        if not auth.startswith(ALGORITHM + " "):
            raise SigV4Error(
                Failure.INCOMPLETE_SIGNATURE,
                f"Authorization header requires existence of either a 'X-Amz-Date' or a 'Date'"
                f" header. Authorization={auth.split(' ', 1)[0]}"
                if not auth
                else f"Unsupported authorization type: {auth.split(' ', 1)[0]}",
            )
        fields = dict(_AUTH_PARAM.findall(auth[len(ALGORITHM) + 1 :]))
        missing = [f for f in ("Credential", "SignedHeaders", "Signature") if f not in fields]
        if missing:
            raise SigV4Error(
                Failure.INCOMPLETE_SIGNATURE,
                f"Authorization header requires '{missing[0]}' parameter. Authorization header"
                f" requires 'Signature' parameter. Authorization header requires existence of"
                f" either a 'X-Amz-Date' or a 'Date' header. Authorization={auth}",
            )
        credential = fields["Credential"]
        signed_headers = tuple(fields["SignedHeaders"].split(";"))
        signature = fields["Signature"]
        amz_date = headers.get("x-amz-date") or ""
        token = headers.get("x-amz-security-token")
        presigned = False
        expires = None
        if not amz_date:
            raise SigV4Error(
                Failure.INCOMPLETE_SIGNATURE,
                "Authorization header requires existence of either a 'X-Amz-Date' or a 'Date'"
                " header.",
            )
    elif query.get("X-Amz-Algorithm") == ALGORITHM:
        needed = ("X-Amz-Credential", "X-Amz-Date", "X-Amz-SignedHeaders", "X-Amz-Signature")
        missing = [f for f in needed if f not in query]
        if missing:
            raise SigV4Error(
                Failure.INCOMPLETE_SIGNATURE,
                f"AWS query-string parameters must include '{missing[0]}'. Re-examine the"
                " query-string parameters.",
            )
        credential = query["X-Amz-Credential"]
        signed_headers = tuple(query["X-Amz-SignedHeaders"].split(";"))
        signature = query["X-Amz-Signature"]
        amz_date = query["X-Amz-Date"]
        token = query.get("X-Amz-Security-Token")
        presigned = True
        try:
            expires = int(query.get("X-Amz-Expires", "900"))
        except ValueError:
            raise SigV4Error(
                Failure.INCOMPLETE_SIGNATURE, "X-Amz-Expires must be a number."
            ) from None
        pairs = [(k, v) for k, v in pairs if k != "X-Amz-Signature"]
    else:
        raise SigV4Error(Failure.MISSING_TOKEN, "")
    parts = credential.split("/")
    if len(parts) != 5 or parts[4] != "aws4_request":
        raise SigV4Error(
            Failure.INCOMPLETE_SIGNATURE,
            f"Credential should be scoped with a valid terminator: 'aws4_request', not"
            f" '{parts[-1]}'."
            if len(parts) == 5
            else f"Authorization header requires 'Credential' parameter. Credential={credential}",
        )
    return SignedRequest(
        access_key_id=parts[0],
        date=parts[1],
        region=parts[2],
        service=parts[3],
        amz_date=amz_date,
        signed_headers=signed_headers,
        signature=signature,
        session_token=token,
        presigned=presigned,
        expires=expires,
        method=method,
        raw_path=raw_path,
        query_pairs=tuple(pairs),
        headers=headers,
        payload_hash="",
    )
