"""``ecslocal oidc-token`` and ``ecslocal fault …``: the commands that drive ecslocal's own API
(``/_ecslocal/v1``: the local OIDC issuer and faults on demand) rather than an AWS one. They
register themselves on :data:`ecslocal.cli.cli` when that module imports this one."""

from __future__ import annotations

import click

from ecslocal.cli import _resolve, cli, connect, fail


@cli.command("oidc-token")
@click.option("--sub", "subject", required=True, help="The token's subject (sub claim).")
@click.option("--aud", "audience", default="sts.amazonaws.com", show_default=True)
@click.option(
    "--ttl",
    type=click.IntRange(1, 7 * 86400),
    default=3600,
    show_default=True,
    help="Lifetime in seconds.",
)
@click.pass_context
def oidc_token(ctx: click.Context, subject: str, audience: str, ttl: int) -> None:
    """Print a JWT from the local OIDC issuer, for sts:AssumeRoleWithWebIdentity.

    Roles trust it with "Principal": {"Federated":
    "arn:aws:iam::000000000000:oidc-provider/oidc.ecslocal.localhost"}."""
    client = connect(ctx.obj["port"])
    print(client.oidc_token(subject, audience, ttl)["token"])


# -- fault ----------------------------------------------------------------------------------
@cli.group()
def fault() -> None:
    """Failures on demand: the credentials endpoint, task metadata, STS (see docs/endpoints.md)."""


@fault.command("add")
@click.argument("target", type=click.Choice(["credentials", "metadata", "sts", "imds"]))
@click.argument("kind", type=click.Choice(["refuse", "http-500", "http-503", "slow"]))
@click.option("--task", default=None, help="Only this task (id or ARN); default every task.")
@click.option("--duration", type=float, default=60.0, show_default=True, help="Seconds.")
@click.option("--delay-ms", type=int, default=0, help="For `slow`: the delay per request.")
@click.pass_context
def fault_add(
    ctx: click.Context, target: str, kind: str, task: str | None, duration: float, delay_ms: int
) -> None:
    """Start a fault, e.g. `ecslocal fault add sts refuse --duration 5`."""
    body = {"target": target, "kind": kind, "durationSeconds": duration, "delayMs": delay_ms}
    if task:
        body["task"] = task
    status, out = connect(ctx.obj["port"]).local("POST", "/_ecslocal/v1/faults", body)
    if status != 201:
        fail(out.get("message", str(out)))
    print(out["id"])


@fault.command("expire-credentials")
@click.argument("task")
@click.pass_context
def fault_expire(ctx: click.Context, task: str) -> None:
    """Expire a task's current role credentials now (the endpoint then vends fresh ones)."""
    client = connect(ctx.obj["port"])
    arn = _resolve(client, task, "default")
    body = {"target": "credentials", "kind": "expire", "task": arn}
    status, out = client.local("POST", "/_ecslocal/v1/faults", body)
    if status != 200:
        fail(out.get("message", str(out)))
    print(f"expired the current credentials of task {out['expired']}")


@fault.command("ls")
@click.pass_context
def fault_ls(ctx: click.Context) -> None:
    """Active faults."""
    _, out = connect(ctx.obj["port"]).local("GET", "/_ecslocal/v1/faults")
    for f in out["faults"]:
        scope = f["task"] or "all tasks"
        delay = f" {f['delayMs']} ms" if f["kind"] == "slow" else ""
        left = f"{f['remainingSeconds']}s left"
        print(f"{f['id']}  {f['target']} {f['kind']}{delay}  {scope}  {left}")


@fault.command("clear")
@click.argument("fault_id", required=False)
@click.pass_context
def fault_clear(ctx: click.Context, fault_id: str | None) -> None:
    """End one fault (by id) or all of them."""
    path = "/_ecslocal/v1/faults" + (f"/{fault_id}" if fault_id else "")
    _, out = connect(ctx.obj["port"]).local("DELETE", path)
    print(f"cleared {out['cleared']}")
