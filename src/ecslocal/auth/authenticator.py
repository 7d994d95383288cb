"""Who is calling: a SigV4-signed request checked against the key store and the clock."""

from __future__ import annotations

from ecslocal.auth.caller import Caller
from ecslocal.auth.keys import KeyStore
from ecslocal.auth.sigv4 import SignedRequest, SigV4Error
from ecslocal.clock import Clock

INVALID_TOKEN = "The security token included in the request is invalid."
EXPIRED_TOKEN = "The security token included in the request is expired"

#: Services whose endpoint is global: requests are signed for us-east-1 whatever the region.
GLOBAL_SERVICES = {"iam": "us-east-1", "sts": "us-east-1"}


class Authenticator:
    def __init__(self, keys: KeyStore, clock: Clock, region: str) -> None:
        self.keys = keys
        self.clock = clock
        self.region = region

    def authenticate(self, signed: SignedRequest, signing_name: str) -> Caller:
        """The request's principal; raises :class:`SigV4Error` (``kind`` says which failure)."""
        key = self.keys.get(signed.access_key_id)
        if key is None or key.session_token != signed.session_token:
            raise SigV4Error("unrecognized_client", INVALID_TOKEN)
        if key.expiration is not None and key.expiration <= self.clock.time():
            raise SigV4Error("expired_token", EXPIRED_TOKEN)
        if signed.service != signing_name:
            raise SigV4Error(
                "bad_signature",
                f"Credential should be scoped to correct service: '{signing_name}'. ",
            )
        if signed.region not in (self.region, GLOBAL_SERVICES.get(signing_name)):
            raise SigV4Error(
                "bad_signature",
                f"Credential should be scoped to a valid region, not '{signed.region}'. ",
            )
        signed.verify(key.secret_access_key)
        # Signature time is the signer's wall clock, so it is checked against real time.
        signed.check_time()
        return key.caller()
