"""RunTask resolves ECR images the way ECS does (issue 10 item 7; images-networking-exec.md §3):
tag -> digest at task start (``imageDigest``, metadata ``ImageID``), the pull recorded in ECR,
``pullStartedAt``/``pullStoppedAt`` of the pulls, and CannotPullContainerError +
TaskFailedToStart when the image is not there. Images pushed through the ECR API with boto3."""

from __future__ import annotations

import json
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Server, by_name, container, task_logs, taskdef, wait_for, wait_stopped
from tests.test_ecr_api import OCI_INDEX, OCI_MANIFEST, digest, push, repo_name
from tests.test_events import _stream

ACCOUNT = "000000000000"
FARGATE: dict[str, Any] = {
    "networkMode": "awsvpc",
    "requiresCompatibilities": ["FARGATE"],
    "cpu": "256",
    "memory": "512",
}


@pytest.fixture(scope="module")
def ecr(server: Server) -> Any:
    return server.client("ecr")


def new_repo(ecr: Any) -> str:
    name = repo_name()
    ecr.create_repository(repositoryName=name)
    return name


def config_digest(manifest: str) -> str:
    return str(json.loads(manifest)["config"]["digest"])


def run(server: Server, *containers: dict[str, Any], **fields: Any) -> str:
    ecs = server.ecs()
    launch = fields.pop("launchType", None)
    definition = taskdef(f"img-{uuid.uuid4().hex[:12]}", *containers, **fields)
    arn = ecs.register_task_definition(**definition)["taskDefinition"]["taskDefinitionArn"]
    params = {"launchType": launch} if launch else {}
    return str(ecs.run_task(taskDefinition=arn, **params)["tasks"][0]["taskArn"])


def assert_pull_times(task: dict[str, Any]) -> None:
    """§3.2: the pull comes after the task's creation and ends before it runs (the task's
    own timestamps, one clock)."""
    assert task["createdAt"] <= task["pullStartedAt"] <= task["pullStoppedAt"]
    assert task["pullStoppedAt"] <= task["startedAt"]


def test_every_ecr_reference_form_resolves_to_the_tasks_repository(
    server: Server, ecr: Any
) -> None:
    """Any account's ECR host (any region, .com.cn too) and the daemon's own address name the
    task's account's repository; no tag means latest; a digest is used as given."""
    repo = new_repo(ecr)
    manifest, image_digest = push(ecr, repo, "v1", seed="forms")
    ecr.put_image(repositoryName=repo, imageManifest=manifest, imageTag="latest")
    pushed_at = ecr.describe_images(repositoryName=repo)["imageDetails"][0]["imagePushedAt"]
    forms = [
        f"123456789012.dkr.ecr.us-east-1.amazonaws.com/{repo}:v1",
        f"210987654321.dkr.ecr.cn-north-1.amazonaws.com.cn/{repo}",
        f"localhost:{server.port}/{repo}:v1",
        f"127.0.0.1:{server.port}/{repo}@{image_digest}",
        f"localhost:{server.port}/{repo}:v1@{image_digest}",
    ]
    arns = [run(server, container("main", "exit 0", image=image)) for image in forms]
    for image, arn in zip(forms, arns, strict=True):
        task = wait_stopped(server.ecs(), arn)
        c = task["containers"][0]
        assert c["image"] == image  # DescribeTasks shows the reference as written
        assert c["imageDigest"] == image_digest, image
        assert c["exitCode"] == 0 and task["stopCode"] == "EssentialContainerExited", image
        assert_pull_times(task)
    (detail,) = ecr.describe_images(repositoryName=repo)["imageDetails"]
    assert detail["lastRecordedPullTime"] >= pushed_at


def test_host_command_images_keep_their_behaviour_beside_an_ecr_one(
    server: Server, ecr: Any
) -> None:
    """busybox / Docker Hub / public ECR are not pulled: no imageDigest; only the ECR
    container's pull makes the task's pull timestamps (§3.2)."""
    repo = new_repo(ecr)
    _, image_digest = push(ecr, repo, "v1", seed="mixed")
    arn = run(
        server,
        container("ecr", "exit 0", image=f"localhost:{server.port}/{repo}:v1"),
        container("hub", "exit 0", image="python:3.11", essential=False),
        container("pub", "exit 0", image="public.ecr.aws/docker/library/busybox", essential=False),
    )
    task = wait_stopped(server.ecs(), arn)
    containers = by_name(task)
    assert containers["ecr"]["imageDigest"] == image_digest
    assert "imageDigest" not in containers["hub"] and "imageDigest" not in containers["pub"]
    assert all("runtimeId" in c for c in containers.values())  # each host command started
    assert_pull_times(task)


