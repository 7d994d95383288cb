"""Images as files and as registry content: archives (docker save, OCI layouts), a
distribution-v2 registry client, and copying between them (``ecslocal image``)."""
