"""A Docker Hub-style token server on loopback, for docker-registry's ``auth: token`` mode: the
registry answers ``401 WWW-Authenticate: Bearer realm=…,service=…,scope=…``, the client GETs
the realm (Basic credentials, or anonymously for pulls) and retries with the JWT we sign here.

Token format: distribution docs/spec/auth/jwt.md (RS256, ``x5c`` chain verified against the
registry's ``rootcertbundle``; claims iss, sub, aud = service, exp, nbf, iat, jti, access[]).
Response: docs/spec/auth/token.md (``token``, ``access_token``, ``expires_in``, ``issued_at``).
"""

from __future__ import annotations

import base64
import datetime
import json
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import NameOID

SERVICE = "ecslocal-test-registry"
ISSUER = "ecslocal-test-token-server"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


@dataclass
class TokenServer:
    """Issues tokens for ``username``/``password`` (push and pull) and anonymous pull tokens
    when ``anonymous_pull``; records every request's scope and user."""

    username: str
    password: str
    anonymous_pull: bool = False
    requests: list[tuple[str | None, str]] = field(default_factory=list)
    key: Any = None
    cert: Any = None
    url: str = ""

    def __post_init__(self) -> None:
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, ISSUER)])
        now = datetime.datetime.now(datetime.UTC)
        self.cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(self.key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(self.key, hashes.SHA256())
        )

    def write_bundle(self, path: Path) -> Path:
        path.write_bytes(self.cert.public_bytes(serialization.Encoding.PEM))
        return path

    def token(self, subject: str, scopes: list[str]) -> str:
        access = []
        for scope in scopes:
            kind, _, rest = scope.partition(":")
            name, _, actions = rest.rpartition(":")
            allowed = [a for a in actions.split(",") if subject != "" or a == "pull"]
            access.append({"type": kind, "name": name, "actions": allowed})
        der = self.cert.public_bytes(serialization.Encoding.DER)
        header = {"alg": "RS256", "typ": "JWT", "x5c": [base64.b64encode(der).decode()]}
        now = int(time.time())
        claims = {
            "iss": ISSUER,
            "sub": subject,
            "aud": SERVICE,
            "exp": now + 300,
            "nbf": now - 10,
            "iat": now,
            "jti": uuid.uuid4().hex,
            "access": access,
        }
        signing_input = f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(claims).encode())}"
        signature = self.key.sign(signing_input.encode(), padding.PKCS1v15(), hashes.SHA256())
        return f"{signing_input}.{_b64(signature)}"

    def answer(self, authorization: str | None, query: dict[str, list[str]]) -> tuple[int, Any]:
        subject: str | None = None
        if authorization and authorization.startswith("Basic "):
            user, _, password = base64.b64decode(authorization[6:]).decode().partition(":")
            if (user, password) != (self.username, self.password):
                return 401, {"details": "incorrect username or password"}
            subject = user
        elif not self.anonymous_pull:
            return 401, {"details": "authentication required"}
        scopes = [s for value in query.get("scope", []) for s in value.split(" ") if s]
        self.requests.append((subject, " ".join(scopes)))
        if query.get("service") != [SERVICE]:
            return 400, {"details": "unknown service"}
        token = self.token(subject or "", scopes)
        return 200, {"token": token, "access_token": token, "expires_in": 300}


@contextmanager
def token_server(
    username: str, password: str, anonymous_pull: bool = False
) -> Iterator[TokenServer]:
    server = TokenServer(username, password, anonymous_pull)

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server's name
            parsed = urlparse(self.path)
            status, body = server.answer(self.headers.get("Authorization"), parse_qs(parsed.query))
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args: Any) -> None:
            pass

    http = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.url = f"http://127.0.0.1:{http.server_address[1]}/token"
    thread = threading.Thread(target=http.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        http.shutdown()
        http.server_close()
        thread.join(10)
