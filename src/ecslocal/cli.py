"""ecslocal's command line, in the docker-compose idiom.

Every command is a client of the daemon's AWS API (botocore's ECS client); ``run`` starts a
daemon in this process when none is listening.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
import sys
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import click

from ecslocal import __version__
from ecslocal.api.ecs_refs import DEFAULT_CLUSTER
from ecslocal.arns import task_id_of
from ecslocal.errors import LocalApiError, TaskNotFound

if TYPE_CHECKING:
    from ecslocal.client import Client
from ecslocal.config import (
    DEFAULT_HOST,
    Config,
    default_data_dir,
    default_port,
    parse_access_keys,
)
from ecslocal.model.shapes import service_model, validation_errors
from ecslocal.model.taskdef import request_from_document


class _LazyConsole:
    """A rich Console made on first use (importing rich costs `ecslocal serve` start-up time
    it never needs)."""

    def __init__(self, **options: Any) -> None:
        self._options = options
        self._console: Any = None

    def __getattr__(self, name: str) -> Any:
        if self._console is None:
            from rich.console import Console

            self._console = Console(**self._options)
        return getattr(self._console, name)


console = _LazyConsole(highlight=False, soft_wrap=True)
err_console = _LazyConsole(stderr=True, highlight=False, soft_wrap=True)


def ClientError() -> type[Exception]:  # noqa: N802 - used as `except ClientError():`
    """botocore's ClientError, imported when an except clause is evaluated (only then, so the
    `serve` path never imports botocore's HTTP stack)."""
    from botocore.exceptions import ClientError as BotoClientError

    return BotoClientError


COLORS = ["cyan", "magenta", "green", "yellow", "blue", "bright_red", "bright_cyan"]

#: `ecslocal run`'s exit code when the task failed to start (docker run's 125).
EXIT_FAILED_TO_START = 125
EXIT_INTERRUPTED = 130


def fail(message: str, code: int = 1) -> NoReturn:
    err_console.print(f"[red]error:[/red] {message}", markup=True, soft_wrap=True)
    sys.exit(code)


def aws_error(exc: Any) -> NoReturn:
    e = exc.response.get("Error", {})
    op = exc.operation_name
    fail(f"An error occurred ({e.get('Code')}) when calling the {op} operation: {e.get('Message')}")


def region() -> str:
    return os.environ.get("ECSLOCAL_REGION", "us-east-1")


def client_key() -> tuple[str, str]:
    """The key every CLI call is signed with, AWS API and ecslocal's own alike."""
    from ecslocal.config import client_key as configured

    try:
        return configured()
    except ValueError as exc:
        fail(f"$ECSLOCAL_ACCESS_KEYS: {exc}")


def connect(port: int) -> Client:
    from ecslocal.client import Client, daemon_url, is_up  # botocore: not on `serve`'s path

    url = daemon_url(port)
    if not is_up(url):
        fail(f"no ecslocal daemon is listening on {url} (start one with `ecslocal serve`)")
    return Client(url, region(), client_key())


@click.group()
@click.version_option(__version__, prog_name="ecslocal")
@click.option(
    "--port",
    type=int,
    default=default_port,
    show_default="4600, or $ECSLOCAL_PORT",
    help="The daemon's port.",
)
@click.pass_context
def cli(ctx: click.Context, port: int) -> None:
    """AWS ECS/Fargate on one machine."""
    ctx.obj = {"port": port}


