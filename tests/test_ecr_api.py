"""The ECR control plane (botocore ``ecr/2015-09-21``) driven by boto3 against a real daemon.

Shapes and error codes are botocore's; the messages are those the notes quote from the live
service (/work/shared/reference/images-networking-exec.md §1.6, §1.7). Images are built by hand
(a few bytes of config and layer) and pushed the way the ECR proxy pushes: the layer
operations, then PutImage.
"""

from __future__ import annotations

import base64
import email.utils
import hashlib
import json
import uuid
from typing import Any

import pytest
from botocore.exceptions import ClientError

from tests.conftest import Server

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"


def digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def repo_name() -> str:
    return f"team/app-{uuid.uuid4().hex[:8]}"


def error(exc: pytest.ExceptionInfo[ClientError]) -> tuple[str, str]:
    err = exc.value.response["Error"]
    return err["Code"], err["Message"]


def upload(ecr: Any, repo: str, blob: bytes, part: int | None = None) -> str:
    """Initiate/UploadLayerPart (in parts of ``part`` bytes)/CompleteLayerUpload."""
    upload_id = ecr.initiate_layer_upload(repositoryName=repo)["uploadId"]
    part = part or max(len(blob), 1)
    for first in range(0, len(blob), part):
        chunk = blob[first : first + part]
        ecr.upload_layer_part(
            repositoryName=repo,
            uploadId=upload_id,
            partFirstByte=first,
            partLastByte=first + len(chunk) - 1,
            layerPartBlob=chunk,
        )
    d = digest(blob)
    ecr.complete_layer_upload(repositoryName=repo, uploadId=upload_id, layerDigests=[d])
    return d


def image_manifest(config: bytes, *layers: bytes, media_type: str = OCI_MANIFEST) -> str:
    docker = media_type == DOCKER_MANIFEST
    return json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": media_type,
            "config": {
                "mediaType": "application/vnd.docker.container.image.v1+json"
                if docker
                else OCI_CONFIG,
                "digest": digest(config),
                "size": len(config),
            },
            "layers": [
                {
                    "mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip"
                    if docker
                    else OCI_LAYER,
                    "digest": digest(layer),
                    "size": len(layer),
                }
                for layer in layers
            ],
        }
    )


def push(ecr: Any, repo: str, tag: str | None, seed: str = "", **kw: Any) -> tuple[str, str]:
    """An image with one layer pushed to ``repo`` as docker pushes through the ECR proxy: the
    blobs BatchCheckLayerAvailability does not find, then PutImage. (manifest, digest)."""
    config = json.dumps({"architecture": "amd64", "os": "linux", "seed": seed}).encode()
    layer = f"layer bytes {seed}".encode()
    found = ecr.batch_check_layer_availability(
        repositoryName=repo, layerDigests=[digest(config), digest(layer)]
    )["layers"]
    have = {layer["layerDigest"] for layer in found}
    for blob in (config, layer):
        if digest(blob) not in have:
            upload(ecr, repo, blob)
    manifest = image_manifest(config, layer, **kw)
    params: dict[str, Any] = {"repositoryName": repo, "imageManifest": manifest}
    if tag is not None:
        params["imageTag"] = tag
    ecr.put_image(**params)
    return manifest, digest(manifest.encode())


@pytest.fixture(scope="module")
def ecr(server: Server) -> Any:
    return server.client("ecr")


# -- repositories (CreateRepository, DescribeRepositories, DeleteRepository) ---------------


