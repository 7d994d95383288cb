"""Real registry clients for the tests, each against any distribution-v2 registry on loopback:
Debian's ``docker-registry`` (the reference implementation, standing in for a remote registry
and for ecslocal's own until it lands), a private ``dockerd``, ``podman``, ``skopeo`` and the
``oras`` Python package. Every server here is started and stopped by its fixture; a missing
binary or package is a skip that names the Debian/PyPI package to install.

Addresses are plain-HTTP loopback: dockerd treats 127.0.0.0/8 as insecure by default (no
daemon.json; moby registry/config.go "insecure-registries" default), podman and skopeo are
told ``--tls-verify=false``, oras ``insecure=True``.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.token_server import ISSUER as token_issuer
from tests.token_server import SERVICE as token_service
from tests.token_server import TokenServer

#: Debian packages of each binary (for skip messages and .ci/run).
PACKAGES = {
    "docker-registry": "docker-registry",
    "dockerd": "docker.io",
    "podman": "podman",
    "skopeo": "skopeo",
    "runc": "runc",
}


def require(binary: str) -> str:
    """The binary's path, or skip naming its package."""
    path = shutil.which(binary) or shutil.which(binary, path="/usr/sbin:/sbin")
    if path is None:
        pytest.skip(f"{binary} is missing (Debian package {PACKAGES.get(binary, binary)})")
    return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def short_tmpdir(prefix: str) -> Path:
    """A short directory under /tmp: unix sockets (dockerd's, containerd's, the shims') must
    fit in sun_path (108 bytes), which pytest's tmp_path can exceed."""
    return Path(tempfile.mkdtemp(prefix=prefix, dir="/tmp"))


def run(
    args: list[str],
    env: dict[str, str] | None = None,
    input: str | None = None,
    timeout: float = 300,
) -> subprocess.CompletedProcess[str]:
    """Run a client command; raise with its stderr on failure (the test then shows why)."""
    result = subprocess.run(
        args, env=env, input=input, capture_output=True, text=True, timeout=timeout
    )
    if result.returncode != 0:
        raise AssertionError(
            f"{' '.join(args)} exited {result.returncode}:\n{result.stdout}\n{result.stderr}"
        )
    return result


def unmount_under(*roots: Path) -> None:
    """Lazily unmount whatever is still mounted under ``roots`` (overlay layers, shm, netns),
    deepest first, so the directories can be removed."""
    prefixes = tuple(str(r.resolve()) for r in roots)
    with open("/proc/self/mountinfo") as f:
        points = [line.split()[4] for line in f]
    for point in sorted((p for p in points if p.startswith(prefixes)), key=len, reverse=True):
        subprocess.run(["umount", "-l", point], capture_output=True)


def kill_processes_mentioning(marker: str) -> list[int]:
    """SIGKILL the processes whose command line mentions ``marker`` (a directory only this
    fixture made), by pid: containerd and its shims, re-parented away from our session."""
    killed = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            cmdline = Path(f"/proc/{entry}/cmdline").read_bytes()
        except OSError:
            continue
        if marker.encode() in cmdline:
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(entry), signal.SIGKILL)
                killed.append(int(entry))
    return killed


