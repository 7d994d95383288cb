"""Capacity provider strategies: which provider, and so which launch type, a task runs with.

ecslocal has the two capacity providers every account has, ``FARGATE`` and ``FARGATE_SPOT``
("The FARGATE and FARGATE_SPOT capacity providers are reserved and cannot be created" -
CreateCapacityProvider API reference); a task placed with either runs as launch type FARGATE,
any other (an Auto Scaling group provider) as EC2. ECS reports the provider in the task's
``capacityProviderName``.
"""

from __future__ import annotations

from typing import Any

FARGATE_PROVIDERS = ("FARGATE", "FARGATE_SPOT")


def launch_type_of(strategy: list[dict[str, Any]], fargate_required: bool) -> str:
    """The launch type of a RunTask without ``launchType``: FARGATE for a Fargate strategy,
    EC2 for another; with no strategy, FARGATE if the task definition requires it."""
    if strategy:
        fargate = any(s.get("capacityProvider") in FARGATE_PROVIDERS for s in strategy)
        return "FARGATE" if fargate else "EC2"
    return "FARGATE" if fargate_required else "EC2"


def capacity_provider_for(strategy: list[dict[str, Any]], index: int) -> str | None:
    """The provider of the ``index``-th task (from 0) of one RunTask under ``strategy``.

    CapacityProviderStrategyItem: ``base`` is "how many tasks, at a minimum, to run on the
    specified capacity provider" (only one item may set it); ``weight`` is "the relative
    percentage of the total number of tasks launched that should use the specified capacity
    provider", applied after the base is met. A strategy whose weights are all 0 places every
    task on its base (or first) provider. Weighted tasks go, one at a time, to the provider
    furthest below its share (first in the strategy on a tie), so any prefix of the tasks is
    as close to the weights as whole tasks allow.
    """
    if not strategy:
        return None
    based = next((s for s in strategy if int(s.get("base") or 0) > 0), None)
    base = int(based.get("base") or 0) if based else 0
    if based is not None and index < base:
        return str(based["capacityProvider"])
    weighted = [s for s in strategy if int(s.get("weight") or 0) > 0]
    if not weighted:
        return str((based or strategy[0])["capacityProvider"])
    counts = [0] * len(weighted)
    chosen = 0
    for _ in range(index - base + 1):
        chosen = min(
            range(len(weighted)),
            key=lambda k: (counts[k] + 1) / int(weighted[k]["weight"]),
        )
        counts[chosen] += 1
    return str(weighted[chosen]["capacityProvider"])
