"""The daemon: store, backend, agent and API wired together behind one HTTP app.

The app listens on the daemon's port (host clients: every AWS API, the local API, IMDS, and the
task endpoints too), on each task's own listeners for its credentials, metadata and STS
endpoints (:mod:`ecslocal.endpoints.tasks`) and on one IMDS listener for EC2-launch
containers, which ``refuse`` faults close.

``Daemon.start()`` inside a running event loop serves in that loop (``ecslocal serve``);
:class:`ThreadedDaemon` runs one in a background thread (``ecslocal run`` when no daemon is up).
"""

from __future__ import annotations

import asyncio
import fcntl
import ipaddress
import logging
import os
import sys
import threading

from aiohttp import web

from ecslocal.api import auth_routes
from ecslocal.api.ecs import EcsApi
from ecslocal.api.iam import IamApi
from ecslocal.api.local import LocalApi
from ecslocal.api.local_auth import FAILURES as local_failures
from ecslocal.api.local_auth import LocalAuth
from ecslocal.api.local_events import EventStream
from ecslocal.api.logs import LogsApi
from ecslocal.api.server import AwsRouter, build_app, serve_aws_first
from ecslocal.api.sts import StsApi
from ecslocal.auth.authenticator import Authenticator
from ecslocal.auth.keys import KeyStore
from ecslocal.auth.oidc import OidcIssuer
from ecslocal.auth.roles import RoleStore
from ecslocal.clock import Clock
from ecslocal.config import DEFAULT_ACCESS_KEY, Config
from ecslocal.ecr.api import EcrApi
from ecslocal.ecr.pulls import EcrImageSource
from ecslocal.ecr.pullthrough import RemoteImageSource
from ecslocal.ecr.store import ImageStore
from ecslocal.ecr.tokens import AuthTokens
from ecslocal.endpoints import failures as failed
from ecslocal.endpoints.app import TaskEndpointApps
from ecslocal.endpoints.credentials import CredentialsManager
from ecslocal.endpoints.credentials_handler import MOUNT as CREDENTIALS_MOUNT
from ecslocal.endpoints.credentials_handler import CredentialsEndpoint
from ecslocal.endpoints.faults import Faults
from ecslocal.endpoints.faults import routes as fault_routes
from ecslocal.endpoints.imds import InstanceMetadata
from ecslocal.endpoints.listeners import Listeners, url_host
from ecslocal.endpoints.metadata import MetadataEndpoint
from ecslocal.endpoints.ratelimit import TaskRateLimits
from ecslocal.endpoints.tasks import TaskEndpoints
from ecslocal.registry.blobs import BlobStore
from ecslocal.registry.routes import Registry
from ecslocal.runtime.agent import Agent
from ecslocal.runtime.backends.process import ProcessBackend
from ecslocal.runtime.backends.spool import Spool
from ecslocal.runtime.images import ImageSources
from ecslocal.runtime.logs import LogRouter
from ecslocal.runtime.memory import MemoryControl
from ecslocal.runtime.retention import StoppedTaskRetention
from ecslocal.storage.db import StorageError
from ecslocal.store import Store

log = logging.getLogger("ecslocal.daemon")


class CannotListen(Exception):
    """The daemon's port could not be bound (the message is the one line ``serve`` prints)."""


