"""Every wire protocol against botocore itself, both directions.

A real boto3 client (lambda: rest-json, s3: rest-xml, ecs/logs: json, sts/iam: query) signs
and serializes each call; its ``before-send`` hook hands the request to ecslocal's gateway
(routing, SigV4 verification, the protocol's parser, the model's validation) instead of the
network, and hands the gateway's answer back to botocore's own response parser. A test handler
records the params the gateway recovered and returns a canned result: the request direction
is checked on what the handler saw, the response direction on what the client call returned.
No rest service is registered in the daemon yet, so the services here are built in the test.
"""

from __future__ import annotations

import asyncio
import io
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import boto3
import pytest
import urllib3
from botocore.awsrequest import AWSResponse
from botocore.config import Config
from botocore.exceptions import ClientError
from multidict import CIMultiDict

from ecslocal.api.gateway import Gateway, too_large
from ecslocal.api.protocols import HttpRequest, by_name
from ecslocal.api.routing import UriTemplate, virtual_host_bucket
from ecslocal.api.service import (
    JSON_AUTH_ERRORS,
    QUERY_AUTH_ERRORS,
    REST_JSON_AUTH_ERRORS,
    REST_XML_AUTH_ERRORS,
    Service,
)
from ecslocal.auth.authenticator import Authenticator
from ecslocal.auth.caller import Caller
from ecslocal.auth.keys import KeyStore
from ecslocal.auth.sigv4 import Failure
from ecslocal.clock import Clock
from ecslocal.errors import AwsError
from ecslocal.model.shapes import service_model
from ecslocal.storage.db import Database

T0 = datetime(2026, 3, 4, 5, 6, 7, tzinfo=UTC)
T1 = datetime(2026, 3, 4, 5, 6, 8, 250000, tzinfo=UTC)


class Recorder:
    """Handlers for the operations named in ``results``: each records its params and returns
    its canned result (or raises it, if it is an exception)."""

    def __init__(self) -> None:
        self.results: dict[str, Any] = {}
        self.calls: list[tuple[str, dict[str, Any]]] = []

    def handlers(self, operations: list[str]) -> dict[str, Any]:
        return {op: self._handler(op) for op in operations}

    def _handler(self, op: str) -> Any:
        def handle(params: dict[str, Any], caller: Caller) -> Any:
            self.calls.append((op, params))
            result = self.results.get(op, {})
            if isinstance(result, BaseException):
                raise result
            return result

        return handle

    @property
    def last(self) -> dict[str, Any]:
        return self.calls[-1][1]


SERVICES = {
    "lambda": [
        "Invoke",
        "CreateFunction",
        "ListFunctions",
        "TagResource",
        "GetFunction",
        "CreateEventSourceMapping",
    ],
    "s3": [
        "PutObject",
        "GetObject",
        "HeadObject",
        "ListObjectsV2",
        "ListObjects",
        "PutBucketTagging",
        "GetBucketTagging",
        "CreateBucket",
        "DeleteObjects",
        "ListBuckets",
        "CreateMultipartUpload",
    ],
    "ecs": ["RegisterTaskDefinition", "DescribeTasks", "ListTasks"],
    "logs": ["PutLogEvents", "GetLogEvents"],
    "sts": ["AssumeRole", "GetCallerIdentity", "AssumeRoleWithWebIdentity"],
    "iam": ["CreateRole", "ListRoles"],
}
TARGETS = {"ecs": "AmazonEC2ContainerServiceV20141113", "logs": "Logs_20140328"}


