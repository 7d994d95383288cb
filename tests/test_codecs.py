"""The small codecs every service shares: partitions and ARNs (botocore's partition data and
ArnParser), nextToken (botocore's TokenEncoder/TokenDecoder), AWS timestamps."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from ecslocal import arns
from ecslocal.errors import AwsError
from ecslocal.pagination import decode_token, encode_token, offset_page
from ecslocal.timefmt import iso8601, parse_timestamp


@pytest.mark.parametrize(
    ("region", "partition"),
    [
        ("us-east-1", "aws"),
        ("eu-west-3", "aws"),
        ("cn-north-1", "aws-cn"),
        ("cn-northwest-1", "aws-cn"),
        ("us-gov-west-1", "aws-us-gov"),
        ("us-iso-east-1", "aws-iso"),
        ("ap-future-9", "aws"),  # a region botocore does not list yet: by regionRegex
    ],
)
def test_partition_of_region_from_botocore_partitions(region: str, partition: str) -> None:
    assert arns.partition_of(region) == partition


def test_arn_build_and_parse() -> None:
    arn = arns.build("ecs", "us-gov-west-1", "123456789012", "task/c/abc")
    assert arn == "arn:aws-us-gov:ecs:us-gov-west-1:123456789012:task/c/abc"
    parsed = arns.parse(arn)
    assert parsed is not None
    assert (parsed.partition, parsed.service, parsed.kind, parsed.name) == (
        "aws-us-gov",
        "ecs",
        "task",
        "c/abc",
    )
    assert arns.global_arn("iam", "cn-north-1", "1", "root") == "arn:aws-cn:iam::1:root"
    assert arns.parse("arn:aws:ecs:us-east-1") is None
    assert arns.parse("not-an-arn") is None
    # A task definition's revision follows a colon inside the resource.
    td = arns.parse("arn:aws:ecs:us-east-1:1:task-definition/web:3")
    assert td is not None and td.name == "web:3"


def test_task_id_of_both_task_arn_formats() -> None:
    assert arns.task_id_of("arn:aws:ecs:us-east-1:1:task/default/abc123") == "abc123"
    assert arns.task_id_of("arn:aws:ecs:us-east-1:1:task/abc123") == "abc123"
    assert arns.task_id_of("abc123") == "abc123"


def test_offset_pages_and_bad_tokens() -> None:
    items = [str(i) for i in range(5)]
    page, token = offset_page(items, None, 2)
    assert page == ["0", "1"] and token is not None
    page, token = offset_page(items, token, 2)
    assert page == ["2", "3"] and token is not None
    page, token = offset_page(items, token, 2)
    assert page == ["4"] and token is None
    assert decode_token(encode_token({"offset": 7})) == {"offset": 7}
    for bad in ("abc", "!!!", encode_token({"offset": -1}), encode_token({"x": 1}), "W10="):
        with pytest.raises(AwsError) as err:
            offset_page(items, bad, 2)
        assert (err.value.code, err.value.message) == (
            "InvalidParameterException",
            "Invalid nextToken.",
        )


def test_timestamps() -> None:
    assert iso8601(0) == "1970-01-01T00:00:00Z"
    assert iso8601(1.5, fraction=True) == "1970-01-01T00:00:01.500000Z"
    assert parse_timestamp("1970-01-01T00:00:10Z") == 10.0
    assert parse_timestamp("1970-01-01T01:00:00+01:00") == 0.0
    assert parse_timestamp("42.5") == 42.5
    assert parse_timestamp(7) == 7.0
    assert parse_timestamp(datetime(1970, 1, 1, 0, 1, tzinfo=UTC)) == 60.0
    for bad in ("soon", True, None, float("inf"), "nan", [1]):
        with pytest.raises(ValueError):
            parse_timestamp(bad)