def test_create_repository_shape_and_aws_defaults(server: Server, ecr: Any) -> None:
    """botocore Repository: ARN arn:aws:ecr:<region>:<acct>:repository/<name>; repositoryUri
    <registry-host>:<port>/<name>; scanOnPush false, AES256 and MUTABLE by default."""
    name = repo_name()
    repo = ecr.create_repository(repositoryName=name)["repository"]
    assert repo["repositoryArn"] == f"arn:aws:ecr:us-east-1:000000000000:repository/{name}"
    assert repo["registryId"] == "000000000000"
    assert repo["repositoryUri"] == f"localhost:{server.port}/{name}"
    assert repo["imageTagMutability"] == "MUTABLE"
    assert repo["imageScanningConfiguration"] == {"scanOnPush": False}
    assert repo["encryptionConfiguration"] == {"encryptionType": "AES256"}
    assert "imageTagMutabilityExclusionFilters" not in repo
    described = ecr.describe_repositories(repositoryNames=[name])["repositories"]
    assert described == [repo]


def test_create_repository_echoes_its_settings(ecr: Any) -> None:
    repo = ecr.create_repository(
        repositoryName=repo_name(),
        imageTagMutability="IMMUTABLE_WITH_EXCLUSION",
        imageTagMutabilityExclusionFilters=[{"filterType": "WILDCARD", "filter": "latest"}],
        imageScanningConfiguration={"scanOnPush": True},
        encryptionConfiguration={"encryptionType": "KMS", "kmsKey": "alias/mine"},
    )["repository"]
    assert repo["imageTagMutability"] == "IMMUTABLE_WITH_EXCLUSION"
    assert repo["imageTagMutabilityExclusionFilters"] == [
        {"filterType": "WILDCARD", "filter": "latest"}
    ]
    assert repo["imageScanningConfiguration"] == {"scanOnPush": True}
    assert repo["encryptionConfiguration"] == {"encryptionType": "KMS", "kmsKey": "alias/mine"}


def test_repository_name_pattern_is_ecrs_invalid_parameter(ecr: Any) -> None:
    """RepositoryName pattern; the live message as captured from CreateRepository."""
    with pytest.raises(ClientError) as exc:
        ecr.create_repository(repositoryName="Bad_Name!")
    assert error(exc) == (
        "InvalidParameterException",
        "Invalid parameter at 'repositoryName' failed to satisfy constraint: 'must satisfy"
        " regular expression '[a-z0-9]+((\\.|_|__|-+)[a-z0-9]+)*(/[a-z0-9]+((\\.|_|__|-+)"
        "[a-z0-9]+)*)*''",
    )
    for bad in ("a", "x" * 257):  # RepositoryName min 2, max 256
        with pytest.raises(ClientError) as exc:
            server_ecr_unvalidated(ecr).create_repository(repositoryName=bad)
        assert error(exc)[0] == "ValidationException"


def server_ecr_unvalidated(ecr: Any) -> Any:
    """The same endpoint without botocore's client-side checks (to reach the server's)."""
    import boto3
    from botocore.config import Config

    return boto3.client(
        "ecr",
        endpoint_url=ecr.meta.endpoint_url,
        region_name="us-east-1",
        aws_access_key_id="test",
        aws_secret_access_key="test",
        config=Config(parameter_validation=False),
    )


def test_create_repository_twice(ecr: Any) -> None:
    name = repo_name()
    ecr.create_repository(repositoryName=name)
    with pytest.raises(ClientError) as exc:
        ecr.create_repository(repositoryName=name)
    assert error(exc) == (
        "RepositoryAlreadyExistsException",
        f"The repository with name '{name}' already exists in the registry with id '000000000000'",
    )


def test_exclusion_filters_go_with_the_exclusion_modes(ecr: Any) -> None:
    with pytest.raises(ClientError) as exc:
        ecr.create_repository(
            repositoryName=repo_name(), imageTagMutability="MUTABLE_WITH_EXCLUSION"
        )
    assert error(exc)[0] == "InvalidParameterException"
    with pytest.raises(ClientError) as exc:
        ecr.create_repository(
            repositoryName=repo_name(),
            imageTagMutability="IMMUTABLE",
            imageTagMutabilityExclusionFilters=[{"filterType": "WILDCARD", "filter": "x*"}],
        )
    assert error(exc)[0] == "InvalidParameterException"


