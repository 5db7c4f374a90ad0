// dbpulse ISBN sphere: raw WebGL2, one GL point per ISBN, no third-party code.
//
// Layout: the server gives every ISBN a stable slot on a fixed lattice of `capacity`
// Fibonacci-sphere points (slot = hash of the ISBN, probed); slot s >= capacity lies on outer
// shell floor(s / capacity). Positions therefore never change when new ISBNs arrive.
//
// Per orb the GPU holds (hitTime, opIndex, heat, visibility); the vertex shader computes the
// fading pulse from the current time, so a frame costs one uniform update plus an upload of
// the orbs that changed since the last frame, whatever the orb count.
(() => {
  "use strict";

  const OPS = ["insert", "update", "delete", "other"];
  const OP_COLORS = [
    [0.25, 0.95, 0.45], // insert: green
    [0.3, 0.65, 1.0], // update: blue
    [1.0, 0.3, 0.3], // delete: red
    [0.85, 0.5, 1.0], // replace/upsert/merge/copy: violet
  ];
  const BASE_COLOR = [0.2, 0.25, 0.36];
  const FADE_S = 2.5; // pulse intensity = exp(-age / FADE_S)
  const LIT_THRESHOLD = 0.05;
  const GOLDEN_ANGLE = Math.PI * (3 - Math.sqrt(5));
  const REPLAY_S = 300;
  const { $, withToken, setConn } = window.dbpulseLive;
  const params = new URLSearchParams(location.search);
  $("events-link").href = withToken("/events");
  const canvas = $("sphere");
  const gl = canvas.getContext("webgl2", { antialias: false, alpha: false,
    preserveDrawingBuffer: false });
  if (!gl) {
    $("nogl").hidden = false;
  }

  // -- orb storage -------------------------------------------------------------------------------
  let capacity = 65536;
  let count = 0;
  let allocated = 0;
  let positions = new Float32Array(0);
  let states = new Float32Array(0); // per orb: hitTime, opIndex, heat, visibility
  let hits = new Float64Array(0); // writes per orb (for heat)
  const isbnToIndex = new Map();
  const indexToIsbn = [];
  const orbInfo = []; // per orb: {op, traceId, table}
  let dirtyLo = Infinity;
  let dirtyHi = -1;
  let positionsDirtyFrom = 0;
  let maxHits = 0;

  function grow(needed) {
    if (needed <= allocated) return;
    let size = Math.max(1024, allocated);
    while (size < needed) size *= 2;
    const p = new Float32Array(size * 3);
    p.set(positions);
    const s = new Float32Array(size * 4);
    s.set(states);
    const h = new Float64Array(size);
    h.set(hits);
    positions = p;
    states = s;
    hits = h;
    allocated = size;
    gpuAllocated = 0; // buffers must be re-created
  }

  function slotPosition(slot, out, offset) {
    const shell = Math.floor(slot / capacity);
    const i = slot % capacity;
    const y = 1 - (2 * (i + 0.5)) / capacity;
    const r = Math.sqrt(Math.max(0, 1 - y * y));
    const phi = i * GOLDEN_ANGLE;
    const radius = 1 + 0.045 * shell;
    out[offset] = Math.cos(phi) * r * radius;
    out[offset + 1] = y * radius;
    out[offset + 2] = Math.sin(phi) * r * radius;
  }

  function ensureOrb(isbn, slot) {
    let index = isbnToIndex.get(isbn);
    if (index !== undefined) return index;
    if (slot === null || slot === undefined) return -1;
    index = count++;
    grow(count);
    isbnToIndex.set(isbn, index);
    indexToIsbn[index] = isbn;
    orbInfo[index] = null;
    slotPosition(slot, positions, index * 3);
    states[index * 4] = -1e9;
    states[index * 4 + 1] = 0;
    states[index * 4 + 2] = 0;
    states[index * 4 + 3] = visibilityOf(isbn);
    positionsDirtyFrom = Math.min(positionsDirtyFrom, index);
    markDirty(index);
    return index;
  }

  function markDirty(index) {
    if (index < dirtyLo) dirtyLo = index;
    if (index > dirtyHi) dirtyHi = index;
  }

  function opIndex(operation) {
    const i = OPS.indexOf(operation);
    return i >= 0 && i < 3 ? i : 3;
  }

  // -- clock: seconds since page load, the GPU's time base --------------------------------------
  const t0 = performance.now();
  const clock = () => (performance.now() - t0) / 1000;

  // -- filters, search ------------------------------------------------------------------------
  const filters = { table: "", ops: new Set(OPS), search: "" };
  let searchMatches = null; // Set of ISBNs, or null when no search

  function passes(event) {
    if (filters.table && event.table !== filters.table) return false;
    return filters.ops.has(OPS[opIndex(event.operation)]);
  }

  function visibilityOf(isbn) {
    if (!searchMatches) return 1;
    return searchMatches.has(isbn) ? 2 : 0.3;
  }

  function applySearch() {
    const text = filters.search.replace(/[-\s]/g, "");
    searchMatches = null;
    if (text.length >= 3) {
      searchMatches = new Set();
      for (const isbn of isbnToIndex.keys()) {
        if (isbn.includes(text)) searchMatches.add(isbn);
      }
    }
    for (let i = 0; i < count; i++) states[i * 4 + 3] = visibilityOf(indexToIsbn[i]);
    markDirty(0);
    markDirty(count - 1);
    renderIsbnInfo();
  }

  // -- counters -------------------------------------------------------------------------------
  const counters = { total: 0, insert: 0, update: 0, delete: 0, other: 0, unplaced: 0,
    skipped: 0, events: 0 };
  const rateWindow = []; // [time, writes]
  const tables = new Set();
  const exact = new Map();

  function countEvent(e) {
    const n = e.count ?? 1;
    counters.total += n;
    counters[OPS[opIndex(e.operation)]] += n;
    counters.events += 1;
    rateWindow.push([clock(), n]);
    if (e.table && !tables.has(e.table)) {
      tables.add(e.table);
      const option = document.createElement("option");
      option.value = option.textContent = e.table;
      $("f-table").appendChild(option);
    }
  }

  // -- events ---------------------------------------------------------------------------------
  let replaying = false;

  function light(e, when, counted = true) {
    if (!e.isbn || e.slot === null || e.slot === undefined) {
      counters.unplaced += e.count ?? 1;
      return;
    }
    const index = ensureOrb(e.isbn, e.slot);
    if (index < 0) return;
    const op = opIndex(e.operation);
    states[index * 4] = when;
    states[index * 4 + 1] = op;
    if (counted) { // replays show past writes again; they were counted when they happened
      hits[index] += e.count ?? 1;
      if (hits[index] > maxHits) maxHits = hits[index];
    }
    orbInfo[index] = { op: e.operation, traceId: e.trace_id || null, table: e.table || null,
      timestamp: e.timestamp };
    markDirty(index);
  }

  function onEvents(events) {
    const now = clock();
    for (const e of events) {
      if (e.type === "table_writes") {
        const key = `${e.table || "?"} ${e.operation}`;
        exact.set(key, (exact.get(key) || 0) + (e.count ?? 0));
        continue;
      }
      countEvent(e);
      if (e.isbn && e.slot !== null && e.slot !== undefined) ensureOrb(e.isbn, e.slot);
      if (replaying || !passes(e)) continue;
      light(e, now);
    }
  }

  // -- server I/O -----------------------------------------------------------------------------

  async function loadLayout() {
    const res = await fetch(withToken("/api/viz/isbns"));
    const data = await res.json();
    if (data.capacity !== capacity && count === 0) capacity = data.capacity;
    for (let i = 0; i < data.isbns.length; i++) ensureOrb(data.isbns[i], data.slots[i]);
    if (filters.search) applySearch();
  }

  async function loadTop() {
    const res = await fetch(withToken("/api/viz/top?n=15"));
    const data = await res.json();
    for (const item of data.top) {
      const index = ensureOrb(item.isbn, item.slot);
      if (index >= 0 && hits[index] < item.count) {
        hits[index] = item.count;
        if (item.count > maxHits) maxHits = item.count;
      }
    }
  }

  function follow() {
    window.dbpulseLive.follow({
      onOpen: () => loadLayout().then(loadTop).catch(() => {}),
      onMessage: (data) => {
        if (data.type === "events") onEvents(data.events);
        else if (data.type === "hello") {
          if (count === 0) capacity = data.capacity;
        } else if (data.type === "gap") {
          counters.skipped += data.skipped;
          setConn("live", `server skipped ${counters.skipped} messages: this page was too slow`);
        }
      },
    });
  }

  // -- replay ---------------------------------------------------------------------------------
  const replay = { events: [], from: 0, to: 0, pos: 0, applied: 0, playing: false, speed: 1,
    lastFrame: 0 };

  async function startReplay() {
    const res = await fetch(withToken(`/api/viz/replay?seconds=${REPLAY_S}`));
    const data = await res.json();
    replay.events = data.events.filter((e) => e.type !== "table_writes");
    replay.events.sort((a, b) => a.timestamp - b.timestamp);
    replay.to = data.to;
    replay.from = data.to - REPLAY_S;
    replaying = true;
    for (const e of replay.events) {
      if (e.isbn && e.slot !== null && e.slot !== undefined) ensureOrb(e.isbn, e.slot);
    }
    $("scrub").disabled = false;
    $("play-btn").disabled = false;
    $("speed").disabled = false;
    $("live-btn").disabled = false;
    const first = replay.events.length ? replay.events[0].timestamp : replay.from;
    seek(Math.max(replay.from, first - 1));
    replay.playing = true;
    $("play-btn").textContent = "Pause";
  }

  function seek(position) {
    replay.pos = Math.min(Math.max(position, replay.from), replay.to);
    const now = clock();
    for (let i = 0; i < count; i++) states[i * 4] = -1e9;
    markDirty(0);
    markDirty(count - 1);
    // Re-light what would still glow at this moment, then play on from here.
    let i = 0;
    const evs = replay.events;
    while (i < evs.length && evs[i].timestamp <= replay.pos) {
      if (evs[i].timestamp > replay.pos - FADE_S * 3 && passes(evs[i])) {
        light(evs[i], now - (replay.pos - evs[i].timestamp), false);
      }
      i++;
    }
    replay.applied = i;
    updateScrub();
  }

  function stepReplay(dt) {
    if (!replaying || !replay.playing) return;
    replay.pos = Math.min(replay.to, replay.pos + dt * replay.speed);
    const evs = replay.events;
    const now = clock();
    while (replay.applied < evs.length && evs[replay.applied].timestamp <= replay.pos) {
      const e = evs[replay.applied++];
      if (passes(e)) light(e, now, false);
    }
    if (replay.pos >= replay.to) replay.playing = false;
    updateScrub();
  }

  function updateScrub() {
    const scrub = $("scrub");
    scrub.value = String(REPLAY_S - (replay.to - replay.pos));
    const ago = replay.to - replay.pos;
    const when = new Date(replay.pos * 1000).toLocaleTimeString();
    $("scrub-label").textContent = `${when} (−${ago.toFixed(0)} s)`;
    $("play-btn").textContent = replay.playing ? "Pause" : "Play";
  }

  function stopReplay() {
    replaying = false;
    replay.playing = false;
    replay.events = [];
    for (const id of ["scrub", "play-btn", "speed", "live-btn"]) $(id).disabled = true;
    $("scrub").value = String(REPLAY_S);
    $("scrub-label").textContent = "live";
  }

  // -- camera ---------------------------------------------------------------------------------
  const camera = { yaw: 0.6, pitch: 0.35, distance: 3.2, autoRotate: true };
  let dragging = null;

  canvas.addEventListener("pointerdown", (e) => {
    dragging = { x: e.clientX, y: e.clientY };
    canvas.setPointerCapture(e.pointerId);
  });
  canvas.addEventListener("pointermove", (e) => {
    if (!dragging) return;
    camera.yaw += (e.clientX - dragging.x) * 0.006;
    camera.pitch = Math.max(-1.5, Math.min(1.5, camera.pitch + (e.clientY - dragging.y) * 0.006));
    dragging = { x: e.clientX, y: e.clientY };
  });
  canvas.addEventListener("pointerup", () => (dragging = null));
  canvas.addEventListener("wheel", (e) => {
    e.preventDefault();
    camera.distance = Math.max(1.3, Math.min(12, camera.distance * Math.exp(e.deltaY * 0.001)));
  }, { passive: false });

  function perspective(fovy, aspect, near, far) {
    const f = 1 / Math.tan(fovy / 2);
    const nf = 1 / (near - far);
    return [f / aspect, 0, 0, 0, 0, f, 0, 0, 0, 0, (far + near) * nf, -1, 0, 0,
      2 * far * near * nf, 0];
  }

  function multiply(a, b) { // column-major a*b
    const out = new Array(16);
    for (let c = 0; c < 4; c++) {
      for (let r = 0; r < 4; r++) {
        let s = 0;
        for (let k = 0; k < 4; k++) s += a[k * 4 + r] * b[c * 4 + k];
        out[c * 4 + r] = s;
      }
    }
    return out;
  }

  function viewMatrix() {
    const cy = Math.cos(camera.yaw), sy = Math.sin(camera.yaw);
    const cp = Math.cos(camera.pitch), sp = Math.sin(camera.pitch);
    const ry = [cy, 0, -sy, 0, 0, 1, 0, 0, sy, 0, cy, 0, 0, 0, 0, 1];
    const rx = [1, 0, 0, 0, 0, cp, sp, 0, 0, -sp, cp, 0, 0, 0, 0, 1];
    const tz = [1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0, 0, 0, -camera.distance, 1];
    return multiply(tz, multiply(rx, ry));
  }

  // -- GL -------------------------------------------------------------------------------------
  const VERT = `#version 300 es
  in vec3 a_pos;
  in vec4 a_state;
  uniform mat4 u_view;
  uniform mat4 u_proj;
  uniform float u_time;
  uniform float u_fade;
  uniform float u_size;
  uniform float u_heatMode;
  uniform float u_maxHeat;
  uniform vec3 u_colors[4];
  uniform vec3 u_base;
  uniform float u_cullBack;
  out vec3 v_color;
  out float v_ring;
  vec3 heatColor(float x) {
    return mix(mix(vec3(0.1, 0.1, 0.35), vec3(0.9, 0.2, 0.1), smoothstep(0.0, 0.6, x)),
               vec3(1.0, 0.95, 0.5), smoothstep(0.6, 1.0, x));
  }
  void main() {
    vec4 viewPos = u_view * vec4(a_pos, 1.0);
    gl_Position = u_proj * viewPos;
    vec3 normal = mat3(u_view) * normalize(a_pos);
    float facing = 0.35 + 0.65 * smoothstep(-0.6, 1.0, normal.z);
    float age = u_time - a_state.x;
    float k = age >= 0.0 ? exp(-age / u_fade) : 0.0;
    vec3 color;
    float grow = 1.0 + 1.4 * k;
    if (u_heatMode > 0.5) {
      float h = a_state.z > 0.0 ? log(1.0 + a_state.z) / log(1.0 + max(u_maxHeat, 1.0)) : 0.0;
      color = a_state.z > 0.0 ? heatColor(h) : u_base * 0.6;
      grow = 1.0 + 1.6 * h + 1.2 * k;
    } else {
      color = mix(u_base, u_colors[int(a_state.y)], k);
    }
    float vis = a_state.w;
    // Dense spheres: the far hemisphere is hidden behind the near one; skipping its unlit orbs
    // halves the fragments (software rendering at 50,000 orbs is fill-bound).
    if (u_cullBack > 0.5 && normal.z < -0.25 && k < 0.05 && vis < 1.5) {
      gl_Position = vec4(2.0, 2.0, 2.0, 1.0);
      gl_PointSize = 0.0;
      return;
    }
    v_ring = vis > 1.5 ? 1.0 : 0.0;
    if (vis > 1.5) grow *= 2.0;
    color *= (vis < 0.5 ? 0.35 : 1.0) * mix(facing, 1.0, k);
    v_color = color;
    gl_PointSize = max(1.5, u_size * grow / -viewPos.z);
  }`;
  const FRAG = `#version 300 es
  precision mediump float;
  in vec3 v_color;
  in float v_ring;
  out vec4 outColor;
  void main() {
    vec2 d = gl_PointCoord * 2.0 - 1.0;
    float r = dot(d, d);
    if (r > 1.0) discard;
    vec3 c = v_color * (1.0 - 0.35 * r);
    if (v_ring > 0.5 && r > 0.6) c = vec3(1.0);
    outColor = vec4(c, 1.0);
  }`;

  let program = null;
  let vao = null;
  let posBuffer = null;
  let stateBuffer = null;
  let gpuAllocated = 0;
  const uniforms = {};

  function compile(type, source) {
    const shader = gl.createShader(type);
    gl.shaderSource(shader, source);
    gl.compileShader(shader);
    if (!gl.getShaderParameter(shader, gl.COMPILE_STATUS)) {
      throw new Error(gl.getShaderInfoLog(shader));
    }
    return shader;
  }

  function initGl() {
    program = gl.createProgram();
    gl.attachShader(program, compile(gl.VERTEX_SHADER, VERT));
    gl.attachShader(program, compile(gl.FRAGMENT_SHADER, FRAG));
    gl.linkProgram(program);
    if (!gl.getProgramParameter(program, gl.LINK_STATUS)) {
      throw new Error(gl.getProgramInfoLog(program));
    }
    for (const name of ["u_view", "u_proj", "u_time", "u_fade", "u_size", "u_heatMode",
      "u_maxHeat", "u_colors", "u_base", "u_cullBack"]) {
      uniforms[name] = gl.getUniformLocation(program, name);
    }
    vao = gl.createVertexArray();
    posBuffer = gl.createBuffer();
    stateBuffer = gl.createBuffer();
    gl.enable(gl.DEPTH_TEST);
    gl.clearColor(0.027, 0.043, 0.078, 1);
  }

  function upload() {
    if (gpuAllocated !== allocated) {
      gl.bindVertexArray(vao);
      const posLoc = gl.getAttribLocation(program, "a_pos");
      const stateLoc = gl.getAttribLocation(program, "a_state");
      gl.bindBuffer(gl.ARRAY_BUFFER, posBuffer);
      gl.bufferData(gl.ARRAY_BUFFER, positions, gl.STATIC_DRAW);
      gl.enableVertexAttribArray(posLoc);
      gl.vertexAttribPointer(posLoc, 3, gl.FLOAT, false, 0, 0);
      gl.bindBuffer(gl.ARRAY_BUFFER, stateBuffer);
      gl.bufferData(gl.ARRAY_BUFFER, states, gl.DYNAMIC_DRAW);
      gl.enableVertexAttribArray(stateLoc);
      gl.vertexAttribPointer(stateLoc, 4, gl.FLOAT, false, 0, 0);
      gpuAllocated = allocated;
      positionsDirtyFrom = Infinity;
      dirtyLo = Infinity;
      dirtyHi = -1;
      return;
    }
    if (positionsDirtyFrom < count) {
      gl.bindBuffer(gl.ARRAY_BUFFER, posBuffer);
      gl.bufferSubData(gl.ARRAY_BUFFER, positionsDirtyFrom * 12, positions,
        positionsDirtyFrom * 3, (count - positionsDirtyFrom) * 3);
      positionsDirtyFrom = Infinity;
    }
    if (dirtyHi >= dirtyLo) {
      gl.bindBuffer(gl.ARRAY_BUFFER, stateBuffer);
      gl.bufferSubData(gl.ARRAY_BUFFER, dirtyLo * 16, states, dirtyLo * 4,
        (dirtyHi - dirtyLo + 1) * 4);
      dirtyLo = Infinity;
      dirtyHi = -1;
    }
  }

  function resize() {
    const dpr = Math.min(window.devicePixelRatio || 1, 2);
    const w = Math.floor(canvas.clientWidth * dpr);
    const h = Math.floor(canvas.clientHeight * dpr);
    if (canvas.width !== w || canvas.height !== h) {
      canvas.width = w;
      canvas.height = h;
    }
    gl.viewport(0, 0, w, h);
    return [w, h];
  }

  // -- heat -----------------------------------------------------------------------------------
  let heatMode = false;
  let lastHeatRefresh = 0;

  function refreshHeat(now) {
    if (now - lastHeatRefresh < 0.5) return;
    lastHeatRefresh = now;
    if (heatMode) {
      for (let i = 0; i < count; i++) states[i * 4 + 2] = hits[i];
      markDirty(0);
      markDirty(count - 1);
    }
    renderTop();
  }

  function renderTop() {
    const best = [];
    for (let i = 0; i < count; i++) {
      const h = hits[i];
      if (h <= 0) continue;
      if (best.length < 15) {
        best.push(i);
        if (best.length === 15) best.sort((a, b) => hits[b] - hits[a]);
      } else if (h > hits[best[14]]) {
        best[14] = i;
        best.sort((a, b) => hits[b] - hits[a]);
      }
    }
    best.sort((a, b) => hits[b] - hits[a]);
    const list = $("top");
    list.replaceChildren(...best.map((i) => {
      const li = document.createElement("li");
      li.textContent = indexToIsbn[i];
      const span = document.createElement("span");
      span.textContent = String(Math.round(hits[i]));
      li.appendChild(span);
      li.onclick = () => {
        $("f-isbn").value = indexToIsbn[i];
        filters.search = indexToIsbn[i];
        applySearch();
      };
      return li;
    }));
    const lines = [...exact.entries()].sort().map(([k, v]) => `${k}: ${Math.round(v)}`);
    if (lines.length) $("exact").textContent = lines.join(" · ");
  }

  function renderIsbnInfo() {
    const el = $("isbn-info");
    if (!searchMatches) {
      el.textContent = "";
      return;
    }
    if (searchMatches.size === 1) {
      const [isbn] = searchMatches;
      const s = orbState(isbn);
      el.textContent = `${isbn}: ${Math.round(s.count)} writes` +
        (s.operation ? `, last ${s.operation}` : "") + (s.traceId ? `, trace ${s.traceId}` : "");
    } else {
      el.textContent = `${searchMatches.size} matching ISBNs`;
    }
  }

  // -- frame loop -----------------------------------------------------------------------------
  const frameTimes = [];
  let lastFrame = performance.now();
  let lastUi = 0;

  function orbSize(h) {
    const n = Math.max(count, 1);
    const spacing = Math.min(0.05, Math.max(0.008, 0.9 * Math.sqrt(4 / n)));
    const fov = Math.PI / 4;
    return (spacing * h) / (2 * Math.tan(fov / 2));
  }

  function frame(tms) {
    const dt = Math.min(0.25, (tms - lastFrame) / 1000);
    lastFrame = tms;
    frameTimes.push(tms);
    while (frameTimes.length && frameTimes[0] < tms - 1000) frameTimes.shift();
    const now = clock();
    if (camera.autoRotate && !dragging) camera.yaw += dt * 0.08;
    stepReplay(dt);
    synthStep(dt, now);
    refreshHeat(now);
    if (gl) {
      const [w, h] = resize();
      gl.clear(gl.COLOR_BUFFER_BIT | gl.DEPTH_BUFFER_BIT);
      if (count > 0) {
        gl.useProgram(program);
        upload();
        gl.bindVertexArray(vao);
        gl.uniformMatrix4fv(uniforms.u_view, false, viewMatrix());
        gl.uniformMatrix4fv(uniforms.u_proj, false, perspective(Math.PI / 4, w / h, 0.05, 50));
        gl.uniform1f(uniforms.u_time, now);
        gl.uniform1f(uniforms.u_fade, FADE_S);
        gl.uniform1f(uniforms.u_size, orbSize(h));
        gl.uniform1f(uniforms.u_heatMode, heatMode ? 1 : 0);
        gl.uniform1f(uniforms.u_maxHeat, maxHits);
        gl.uniform3fv(uniforms.u_colors, OP_COLORS.flat());
        gl.uniform3fv(uniforms.u_base, BASE_COLOR);
        gl.uniform1f(uniforms.u_cullBack, count > 8000 ? 1 : 0);
        gl.drawArrays(gl.POINTS, 0, count);
      }
    }
    if (tms - lastUi > 250) {
      lastUi = tms;
      renderCounters(now);
    }
    requestAnimationFrame(frame);
  }

  function renderCounters(now) {
    while (rateWindow.length && rateWindow[0][0] < now - 1) rateWindow.shift();
    let rate = 0;
    for (const [, n] of rateWindow) rate += n;
    const fmt = (n) => Math.round(n).toLocaleString();
    $("rate").textContent = fmt(rate);
    $("total").textContent = fmt(counters.total);
    for (const op of OPS) $(`n-${op}`).textContent = fmt(counters[op]);
    $("orbs").textContent = fmt(count);
    $("fps").textContent = String(frameTimes.length);
    if (searchMatches) renderIsbnInfo();
  }

  // -- synthetic load (performance checks: ?synthetic=50000&pulse=2000) ----------------------
  let synthPerSecond = 0;
  let synthCarry = 0;

  function addSyntheticIsbns(n) {
    const start = count;
    // Spread over the whole lattice (and outer shells beyond its capacity).
    const step = n <= capacity ? capacity / n : 1;
    for (let i = 0; i < n; i++) {
      const slot = n <= capacity ? Math.floor(i * step) : i;
      ensureOrb(`synthetic-${start + i}`, slot);
    }
    return count;
  }

  function synthStep(dt, now) {
    if (!synthPerSecond || count === 0) return;
    synthCarry += synthPerSecond * dt;
    while (synthCarry >= 1) {
      synthCarry -= 1;
      const index = Math.floor(Math.random() * count);
      states[index * 4] = now;
      states[index * 4 + 1] = Math.floor(Math.random() * 3);
      markDirty(index);
    }
  }

  // -- test and debugging hook ----------------------------------------------------------------
  function orbState(isbn) {
    const index = isbnToIndex.get(isbn);
    if (index === undefined) return null;
    const now = clock();
    const hit = states[index * 4];
    const age = now - hit;
    const intensity = age >= 0 ? Math.exp(-age / FADE_S) : 0;
    const op = states[index * 4 + 1];
    const opColor = OP_COLORS[op];
    const color = BASE_COLOR.map((b, i) => b + (opColor[i] - b) * intensity);
    const info = orbInfo[index] || {};
    return {
      isbn, index, intensity, lit: intensity > LIT_THRESHOLD,
      operation: info.op || null, colorOperation: OPS[op], color, opColor,
      count: hits[index], traceId: info.traceId || null, table: info.table || null,
      position: Array.from(positions.subarray(index * 3, index * 3 + 3)),
    };
  }

  window.__dbpulseSphere = {
    orbState,
    opColors: Object.fromEntries(OPS.map((op, i) => [op, OP_COLORS[i]])),
    connection: window.dbpulseLive.connection,
    fps: () => frameTimes.length,
    orbCount: () => count,
    stats: () => ({ ...counters, orbs: count, fps: frameTimes.length, connection: window.dbpulseLive.connection(),
      capacity }),
    addSyntheticIsbns,
    setSyntheticPulses: (perSecond) => { synthPerSecond = perSecond; },
    setAutoRotate: (on) => { camera.autoRotate = on; $("v-rotate").checked = on; },
  };

  // -- controls -------------------------------------------------------------------------------
  $("f-table").onchange = (e) => { filters.table = e.target.value; };
  for (const op of OPS) {
    $(`f-${op}`).onchange = (e) => {
      if (e.target.checked) filters.ops.add(op);
      else filters.ops.delete(op);
    };
  }
  $("f-isbn").oninput = (e) => { filters.search = e.target.value.trim(); applySearch(); };
  $("v-heat").onchange = (e) => {
    heatMode = e.target.checked;
    lastHeatRefresh = 0;
    if (!heatMode) {
      for (let i = 0; i < count; i++) states[i * 4 + 2] = 0;
      markDirty(0);
      markDirty(count - 1);
    }
  };
  $("v-rotate").onchange = (e) => { camera.autoRotate = e.target.checked; };
  $("replay-btn").onclick = () => { startReplay().catch(() => {}); };
  $("live-btn").onclick = stopReplay;
  $("play-btn").onclick = () => {
    if (replay.pos >= replay.to) seek(replay.from);
    replay.playing = !replay.playing;
    updateScrub();
  };
  $("speed").onchange = (e) => { replay.speed = Number(e.target.value); };
  $("scrub").oninput = (e) => {
    seek(replay.to - (REPLAY_S - Number(e.target.value)));
  };

  // -- start ----------------------------------------------------------------------------------
  if (gl) {
    try {
      initGl();
    } catch (err) {
      $("nogl").textContent = `WebGL2 setup failed: ${err.message}`;
      $("nogl").hidden = false;
    }
  }
  const synthetic = Number(params.get("synthetic") || 0);
  if (synthetic > 0) addSyntheticIsbns(synthetic);
  synthPerSecond = Number(params.get("pulse") || 0);
  if (params.get("rotate") === "0") window.__dbpulseSphere.setAutoRotate(false);
  follow();
  requestAnimationFrame(frame);
  window.__dbpulseSphere.ready = true;
})();
