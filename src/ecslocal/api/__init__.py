"""The AWS protocol layer and one module per service."""
