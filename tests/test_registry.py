"""The OCI distribution API v2 on the daemon's port (issue 10 items 3 and 4, registry side):
the wire protocol, through plain httpx against a real ``ecslocal serve`` (repositories and
tokens through boto3's ECR client) — the statuses and headers of distribution-spec v1.1.1's
endpoint table, ECR's challenge and messages (notes §1.7-§1.9). Real clients:
tests/test_registry_clients.py.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.conftest import Server
from tests.registry_helpers import (
    ACCOUNT,
    DOCKER_LIST,
    DOCKER_MANIFEST,
    OCI_INDEX,
    OCI_MANIFEST,
    errors,
    make_image,
    new_repo,
    push_blob,
    push_image,
    sha,
    token_password,
)


@pytest.fixture(scope="module")
def registry_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    s = Server(tmp_path_factory.mktemp("registry-data"), default_cluster=False).start()
    yield s
    s.stop()


@pytest.fixture(scope="module")
def ecr(registry_server: Server) -> Any:
    return registry_server.client("ecr")


@pytest.fixture(scope="module")
def password(ecr: Any) -> str:
    return token_password(ecr)


@pytest.fixture
def http(registry_server: Server, password: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=registry_server.url, auth=("AWS", password), timeout=30) as c:
        yield c


# -- auth (notes §1.8) ------------------------------------------------------------------------


def test_base_without_credentials_is_ecrs_challenge(registry_server: Server) -> None:
    r = httpx.get(f"{registry_server.url}/v2/")
    assert r.status_code == 401
    host = f"127.0.0.1:{registry_server.port}"
    assert r.headers["Www-Authenticate"] == (
        f'Basic realm="https://{host}/",service="ecr.amazonaws.com"'
    )
    assert r.headers["Docker-Distribution-Api-Version"] == "registry/2.0"
    assert r.headers["Content-Type"] == "text/plain; charset=utf-8"
    assert r.text == "Not Authorized\n"
    # repository-scoped paths answer the same
    r = httpx.get(f"{registry_server.url}/v2/any/thing/manifests/latest")
    assert r.status_code == 401 and "Www-Authenticate" in r.headers


def test_base_with_token_and_wrong_tokens(registry_server: Server, ecr: Any, password: str) -> None:
    url = f"{registry_server.url}/v2/"
    assert httpx.get(url, auth=("AWS", password)).status_code == 200
    # the authorizationToken itself is the Basic credential
    token = ecr.get_authorization_token()["authorizationData"][0]["authorizationToken"]
    r = httpx.get(url, headers={"Authorization": f"Basic {token}"})
    assert r.status_code == 200 and r.headers["Docker-Distribution-Api-Version"] == "registry/2.0"
    # a password that is no live token: ECR's words for an expired one
    r = httpx.get(url, auth=("AWS", "not-a-token"))
    assert r.status_code == 403
    assert r.json()["errors"][0] == {
        "code": "DENIED",
        "message": "Your authorization token has expired. Reauthenticate and try again.",
    }
    # the user is always AWS; anything else is no ECR credential
    assert httpx.get(url, auth=("admin", password)).status_code == 401


def test_ecr_host_must_name_the_tokens_account(registry_server: Server, password: str) -> None:
    url = f"{registry_server.url}/v2/"
    own = {"Host": f"{ACCOUNT}.dkr.ecr.us-east-1.amazonaws.com:{registry_server.port}"}
    assert httpx.get(url, auth=("AWS", password), headers=own).status_code == 200
    other = {"Host": "123456789012.dkr.ecr.us-east-1.amazonaws.com"}
    r = httpx.get(url, auth=("AWS", password), headers=other)
    assert r.status_code == 403 and errors(r) == ["DENIED"]
    # the token's account in another region is another registry too
    elsewhere = {"Host": f"{ACCOUNT}.dkr.ecr.eu-west-1.amazonaws.com"}
    r = httpx.get(url, auth=("AWS", password), headers=elsewhere)
    assert r.status_code == 403 and errors(r) == ["DENIED"]


def test_missing_repository_is_ecrs_name_unknown(http: httpx.Client) -> None:
    r = http.post("/v2/no-such-repo/blobs/uploads/")
    assert r.status_code == 404
    assert r.json()["errors"][0]["code"] == "NAME_UNKNOWN"
    assert r.json()["errors"][0]["message"] == (
        f"The repository with name 'no-such-repo' does not exist in the registry with id"
        f" '{ACCOUNT}'"
    )


# -- blobs and uploads ----------------------------------------------------------------------


def test_chunked_upload_without_content_length(http: httpx.Client, ecr: Any) -> None:
    """docker's push: POST, PATCH chunks with Transfer-Encoding: chunked and no
    Content-Length, then PUT ?digest= with no body [end-4a, end-5, end-6, end-13]."""
    repo = new_repo(ecr, "chunked/app")
    data = bytes(range(256)) * 1024  # 256 KiB
    r = http.post(f"/v2/{repo}/blobs/uploads/", headers={"Content-Length": "0"})
    assert r.status_code == 202
    location, upload_id = r.headers["Location"], r.headers["Docker-Upload-UUID"]
    assert upload_id in location and location.startswith(f"/v2/{repo}/blobs/uploads/")
    assert r.headers["Range"] == "0-0"

    def stream(part: bytes) -> Iterator[bytes]:
        for i in range(0, len(part), 10_000):
            yield part[i : i + 10_000]

    half = len(data) // 2
    r = http.patch(location, content=stream(data[:half]))
    assert r.request.headers.get("Transfer-Encoding") == "chunked"
    assert "Content-Length" not in r.request.headers
    assert r.status_code == 202, r.text
    assert r.headers["Range"] == f"0-{half - 1}"
    location = r.headers["Location"]
    # a chunk that does not start where the upload ends: 416, and where it ends
    r = http.patch(location, content=b"xx", headers={"Content-Range": "5-6"})
    assert r.status_code == 416 and errors(r) == ["RANGE_INVALID"]
    assert r.headers["Range"] == f"0-{half - 1}"
    # the status endpoint says the same
    r = http.get(location)
    assert r.status_code == 204
    assert r.headers["Range"] == f"0-{half - 1}" and r.headers["Docker-Upload-UUID"] == upload_id
    # an in-order chunk with Content-Range
    rest = data[half:]
    r = http.patch(
        location,
        content=rest,
        headers={
            "Content-Range": f"{half}-{len(data) - 1}",
            "Content-Type": "application/octet-stream",
        },
    )
    assert r.status_code == 202 and r.headers["Range"] == f"0-{len(data) - 1}"
    r = http.put(r.headers["Location"], params={"digest": sha(data)})
    assert r.status_code == 201, r.text
    assert r.headers["Location"] == f"/v2/{repo}/blobs/{sha(data)}"
    assert r.headers["Docker-Content-Digest"] == sha(data)
    # HEAD and GET (with a Range) [end-2]
    head = http.head(f"/v2/{repo}/blobs/{sha(data)}")
    assert head.status_code == 200
    assert head.headers["Content-Length"] == str(len(data))
    assert head.headers["Docker-Content-Digest"] == sha(data)
    assert http.get(f"/v2/{repo}/blobs/{sha(data)}").content == data
    part = http.get(f"/v2/{repo}/blobs/{sha(data)}", headers={"Range": "bytes=100-199"})
    assert part.status_code == 206 and part.content == data[100:200]
    # the session is gone once committed
    assert http.get(location).status_code == 404


def test_put_with_final_chunk_and_single_post(http: httpx.Client, ecr: Any) -> None:
    repo = new_repo(ecr, "monolithic")
    data = b"the whole blob in the closing PUT"
    r = push_blob(http, repo, data)
    assert r.status_code == 201 and r.headers["Docker-Content-Digest"] == sha(data)
    # POST ?digest= with the body: one request [end-4b]
    other = b"single post"
    r = http.post(
        f"/v2/{repo}/blobs/uploads/",
        params={"digest": sha(other)},
        content=other,
        headers={"Content-Type": "application/octet-stream"},
    )
    assert r.status_code == 201, r.text
    assert r.headers["Location"] == f"/v2/{repo}/blobs/{sha(other)}"
    assert http.get(f"/v2/{repo}/blobs/{sha(other)}").content == other


def test_digest_mismatch_and_bad_digests(http: httpx.Client, ecr: Any) -> None:
    repo = new_repo(ecr, "mismatch")
    r = http.post(f"/v2/{repo}/blobs/uploads/")
    location = r.headers["Location"]
    wrong = sha(b"something else")
    r = http.put(location, params={"digest": wrong}, content=b"these bytes")
    assert r.status_code == 400 and errors(r) == ["DIGEST_INVALID"]
    assert http.head(f"/v2/{repo}/blobs/{wrong}").status_code == 404
    assert http.head(f"/v2/{repo}/blobs/{sha(b'these bytes')}").status_code == 404
    r = http.get(location)
    assert r.status_code == 404 and errors(r) == ["BLOB_UPLOAD_UNKNOWN"]
    r = http.post(f"/v2/{repo}/blobs/uploads/", params={"digest": "sha256:nothex"}, content=b"x")
    assert r.status_code == 400 and errors(r) == ["DIGEST_INVALID"]
    r = http.get(f"/v2/{repo}/blobs/sha256:{'0' * 64}")
    assert r.status_code == 404 and errors(r) == ["BLOB_UNKNOWN"]


def test_cancel_upload_and_blob_delete(http: httpx.Client, ecr: Any) -> None:
    repo = new_repo(ecr, "cancel")
    location = http.post(f"/v2/{repo}/blobs/uploads/").headers["Location"]
    assert http.patch(location, content=b"abc").status_code == 202
    r = http.delete(location)
    assert r.status_code == 204
    assert http.get(location).status_code == 404
    assert http.patch(location, content=b"more").status_code == 404
    # ECR has no blob delete: the spec's answer for a registry without it [end-10]
    data = b"kept"
    push_blob(http, repo, data)
    r = http.delete(f"/v2/{repo}/blobs/{sha(data)}")
    assert r.status_code == 405 and errors(r) == ["UNSUPPORTED"]
    assert http.get(f"/v2/{repo}/blobs/{sha(data)}").content == data


def test_upload_session_belongs_to_its_repository(http: httpx.Client, ecr: Any) -> None:
    a, b = new_repo(ecr, "owner-a"), new_repo(ecr, "owner-b")
    location = http.post(f"/v2/{a}/blobs/uploads/").headers["Location"]
    upload_id = location.rsplit("/", 1)[1]
    r = http.patch(f"/v2/{b}/blobs/uploads/{upload_id}", content=b"x")
    assert r.status_code == 404 and errors(r) == ["BLOB_UPLOAD_UNKNOWN"]
    assert http.get(location).status_code == 204


def test_cross_repository_mount(http: httpx.Client, ecr: Any) -> None:
    source, target = new_repo(ecr, "mount/source"), new_repo(ecr, "mount/target")
    data = b"a layer to mount"
    push_blob(http, source, data)
    # not in the target until mounted: a HEAD there is 404 (ECR's layers are per repository)
    assert http.head(f"/v2/{target}/blobs/{sha(data)}").status_code == 404
    r = http.post(f"/v2/{target}/blobs/uploads/", params={"mount": sha(data), "from": source})
    assert r.status_code == 201, r.text
    assert r.headers["Location"] == f"/v2/{target}/blobs/{sha(data)}"
    assert r.headers["Docker-Content-Digest"] == sha(data)
    assert http.get(f"/v2/{target}/blobs/{sha(data)}").content == data
    # a blob the source lacks, or a source that does not exist: a plain session [end-11]
    missing = sha(b"not there")
    for source_name in (source, "no-such-source"):
        r = http.post(
            f"/v2/{target}/blobs/uploads/", params={"mount": missing, "from": source_name}
        )
        assert r.status_code == 202 and "Docker-Upload-UUID" in r.headers


# -- manifests ------------------------------------------------------------------------------


def test_manifest_push_pull_and_every_accept_line(http: httpx.Client, ecr: Any) -> None:
    repo = new_repo(ecr, "app/web")
    image = make_image("v1")
    r = push_image(http, repo, image, "v1")
    assert r.status_code == 201, r.text
    assert r.headers["Docker-Content-Digest"] == image.digest
    assert r.headers["Location"] == f"/v2/{repo}/manifests/{image.digest}"
    # docker sends one Accept line per type; the OCI type on a later line must count
    accept = [("Accept", DOCKER_MANIFEST), ("Accept", f"{DOCKER_LIST}, {OCI_MANIFEST}")]
    r = http.get(f"/v2/{repo}/manifests/v1", headers=accept)
    assert r.status_code == 200, r.text
    assert r.content == image.manifest
    assert r.headers["Content-Type"] == OCI_MANIFEST
    assert r.headers["Docker-Content-Digest"] == image.digest
    # a client that accepts no OCI manifest is not handed one
    r = http.get(f"/v2/{repo}/manifests/v1", headers={"Accept": DOCKER_MANIFEST})
    assert r.status_code == 404 and errors(r) == ["MANIFEST_UNKNOWN"]
    head = http.head(f"/v2/{repo}/manifests/{image.digest}", headers={"Accept": OCI_MANIFEST})
    assert head.status_code == 200 and head.content == b""
    assert head.headers["Content-Length"] == str(len(image.manifest))
    assert head.headers["Docker-Content-Digest"] == image.digest
    # the pull is recorded (DescribeImages lastRecordedPullTime)
    detail = ecr.describe_images(repositoryName=repo)["imageDetails"][0]
    assert detail["imageDigest"] == image.digest and detail["imageTags"] == ["v1"]
    assert "lastRecordedPullTime" in detail
    r = http.get(f"/v2/{repo}/manifests/nope")
    assert r.status_code == 404
    assert r.json()["errors"][0] == {
        "code": "MANIFEST_UNKNOWN",
        "message": "Requested image not found",
    }


def test_index_served_as_its_platform_manifest_to_a_client_without_indexes(
    http: httpx.Client, ecr: Any
) -> None:
    repo = new_repo(ecr, "multi")
    image = make_image("amd64")
    push_image(http, repo, image, "amd64")
    index = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": OCI_INDEX,
            "manifests": [
                {
                    "mediaType": OCI_MANIFEST,
                    "digest": image.digest,
                    "size": len(image.manifest),
                    "platform": {"os": "linux", "architecture": "amd64"},
                }
            ],
        }
    ).encode()
    r = http.put(f"/v2/{repo}/manifests/latest", content=index, headers={"Content-Type": OCI_INDEX})
    assert r.status_code == 201, r.text
    both = {"Accept": f"{OCI_INDEX}, {OCI_MANIFEST}"}
    assert http.get(f"/v2/{repo}/manifests/latest", headers=both).content == index
    r = http.get(f"/v2/{repo}/manifests/latest", headers={"Accept": OCI_MANIFEST})
    assert r.status_code == 200 and r.content == image.manifest
    assert r.headers["Docker-Content-Digest"] == image.digest


def test_docker_schema2_manifest_and_list(http: httpx.Client, ecr: Any) -> None:
    """Docker's media types as docker pushes them: a manifest list to a client that takes
    only image manifests is its linux/amd64 image; an OCI-only client gets no Docker type."""
    repo = new_repo(ecr, "docker/style")
    image = make_image("docker", docker=True)
    for data in image.blobs.values():
        push_blob(http, repo, data)
    r = http.put(
        f"/v2/{repo}/manifests/v1",
        content=image.manifest,
        headers={"Content-Type": DOCKER_MANIFEST},
    )
    assert r.status_code == 201, r.text
    entry = {
        "mediaType": DOCKER_MANIFEST,
        "digest": image.digest,
        "size": len(image.manifest),
        "platform": {"architecture": "amd64", "os": "linux"},
    }
    listed = json.dumps({"schemaVersion": 2, "mediaType": DOCKER_LIST, "manifests": [entry]})
    r = http.put(
        f"/v2/{repo}/manifests/multi", content=listed, headers={"Content-Type": DOCKER_LIST}
    )
    assert r.status_code == 201, r.text
    docker_accept = [("Accept", DOCKER_MANIFEST), ("Accept", DOCKER_LIST)]
    r = http.get(f"/v2/{repo}/manifests/multi", headers=docker_accept)
    assert r.headers["Content-Type"] == DOCKER_LIST and r.content == listed.encode()
    r = http.get(f"/v2/{repo}/manifests/multi", headers={"Accept": DOCKER_MANIFEST})
    assert r.status_code == 200 and r.headers["Content-Type"] == DOCKER_MANIFEST
    assert r.headers["Docker-Content-Digest"] == image.digest
    r = http.get(f"/v2/{repo}/manifests/v1", headers={"Accept": f"{OCI_MANIFEST}, {OCI_INDEX}"})
    assert r.status_code == 404 and errors(r) == ["MANIFEST_UNKNOWN"]
    detail = ecr.describe_images(repositoryName=repo, imageIds=[{"imageTag": "v1"}])
    assert detail["imageDetails"][0]["imageManifestMediaType"] == DOCKER_MANIFEST


def test_manifest_with_unknown_blob_and_bad_manifests(http: httpx.Client, ecr: Any) -> None:
    repo = new_repo(ecr, "unknown-blobs")
    image = make_image("never uploaded")
    r = http.put(
        f"/v2/{repo}/manifests/v1", content=image.manifest, headers={"Content-Type": OCI_MANIFEST}
    )
    assert r.status_code == 404 and errors(r) == ["MANIFEST_BLOB_UNKNOWN"]
    r = http.put(
        f"/v2/{repo}/manifests/v1", content=b"{not json", headers={"Content-Type": OCI_MANIFEST}
    )
    assert r.status_code == 400 and errors(r) == ["MANIFEST_INVALID"]
    # over ECR's 4 MiB ImageManifest limit: 413 [distribution-spec end-7]
    big = b'{"pad":"' + b"x" * (4 * 1024 * 1024) + b'"}'
    r = http.put(f"/v2/{repo}/manifests/big", content=big, headers={"Content-Type": OCI_MANIFEST})
    assert r.status_code == 413 and errors(r) == ["MANIFEST_INVALID"]
    for data in image.blobs.values():
        push_blob(http, repo, data)
    # PUT by a digest that is not the manifest's
    r = http.put(
        f"/v2/{repo}/manifests/{sha(b'other')}",
        content=image.manifest,
        headers={"Content-Type": OCI_MANIFEST},
    )
    assert r.status_code == 400 and errors(r) == ["DIGEST_INVALID"]
    r = http.put(
        f"/v2/{repo}/manifests/{image.digest}",
        content=image.manifest,
        headers={"Content-Type": OCI_MANIFEST},
    )
    assert r.status_code == 201 and r.headers["Docker-Content-Digest"] == image.digest
    assert ecr.list_images(repositoryName=repo)["imageIds"] == [{"imageDigest": image.digest}]


def test_immutable_tag_is_ecrs_tag_invalid(http: httpx.Client, ecr: Any) -> None:
    repo = new_repo(ecr, "frozen", imageTagMutability="IMMUTABLE")
    first, second = make_image("first"), make_image("second")
    assert push_image(http, repo, first, "v1").status_code == 201
    # the same image again under the same tag is fine (docker re-push)
    assert push_image(http, repo, first, "v1").status_code == 201
    r = push_image(http, repo, second, "v1")
    assert r.status_code == 400
    assert r.json()["errors"][0] == {
        "code": "TAG_INVALID",
        "message": "The image tag 'v1' already exists in the 'frozen' repository and cannot be"
        " overwritten because the repository is immutable.",
    }
    assert http.get(f"/v2/{repo}/manifests/v1").headers["Docker-Content-Digest"] == first.digest


def test_mutable_tag_moves_and_old_image_stays_by_digest(http: httpx.Client, ecr: Any) -> None:
    repo = new_repo(ecr, "moving")
    old, new = make_image("old"), make_image("new")
    push_image(http, repo, old, "latest")
    push_image(http, repo, new, "latest")
    assert http.get(f"/v2/{repo}/manifests/latest").headers["Docker-Content-Digest"] == new.digest
    assert http.get(f"/v2/{repo}/manifests/{old.digest}").content == old.manifest
    untagged = ecr.list_images(repositoryName=repo, filter={"tagStatus": "UNTAGGED"})
    assert untagged["imageIds"] == [{"imageDigest": old.digest}]


def test_delete_manifest_by_digest(http: httpx.Client, ecr: Any) -> None:
    repo = new_repo(ecr, "deleting")
    image = make_image("to delete")
    push_image(http, repo, image, "v1")
    r = http.delete(f"/v2/{repo}/manifests/v1")
    assert r.status_code == 405 and errors(r) == ["UNSUPPORTED"]
    assert http.delete(f"/v2/{repo}/manifests/{image.digest}").status_code == 202
    # gone by digest and by the tag that named it [end-9]
    assert http.get(f"/v2/{repo}/manifests/{image.digest}").status_code == 404
    assert http.get(f"/v2/{repo}/manifests/v1").status_code == 404
    assert http.delete(f"/v2/{repo}/manifests/{image.digest}").status_code == 404
    assert ecr.list_images(repositoryName=repo)["imageIds"] == []


def test_delete_manifest_an_index_lists_is_refused(http: httpx.Client, ecr: Any) -> None:
    """The registry's DELETE refuses what BatchDeleteImage refuses: an image a manifest list
    references (ImageReferencedByManifestList, botocore ImageFailureCode), in a distribution
    error body; once the list is gone, the image goes too."""
    repo = new_repo(ecr, "listed")
    image = make_image("listed")
    assert push_image(http, repo, image, "v1").status_code == 201
    entry = {
        "mediaType": OCI_MANIFEST,
        "digest": image.digest,
        "size": len(image.manifest),
        "platform": {"architecture": "amd64", "os": "linux"},
    }
    index = json.dumps({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [entry]})
    r = http.put(f"/v2/{repo}/manifests/multi", content=index, headers={"Content-Type": OCI_INDEX})
    assert r.status_code == 201, r.text
    r = http.delete(f"/v2/{repo}/manifests/{image.digest}")
    assert r.status_code == 403 and errors(r) == ["DENIED"]
    api = ecr.batch_delete_image(repositoryName=repo, imageIds=[{"imageDigest": image.digest}])
    assert r.json()["errors"][0]["message"] == api["failures"][0]["failureReason"]
    assert http.get(f"/v2/{repo}/manifests/{image.digest}").status_code == 200
    assert http.delete(f"/v2/{repo}/manifests/{sha(index.encode())}").status_code == 202
    assert http.delete(f"/v2/{repo}/manifests/{image.digest}").status_code == 202


# -- tags list and referrers ----------------------------------------------------------------


def test_tags_list_pagination(http: httpx.Client, ecr: Any) -> None:
    repo = new_repo(ecr, "paged/tags")
    image = make_image("tags")
    for tag in ("c", "a", "b", "d"):
        assert push_image(http, repo, image, tag).status_code == 201
    r = http.get(f"/v2/{repo}/tags/list")
    assert r.json() == {"name": repo, "tags": ["a", "b", "c", "d"]} and "Link" not in r.headers
    r = http.get(f"/v2/{repo}/tags/list", params={"n": "2"})
    assert r.json()["tags"] == ["a", "b"]
    assert r.headers["Link"] == f'</v2/{repo}/tags/list?n=2&last=b>; rel="next"'
    r = http.get(f"/v2/{repo}/tags/list", params={"n": "2", "last": "b"})
    assert r.json()["tags"] == ["c", "d"]
    r = http.get(f"/v2/{repo}/tags/list", params={"n": "0"})
    assert r.json()["tags"] == [] and "Link" not in r.headers
    r = http.get(f"/v2/{repo}/tags/list", params={"n": "-1"})
    assert r.status_code == 400 and errors(r) == ["PAGINATION_NUMBER_INVALID"]


def test_referrers(http: httpx.Client, ecr: Any) -> None:
    repo = new_repo(ecr, "signed")
    image = make_image("subject")
    push_image(http, repo, image, "v1")
    empty = b"{}"
    push_blob(http, repo, empty)
    sbom = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "artifactType": "application/spdx+json",
            "config": {
                "mediaType": "application/vnd.oci.empty.v1+json",
                "digest": sha(empty),
                "size": 2,
            },
            "layers": [
                {"mediaType": "application/vnd.oci.empty.v1+json", "digest": sha(empty), "size": 2}
            ],
            "subject": {
                "mediaType": OCI_MANIFEST,
                "digest": image.digest,
                "size": len(image.manifest),
            },
            "annotations": {"org.example": "sbom"},
        }
    ).encode()
    r = http.put(
        f"/v2/{repo}/manifests/{sha(sbom)}", content=sbom, headers={"Content-Type": OCI_MANIFEST}
    )
    assert r.status_code == 201, r.text
    assert r.headers["OCI-Subject"] == image.digest
    r = http.get(f"/v2/{repo}/referrers/{image.digest}")
    assert r.status_code == 200 and r.headers["Content-Type"] == OCI_INDEX
    assert r.json() == {
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "manifests": [
            {
                "mediaType": OCI_MANIFEST,
                "digest": sha(sbom),
                "size": len(sbom),
                "artifactType": "application/spdx+json",
                "annotations": {"org.example": "sbom"},
            }
        ],
    }
    r = http.get(f"/v2/{repo}/referrers/{image.digest}", params={"artifactType": "text/other"})
    assert r.json()["manifests"] == [] and r.headers["OCI-Filters-Applied"] == "artifactType"
    # no referrers is an empty index, never a 404
    r = http.get(f"/v2/{repo}/referrers/{sha(b'nothing refers here')}")
    assert r.status_code == 200 and r.json()["manifests"] == []


def test_names_with_slashes_and_the_credentials_prefix(http: httpx.Client, ecr: Any) -> None:
    """A repository named ``credentials`` lives beside the container-facing
    ``/v2/credentials/<id>`` endpoint, which still answers as the agent does."""
    for name in ("credentials", "a/b/c"):
        new_repo(ecr, name)
        assert push_image(http, name, make_image(name), "v1").status_code == 201
        assert http.get(f"/v2/{name}/tags/list").json() == {"name": name, "tags": ["v1"]}
    r = http.get("/v2/credentials/no-such-id")
    assert r.status_code == 400 and r.json()["code"] == "InvalidIdInRequest"