# -- serve ----------------------------------------------------------------------------------
@cli.command()
@click.option("--host", default=DEFAULT_HOST, show_default=True)
@click.option("--port", "serve_port", type=int, default=None, help="Default: the global --port.")
@click.option(
    "--data-dir",
    type=click.Path(path_type=Path),
    default=None,
    help="Where state lives (default: $ECSLOCAL_DATA_DIR or the user data dir).",
)
@click.option(
    "--memory-enforcement",
    type=click.Choice(["auto", "cgroup", "rss", "off"]),
    default=None,
    help="How memory limits are enforced (default auto).",
)
@click.option(
    "--access-key",
    "access_keys",
    multiple=True,
    metavar="ID:SECRET",
    help="Another access key the API accepts (besides test/test; repeatable;"
    " also $ECSLOCAL_ACCESS_KEYS=ID:SECRET,...).",
)
@click.option(
    "--credential-ttl",
    type=click.FloatRange(min=2),
    default=None,
    metavar="SECONDS",
    help="Lifetime of task-role credentials (default 21600 = 6 h, as ECS;"
    " $ECSLOCAL_CREDENTIAL_TTL).",
)
@click.option(
    "--instance-role",
    default=None,
    metavar="ROLE_ARN",
    help="The EC2 instance role IMDS serves to EC2-launch tasks ($ECSLOCAL_INSTANCE_ROLE).",
)
@click.option(
    "--imds-v1",
    is_flag=True,
    default=False,
    help="Allow IMDSv1 (GETs without a session token); IMDSv2 is required otherwise.",
)
@click.option(
    "--stopped-task-retention",
    type=click.FloatRange(min=1),
    default=None,
    metavar="SECONDS",
    help="How long stopped tasks stay described and listed (default 3600 = 1 h, as"
    " ECS; $ECSLOCAL_STOPPED_TASK_RETENTION).",
)
@click.option(
    "--registry-host",
    default=None,
    metavar="HOST",
    help="The host ECR's repositoryUri and proxyEndpoint name, with the daemon's port"
    " (default localhost; $ECSLOCAL_REGISTRY_HOST).",
)
@click.option(
    "--no-local-ecr",
    is_flag=True,
    default=False,
    help="Treat ECR image URIs in task definitions as remote images, not as this"
    " daemon's repositories ($ECSLOCAL_LOCAL_ECR=off).",
)
@click.option(
    "--no-default-key",
    is_flag=True,
    default=False,
    help="Refuse the well-known test/test key: only --access-key keys work (the CLI"
    " signs with the first of $ECSLOCAL_ACCESS_KEYS).",
)
@click.pass_context
def serve(
    ctx: click.Context,
    host: str,
    serve_port: int | None,
    data_dir: Path | None,
    memory_enforcement: str | None,
    access_keys: tuple[str, ...],
    credential_ttl: float | None,
    instance_role: str | None,
    imds_v1: bool,
    stopped_task_retention: float | None,
    registry_host: str | None,
    no_local_ecr: bool,
    no_default_key: bool,
) -> None:
    """Run the daemon in the foreground."""
    from ecslocal.daemon import Daemon, why_not_started

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    config = Config(host=host, port=serve_port if serve_port is not None else ctx.obj["port"])
    if data_dir is not None:
        config.data_dir = data_dir
    if memory_enforcement is not None:
        config.memory_enforcement = memory_enforcement
    if credential_ttl is not None:
        config.credential_ttl = credential_ttl
    if instance_role:
        config.instance_role_arn = instance_role
    if imds_v1:
        config.imds_v1 = True
    if stopped_task_retention is not None:
        config.stopped_task_retention = stopped_task_retention
    if registry_host:
        config.registry_host = registry_host
    if no_local_ecr:
        config.local_ecr = False
    try:
        config.access_keys += parse_access_keys(",".join(access_keys))
    except ValueError as exc:
        fail(str(exc))
    if no_default_key:
        if not config.access_keys:
            fail(
                "--no-default-key needs a key to accept: --access-key ID:SECRET"
                " (or $ECSLOCAL_ACCESS_KEYS)"
            )
        config.default_key = False

    async def main() -> None:
        daemon = Daemon(config)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        try:
            await daemon.start()
        except Exception as exc:
            why = why_not_started(exc)
            if why is None:
                raise
            await daemon.stop()
            fail(why)
        assert daemon.backend is not None and daemon.agent is not None
        print(daemon.agent.timewarps.describe(), flush=True)
        # IMDS answers on the daemon's port too (/latest, for host clients), but only its own
        # listener can refuse connections under a refuse fault (docs/endpoints.md).
        print(
            f"IMDS for EC2-launch tasks on {daemon.agent.imds_url} (refuse faults refuse there;"
            f" {daemon.url}/latest serves host clients)",
            flush=True,
        )
        print(
            f"ecslocal {__version__} ready on {daemon.url} (data {config.data_dir};"
            f" {daemon.backend.describe()})",
            flush=True,
        )
        if daemon.recovered:
            print(f"marked {len(daemon.recovered)} task(s) of a previous run STOPPED", flush=True)
        await stop.wait()
        await daemon.stop()

    asyncio.run(main())


