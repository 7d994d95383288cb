"""STS and IAM roles through boto3: roles with trust policies, AssumeRole session credentials,
AssumeRoleWithWebIdentity with tokens minted by ecslocal's local OIDC issuer."""

from __future__ import annotations

import json
import re
import time
import urllib.request
import uuid
from datetime import UTC, datetime
from typing import Any

import boto3
import pytest
from botocore import UNSIGNED
from botocore.config import Config
from botocore.exceptions import ClientError

from tests.conftest import Server, signed

ROOT = "arn:aws:iam::000000000000:root"
PROVIDER_ARN = "arn:aws:iam::000000000000:oidc-provider/oidc.ecslocal.localhost"


def trust(principal: dict[str, Any], action: str = "sts:AssumeRole", **extra: Any) -> str:
    statement = {"Effect": "Allow", "Principal": principal, "Action": action, **extra}
    return json.dumps({"Version": "2012-10-17", "Statement": [statement]})


def make_role(server: Server, document: str, **kw: Any) -> dict[str, Any]:
    name = f"role-{uuid.uuid4().hex[:10]}"
    return server.client("iam").create_role(RoleName=name, AssumeRolePolicyDocument=document, **kw)[
        "Role"
    ]


def code_of(call: Any) -> tuple[str, str, int]:
    with pytest.raises(ClientError) as info:
        call()
    r = info.value.response
    return r["Error"]["Code"], r["Error"]["Message"], r["ResponseMetadata"]["HTTPStatusCode"]


# -- IAM ------------------------------------------------------------------------------------
def test_role_lifecycle(server: Server) -> None:
    iam = server.client("iam")
    document = trust({"Service": "ecs-tasks.amazonaws.com"})
    role = make_role(server, document, Description="d", Path="/app/", MaxSessionDuration=7200)
    name = role["RoleName"]
    assert role["Arn"] == f"arn:aws:iam::000000000000:role/app/{name}"
    assert re.fullmatch(r"AROA[A-Z2-7]{17}", role["RoleId"])
    assert role["AssumeRolePolicyDocument"] == json.loads(document)  # botocore decodes it
    assert isinstance(role["CreateDate"], datetime)
    got = iam.get_role(RoleName=name)["Role"]
    assert got["RoleId"] == role["RoleId"] and got["MaxSessionDuration"] == 7200
    assert got["Description"] == "d"
    listed = [r["RoleName"] for r in iam.list_roles(PathPrefix="/app/")["Roles"]]
    assert name in listed
    assert code_of(lambda: iam.create_role(RoleName=name, AssumeRolePolicyDocument=document)) == (
        "EntityAlreadyExists",
        f"Role with name {name} already exists.",
        409,
    )
    iam.delete_role(RoleName=name)
    assert code_of(lambda: iam.get_role(RoleName=name)) == (
        "NoSuchEntity",
        f"The role with name {name} cannot be found.",
        404,
    )
    assert code_of(lambda: iam.delete_role(RoleName=name))[0] == "NoSuchEntity"


def test_list_roles_paginates(server: Server) -> None:
    iam = server.client("iam")
    prefix = f"/pg{uuid.uuid4().hex[:6]}/"
    names = sorted(
        make_role(server, trust({"AWS": ROOT}), Path=prefix)["RoleName"] for _ in range(5)
    )
    first = iam.list_roles(PathPrefix=prefix, MaxItems=2)
    assert first["IsTruncated"] is True and len(first["Roles"]) == 2
    pages = iam.get_paginator("list_roles").paginate(
        PathPrefix=prefix, PaginationConfig={"PageSize": 2}
    )
    assert [r["RoleName"] for page in pages for r in page["Roles"]] == names


def test_malformed_trust_policy_is_refused(server: Server) -> None:
    iam = server.client("iam")
    code, message, status = code_of(
        lambda: iam.create_role(RoleName="bad-policy", AssumeRolePolicyDocument="{not json")
    )
    assert (code, message, status) == (
        "MalformedPolicyDocument",
        "This policy contains invalid Json",
        400,
    )


def test_query_validation_error_in_aws_words(server: Server) -> None:
    sts = server.client("sts", client_validation=False)
    role = make_role(server, trust({"AWS": ROOT}))
    code, message, status = code_of(
        lambda: sts.assume_role(RoleArn=role["Arn"], RoleSessionName="s1", DurationSeconds=899)
    )
    assert (code, status) == ("ValidationError", 400)
    assert message == (
        "1 validation error detected: Value '899' at 'durationSeconds' failed to satisfy"
        " constraint: Member must have value greater than or equal to 900"
    )


