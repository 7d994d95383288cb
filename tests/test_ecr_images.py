"""ECR's image and layer operations (botocore ``ecr/2015-09-21``: PutImage, BatchGetImage,
BatchDeleteImage, ListImages, DescribeImages, the five layer operations) and tag mutability
(aws-semantics.md §3.2), driven by boto3 against a real daemon."""

from __future__ import annotations

import json
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from botocore.exceptions import ClientError

from tests.conftest import Server
from tests.test_ecr_api import (
    DOCKER_MANIFEST,
    OCI_CONFIG,
    OCI_INDEX,
    OCI_LAYER,
    OCI_MANIFEST,
    digest,
    error,
    image_manifest,
    push,
    repo_name,
    upload,
)


@pytest.fixture(scope="module")
def ecr(server: Server) -> Any:
    return server.client("ecr")


def new_repo(ecr: Any, **kw: Any) -> str:
    name = repo_name()
    ecr.create_repository(repositoryName=name, **kw)
    return name


def details(ecr: Any, repo: str) -> dict[str, dict[str, Any]]:
    return {d["imageDigest"]: d for d in ecr.describe_images(repositoryName=repo)["imageDetails"]}


# -- PutImage / DescribeImages / BatchGetImage ------------------------------------------------


def test_put_image_then_describe_and_get(ecr: Any) -> None:
    """ImageDetail: imageSizeInBytes = the layers' and config's sizes as the manifest
    declares them (compressed); imageManifestMediaType, artifactMediaType (the config's),
    imagePushedAt; lastRecordedPullTime appears with the first BatchGetImage."""
    repo = new_repo(ecr)
    config = b'{"architecture":"amd64","os":"linux"}'
    layers = [b"a" * 100, b"b" * 23]
    upload(ecr, repo, config)
    for layer in layers:
        upload(ecr, repo, layer, part=10)
    manifest = image_manifest(config, *layers)
    put = ecr.put_image(repositoryName=repo, imageManifest=manifest, imageTag="v1")["image"]
    image_digest = digest(manifest.encode())
    assert put["imageId"] == {"imageDigest": image_digest, "imageTag": "v1"}
    assert put["imageManifestMediaType"] == OCI_MANIFEST
    (detail,) = ecr.describe_images(repositoryName=repo)["imageDetails"]
    assert detail["imageDigest"] == image_digest
    assert detail["imageTags"] == ["v1"]
    assert detail["imageSizeInBytes"] == len(config) + 123
    assert detail["imageManifestMediaType"] == OCI_MANIFEST
    assert detail["artifactMediaType"] == OCI_CONFIG
    assert (
        detail["imagePushedAt"]
        >= ecr.describe_repositories(repositoryNames=[repo])["repositories"][0]["createdAt"]
    )
    assert "lastRecordedPullTime" not in detail
    got = ecr.batch_get_image(repositoryName=repo, imageIds=[{"imageTag": "v1"}])
    assert got["failures"] == []
    assert got["images"][0]["imageManifest"] == manifest
    assert got["images"][0]["imageId"] == {"imageDigest": image_digest, "imageTag": "v1"}
    pulled = details(ecr, repo)[image_digest]
    assert pulled["lastRecordedPullTime"] >= detail["imagePushedAt"]
    by_digest = ecr.describe_images(repositoryName=repo, imageIds=[{"imageDigest": image_digest}])
    assert by_digest["imageDetails"][0]["imageTags"] == ["v1"]