def test_describe_missing_repository_message(ecr: Any) -> None:
    """notes §1.7: "The repository with name '<name>' does not exist in the registry with
    id '<acct>'"."""
    with pytest.raises(ClientError) as exc:
        ecr.describe_repositories(repositoryNames=["does-not-exist"])
    assert error(exc) == (
        "RepositoryNotFoundException",
        "The repository with name 'does-not-exist' does not exist in the registry with id"
        " '000000000000'",
    )


def test_describe_repositories_pages(fresh_server: Server) -> None:
    """DescribeRepositoriesRequest.maxResults/nextToken; maxResults cannot be combined with
    repositoryNames."""
    ecr = fresh_server.start().client("ecr")
    names = [f"page/repo-{i}" for i in range(5)]
    for name in names:
        ecr.create_repository(repositoryName=name)
    first = ecr.describe_repositories(maxResults=2)
    assert [r["repositoryName"] for r in first["repositories"]] == names[:2]
    seen = [r["repositoryName"] for r in first["repositories"]]
    token = first["nextToken"]
    while token:
        page = ecr.describe_repositories(maxResults=2, nextToken=token)
        seen += [r["repositoryName"] for r in page["repositories"]]
        token = page.get("nextToken")
    assert seen == names
    assert len(ecr.describe_repositories()["repositories"]) == 5
    with pytest.raises(ClientError) as exc:
        ecr.describe_repositories(repositoryNames=names[:1], maxResults=1)
    assert error(exc)[0] == "InvalidParameterException"
    with pytest.raises(ClientError) as exc:
        ecr.describe_repositories(nextToken="not-a-token")
    assert error(exc)[0] == "InvalidParameterException"


def test_delete_repository_needs_force_when_it_has_images(ecr: Any) -> None:
    name = repo_name()
    ecr.create_repository(repositoryName=name)
    push(ecr, name, "v1")
    with pytest.raises(ClientError) as exc:
        ecr.delete_repository(repositoryName=name)
    assert error(exc) == (  # the live message, as terraform and CloudFormation logs quote it
        "RepositoryNotEmptyException",
        f"The repository with name '{name}' in registry with id '000000000000' cannot be"
        " deleted because it still contains images",
    )
    deleted = ecr.delete_repository(repositoryName=name, force=True)["repository"]
    assert deleted["repositoryName"] == name
    with pytest.raises(ClientError) as exc:
        ecr.describe_repositories(repositoryNames=[name])
    assert error(exc)[0] == "RepositoryNotFoundException"
    empty = repo_name()
    ecr.create_repository(repositoryName=empty)
    ecr.delete_repository(repositoryName=empty)  # an empty one needs no force


@pytest.mark.parametrize(
    "op,params",
    [
        ("delete_repository", {}),
        ("put_image_tag_mutability", {"imageTagMutability": "IMMUTABLE"}),
        ("list_images", {}),
        ("describe_images", {}),
        ("batch_get_image", {"imageIds": [{"imageTag": "x"}]}),
        ("batch_delete_image", {"imageIds": [{"imageTag": "x"}]}),
        ("put_image", {"imageManifest": "{}"}),
        ("initiate_layer_upload", {}),
        ("batch_check_layer_availability", {"layerDigests": ["sha256:00"]}),
        ("get_download_url_for_layer", {"layerDigest": "sha256:00"}),
    ],
)
def test_every_repository_operation_says_repository_not_found(
    ecr: Any, op: str, params: dict[str, Any]
) -> None:
    with pytest.raises(ClientError) as exc:
        getattr(ecr, op)(repositoryName="missing/repo", **params)
    assert error(exc) == (
        "RepositoryNotFoundException",
        "The repository with name 'missing/repo' does not exist in the registry with id"
        " '000000000000'",
    )