class Wire:
    """An in-process gateway that boto3 clients talk to through their ``before-send`` hook."""

    def __init__(self, data_dir: Path) -> None:
        self.db = Database(data_dir / "state.db")
        keys = KeyStore(self.db)
        keys.add_long_term("test", "test", "000000000000", time.time())
        self.recorder = Recorder()
        services = [
            Service(
                name,
                self.recorder.handlers(ops),
                signing_name=name,
                target_prefix=TARGETS.get(name),
                unsigned_operations=frozenset({"AssumeRoleWithWebIdentity"})
                if name == "sts"
                else frozenset(),
            )
            for name, ops in SERVICES.items()
        ]
        self.gateway = Gateway(services, Authenticator(keys, Clock(), "us-east-1"))
        self.loop = asyncio.new_event_loop()
        self.seen: list[HttpRequest] = []

    def client(self, name: str, key: str = "test", **config: Any) -> Any:
        client = boto3.client(
            name,
            endpoint_url="http://localhost:4600",
            region_name="us-east-1",
            aws_access_key_id=key,
            aws_secret_access_key="test",
            config=Config(
                retries={"total_max_attempts": 1},
                request_checksum_calculation="when_required",
                response_checksum_validation="when_required",
                **config,
            ),
        )
        client.meta.events.register("before-send", self._send)
        return client

    def _send(self, request: Any, **_: Any) -> AWSResponse:
        url = urlsplit(request.url)
        headers = CIMultiDict(
            (k, v.decode() if isinstance(v, bytes) else v) for k, v in request.headers.items()
        )
        headers.setdefault("Host", url.netloc)  # as the HTTP client adds it (and botocore signs it)
        body = request.body or b""
        if hasattr(body, "read"):
            body = body.read()
        if isinstance(body, str):
            body = body.encode()
        plain = HttpRequest(
            request.method, url.path or "/", url.query, headers, b"", url.hostname or ""
        )
        self.seen.append(plain)

        async def read(limit: int) -> bytes:
            if len(body) > limit:
                raise too_large(limit)
            return bytes(body)

        answer = self.loop.run_until_complete(self.gateway.serve(plain, read, len(body)))
        raw = urllib3.HTTPResponse(
            body=io.BytesIO(answer.body),
            headers=answer.headers,
            status=answer.status,
            preload_content=False,
            request_method=request.method,
        )
        return AWSResponse(request.url, answer.status, answer.headers, raw)

    def close(self) -> None:
        self.loop.close()
        self.db.close()


@pytest.fixture(scope="module")
def wire(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Wire]:
    w = Wire(tmp_path_factory.mktemp("wire"))
    yield w
    w.close()


def _error(client_call: Any) -> dict[str, Any]:
    with pytest.raises(ClientError) as info:
        client_call()
    return info.value.response


# -- rest-json: Lambda -------------------------------------------------------------------------
def test_rest_json_invoke_labels_querystring_headers_and_blob_payload(wire: Wire) -> None:
    """Invoke: a uri label, a querystring member, header members, a blob payload; back: a
    statusCode member, header members, a blob payload (botocore's StreamingBody)."""
    lam = wire.client("lambda")
    wire.recorder.results["Invoke"] = {
        "StatusCode": 202,
        "FunctionError": "Unhandled",
        "LogResult": "bG9ncw==",
        "ExecutedVersion": "7",
        "Payload": b'{"answer": 42}',
    }
    out = lam.invoke(
        FunctionName="my-fn",
        Qualifier="live",
        InvocationType="Event",
        LogType="Tail",
        ClientContext="e30=",
        Payload=b'{"question": "?"}',
    )
    assert wire.recorder.calls[-1][0] == "Invoke"
    assert wire.recorder.last == {
        "FunctionName": "my-fn",
        "Qualifier": "live",
        "InvocationType": "Event",
        "LogType": "Tail",
        "ClientContext": "e30=",
        "Payload": b'{"question": "?"}',
    }
    assert out["StatusCode"] == 202
    assert out["FunctionError"] == "Unhandled"
    assert out["LogResult"] == "bG9ncw=="
    assert out["ExecutedVersion"] == "7"
    assert out["Payload"].read() == b'{"answer": 42}'