METADATA = """
import json, os, sys, urllib.request
with urllib.request.urlopen(os.environ["ECS_CONTAINER_METADATA_URI_V4"]) as r:
    print("META " + r.read().decode(), flush=True)
"""


def test_metadata_image_id_is_the_pulled_config(server: Server, ecr: Any) -> None:
    """Task metadata v4 ``Image`` is the reference, ``ImageID`` Docker's image ID: the
    config blob's digest of the image that runs."""
    repo = new_repo(ecr)
    manifest, _ = push(ecr, repo, "v1", seed="meta")
    image = f"111122223333.dkr.ecr.us-east-1.amazonaws.com/{repo}:v1"
    arn = run(
        server,
        {"name": "app", "image": image, "memory": 128, "command": [sys.executable, "-c", METADATA]},
    )
    wait_stopped(server.ecs(), arn)
    lines = [e["message"] for e in task_logs(server, arn) if e["message"].startswith("META ")]
    doc = json.loads(lines[0][5:])
    assert doc["Image"] == image
    assert doc["ImageID"] == config_digest(manifest)


def test_an_index_reports_its_own_digest_and_runs_its_amd64_image(server: Server, ecr: Any) -> None:
    """ECS reports the digest the reference resolves to (DistributionInspect's descriptor: the
    index's); the image that runs is its linux/amd64 entry (ImageID its config)."""
    repo = new_repo(ecr)
    amd_manifest, amd = push(ecr, repo, None, seed="amd64")
    arm_manifest, arm = push(ecr, repo, None, seed="arm64")
    index = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": OCI_INDEX,
            "manifests": [
                {
                    "mediaType": OCI_MANIFEST,
                    "digest": arm,
                    "size": len(arm_manifest),
                    "platform": {"os": "linux", "architecture": "arm64"},
                },
                {
                    "mediaType": OCI_MANIFEST,
                    "digest": amd,
                    "size": len(amd_manifest),
                    "platform": {"os": "linux", "architecture": "amd64"},
                },
            ],
        }
    )
    ecr.put_image(repositoryName=repo, imageManifest=index, imageTag="multi")
    image = f"localhost:{server.port}/{repo}:multi"
    arn = run(
        server,
        {"name": "app", "image": image, "memory": 128, "command": [sys.executable, "-c", METADATA]},
    )
    task = wait_stopped(server.ecs(), arn)
    assert task["containers"][0]["imageDigest"] == digest(index.encode())
    lines = [e["message"] for e in task_logs(server, arn) if e["message"].startswith("META ")]
    assert json.loads(lines[0][5:])["ImageID"] == config_digest(amd_manifest)
    pulled = {
        d["imageDigest"]
        for d in ecr.describe_images(repositoryName=repo)["imageDetails"]
        if "lastRecordedPullTime" in d
    }
    assert pulled == {digest(index.encode()), amd}


def _arm_only_index(ecr: Any, repo: str) -> None:
    arm_manifest, arm = push(ecr, repo, None, seed="arm-only")
    entry = {
        "mediaType": OCI_MANIFEST,
        "digest": arm,
        "size": len(arm_manifest),
        "platform": {"os": "linux", "architecture": "arm64"},
    }
    index = json.dumps({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [entry]})
    ecr.put_image(repositoryName=repo, imageManifest=index, imageTag="arm")


