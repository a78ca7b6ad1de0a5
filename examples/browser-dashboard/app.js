// Live temperatures from `sensors.*.temperature` over the hub's WebSocket door, kept for an
// hour in the SENSORS stream so the chart can be rebuilt after a reload.
import { load } from "./cjs.js";

const $ = (id) => document.getElementById(id);

function status(text, ok = false) {
  $("status").textContent = text;
  $("status").className = ok ? "ok" : "bad";
}

const [{ wsconnect, nanos }, { jetstream, jetstreamManager, StorageType }] = await Promise.all(
  [load("@nats-io/nats-core"), load("@nats-io/jetstream")],
).catch((err) => {
  status(`cannot load the NATS client (npm ci?): ${err.message}`);
  throw err;
});

const SUBJECT = "sensors.*.temperature";
const HOUR = 60 * 60 * 1000;
const MAX_POINTS = 600;
const COLORS = ["#e4572e", "#2e86ab", "#76b041", "#a846a0", "#f3a712", "#29335c"];

const params = new URLSearchParams(location.search);
const server = params.get("server") ?? `ws://${location.hostname || "localhost"}:8080`;
const series = new Map(); // room -> [{ t, c }]
const decoder = new TextDecoder();

// A reading is JSON ({"room", "celsius", "ts"}) or a bare number; the room defaults to
// the subject's middle token.
function reading(msg, fallbackTime = Date.now()) {
  const room = msg.subject.split(".")[1];
  const text = decoder.decode(msg.data);
  let value;
  try {
    value = JSON.parse(text);
  } catch {
    return null;
  }
  if (typeof value === "number") return { room, c: value, t: fallbackTime };
  if (typeof value?.celsius !== "number") return null;
  return { room: value.room ?? room, c: value.celsius, t: value.ts ?? fallbackTime };
}

function add(r) {
  if (!r) return;
  const points = series.get(r.room) ?? [];
  points.push({ t: r.t, c: r.c });
  if (points.length > MAX_POINTS) points.shift();
  series.set(r.room, points);
}

function draw() {
  const canvas = $("chart");
  const ctx = canvas.getContext("2d");
  const { width: w, height: h } = canvas;
  const pad = 36;
  ctx.fillStyle = "#fff";
  ctx.fillRect(0, 0, w, h);
  const all = [...series.values()].flat();
  if (!all.length) return;
  const t0 = Math.min(...all.map((p) => p.t));
  const t1 = Math.max(...all.map((p) => p.t), t0 + 1);
  const lo = Math.floor(Math.min(...all.map((p) => p.c)) - 0.5);
  const hi = Math.ceil(Math.max(...all.map((p) => p.c)) + 0.5);
  const x = (t) => pad + ((t - t0) / (t1 - t0)) * (w - 2 * pad);
  const y = (c) => h - pad - ((c - lo) / (hi - lo)) * (h - 2 * pad);
  ctx.strokeStyle = "#ccc";
  ctx.strokeRect(pad, pad, w - 2 * pad, h - 2 * pad);
  ctx.fillStyle = "#555";
  ctx.font = "12px sans-serif";
  ctx.fillText(`${hi} °C`, 2, pad + 4);
  ctx.fillText(`${lo} °C`, 2, h - pad + 4);
  ctx.fillText(new Date(t0).toLocaleTimeString(), pad, h - 12);
  ctx.fillText(new Date(t1).toLocaleTimeString(), w - pad - 60, h - 12);
  [...series.entries()].forEach(([room, points], i) => {
    const color = COLORS[i % COLORS.length];
    ctx.strokeStyle = ctx.fillStyle = color;
    ctx.lineWidth = 2;
    ctx.beginPath();
    points.forEach((p, j) => (j ? ctx.lineTo(x(p.t), y(p.c)) : ctx.moveTo(x(p.t), y(p.c))));
    ctx.stroke();
    for (const p of points) ctx.fillRect(x(p.t) - 2, y(p.c) - 2, 4, 4);
    ctx.fillText(room, w - pad - 80, pad + 16 + 16 * i);
  });
}

// Create SENSORS on first use; an existing stream (even with other limits) is kept.
async function ensureStream(nc) {
  const jsm = await jetstreamManager(nc);
  try {
    await jsm.streams.add({
      name: "SENSORS", subjects: ["sensors.>"], max_age: nanos(HOUR), storage: StorageType.File,
    });
  } catch (err) {
    if (!/already in use/i.test(err.message)) throw err;
  }
}

// Rebuild the chart from the last hour of the stream with an ordered consumer.
async function replay(nc) {
  const since = new Date(Date.now() - HOUR).toISOString();
  const consumer = await jetstream(nc).consumers.get("SENSORS", {
    filter_subjects: SUBJECT, opt_start_time: since,
  });
  series.clear();
  let count = 0;
  for (;;) {
    const batch = await consumer.fetch({ max_messages: 500, expires: 1000 });
    let pending = 0;
    let got = 0;
    for await (const m of batch) {
      add(reading(m, m.info.timestampNanos / 1e6));
      pending = m.info.pending;
      got++;
    }
    count += got;
    if (!got || !pending) break;
  }
  $("replayed").textContent = String(count);
  draw();
}

async function main() {
  $("server").textContent = server;
  $("other").search = location.search;
  status("connecting…");
  const nc = await wsconnect({ servers: server, timeout: 5000, maxReconnectAttempts: -1 });
  (async () => {
    for await (const s of nc.status()) {
      if (s.type === "disconnect") status("disconnected, retrying…");
      if (s.type === "reconnect") status("connected", true);
    }
  })();
  nc.closed().then((err) => status(err ? `closed: ${err.message}` : "closed"));
  await ensureStream(nc);
  nc.subscribe(SUBJECT, {
    callback: (err, msg) => {
      if (err) return status(`error: ${err.message}`);
      const r = reading(msg);
      if (!r) return;
      add(r);
      $("latest").textContent = `${r.room}: ${r.c.toFixed(1)} °C`;
      draw();
    },
  });
  await nc.flush();
  $("replay").disabled = false;
  $("replay").onclick = () => {
    $("replayed").textContent = "…";
    replay(nc).catch((err) => status(`replay failed: ${err.message}`));
  };
  status("connected", true);
}

main().catch((err) => status(`error: ${err.message}`));