# -- run ------------------------------------------------------------------------------------
def load_task_definition(path: Path) -> dict[str, Any]:
    try:
        document = json.loads(path.read_text())
    except OSError as exc:
        fail(f"cannot read {path}: {exc.strerror}")
    except ValueError as exc:
        fail(f"{path} is not valid JSON: {exc}")
    try:
        request = request_from_document(document)
    except Exception as exc:  # AwsError
        fail(str(exc))
    # Unknown members are refused here, as the aws CLI refuses them (ParamValidation).
    shape = service_model("ecs").operation_model("RegisterTaskDefinition").input_shape
    unknown = [e for e in validation_errors(request, shape) if e.startswith("Unknown")]
    if unknown:
        fail("Parameter validation failed:\n" + "\n".join(unknown), code=252)
    # Relative environment file paths are relative to the task definition file.
    for container in request.get("containerDefinitions") or []:
        if not isinstance(container, dict):
            continue
        for env_file in container.get("environmentFiles") or []:
            value = env_file.get("value", "") if isinstance(env_file, dict) else ""
            if value and not value.startswith(("arn:", "/", "file://")):
                env_file["value"] = str((path.parent / value).resolve())
    return request


class Printer:
    """Prints log lines as `name | line`, one colour per container."""

    def __init__(self, names: list[str]) -> None:
        self.width = max((len(n) for n in names), default=4)
        self.colors = {n: COLORS[i % len(COLORS)] for i, n in enumerate(names)}

    def line(self, event: dict[str, Any]) -> None:
        name = event["container"]
        color = self.colors.get(name, "white")
        prefix = f"[{color}]{name:<{self.width}} |[/{color}] "
        console.print(prefix, end="", markup=True)
        console.print(event["message"], markup=False, soft_wrap=True)


@cli.command()
@click.argument("taskdef", type=click.Path(path_type=Path, dir_okay=False))
@click.option("--cluster", default="default", show_default=True)
@click.option(
    "--env",
    "-e",
    "env",
    multiple=True,
    metavar="K=V",
    help="Set an environment variable in every container (repeatable).",
)
@click.option("--launch-type", type=click.Choice(["FARGATE", "EC2"]), default=None)
@click.option("--detach", "-d", is_flag=True, help="Print the task ARN and return.")
@click.option(
    "--data-dir",
    type=click.Path(path_type=Path),
    default=None,
    help="State directory for the in-process daemon (when none is running).",
)
@click.option(
    "--time-warp",
    type=float,
    default=None,
    metavar="N",
    help="The task's clock runs N times faster, for its processes (libfaketime) and"
    " for ecslocal (credential lifetimes): the task tag ecslocal:time-warp.",
)
@click.option(
    "--credential-ttl",
    type=float,
    default=None,
    metavar="SECONDS",
    help="This task's credential lifetime, in seconds of its clock: the task tag"
    " ecslocal:credential-ttl.",
)
@click.pass_context
def run(
    ctx: click.Context,
    taskdef: Path,
    cluster: str,
    env: tuple[str, ...],
    launch_type: str | None,
    detach: bool,
    data_dir: Path | None,
    time_warp: float | None,
    credential_ttl: float | None,
) -> None:
    """Register TASKDEF and run it; stream its logs; exit with its exit code."""
    request = load_task_definition(taskdef)
    tags = [
        {"key": key, "value": f"{value:g}"}
        for key, value in (
            ("ecslocal:time-warp", time_warp),
            ("ecslocal:credential-ttl", credential_ttl),
        )
        if value is not None
    ]
    overrides: dict[str, Any] = {}
    if env:
        pairs = []
        for item in env:
            key, sep, value = item.partition("=")
            if not sep:
                fail(f"--env takes K=V, got {item!r}")
            pairs.append({"name": key, "value": value})
        names = [c.get("name") for c in request.get("containerDefinitions") or []]
        overrides["containerOverrides"] = [{"name": n, "environment": pairs} for n in names]

    from ecslocal.client import Client, daemon_url, is_up

    url = daemon_url(ctx.obj["port"])
    local = None
    if not is_up(url):
        if detach:
            fail(f"no ecslocal daemon is listening on {url}; --detach needs one (ecslocal serve)")
        from ecslocal.daemon import ThreadedDaemon, why_not_started

        config = Config(port=0, data_dir=data_dir or default_data_dir())
        local = ThreadedDaemon(config)
        try:
            url = local.start()
        except Exception as exc:
            why = why_not_started(exc)
            if why is None:
                raise
            fail(why)
    try:
        code = _run(
            Client(url, region(), client_key()),
            request,
            cluster,
            overrides,
            launch_type,
            detach,
            tags,
        )
    finally:
        if local is not None:
            local.stop()
    sys.exit(code)