def test_unknown_action_is_invalid_action(server: Server) -> None:
    code, message, status = code_of(lambda: server.client("sts").get_session_token())
    assert (code, status) == ("InvalidAction", 400)
    assert message == "Could not find operation GetSessionToken for version 2011-06-15"


# -- STS ------------------------------------------------------------------------------------
def test_get_caller_identity_of_the_default_key(server: Server) -> None:
    ident = server.client("sts").get_caller_identity()
    assert (ident["UserId"], ident["Account"], ident["Arn"]) == (
        "000000000000",
        "000000000000",
        ROOT,
    )


@pytest.mark.parametrize("duration", [None, 900, 43200])
def test_assume_role_issues_session_credentials(server: Server, duration: int | None) -> None:
    role = make_role(server, trust({"AWS": ROOT}), MaxSessionDuration=43200)
    kw = {"DurationSeconds": duration} if duration else {}
    before = time.time()
    out = server.client("sts").assume_role(RoleArn=role["Arn"], RoleSessionName="sess-1", **kw)
    creds = out["Credentials"]
    assert re.fullmatch(r"ASIA[A-Z2-7]{16}", creds["AccessKeyId"])
    assert len(creds["SecretAccessKey"]) == 40 and len(creds["SessionToken"]) > 100
    lifetime = creds["Expiration"].timestamp() - before
    assert abs(lifetime - (duration or 3600)) < 5
    assert out["AssumedRoleUser"] == {
        "AssumedRoleId": f"{role['RoleId']}:sess-1",
        "Arn": f"arn:aws:sts::000000000000:assumed-role/{role['RoleName']}/sess-1",
    }
    session = server.client(
        "sts", key=(creds["AccessKeyId"], creds["SecretAccessKey"]), token=creds["SessionToken"]
    )
    ident = session.get_caller_identity()
    assert ident["Arn"] == out["AssumedRoleUser"]["Arn"]
    assert ident["UserId"] == out["AssumedRoleUser"]["AssumedRoleId"]
    # the session's credentials drive the other services too
    ecs = server.client(
        "ecs", key=(creds["AccessKeyId"], creds["SecretAccessKey"]), token=creds["SessionToken"]
    )
    assert "clusterArns" in ecs.list_clusters()


def test_duration_beyond_max_session_duration_is_refused(server: Server) -> None:
    role = make_role(server, trust({"AWS": ROOT}))  # MaxSessionDuration defaults to 3600
    code, message, _ = code_of(
        lambda: server.client("sts").assume_role(
            RoleArn=role["Arn"], RoleSessionName="s1", DurationSeconds=7200
        )
    )
    assert (code, message) == (
        "ValidationError",
        "The requested DurationSeconds exceeds the MaxSessionDuration set for this role.",
    )


def test_role_chaining_is_limited_to_one_hour(server: Server) -> None:
    first = make_role(server, trust({"AWS": ROOT}), MaxSessionDuration=43200)
    creds = server.client("sts").assume_role(RoleArn=first["Arn"], RoleSessionName="a1")[
        "Credentials"
    ]
    chained = server.client(
        "sts", key=(creds["AccessKeyId"], creds["SecretAccessKey"]), token=creds["SessionToken"]
    )
    second = make_role(server, trust({"AWS": first["Arn"]}), MaxSessionDuration=43200)
    code, message, _ = code_of(
        lambda: chained.assume_role(
            RoleArn=second["Arn"], RoleSessionName="b1", DurationSeconds=7200
        )
    )
    assert code == "ValidationError" and "role chaining" in message
    ok = chained.assume_role(RoleArn=second["Arn"], RoleSessionName="b1")
    assert ok["AssumedRoleUser"]["Arn"].endswith(f"assumed-role/{second['RoleName']}/b1")


@pytest.mark.parametrize(
    "principal",
    [{"Service": "ecs-tasks.amazonaws.com"}, {"AWS": "arn:aws:iam::111111111111:root"}],
)
def test_trust_policy_that_does_not_name_the_caller_denies(
    server: Server, principal: dict[str, str]
) -> None:
    role = make_role(server, trust(principal))
    code, message, status = code_of(
        lambda: server.client("sts").assume_role(RoleArn=role["Arn"], RoleSessionName="s1")
    )
    assert (code, status) == ("AccessDenied", 403)
    assert message == (
        f"User: {ROOT} is not authorized to perform: sts:AssumeRole on resource: {role['Arn']}"
    )


