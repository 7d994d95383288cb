"""HTTP hygiene of the daemon's one port: a half-sent request does not hold a connection open
forever, and a large body is not buffered before the caller is known to be allowed to send it.

Timeouts are set to 1 s here (ECSLOCAL_HEADER_TIMEOUT / ECSLOCAL_BODY_TIMEOUT; 60 s by
default, nginx's client_header_timeout and client_body_timeout). The tests wait for the
server's close (recv() returning b"") with a generous socket timeout, never for a margin.
"""

from __future__ import annotations

import http.client
import json
import socket
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from tests.conftest import Server

ECS_TARGET = "AmazonEC2ContainerServiceV20141113.ListClusters"
BIG = 15 * 1024 * 1024


@pytest.fixture
def strict_server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Server]:
    monkeypatch.setenv("ECSLOCAL_HEADER_TIMEOUT", "1")
    monkeypatch.setenv("ECSLOCAL_BODY_TIMEOUT", "1")
    s = Server(tmp_path / "data").start()
    yield s
    s.stop()


def _closed_by_server(sock: socket.socket) -> bool:
    """Whether the server closes the connection (within a minute; the timeout is 1 s)."""
    sock.settimeout(60)
    try:
        while True:
            data = sock.recv(65536)
            if not data:
                return True
    except TimeoutError:
        return False
    except ConnectionResetError:
        return True


def _connect(server: Server) -> socket.socket:
    return socket.create_connection(("127.0.0.1", server.port), timeout=60)


def _claims(key: str, service: str = "ecs") -> dict[str, str]:
    """Headers that pass the header-only checks (a known key, scoped to ``service`` in the
    region, dated now) with a signature that is wrong: only the full check, after the body,
    could tell."""
    now = datetime.now(UTC)
    scope = f"{now:%Y%m%d}/us-east-1/{service}/aws4_request"
    return {
        "X-Amz-Date": f"{now:%Y%m%dT%H%M%SZ}",
        "Authorization": f"AWS4-HMAC-SHA256 Credential={key}/{scope}, "
        f"SignedHeaders=host;x-amz-date, Signature={'0' * 64}",
    }


@pytest.mark.parametrize(
    "partial",
    [b"GET /_ecslocal/v1/hea", b"POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Amz-Tar"],
    ids=["request-line", "headers"],
)
def test_a_request_head_never_completed_is_closed(strict_server: Server, partial: bytes) -> None:
    with _connect(strict_server) as sock:
        sock.sendall(partial)
        assert _closed_by_server(sock)


def test_a_silent_connection_is_closed(strict_server: Server) -> None:
    with _connect(strict_server) as sock:
        assert _closed_by_server(sock)


def test_a_body_never_finished_is_closed(strict_server: Server) -> None:
    """The gateway reads the body once the header-only checks pass; a client that stops
    sending it is cut off."""
    headers = {"X-Amz-Target": ECS_TARGET, "Content-Length": "100", **_claims("test")}
    head = "POST / HTTP/1.1\r\nHost: 127.0.0.1\r\n"
    head += "".join(f"{k}: {v}\r\n" for k, v in headers.items()) + "\r\n"
    with _connect(strict_server) as sock:
        sock.sendall(head.encode() + b'{"maxResults": 1')
        assert _closed_by_server(sock)


def test_a_body_never_finished_outside_the_gateway_is_closed(strict_server: Server) -> None:
    head = (
        "POST /_ecslocal/v1/faults HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        "Content-Type: application/json\r\nContent-Length: 100\r\n\r\n"
    )
    with _connect(strict_server) as sock:
        sock.sendall(head.encode() + b'{"target": ')
        assert _closed_by_server(sock)


def test_a_complete_request_is_still_answered_on_a_kept_alive_connection(
    strict_server: Server,
) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", strict_server.port, timeout=60)
    for _ in range(2):
        conn.request("GET", "/_ecslocal/v1/health")
        response = conn.getresponse()
        assert response.status == 200
        response.read()
    conn.close()