def _ensure_default_cluster(client: Client, cluster: str) -> None:
    """Create the ``default`` cluster if the account has none, as the ECS console's first run
    does: the API creates no cluster by itself (RunTask without one answers
    ClusterNotFoundException), and `ecslocal run` should just run. Another cluster name is
    the user's to create."""
    if cluster != DEFAULT_CLUSTER:
        return
    found = client.ecs.describe_clusters(clusters=[cluster])["clusters"]
    if any(c.get("status") == "ACTIVE" for c in found):
        return
    # "The console automatically associates the Fargate and Fargate Spot capacity providers
    # with the cluster." (ECS Developer Guide, create-cluster-console-v2.html)
    client.ecs.create_cluster(clusterName=cluster, capacityProviders=["FARGATE", "FARGATE_SPOT"])
    err_console.print(f"[dim]created cluster {cluster} (the account had none)[/dim]")


def _run(
    client: Client,
    request: dict[str, Any],
    cluster: str,
    overrides: dict[str, Any],
    launch_type: str | None,
    detach: bool,
    tags: list[dict[str, str]],
) -> int:
    try:
        _ensure_default_cluster(client, cluster)
        td = client.ecs.register_task_definition(**request)["taskDefinition"]
        params: dict[str, Any] = {
            "cluster": cluster,
            "taskDefinition": td["taskDefinitionArn"],
            "startedBy": "ecslocal",
        }
        if overrides:
            params["overrides"] = overrides
        if launch_type:
            params["launchType"] = launch_type
        if tags:
            params["tags"] = tags
        response = client.ecs.run_task(**params)
    except ClientError() as exc:
        aws_error(exc)
    if response.get("failures"):
        fail(f"RunTask failed: {response['failures']}")
    task = response["tasks"][0]
    task_arn = task["taskArn"]
    task_id = task_id_of(task_arn)
    for warning in client.task_extras(task_id).get("diagnostics") or []:
        err_console.print(f"[yellow]warning:[/yellow] {warning}", markup=True)
    if detach:
        print(task_arn)
        return 0
    err_console.print(f"[dim]task {task_id} ({td['family']}:{td['revision']})[/dim]")
    printer = Printer([c["name"] for c in td["containerDefinitions"]])
    interrupts = 0
    last_seq = 0
    while True:
        try:
            for event in client.logs(task_id, follow=True, after=last_seq):
                last_seq = event["seq"]
                printer.line(event)
            break
        except KeyboardInterrupt:
            interrupts += 1
            if interrupts > 1:
                err_console.print("[yellow]not waiting for the task to stop[/yellow]")
                return EXIT_INTERRUPTED
            err_console.print("[yellow]stopping task (Ctrl-C again to stop waiting)[/yellow]")
            with contextlib.suppress(ClientError()):
                client.ecs.stop_task(cluster=cluster, task=task_arn)
    final = client.describe(task_arn, cluster)
    essential = {c["name"] for c in td["containerDefinitions"] if c.get("essential", True)}
    return _exit_code(client, final, task_id, essential)