def test_put_image_media_type_from_the_request(ecr: Any) -> None:
    """PutImageRequest.imageManifestMediaType: needed when the manifest has no mediaType."""
    repo = new_repo(ecr)
    config, layer = b"{}", b"layer"
    upload(ecr, repo, config)
    upload(ecr, repo, layer)
    doc = json.loads(image_manifest(config, layer))
    del doc["mediaType"]
    doc["layers"][0].pop("mediaType")
    bare = json.dumps(doc)
    put = ecr.put_image(
        repositoryName=repo, imageManifest=bare, imageManifestMediaType=OCI_MANIFEST
    )["image"]
    assert put["imageManifestMediaType"] == OCI_MANIFEST
    with pytest.raises(ClientError) as exc:
        ecr.put_image(
            repositoryName=repo,
            imageManifest=image_manifest(config, layer),
            imageManifestMediaType=DOCKER_MANIFEST,
        )
    assert error(exc)[0] == "InvalidParameterException"
    with pytest.raises(ClientError) as exc:
        ecr.put_image(repositoryName=repo, imageManifest='{"schemaVersion": 2, "x": 1}')
    assert error(exc)[0] == "InvalidParameterException"
    with pytest.raises(ClientError) as exc:
        ecr.put_image(repositoryName=repo, imageManifest="not json")
    assert error(exc)[0] == "InvalidParameterException"


def test_put_image_errors(ecr: Any) -> None:
    """LayersNotFoundException, ImageDigestDoesNotMatchException, ImageAlreadyExistsException
    (same manifest and tag as the last push), and a new tag on a pushed image is fine."""
    repo = new_repo(ecr)
    with pytest.raises(ClientError) as exc:
        ecr.put_image(repositoryName=repo, imageManifest=image_manifest(b"{}", b"never sent"))
    assert error(exc) == (
        "LayersNotFoundException",
        f"Layers with digests '[{digest(b'{}')}, {digest(b'never sent')}]' required for pushing"
        f" image into repository with name '{repo}' in registry with id '000000000000' do not"
        " exist",
    )
    manifest, image_digest = push(ecr, repo, "v1")
    with pytest.raises(ClientError) as exc:
        ecr.put_image(
            repositoryName=repo, imageManifest=manifest, imageTag="v2", imageDigest=digest(b"x")
        )
    assert error(exc)[0] == "ImageDigestDoesNotMatchException"
    with pytest.raises(ClientError) as exc:
        ecr.put_image(repositoryName=repo, imageManifest=manifest, imageTag="v1")
    assert error(exc)[0] == "ImageAlreadyExistsException"
    ecr.put_image(
        repositoryName=repo, imageManifest=manifest, imageTag="v2", imageDigest=image_digest
    )
    assert details(ecr, repo)[image_digest]["imageTags"] == ["v1", "v2"]


def test_layers_of_another_repository_are_not_found(ecr: Any) -> None:
    """LayersNotFoundException: "… or the specified layer is not valid for this repository"."""
    first, second = new_repo(ecr), new_repo(ecr)
    manifest, _ = push(ecr, first, "v1", seed="shared")
    with pytest.raises(ClientError) as exc:
        ecr.put_image(repositoryName=second, imageManifest=manifest, imageTag="v1")
    assert error(exc)[0] == "LayersNotFoundException"


