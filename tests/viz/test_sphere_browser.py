"""The sphere page in real headless Chromium (Debian's, software WebGL through SwiftShader)."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from dbpulse.viz import VizFeedProcessor
from tests.viz._support import ARTIFACTS, CHROMIUM_ARGS, ISBNS, require_chromium, viz_server

pytestmark = pytest.mark.integration

KNOWN = ISBNS[0]


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


def test_an_instrumented_insert_lights_its_orb_green(
    browser: Any, otel: Any, tmp_path: Path
) -> None:
    with viz_server() as server:
        feed = VizFeedProcessor(server.url, batch_interval=0.05)
        otel.telemetry.tracer_provider.add_span_processor(feed)
        page = browser.new_page(viewport={"width": 1100, "height": 700})
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        page.goto(server.url + "/?rotate=0")
        page.wait_for_function("window.__dbpulseSphere && __dbpulseSphere.connection() === 'live'")

        conn = sqlite3.connect(tmp_path / "books.db")  # instrumented by dbpulse (otel fixture)
        conn.execute("CREATE TABLE books (isbn TEXT PRIMARY KEY, title TEXT)")
        for isbn in ISBNS[1:]:  # some neighbours, updated: blue
            conn.execute("INSERT INTO books VALUES (?, ?)", (isbn, "x"))
        conn.commit()
        for isbn in ISBNS[1:]:
            conn.execute("UPDATE books SET title = ? WHERE isbn = ?", ("y", isbn))
        conn.commit()
        conn.execute("INSERT INTO books VALUES (?, ?)", (KNOWN, "The Odyssey"))
        conn.commit()
        conn.close()

        page.wait_for_function(
            "(isbn) => { const s = __dbpulseSphere.orbState(isbn);"
            " return s && s.lit && s.operation === 'insert'; }",
            arg=KNOWN,
            timeout=15_000,
        )
        state = page.evaluate("(isbn) => __dbpulseSphere.orbState(isbn)", KNOWN)
        insert_colour = page.evaluate("__dbpulseSphere.opColors.insert")
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "viz_sphere_insert.png"))
        page.wait_for_function(
            "(isbn) => __dbpulseSphere.orbState(isbn).operation === 'update'", arg=ISBNS[1]
        )
        neighbour = page.evaluate("(isbn) => __dbpulseSphere.orbState(isbn)", ISBNS[1])
        stats = page.evaluate("__dbpulseSphere.stats()")
        feed.shutdown()
    assert errors == []
    assert state["colorOperation"] == "insert"
    assert state["opColor"] == insert_colour
    assert state["intensity"] > 0.5  # freshly lit: mostly the insert colour
    green = state["color"]
    assert green[1] > green[0] and green[1] > green[2]
    assert state["traceId"] and len(state["traceId"]) == 32
    assert neighbour["colorOperation"] == "update"
    assert stats["orbs"] == len(ISBNS)
    assert stats["insert"] >= len(ISBNS)


def test_replay_search_and_heat(browser: Any, otel: Any, tmp_path: Path) -> None:
    with viz_server() as server:
        feed = VizFeedProcessor(server.url, batch_interval=0.05)
        otel.telemetry.tracer_provider.add_span_processor(feed)
        conn = sqlite3.connect(tmp_path / "books.db")
        conn.execute("CREATE TABLE books (isbn TEXT PRIMARY KEY, title TEXT)")
        for i, isbn in enumerate(ISBNS):
            for _ in range(i + 1):
                conn.execute("INSERT OR REPLACE INTO books VALUES (?, ?)", (isbn, "x"))
        conn.commit()
        conn.close()
        assert feed.force_flush(5000)

        page = browser.new_page(viewport={"width": 1100, "height": 700})
        page.goto(server.url + "/?rotate=0")
        page.wait_for_function("__dbpulseSphere.connection() === 'live'")
        page.wait_for_function(f"__dbpulseSphere.orbCount() === {len(ISBNS)}")
        # Nothing lit yet: these writes happened before the page opened...
        assert not page.evaluate("(i) => __dbpulseSphere.orbState(i).lit", ISBNS[-1])
        # ...the replay shows them again.
        page.click("#replay-btn")
        page.wait_for_function(
            "(i) => __dbpulseSphere.orbState(i).lit", arg=ISBNS[-1], timeout=15_000
        )
        assert page.is_enabled("#scrub")
        page.click("#live-btn")
        assert page.is_disabled("#scrub")

        page.fill("#f-isbn", ISBNS[2])
        assert ISBNS[2] in page.text_content("#isbn-info")
        page.check("#v-heat")
        page.wait_for_function(
            "(i) => document.querySelector('#top li')?.textContent.startsWith(i)", arg=ISBNS[-1]
        )
        # The heat list counts each write once (the replay does not count them again).
        assert page.text_content("#top li span") == str(len(ISBNS))
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "viz_sphere_heat.png"))
        feed.shutdown()


def test_fifty_thousand_orbs_render(browser: Any) -> None:
    """Records the frame rate at 50,000 orbs (software WebGL here: see docs/viz.md)."""
    with viz_server() as server:
        page = browser.new_page(viewport={"width": 1280, "height": 800})
        page.goto(server.url + "/?synthetic=50000&pulse=2000")
        page.wait_for_function("__dbpulseSphere.orbCount() === 50000")
        page.wait_for_timeout(3000)
        fps = page.evaluate("__dbpulseSphere.fps()")
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "viz_sphere_50k.png"))
        (ARTIFACTS / "viz_sphere_50k_fps.txt").write_text(f"{fps}\n")
        print(f"50,000 orbs, 1280x800, SwiftShader: {fps} fps")
    assert fps > 0
