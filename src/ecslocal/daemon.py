"""The daemon: store, backend, agent and API wired together behind one HTTP listener.

``Daemon.start()`` inside a running event loop serves in that loop (``ecslocal serve``);
:class:`ThreadedDaemon` runs one in a background thread (``ecslocal run`` when no daemon is up).
"""

from __future__ import annotations

import asyncio
import logging
import threading
from typing import Any

from aiohttp import web

from ecslocal.api import auth_routes
from ecslocal.api.ecs import EcsApi
from ecslocal.api.iam import IamApi
from ecslocal.api.local import LocalApi
from ecslocal.api.logs import LogsApi
from ecslocal.api.server import AwsRouter, build_app
from ecslocal.api.sts import StsApi
from ecslocal.auth.authenticator import Authenticator
from ecslocal.auth.keys import KeyStore
from ecslocal.auth.oidc import OidcIssuer
from ecslocal.auth.roles import RoleStore
from ecslocal.clock import Clock
from ecslocal.config import DEFAULT_ACCESS_KEY, Config
from ecslocal.endpoints.credentials import CredentialsManager
from ecslocal.endpoints.faults import Faults
from ecslocal.endpoints.faults import routes as fault_routes
from ecslocal.endpoints.imds import InstanceMetadata
from ecslocal.endpoints.metadata import MetadataEndpoint
from ecslocal.runtime.agent import Agent
from ecslocal.runtime.backends.process import ProcessBackend
from ecslocal.runtime.logs import LogRouter
from ecslocal.runtime.memory import MemoryControl
from ecslocal.runtime.retention import StoppedTaskRetention
from ecslocal.store import Store

log = logging.getLogger("ecslocal.daemon")


class Daemon:
    def __init__(self, config: Config, clock: Clock | None = None) -> None:
        self.config = config
        self.clock = clock or Clock()
        self.store: Store | None = None
        self.backend: ProcessBackend | None = None
        self.agent: Agent | None = None
        self.runner: web.AppRunner | None = None
        self.address: tuple[str, int] | None = None
        self.recovered: list[str] = []
        self.keys: KeyStore | None = None
        self.roles: RoleStore | None = None
        self.retention: StoppedTaskRetention | None = None

    @property
    def url(self) -> str:
        """Where this machine's clients and the containers reach the daemon: a loopback literal
        when it listens on every address (botocore accepts only loopback literals or the
        ECS/EKS hosts in a plain-http AWS_CONTAINER_CREDENTIALS_FULL_URI)."""
        assert self.address is not None
        host = self.address[0]
        if host in ("0.0.0.0", "::", ""):
            host = "127.0.0.1"
        elif ":" in host:
            host = f"[{host}]"
        return f"http://{host}:{self.address[1]}"

    async def start(self) -> tuple[str, int]:
        config = self.config
        self.store = Store(config.db_path)
        memory = MemoryControl(config.memory_enforcement)
        self.backend = ProcessBackend(memory, self.clock)
        logs = LogRouter(self.store, self.clock)
        self.agent = Agent(config, self.store, self.backend, self.clock, logs)
        self.recovered = self.agent.recover()
        self.keys = KeyStore(self.store.db)
        now = self.clock.time()
        for key_id, secret in [DEFAULT_ACCESS_KEY, *config.access_keys]:
            self.keys.add_long_term(key_id, secret, config.account_id, now)
        authenticator = Authenticator(
            self.keys, self.clock, config.region, warped_clocks=self.agent.timewarps.clocks
        )
        self.roles = RoleStore(self.store.db, self.keys, config.account_id)
        self.faults = Faults(self.clock)
        self.credentials = CredentialsManager(
            self.store.db,
            self.roles,
            self.clock,
            default_ttl=config.credential_ttl,
            limits=self.agent.rate_limits,
            faults=self.faults,
        )
        self.agent.credentials = self.credentials
        ecs = EcsApi(config, self.store, self.agent, self.clock, self.roles)
        local = LocalApi(self.store, self.agent, logs, self.backend.describe())
        logs_api = LogsApi(config, self.store, self.clock)
        oidc = OidcIssuer(config.data_dir / "oidc-signing-key.pem")
        sts = StsApi(config, self.roles, oidc, self.clock)
        iam = IamApi(self.roles, self.clock)
        services = [ecs.service(), logs_api.service(), sts.service(), iam.service()]
        router = AwsRouter(services, authenticator, self.faults)
        extra = [
            *self.credentials.routes(),
            *MetadataEndpoint(self.agent, self.faults).routes(),
            *fault_routes(self.faults, self.credentials.expire_now),
            *InstanceMetadata(
                self.roles,
                self.clock,
                config.region,
                instance_seed=str(config.data_dir),
                instance_role_arn=config.instance_role_arn,
                allow_v1=config.imds_v1,
                faults=self.faults,
            ).routes(),
            *local.routes(),
            *auth_routes.routes(oidc, self.keys, config.account_id, self.clock),
        ]
        app = build_app(router, extra)
        store = self.store

        async def flush_before_answering(request: web.Request, response: Any) -> None:
            # Task rows are written once per event-loop turn; none is answered before its
            # rows are on disk (a StopTask's reason survives a crash right after the answer).
            store.flush_tasks()

        app.on_response_prepare.append(flush_before_answering)
        self.runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await self.runner.setup()
        site = web.TCPSite(self.runner, config.host, config.port, reuse_address=True)
        await site.start()
        server = site._server
        assert server is not None and server.sockets  # type: ignore[attr-defined]
        sock = server.sockets[0].getsockname()  # type: ignore[attr-defined]
        self.address = (sock[0], sock[1])
        self.agent.endpoint_url = self.url
        self.retention = StoppedTaskRetention(
            self.store, self.clock, config.stopped_task_retention, self.agent.tasks.__contains__
        )
        self.retention.start()
        return self.address

    async def stop(self) -> None:
        if self.retention is not None:
            await self.retention.stop()
        if self.agent is not None:
            await self.agent.shutdown()
        if self.runner is not None:
            await self.runner.cleanup()
        if self.backend is not None:
            await self.backend.close()
        if self.store is not None:
            self.store.close()


class ThreadedDaemon:
    """A daemon on its own event loop in a background thread."""

    def __init__(self, config: Config) -> None:
        self.daemon = Daemon(config)
        self.loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._main, name="ecslocal-daemon", daemon=True)

    def _main(self) -> None:
        asyncio.set_event_loop(self.loop)
        try:
            self.loop.run_until_complete(self.daemon.start())
        except BaseException as exc:  # report to the starting thread
            self._error = exc
            self._ready.set()
            return
        self._ready.set()
        self.loop.run_forever()

    def start(self) -> str:
        self._thread.start()
        self._ready.wait()
        if self._error is not None:
            raise self._error
        return self.daemon.url

    def stop(self) -> None:
        future = asyncio.run_coroutine_threadsafe(self.daemon.stop(), self.loop)
        future.result(timeout=60)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout=10)