def test_index_needs_its_images_and_is_as_big_as_the_biggest(ecr: Any) -> None:
    """ReferencedImagesNotFoundException; imageSizeInBytes of a manifest list: "the max size
    of all manifests in the list"; a listed image cannot be deleted by digest
    (ImageReferencedByManifestList)."""
    repo = new_repo(ecr)
    small, small_digest = push(ecr, repo, None, seed="s")
    big, big_digest = push(ecr, repo, None, seed="a much longer seed")
    entries = [
        {"mediaType": OCI_MANIFEST, "digest": d, "size": len(m)}
        for m, d in ((small, small_digest), (big, big_digest))
    ]
    index = json.dumps({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": entries})
    missing = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": OCI_INDEX,
            "manifests": [{"mediaType": OCI_MANIFEST, "digest": digest(b"no"), "size": 2}],
        }
    )
    with pytest.raises(ClientError) as exc:
        ecr.put_image(repositoryName=repo, imageManifest=missing, imageTag="multi")
    assert error(exc)[0] == "ReferencedImagesNotFoundException"
    ecr.put_image(repositoryName=repo, imageManifest=index, imageTag="multi")
    found = details(ecr, repo)
    index_detail = found[digest(index.encode())]
    assert index_detail["imageManifestMediaType"] == OCI_INDEX
    assert index_detail["imageSizeInBytes"] == max(
        found[small_digest]["imageSizeInBytes"], found[big_digest]["imageSizeInBytes"]
    )
    result = ecr.batch_delete_image(repositoryName=repo, imageIds=[{"imageDigest": big_digest}])
    assert result["imageIds"] == []
    assert result["failures"][0]["failureCode"] == "ImageReferencedByManifestList"
    ecr.put_image(repositoryName=repo, imageManifest=small, imageTag="only")
    result = ecr.batch_delete_image(repositoryName=repo, imageIds=[{"imageTag": "only"}])
    assert result["failures"][0]["failureCode"] == "ImageReferencedByManifestList"
    ecr.batch_delete_image(repositoryName=repo, imageIds=[{"imageTag": "multi"}])
    result = ecr.batch_delete_image(repositoryName=repo, imageIds=[{"imageDigest": big_digest}])
    assert result == {**result, "imageIds": [{"imageDigest": big_digest}], "failures": []}


def test_batch_get_image_failures(ecr: Any) -> None:
    """ImageFailure codes and reasons (reasons as suites written against AWS quote them)."""
    repo = new_repo(ecr)
    _, image_digest = push(ecr, repo, "v1")
    got = ecr.batch_get_image(
        repositoryName=repo,
        imageIds=[{"imageTag": "nope"}, {}, {"imageDigest": "sha256:xyz"}, {"imageTag": "v1"}],
    )
    assert [i["imageId"] for i in got["images"]] == [
        {"imageDigest": image_digest, "imageTag": "v1"}
    ]
    assert got["failures"] == [
        {
            "imageId": {"imageTag": "nope"},
            "failureCode": "ImageNotFound",
            "failureReason": "Requested image not found",
        },
        {
            "imageId": {},
            "failureCode": "MissingDigestAndTag",
            "failureReason": "Invalid request parameters: both tag and digest cannot be null",
        },
        {
            "imageId": {"imageDigest": "sha256:xyz"},
            "failureCode": "InvalidImageDigest",
            "failureReason": "Invalid request parameters: image digest should satisfy the regex"
            " '[a-zA-Z0-9-_+.]+:[a-fA-F0-9]+'",
        },
    ]
    docker_only = ecr.batch_get_image(
        repositoryName=repo, imageIds=[{"imageTag": "v1"}], acceptedMediaTypes=[DOCKER_MANIFEST]
    )
    assert docker_only["images"] == []
    assert docker_only["failures"][0]["imageId"] == {"imageTag": "v1"}
    oci = ecr.batch_get_image(
        repositoryName=repo, imageIds=[{"imageTag": "v1"}], acceptedMediaTypes=[OCI_MANIFEST]
    )
    assert len(oci["images"]) == 1


def test_describe_images_not_found_message(ecr: Any) -> None:
    """notes §1.7: the literal 'null' for the half of the imageId not given."""
    repo = new_repo(ecr)
    with pytest.raises(ClientError) as exc:
        ecr.describe_images(repositoryName=repo, imageIds=[{"imageTag": "gone"}])
    assert error(exc) == (
        "ImageNotFoundException",
        "The image with imageId {imageDigest:'null', imageTag:'gone'} does not exist within the"
        f" repository with name '{repo}' in the registry with id '000000000000'",
    )
    with pytest.raises(ClientError) as exc:
        ecr.describe_images(repositoryName=repo, imageIds=[{"imageTag": "x"}], maxResults=1)
    assert error(exc)[0] == "InvalidParameterException"


# -- tag mutability ----------------------------------------------------------------------------


