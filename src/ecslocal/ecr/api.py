"""Amazon ECR's control plane (AWS JSON 1.1, target prefix
``AmazonEC2ContainerRegistry_V20150921``, signing name ``ecr``: botocore
``ecr/2015-09-21/service-2.json`` metadata) over :class:`~ecslocal.ecr.store.ImageStore`.

This module: the Service, repositories, GetAuthorizationToken and resource tags. Images are in
:mod:`ecslocal.ecr.api_images`, the layer operations in :mod:`ecslocal.ecr.api_layers`.
Repositories belong to the caller's account (``registryId``, when given, names the account:
"If you do not specify a registry, the default registry is assumed") in the daemon's region.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from botocore.model import OperationModel

from ecslocal.api.service import Handler, Service
from ecslocal.auth.caller import Caller
from ecslocal.config import Config
from ecslocal.ecr.api_images import ImagesMixin
from ecslocal.ecr.api_layers import LayersMixin
from ecslocal.ecr.names import (
    invalid_name,
    parse_repository_arn,
    proxy_endpoint,
    repository_arn,
    valid_name,
)
from ecslocal.ecr.paging import invalid, page
from ecslocal.ecr.store import ImageStore, Repository, repository_not_found
from ecslocal.ecr.tokens import AuthTokens
from ecslocal.errors import AwsError
from ecslocal.registry.blobs import BlobStore

#: "Maximum number of tags per resource: 50" (botocore TooManyTagsException text).
MAX_TAGS = 50
#: botocore InvalidTagParameterException: keys up to 128 characters, values up to 256.
MAX_TAG_KEY, MAX_TAG_VALUE = 128, 256


#: UploadLayerPart's largest part (botocore LayerPartBlob max 20,971,520 bytes) as base64 in
#: a JSON body, with room for the other members.
MAX_REQUEST_BYTES = 20_971_520 * 4 // 3 + 64 * 1024


@dataclass
class EcrService(Service):
    """ECR answers a repositoryName outside the name pattern with InvalidParameterException
    in its own words (names.invalid_name), before the model's generic validation; and the
    base64 of ``layerPartBlob`` is decoded first, so its length limit (botocore LayerPartBlob)
    counts bytes, as the model means it."""

    #: The daemon's region (the resource ARN of a cross-account refusal).
    region: str = ""

    async def call(self, op: OperationModel, params: dict[str, Any], caller: Caller) -> Any:
        registry = params.get("registryId")
        if isinstance(registry, str) and registry != caller.account_id:
            raise cross_account_denied(op.name, caller, self.region, registry, params)
        return await super().call(op, params, caller)

    def check_input(self, op: OperationModel, params: dict[str, Any]) -> None:
        name = params.get("repositoryName")
        if isinstance(name, str) and 2 <= len(name) <= 256 and not valid_name(name):
            raise invalid_name()
        blob = params.get("layerPartBlob")
        if op.name == "UploadLayerPart" and isinstance(blob, str):
            try:
                data = params["layerPartBlob"] = base64.b64decode(blob, validate=True)
            except binascii.Error:
                raise AwsError(
                    "SerializationException", "Expected base64 data at 'layerPartBlob'"
                ) from None
            # The shared validator checks no blob lengths; this one is the model's.
            limit = op.input_shape.members["layerPartBlob"].metadata["max"]
            if len(data) > limit:
                code, status = self.validation_error
                raise AwsError(
                    code,
                    "1 validation error detected: Value at 'layerPartBlob' failed to satisfy"
                    f" constraint: Member must have length less than or equal to {limit}",
                    status,
                )
        super().check_input(op, params)


def cross_account_denied(
    action: str, caller: Caller, region: str, registry: str, params: dict[str, Any]
) -> AwsError:
    """Another account's registry: a daemon account owns one registry, and the other's
    repositories can have no repository policy granting this caller anything (ecslocal has no
    SetRepositoryPolicy), so IAM's implicit deny answers, as AWS does cross-account without
    a policy: AccessDeniedException, "User: <arn> is not authorized to perform: ecr:<Action>
    on resource: <arn> because no resource-based policy allows the ecr:<Action> action" (IAM
    User Guide, "Access denied error messages",
    https://docs.aws.amazon.com/IAM/latest/UserGuide/troubleshoot_access-denied.html; an ECR
    CreateRepository so refused: nuclio/nuclio#4034)."""
    name = params.get("repositoryName")
    resource = repository_arn(region, registry, name if isinstance(name, str) else "*")
    return AwsError(
        "AccessDeniedException",
        f"User: {caller.arn} is not authorized to perform: ecr:{action} on resource:"
        f" {resource} because no resource-based policy allows the ecr:{action} action",
    )