def test_rest_json_nested_structures_maps_lists_and_blobs_in_the_body(wire: Wire) -> None:
    lam = wire.client("lambda")
    wire.recorder.results["CreateFunction"] = {
        "FunctionName": "my-fn",
        "FunctionArn": "arn:aws:lambda:us-east-1:000000000000:function:my-fn",
        "MemorySize": 256,
        "Environment": {"Variables": {"AA": "1", "BB": "two"}},
        "Layers": [{"Arn": "arn:aws:lambda:us-east-1:000000000000:layer:l:1", "CodeSize": 10}],
        "Architectures": ["arm64"],
    }
    out = lam.create_function(
        FunctionName="my-fn",
        Runtime="python3.12",
        Role="arn:aws:iam::000000000000:role/r",
        Handler="app.handler",
        Code={"ZipFile": b"PK\x03\x04 zip bytes \xff"},
        MemorySize=256,
        Publish=True,
        Environment={"Variables": {"AA": "1", "BB": "two"}},
        Tags={"team": "a", "cost": "b"},
        Layers=["arn:aws:lambda:us-east-1:000000000000:layer:l:1"],
        Architectures=["arm64"],
    )
    params = wire.recorder.last
    assert params["Code"] == {"ZipFile": b"PK\x03\x04 zip bytes \xff"}
    assert params["Publish"] is True and params["MemorySize"] == 256
    assert params["Environment"] == {"Variables": {"AA": "1", "BB": "two"}}
    assert params["Tags"] == {"team": "a", "cost": "b"}
    assert params["Layers"] == ["arn:aws:lambda:us-east-1:000000000000:layer:l:1"]
    assert out["ResponseMetadata"]["HTTPStatusCode"] == 201  # the model's responseCode
    assert out["Environment"] == {"Variables": {"AA": "1", "BB": "two"}}
    assert out["Layers"][0]["CodeSize"] == 10
    assert out["Architectures"] == ["arm64"]


def test_rest_json_querystring_ints_and_list_output(wire: Wire) -> None:
    lam = wire.client("lambda")
    wire.recorder.results["ListFunctions"] = {
        "Functions": [{"FunctionName": "a"}, {"FunctionName": "b", "Timeout": 3}],
        "NextMarker": "m2",
    }
    out = lam.list_functions(MaxItems=5, Marker="m1", FunctionVersion="ALL")
    assert wire.recorder.last == {"MaxItems": 5, "Marker": "m1", "FunctionVersion": "ALL"}
    assert [f["FunctionName"] for f in out["Functions"]] == ["a", "b"]
    assert out["Functions"][1]["Timeout"] == 3 and out["NextMarker"] == "m2"


def test_rest_json_label_with_reserved_characters_and_no_content(wire: Wire) -> None:
    """An ARN in a uri label is percent-encoded by botocore (':' and '/'); a 204 has no body."""
    lam = wire.client("lambda")
    arn = "arn:aws:lambda:us-east-1:000000000000:function:my-fn:prod"
    out = lam.tag_resource(Resource=arn, Tags={"k": "v w"})
    assert wire.recorder.last == {"Resource": arn, "Tags": {"k": "v w"}}
    assert out["ResponseMetadata"]["HTTPStatusCode"] == 204


def test_rest_json_timestamps_both_ways(wire: Wire) -> None:
    """A timestamp in a JSON body: epoch seconds, botocore's rest-json default."""
    lam = wire.client("lambda")
    wire.recorder.results["CreateEventSourceMapping"] = {"UUID": "u-1", "LastModified": T1}
    out = lam.create_event_source_mapping(
        FunctionName="my-fn",
        EventSourceArn="arn:aws:sqs:us-east-1:000000000000:q",
        StartingPosition="AT_TIMESTAMP",
        StartingPositionTimestamp=T0,
        BatchSize=10,
    )
    assert wire.recorder.last["StartingPositionTimestamp"] == T0.timestamp()
    assert out["LastModified"] == T1


def test_rest_json_errors(wire: Wire) -> None:
    lam = wire.client("lambda")
    wire.recorder.results["GetFunction"] = AwsError(
        "ResourceNotFoundException", "Function not found: my-fn", 404
    )
    with pytest.raises(lam.exceptions.ResourceNotFoundException) as info:
        lam.get_function(FunctionName="my-fn")
    assert info.value.response["Error"]["Message"] == "Function not found: my-fn"
    assert info.value.response["ResponseMetadata"]["HTTPStatusCode"] == 404
    wire.recorder.results["GetFunction"] = RuntimeError("a bug")
    response = _error(lambda: lam.get_function(FunctionName="my-fn"))
    assert response["Error"]["Code"] == "ServiceException"
    assert response["ResponseMetadata"]["HTTPStatusCode"] == 500
    # a model constraint, checked after parsing: FunctionName has a max length of 170
    response = _error(
        lambda: wire.client("lambda", parameter_validation=False).list_functions(MaxItems=0)
    )
    assert response["ResponseMetadata"]["HTTPStatusCode"] == 400
    # an unknown key, checked before the body is read
    response = _error(lambda: wire.client("lambda", key="nobody").get_function(FunctionName="f"))
    assert response["Error"]["Code"] == "UnrecognizedClientException"
    assert response["ResponseMetadata"]["HTTPStatusCode"] == 403