def test_mutable_overwrite_leaves_the_old_image_untagged_and_pullable(ecr: Any) -> None:
    """aws-semantics.md §3.2: the moved tag's old image stays, imageTags absent, ListImages
    {imageDigest} only, BatchGetImage by digest still answers."""
    repo = new_repo(ecr)
    old_manifest, old = push(ecr, repo, "latest", seed="1")
    _, new = push(ecr, repo, "latest", seed="2")
    found = details(ecr, repo)
    assert "imageTags" not in found[old]
    assert found[new]["imageTags"] == ["latest"]
    ids = ecr.list_images(repositoryName=repo)["imageIds"]
    assert {"imageDigest": old} in ids and {"imageDigest": new, "imageTag": "latest"} in ids
    got = ecr.batch_get_image(repositoryName=repo, imageIds=[{"imageDigest": old}])["images"]
    assert got[0]["imageManifest"] == old_manifest


def test_immutable_refuses_an_overwrite(ecr: Any) -> None:
    """ImageTagAlreadyExistsException, in the words docker prints for ECR's refusal; after
    PutImageTagMutability MUTABLE the same push moves the tag."""
    repo = new_repo(ecr, imageTagMutability="IMMUTABLE")
    _, first = push(ecr, repo, "v1", seed="1")
    with pytest.raises(ClientError) as exc:
        push(ecr, repo, "v1", seed="2")
    assert error(exc) == (
        "ImageTagAlreadyExistsException",
        f"The image tag 'v1' already exists in the '{repo}' repository and cannot be overwritten"
        " because the repository is immutable.",
    )
    assert details(ecr, repo)[first]["imageTags"] == ["v1"]
    push(ecr, repo, "v2", seed="2")  # a new tag is fine on IMMUTABLE
    answer = ecr.put_image_tag_mutability(repositoryName=repo, imageTagMutability="MUTABLE")
    assert answer["imageTagMutability"] == "MUTABLE" and answer["repositoryName"] == repo
    _, moved = push(ecr, repo, "v1", seed="3")
    assert details(ecr, repo)[moved]["imageTags"] == ["v1"]


@pytest.mark.parametrize(
    "mode,movable,fixed",
    [("IMMUTABLE_WITH_EXCLUSION", "latest-dev", "v1"), ("MUTABLE_WITH_EXCLUSION", "dev", "v1")],
)
def test_exclusion_filters(ecr: Any, mode: str, movable: str, fixed: str) -> None:
    """ImageTagMutabilityExclusionFilter WILDCARD: IMMUTABLE_WITH_EXCLUSION lets the tags a
    filter matches move; MUTABLE_WITH_EXCLUSION fixes them."""
    pattern = "latest*" if mode.startswith("IMMUTABLE") else "v*"
    repo = new_repo(
        ecr,
        imageTagMutability=mode,
        imageTagMutabilityExclusionFilters=[{"filterType": "WILDCARD", "filter": pattern}],
    )
    push(ecr, repo, movable, seed="1")
    push(ecr, repo, fixed, seed="1b")
    _, moved = push(ecr, repo, movable, seed="2")
    assert details(ecr, repo)[moved]["imageTags"] == [movable]
    with pytest.raises(ClientError) as exc:
        push(ecr, repo, fixed, seed="3")
    assert error(exc)[0] == "ImageTagAlreadyExistsException"
    answer = ecr.put_image_tag_mutability(
        repositoryName=repo,
        imageTagMutability=mode,
        imageTagMutabilityExclusionFilters=[{"filterType": "WILDCARD", "filter": "x*"}],
    )
    assert answer["imageTagMutabilityExclusionFilters"] == [
        {"filterType": "WILDCARD", "filter": "x*"}
    ]


# -- BatchDeleteImage, ListImages, DescribeImages filters and pages ----------------------------


