"""``dbpulse demo producer`` and ``dbpulse demo consumer``: the pattern-flow demo workloads.

The CLI registers the two functions as Typer commands::

    demo.command("producer")(producer)
    demo.command("consumer")(consumer)

Telemetry: under ``opentelemetry-instrument`` (or any SDK already set up in the process) the
commands use what is configured; otherwise they call :func:`dbpulse.configure` with
``service.name`` ``dbpulse-demo-producer`` / ``dbpulse-demo-consumer`` (OTLP from the
``OTEL_*`` variables) and shut it down, flushed, on exit. Both run until ``--count``,
``--duration``, SIGTERM or Ctrl-C, then exit 0 (``dbpulse.cli._running``); a lost Redis
connection makes them pause and start again (counts and ``--duration`` start over).
"""

from __future__ import annotations

from typing import Annotated

import typer

from dbpulse.cli._running import redis_errors, run_until_stopped
from dbpulse.demo.flows import (
    DEFAULT_CHANNEL,
    SYMBOLS,
    ConsumerOptions,
    ProducerOptions,
    run_consumer,
    run_producer,
)
from dbpulse.demo.running import rerun_on

__all__ = ["consumer", "producer"]

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
    report = run_until_stopped(
        "dbpulse-demo-producer",
        lambda stop: rerun_on(
            redis_errors(), lambda: run_producer(options, stop), stop, what="producer"
        ),
    )
    if report is not None:
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
    report = run_until_stopped(
        "dbpulse-demo-consumer",
        lambda stop: rerun_on(
            redis_errors(), lambda: run_consumer(options, stop), stop, what="consumer"
        ),
    )
    if report is not None:
        typer.echo(
            f"received {report.received}, delivered {report.delivered}, "
            f"dropped {report.dropped}, delayed {report.delayed}, failed {report.failed} "
            f"on {channel}"
        )