# -- rest-xml: S3 ------------------------------------------------------------------------------
@pytest.mark.parametrize("style", ["path", "virtual"])
def test_rest_xml_put_object_greedy_key_headers_metadata_and_blob(wire: Wire, style: str) -> None:
    """PutObject: the bucket from the path or the host (virtual-hosted style), a greedy key
    with '/', spaces and non-ASCII, header members (a timestamp in iso8601 by the member's
    timestampFormat), an ``x-amz-meta-`` prefix map and a blob payload."""
    s3 = wire.client("s3", s3={"addressing_style": style})
    wire.recorder.results["PutObject"] = {"ETag": '"abc"', "VersionId": "v1"}
    key = "dir/sub dir/naïve+file.txt"
    out = s3.put_object(
        Bucket="my-bucket",
        Key=key,
        Body=b"\x00binary\xff",
        ContentType="application/x-thing",
        Metadata={"owner": "me", "tier": "gold"},
        ObjectLockRetainUntilDate=T0,
        Tagging="a=b&c=d",
    )
    host = wire.seen[-1].host
    assert host == ("my-bucket.localhost" if style == "virtual" else "localhost")
    params = wire.recorder.last
    assert params["Bucket"] == "my-bucket" and params["Key"] == key
    assert params["Body"] == b"\x00binary\xff"
    assert params["ContentType"] == "application/x-thing"
    assert params["Metadata"] == {"owner": "me", "tier": "gold"}
    assert params["ObjectLockRetainUntilDate"] == T0.timestamp()
    assert params["Tagging"] == "a=b&c=d"
    assert out["ETag"] == '"abc"' and out["VersionId"] == "v1"


def test_rest_xml_get_object_streaming_body_and_header_timestamps(wire: Wire) -> None:
    s3 = wire.client("s3")
    wire.recorder.results["GetObject"] = {
        "Body": b"hello world",
        "ContentLength": 11,
        "LastModified": T0,
        "ETag": '"e"',
        "Metadata": {"owner": "me"},
        "ContentType": "text/plain",
    }
    out = s3.get_object(
        Bucket="b-1", Key="k", Range="bytes=0-10", VersionId="v 2", IfModifiedSince=T0
    )
    assert wire.recorder.last == {
        "Bucket": "b-1",
        "Key": "k",
        "Range": "bytes=0-10",
        "VersionId": "v 2",
        "IfModifiedSince": T0.timestamp(),
    }
    assert out["Body"].read() == b"hello world"
    assert out["LastModified"] == T0 and out["ContentLength"] == 11
    assert out["Metadata"] == {"owner": "me"} and out["ContentType"] == "text/plain"


def test_rest_xml_query_literal_picks_the_operation_and_flattened_lists(wire: Wire) -> None:
    """``GET /{Bucket}?list-type=2`` is ListObjectsV2, ``GET /{Bucket}`` ListObjects; the
    output's ``Contents`` is a flattened list of structures with timestamps and longs."""
    s3 = wire.client("s3")
    wire.recorder.results["ListObjectsV2"] = {
        "Contents": [
            {"Key": "a/1", "Size": 5, "LastModified": T0, "StorageClass": "STANDARD"},
            {"Key": "a/2", "Size": 2**40, "LastModified": T1},
        ],
        "CommonPrefixes": [{"Prefix": "a/b/"}],
        "IsTruncated": True,
        "KeyCount": 2,
        "Name": "b-1",
    }
    out = s3.list_objects_v2(Bucket="b-1", Prefix="a/", MaxKeys=2, Delimiter="/")
    assert wire.recorder.calls[-1][0] == "ListObjectsV2"
    assert wire.recorder.last == {
        "Bucket": "b-1",
        "Prefix": "a/",
        "MaxKeys": 2,
        "Delimiter": "/",
        "EncodingType": "url",  # botocore adds it (and decodes the keys it gets back)
    }
    assert [(c["Key"], c["Size"], c["LastModified"]) for c in out["Contents"]] == [
        ("a/1", 5, T0),
        ("a/2", 2**40, T1),
    ]
    assert out["CommonPrefixes"] == [{"Prefix": "a/b/"}]
    assert out["IsTruncated"] is True and out["KeyCount"] == 2
    s3.list_objects(Bucket="b-1")
    assert wire.recorder.calls[-1][0] == "ListObjects"