def test_batch_delete_image_by_tag_and_digest(ecr: Any) -> None:
    """BatchDeleteImage: a tag goes alone, the image with its last tag; a digest takes the
    image and every tag; failures for the rest."""
    repo = new_repo(ecr)
    manifest, two_tags = push(ecr, repo, "a", seed="1")
    ecr.put_image(repositoryName=repo, imageManifest=manifest, imageTag="b")
    _, other = push(ecr, repo, "c", seed="2")
    third_manifest, third = push(ecr, repo, "d", seed="3")
    ecr.put_image(repositoryName=repo, imageManifest=third_manifest, imageTag="e")
    result = ecr.batch_delete_image(repositoryName=repo, imageIds=[{"imageTag": "a"}])
    assert result == {**result, "imageIds": [{"imageDigest": two_tags, "imageTag": "a"}]}
    assert details(ecr, repo)[two_tags]["imageTags"] == ["b"]
    ecr.batch_delete_image(repositoryName=repo, imageIds=[{"imageTag": "b"}])
    assert two_tags not in details(ecr, repo)  # its last tag went
    result = ecr.batch_delete_image(repositoryName=repo, imageIds=[{"imageDigest": third}])
    assert sorted(i["imageTag"] for i in result["imageIds"]) == ["d", "e"]
    assert third not in details(ecr, repo)
    result = ecr.batch_delete_image(
        repositoryName=repo,
        imageIds=[{"imageTag": "c", "imageDigest": third}, {"imageTag": "zz"}, {}],
    )
    assert result["imageIds"] == []
    assert [f["failureCode"] for f in result["failures"]] == [
        "ImageTagDoesNotMatchDigest",
        "ImageNotFound",
        "MissingDigestAndTag",
    ]
    assert other in details(ecr, repo)


def test_list_images_filters_and_pages(ecr: Any) -> None:
    """ListImagesFilter.tagStatus TAGGED|UNTAGGED|ANY; maxResults/nextToken."""
    repo = new_repo(ecr)
    _, untagged = push(ecr, repo, "t", seed="0")
    push(ecr, repo, "t", seed="1")  # moves t: the first image is untagged now
    for i in range(2, 5):
        push(ecr, repo, f"t{i}", seed=str(i))
    tagged = ecr.list_images(repositoryName=repo, filter={"tagStatus": "TAGGED"})["imageIds"]
    assert sorted(i["imageTag"] for i in tagged) == ["t", "t2", "t3", "t4"]
    assert ecr.list_images(repositoryName=repo, filter={"tagStatus": "UNTAGGED"})["imageIds"] == [
        {"imageDigest": untagged}
    ]
    everything = ecr.list_images(repositoryName=repo)["imageIds"]
    assert len(everything) == 5
    pages, token = [], None
    while True:
        kw = {"nextToken": token} if token else {}
        page = ecr.list_images(repositoryName=repo, maxResults=2, **kw)
        pages.append(page["imageIds"])
        token = page.get("nextToken")
        if not token:
            break
    assert [len(p) for p in pages] == [2, 2, 1]
    assert [i for p in pages for i in p] == everything
    with pytest.raises(ClientError) as exc:
        ecr.list_images(repositoryName=repo, nextToken="garbage!")
    assert error(exc)[0] == "InvalidParameterException"
    archived = ecr.list_images(repositoryName=repo, filter={"imageStatus": "ARCHIVED"})
    assert archived["imageIds"] == []


def test_describe_images_filters_and_pages(ecr: Any) -> None:
    repo = new_repo(ecr)
    _, untagged = push(ecr, repo, "x", seed="0")
    for i in range(1, 4):
        push(ecr, repo, "x" if i == 1 else f"y{i}", seed=str(i))
    only = ecr.describe_images(repositoryName=repo, filter={"tagStatus": "UNTAGGED"})
    assert [d["imageDigest"] for d in only["imageDetails"]] == [untagged]
    first = ecr.describe_images(repositoryName=repo, maxResults=3)
    rest = ecr.describe_images(repositoryName=repo, maxResults=3, nextToken=first["nextToken"])
    assert len(first["imageDetails"]) == 3 and len(rest["imageDetails"]) == 1
    assert "nextToken" not in rest