@pytest.mark.parametrize(
    ("op", "action", "params", "resource"),
    [
        ("create_repository", "CreateRepository", {"repositoryName": "theirs"}, "theirs"),
        ("describe_repositories", "DescribeRepositories", {}, "*"),
        ("delete_repository", "DeleteRepository", {"repositoryName": "theirs"}, "theirs"),
        ("list_images", "ListImages", {"repositoryName": "theirs"}, "theirs"),
    ],
)
def test_another_accounts_registry_is_access_denied(
    ecr: Any, op: str, action: str, params: dict[str, Any], resource: str
) -> None:
    """A daemon account has one registry; another account's registryId (no repository policy
    can grant this caller anything) is IAM's implicit deny, AccessDeniedException in IAM's
    words (IAM User Guide "Access denied error messages"), not a repository made there."""
    with pytest.raises(ClientError) as exc:
        getattr(ecr, op)(registryId="111111111111", **params)
    code, message = error(exc)
    assert code == "AccessDeniedException"
    assert message.endswith(
        f"is not authorized to perform: ecr:{action} on resource:"
        f" arn:aws:ecr:us-east-1:111111111111:repository/{resource} because no"
        f" resource-based policy allows the ecr:{action} action"
    ), message
    assert message.startswith("User: arn:aws:")
    names = [r["repositoryName"] for r in ecr.describe_repositories()["repositories"]]
    assert "theirs" not in names
    # the caller's own account as registryId is the default registry
    assert "repositories" in ecr.describe_repositories(registryId="000000000000")


# -- GetAuthorizationToken -----------------------------------------------------------------


def test_authorization_token_is_aws_password_for_12_hours(server: Server, ecr: Any) -> None:
    """AuthorizationData: base64("AWS:<password>"), "valid for 12 hours", proxyEndpoint the
    registry URL without a trailing slash; the password holds no ':' (awscli's split)."""
    response = ecr.get_authorization_token()
    (data,) = response["authorizationData"]
    user, password = base64.b64decode(data["authorizationToken"]).decode().split(":")
    assert user == "AWS" and password
    assert data["proxyEndpoint"] == f"http://localhost:{server.port}"
    date = response["ResponseMetadata"]["HTTPHeaders"]["date"]
    served_at = email.utils.parsedate_to_datetime(date).timestamp()  # the daemon's clock, 1 s
    remaining = data["expiresAt"].timestamp() - served_at
    assert 12 * 3600 <= remaining < 12 * 3600 + 1
    again = ecr.get_authorization_token()["authorizationData"][0]["authorizationToken"]
    assert again != data["authorizationToken"]


# -- resource tags ---------------------------------------------------------------------------


def test_tag_untag_list_tags(ecr: Any) -> None:
    name = repo_name()
    arn = ecr.create_repository(repositoryName=name, tags=[{"Key": "team", "Value": "a"}])[
        "repository"
    ]["repositoryArn"]
    assert ecr.list_tags_for_resource(resourceArn=arn)["tags"] == [{"Key": "team", "Value": "a"}]
    ecr.tag_resource(
        resourceArn=arn, tags=[{"Key": "team", "Value": "b"}, {"Key": "env", "Value": "dev"}]
    )
    tags = ecr.list_tags_for_resource(resourceArn=arn)["tags"]
    assert sorted((t["Key"], t["Value"]) for t in tags) == [("env", "dev"), ("team", "b")]
    ecr.untag_resource(resourceArn=arn, tagKeys=["team"])
    assert ecr.list_tags_for_resource(resourceArn=arn)["tags"] == [{"Key": "env", "Value": "dev"}]


