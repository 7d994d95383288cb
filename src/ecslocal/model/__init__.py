"""Task definitions, tasks and clusters: validated and shaped by botocore's service models."""
