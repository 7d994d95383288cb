"""``ecslocal image load / push / pull / ls / rm``, in the docker idiom.

The CLI is a client of the daemon like any other: the ECR API (botocore's ECR client, signed
with the CLI's key as every other AWS call is) for repositories, listings, deletes and the
registry token (GetAuthorizationToken: base64 ``AWS:<password>`` for Basic auth at
``proxyEndpoint``), and the registry protocol (images/client.py) for the bytes. ``--registry
URL`` sends load and push to any other distribution-v2 registry instead (Basic or Bearer auth
with ``--username`` and ``--password-stdin``). ``pull`` copies another registry's image into
the daemon's pull-through cache on the client side (ecr/pullthrough.py names the repository),
so the daemon needs no route of its own and the upstream credentials never reach it.
"""

from __future__ import annotations

import base64
import sys
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import click

from ecslocal.cli import (
    ClientError,
    aws_error,
    cli,
    client_key,
    err_console,
    fail,
    region,
)

PASSWORD_HELP = "Read the registry password from stdin (with --registry)."


@dataclass
class Destination:
    """Where images go: ecslocal's registry (repositories made through the ECR API) or
    another registry (``ecr`` None)."""

    client: Any  # RegistryClient
    host: str
    ecr: Any = None
    created: set[str] = field(default_factory=set)

    def ensure_repository(self, name: str) -> None:
        """ecslocal's registry, like ECR, refuses a push to a missing repository: a load
        or push creates it first, as `docker load` needs no setup."""
        if self.ecr is None or name in self.created:
            return
        try:
            self.ecr.create_repository(repositoryName=name)
            err_console.print(f"[dim]created repository {name}[/dim]", markup=True)
        except ClientError() as exc:
            if exc.response.get("Error", {}).get("Code") != "RepositoryAlreadyExistsException":
                aws_error(exc)
        self.created.add(name)


def _ecr(port: int) -> Any:
    from ecslocal.cli import connect

    client = connect(port)
    import botocore.session
    from botocore.config import Config as BotoConfig

    key = client_key()
    return botocore.session.get_session().create_client(
        "ecr",
        endpoint_url=client.url,
        region_name=region(),
        aws_access_key_id=key[0],
        aws_secret_access_key=key[1],
        config=BotoConfig(retries={"max_attempts": 2}),
    )


def _destination(
    ctx: click.Context, registry: str | None, username: str | None, password_stdin: bool
) -> Destination:
    from ecslocal.images.client import RegistryClient

    if registry:
        password = sys.stdin.readline().rstrip("\n") if password_stdin else None
        if password_stdin and username is None:
            fail("--password-stdin needs --username")
        url = registry if "://" in registry else f"http://{registry}"
        return Destination(RegistryClient(url, username, password), url.split("://", 1)[1])
    ecr = _ecr(ctx.obj["port"])
    try:
        data = ecr.get_authorization_token()["authorizationData"][0]
    except ClientError() as exc:
        aws_error(exc)
    user, _, password = base64.b64decode(data["authorizationToken"]).decode().partition(":")
    endpoint = data["proxyEndpoint"]
    return Destination(RegistryClient(endpoint, user, password), endpoint.split("://", 1)[1], ecr)


class Bars:
    """A progress bar per blob on a TTY (rich), one line per blob otherwise; docker's
    wording ("Pushed", "Layer already exists", "Mounted from")."""

    WORDS = {"exists": "Layer already exists", "mounted": "Mounted", "pulled": "Pulled"}

    def __init__(self) -> None:
        self.tty = sys.stderr.isatty()
        self.progress: Any = None

    def __enter__(self) -> Bars:
        if self.tty:
            from rich.console import Console
            from rich.progress import (
                BarColumn,
                DownloadColumn,
                Progress,
                TextColumn,
                TransferSpeedColumn,
            )

            self.progress = Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                DownloadColumn(),
                TransferSpeedColumn(),
                console=Console(stderr=True),
                transient=True,
            )
            self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.progress is not None:
            self.progress.stop()

    def blob(self, digest: str, size: int) -> AbstractContextManager[Any]:
        @contextmanager
        def bar() -> Iterator[Any]:
            if self.progress is None:
                yield lambda n: None
                return
            task = self.progress.add_task(digest.removeprefix("sha256:")[:12], total=size)
            try:
                yield lambda n: self.progress.advance(task, n)
            finally:
                self.progress.remove_task(task)

        return bar()

    def blob_done(self, digest: str, size: int, how: str) -> None:
        word = self.WORDS.get(how, "Pushed")
        # Through the live display's console on a TTY, so the line lands above the bars.
        target = self.progress.console if self.progress is not None else err_console
        target.print(f"{digest.removeprefix('sha256:')[:12]}: {word} ({_size(size)})", markup=False)