# -- auth before the body ------------------------------------------------------------------------
def _rss_kib(server: Server) -> int:
    assert server.proc is not None
    for line in Path(f"/proc/{server.proc.pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


def _post(
    server: Server, headers: dict[str, str], body: bytes, path: str = "/"
) -> tuple[int, dict[str, str], bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=120)
    try:
        try:
            conn.request("POST", path, body=body, headers=headers)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server answered and closed before the whole body was sent
        response = conn.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        conn.close()


def _parallel(n: int, call: object) -> list[tuple[int, dict[str, str], bytes]]:
    results: list[tuple[int, dict[str, str], bytes]] = [(0, {}, b"")] * n

    def run(i: int) -> None:
        results[i] = call()  # type: ignore[operator]

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    return results


@pytest.fixture(scope="module")
def big_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    s = Server(tmp_path_factory.mktemp("hygiene")).start()
    yield s
    s.stop()


def test_unsigned_large_bodies_are_refused_before_they_are_read(big_server: Server) -> None:
    """8 unsigned 15 MiB bodies in parallel: each refused as AWS refuses an unsigned call,
    and the daemon's RSS barely moves (it grew by 130 MiB when every body was read first)."""
    json_headers = {
        "X-Amz-Target": ECS_TARGET,
        "Content-Type": "application/x-amz-json-1.1",
    }
    status, _, body = _post(big_server, json_headers, b"{}")  # loads the model, warms up
    assert status == 400
    before = _rss_kib(big_server)
    big = b" " * BIG
    results = _parallel(8, lambda: _post(big_server, json_headers, big))
    grown_mib = (_rss_kib(big_server) - before) / 1024
    for status, headers, body in results:
        assert status == 400
        assert headers["x-amzn-ErrorType"] == "MissingAuthenticationTokenException"
        assert json.loads(body)["message"] == "Missing Authentication Token"
    assert grown_mib < 30, f"RSS grew {grown_mib:.0f} MiB"


def test_unsigned_large_query_bodies_are_refused_before_they_are_read(big_server: Server) -> None:
    form = {"Content-Type": "application/x-www-form-urlencoded; charset=utf-8"}
    _post(big_server, form, b"Action=GetCallerIdentity&Version=2011-06-15")
    before = _rss_kib(big_server)
    big = b"Action=GetCallerIdentity&Version=2011-06-15&Pad=" + b"x" * BIG
    results = _parallel(4, lambda: _post(big_server, form, big))
    grown_mib = (_rss_kib(big_server) - before) / 1024
    for status, _, body in results:
        assert status == 403
        assert b"<Code>MissingAuthenticationToken</Code>" in body
    assert grown_mib < 30, f"RSS grew {grown_mib:.0f} MiB"


def test_unknown_keys_are_refused_before_the_body_is_read(big_server: Server) -> None:
    big = b" " * BIG
    json_headers = {"X-Amz-Target": ECS_TARGET, **_claims("AKIANOBODY")}
    query_headers = {
        "Content-Type": "application/x-www-form-urlencoded",
        **_claims("AKIANOBODY", "sts"),
    }
    before = _rss_kib(big_server)
    results = _parallel(4, lambda: _post(big_server, json_headers, big))
    results += _parallel(4, lambda: _post(big_server, query_headers, big))
    grown_mib = (_rss_kib(big_server) - before) / 1024
    for status, headers, body in results[:4]:
        assert (status, headers["x-amzn-ErrorType"]) == (400, "UnrecognizedClientException")
        assert (
            json.loads(body)["message"] == "The security token included in the request is invalid."
        )
    for status, _, body in results[4:]:
        assert status == 403 and b"<Code>InvalidClientTokenId</Code>" in body
    assert grown_mib < 30, f"RSS grew {grown_mib:.0f} MiB"


def test_a_body_over_the_limit_is_refused_unread(big_server: Server) -> None:
    """A Content-Length over the service's limit (16 MiB) is a 413 in the protocol's shape,
    answered before a byte of the body is sent."""
    headers = {"X-Amz-Target": ECS_TARGET, **_claims("test")}
    head = "POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 20000000\r\n"
    head += "".join(f"{k}: {v}\r\n" for k, v in headers.items()) + "\r\n"
    with _connect(big_server) as sock:
        sock.sendall(head.encode())
        response = http.client.HTTPResponse(sock)
        response.begin()
        assert response.status == 413
        assert response.getheader("x-amzn-ErrorType") == "RequestEntityTooLarge"
        body = json.loads(response.read())
        assert body["__type"] == "RequestEntityTooLarge"


def test_unsigned_large_bodies_to_the_local_api_are_refused_unread(big_server: Server) -> None:
    """The same for ecslocal's own API (/_ecslocal/v1): the signature's headers are checked
    before the body is read, and a body over its limit is refused from its Content-Length."""
    headers = {"Content-Type": "application/json"}
    status, _, _ = _post(big_server, headers, b"{}", path="/_ecslocal/v1/faults")
    assert status == 401
    before = _rss_kib(big_server)
    big = b" " * BIG
    results = _parallel(8, lambda: _post(big_server, headers, big, path="/_ecslocal/v1/faults"))
    grown_mib = (_rss_kib(big_server) - before) / 1024
    for status, _, body in results:
        assert status == 401
        assert set(json.loads(body)) == {"message"}
    assert grown_mib < 30, f"RSS grew {grown_mib:.0f} MiB"
