"""The agent: task and container lifecycle, health checks, logs, and the backends that run
containers."""