def _size(n: float) -> str:
    for unit in ("B", "kB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.0f}{unit}" if unit == "B" else f"{n:.1f}{unit}"
        n /= 1000
    return f"{n}"


def _target(name: str) -> tuple[str, str | None]:
    """``repo[:tag]`` (a host part is dropped: the destination registry is given apart)."""
    from ecslocal.images.transfer import parse_reference

    try:
        ref = parse_reference(name)
    except ValueError as exc:
        fail(str(exc))
    return ref.repository, ref.tag or ("latest" if not ref.digest else None)


def _run_registry(call: Any) -> Any:
    import httpx

    from ecslocal.images.archive import ArchiveError
    from ecslocal.images.auth import AuthError
    from ecslocal.images.client import RegistryError

    try:
        return call()
    except (ArchiveError, AuthError, RegistryError) as exc:
        fail(str(exc))
    except httpx.HTTPError as exc:
        fail(f"cannot reach the registry: {exc}")


@cli.group()
def image() -> None:
    """Images in ecslocal's registry: load archives, push from other registries, list, remove."""


@image.command("load")
@click.argument("file", type=click.Path(path_type=Path))
@click.option(
    "--tag",
    "-t",
    default=None,
    metavar="NAME[:TAG]",
    help="The name to give the image (needed when the archive names none).",
)
@click.option(
    "--registry",
    default=None,
    metavar="URL",
    help="Load into this distribution-v2 registry instead of ecslocal's.",
)
@click.option("--username", "-u", default=None, help="The registry's username (--registry).")
@click.option("--password-stdin", is_flag=True, help=PASSWORD_HELP)
@click.option(
    "--chunk-size",
    type=click.IntRange(min=1),
    default=None,
    metavar="BYTES",
    help="Upload blobs in PATCH chunks of this size (default: one PUT each).",
)
@click.pass_context
def image_load(
    ctx: click.Context,
    file: Path,
    tag: str | None,
    registry: str | None,
    username: str | None,
    password_stdin: bool,
    chunk_size: int | None,
) -> None:
    """Load FILE, a `docker save` archive or an OCI archive or layout (gzipped or not)."""
    from ecslocal.images.archive import ArchiveError, open_archive
    from ecslocal.images.transfer import push_archive_image

    dest = _destination(ctx, registry, username, password_stdin)

    def load() -> None:
        with open_archive(file) as archive, Bars() as bars:
            if not archive.images:
                fail(f"{file} holds no image")
            if tag and len(archive.images) > 1:
                fail(f"{file} holds {len(archive.images)} images: --tag names one")
            for item in archive.images:
                names = (tag,) if tag else item.names
                if not names or not all(":" in n.rsplit("/", 1)[-1] for n in names):
                    raise ArchiveError(
                        f"image {item.manifest.digest} in {file} has no"
                        " repository name: give --tag NAME:TAG"
                    )
                pushed: list[str] = []
                for name in names:
                    repository, image_tag = _target(name)
                    dest.ensure_repository(repository)
                    push_archive_image(
                        archive,
                        item.manifest,
                        dest.client,
                        repository,
                        image_tag,
                        bars,
                        chunk_size,
                        mount_from=pushed,
                    )
                    pushed.append(repository)
                    print(
                        f"Loaded image: {dest.host}/{repository}:{image_tag}"
                        f" ({item.manifest.digest})",
                        flush=True,
                    )

    _run_registry(load)


@image.command("push")
@click.argument("source")
@click.argument("name", required=False)
@click.option(
    "--registry",
    default=None,
    metavar="URL",
    help="Push to this distribution-v2 registry instead of ecslocal's.",
)
@click.option("--username", "-u", default=None, help="The registry's username (--registry).")
@click.option("--password-stdin", is_flag=True, help=PASSWORD_HELP)
@click.option(
    "--src-creds", default=None, metavar="USER:PASSWORD", help="Credentials for SOURCE's registry."
)
@click.option(
    "--chunk-size",
    type=click.IntRange(min=1),
    default=None,
    metavar="BYTES",
    help="Upload blobs in PATCH chunks of this size (default: one PUT each).",
)
@click.pass_context
def image_push(
    ctx: click.Context,
    source: str,
    name: str | None,
    registry: str | None,
    username: str | None,
    password_stdin: bool,
    src_creds: str | None,
    chunk_size: int | None,
) -> None:
    """Copy SOURCE (HOST[:PORT]/REPO[:TAG|@DIGEST] in another registry, or an archive file)
    into the registry as NAME (default: SOURCE's repository and tag)."""
    from ecslocal.images.client import RegistryClient
    from ecslocal.images.transfer import copy_image, hub_repository, parse_reference, registry_url

    if Path(source).exists():
        ctx.invoke(
            image_load,
            file=Path(source),
            tag=name,
            registry=registry,
            username=username,
            password_stdin=password_stdin,
            chunk_size=chunk_size,
        )
        return
    try:
        ref = parse_reference(source)
    except ValueError as exc:
        fail(f"{source}: no such file, and not an image reference ({exc})")
    repository, tag = _target(name) if name else (ref.repository, ref.tag)
    if not name and ref.tag is None and ref.digest is None:
        tag = "latest"
    user, _, password = (src_creds or "").partition(":")
    dest = _destination(ctx, registry, username, password_stdin)

    def push() -> None:
        with (
            RegistryClient(registry_url(ref.host), user or None, password or None) as src,
            Bars() as bars,
        ):
            dest.ensure_repository(repository)
            digest = copy_image(
                src,
                hub_repository(ref),
                ref.reference,
                dest.client,
                repository,
                tag,
                bars,
                chunk_size,
            )
            print(
                f"{dest.host}/{repository}{':' + tag if tag else ''}: digest: {digest}", flush=True
            )

    _run_registry(push)


@image.command("pull")
@click.argument("reference", metavar="[HOST[:PORT]/]REPO[:TAG|@DIGEST]")
@click.option("--username", "-u", default=None, help="The upstream registry's username.")
@click.option("--password-stdin", is_flag=True, help="Read the upstream password from stdin.")
@click.pass_context
def image_pull(
    ctx: click.Context, reference: str, username: str | None, password_stdin: bool
) -> None:
    """Pull REFERENCE from its registry into the daemon's pull-through cache, the repository
    `<prefix>/<upstream repo>` ECR gives it (docker.io: `docker-hub/library/…` for official
    images; another HOST:PORT: `HOST-PORT/…`; docs/ecr.md). A task naming REFERENCE then
    runs with its digest. Blobs stream through; the manifests' bytes are kept exactly."""
    from ecslocal.ecr.pullthrough import cache_repository, remote_reference
    from ecslocal.images.client import RegistryClient
    from ecslocal.images.transfer import copy_image, hub_repository, registry_url

    ref = remote_reference(reference)
    if ref is None:
        fail(f"invalid reference format: {reference}")
    if password_stdin and username is None:
        fail("--password-stdin needs --username")
    password = sys.stdin.readline().rstrip("\n") if password_stdin else None
    repository = cache_repository(ref)
    tag = ref.tag or (None if ref.digest else "latest")
    dest = _destination(ctx, None, None, False)

    def cached_digest() -> str | None:
        from ecslocal.images.client import RegistryError

        try:
            return dest.client.get_manifest(repository, tag or ref.reference, head=True).digest
        except RegistryError:
            return None

    def pull() -> None:
        with RegistryClient(registry_url(ref.host), username, password) as src, Bars() as bars:
            # The upstream manifest first: a bad name or password fails before any repository
            # is made in the cache.
            upstream = src.get_manifest(hub_repository(ref), ref.reference, head=True).digest
            status = "Downloaded newer image"
            if upstream.startswith("sha256:") and upstream == cached_digest():
                digest, status = upstream, "Image is up to date"  # docker's words
            else:
                print(f"{ref.reference}: Pulling from {hub_repository(ref)}", flush=True)
                dest.ensure_repository(repository)
                digest = copy_image(
                    src, hub_repository(ref), ref.reference, dest.client, repository, tag, bars
                )
        print(f"Digest: {digest}", flush=True)
        print(f"Status: {status} for {reference}", flush=True)
        print(f"{dest.host}/{repository}{':' + tag if tag else '@' + digest}", flush=True)

    _run_registry(pull)


def _when(value: Any) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S") if isinstance(value, datetime) else "-"


@image.command("ls")
@click.argument("repository", required=False)
@click.option("--digests", is_flag=True, help="Show full digests.")
@click.pass_context
def image_ls(ctx: click.Context, repository: str | None, digests: bool) -> None:
    """List images (DescribeImages of every repository, or of REPOSITORY); an untagged
    image's TAG is `-`, as ECR's console shows it."""
    ecr = _ecr(ctx.obj["port"])
    rows: list[tuple[str, str, dict[str, Any]]] = []
    try:
        if repository:
            names = [repository]
        else:
            names = [
                r["repositoryName"]
                for page in ecr.get_paginator("describe_repositories").paginate()
                for r in page["repositories"]
            ]
        for repo in names:
            for page in ecr.get_paginator("describe_images").paginate(repositoryName=repo):
                for d in page["imageDetails"]:
                    for tag in d.get("imageTags") or ["-"]:
                        rows.append((repo, tag, d))
    except ClientError() as exc:
        aws_error(exc)
    rows.sort(key=lambda r: (r[0], r[1] == "-", r[1]))
    # Plain padded columns, as `docker images` prints them: never cut (a digest is copied).
    table = [("REPOSITORY", "TAG", "DIGEST", "SIZE", "PUSHED", "LAST PULL")]
    for repo, tag, d in rows:
        digest = d["imageDigest"] if digests else d["imageDigest"][7:19]
        table.append(
            (
                repo,
                tag,
                digest,
                _size(d.get("imageSizeInBytes") or 0),
                _when(d.get("imagePushedAt")),
                _when(d.get("lastRecordedPullTime")),
            )
        )
    widths = [max(len(row[i]) for row in table) for i in range(len(table[0]))]
    for row in table:
        print("   ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())


@image.command("rm")
@click.argument("images", nargs=-1, required=True, metavar="REPO:TAG|REPO@DIGEST...")
@click.pass_context
def image_rm(ctx: click.Context, images: tuple[str, ...]) -> None:
    """Remove images (BatchDeleteImage): by tag removes that tag (the image goes with its
    last tag, as ECR does), by digest the image and all its tags."""
    from ecslocal.images.transfer import parse_reference

    ecr = _ecr(ctx.obj["port"])
    failed = False
    for text in images:
        try:
            ref = parse_reference(text)
        except ValueError as exc:
            fail(str(exc))
        image_id = {"imageDigest": ref.digest} if ref.digest else {"imageTag": ref.tag or "latest"}
        try:
            out = ecr.batch_delete_image(repositoryName=ref.repository, imageIds=[image_id])
        except ClientError() as exc:
            aws_error(exc)
        for done in out.get("imageIds") or []:
            if done.get("imageTag"):
                print(f"Untagged: {ref.repository}:{done['imageTag']}")
            print(f"Deleted: {done.get('imageDigest')}")
        for failure in out.get("failures") or []:
            failed = True
            err_console.print(
                f"[red]error:[/red] {text}: {failure.get('failureCode')}:"
                f" {failure.get('failureReason')}",
                markup=True,
            )
    if failed:
        sys.exit(1)