def test_tag_errors(ecr: Any) -> None:
    """TooManyTagsException (50 per repository), InvalidTagParameterException (key 128,
    value 256), RepositoryNotFoundException, InvalidParameterException for a non-ARN."""
    name = repo_name()
    arn = ecr.create_repository(repositoryName=name)["repository"]["repositoryArn"]
    many = [{"Key": f"k{i}", "Value": "v"} for i in range(51)]
    with pytest.raises(ClientError) as exc:
        ecr.tag_resource(resourceArn=arn, tags=many)
    assert error(exc)[0] == "TooManyTagsException"
    with pytest.raises(ClientError) as exc:
        ecr.create_repository(repositoryName=repo_name(), tags=many)
    assert error(exc)[0] == "TooManyTagsException"
    with pytest.raises(ClientError) as exc:
        ecr.tag_resource(resourceArn=arn, tags=[{"Key": "k" * 129, "Value": "v"}])
    assert error(exc)[0] == "InvalidTagParameterException"
    gone = arn.replace(name, "not/there")
    with pytest.raises(ClientError) as exc:
        ecr.list_tags_for_resource(resourceArn=gone)
    assert error(exc)[0] == "RepositoryNotFoundException"
    with pytest.raises(ClientError) as exc:
        ecr.list_tags_for_resource(resourceArn="not-an-arn")
    assert error(exc)[0] == "InvalidParameterException"


# -- state survives a restart ------------------------------------------------------------------


def test_repositories_images_and_tags_survive_a_restart(fresh_server: Server) -> None:
    fresh_server.start()
    ecr = fresh_server.client("ecr")
    name = repo_name()
    ecr.create_repository(
        repositoryName=name, imageTagMutability="IMMUTABLE", tags=[{"Key": "k", "Value": "v"}]
    )
    manifest, image_digest = push(ecr, name, "v1")
    before = ecr.describe_images(repositoryName=name)["imageDetails"]
    fresh_server.stop()
    fresh_server.start()
    ecr = fresh_server.client("ecr")
    repo = ecr.describe_repositories(repositoryNames=[name])["repositories"][0]
    assert repo["imageTagMutability"] == "IMMUTABLE"
    assert repo["repositoryUri"] == f"localhost:{fresh_server.port}/{name}"
    assert ecr.list_tags_for_resource(resourceArn=repo["repositoryArn"])["tags"] == [
        {"Key": "k", "Value": "v"}
    ]
    assert ecr.describe_images(repositoryName=name)["imageDetails"] == before
    got = ecr.batch_get_image(repositoryName=name, imageIds=[{"imageTag": "v1"}])["images"]
    assert got[0]["imageManifest"] == manifest
    assert got[0]["imageId"]["imageDigest"] == image_digest


# -- one store behind the API and the registry ---------------------------------------------------


def registry_get(url: str, token: str | None) -> tuple[int, bytes]:
    """GET ``url`` with ``Authorization: Basic <authorizationToken>`` (notes §1.8: the token
    is the Basic credential, verbatim)."""
    import urllib.error
    import urllib.request

    request = urllib.request.Request(url)
    if token is not None:
        request.add_header("Authorization", f"Basic {token}")
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def test_download_url_serves_the_layer_with_the_token(server: Server, ecr: Any) -> None:
    """GetDownloadUrlForLayer's URL is this daemon's registry blob route; it answers with the
    layer's bytes to a GetAuthorizationToken token, with ECR's 401 to none."""
    name = repo_name()
    ecr.create_repository(repositoryName=name)
    push(ecr, name, "v1", seed="download")
    layer = b"layer bytes download"
    url = ecr.get_download_url_for_layer(repositoryName=name, layerDigest=digest(layer))
    token = ecr.get_authorization_token()["authorizationData"][0]["authorizationToken"]
    assert registry_get(url["downloadUrl"], token) == (200, layer)
    assert registry_get(url["downloadUrl"], None)[0] == 401


def test_registry_pull_of_an_api_push_is_a_recorded_pull(server: Server, ecr: Any) -> None:
    """A manifest PutImage stored is what the registry serves by tag and digest, and the
    registry's pull sets DescribeImages' lastRecordedPullTime."""
    name = repo_name()
    ecr.create_repository(repositoryName=name)
    manifest, image_digest = push(ecr, name, "v1", seed="pull")
    token = ecr.get_authorization_token()["authorizationData"][0]["authorizationToken"]
    for ref in ("v1", image_digest):
        status, body = registry_get(f"{server.url}/v2/{name}/manifests/{ref}", token)
        assert (status, body) == (200, manifest.encode())
    (detail,) = ecr.describe_images(repositoryName=name)["imageDetails"]
    assert detail["lastRecordedPullTime"] >= detail["imagePushedAt"]


