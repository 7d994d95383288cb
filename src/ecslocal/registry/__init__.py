"""The OCI distribution API v2 (a local ECR registry) and its content-addressed blob store."""