@pytest.mark.parametrize("launch", ["FARGATE", "EC2"])
def test_pull_failures_in_the_platforms_words(
    server: Server, ecr: Any, tmp_path: Path, launch: str
) -> None:
    """§3.3: a missing repository, a missing tag, an index without linux/amd64 -> the container
    STOPPED with CannotPullContainerError in containerd's (Fargate) or dockerd's (EC2) words,
    the task TaskFailedToStart with that reason, and no process started."""
    repo = new_repo(ecr)
    push(ecr, repo, "v1", seed="fail")
    _arm_only_index(ecr, repo)
    host = f"localhost:{server.port}"
    cases = {
        "no-repo": f"{host}/{repo}-missing:v1",
        "no-tag": f"{host}/{repo}:v2",
        "no-latest": f"123456789012.dkr.ecr.us-east-1.amazonaws.com/{repo}",
        "arm-only": f"{host}/{repo}:arm",
    }
    if launch == "FARGATE":
        retried = "CannotPullContainerError: pull image manifest has been retried 5 time(s): "
        latest = f"123456789012.dkr.ecr.us-east-1.amazonaws.com/{repo}:latest"
        expected = {
            "no-repo": f"{retried}failed to resolve ref {cases['no-repo']}:"
            f" {cases['no-repo']}: not found",
            "no-tag": f"{retried}failed to resolve ref {cases['no-tag']}: {cases['no-tag']}:"
            " not found",
            "no-latest": f"{retried}failed to resolve ref {latest}: {latest}: not found",
            "arm-only": f"{retried}image Manifest does not contain descriptor matching platform"
            " 'linux/amd64'",
        }
    else:
        daemon = "CannotPullContainerError: Error response from daemon: "
        expected = {
            "no-repo": f"{daemon}repository {host}/{repo}-missing not found: name unknown:"
            f" The repository with name '{repo}-missing' does not exist in the registry with"
            f" id '{ACCOUNT}'",
            "no-tag": f"{daemon}manifest for {cases['no-tag']} not found: manifest unknown:"
            " Requested image not found",
            "no-latest": f"{daemon}manifest for 123456789012.dkr.ecr.us-east-1.amazonaws.com/"
            f"{repo}:latest not found: manifest unknown: Requested image not found",
            "arm-only": f"{daemon}no matching manifest for linux/amd64 in the manifest list"
            " entries",
        }
    fields = FARGATE if launch == "FARGATE" else {}
    arns = {}
    for case, image in cases.items():
        marker = tmp_path / case
        arns[case] = run(
            server,
            container("main", f"touch {marker}", image=image),
            launchType=launch,
            **fields,
        )
    for case, arn in arns.items():
        task = wait_stopped(server.ecs(), arn)
        c = task["containers"][0]
        assert c["lastStatus"] == "STOPPED"
        assert c["reason"] == expected[case], case
        assert "runtimeId" not in c and "exitCode" not in c and "imageDigest" not in c
        assert task["stopCode"] == "TaskFailedToStart"
        assert task["stoppedReason"] == expected[case][:255]
        assert "startedAt" not in task
        assert task["createdAt"] <= task["pullStartedAt"] <= task["pullStoppedAt"]
        assert not (tmp_path / case).exists(), case


def test_a_non_essential_container_without_its_image_stops_alone(server: Server, ecr: Any) -> None:
    """Only an essential container's failed pull stops the task; a non-essential one is
    STOPPED with its reason and the others run."""
    repo = new_repo(ecr)
    _, image_digest = push(ecr, repo, "v1", seed="partial")
    host = f"localhost:{server.port}"
    arn = run(
        server,
        container("main", "exit 0", image=f"{host}/{repo}:v1"),
        container("extra", "exit 0", image=f"{host}/{repo}:gone", essential=False),
    )
    task = wait_stopped(server.ecs(), arn)
    containers = by_name(task)
    assert containers["main"]["exitCode"] == 0
    assert containers["main"]["imageDigest"] == image_digest
    assert containers["extra"]["reason"].startswith("CannotPullContainerError: ")
    assert "runtimeId" not in containers["extra"]
    assert task["stopCode"] == "EssentialContainerExited"


def test_the_digest_is_stored_with_the_task(tmp_path: Path) -> None:
    """A restarted daemon describes the task with the digest it ran."""
    server = Server(tmp_path / "data").start()
    try:
        ecr = server.client("ecr")
        repo = new_repo(ecr)
        _, image_digest = push(ecr, repo, "v1", seed="stored")
        arn = run(server, container("main", "exit 0", image=f"localhost:{server.port}/{repo}:v1"))
        wait_stopped(server.ecs(), arn)
        server.stop()
        server.start()
        task = server.ecs().describe_tasks(tasks=[arn])["tasks"][0]
        assert task["containers"][0]["imageDigest"] == image_digest
    finally:
        server.stop()


