"""Redis pub/sub subscribers whose data messages come out as :class:`FlowEvent` objects.

:class:`Subscriber` wraps a redis-py ``PubSub``, :class:`AsyncSubscriber` a ``redis.asyncio``
one. Both keep ``dbpulse.subscription.active`` in step with the server's subscribe and
unsubscribe replies, and count connection errors for the heartbeats.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Iterator
from typing import Any

from dbpulse.flow.checkpoints import CONNECTION_ERRORS, STATS
from dbpulse.flow.consumer import FlowEvent, as_text, receive
from dbpulse.flow.heartbeat import set_subscription

__all__ = ["AsyncSubscriber", "Subscriber"]


class _SubscriberBase:
    def __init__(self, pubsub: Any, *channels: str, patterns: tuple[str, ...] = ()) -> None:
        self.pubsub = pubsub
        self.channels = channels
        self.patterns = patterns
        self.active: dict[str, bool] = {}
        # Subscription replies confirm the subscription: the subscriber must see them.
        with contextlib.suppress(Exception):
            pubsub.ignore_subscribe_messages = False

    def _handle(self, message: Any) -> FlowEvent | None:
        """A data message becomes an event; replies update the subscription gauge."""
        if message is None:
            return None
        try:
            kind = as_text(message.get("type")) if isinstance(message, dict) else ""
        except Exception:
            kind = ""
        if kind in ("message", "pmessage"):
            return receive(message)
        if kind in ("subscribe", "psubscribe", "unsubscribe", "punsubscribe"):
            name = as_text(message.get("channel"))
            active = kind in ("subscribe", "psubscribe")
            self.active[name] = active
            set_subscription(name, active)
        return None

    def _connection_lost(self) -> None:
        STATS.add("connection_errors")
        self._mark_inactive()

    def _mark_inactive(self) -> None:
        for name in list(self.active):
            self.active[name] = False
            set_subscription(name, False)


class Subscriber(_SubscriberBase):
    """A redis-py ``PubSub`` whose data messages come out as :class:`FlowEvent` objects.

    ``dbpulse.subscription.active`` follows the server's subscribe/unsubscribe replies;
    connection errors are counted (``dbpulse.heartbeat.connection_errors``), mark the
    subscriptions inactive and propagate (redis-py re-subscribes on the next read)."""

    def subscribe(self) -> None:
        try:
            if self.channels:
                self.pubsub.subscribe(*self.channels)
            if self.patterns:
                self.pubsub.psubscribe(*self.patterns)
        except CONNECTION_ERRORS:
            self._connection_lost()
            raise

    def get_event(self, timeout: float = 0.0) -> FlowEvent | None:
        """The next event, or ``None`` (no message within ``timeout``, or a reply)."""
        try:
            message = self.pubsub.get_message(ignore_subscribe_messages=False, timeout=timeout)
        except CONNECTION_ERRORS:
            self._connection_lost()
            raise
        return self._handle(message)

    def listen(self, timeout: float = 1.0) -> Iterator[FlowEvent]:
        """Events until every channel is unsubscribed."""
        while self.pubsub.subscribed:
            event = self.get_event(timeout)
            if event is not None:
                yield event

    def close(self) -> None:
        self._mark_inactive()
        self.pubsub.close()


class AsyncSubscriber(_SubscriberBase):
    """:class:`Subscriber` for ``redis.asyncio`` ``PubSub``."""

    async def subscribe(self) -> None:
        try:
            if self.channels:
                await self.pubsub.subscribe(*self.channels)
            if self.patterns:
                await self.pubsub.psubscribe(*self.patterns)
        except CONNECTION_ERRORS:
            self._connection_lost()
            raise

    async def get_event(self, timeout: float = 0.0) -> FlowEvent | None:
        try:
            message = await self.pubsub.get_message(
                ignore_subscribe_messages=False, timeout=timeout
            )
        except CONNECTION_ERRORS:
            self._connection_lost()
            raise
        return self._handle(message)

    async def listen(self, timeout: float = 1.0) -> AsyncIterator[FlowEvent]:
        while self.pubsub.subscribed:
            event = await self.get_event(timeout)
            if event is not None:
                yield event

    async def close(self) -> None:
        self._mark_inactive()
        await self.pubsub.aclose()
