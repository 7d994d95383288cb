"""ecslocal: AWS ECS/Fargate on one machine."""

__version__ = "0.1.0"