def why_not_started(exc: BaseException) -> str | None:
    """The one line a daemon that could not start says (``serve``, and ``run``'s in-process
    daemon), or None for a failure nobody foresaw (its traceback is the report then)."""
    if isinstance(exc, StorageError):  # a full disk, a read-only or corrupt state.db
        return exc.message
    if isinstance(exc, CannotListen):
        return str(exc)
    if isinstance(exc, OSError):  # the spool, the OIDC key, the reaper: not the port
        where = f": {exc.filename}" if exc.filename else ""
        return f"cannot start: {exc.strerror or exc}{where}"
    return None


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
        self.spool: Spool | None = None
        self.logs: LogRouter | None = None
        self.task_endpoints: TaskEndpoints | None = None
        #: ECR: the registry's blobs, the repositories/images/tags, the registry tokens.
        self.blobs: BlobStore | None = None
        self.ecr_images: ImageStore | None = None
        self.ecr_tokens: AuthTokens | None = None
        self.registry: Registry | None = None
        self._lock_fd: int | None = None

    @property
    def url(self) -> str:
        """Where this machine's clients and the containers reach the daemon: a loopback literal
        when it listens on every address (botocore accepts only loopback literals or the
        ECS/EKS hosts in a plain-http AWS_CONTAINER_CREDENTIALS_FULL_URI)."""
        assert self.address is not None
        return f"http://{url_host(self.address[0])}:{self.address[1]}"

    async def start(self) -> tuple[str, int]:
        config = self.config
        self.store = Store(config.db_path)
        self._lock_data_dir()  # before recovery: it kills what the store says is leftover
        memory = MemoryControl(config.memory_enforcement)
        logs = self.logs = LogRouter(self.store, self.clock)
        self.spool = Spool(config.data_dir / "spool", logs, self.clock)
        self.backend = ProcessBackend(memory, self.clock, spool=self.spool)
        self.backend.on_record = self._store_record
        self.agent = Agent(config, self.store, self.backend, self.clock, logs)
        self.recovered = self.agent.recover()
        # Only now: the previous daemon's containers are gone, their spools are final.
        recovered_lines = self.spool.recover(self.store)
        if recovered_lines:
            log.info("stored %d log line(s) a previous run had not", recovered_lines)
        self.keys = KeyStore(self.store.db)
        now = self.clock.time()
        long_term = config.long_term_keys()
        self.keys.drop_long_term_except({key_id for key_id, _ in long_term})
        for key_id, secret in long_term:
            self.keys.add_long_term(key_id, secret, config.account_id, now, config.region)
        authenticator = Authenticator(
            self.keys, self.clock, config.region, warped_clocks=self.agent.timewarps.clocks
        )
        self.roles = RoleStore(self.store.db, self.keys, config.account_id, config.region)
        self.faults = Faults(self.clock)
        self.credentials = CredentialsManager(
            self.store.db, self.roles, self.clock, default_ttl=config.credential_ttl
        )
        # One request budget per task for all its endpoints (credentials, metadata, agent API).
        limits = TaskRateLimits(self.clock, enabled=config.credentials_rate_limit)
        listeners = Listeners(self.faults, self.clock, config.host)
        self.task_endpoints = TaskEndpoints(self.credentials, limits, listeners)
        self.agent.endpoints = self.task_endpoints
        ecs = EcsApi(config, self.store, self.agent, self.clock, self.roles)
        local = LocalApi(self.store, self.agent, logs, self.backend.describe())
        logs_api = LogsApi(config, self.store, self.clock)
        oidc = OidcIssuer(config.data_dir / "oidc-signing-key.pem", config.region)
        sts = StsApi(config, self.roles, oidc, self.clock)
        iam = IamApi(self.roles, self.clock)
        self.blobs = BlobStore(config.data_dir / "registry")
        self.ecr_images = ImageStore(self.store.db, self.blobs, now=self.clock.time)
        self.ecr_tokens = AuthTokens(self.store.db, self.clock)
        ecr = EcrApi(config, self.ecr_images, self.ecr_tokens, self.blobs)
        if config.local_ecr:  # ECR image URIs run from this daemon's repositories (docs/ecr.md)
            # Then other registries' images, from the pull-through cache only: the process
            # backend needs no image filesystem, so an uncached one is not fetched
            # (ecr/pullthrough.py; the runc backend will set pull_missing).
            self.agent.images = ImageSources(
                EcrImageSource(self.ecr_images, self._registry_hosts),
                RemoteImageSource(self.ecr_images),
            )
        services = [
            ecs.service(),
            logs_api.service(),
            sts.service(),
            iam.service(),
            ecr.service(),
        ]
        router = AwsRouter(services, authenticator, self.faults, config.body_timeout)
        # ecslocal's own API takes signatures of the account's long-term keys only.
        local_auth = LocalAuth(authenticator, config.body_timeout)
        # The OCI registry (/v2/...): before the container-facing /v2/credentials sub-app.
        self.registry = Registry(
            self.ecr_images, self.ecr_tokens, self.blobs, body_timeout=config.body_timeout
        )
        ecr.deleted = self.registry.collect_soon  # BatchDeleteImage, DeleteRepository
        extra = [
            *self.registry.routes(),
            *local_auth.protect(fault_routes(self.faults, self.credentials.expire_now)),
            *local_auth.protect(local.routes()),
            *local_auth.protect(EventStream(self.agent.events, self.agent).routes()),
            *local_auth.protect(auth_routes.routes(oidc, self.keys, config.account_id, self.clock)),
            local_auth.fallback(),  # last: any other /_ecslocal/v1 path
        ]
        # The container-facing endpoints: sub-apps behind one fault and rate-limit pipeline.
        endpoints = TaskEndpointApps(self.faults, limits)
        credentials = CredentialsEndpoint(self.credentials)
        endpoints.mount(
            CREDENTIALS_MOUNT, credentials.resolve, credentials.routes(), failed.credentials
        )
        metadata = MetadataEndpoint(self.agent.view())
        endpoints.mount("/v3", metadata.resolve, metadata.routes(), failed.metadata)
        endpoints.mount("/v4", metadata.resolve, metadata.routes(), failed.metadata)
        endpoints.mount(
            "/api", metadata.resolve_agent_api, metadata.agent_api_routes(), failed.task_protection
        )
        imds = InstanceMetadata(
            self.roles,
            self.clock,
            config.region,
            instance_seed=str(config.data_dir),
            instance_role_arn=config.instance_role_arn,
            allow_v1=config.imds_v1,
        )
        endpoints.mount("/latest", imds.resolve, imds.routes(), failed.imds)
        app = build_app(router, extra, endpoints.add_to, [local_failures])
        # keepalive_timeout doubles as the header timeout (ecslocal.api.server)
        self.runner = web.AppRunner(
            app, access_log=None, handle_signals=False, keepalive_timeout=config.header_timeout
        )
        await self.runner.setup()
        assert self.runner.server is not None
        serve_aws_first(self.runner.server, router)
        listeners.serve(self.runner.server)
        # IMDS on a listener of its own too, so that a refuse fault refuses its connections.
        self.agent.imds_url = listeners.open_shared("imds").url
        site = web.TCPSite(self.runner, config.host, config.port, reuse_address=True)
        try:
            await site.start()
        except OSError as exc:
            where = f"{config.host}:{config.port}"
            raise CannotListen(f"cannot listen on {where}: {exc.strerror}") from None
        server = site._server
        assert server is not None and server.sockets  # type: ignore[attr-defined]
        bound = [s.getsockname() for s in server.sockets]  # type: ignore[attr-defined]
        self.address = (bound[0][0], bound[0][1])
        # repositoryUri and proxyEndpoint name <registry-host>:<port> (docs/ecr.md).
        self.ecr_images.registry = f"{config.registry_host}:{self.address[1]}"
        ecr.base_url = self.url
        if config.default_key and not all(_loopback(b[0]) for b in bound):
            print(_exposed_warning(bound[0][0], bound[0][1]), file=sys.stderr, flush=True)
        self.agent.endpoint_url = self.url
        self.retention = StoppedTaskRetention(
            self.store, self.clock, config.stopped_task_retention, self.agent.holds
        )
        self.retention.start()
        return self.address

    def _registry_hosts(self) -> tuple[str, ...]:
        """The ``host:port`` names of this daemon's registry in an image reference: the
        repositoryUri's host, and the loopback names the same port answers on."""
        if self.address is None:
            return ()
        port = self.address[1]
        hosts = (self.config.registry_host, "localhost", "127.0.0.1")
        return tuple(dict.fromkeys(f"{h}:{port}" for h in hosts))

    def _store_record(self, task_id: str, container: str, record: dict[str, object]) -> None:
        """A container's completed recovery record (its init's identity), into its task's row:
        a crash before the task's next version is stored must not leave recovery without it."""
        assert self.store is not None
        try:
            self.store.put_runtime_record(task_id, container, record)
        except StorageError:
            pass  # logged by the database; the task's next stored version carries it

    def _lock_data_dir(self) -> None:
        """One daemon per data directory. A second one would take the first one's running
        tasks for a crash's leftovers: mark them STOPPED, kill their containers, re-read their
        spools. The lock (flock, released by the kernel however the holder ends) says no."""
        path = self.config.data_dir / "daemon.lock"
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        except OSError as exc:
            raise StorageError(f"cannot create {path}: {exc.strerror}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip()
            os.close(fd)
            who = f" (pid {holder})" if holder.isdigit() else ""
            raise StorageError(
                f"another ecslocal daemon{who} is using the data directory"
                f" {self.config.data_dir}: stop it, or give this one a --data-dir of its own"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._lock_fd = fd

    async def stop(self) -> None:
        if self.registry is not None:
            await self.registry.close()
        if self.retention is not None:
            await self.retention.stop()
        if self.agent is not None:
            await self.agent.shutdown()
        if self.task_endpoints is not None:
            self.task_endpoints.close_all()
        if self.runner is not None:
            await self.runner.cleanup()
        if self.backend is not None:
            await self.backend.close()
        if self.spool is not None:
            self.spool.close()
        if self.logs is not None:
            self.logs.close()  # before the store: no retry timer outlives it
        if self.store is not None:
            self.store.close()
        if self._lock_fd is not None:
            os.close(self._lock_fd)  # releases the data directory
            self._lock_fd = None


def _loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host.split("%", 1)[0]).is_loopback
    except ValueError:
        return False


def _exposed_warning(host: str, port: int) -> str:
    key_id, secret = DEFAULT_ACCESS_KEY
    return (
        f"WARNING: ecslocal is listening on {host}:{port}, which is not a loopback address,"
        f" and it accepts the well-known access key {key_id}/{secret}: anyone who can reach"
        " this port can run processes on this machine as this user (RunTask), read every"
        " task's logs and secrets, and inject faults. Listen on 127.0.0.1, or start with"
        " --no-default-key and your own --access-key ID:SECRET."
    )


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
            try:
                self.loop.run_until_complete(self.daemon.start())
            except BaseException as exc:  # report to the starting thread
                self._error = exc
                # What started before the failure (the store, the data dir's lock) is released.
                try:
                    self.loop.run_until_complete(self.daemon.stop())
                except Exception:
                    log.exception("stopping a daemon that did not start failed")
                self._ready.set()
                return
            self._ready.set()
            self.loop.run_forever()
        finally:
            self._close_loop()

    def _close_loop(self) -> None:
        """Close the loop on its own thread once it has stopped, as ``asyncio.run`` does:
        what is left is cancelled, async generators and the default executor (the store's
        and the backend's worker threads) are shut down, then its selector and self-pipe
        are closed (a ``run`` that starts a daemon in-process left both open before)."""
        loop = self.loop
        try:
            left = [t for t in asyncio.all_tasks(loop) if not t.done()]
            for t in left:
                t.cancel()
            if left:
                loop.run_until_complete(asyncio.gather(*left, return_exceptions=True))
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.run_until_complete(loop.shutdown_default_executor())
        finally:
            asyncio.set_event_loop(None)
            loop.close()

    def start(self) -> str:
        self._thread.start()
        self._ready.wait()
        if self._error is not None:
            raise self._error
        return self.daemon.url

    def stop(self) -> None:
        if not self.loop.is_closed():
            future = asyncio.run_coroutine_threadsafe(self.daemon.stop(), self.loop)
            future.result(timeout=60)
            self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout=10)