def test_a_tag_pushed_over_after_start_keeps_the_tasks_digest(server: Server, ecr: Any) -> None:
    """The digest is resolved once, at task start: moving the tag later changes nothing for
    the running task (aws-semantics.md §3.1)."""
    repo = new_repo(ecr)
    _, first = push(ecr, repo, "v1", seed="first")
    ecs = server.ecs()
    arn = run(
        server,
        container("main", "sleep 30", image=f"localhost:{server.port}/{repo}:v1", stopTimeout=2),
    )
    running = wait_for(ecs, arn, lambda t: t["lastStatus"] == "RUNNING")
    assert running["containers"][0]["imageDigest"] == first
    _, second = push(ecr, repo, "v1", seed="second")
    assert second != first
    assert ecs.describe_tasks(tasks=[arn])["tasks"][0]["containers"][0]["imageDigest"] == first
    ecs.stop_task(task=arn, reason="test over")
    assert wait_stopped(ecs, arn)["containers"][0]["imageDigest"] == first
    # A new task resolves the tag again.
    again = run(server, container("main", "exit 0", image=f"localhost:{server.port}/{repo}:v1"))
    assert wait_stopped(ecs, again)["containers"][0]["imageDigest"] == second


def test_the_pull_is_an_event_before_the_container_runs(server: Server, ecr: Any) -> None:
    """The engine's events: a ContainerStateChanged with the imageDigest while PENDING (the
    "pulled" one), after the task's PENDING version and before RUNNING."""
    repo = new_repo(ecr)
    _, image_digest = push(ecr, repo, "v1", seed="events")
    arn = run(server, container("main", "exit 0", image=f"localhost:{server.port}/{repo}:v1"))
    task_id = arn.rsplit("/", 1)[-1]
    events = list(_stream(server.url, f"task={task_id}&until=STOPPED"))
    mains = [e for e in events if e["type"] == "ContainerStateChanged"]
    assert [e["lastStatus"] for e in mains][:3] == ["PENDING", "PENDING", "RUNNING"]
    assert "imageDigest" not in mains[0] and mains[1]["imageDigest"] == image_digest
    pulled_version = mains[1]["version"]
    (pulled_task,) = [
        e for e in events if e["type"] == "TaskStateChanged" and e["version"] == pulled_version
    ]
    assert pulled_task["lastStatus"] == "PENDING" and "pullStoppedAt" in pulled_task


def test_no_command_says_the_process_backend_runs_host_commands(server: Server) -> None:
    """An image's own command is needed: the process backend says it runs host commands
    only, in the CannotStartContainerError form."""
    arn = run(server, {"name": "main", "image": "nginx:latest", "memory": 64})
    task = wait_stopped(server.ecs(), arn)
    reason = task["containers"][0]["reason"]
    assert reason.startswith("CannotStartContainerError: Error response from daemon:")
    assert "neither entryPoint nor command" in reason and "host commands only" in reason
    assert task["stopCode"] == "TaskFailedToStart"


def test_no_local_ecr_treats_ecr_references_as_remote(tmp_path: Path) -> None:
    """``serve --no-local-ecr``: an ECR URI is a remote image like any other (the host
    command runs, nothing is resolved or pulled)."""
    server = Server(tmp_path / "data", "--no-local-ecr").start()
    try:
        ecr = server.client("ecr")
        repo = new_repo(ecr)
        push(ecr, repo, "v1", seed="off")
        image = f"localhost:{server.port}/{repo}:v1"
        missing = f"123456789012.dkr.ecr.us-east-1.amazonaws.com/{repo}-missing:v1"
        arns = [run(server, container("main", "exit 0", image=i)) for i in (image, missing)]
        for arn in arns:
            task = wait_stopped(server.ecs(), arn)
            c = task["containers"][0]
            assert c["exitCode"] == 0 and "imageDigest" not in c
            assert task["stopCode"] == "EssentialContainerExited"
        (detail,) = ecr.describe_images(repositoryName=repo)["imageDetails"]
        assert "lastRecordedPullTime" not in detail
    finally:
        server.stop()