def stop_process(process: subprocess.Popen[bytes], timeout: float = 30) -> None:
    """SIGTERM, then SIGKILL of its whole session (start_new_session=True made one)."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            pass
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(10)


def _probe(url: str, timeout: float = 1) -> int | None:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return int(response.status)
    except urllib.error.HTTPError as error:
        return error.code
    except OSError:
        return None


# -- docker-registry ------------------------------------------------------------------------
@dataclass
class Registry:
    """A running distribution-v2 registry: ``host`` ("127.0.0.1:PORT") is what clients put in
    references, ``url`` its base URL; ``username``/``password`` when it wants Basic auth."""

    host: str
    username: str | None = None
    password: str | None = None
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)
    root: Path | None = None
    bearer: bool = False  # credentials buy Bearer tokens from a token server

    @property
    def url(self) -> str:
        return f"http://{self.host}"

    @property
    def creds(self) -> str | None:
        return f"{self.username}:{self.password}" if self.username else None

    def ref(self, repository: str, tag: str = "latest") -> str:
        return f"{self.host}/{repository}:{tag}"

    def digest_ref(self, repository: str, digest: str) -> str:
        return f"{self.host}/{repository}@{digest}"

    def stop(self) -> None:
        if self.process is not None:
            stop_process(self.process)
            self.process = None


def htpasswd_line(username: str, password: str) -> str:
    """A bcrypt htpasswd entry, the only hash distribution's htpasswd auth accepts
    (registry/auth/htpasswd); glibc's libxcrypt makes $2b$ hashes."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        import crypt  # deprecated in 3.11, removed in 3.13: then the bcrypt package

        hashed = crypt.crypt(password, crypt.mksalt(crypt.METHOD_BLOWFISH))
    if not hashed or not hashed.startswith("$2"):
        pytest.skip("this libcrypt makes no bcrypt hashes (htpasswd needs them)")
    return f"{username}:{hashed}\n"


