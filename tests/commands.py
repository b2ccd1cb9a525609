"""PyMongo's command log, as the tests read it: what the library sent, by command name."""

from __future__ import annotations

import threading
from collections.abc import Iterable
from typing import Any

from pymongo import monitoring

# The driver's own commands (handshake, authentication, sessions), never the library's.
DRIVERS_OWN = frozenset({"hello", "isMaster", "ismaster", "endSessions", "saslStart", "saslContinue"})


class CommandLog(monitoring.CommandListener):
    """The commands a client starts, in order, but those in ``ignore``.

    Pass it as a client option (``event_listeners=[log]``), or register it for every client a
    process opens later; ``active`` False stops a registered one, which cannot be taken back.
    """

    def __init__(self, ignore: Iterable[str] = DRIVERS_OWN) -> None:
        self.ignore = frozenset(ignore)
        self.sent: list[dict[str, Any]] = []
        self.active = True
        self.lock = threading.Lock()  # drivers report from their own threads too

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        if self.active and event.command_name not in self.ignore:
            with self.lock:
                self.sent.append(dict(event.command))

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        pass

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        pass

    def commands(self) -> list[dict[str, Any]]:
        """The commands sent since the last look, whole; forgets them."""
        with self.lock:
            sent, self.sent = self.sent, []
        return sent

    def take(self) -> list[str]:
        """The names of the commands sent since the last look; forgets them."""
        return [next(iter(command)) for command in self.commands()]
