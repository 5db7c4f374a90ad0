"""``dbpulse demo producer`` and ``dbpulse demo consumer``: the pattern-flow demo workloads.

The CLI registers the two functions as Typer commands::

    demo.command("producer")(producer)
    demo.command("consumer")(consumer)

Telemetry: under ``opentelemetry-instrument`` (or any SDK already set up in the process) the
commands use what is configured; otherwise they call :func:`dbpulse.configure` with
``service.name`` ``dbpulse-demo-producer`` / ``dbpulse-demo-consumer`` (OTLP from the
``OTEL_*`` variables) and shut it down, flushed, on exit.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Annotated, Any, TypeVar

import typer
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider

from dbpulse.demo.flows import (
    DEFAULT_CHANNEL,
    SYMBOLS,
    ConsumerOptions,
    ProducerOptions,
    run_consumer,
    run_producer,
)

__all__ = ["consumer", "producer"]

_log = logging.getLogger(__name__)
_T = TypeVar("_T")

RedisUrl = Annotated[
    str,
    typer.Option(
        "--redis-url",
        envvar="DBPULSE_REDIS_URL",
        help="URL of the Redis server carrying the pub/sub channel.",
    ),
]
Channel = Annotated[str, typer.Option("--channel", help="Pub/sub channel.")]
HeartbeatInterval = Annotated[
    float | None,
    typer.Option(
        "--heartbeat-interval",
        envvar="DBPULSE_HEARTBEAT_INTERVAL",
        help="Seconds between heartbeats (default 60).",
    ),
]
Duration = Annotated[
    float, typer.Option("--duration", help="Stop after this many seconds (0: no limit).")
]
UseAsync = Annotated[bool, typer.Option("--async", help="Use redis.asyncio instead of redis-py.")]


def _with_telemetry(service_name: str, run: Callable[[], _T]) -> _T:
    """Run with the process's SDK, or with one :func:`dbpulse.configure` builds for the run."""
    owned: Any = None
    if not isinstance(trace.get_tracer_provider(), TracerProvider):
        from dbpulse.setup import configure

        owned = configure(service_name=service_name)
    try:
        return run()
    finally:
        if owned is not None:
            owned.shutdown()
        else:
            provider: Any = trace.get_tracer_provider()
            try:
                provider.force_flush()
            except Exception:
                _log.debug("could not flush spans", exc_info=True)


def producer(
    redis_url: RedisUrl = "redis://127.0.0.1:6379/0",
    channel: Channel = DEFAULT_CHANNEL,
    rate: Annotated[float, typer.Option(help="Pattern events per second.")] = 5.0,
    symbols: Annotated[
        str, typer.Option(help="Comma-separated symbols to emit patterns for.")
    ] = ",".join(SYMBOLS),
    count: Annotated[int, typer.Option(help="Stop after this many events (0: no limit).")] = 0,
    duration: Duration = 0.0,
    heartbeat_interval: HeartbeatInterval = None,
    use_async: UseAsync = False,
    wait_subscribers: Annotated[
        float,
        typer.Option(help="Wait up to this many seconds for a subscriber before publishing."),
    ] = 0.0,
) -> None:
    """Publish pattern events as flows (PATTERN_PUBLISHED) at a steady rate."""
    options = ProducerOptions(
        redis_url=redis_url,
        channel=channel,
        rate=rate,
        symbols=tuple(s.strip() for s in symbols.split(",") if s.strip()) or SYMBOLS,
        count=count or None,
        duration=duration or None,
        heartbeat_interval=heartbeat_interval,
        use_async=use_async,
        wait_subscribers=wait_subscribers,
    )
    try:
        report = _with_telemetry("dbpulse-demo-producer", lambda: run_producer(options))
    except KeyboardInterrupt:
        raise typer.Exit(130) from None
    typer.echo(f"published {report.published} flows to {channel}")


def consumer(
    redis_url: RedisUrl = "redis://127.0.0.1:6379/0",
    channel: Channel = DEFAULT_CHANNEL,
    users: Annotated[int, typer.Option(help="Simulated WebSocket users per event.")] = 25,
    drop: Annotated[
        float, typer.Option(help="Fraction of events abandoned after EVENT_RECEIVED (stuck).")
    ] = 0.0,
    delay: Annotated[float, typer.Option(help="Fraction of events delivered late (slow).")] = 0.0,
    delay_seconds: Annotated[float, typer.Option(help="How late a delayed event is.")] = 0.25,
    count: Annotated[int, typer.Option(help="Stop after this many events (0: no limit).")] = 0,
    duration: Duration = 0.0,
    heartbeat_interval: HeartbeatInterval = None,
    use_async: UseAsync = False,
    crash_after: Annotated[
        int, typer.Option(help="Crash right after the n-th EVENT_RECEIVED (0: never).")
    ] = 0,
) -> None:
    """Receive, parse and deliver pattern events (EVENT_RECEIVED, EVENT_PARSED,
    WEBSOCKET_DELIVERED) to a simulated user count."""
    for name, fraction in (("--drop", drop), ("--delay", delay)):
        if not 0.0 <= fraction <= 1.0:
            raise typer.BadParameter(f"{name} is a fraction between 0 and 1, got {fraction}")
    options = ConsumerOptions(
        redis_url=redis_url,
        channel=channel,
        users=users,
        drop=drop,
        delay=delay,
        delay_seconds=delay_seconds,
        count=count or None,
        duration=duration or None,
        heartbeat_interval=heartbeat_interval,
        use_async=use_async,
        crash_after=crash_after or None,
    )
    try:
        report = _with_telemetry("dbpulse-demo-consumer", lambda: run_consumer(options))
    except KeyboardInterrupt:
        raise typer.Exit(130) from None
    typer.echo(
        f"received {report.received}, delivered {report.delivered}, dropped {report.dropped}, "
        f"delayed {report.delayed}, failed {report.failed} on {channel}"
    )
