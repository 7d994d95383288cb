"""A local OpenID Connect issuer: mints RS256 JWTs that ``sts:AssumeRoleWithWebIdentity``
accepts, the way EKS service-account tokens or a CI provider's tokens are accepted in AWS.

The issuer is ``https://oidc.ecslocal.localhost`` (``.localhost`` is reserved, RFC 6761) and is
registered implicitly as the IAM OIDC provider
``arn:<partition>:iam::<account>:oidc-provider/oidc.ecslocal.localhost`` (the partition of the
region served: ``aws-cn`` in cn-north-1), so a role trusts it with
``"Principal": {"Federated": "<that ARN>"}`` and conditions on ``oidc.ecslocal.localhost:sub`` /
``:aud``. The signing key (RSA 2048) is made on first use and kept in the data directory; the
daemon serves the discovery document and JWKS under ``/_ecslocal/v1/oidc/``.
"""

from __future__ import annotations

import base64
import json
import os
import secrets
from pathlib import Path
from typing import Any

from ecslocal import arns

ISSUER = "https://oidc.ecslocal.localhost"
PROVIDER = ISSUER.removeprefix("https://")


class InvalidToken(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class OidcIssuer:
    def __init__(self, key_path: Path, region: str = "us-east-1") -> None:
        self.key_path = key_path
        self.region = region
        self._key: Any = None

    def provider_arn(self, account_id: str) -> str:
        return arns.global_arn("iam", self.region, account_id, f"oidc-provider/{PROVIDER}")

    @property
    def key(self) -> Any:
        if self._key is None:
            from cryptography.hazmat.primitives import serialization
            from cryptography.hazmat.primitives.asymmetric import rsa

            if self.key_path.exists():
                self._key = serialization.load_pem_private_key(
                    self.key_path.read_bytes(), password=None
                )
            else:
                self._key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
                pem = self._key.private_bytes(
                    serialization.Encoding.PEM,
                    serialization.PrivateFormat.PKCS8,
                    serialization.NoEncryption(),
                )
                fd = os.open(self.key_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
                with os.fdopen(fd, "wb") as f:
                    f.write(pem)
        return self._key

    @property
    def kid(self) -> str:
        n = self.key.public_key().public_numbers().n
        return _b64(n.to_bytes(256, "big")[:12])

    def jwks(self) -> dict[str, Any]:
        numbers = self.key.public_key().public_numbers()
        return {
            "keys": [
                {
                    "kty": "RSA",
                    "alg": "RS256",
                    "use": "sig",
                    "kid": self.kid,
                    "n": _b64(numbers.n.to_bytes((numbers.n.bit_length() + 7) // 8, "big")),
                    "e": _b64(numbers.e.to_bytes(3, "big")),
                }
            ]
        }

    def discovery(self, jwks_uri: str) -> dict[str, Any]:
        return {
            "issuer": ISSUER,
            "jwks_uri": jwks_uri,
            "response_types_supported": ["id_token"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "claims_supported": ["sub", "aud", "exp", "iat", "iss"],
        }

    def mint(
        self,
        subject: str,
        audience: str,
        now: float,
        ttl: int = 3600,
        claims: dict[str, Any] | None = None,
    ) -> str:
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import padding

        header = {"alg": "RS256", "typ": "JWT", "kid": self.kid}
        payload = {
            **(claims or {}),
            "iss": ISSUER,
            "sub": subject,
            "aud": audience,
            "iat": int(now),
            "nbf": int(now),
            "exp": int(now) + ttl,
            "jti": secrets.token_hex(8),
        }
        signing_input = (
            _b64(json.dumps(header, separators=(",", ":")).encode())
            + "."
            + _b64(json.dumps(payload, separators=(",", ":")).encode())
        )
        signature = self.key.sign(signing_input.encode(), padding.PKCS1v15(), hashes.SHA256())
        return signing_input + "." + _b64(signature)

    def verify(self, token: str, now: float) -> dict[str, Any]:
        """The token's claims; raises :class:`InvalidToken` with STS's code and wording."""
        from cryptography.exceptions import InvalidSignature
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import padding

        try:
            head_b64, body_b64, sig_b64 = token.split(".")
            header = json.loads(_unb64(head_b64))
            claims = json.loads(_unb64(body_b64))
            signature = _unb64(sig_b64)
        except ValueError:
            raise InvalidToken(
                "InvalidIdentityToken", "Couldn't parse the web identity token."
            ) from None
        if not isinstance(header, dict) or not isinstance(claims, dict):
            raise InvalidToken("InvalidIdentityToken", "Couldn't parse the web identity token.")
        if claims.get("iss") != ISSUER:
            raise InvalidToken(
                "InvalidIdentityToken",
                f"No OpenIDConnect provider found in your account for {claims.get('iss')}",
            )
        if header.get("alg") != "RS256":
            raise InvalidToken("InvalidIdentityToken", "Unsupported signing algorithm.")
        try:
            self.key.public_key().verify(
                signature, f"{head_b64}.{body_b64}".encode(), padding.PKCS1v15(), hashes.SHA256()
            )
        except InvalidSignature:
            raise InvalidToken(
                "InvalidIdentityToken",
                "The web identity token signature could not be verified.",
            ) from None
        exp = claims.get("exp")
        if not isinstance(exp, (int, float)) or exp <= now:
            raise InvalidToken(
                "ExpiredTokenException",
                f"Token expired: current date/time {int(now)} must be before the expiration"
                f" date/time{exp}",
            )
        return claims
