"""`aws ecr` (the aws CLI v1 from PyPI) against ecslocal: the commands a user types, and
`aws ecr get-login-password`, whose password (awscli customizations/ecr.py: the token decoded
and split on ':' into exactly two parts) opens the registry as user AWS."""

from __future__ import annotations

import base64
import uuid
from pathlib import Path

from tests.conftest import Server
from tests.test_aws_cli import aws, aws_json
from tests.test_ecr_api import digest, image_manifest, registry_get, upload


def test_repository_lifecycle_with_the_cli(server: Server, tmp_path: Path) -> None:
    name = f"cli/app-{uuid.uuid4().hex[:8]}"
    created = aws_json(
        server, "ecr", "create-repository", "--repository-name", name,
        "--image-tag-mutability", "IMMUTABLE",
    )["repository"]  # fmt: skip
    assert created["repositoryUri"] == f"localhost:{server.port}/{name}"
    assert created["imageTagMutability"] == "IMMUTABLE"
    described = aws_json(server, "ecr", "describe-repositories", "--repository-names", name)
    assert described["repositories"][0]["repositoryArn"] == created["repositoryArn"]
    missing = aws(server, "ecr", "describe-repositories", "--repository-names", "nope", check=False)
    assert missing.returncode != 0
    assert (
        "RepositoryNotFoundException) when calling the DescribeRepositories operation: The"
        " repository with name 'nope' does not exist in the registry with id '000000000000'"
    ) in missing.stderr

    ecr = server.client("ecr")  # blobs go up through the layer API, the manifest through the CLI
    config, layer = b'{"os":"linux"}', b"cli layer"
    upload(ecr, name, config)
    upload(ecr, name, layer)
    manifest = tmp_path / "manifest.json"
    manifest.write_text(image_manifest(config, layer))
    put = aws_json(
        server, "ecr", "put-image", "--repository-name", name,
        "--image-manifest", f"file://{manifest}", "--image-tag", "v1",
    )["image"]  # fmt: skip
    assert put["imageId"] == {"imageDigest": digest(manifest.read_bytes()), "imageTag": "v1"}
    again = aws(
        server, "ecr", "put-image", "--repository-name", name,
        "--image-manifest", f"file://{manifest}", "--image-tag", "v1", check=False,
    )  # fmt: skip
    assert "ImageAlreadyExistsException" in again.stderr
    listed = aws_json(server, "ecr", "list-images", "--repository-name", name)
    assert listed["imageIds"] == [put["imageId"]]
    details = aws_json(server, "ecr", "describe-images", "--repository-name", name)
    assert details["imageDetails"][0]["imageTags"] == ["v1"]
    deleted = aws_json(
        server, "ecr", "batch-delete-image", "--repository-name", name, "--image-ids",
        "imageTag=v1",
    )  # fmt: skip
    assert deleted == {"imageIds": [put["imageId"]], "failures": []}
    aws_json(server, "ecr", "delete-repository", "--repository-name", name, "--force")
    gone = aws(server, "ecr", "describe-repositories", "--repository-names", name, check=False)
    assert "RepositoryNotFoundException" in gone.stderr


def test_get_login_password_opens_the_registry(server: Server) -> None:
    """`aws ecr get-login-password` prints the password; Basic AWS:<password> is accepted by
    the registry (what `docker login --username AWS --password-stdin` sends)."""
    password = aws(server, "ecr", "get-login-password").stdout.strip()
    assert password and ":" not in password
    basic = base64.b64encode(f"AWS:{password}".encode()).decode()
    assert registry_get(f"{server.url}/v2/", basic)[0] == 200
    token = aws_json(server, "ecr", "get-authorization-token")["authorizationData"][0]
    assert token["proxyEndpoint"] == f"http://localhost:{server.port}"
    user, _, rest = base64.b64decode(token["authorizationToken"]).decode().partition(":")
    assert user == "AWS" and rest and ":" not in rest
    # awscli v1's get-login prints the docker login line for proxyEndpoint (awscli ecr.py).
    line = aws(server, "ecr", "get-login", "--no-include-email").stdout.split()
    assert line[:4] == ["docker", "login", "-u", "AWS"] and line[4] == "-p"
    assert line[6:] == [f"http://localhost:{server.port}"]
    basic = base64.b64encode(f"AWS:{line[5]}".encode()).decode()
    assert registry_get(f"{server.url}/v2/", basic)[0] == 200