def test_rest_xml_structured_payloads_both_ways(wire: Wire) -> None:
    s3 = wire.client("s3")
    tags = [{"Key": "env", "Value": "prod"}, {"Key": "team", "Value": "a&b <c>"}]
    s3.put_bucket_tagging(Bucket="b-1", Tagging={"TagSet": tags})
    assert wire.recorder.calls[-1][0] == "PutBucketTagging"
    assert wire.recorder.last["Tagging"] == {"TagSet": tags}
    wire.recorder.results["GetBucketTagging"] = {"TagSet": tags}
    assert s3.get_bucket_tagging(Bucket="b-1")["TagSet"] == tags
    wire.recorder.results["DeleteObjects"] = {
        "Deleted": [{"Key": "x", "VersionId": "1"}, {"Key": "y"}],
        "Errors": [{"Key": "z", "Code": "AccessDenied", "Message": "no"}],
    }
    out = s3.delete_objects(
        Bucket="b-1",
        Delete={"Objects": [{"Key": "x", "VersionId": "1"}, {"Key": "y"}], "Quiet": False},
    )
    assert wire.recorder.last["Delete"] == {
        "Objects": [{"Key": "x", "VersionId": "1"}, {"Key": "y"}],
        "Quiet": False,
    }
    assert out["Deleted"] == [{"Key": "x", "VersionId": "1"}, {"Key": "y"}]
    assert out["Errors"][0]["Code"] == "AccessDenied"


def test_rest_xml_create_bucket_virtual_host_and_query_flag(wire: Wire) -> None:
    s3 = wire.client("s3", s3={"addressing_style": "virtual"})
    wire.recorder.results["CreateBucket"] = {"Location": "/new-bucket"}
    out = s3.create_bucket(
        Bucket="new-bucket", CreateBucketConfiguration={"LocationConstraint": "eu-west-1"}
    )
    assert wire.seen[-1].host == "new-bucket.localhost" and wire.seen[-1].path == "/"
    assert wire.recorder.last == {
        "Bucket": "new-bucket",
        "CreateBucketConfiguration": {"LocationConstraint": "eu-west-1"},
    }
    assert out["Location"] == "/new-bucket"
    wire.recorder.results["CreateMultipartUpload"] = {"UploadId": "u1", "Key": "k/1"}
    out = s3.create_multipart_upload(Bucket="new-bucket", Key="k/1")  # POST ?uploads
    assert wire.recorder.calls[-1][0] == "CreateMultipartUpload"
    assert out["UploadId"] == "u1"


def test_rest_xml_list_buckets_and_head(wire: Wire) -> None:
    s3 = wire.client("s3")
    wire.recorder.results["ListBuckets"] = {
        "Buckets": [{"Name": "a", "CreationDate": T0}, {"Name": "b", "CreationDate": T1}],
        "Owner": {"ID": "o1", "DisplayName": "me"},
    }
    out = s3.list_buckets()
    assert out["Buckets"] == [{"Name": "a", "CreationDate": T0}, {"Name": "b", "CreationDate": T1}]
    assert out["Owner"] == {"ID": "o1", "DisplayName": "me"}
    wire.recorder.results["HeadObject"] = {"ContentLength": 3, "ETag": '"h"', "LastModified": T0}
    out = s3.head_object(Bucket="a", Key="x/y")
    assert wire.recorder.last == {"Bucket": "a", "Key": "x/y"}
    assert out["ContentLength"] == 3 and out["LastModified"] == T0


def test_rest_xml_errors(wire: Wire) -> None:
    s3 = wire.client("s3")
    wire.recorder.results["GetObject"] = AwsError(
        "NoSuchKey", "The specified key does not exist.", 404
    )
    with pytest.raises(s3.exceptions.NoSuchKey) as info:
        s3.get_object(Bucket="b-1", Key="nope")
    assert info.value.response["Error"]["Message"] == "The specified key does not exist."
    wire.recorder.results["GetObject"] = RuntimeError("a bug")
    response = _error(lambda: s3.get_object(Bucket="b-1", Key="k"))
    assert response["Error"]["Code"] == "InternalError"
    assert response["ResponseMetadata"]["HTTPStatusCode"] == 500
    response = _error(lambda: wire.client("s3", key="nobody").list_buckets())
    assert (response["Error"]["Code"], response["ResponseMetadata"]["HTTPStatusCode"]) == (
        "InvalidAccessKeyId",
        403,
    )


