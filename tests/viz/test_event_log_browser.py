"""The live event log page (/events) in real headless Chromium (Debian's)."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from dbpulse.viz import VizFeedProcessor
from tests.viz._support import ARTIFACTS, CHROMIUM_ARGS, ISBNS, require_chromium, viz_server

pytestmark = pytest.mark.integration

TOKEN = "event-log-token"


@pytest.fixture
def browser() -> Iterator[Any]:
    executable = require_chromium()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


def rows(page: Any) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = page.evaluate("__dbpulseEvents.rows()")
    return found


def test_events_appear_live_filter_and_pause(browser: Any, otel: Any, tmp_path: Path) -> None:
    with viz_server(token=TOKEN) as server:
        feed = VizFeedProcessor(server.url, token=TOKEN, batch_interval=0.05)
        otel.telemetry.tracer_provider.add_span_processor(feed)
        conn = sqlite3.connect(tmp_path / "library.db")  # instrumented by dbpulse (otel fixture)
        conn.execute("CREATE TABLE books (isbn TEXT PRIMARY KEY, title TEXT)")
        conn.execute("CREATE TABLE loans (isbn TEXT, who TEXT)")
        conn.execute("INSERT INTO books VALUES (?, ?)", (ISBNS[0], "before the page"))
        conn.commit()
        assert feed.force_flush(5000)

        page = browser.new_page(viewport={"width": 1300, "height": 800})
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        page.goto(f"{server.url}/events?token={TOKEN}")
        page.wait_for_function("__dbpulseEvents.connection() === 'live'")
        # Seeded from /api/viz/recent: the write made before the page opened is there.
        page.wait_for_function("__dbpulseEvents.rows().length === 1")
        assert rows(page)[0]["cells"][2:4] == ["books", ISBNS[0]]

        # Live: writes made now appear without a reload, newest first, coloured by operation.
        for isbn in ISBNS[1:4]:
            conn.execute("INSERT INTO books VALUES (?, ?)", (isbn, "x"))
        conn.execute("UPDATE books SET title = ? WHERE isbn = ?", ("y", ISBNS[1]))
        conn.execute("INSERT INTO loans VALUES (?, ?)", (ISBNS[2], "ann"))
        conn.execute("DELETE FROM loans WHERE isbn = ?", (ISBNS[2],))
        conn.commit()
        page.wait_for_function("__dbpulseEvents.rows().length === 7", timeout=15_000)
        live = rows(page)
        assert [r["operation"] for r in live[:3]] == ["delete", "insert", "update"]
        assert {r["operation"]: r["cls"] for r in live} == {
            "insert": "ins",
            "update": "upd",
            "delete": "del",
        }
        colours = page.evaluate(
            "[...document.querySelectorAll('#rows td.op')].map(td => getComputedStyle(td).color)"
        )
        by_op = dict(zip([r["operation"] for r in live], colours, strict=True))
        assert len(set(by_op.values())) == 3  # insert, update and delete look different
        assert "detailed" in page.text_content("#sampling")

        # Filters: a table hides the others; "any field" matches any value (here a trace id).
        page.select_option("#f-table", "loans")
        assert {r["cells"][2] for r in rows(page)} == {"loans"}
        assert len(rows(page)) == 2
        page.select_option("#f-operation", "delete")
        assert [r["operation"] for r in rows(page)] == ["delete"]
        page.select_option("#f-table", "")
        page.select_option("#f-operation", "")
        page.fill("#f-isbn", ISBNS[1])
        assert {r["operation"] for r in rows(page)} == {"insert", "update"}
        page.fill("#f-isbn", "")
        trace_prefix = live[0]["cells"][7]
        page.fill("#f-any", trace_prefix)
        assert [r["seq"] for r in rows(page)] == [live[0]["seq"]]
        page.fill("#f-any", "")
        assert len(rows(page)) == 7

        # Pause: events keep arriving (counted) but the table does not change until Resume.
        page.click("#pause")
        before = rows(page)
        conn.execute("INSERT INTO books VALUES (?, ?)", (ISBNS[4], "while paused"))
        conn.commit()
        page.wait_for_function("__dbpulseEvents.pending() > 0", timeout=15_000)
        assert rows(page) == before
        assert "new while paused" in page.text_content("#paused-note")
        page.click("#pause")
        assert rows(page)[0]["cells"][3] == ISBNS[4]

        # Counters from /api/viz/stats at the chosen interval.
        page.select_option("#refresh", "1000")
        page.wait_for_function("document.getElementById('s-insert').textContent === '6'")
        assert page.text_content("#s-update") == page.text_content("#s-delete") == "1"
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "viz_event_log.png"), full_page=True)

        # The sphere page links here, passing the token on.
        page.goto(f"{server.url}/?token={TOKEN}&rotate=0")
        href = page.get_attribute("#events-link", "href")
        conn.close()
        feed.shutdown()
    assert errors == []
    assert href == f"/events?token={TOKEN}"


def test_the_page_is_behind_the_guard() -> None:
    with viz_server(token=TOKEN) as server:
        ok = httpx.get(server.url + "/events")
        evil = httpx.get(server.url + "/events", headers={"Host": "evil.example"})
        wrong = httpx.get(server.url + "/api/viz/recent?token=nope")
    assert ok.status_code == 200 and "event log" in ok.text
    assert evil.status_code == 400
    assert wrong.status_code == 401
