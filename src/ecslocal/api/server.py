"""One HTTP endpoint for every AWS API ecslocal serves, routed as a regional endpoint would be.

AWS JSON requests are ``POST /`` with ``X-Amz-Target: <targetPrefix>.<Operation>``; the prefix
picks the service. (Query-protocol and REST services route by the SigV4 credential scope and by
path; they plug in here.)
"""

from __future__ import annotations

import json

from aiohttp import web

from ecslocal.api.protocol import JsonService


def build_app(
    json_services: list[JsonService], extra_routes: list[web.RouteDef]
) -> web.Application:
    by_prefix = {s.target_prefix: s for s in json_services}

    async def root(request: web.Request) -> web.Response:
        target = request.headers.get("X-Amz-Target", "")
        prefix, _, operation = target.rpartition(".")
        service = by_prefix.get(prefix)
        if service is None:
            body = {"__type": "UnknownOperationException", "message": f"Unknown target: {target!r}"}
            return web.Response(
                status=400,
                body=json.dumps(body).encode(),
                headers={"Content-Type": "application/x-amz-json-1.1"},
            )
        return await service.dispatch(operation, await request.read())

    app = web.Application(client_max_size=16 * 1024 * 1024)
    app.add_routes([web.post("/", root), *extra_routes])
    return app