# -- json: ECS, Logs -----------------------------------------------------------------------
def test_json_nested_request_and_timestamps_in_the_response(wire: Wire) -> None:
    ecs = wire.client("ecs")
    container = {
        "name": "app",
        "image": "busybox",
        "essential": True,
        "memory": 64,
        "command": ["sh", "-c", "echo hi"],
        "environment": [{"name": "A", "value": "1"}],
        "portMappings": [{"containerPort": 80, "protocol": "tcp"}],
        "logConfiguration": {"logDriver": "awslogs", "options": {"awslogs-group": "g"}},
        "ulimits": [{"name": "nofile", "softLimit": 10, "hardLimit": 20}],
    }
    wire.recorder.results["RegisterTaskDefinition"] = {
        "taskDefinition": {"family": "f", "revision": 3, "registeredAt": T1},
        "tags": [{"key": "k", "value": "v"}],
    }
    out = ecs.register_task_definition(
        family="f", containerDefinitions=[container], tags=[{"key": "k", "value": "v"}]
    )
    assert wire.recorder.last == {
        "family": "f",
        "containerDefinitions": [container],
        "tags": [{"key": "k", "value": "v"}],
    }
    assert out["taskDefinition"]["registeredAt"] == T1 and out["taskDefinition"]["revision"] == 3
    wire.recorder.results["DescribeTasks"] = AwsError(
        "ClusterNotFoundException", "Cluster not found."
    )
    with pytest.raises(ecs.exceptions.ClusterNotFoundException):
        ecs.describe_tasks(tasks=["t"])


def test_json_longs_and_booleans(wire: Wire) -> None:
    logs = wire.client("logs")
    events = [{"timestamp": 1_700_000_000_123, "message": "a"}, {"timestamp": 1, "message": "b"}]
    wire.recorder.results["PutLogEvents"] = {"nextSequenceToken": "t"}
    out = logs.put_log_events(logGroupName="g", logStreamName="s", logEvents=events)
    assert wire.recorder.last == {"logGroupName": "g", "logStreamName": "s", "logEvents": events}
    assert out["nextSequenceToken"] == "t"
    wire.recorder.results["GetLogEvents"] = {
        "events": [{"timestamp": 5, "message": "m", "ingestionTime": 6}],
        "nextForwardToken": "f/1",
    }
    out = logs.get_log_events(logGroupName="g", logStreamName="s", startFromHead=True, limit=3)
    assert wire.recorder.last["startFromHead"] is True and wire.recorder.last["limit"] == 3
    assert out["events"] == [{"timestamp": 5, "message": "m", "ingestionTime": 6}]


# -- query: STS, IAM ---------------------------------------------------------------------------
def test_query_lists_of_structures_and_timestamps(wire: Wire) -> None:
    sts = wire.client("sts")
    wire.recorder.results["AssumeRole"] = {
        "Credentials": {
            "AccessKeyId": "ASIAX",
            "SecretAccessKey": "s",
            "SessionToken": "t",
            "Expiration": T0,
        },
        "AssumedRoleUser": {"AssumedRoleId": "AROA:s", "Arn": "arn:aws:sts::0:assumed-role/r/s"},
        "PackedPolicySize": 6,
    }
    out = sts.assume_role(
        RoleArn="arn:aws:iam::000000000000:role/r",
        RoleSessionName="sess",
        DurationSeconds=900,
        PolicyArns=[{"arn": "arn:aws:iam::aws:policy/A"}, {"arn": "arn:aws:iam::aws:policy/B"}],
        Tags=[{"Key": "k", "Value": "v & w"}],
        TransitiveTagKeys=["k"],
    )
    assert wire.recorder.last == {
        "RoleArn": "arn:aws:iam::000000000000:role/r",
        "RoleSessionName": "sess",
        "DurationSeconds": 900,
        "PolicyArns": [{"arn": "arn:aws:iam::aws:policy/A"}, {"arn": "arn:aws:iam::aws:policy/B"}],
        "Tags": [{"Key": "k", "Value": "v & w"}],
        "TransitiveTagKeys": ["k"],
    }
    assert out["Credentials"]["Expiration"] == T0
    assert out["AssumedRoleUser"]["Arn"] == "arn:aws:sts::0:assumed-role/r/s"
    assert out["PackedPolicySize"] == 6