def _exit_code(client: Client, task: dict[str, Any], task_id: str, essential: set[str]) -> int:
    stopped_by = client.task_extras(task_id).get("stoppedByContainer")
    containers = {c["name"]: c for c in task["containers"]}
    reason = task.get("stoppedReason", "")
    if task.get("stopCode") == "TaskFailedToStart":
        err_console.print(f"[red]task failed to start:[/red] {reason}", markup=True)
        failed = containers.get(stopped_by or "", {})
        if failed.get("reason") and failed.get("reason") != reason:
            err_console.print(f"  {failed['name']}: {failed['reason']}", markup=False)
        return EXIT_FAILED_TO_START
    if stopped_by and containers.get(stopped_by, {}).get("exitCode") is not None:
        c = containers[stopped_by]
        note = f" ({c['reason']})" if c.get("reason") else ""
        err_console.print(
            f"[dim]{reason}: {stopped_by} exited with code {c['exitCode']}{note}[/dim]",
            markup=True,
        )
        return int(c["exitCode"])
    # Stopped from outside (Ctrl-C, StopTask): how the first essential container took it, so a
    # clean SIGTERM handler shows as 0 and a stopTimeout kill as 137.
    exited = [
        c for c in task["containers"] if c.get("exitCode") is not None and c["name"] in essential
    ]
    return int(exited[0]["exitCode"]) if exited else EXIT_INTERRUPTED


# -- ps, logs, stop, describe ----------------------------------------------------------------
def _ago(value: Any) -> str:
    if not isinstance(value, datetime):
        return "-"
    seconds = int(time.time() - value.timestamp())
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit} ago"
    return f"{seconds}s ago"


@cli.command()
@click.option("--all", "-a", "show_all", is_flag=True, help="Include stopped tasks.")
@click.option("--cluster", default="default", show_default=True)
@click.pass_context
def ps(ctx: click.Context, show_all: bool, cluster: str) -> None:
    """List tasks."""
    client = connect(ctx.obj["port"])
    try:
        arns = client.task_ids(cluster, include_stopped=show_all)
        tasks = []
        for i in range(0, len(arns), 100):
            tasks += client.ecs.describe_tasks(cluster=cluster, tasks=arns[i : i + 100])["tasks"]
    except ClientError() as exc:
        aws_error(exc)
    tasks.sort(key=lambda t: t["createdAt"])
    from rich.table import Table

    table = Table(box=None, header_style="bold")
    table.add_column("TASK", no_wrap=True, min_width=32)
    for column in ("DEFINITION", "STATUS", "HEALTH", "CREATED"):
        table.add_column(column, no_wrap=True)
    table.add_column("CONTAINERS")
    for t in tasks:
        containers = " ".join(
            f"{c['name']}:{c['lastStatus'].lower()}"
            + (f"({c['exitCode']})" if c.get("exitCode") is not None else "")
            for c in t["containers"]
        )
        table.add_row(
            task_id_of(t["taskArn"]),
            t["taskDefinitionArn"].rsplit("/", 1)[-1],
            t["lastStatus"],
            t.get("healthStatus", "UNKNOWN"),
            _ago(t.get("createdAt")),
            containers,
        )
    console.print(table)


