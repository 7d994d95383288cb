"""ecslocal's own auth endpoints: the local OIDC issuer and access-key administration.

``POST /_ecslocal/v1/access-keys/{id}/expire`` ends an issued session key's life now (the next
request signed with it gets ExpiredToken) — for tests of credential expiry.

``GET /_ecslocal/v1/oidc/.well-known/openid-configuration``, ``GET /_ecslocal/v1/oidc/jwks``,
``POST /_ecslocal/v1/oidc/token`` with ``{"sub", "aud", "ttl"?, "claims"?}`` →
``{"token": "<JWT>", "issuer", "providerArn"}`` (``ecslocal oidc-token`` prints the token).
"""

from __future__ import annotations

import json

from aiohttp import web

from ecslocal.auth.keys import KeyStore
from ecslocal.auth.oidc import ISSUER, OidcIssuer
from ecslocal.clock import Clock

PREFIX = "/_ecslocal/v1/oidc"


def routes(issuer: OidcIssuer, keys: KeyStore, account_id: str, clock: Clock) -> list[web.RouteDef]:
    async def expire_key(request: web.Request) -> web.Response:
        key_id = request.match_info["key_id"]
        key = keys.get(key_id)
        if key is None or key.session_token is None:
            return web.json_response(
                {"message": f"no session key {key_id} (only issued session keys expire)"},
                status=404,
            )
        keys.expire(key_id, clock.time())
        return web.json_response({"accessKeyId": key_id, "expiration": clock.time()})

    async def discovery(request: web.Request) -> web.Response:
        jwks_uri = f"{request.scheme}://{request.host}{PREFIX}/jwks"
        return web.json_response(issuer.discovery(jwks_uri))

    async def jwks(request: web.Request) -> web.Response:
        return web.json_response(issuer.jwks())

    async def mint(request: web.Request) -> web.Response:
        try:
            body = json.loads(await request.read() or b"{}")
            sub, aud = str(body["sub"]), str(body.get("aud", "sts.amazonaws.com"))
            ttl = int(body.get("ttl", 3600))
            claims = body.get("claims") or {}
            if not isinstance(claims, dict) or not 1 <= ttl <= 7 * 86400:
                raise ValueError
        except (ValueError, KeyError, TypeError, OverflowError):  # JSON allows Infinity
            return web.json_response(
                {"message": "body must be JSON {sub, aud?, ttl? (1..604800), claims?}"},
                status=400,
            )
        token = issuer.mint(sub, aud, clock.time(), ttl, claims)
        return web.json_response(
            {"token": token, "issuer": ISSUER, "providerArn": issuer.provider_arn(account_id)}
        )

    return [
        web.post("/_ecslocal/v1/access-keys/{key_id}/expire", expire_key),
        web.get(f"{PREFIX}/.well-known/openid-configuration", discovery),
        web.get(f"{PREFIX}/jwks", jwks),
        web.post(f"{PREFIX}/token", mint),
    ]