def test_authorization_token_survives_a_restart(fresh_server: Server) -> None:
    """Tokens live in state.db (only their SHA-256): a token issued before a restart still
    opens the registry after it; a made-up one does not."""
    fresh_server.start()
    token = fresh_server.client("ecr").get_authorization_token()["authorizationData"][0][
        "authorizationToken"
    ]
    fresh_server.stop()
    fresh_server.start()
    assert registry_get(f"{fresh_server.url}/v2/", token)[0] == 200
    forged = base64.b64encode(b"AWS:not-a-token").decode()
    # a Basic AWS credential that is no live token: ECR's 403 DENIED (registry/auth.py)
    assert registry_get(f"{fresh_server.url}/v2/", forged)[0] == 403


# -- names -------------------------------------------------------------------------------------


def test_service_metadata_is_botocores() -> None:
    """The daemon routes by the declared target prefix and signing name: both as botocore's
    model has them (metadata targetPrefix, signingName)."""
    from botocore.session import get_session

    from ecslocal.config import Config
    from ecslocal.ecr.api import EcrApi

    model = get_session().get_service_model("ecr")
    service = EcrApi(Config(), None, None, None).service()  # type: ignore[arg-type]
    assert service.target_prefix == model.metadata["targetPrefix"]
    assert service.signing_name == model.metadata["signingName"]
    assert set(service.handlers) <= set(model.operation_names)


def test_parse_image_reference() -> None:
    """issue 10 item 5: an ECR host of any account, or <registry-host>:<port>, names a local
    repository; no tag and no digest means latest; other registries are not local."""
    from ecslocal.ecr.names import ImageReference, parse_image_reference

    hosts = ("localhost:4600",)
    sha = "sha256:" + "a" * 64
    assert parse_image_reference(
        "123456789012.dkr.ecr.eu-west-1.amazonaws.com/team/app:v1", hosts
    ) == ImageReference("team/app", "v1", None, "123456789012", "eu-west-1")
    assert parse_image_reference("localhost:4600/app", hosts) == ImageReference(
        "app", "latest", None
    )
    assert parse_image_reference(f"localhost:4600/app@{sha}", hosts) == ImageReference(
        "app", None, sha
    )
    assert parse_image_reference(f"localhost:4600/app:v2@{sha}", hosts) == ImageReference(
        "app", "v2", sha
    )
    for other in (
        "nginx:latest",
        "docker.io/library/nginx",
        "localhost:9999/app",
        "public.ecr.aws/nginx/nginx:1",
        "localhost:4600/Bad_Name",
        "localhost:4600/app:bad tag",
    ):
        assert parse_image_reference(other, hosts) is None, other


def test_an_operation_not_served_is_unknown(ecr: Any) -> None:
    """docs/ecr.md: ECR operations beyond the served ones answer UnknownOperationException."""
    with pytest.raises(ClientError) as exc:
        ecr.get_lifecycle_policy(repositoryName="any/repo")
    assert error(exc) == (
        "UnknownOperationException",
        "Operation GetLifecyclePolicy is not supported.",
    )


def test_registry_host_names_the_uri_and_proxy_endpoint(tmp_path: Any) -> None:
    """`serve --registry-host` (Config.registry_host): repositoryUri and proxyEndpoint name
    it, with the daemon's port."""
    server = Server(tmp_path / "data", "--registry-host", "000000000000.dkr.ecr.local")
    try:
        ecr = server.start().client("ecr")
        repo = ecr.create_repository(repositoryName="named/app")["repository"]
        host = f"000000000000.dkr.ecr.local:{server.port}"
        assert repo["repositoryUri"] == f"{host}/named/app"
        data = ecr.get_authorization_token()["authorizationData"][0]
        assert data["proxyEndpoint"] == f"http://{host}"
    finally:
        server.stop()


