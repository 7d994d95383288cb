"""What a task's containers see: the credentials endpoint (and, later, task metadata, IMDS)."""