# -- layer operations --------------------------------------------------------------------------


def test_layer_upload_errors(ecr: Any) -> None:
    """InvalidLayerPartException (a part not consecutive), UploadNotFoundException (unknown
    id, another repository's upload), EmptyUploadException, InvalidLayerException (digest
    mismatch), LayerAlreadyExistsException."""
    repo, other = new_repo(ecr), new_repo(ecr)
    started = ecr.initiate_layer_upload(repositoryName=repo)
    assert started["partSize"] > 0
    upload_id = started["uploadId"]
    assert str(uuid.UUID(upload_id)) == upload_id
    with pytest.raises(ClientError) as exc:
        ecr.complete_layer_upload(
            repositoryName=repo, uploadId=upload_id, layerDigests=[digest(b"")]
        )
    assert error(exc)[0] == "EmptyUploadException"
    part = {"repositoryName": repo, "uploadId": upload_id}
    ecr.upload_layer_part(**part, partFirstByte=0, partLastByte=2, layerPartBlob=b"abc")
    with pytest.raises(ClientError) as exc:
        ecr.upload_layer_part(**part, partFirstByte=5, partLastByte=7, layerPartBlob=b"def")
    assert error(exc)[0] == "InvalidLayerPartException"
    with pytest.raises(ClientError) as exc:
        ecr.upload_layer_part(**part, partFirstByte=3, partLastByte=9, layerPartBlob=b"def")
    assert error(exc)[0] == "InvalidLayerPartException"
    last = ecr.upload_layer_part(**part, partFirstByte=3, partLastByte=5, layerPartBlob=b"def")
    assert last["lastByteReceived"] == 5
    with pytest.raises(ClientError) as exc:
        ecr.upload_layer_part(
            repositoryName=other,
            uploadId=upload_id,
            partFirstByte=6,
            partLastByte=6,
            layerPartBlob=b"g",
        )
    assert error(exc)[0] == "UploadNotFoundException"
    with pytest.raises(ClientError) as exc:
        ecr.complete_layer_upload(**part, layerDigests=[digest(b"something else")])
    assert error(exc)[0] == "InvalidLayerException"
    done = ecr.complete_layer_upload(**part, layerDigests=[digest(b"abcdef")])
    assert done["layerDigest"] == digest(b"abcdef")
    with pytest.raises(ClientError) as exc:
        ecr.complete_layer_upload(**part, layerDigests=[digest(b"abcdef")])
    assert error(exc)[0] == "UploadNotFoundException"
    again = ecr.initiate_layer_upload(repositoryName=repo)["uploadId"]
    ecr.upload_layer_part(
        repositoryName=repo, uploadId=again, partFirstByte=0, partLastByte=5,
        layerPartBlob=b"abcdef",
    )  # fmt: skip
    with pytest.raises(ClientError) as exc:
        ecr.complete_layer_upload(
            repositoryName=repo, uploadId=again, layerDigests=[digest(b"abcdef")]
        )
    assert error(exc)[0] == "LayerAlreadyExistsException"
    with pytest.raises(ClientError) as exc:
        ecr.upload_layer_part(
            repositoryName=repo,
            uploadId=str(uuid.uuid4()),
            partFirstByte=0,
            partLastByte=0,
            layerPartBlob=b"x",
        )
    assert error(exc)[0] == "UploadNotFoundException"


