"""Who is calling: a SigV4-signed request checked against the key store and the clock."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable

from ecslocal.auth.caller import Caller
from ecslocal.auth.keys import AccessKey, KeyStore
from ecslocal.auth.sigv4 import Failure, SignedRequest, SigV4Error
from ecslocal.clock import Clock

INVALID_TOKEN = "The security token included in the request is invalid."
EXPIRED_TOKEN = "The security token included in the request is expired"

#: Services whose endpoint is global: requests are signed for us-east-1 whatever the region.
GLOBAL_SERVICES = {"iam": "us-east-1", "sts": "us-east-1"}


class Authenticator:
    def __init__(
        self,
        keys: KeyStore,
        clock: Clock,
        region: str,
        warped_clocks: Callable[[], Iterable[Clock]] = tuple,
    ) -> None:
        self.keys = keys
        self.clock = clock
        self.region = region
        #: The clocks of the time-warped tasks now running (ecslocal.runtime.timewarp).
        self.warped_clocks = warped_clocks

    def authenticate(self, signed: SignedRequest, signing_name: str) -> Caller:
        """The request's principal; raises :class:`SigV4Error` (``kind`` says which failure)."""
        return self.verify(signed, self.check_claims(signed, signing_name))

    def check_claims(self, signed: SignedRequest, signing_name: str) -> AccessKey:
        """The checks that need only the request's headers: a known key (with its token), not
        expired, scoped to this service and region. The gateway runs them before it reads the
        body, so an unknown caller cannot make the daemon buffer one."""
        key = self.keys.get(signed.access_key_id)
        if key is None or key.session_token != signed.session_token:
            raise SigV4Error(Failure.UNRECOGNIZED_CLIENT, INVALID_TOKEN)
        if key.expiration is not None and key.expiration <= self.clock.time():
            raise SigV4Error(Failure.EXPIRED_TOKEN, EXPIRED_TOKEN)
        if signed.service != signing_name:
            raise SigV4Error(
                Failure.BAD_SIGNATURE,
                f"Credential should be scoped to correct service: '{signing_name}'. ",
            )
        if signed.region not in (self.region, GLOBAL_SERVICES.get(signing_name)):
            raise SigV4Error(
                Failure.BAD_SIGNATURE,
                f"Credential should be scoped to a valid region, not '{signed.region}'. ",
            )
        return key

    def verify(self, signed: SignedRequest, key: AccessKey) -> Caller:
        """The signature (payload hash included) and its time, after :meth:`check_claims`."""
        signed.verify(key.secret_access_key)
        clock = self._signing_clock(signed, key.access_key_id)
        caller = key.caller()
        return caller if clock is None else dataclasses.replace(caller, clock=clock)

    def _signing_clock(self, signed: SignedRequest, key_id: str) -> Clock | None:
        """Check the signature time against the signer's clock: real time (None), or for a
        process of a time-warped task its task's clock — known for the task's own credentials,
        tried for any other key (static keys in a warped container's environment) before the
        request is refused."""
        own = self.keys.clocks.get(key_id)
        if own is not None:
            signed.check_time(own.time())
            return own
        try:
            signed.check_time()
            return None
        except SigV4Error:
            for clock in self.warped_clocks():
                try:
                    signed.check_time(clock.time())
                    return clock
                except SigV4Error:
                    continue
            raise
