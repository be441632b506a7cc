// realtime_fer live page: one WebSocket, binary views [u32 header length][JSON header][JPEG].
// The newest view always wins: views that arrive while one is being decoded replace each
// other, so a slow page skips frames instead of falling behind.
(function () {
  "use strict";
  const EMOTIONS_ORDER = ["anger", "contempt", "disgust", "fear", "happy", "neutral", "sad", "surprise"];
  const params = new URLSearchParams(location.search);
  const canvas = document.getElementById("video");
  const ctx = canvas.getContext("2d");
  const facesEl = document.getElementById("faces");
  const waiting = document.getElementById("waiting");
  const select = document.getElementById("stream");
  const stateEl = document.getElementById("state");
  const noteEl = document.getElementById("note");
  const stats = window.ferStats = {
    opened: performance.now(), firstFrameMs: null, frames: 0, views: 0, latencies: [], sentLatencies: [], p95: null, median: null,
    stream: params.get("stream") || null, lastFrame: null,
  };
  let socket = null, pending = null, busy = false, retry = 500, lastImage = null;
  const drawn = [];

  function wsUrl() {
    const q = new URLSearchParams();
    if (params.get("token")) q.set("token", params.get("token"));
    if (stats.stream) q.set("stream", stats.stream);
    return (location.protocol === "https:" ? "wss://" : "ws://") + location.host + location.pathname.replace(/[^/]*$/, "") + "ws?" + q;
  }

  function connect() {
    socket = new WebSocket(wsUrl());
    socket.binaryType = "arraybuffer";
    socket.onopen = () => { retry = 500; setState("connected", ""); };
    socket.onmessage = (ev) => { pending = ev.data; if (!busy) drain(); };
    socket.onclose = () => { setState("disconnected", "page lost the server; retrying"); setTimeout(connect, retry); retry = Math.min(retry * 2, 8000); };
  }

  async function drain() {
    busy = true;
    try {
      while (pending) {
        const buf = pending; pending = null;
        await show(buf);
      }
    } catch (err) { console.error(err); }
    busy = false;
  }

  async function show(buf) {
    const n = new DataView(buf).getUint32(0);
    const header = JSON.parse(new TextDecoder().decode(new Uint8Array(buf, 4, n)));
    const jpeg = new Uint8Array(buf, 4 + n);
    stats.views++;
    streams(header.streams, header.stream);
    if (jpeg.length) {
      const image = await createImageBitmap(new Blob([jpeg], { type: "image/jpeg" }));
      if (lastImage) lastImage.close();
      lastImage = image;
    }
    const [w, h] = header.image_size || (lastImage ? [lastImage.width, lastImage.height] : [canvas.width, canvas.height]);
    if (canvas.width !== w || canvas.height !== h) { canvas.width = w; canvas.height = h; }
    if (lastImage) ctx.drawImage(lastImage, 0, 0, w, h); else { ctx.fillStyle = "#000"; ctx.fillRect(0, 0, w, h); }
    for (const face of header.faces) drawFace(face, w);
    faces(header.faces, w, h);
    status(header.status || {});
    if (jpeg.length && header.fresh === false) {
      waiting.hidden = true;
    } else if (jpeg.length) {
      waiting.hidden = true;
      stats.frames++;
      stats.lastFrame = header.frame;
      if (stats.firstFrameMs === null) stats.firstFrameMs = performance.now() - stats.opened;
      latency(Date.now() / 1000 - header.t_capture);
      stats.sentLatencies.push(1000 * (header.t_sent - header.t_capture));
      if (stats.sentLatencies.length > 300) stats.sentLatencies.shift();
      drawn.push(performance.now());
      while (drawn.length && drawn[0] < performance.now() - 2000) drawn.shift();
      stats.pageFps = drawn.length > 1 ? 1000 * (drawn.length - 1) / (drawn[drawn.length - 1] - drawn[0]) : null;
      if (stats.pageFps) document.getElementById("pagefps").textContent = stats.pageFps.toFixed(1);
      noteEl.textContent = "";
    } else if (!lastImage && header.faces.length) {
      waiting.hidden = true;
      noteEl.textContent = "The recognizer publishes no frame images: faces are drawn without video (start it with `realtime-fer run --publish-frames`).";
    }
    canvas.dataset.frame = header.frame === undefined ? "" : String(header.frame);
  }

  function drawFace(face, w) {
    const [x0, y0, x1, y1] = face.bbox;
    const unit = Math.max(2, w / 320);
    if (face.points) {
      ctx.fillStyle = "rgba(255,255,255,0.35)";
      for (let i = 0; i < face.points.length; i += 2) ctx.fillRect(face.points[i], face.points[i + 1], unit / 2, unit / 2);
    }
    const top = Math.max(1e-9, ...face.drivers.map((d) => Math.abs(d.weight)));
    for (const d of face.drivers) {
      if (d.x === undefined) continue;
      const r = unit * (2 + 6 * Math.sqrt(Math.abs(d.weight) / top));
      ctx.beginPath(); ctx.arc(d.x, d.y, r, 0, 2 * Math.PI);
      ctx.fillStyle = d.weight >= 0 ? "rgba(52,199,89,0.75)" : "rgba(255,69,58,0.75)";
      ctx.fill(); ctx.lineWidth = unit / 2; ctx.strokeStyle = "#000"; ctx.stroke();
    }
  }

  function faces(list, w, h) {
    const keep = new Set();
    for (const face of list) {
      const id = String(face.face);
      keep.add(id);
      let el = facesEl.querySelector(`.face[data-face-id="${id}"]`);
      if (!el) {
        el = document.createElement("div");
        el.className = "face";
        el.dataset.faceId = id;
        el.setAttribute("role", "group");
        el.innerHTML = '<div class="label"><span class="emotion"></span> <span class="p"></span></div><div class="bars"></div>';
        facesEl.appendChild(el);
      }
      const [x0, y0, x1, y1] = clampBox(face.bbox, w, h);
      el.style.left = (100 * x0 / w) + "%"; el.style.top = (100 * y0 / h) + "%";
      el.style.width = (100 * (x1 - x0) / w) + "%"; el.style.height = (100 * (y1 - y0) / h) + "%";
      el.classList.toggle("flip", x1 / w > 0.7);
      el.dataset.top = face.top;
      el.dataset.frame = String(face.frame);
      const p = face.smoothed[face.top];
      el.querySelector(".emotion").textContent = face.top;
      el.querySelector(".p").textContent = p === undefined ? "" : Math.round(100 * p) + "%" + (face.partial ? " (partial)" : "");
      el.setAttribute("aria-label", `face ${id}: ${face.top}`);
      const names = Object.keys(face.smoothed).sort((a, b) => EMOTIONS_ORDER.indexOf(a) - EMOTIONS_ORDER.indexOf(b));
      let html = "";
      for (const name of names) {
        const v = face.smoothed[name];
        html += `<div class="bar${name === face.top ? " top" : ""}" data-emotion="${name}"><span>${name}</span>` +
          `<span class="track"><span class="fill" style="width:${(100 * v).toFixed(1)}%"></span></span><span class="v">${Math.round(100 * v)}</span></div>`;
      }
      if (face.valence !== undefined) {
        html += `<p class="affect" data-valence="${face.valence}" data-arousal="${face.arousal}">valence ${signed(face.valence)} · arousal ${signed(face.arousal)}</p>`;
      }
      if (face.drivers.length) {
        html += '<ul class="drivers">';
        for (const d of face.drivers) {
          html += `<li class="${d.weight >= 0 ? "pos" : "neg"}" data-kind="${d.kind}">${d.weight >= 0 ? "+" : "−"}${Math.abs(d.weight).toFixed(2)} ${escapeHtml(d.name)}</li>`;
        }
        html += "</ul>";
      }
      el.querySelector(".bars").innerHTML = html;
    }
    for (const el of Array.from(facesEl.children)) if (!keep.has(el.dataset.faceId)) el.remove();
  }

  function status(s) {
    const state = s.state || (s.event ? "running" : "connected");
    const text = { no_face: "no face", source_lost: "source lost", reconnecting: "reconnecting", ended: "ended", started: "started", recovered: "running", running: "running" }[state] || state;
    setState(state, text + (s.detail ? ` – ${s.detail}` : ""));
    if (s.fps !== undefined) document.getElementById("fps").textContent = Number(s.fps).toFixed(1);
    if (s.dropped !== undefined) document.getElementById("dropped").textContent = String(s.dropped);
  }

  function setState(state, text) { stateEl.dataset.state = state; stateEl.textContent = text || state; }

  function latency(seconds) {
    const l = stats.latencies;
    l.push(seconds * 1000);
    if (l.length > 300) l.shift();
    const sorted = l.slice().sort((a, b) => a - b);
    stats.median = sorted[Math.floor(0.5 * (sorted.length - 1))];
    stats.p95 = sorted[Math.floor(0.95 * (sorted.length - 1))];
    document.getElementById("latency").textContent = `${stats.median.toFixed(0)} ms (p95 ${stats.p95.toFixed(0)})`;
  }

  function streams(ids, current) {
    if (!ids) return;
    if (!stats.stream) stats.stream = current;
    const have = Array.from(select.options).map((o) => o.value).join(",");
    if (have !== ids.join(",")) {
      select.innerHTML = ids.map((id) => `<option value="${escapeHtml(id)}">${escapeHtml(id)}</option>`).join("");
    }
    select.value = current;
  }

  select.addEventListener("change", () => {
    stats.stream = select.value;
    facesEl.innerHTML = "";
    if (socket && socket.readyState === WebSocket.OPEN) socket.send(JSON.stringify({ stream: select.value }));
    const q = new URLSearchParams(location.search); q.set("stream", select.value);
    history.replaceState(null, "", "?" + q);
  });

  function clampBox(b, w, h) {  // a face at the frame's edge: its box stays inside the picture
    return [Math.max(0, b[0]), Math.max(0, b[1]), Math.min(w, b[2]), Math.min(h, b[3])];
  }

  function signed(v) { return (v >= 0 ? "+" : "−") + Math.abs(v).toFixed(2); }

  function escapeHtml(s) { return String(s).replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c])); }

  connect();
})();
