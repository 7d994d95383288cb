"""Amazon CloudWatch Logs (AWS JSON 1.1, target prefix Logs_20140328) over the runtime's
captured container output."""

from __future__ import annotations

from ecslocal.api.service import Handler, Service
from ecslocal.clock import Clock
from ecslocal.config import Config
from ecslocal.store import Store


class LogsApi:
    def __init__(self, config: Config, store: Store, clock: Clock) -> None:
        self.config = config
        self.store = store
        self.clock = clock

    def service(self) -> Service:
        handlers: dict[str, Handler] = {}
        return Service(
            "logs",
            handlers,
            signing_name="logs",
            target_prefix="Logs_20140328",
            validation_error=("InvalidParameterException", 400),
        )