def test_query_unsigned_operation_and_errors(wire: Wire) -> None:
    from botocore import UNSIGNED

    sts = wire.client("sts", signature_version=UNSIGNED)
    wire.recorder.results["AssumeRoleWithWebIdentity"] = {"Audience": "aud", "Provider": "p"}
    out = sts.assume_role_with_web_identity(
        RoleArn="arn:aws:iam::000000000000:role/r",
        RoleSessionName="sess",
        WebIdentityToken="x" * 900,
    )
    assert out["Audience"] == "aud" and wire.recorder.last["WebIdentityToken"] == "x" * 900
    response = _error(lambda: sts.get_caller_identity())  # unsigned, not allowed unsigned
    assert (response["Error"]["Code"], response["ResponseMetadata"]["HTTPStatusCode"]) == (
        "MissingAuthenticationToken",
        403,
    )
    iam = wire.client("iam")
    wire.recorder.results["CreateRole"] = AwsError(
        "EntityAlreadyExists", "Role with name r already exists.", 409
    )
    with pytest.raises(iam.exceptions.EntityAlreadyExistsException) as info:
        iam.create_role(RoleName="r", AssumeRolePolicyDocument="{}")
    assert info.value.response["Error"]["Message"] == "Role with name r already exists."
    wire.recorder.results["ListRoles"] = RuntimeError("a bug")
    response = _error(lambda: iam.list_roles())
    assert (response["Error"]["Code"], response["ResponseMetadata"]["HTTPStatusCode"]) == (
        "InternalFailure",
        500,
    )


def test_query_create_role_tags_and_list_output(wire: Wire) -> None:
    iam = wire.client("iam")
    wire.recorder.results["CreateRole"] = {
        "Role": {
            "Path": "/",
            "RoleName": "r",
            "RoleId": "AROAX",
            "Arn": "arn:aws:iam::000000000000:role/r",
            "CreateDate": T0,
            "Tags": [{"Key": "a", "Value": "1"}],
        }
    }
    out = iam.create_role(
        RoleName="r", AssumeRolePolicyDocument="{}", Tags=[{"Key": "a", "Value": "1"}]
    )
    assert wire.recorder.last["Tags"] == [{"Key": "a", "Value": "1"}]
    assert out["Role"]["CreateDate"] == T0 and out["Role"]["Tags"] == [{"Key": "a", "Value": "1"}]
    wire.recorder.results["ListRoles"] = {"Roles": [], "IsTruncated": False}
    out = iam.list_roles(MaxItems=10)
    assert out["Roles"] == [] and out["IsTruncated"] is False


# -- routing -----------------------------------------------------------------------------------
def test_uri_templates_from_botocore_models() -> None:
    s3 = service_model("s3")
    put = UriTemplate.of(s3.operation_model("PutObject"))
    assert put.match("PUT", "/b/a/b%20c/d", {}) == {"Bucket": "b", "Key": "a/b c/d"}
    assert put.match("GET", "/b/k", {}) is None
    acl = UriTemplate.of(s3.operation_model("GetBucketAcl"))
    assert acl.match("GET", "/b", {"acl": ""}) == {"Bucket": "b"}
    assert acl.match("GET", "/b", {}) is None
    lam = service_model("lambda")
    invoke = UriTemplate.of(lam.operation_model("Invoke"))
    assert invoke.match("POST", "/2015-03-31/functions/f%3Aalias/invocations", {}) == {
        "FunctionName": "f:alias"
    }
    assert invoke.match("POST", "/2015-03-31/functions/a/b/invocations", {}) is None


def test_virtual_hosted_bucket_hosts() -> None:
    assert virtual_host_bucket("my-bucket.s3.localhost") == "my-bucket"
    assert virtual_host_bucket("my.bucket.s3.localhost.localstack.cloud") == "my.bucket"
    assert virtual_host_bucket("my-bucket.localhost") == "my-bucket"
    assert virtual_host_bucket("s3.localhost") is None
    assert virtual_host_bucket("localhost") is None
    assert virtual_host_bucket("127.0.0.1") is None