@cli.command()
@click.argument("task")
@click.option("--follow", "-f", is_flag=True, help="Keep streaming until the task stops.")
@click.option("--container", default=None, help="Only this container's lines.")
@click.option("--cluster", default="default", show_default=True)
@click.pass_context
def logs(ctx: click.Context, task: str, follow: bool, container: str | None, cluster: str) -> None:
    """Print a task's log lines (TASK: ARN, id, or unique id prefix)."""
    client = connect(ctx.obj["port"])
    arn = _resolve(client, task, cluster)
    described = client.describe(arn, cluster)
    printer = Printer([c["name"] for c in described["containers"]])
    with contextlib.suppress(KeyboardInterrupt):
        for event in client.logs(task_id_of(arn), follow=follow, container=container):
            printer.line(event)


@cli.command()
@click.argument("task", required=False)
@click.option(
    "--until",
    default=None,
    metavar="STATUS",
    help="Stop once the task reaches STATUS (RUNNING, STOPPED, ...).",
)
@click.option("--json", "as_json", is_flag=True, help="Print each event as JSON (NDJSON).")
@click.option("--cluster", default="default", show_default=True)
@click.pass_context
def events(
    ctx: click.Context, task: str | None, until: str | None, as_json: bool, cluster: str
) -> None:
    """Stream the engine's task and container events: TASK's from its start (ARN, id or
    unique prefix), else every task's from now on."""
    from ecslocal.client import event_line

    client = connect(ctx.obj["port"])
    task_id = task_id_of(_resolve(client, task, cluster)) if task else None
    with contextlib.suppress(KeyboardInterrupt):
        for event in client.events(task_id, until):
            print(json.dumps(event) if as_json else event_line(event), flush=True)


def _resolve(client: Client, task: str, cluster: str) -> str:
    try:
        return client.resolve_task(task, cluster)
    except TaskNotFound as exc:
        fail(str(exc))
    except ClientError() as exc:
        aws_error(exc)


@cli.command()
@click.argument("task")
@click.option("--reason", default=None, help="stoppedReason (default: Task stopped by user).")
@click.option("--cluster", default="default", show_default=True)
@click.option(
    "--wait/--no-wait", default=True, show_default=True, help="Wait until the task is STOPPED."
)
@click.pass_context
def stop(ctx: click.Context, task: str, reason: str | None, cluster: str, wait: bool) -> None:
    """Stop a task as StopTask does (stop signal, stopTimeout, SIGKILL)."""
    client = connect(ctx.obj["port"])
    arn = _resolve(client, task, cluster)
    params = {"cluster": cluster, "task": arn}
    if reason:
        params["reason"] = reason
    try:
        client.ecs.stop_task(**params)
        if wait:
            client.ecs.get_waiter("tasks_stopped").wait(
                cluster=cluster, tasks=[arn], WaiterConfig={"Delay": 1, "MaxAttempts": 600}
            )
    except ClientError() as exc:
        aws_error(exc)
    print(arn)


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat()
    raise TypeError(type(value).__name__)


@cli.command()
@click.argument("task")
@click.option("--cluster", default="default", show_default=True)
@click.pass_context
def describe(ctx: click.Context, task: str, cluster: str) -> None:
    """Print a task as DescribeTasks returns it (JSON); what was diagnosed at its start goes
    to stderr."""
    client = connect(ctx.obj["port"])
    arn = _resolve(client, task, cluster)
    try:
        found = client.describe(arn, cluster)
    except TaskNotFound as exc:
        fail(str(exc))
    print(json.dumps(found, indent=2, default=_json_default))
    for warning in client.task_extras(task_id_of(arn)).get("diagnostics") or []:
        err_console.print(f"[yellow]warning:[/yellow] {warning}", markup=True)


from ecslocal import cli_image, cli_local  # noqa: E402, F401 - register `image`, `oidc-token`, `fault`


def main() -> None:
    # Ctrl-C in `run` must reach our handler even while blocked reading the log stream.
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        cli(prog_name="ecslocal")
    except LocalApiError as exc:  # e.g. the key the CLI signs with is not accepted
        fail(f"the ecslocal API answered {exc.status}: {exc.message}")