def test_layer_availability_and_download_url(server: Server, ecr: Any) -> None:
    """BatchCheckLayerAvailability (AVAILABLE with size and the image's mediaType; failures
    MissingLayerDigest, InvalidLayerDigest); GetDownloadUrlForLayer: the registry's blob route
    here, LayerInaccessibleException for a blob in no image, LayersNotFoundException."""
    repo = new_repo(ecr)
    push(ecr, repo, "v1", seed="avail")
    layer_digest = digest(b"layer bytes avail")
    loose = upload(ecr, repo, b"not in any image")
    result = ecr.batch_check_layer_availability(
        repositoryName=repo, layerDigests=[layer_digest, loose, digest(b"absent"), "bad"]
    )
    assert result["layers"] == [
        {
            "layerDigest": layer_digest,
            "layerAvailability": "AVAILABLE",
            "layerSize": len(b"layer bytes avail"),
            "mediaType": OCI_LAYER,
        },
        {"layerDigest": loose, "layerAvailability": "AVAILABLE", "layerSize": 16},
    ]
    assert [(f["layerDigest"], f["failureCode"]) for f in result["failures"]] == [
        (digest(b"absent"), "MissingLayerDigest"),
        ("bad", "InvalidLayerDigest"),
    ]
    url = ecr.get_download_url_for_layer(repositoryName=repo, layerDigest=layer_digest)
    assert url["downloadUrl"] == f"{server.url}/v2/{repo}/blobs/{layer_digest}"
    with pytest.raises(ClientError) as exc:
        ecr.get_download_url_for_layer(repositoryName=repo, layerDigest=loose)
    assert error(exc)[0] == "LayerInaccessibleException"
    with pytest.raises(ClientError) as exc:
        ecr.get_download_url_for_layer(repositoryName=repo, layerDigest=digest(b"absent"))
    assert error(exc)[0] == "LayersNotFoundException"
    ecr.batch_delete_image(repositoryName=repo, imageIds=[{"imageTag": "v1"}])
    with pytest.raises(ClientError) as exc:  # its image is gone: the layer is in none now
        ecr.get_download_url_for_layer(repositoryName=repo, layerDigest=layer_digest)
    assert error(exc)[0] == "LayerInaccessibleException"


def test_concurrent_completions_of_one_upload_commit_once(ecr: Any) -> None:
    """Completions of one upload session are serialised with every other request on it (the
    per-session lock the /v2 routes use too): of four CompleteLayerUpload at once, one
    commits and the others find the session gone (UploadNotFoundException), never two
    successes for one session."""
    repo = new_repo(ecr)
    layer = b"\x01" * (8 << 20)
    upload_id = ecr.initiate_layer_upload(repositoryName=repo)["uploadId"]
    ecr.upload_layer_part(
        repositoryName=repo, uploadId=upload_id, partFirstByte=0,
        partLastByte=len(layer) - 1, layerPartBlob=layer,
    )  # fmt: skip

    def complete() -> str:
        try:
            ecr.complete_layer_upload(
                repositoryName=repo, uploadId=upload_id, layerDigests=[digest(layer)]
            )
        except ClientError as exc:
            return str(exc.response["Error"]["Code"])
        return "ok"

    with ThreadPoolExecutor(4) as pool:
        outcomes = sorted(pool.map(lambda _: complete(), range(4)))
    assert outcomes == ["UploadNotFoundException"] * 3 + ["ok"], outcomes


def test_delete_repository_aborts_its_uploads(ecr: Any) -> None:
    """An upload session belongs to its repository: DeleteRepository ends it, and a
    repository created again under the name cannot complete the old bytes."""
    repo = new_repo(ecr)
    upload_id = ecr.initiate_layer_upload(repositoryName=repo)["uploadId"]
    ecr.upload_layer_part(
        repositoryName=repo, uploadId=upload_id, partFirstByte=0, partLastByte=2,
        layerPartBlob=b"old",
    )  # fmt: skip
    ecr.delete_repository(repositoryName=repo)
    ecr.create_repository(repositoryName=repo)
    with pytest.raises(ClientError) as exc:
        ecr.complete_layer_upload(
            repositoryName=repo, uploadId=upload_id, layerDigests=[digest(b"old")]
        )
    assert error(exc)[0] == "UploadNotFoundException"