def test_a_20_mib_layer_part_fits_in_one_request(ecr: Any) -> None:
    """LayerPartBlob max 20,971,520 bytes: base64 in JSON that is ~28 MB, beyond the 16 MiB
    body limit of the other services; one byte more is the model's ValidationException."""
    name = repo_name()
    ecr.create_repository(repositoryName=name)
    blob = bytes(range(256)) * (20_971_520 // 256)
    upload_id = ecr.initiate_layer_upload(repositoryName=name)["uploadId"]
    part = ecr.upload_layer_part(
        repositoryName=name,
        uploadId=upload_id,
        partFirstByte=0,
        partLastByte=len(blob) - 1,
        layerPartBlob=blob,
    )
    assert part["lastByteReceived"] == len(blob) - 1
    with pytest.raises(ClientError) as exc:
        server_ecr_unvalidated(ecr).upload_layer_part(
            repositoryName=name,
            uploadId=upload_id,
            partFirstByte=len(blob),
            partLastByte=len(blob),
            layerPartBlob=b"x" * (20_971_520 + 1),
        )
    assert error(exc)[0] == "ValidationException"


def test_a_manifest_that_is_not_utf8_is_refused(server: Server, ecr: Any) -> None:
    """JSON manifests are UTF-8 (PutImage's imageManifest is a string): a UTF-16 one pushed
    through the registry is MANIFEST_INVALID, not an image BatchGetImage cannot answer."""
    import urllib.error
    import urllib.request

    name = repo_name()
    ecr.create_repository(repositoryName=name)
    config, layer = b"{}", b"utf16 layer"
    upload(ecr, name, config)
    upload(ecr, name, layer)
    body = image_manifest(config, layer).encode("utf-16")
    token = ecr.get_authorization_token()["authorizationData"][0]["authorizationToken"]
    request = urllib.request.Request(
        f"{server.url}/v2/{name}/manifests/v1",
        data=body,
        method="PUT",
        headers={"Authorization": f"Basic {token}", "Content-Type": OCI_MANIFEST},
    )
    with pytest.raises(urllib.error.HTTPError) as exc:
        urllib.request.urlopen(request, timeout=30)
    assert exc.value.code == 400
    assert json.loads(exc.value.read())["errors"][0]["code"] == "MANIFEST_INVALID"
    assert ecr.list_images(repositoryName=name)["imageIds"] == []


def test_a_token_lives_12_hours_of_the_daemon_clock(tmp_path: Any) -> None:
    """AuthTokens on a clock 100 000 times faster than the wall's (12 h in about 0.4 s):
    verify() names the account while the clock is before expiresAt and nothing after."""
    import time

    from ecslocal.clock import Clock
    from ecslocal.ecr.tokens import AuthTokens
    from ecslocal.storage.db import Database

    clock = Clock(speed=100_000)
    db = Database(tmp_path / "state.db")
    try:
        tokens = AuthTokens(db, clock)
        issued_at = clock.time()
        token, expires_at = tokens.issue("123456789012", "eu-west-1")
        assert 12 * 3600 <= expires_at - issued_at < 12 * 3600 + 60
        password = base64.b64decode(token).decode().split(":")[1]
        seen_dead = False
        deadline = time.monotonic() + 60
        while not seen_dead and time.monotonic() < deadline:
            before = clock.time()
            who = tokens.verify(password)
            after = clock.time()
            if after < expires_at:
                assert who == ("123456789012", "eu-west-1")
            if before >= expires_at:
                assert who is None
                seen_dead = True
            time.sleep(0.01)
        assert seen_dead
        assert tokens.verify("not-a-password") is None
    finally:
        db.close()
