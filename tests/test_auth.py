"""SigV4 is verified on every request: one negative test per failure, per protocol family
(AWS JSON: ECS, Logs; query: STS, IAM), each with the code and status the real service uses."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from datetime import UTC, datetime, timedelta
from typing import Any
from unittest import mock

import pytest
from botocore.exceptions import ClientError

from tests.conftest import TRUST_ACCOUNT, Server, signed

# (service, call, code when the key is unknown, bad signature, expired token, HTTP status)
CALLS = {
    "ecs": (
        lambda c: c.list_clusters(),
        "UnrecognizedClientException",
        "InvalidSignatureException",
        "ExpiredTokenException",
        400,
    ),
    "logs": (
        lambda c: c.describe_log_groups(),
        "UnrecognizedClientException",
        "InvalidSignatureException",
        "ExpiredTokenException",
        400,
    ),
    "sts": (
        lambda c: c.get_caller_identity(),
        "InvalidClientTokenId",
        "SignatureDoesNotMatch",
        "ExpiredToken",
        403,
    ),
    "iam": (
        lambda c: c.list_roles(),
        "InvalidClientTokenId",
        "SignatureDoesNotMatch",
        "ExpiredToken",
        403,
    ),
}


def _error(call: Any, client: Any) -> tuple[str, str, int]:
    with pytest.raises(ClientError) as info:
        call(client)
    err = info.value.response
    return err["Error"]["Code"], err["Error"]["Message"], err["ResponseMetadata"]["HTTPStatusCode"]


@pytest.mark.parametrize("service", sorted(CALLS))
def test_test_test_key_is_accepted(server: Server, service: str) -> None:
    call = CALLS[service][0]
    response = call(server.client(service))
    assert response["ResponseMetadata"]["HTTPStatusCode"] == 200


@pytest.mark.parametrize("service", sorted(CALLS))
def test_unknown_access_key_is_refused(server: Server, service: str) -> None:
    call, unknown, _, _, status = CALLS[service]
    code, message, http = _error(call, server.client(service, key=("AKIANOTAKEY", "test")))
    assert (code, http) == (unknown, status)
    assert message == "The security token included in the request is invalid."


@pytest.mark.parametrize("service", sorted(CALLS))
def test_wrong_secret_is_a_bad_signature(server: Server, service: str) -> None:
    call, _, bad_sig, _, status = CALLS[service]
    code, message, http = _error(call, server.client(service, key=("test", "not-the-secret")))
    assert (code, http) == (bad_sig, status)
    assert message.startswith("The request signature we calculated does not match")


@pytest.mark.parametrize("service", ["ecs", "sts"])
@pytest.mark.parametrize("offset_min", [-20, 20])
def test_request_time_more_than_15_min_off_is_refused(
    server: Server, service: str, offset_min: int
) -> None:
    call, _, bad_sig, _, status = CALLS[service]
    client = server.client(service)
    skewed = datetime.now(UTC) + timedelta(minutes=offset_min)
    with mock.patch("botocore.auth.get_current_datetime", return_value=skewed):
        code, message, http = _error(call, client)
    assert (code, http) == (bad_sig, status)
    if offset_min < 0:
        # "Signature expired: 20140325T143453Z is now earlier than 20140325T143751Z
        #  (20140325T145251Z - 15 min.)" (AWS's wording, aws/aws-sdk-js#254)
        assert message.startswith(f"Signature expired: {skewed:%Y%m%dT%H%M%SZ} is now earlier")
        assert message.endswith(" - 15 min.)")
    else:
        assert message.startswith(f"Signature not yet current: {skewed:%Y%m%dT%H%M%SZ}")


def test_request_time_10_min_off_is_still_accepted(server: Server) -> None:
    skewed = datetime.now(UTC) - timedelta(minutes=10)
    with mock.patch("botocore.auth.get_current_datetime", return_value=skewed):
        assert server.client("ecs").list_clusters()["clusterArns"]


def _session(server: Server, role_name: str) -> dict[str, Any]:
    iam = server.client("iam")
    try:
        arn = iam.create_role(RoleName=role_name, AssumeRolePolicyDocument=TRUST_ACCOUNT)["Role"][
            "Arn"
        ]
    except ClientError:
        arn = iam.get_role(RoleName=role_name)["Role"]["Arn"]
    creds = server.client("sts").assume_role(RoleArn=arn, RoleSessionName="auth-test")
    return creds["Credentials"]


@pytest.mark.parametrize("service", sorted(CALLS))
def test_expired_session_token_is_refused(server: Server, service: str) -> None:
    call, _, _, expired, status = CALLS[service]
    creds = _session(server, "auth-expiry")
    key = (creds["AccessKeyId"], creds["SecretAccessKey"])
    client = server.client(service, key=key, token=creds["SessionToken"])
    assert call(client)["ResponseMetadata"]["HTTPStatusCode"] == 200
    request = signed(
        urllib.request.Request(
            f"{server.url}/_ecslocal/v1/access-keys/{creds['AccessKeyId']}/expire", method="POST"
        )
    )
    with urllib.request.urlopen(request) as response:
        assert response.status == 200
    code, message, http = _error(call, client)
    assert (code, http) == (expired, status)
    assert message == "The security token included in the request is expired"


def test_session_key_without_its_token_is_refused(server: Server) -> None:
    creds = _session(server, "auth-notoken")
    client = server.client("ecs", key=(creds["AccessKeyId"], creds["SecretAccessKey"]))
    code, _, _ = _error(lambda c: c.list_clusters(), client)
    assert code == "UnrecognizedClientException"


def _raw(server: Server, body: bytes, headers: dict[str, str]) -> tuple[int, bytes]:
    request = urllib.request.Request(server.url + "/", data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def test_unsigned_json_request_is_missing_authentication(server: Server) -> None:
    status, body = _raw(
        server,
        b"{}",
        {
            "X-Amz-Target": "AmazonEC2ContainerServiceV20141113.ListClusters",
            "Content-Type": "application/x-amz-json-1.1",
        },
    )
    assert status == 400
    assert json.loads(body)["__type"] == "MissingAuthenticationTokenException"


def test_unsigned_query_request_is_missing_authentication(server: Server) -> None:
    status, body = _raw(
        server,
        b"Action=GetCallerIdentity&Version=2011-06-15",
        {"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert status == 403
    assert b"<Code>MissingAuthenticationToken</Code>" in body
    assert b"Request is missing Authentication Token" in body


def test_tampered_body_breaks_the_signature(server: Server) -> None:
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    headers = {
        "X-Amz-Target": "AmazonEC2ContainerServiceV20141113.ListClusters",
        "Content-Type": "application/x-amz-json-1.1",
    }
    request = AWSRequest("POST", server.url + "/", data=b"{}", headers=headers)
    SigV4Auth(Credentials("test", "test"), "ecs", "us-east-1").add_auth(request)
    signed = dict(request.headers.items())
    assert _raw(server, b"{}", signed)[0] == 200
    status, body = _raw(server, b'{"maxResults": 1}', signed)
    assert status == 400
    assert json.loads(body)["__type"] == "InvalidSignatureException"


def test_credential_scoped_to_another_region_is_refused(server: Server) -> None:
    import boto3

    client = boto3.client(
        "ecs",
        endpoint_url=server.url,
        region_name="eu-west-1",
        aws_access_key_id="test",
        aws_secret_access_key="test",
    )
    code, message, _ = _error(lambda c: c.list_clusters(), client)
    assert code == "InvalidSignatureException"
    assert "Credential should be scoped to a valid region" in message


def test_presigned_url_is_verified(server: Server) -> None:
    url = server.client("sts").generate_presigned_url(
        "get_caller_identity", ExpiresIn=60, HttpMethod="GET"
    )
    assert "X-Amz-Signature=" in url
    with urllib.request.urlopen(url) as response:
        body = response.read()
    assert b"<Arn>arn:aws:iam::000000000000:root</Arn>" in body
    tampered = url.replace("X-Amz-Expires=60", "X-Amz-Expires=61")
    with pytest.raises(urllib.error.HTTPError) as info:
        urllib.request.urlopen(tampered)
    assert info.value.code == 403
    assert b"<Code>SignatureDoesNotMatch</Code>" in info.value.read()


def test_expired_presigned_url_is_refused(server: Server) -> None:
    past = datetime.now(UTC) - timedelta(minutes=5)
    with mock.patch("botocore.auth.get_current_datetime", return_value=past):
        url = server.client("sts").generate_presigned_url(
            "get_caller_identity", ExpiresIn=60, HttpMethod="GET"
        )
    with pytest.raises(urllib.error.HTTPError) as info:
        urllib.request.urlopen(url)
    assert info.value.code == 403
    assert b"Signature expired" in info.value.read()


def test_configured_access_key_is_accepted(fresh_server: Server) -> None:
    fresh_server.extra = ("--access-key", "AKIAEXAMPLEKEY000001:s3cr3t")
    server = fresh_server.start()
    ident = server.client("sts", key=("AKIAEXAMPLEKEY000001", "s3cr3t")).get_caller_identity()
    assert ident["Account"] == "000000000000"
    assert ident["Arn"] == "arn:aws:iam::000000000000:root"
    assert server.client("sts").get_caller_identity()["Account"] == "000000000000"