def start_docker_registry(
    root: Path,
    username: str | None = None,
    password: str | None = None,
    attempts: int = 3,
    token: TokenServer | None = None,
) -> Registry:
    """Debian's ``docker-registry serve CONFIG`` on a free loopback port, storage under
    ``root``; with ``username``, htpasswd Basic auth, or with ``token`` Bearer tokens from that
    token server (distribution docs, configuration.md "auth")."""
    binary = require("docker-registry")
    root.mkdir(parents=True, exist_ok=True)
    auth = ""
    if token is not None:
        bundle = token.write_bundle(root / "token-root.pem")
        auth = (
            f"auth:\n  token:\n    realm: {token.url}\n    service: {token_service}\n"
            f"    issuer: {token_issuer}\n    rootcertbundle: {bundle}\n"
        )
        username, password = token.username, token.password
    elif username and password:
        (root / "htpasswd").write_text(htpasswd_line(username, password))
        auth = f"auth:\n  htpasswd:\n    realm: ecslocal-tests\n    path: {root / 'htpasswd'}\n"
    for _ in range(attempts):
        port = free_port()
        config = root / "config.yml"
        config.write_text(
            "version: 0.1\n"
            "log:\n  level: warn\n  accesslog:\n    disabled: true\n"
            f"storage:\n  filesystem:\n    rootdirectory: {root / 'storage'}\n"
            "  delete:\n    enabled: true\n"
            f"http:\n  addr: 127.0.0.1:{port}\n" + auth
        )
        log = open(root / "registry.log", "ab")  # noqa: SIM115 - the child owns it
        process = subprocess.Popen(
            [binary, "serve", str(config)],
            stdout=log,
            stderr=log,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        log.close()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and process.poll() is None:
            if _probe(f"http://127.0.0.1:{port}/v2/") in (200, 401):
                host = f"127.0.0.1:{port}"
                return Registry(host, username, password, process, root, token is not None)
            time.sleep(0.1)
        stop_process(process)  # the port was taken meanwhile, or it failed: try another
    raise RuntimeError(f"docker-registry did not start: {(root / 'registry.log').read_text()}")


@contextlib.contextmanager
def docker_registry(
    root: Path,
    username: str | None = None,
    password: str | None = None,
    token: TokenServer | None = None,
) -> Iterator[Registry]:
    registry = start_docker_registry(root, username, password, token=token)
    try:
        yield registry
    finally:
        registry.stop()


def registry_manifest(registry: Registry, repository: str, reference: str) -> tuple[str, bytes]:
    """(Docker-Content-Digest, bytes) of a manifest, fetched as a plain HTTP client would."""
    request = urllib.request.Request(
        f"{registry.url}/v2/{repository}/manifests/{reference}",
        headers={
            "Accept": ", ".join(
                [
                    "application/vnd.oci.image.manifest.v1+json",
                    "application/vnd.oci.image.index.v1+json",
                    "application/vnd.docker.distribution.manifest.v2+json",
                    "application/vnd.docker.distribution.manifest.list.v2+json",
                ]
            )
        },
    )
    basic = ""
    if registry.username:
        credentials = f"{registry.username}:{registry.password}".encode()
        basic = "Basic " + base64.b64encode(credentials).decode()
        request.add_header("Authorization", basic)
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.headers["Docker-Content-Digest"], response.read()
    except urllib.error.HTTPError as error:
        challenge = error.headers.get("WWW-Authenticate", "")
        if error.code != 401 or not challenge.startswith("Bearer "):
            raise
    # A token registry: the realm gives a token for the challenge's scope (token.md).
    params = dict(re.findall(r'(\w+)="([^"]*)"', challenge))
    query = urllib.parse.urlencode({k: params[k] for k in ("service", "scope") if k in params})
    token_request = urllib.request.Request(f"{params['realm']}?{query}")
    if basic:
        token_request.add_header("Authorization", basic)
    with urllib.request.urlopen(token_request, timeout=30) as response:
        token = json.loads(response.read())["token"]
    request.add_header("Authorization", f"Bearer {token}")
    with urllib.request.urlopen(request, timeout=30) as response:
        return response.headers["Docker-Content-Digest"], response.read()


# -- skopeo -----------------------------------------------------------------------------------
@dataclass
class Skopeo:
    binary: str

    def _args(self, *args: str) -> list[str]:
        # --insecure-policy: no /etc/containers/policy.json is needed (or consulted).
        return [self.binary, "--insecure-policy", *args]

    def copy(
        self,
        source: str,
        dest: str,
        src_creds: str | None = None,
        dest_creds: str | None = None,
        *extra: str,
    ) -> None:
        args = ["copy", "--quiet", "--src-tls-verify=false", "--dest-tls-verify=false"]
        if src_creds:
            args += ["--src-creds", src_creds]
        if dest_creds:
            args += ["--dest-creds", dest_creds]
        run(self._args(*args, *extra, source, dest))

    def push(self, source: str, registry: Registry, ref: str, *extra: str) -> None:
        """``source`` in skopeo's transport syntax (oci:DIR:REF, docker-archive:FILE, ...)."""
        self.copy(source, f"docker://{ref}", None, registry.creds, *extra)

    def pull(self, registry: Registry, ref: str, dest: str) -> None:
        self.copy(f"docker://{ref}", dest, registry.creds, None)

    def raw_manifest(self, registry: Registry, ref: str) -> bytes:
        args = ["inspect", "--raw", "--tls-verify=false"]
        if registry.creds:
            args += ["--creds", registry.creds]
        return run(self._args(*args, f"docker://{ref}")).stdout.encode()


def skopeo() -> Skopeo:
    return Skopeo(require("skopeo"))


# -- podman -----------------------------------------------------------------------------------
@dataclass
class Podman:
    """podman with its own storage (``--root``/``--runroot`` under ``root``), runc, cgroupfs,
    file events, and its own containers.conf, registries.conf and auth file: nothing of the
    machine's /var/lib/containers or /etc/containers is used or written. (No `podman system
    reset` at the end: it would also delete the machine's networks in /etc/containers.)"""

    binary: str
    root: Path

    @property
    def env(self) -> dict[str, str]:
        return {
            **os.environ,
            "CONTAINERS_CONF": str(self.root / "containers.conf"),
            "CONTAINERS_REGISTRIES_CONF": str(self.root / "registries.conf"),
            "REGISTRY_AUTH_FILE": str(self.root / "auth.json"),
            "TMPDIR": str(self.root / "tmp"),
        }

    def setup(self) -> Podman:
        (self.root / "tmp").mkdir(parents=True, exist_ok=True)
        (self.root / "containers.conf").write_text(
            '[engine]\nevents_logger = "file"\ncgroup_manager = "cgroupfs"\n'
            f'runtime = "runc"\nstatic_dir = "{self.root / "libpod"}"\n'
        )
        (self.root / "registries.conf").write_text("unqualified-search-registries = []\n")
        (self.root / "auth.json").write_text('{"auths": {}}\n')
        return self

    def __call__(self, *args: str, input: str | None = None) -> str:
        base = [
            self.binary,
            "--root",
            str(self.root / "storage"),
            "--runroot",
            str(self.root / "run"),
            "--runtime",
            "runc",
            "--cgroup-manager",
            "cgroupfs",
            "--events-backend",
            "file",
            "--storage-driver",
            "overlay",
            "--tmpdir",
            str(self.root / "tmp"),
        ]
        return run([*base, *args], env=self.env, input=input).stdout

    def login(self, registry: Registry) -> None:
        self(
            "login",
            "--tls-verify=false",
            "--username",
            str(registry.username),
            "--password-stdin",
            registry.host,
            input=str(registry.password),
        )

    def push(self, image: str, ref: str) -> str:
        """Push; returns the pushed manifest's digest (``--digestfile``)."""
        digestfile = self.root / "tmp" / "digest"
        self(
            "push",
            "--quiet",
            "--tls-verify=false",
            "--digestfile",
            str(digestfile),
            image,
            f"docker://{ref}",
        )
        return digestfile.read_text().strip()

    def pull(self, ref: str) -> str:
        """Pull; returns the image id (the config digest's hex)."""
        return self("pull", "--quiet", "--tls-verify=false", ref).strip().splitlines()[-1]

    def stop(self) -> None:
        unmount_under(self.root)
        kill_processes_mentioning(str(self.root))
        shutil.rmtree(self.root, ignore_errors=True)


@contextlib.contextmanager
def podman() -> Iterator[Podman]:
    require("runc")
    client = Podman(require("podman"), short_tmpdir("ecslocal-podman-")).setup()
    try:
        yield client
    finally:
        client.stop()


# -- dockerd + docker -------------------------------------------------------------------------
@dataclass
class Docker:
    """A private dockerd (overlay2, no iptables, no bridge; own data root, exec root, pidfile,
    socket and empty daemon.json under ``root``) and the docker CLI pointed at it through
    DOCKER_HOST, with its own DOCKER_CONFIG (login credentials stay in ``root``)."""

    dockerd: str
    cli: str
    root: Path
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def socket(self) -> Path:
        return self.root / "docker.sock"

    @property
    def env(self) -> dict[str, str]:
        return {
            **os.environ,
            "DOCKER_HOST": f"unix://{self.socket}",
            "DOCKER_CONFIG": str(self.root / "client"),
            "DOCKER_BUILDKIT": "0",
        }

    def start(self, timeout: float = 60) -> Docker:
        (self.root / "client").mkdir(parents=True, exist_ok=True)
        # dockerd 20.10 writes a libtrust key to /etc/docker/key.json unless told elsewhere.
        config = {"deprecated-key-path": str(self.root / "key.json")}
        (self.root / "daemon.json").write_text(json.dumps(config) + "\n")
        log = open(self.root / "dockerd.log", "ab")  # noqa: SIM115 - the child owns it
        self.process = subprocess.Popen(
            [
                self.dockerd,
                "--config-file",
                str(self.root / "daemon.json"),
                "--data-root",
                str(self.root / "data"),
                "--exec-root",
                str(self.root / "exec"),
                "--pidfile",
                str(self.root / "docker.pid"),
                "--host",
                f"unix://{self.socket}",
                "--storage-driver",
                "overlay2",
                "--iptables=false",
                "--bridge=none",
                "--userland-proxy=false",
                "--log-level",
                "warn",
            ],
            stdout=log,
            stderr=log,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                break
            probe = subprocess.run(
                [self.cli, "version", "--format", "{{.Server.Version}}"],
                env=self.env,
                capture_output=True,
                text=True,
            )
            if probe.returncode == 0:
                return self
            time.sleep(0.3)
        log_text = (self.root / "dockerd.log").read_text(errors="replace")[-3000:]
        self.stop()
        pytest.skip(f"dockerd did not start here: {log_text}")

    def __call__(self, *args: str, input: str | None = None) -> str:
        return run([self.cli, *args], env=self.env, input=input).stdout

    def login(self, registry: Registry) -> None:
        self(
            "login",
            "--username",
            str(registry.username),
            "--password-stdin",
            registry.host,
            input=str(registry.password),
        )

    def push(self, ref: str) -> str:
        """Push; returns the digest docker printed (``<tag>: digest: sha256:... size: N``)."""
        out = self("push", ref)
        for line in out.splitlines():
            if " digest: " in line:
                return line.split(" digest: ", 1)[1].split()[0]
        raise AssertionError(f"docker push printed no digest:\n{out}")

    def image_id(self, ref: str) -> str:
        return self("image", "inspect", "--format", "{{.Id}}", ref).strip()

    def repo_digests(self, ref: str) -> list[str]:
        out = self("image", "inspect", "--format", "{{json .RepoDigests}}", ref)
        return list(json.loads(out))

    def stop(self) -> None:
        if self.process is not None:
            stop_process(self.process)
            self.process = None
        # containerd (dockerd's managed one) and its shims keep our exec root in their argv.
        kill_processes_mentioning(str(self.root))
        unmount_under(self.root)
        shutil.rmtree(self.root, ignore_errors=True)


def docker_cli() -> str:
    """Debian's docker CLI beside Debian's dockerd when both are there (same API version),
    else any docker on PATH."""
    return shutil.which("docker", path="/usr/bin") or require("docker")


@contextlib.contextmanager
def dockerd() -> Iterator[Docker]:
    binary = require("dockerd")
    require("runc")
    if shutil.which("containerd") is None:
        pytest.skip("containerd is missing (Debian package containerd)")
    daemon = Docker(binary, docker_cli(), short_tmpdir("ecslocal-dockerd-"))
    try:
        yield daemon.start()
    finally:
        daemon.stop()


# -- oras (the PyPI package) ----------------------------------------------------------------
@dataclass
class Oras:
    """The ``oras`` Python SDK over plain HTTP, pushing an image's blobs and manifest and
    pulling them back by tag or digest."""

    client: Any
    bearer: bool = False

    def push_image(
        self, ref: str, blobs: dict[str, bytes], manifest: dict[str, Any], workdir: Path
    ) -> str:
        """Upload each blob and the manifest; the registry's Docker-Content-Digest."""
        container = self.client.get_container(ref)
        workdir.mkdir(parents=True, exist_ok=True)
        if self.bearer:
            self._push_token(container)
        for descriptor in [manifest["config"], *manifest["layers"]]:
            path = workdir / descriptor["digest"].replace(":", "_")
            path.write_bytes(blobs[descriptor["digest"]])
            response = self.client.upload_blob(str(path), container, descriptor)
            assert response.status_code in (200, 201, 202), response.text
        response = self.client.upload_manifest(manifest, container)
        assert response.status_code == 201, response.text
        return str(response.headers["Docker-Content-Digest"])

    def _push_token(self, container: Any) -> None:
        """oras-py keeps one Bearer token for every request (auth/token.py): the pull token a
        HEAD earned is then refused for the upload. Ask oras for a token of the upload's own
        challenge (scope pull,push) first."""
        from oras.auth.utils import parse_auth_header

        url = f"{self.client.prefix}://{container.upload_blob_url()}"
        challenge = self.client.session.post(url).headers.get("Www-Authenticate", "")
        self.client.auth.token = self.client.auth.request_token(parse_auth_header(challenge))

    def pull_image(self, ref: str, outdir: Path) -> tuple[dict[str, Any], dict[str, bytes]]:
        """The manifest and every blob it names, downloaded by digest."""
        container = self.client.get_container(ref)
        manifest = self.client.get_manifest(container)
        blobs = {}
        for descriptor in [manifest["config"], *manifest["layers"]]:
            out = outdir / descriptor["digest"].replace(":", "_")
            self.client.download_blob(container, descriptor["digest"], str(out))
            blobs[descriptor["digest"]] = out.read_bytes()
        return manifest, blobs


def oras(registry: Registry) -> Oras:
    try:
        import oras.client
    except ImportError:
        pytest.skip("the oras package is missing (pip install oras; pyproject's test extra)")
    client = oras.client.OrasClient(
        hostname=registry.host,
        insecure=True,
        auth_backend="basic" if registry.username and not registry.bearer else "token",
    )
    if registry.username:
        client.auth.set_basic_auth(registry.username, registry.password)
    return Oras(client, registry.bearer)