def test_explicit_deny_wins(server: Server) -> None:
    document = json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {"Effect": "Allow", "Principal": {"AWS": ROOT}, "Action": "sts:*"},
                {"Effect": "Deny", "Principal": "*", "Action": "sts:AssumeRole"},
            ],
        }
    )
    role = make_role(server, document)
    assert (
        code_of(
            lambda: server.client("sts").assume_role(RoleArn=role["Arn"], RoleSessionName="s1")
        )[0]
        == "AccessDenied"
    )


def test_assume_missing_role_is_access_denied(server: Server) -> None:
    arn = "arn:aws:iam::000000000000:role/does-not-exist"
    code, _, status = code_of(
        lambda: server.client("sts").assume_role(RoleArn=arn, RoleSessionName="s1")
    )
    assert (code, status) == ("AccessDenied", 403)


# -- web identity ---------------------------------------------------------------------------
def mint(server: Server, sub: str, aud: str = "sts.amazonaws.com", ttl: int = 600) -> str:
    body = json.dumps({"sub": sub, "aud": aud, "ttl": ttl}).encode()
    request = signed(
        urllib.request.Request(f"{server.url}/_ecslocal/v1/oidc/token", data=body, method="POST")
    )
    with urllib.request.urlopen(request) as response:
        out = json.loads(response.read())
    assert out["providerArn"] == PROVIDER_ARN
    return str(out["token"])


def unsigned_sts(server: Server) -> Any:
    return boto3.client(
        "sts",
        endpoint_url=server.url,
        region_name="us-east-1",
        config=Config(signature_version=UNSIGNED),
    )


def web_identity_role(server: Server, sub: str) -> dict[str, Any]:
    return make_role(
        server,
        trust(
            {"Federated": PROVIDER_ARN},
            "sts:AssumeRoleWithWebIdentity",
            Condition={
                "StringEquals": {"oidc.ecslocal.localhost:aud": "sts.amazonaws.com"},
                "StringLike": {"oidc.ecslocal.localhost:sub": sub},
            },
        ),
    )


def test_assume_role_with_web_identity_unsigned(server: Server) -> None:
    role = web_identity_role(server, "system:serviceaccount:app:*")
    token = mint(server, "system:serviceaccount:app:api")
    out = unsigned_sts(server).assume_role_with_web_identity(
        RoleArn=role["Arn"], RoleSessionName="wi", WebIdentityToken=token, DurationSeconds=900
    )
    assert out["SubjectFromWebIdentityToken"] == "system:serviceaccount:app:api"
    assert out["Provider"] == "oidc.ecslocal.localhost"
    assert out["Audience"] == "sts.amazonaws.com"
    creds = out["Credentials"]
    assert creds["AccessKeyId"].startswith("ASIA")
    assert abs(creds["Expiration"].timestamp() - time.time() - 900) < 5
    ident = server.client(
        "sts", key=(creds["AccessKeyId"], creds["SecretAccessKey"]), token=creds["SessionToken"]
    ).get_caller_identity()
    assert ident["Arn"].endswith(f"assumed-role/{role['RoleName']}/wi")


def test_web_identity_subject_outside_the_condition_is_denied(server: Server) -> None:
    role = web_identity_role(server, "system:serviceaccount:app:*")
    token = mint(server, "system:serviceaccount:other:api")
    code, _, status = code_of(
        lambda: unsigned_sts(server).assume_role_with_web_identity(
            RoleArn=role["Arn"], RoleSessionName="wi", WebIdentityToken=token
        )
    )
    assert (code, status) == ("AccessDenied", 403)


def test_web_identity_token_tampered_or_expired(server: Server) -> None:
    role = web_identity_role(server, "*")
    token = mint(server, "someone")
    head, body, sig = token.split(".")
    forged = f"{head}.{body}.{sig[:-4]}AAAA"
    sts = unsigned_sts(server)
    assert (
        code_of(
            lambda: sts.assume_role_with_web_identity(
                RoleArn=role["Arn"], RoleSessionName="wi", WebIdentityToken=forged
            )
        )[0]
        == "InvalidIdentityToken"
    )
    short = mint(server, "someone", ttl=1)
    time.sleep(1.5)
    code, message, _ = code_of(
        lambda: sts.assume_role_with_web_identity(
            RoleArn=role["Arn"], RoleSessionName="wi", WebIdentityToken=short
        )
    )
    assert code == "ExpiredTokenException" and message.startswith("Token expired")