@pytest.mark.parametrize(
    ("service", "protocol"),
    [
        ("ecr", "json"),
        ("sqs", "json"),
        ("elbv2", "query"),
        ("sns", "query"),
        ("lambda", "rest-json"),
        ("s3", "rest-xml"),
    ],
)
def test_the_next_services_have_a_protocol(service: str, protocol: str) -> None:
    """The protocol is chosen by the model's metadata, as botocore names it."""
    assert by_name(service_model(service).metadata["protocol"]).name == protocol


def test_every_sigv4_failure_has_a_code_in_every_protocol() -> None:
    for codes in (JSON_AUTH_ERRORS, QUERY_AUTH_ERRORS, REST_JSON_AUTH_ERRORS, REST_XML_AUTH_ERRORS):
        for kind in Failure:
            code, status = codes.of(kind)
            assert code and status in (400, 403)


# -- the aiohttp side: a rest service served over real HTTP -------------------------------------
@pytest.fixture(scope="module")
def live_s3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Recorder]]:
    """The daemon's app (ecslocal.api.server.build_app) with a test S3 service, on a loopback
    port in a thread of its own: rest routing at any path, HEAD lengths, streamed bodies."""
    import threading

    from aiohttp import web

    from ecslocal.api.server import AwsRouter, build_app

    db = Database(tmp_path_factory.mktemp("live-s3") / "state.db")
    keys = KeyStore(db)
    keys.add_long_term("test", "test", "000000000000", time.time())
    recorder = Recorder()
    s3 = Service("s3", recorder.handlers(SERVICES["s3"]), signing_name="s3")
    router = AwsRouter([s3], Authenticator(keys, Clock(), "us-east-1"))
    loop = asyncio.new_event_loop()
    runner = web.AppRunner(build_app(router, []), access_log=None)
    loop.run_until_complete(runner.setup())
    site = web.TCPSite(runner, "127.0.0.1", 0)
    loop.run_until_complete(site.start())
    port = runner.addresses[0][1]
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{port}", recorder
    asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result(timeout=30)
    loop.call_soon_threadsafe(loop.stop)
    thread.join(timeout=30)
    db.close()
    loop.close()


def test_rest_xml_over_http(live_s3: tuple[str, Recorder]) -> None:
    url, recorder = live_s3
    s3 = boto3.client(
        "s3",
        endpoint_url=url,
        region_name="us-east-1",
        aws_access_key_id="test",
        aws_secret_access_key="test",
        config=Config(s3={"addressing_style": "path"}, retries={"total_max_attempts": 1}),
    )
    body = bytes(range(256)) * 1000
    recorder.results["PutObject"] = {"ETag": '"big"'}
    assert s3.put_object(Bucket="b-1", Key="a b/c.bin", Body=body)["ETag"] == '"big"'
    assert recorder.last["Key"] == "a b/c.bin" and recorder.last["Body"] == body
    recorder.results["GetObject"] = {"Body": body, "ContentLength": len(body), "ETag": '"big"'}
    assert s3.get_object(Bucket="b-1", Key="a b/c.bin")["Body"].read() == body
    recorder.results["HeadObject"] = {"ContentLength": len(body), "LastModified": T0}
    head = s3.head_object(Bucket="b-1", Key="a b/c.bin")
    assert head["ContentLength"] == len(body) and head["LastModified"] == T0
    recorder.results["ListBuckets"] = {"Buckets": [{"Name": "b-1", "CreationDate": T0}]}
    assert s3.list_buckets()["Buckets"] == [{"Name": "b-1", "CreationDate": T0}]


def test_a_rest_service_still_takes_every_method_at_any_path(
    live_s3: tuple[str, Recorder],
) -> None:
    """With a rest service registered, a method the root route does not take (DELETE /) and
    any path go to the gateway, which answers in the service's own words (S3's XML error for
    an unsigned request), not aiohttp's 405/404."""
    import urllib.error
    import urllib.request

    url, _ = live_s3
    for method, path in (("DELETE", "/"), ("PUT", "/"), ("PATCH", "/some/where")):
        request = urllib.request.Request(url + path, method=method)
        with pytest.raises(urllib.error.HTTPError) as raised:
            urllib.request.urlopen(request, timeout=30)
        assert raised.value.code == 403, (method, path, raised.value.code)
        assert b"<Error>" in raised.value.read(), (method, path)
