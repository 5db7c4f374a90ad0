// dbpulse event log: the viz server's recent write events as a live table. Plain JS, no
// third-party code. Seeds from /api/viz/recent, then follows the /ws/viz WebSocket; the summary
// counters come from /api/viz/stats at the chosen interval. Filters (table, operation, ISBN,
// any field) apply to what is kept in the page (the newest MAX_KEPT events); Pause stops the
// table from changing while events keep arriving (they are shown on Resume).
(() => {
  "use strict";

  const MAX_KEPT = 2000; // events kept in the page
  const MAX_ROWS = 500; // rows shown
  const SAMPLING_WINDOW = 200; // latest events the sampling mode is judged on
  const { $, withToken, setConn } = window.dbpulseLive;
  const KNOWN_OPS = { insert: "ins", update: "upd", delete: "del" };
  const opGroup = (operation) => (KNOWN_OPS[operation] ? operation : "other");

  const events = []; // oldest first
  const seen = new Set(); // seq numbers already kept (the seed and the socket overlap)
  const tables = new Set();
  let pending = []; // arrived while paused
  let paused = false;
  let statsTimer = null;
  let sampling = "unknown";
  const filters = { table: "", operation: "", isbn: "", any: "" };

  $("sphere-link").href = withToken("/");

  // -- filtering and rendering --------------------------------------------------------------

  function matches(e) {
    if (filters.table && e.table !== filters.table) return false;
    if (filters.operation && opGroup(e.operation) !== filters.operation) return false;
    if (filters.isbn && !(e.isbn || "").includes(filters.isbn.replace(/[-\s]/g, ""))) return false;
    if (filters.any) {
      const needle = filters.any.toLowerCase();
      const hit = Object.values(e).some(
        (v) => v !== null && v !== undefined && String(v).toLowerCase().includes(needle),
      );
      if (!hit) return false;
    }
    return true;
  }

  function cell(text, cls) {
    const td = document.createElement("td");
    td.textContent = text === null || text === undefined ? "" : String(text);
    if (cls) td.className = cls;
    return td;
  }

  function row(e, fresh) {
    const tr = document.createElement("tr");
    const group = opGroup(e.operation);
    tr.className = `${KNOWN_OPS[group] || "oth"}${fresh ? " fresh" : ""}`;
    tr.dataset.seq = e.seq;
    tr.dataset.operation = e.operation;
    const time = new Date((e.timestamp || e.received) * 1000);
    tr.append(
      cell(time.toLocaleTimeString([], { hour12: false }) +
        `.${String(time.getMilliseconds()).padStart(3, "0")}`),
      cell(e.operation, "op"),
      cell(e.table),
      cell(e.isbn),
      cell(e.count),
      cell(e.source),
      cell(e.system),
      cell(e.trace_id ? e.trace_id.slice(0, 16) : "", "trace"),
      cell(e.seq),
    );
    if (e.trace_id) tr.lastChild.previousSibling.title = e.trace_id;
    return tr;
  }

  function renderAll() {
    const body = $("rows");
    const rows = [];
    for (let i = events.length - 1; i >= 0 && rows.length < MAX_ROWS; i--) {
      if (matches(events[i])) rows.push(row(events[i], false));
    }
    body.replaceChildren(...rows);
    updateShown();
  }

  function prepend(batch) {
    const body = $("rows");
    const fragment = document.createDocumentFragment();
    for (let i = batch.length - 1; i >= 0; i--) {
      if (matches(batch[i])) fragment.append(row(batch[i], true));
    }
    body.insertBefore(fragment, body.firstChild);
    while (body.childElementCount > MAX_ROWS) body.lastChild.remove();
    updateShown();
  }

  function updateShown() {
    $("shown").textContent = `${$("rows").childElementCount} shown of ${events.length} kept`;
    $("paused-note").textContent = paused && pending.length
      ? `${pending.length} new while paused` : "";
  }

  // -- events in --------------------------------------------------------------------------

  function keep(batch) {
    const fresh = [];
    for (const e of batch) {
      if (e.type === "table_writes") continue; // exact per-table counts: in the counters
      if (e.seq !== undefined && seen.has(e.seq)) continue;
      if (e.seq !== undefined) seen.add(e.seq);
      fresh.push(e);
      events.push(e);
      if (e.table && !tables.has(e.table)) addTable(e.table);
    }
    while (events.length > MAX_KEPT) {
      const old = events.shift();
      seen.delete(old.seq);
    }
    updateSampling();
    return fresh;
  }

  function onEvents(batch) {
    if (paused) {
      pending.push(...batch);
      if (pending.length > MAX_KEPT) pending = pending.slice(-MAX_KEPT);
      updateShown();
      return;
    }
    const fresh = keep(batch);
    if (fresh.length) prepend(fresh);
  }

  function addTable(name) {
    tables.add(name);
    const select = $("f-table");
    const option = document.createElement("option");
    option.value = name;
    option.textContent = name;
    const after = [...select.options].slice(1).find((o) => o.value > name);
    select.insertBefore(option, after || null);
  }

  // Detailed: every write arrives as a span event. Sampled: some as span events, the rest as
  // counts from the exact metrics ("source": "metrics"). Aggregated: counts only.
  function updateSampling() {
    const recent = events.slice(-SAMPLING_WINDOW);
    let spans = 0;
    let counted = 0;
    for (const e of recent) {
      if (e.source === "metrics") counted += e.count || 0;
      else spans += e.count || 1;
    }
    const el = $("sampling");
    if (!recent.length) {
      sampling = "unknown";
      el.textContent = "sampling: unknown (no events yet)";
    } else if (!counted) {
      sampling = "detailed";
      el.textContent = "sampling: detailed (every write is an event)";
    } else if (!spans) {
      sampling = "aggregated";
      el.textContent = "sampling: aggregated (counts only, no traces)";
    } else {
      sampling = "sampled";
      const share = Math.round((100 * spans) / (spans + counted));
      el.textContent = `sampling: sampled (${share}% of writes traced, the rest counted)`;
    }
    el.className = `sampling ${sampling}`;
    el.title =
      "Judged on the latest events: span events carry a trace id; under sampling the other " +
      "writes arrive as counts from dbpulse's exact metrics (source 'metrics'), so events " +
      "look sparser than the writes they stand for.";
  }

  // -- server I/O -------------------------------------------------------------------------

  async function seed() {
    const res = await fetch(withToken(`/api/viz/recent?limit=${MAX_KEPT}`));
    if (!res.ok) throw new Error(`recent: HTTP ${res.status}`);
    const data = await res.json();
    keep(data.events);
    events.sort((a, b) => (a.seq || 0) - (b.seq || 0));
    if (!paused) renderAll();
  }

  function follow() {
    window.dbpulseLive.follow({
      onOpen: () => seed().catch((err) => setConn("live", `could not load recent events: ${err}`)),
      onMessage: (data) => {
        if (data.type === "events") onEvents(data.events);
        else if (data.type === "gap") setConn("live", `server skipped ${data.skipped} messages`);
      },
    });
  }

  function sum(map) {
    return Object.values(map || {}).reduce((a, b) => a + b, 0);
  }

  async function loadStats() {
    try {
      const res = await fetch(withToken("/api/viz/stats"));
      if (!res.ok) return;
      const s = await res.json();
      const ops = s.writes_by_operation || {};
      const other = sum(ops) - (ops.insert || 0) - (ops.update || 0) - (ops.delete || 0);
      $("s-rate").textContent = Math.round(s.writes_per_s || 0);
      $("s-total").textContent = s.events_received || 0;
      $("s-insert").textContent = ops.insert || 0;
      $("s-update").textContent = ops.update || 0;
      $("s-delete").textContent = ops.delete || 0;
      $("s-other").textContent = other;
      $("s-clients").textContent = s.clients || 0;
      for (const name of s.tables || []) if (!tables.has(name)) addTable(name);
    } catch {
      // the socket state already says when the server is gone
    }
  }

  function scheduleStats() {
    clearInterval(statsTimer);
    statsTimer = null;
    const every = Number($("refresh").value);
    if (every > 0) {
      loadStats();
      statsTimer = setInterval(loadStats, every);
    }
  }

  // -- controls ---------------------------------------------------------------------------

  function setPaused(value) {
    paused = value;
    const button = $("pause");
    button.textContent = paused ? "Resume" : "Pause";
    button.classList.toggle("paused", paused);
    if (!paused && pending.length) {
      const batch = pending;
      pending = [];
      keep(batch);
      renderAll();
    }
    updateShown();
  }

  for (const [id, key] of [["f-table", "table"], ["f-operation", "operation"],
    ["f-isbn", "isbn"], ["f-any", "any"]]) {
    $(id).addEventListener("input", () => {
      filters[key] = $(id).value.trim();
      renderAll();
    });
  }
  $("pause").addEventListener("click", () => setPaused(!paused));
  $("clear").addEventListener("click", () => {
    events.length = 0;
    pending = [];
    renderAll();
  });
  $("refresh").addEventListener("change", scheduleStats);

  // For tests and the curious: the page's state, read-only.
  window.__dbpulseEvents = {
    connection: window.dbpulseLive.connection,
    paused: () => paused,
    sampling: () => sampling,
    kept: () => events.length,
    pending: () => pending.length,
    rows: () => [...$("rows").children].map((tr) => ({
      seq: Number(tr.dataset.seq),
      operation: tr.dataset.operation,
      cls: tr.className.split(" ")[0],
      cells: [...tr.children].map((td) => td.textContent),
    })),
    statsInterval: () => Number($("refresh").value),
  };

  setConn("connecting");
  follow();
  scheduleStats();
})();
