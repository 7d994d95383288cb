"""Credentials: access keys and sessions, SigV4 verification, IAM roles and trust."""