def test_oidc_discovery_and_jwks_are_served(server: Server) -> None:
    with urllib.request.urlopen(
        f"{server.url}/_ecslocal/v1/oidc/.well-known/openid-configuration"
    ) as response:
        discovery = json.loads(response.read())
    assert discovery["issuer"] == "https://oidc.ecslocal.localhost"
    with urllib.request.urlopen(discovery["jwks_uri"]) as response:
        keys = json.loads(response.read())["keys"]
    assert keys[0]["kty"] == "RSA" and keys[0]["alg"] == "RS256"


def test_expiration_is_a_real_timestamp(server: Server) -> None:
    role = make_role(server, trust({"AWS": ROOT}))
    creds = server.client("sts").assume_role(RoleArn=role["Arn"], RoleSessionName="t1")[
        "Credentials"
    ]
    assert creds["Expiration"].tzinfo is not None
    assert creds["Expiration"] > datetime.now(UTC)


def test_oidc_token_command_mints_a_token_sts_accepts(server: Server) -> None:
    out = server.cli("oidc-token", "--sub", "ci:job-7", "--ttl", "600")
    assert out.returncode == 0, out.stderr
    token = out.stdout.strip()
    role = web_identity_role(server, "ci:*")
    assumed = unsigned_sts(server).assume_role_with_web_identity(
        RoleArn=role["Arn"], RoleSessionName="cli", WebIdentityToken=token
    )
    assert assumed["SubjectFromWebIdentityToken"] == "ci:job-7"


# -- partitions -----------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("region", "partition"), [("cn-north-1", "aws-cn"), ("us-gov-west-1", "aws-us-gov")]
)
def test_iam_sts_and_oidc_arns_use_the_region_partition(
    tmp_path: Any, region: str, partition: str
) -> None:
    """IAM and STS are global, but an account's IAM and STS ARNs are in its partition:
    ``arn:aws-cn:iam::…`` in China, ``arn:aws-us-gov:…`` in GovCloud (botocore's partitions.json;
    https://docs.aws.amazon.com/IAM/latest/UserGuide/reference-arns.html). The root ARN, a
    role, its sessions and the OIDC provider all say so, and a trust policy naming the
    partition's root admits the account's principals."""
    s = Server(tmp_path / "data", region=region, default_cluster=False).start()
    try:
        root = f"arn:{partition}:iam::000000000000:root"
        assert s.client("sts").get_caller_identity()["Arn"] == root
        role = make_role(s, trust({"AWS": root}))
        assert role["Arn"] == f"arn:{partition}:iam::000000000000:role/{role['RoleName']}"
        out = s.client("sts").assume_role(RoleArn=role["Arn"], RoleSessionName="p1")
        session_arn = f"arn:{partition}:sts::000000000000:assumed-role/{role['RoleName']}/p1"
        assert out["AssumedRoleUser"]["Arn"] == session_arn
        creds = out["Credentials"]
        session = s.client(
            "sts", key=(creds["AccessKeyId"], creds["SecretAccessKey"]), token=creds["SessionToken"]
        )
        assert session.get_caller_identity()["Arn"] == session_arn

        provider = f"arn:{partition}:iam::000000000000:oidc-provider/oidc.ecslocal.localhost"
        body = json.dumps({"sub": "ci:job-1"}).encode()
        request = urllib.request.Request(
            f"{s.url}/_ecslocal/v1/oidc/token", data=body, method="POST"
        )
        with urllib.request.urlopen(signed(request, region=region)) as response:
            minted = json.loads(response.read())
        assert minted["providerArn"] == provider
        federated = make_role(s, trust({"Federated": provider}, "sts:AssumeRoleWithWebIdentity"))
        web = boto3.client(
            "sts", endpoint_url=s.url, region_name=region, config=Config(signature_version=UNSIGNED)
        ).assume_role_with_web_identity(
            RoleArn=federated["Arn"], RoleSessionName="wi", WebIdentityToken=minted["token"]
        )
        assert web["AssumedRoleUser"]["Arn"] == (
            f"arn:{partition}:sts::000000000000:assumed-role/{federated['RoleName']}/wi"
        )
    finally:
        s.stop()