class EcrApi(ImagesMixin, LayersMixin):
    def __init__(
        self, config: Config, images: ImageStore, tokens: AuthTokens, blobs: BlobStore
    ) -> None:
        self.config = config
        self.region = config.region
        self.images = images
        self.tokens = tokens
        self.blobs = blobs
        #: Called (on the event loop) when an image or repository went: the daemon passes the
        #: registry's ``Registry.collect_soon``, so that the blobs only it used are collected
        #: soon, as after a registry manifest DELETE (ecr does not import the registry routes).
        self.deleted: Callable[[], None] = lambda: None
        #: Where GetDownloadUrlForLayer's URLs point (the daemon's own URL, set once bound).
        self.base_url = ""

    def service(self) -> Service:
        handlers: dict[str, Handler] = {
            "CreateRepository": self.create_repository,
            "DescribeRepositories": self.describe_repositories,
            "DeleteRepository": self.delete_repository,
            "PutImageTagMutability": self.put_image_tag_mutability,
            "GetAuthorizationToken": self.get_authorization_token,
            "TagResource": self.tag_resource,
            "UntagResource": self.untag_resource,
            "ListTagsForResource": self.list_tags_for_resource,
            **self.image_handlers(),
            **self.layer_handlers(),
        }
        return EcrService(
            "ecr",
            handlers,
            signing_name="ecr",
            target_prefix="AmazonEC2ContainerRegistry_V20150921",
            max_request_bytes=MAX_REQUEST_BYTES,
            region=self.region,
        )

    # -- helpers ----------------------------------------------------------------------------
    def account(self, p: dict[str, Any], caller: Caller) -> str:
        return str(p.get("registryId") or caller.account_id)

    def repo(self, p: dict[str, Any], caller: Caller) -> Repository:
        account = self.account(p, caller)
        repo = self.images.repository(account, self.region, p["repositoryName"])
        if repo is None:
            raise repository_not_found(p["repositoryName"], account)
        return repo

    def describe(self, repo: Repository) -> dict[str, Any]:
        """A Repository shape: the settings as created, with AWS's defaults filled in
        (imageScanningConfiguration.scanOnPush false, encryptionType AES256)."""
        out: dict[str, Any] = {
            "repositoryArn": repo.arn,
            "registryId": repo.account,
            "repositoryName": repo.name,
            "repositoryUri": repo.uri,
            "createdAt": repo.created_at,
            "imageTagMutability": repo.image_tag_mutability,
            "imageScanningConfiguration": {"scanOnPush": repo.scan_on_push},
            "encryptionConfiguration": {"encryptionType": repo.encryption_type},
        }
        if repo.kms_key:
            out["encryptionConfiguration"]["kmsKey"] = repo.kms_key
        if repo.exclusion_filters:
            out["imageTagMutabilityExclusionFilters"] = [
                {"filterType": t, "filter": f} for t, f in repo.exclusion_filters
            ]
        return out

    @staticmethod
    def mutability(p: dict[str, Any]) -> tuple[str, tuple[tuple[str, str], ...]]:
        """imageTagMutability and its exclusion filters: the ``*_WITH_EXCLUSION`` modes need
        filters, the others take none (ecslocal's wording: no AWS message found)."""
        mode = p.get("imageTagMutability") or "MUTABLE"
        filters = tuple(
            (f["filterType"], f["filter"])
            for f in p.get("imageTagMutabilityExclusionFilters") or []
        )
        if mode.endswith("_WITH_EXCLUSION") and not filters:
            raise invalid(
                "Invalid parameter at 'imageTagMutabilityExclusionFilters': exclusion filters"
                f" are required when imageTagMutability is {mode}"
            )
        if filters and not mode.endswith("_WITH_EXCLUSION"):
            raise invalid(
                "Invalid parameter at 'imageTagMutabilityExclusionFilters': exclusion filters"
                f" can only be used with IMMUTABLE_WITH_EXCLUSION or MUTABLE_WITH_EXCLUSION,"
                f" not {mode}"
            )
        return mode, filters

    @staticmethod
    def check_tags(tags: list[dict[str, Any]]) -> tuple[tuple[str, str], ...]:
        out: dict[str, str] = {}
        for tag in tags:
            key, value = tag["Key"], tag["Value"]
            if not key or len(key) > MAX_TAG_KEY or len(value) > MAX_TAG_VALUE:
                raise AwsError(
                    "InvalidTagParameterException",
                    "Tag keys can have a maximum character length of 128 characters, and tag"
                    " values can have a maximum length of 256 characters.",
                )
            if key.lower().startswith("aws:"):
                raise AwsError(
                    "InvalidTagParameterException", "The 'aws:' prefix is reserved for AWS use."
                )
            out[key] = value
        return tuple(out.items())

    @staticmethod
    def too_many_tags(count: int) -> None:
        if count > MAX_TAGS:
            raise AwsError(
                "TooManyTagsException",
                f"The list of tags on the repository is over the limit ({count} tags). The"
                f" maximum number of tags that can be applied to a repository is {MAX_TAGS}.",
            )

    # -- repositories -----------------------------------------------------------------------
    def create_repository(self, p: dict[str, Any], caller: Caller) -> dict[str, Any]:
        account = self.account(p, caller)
        mode, filters = self.mutability(p)
        tags = self.check_tags(p.get("tags") or [])
        self.too_many_tags(len(tags))
        encryption = p.get("encryptionConfiguration") or {}
        kind = encryption.get("encryptionType", "AES256")
        kms_key = encryption.get("kmsKey")
        if kms_key and kind == "AES256":
            # botocore EncryptionConfiguration.kmsKey: only for KMS and KMS_DSSE.
            raise invalid(
                "Invalid parameter at 'encryptionConfiguration': kmsKey can only be"
                " specified when encryptionType is KMS or KMS_DSSE"
            )
        repo = self.images.create_repository(
            account,
            self.region,
            p["repositoryName"],
            mutability=mode,
            exclusion_filters=filters,
            scan_on_push=bool((p.get("imageScanningConfiguration") or {}).get("scanOnPush")),
            encryption_type=kind,
            kms_key=kms_key,
            tags=tags,
        )
        return {"repository": self.describe(repo)}

    def describe_repositories(self, p: dict[str, Any], caller: Caller) -> dict[str, Any]:
        account = self.account(p, caller)
        names = p.get("repositoryNames")
        if names:
            if p.get("maxResults") or p.get("nextToken"):
                # DescribeRepositoriesRequest.maxResults: "This option cannot be used when you
                # specify repositories with repositoryNames."
                raise invalid(
                    "Invalid parameter at 'maxResults': this option cannot be used when"
                    " repositoryNames is specified"
                )
            found = []
            for name in dict.fromkeys(names):
                repo = self.images.repository(account, self.region, name)
                if repo is None:
                    raise repository_not_found(name, account)
                found.append(repo)
            return {"repositories": [self.describe(r) for r in found]}
        items, token = page(self.images.repositories(account, self.region), p)
        out: dict[str, Any] = {"repositories": [self.describe(r) for r in items]}
        if token:
            out["nextToken"] = token
        return out

    def delete_repository(self, p: dict[str, Any], caller: Caller) -> dict[str, Any]:
        repo = self.repo(p, caller)
        self.images.delete_repository(repo, force=bool(p.get("force")))
        self.deleted()
        return {"repository": self.describe(repo)}

    def put_image_tag_mutability(self, p: dict[str, Any], caller: Caller) -> dict[str, Any]:
        repo = self.repo(p, caller)
        mode, filters = self.mutability(p)
        repo = self.images.set_mutability(repo, mode, filters)
        out: dict[str, Any] = {
            "registryId": repo.account,
            "repositoryName": repo.name,
            "imageTagMutability": repo.image_tag_mutability,
        }
        if filters:
            out["imageTagMutabilityExclusionFilters"] = [
                {"filterType": t, "filter": f} for t, f in filters
            ]
        return out

    # -- authorization ----------------------------------------------------------------------
    def get_authorization_token(self, p: dict[str, Any], caller: Caller) -> dict[str, Any]:
        """One AuthorizationData per registry asked for (the caller's when none is): a token
        of the caller's account, valid 12 h, and the registry's URL as ``proxyEndpoint``."""
        data = []
        for _ in dict.fromkeys(p.get("registryIds") or [caller.account_id]):
            token, expires_at = self.tokens.issue(caller.account_id, self.region)
            data.append(
                {
                    "authorizationToken": token,
                    "expiresAt": expires_at,
                    "proxyEndpoint": proxy_endpoint(self.images.registry),
                }
            )
        return {"authorizationData": data}

    # -- resource tags ----------------------------------------------------------------------
    def _tagged(self, p: dict[str, Any], caller: Caller) -> Repository:
        arn = p["resourceArn"]
        parsed = parse_repository_arn(arn)
        if parsed is None or parsed[0] != self.region:
            raise invalid(
                f"Invalid parameter at 'resourceArn' failed to satisfy constraint:"
                f" '{arn}' is not a valid repository ARN"
            )
        _, account, name = parsed
        repo = self.images.repository(account, self.region, name)
        if repo is None:
            raise repository_not_found(name, account)
        return repo

    def tag_resource(self, p: dict[str, Any], caller: Caller) -> dict[str, Any]:
        repo = self._tagged(p, caller)
        merged = dict(repo.tags)
        merged.update(self.check_tags(p["tags"]))
        self.too_many_tags(len(merged))
        self.images.set_tags(repo, tuple(merged.items()))
        return {}

    def untag_resource(self, p: dict[str, Any], caller: Caller) -> dict[str, Any]:
        repo = self._tagged(p, caller)
        drop = set(p["tagKeys"])
        self.images.set_tags(repo, tuple((k, v) for k, v in repo.tags if k not in drop))
        return {}

    def list_tags_for_resource(self, p: dict[str, Any], caller: Caller) -> dict[str, Any]:
        repo = self._tagged(p, caller)
        return {"tags": [{"Key": k, "Value": v} for k, v in repo.tags]}
