// The official NATS JavaScript clients over the hub's WebSocket door.
// Usage: node ws_clients.mjs ws://127.0.0.1:PORT
// Prints one JSON line per check and exits 0 only if every check passed.
import WebSocket from "ws";
import { headers, wsconnect } from "@nats-io/nats-core";
import { jetstream, jetstreamManager, AckPolicy } from "@nats-io/jetstream";
import { Kvm } from "@nats-io/kv";

// Node 20 has no global WebSocket; browsers and Node 22+ do.
globalThis.WebSocket ??= WebSocket;

const url = process.argv[2];
const enc = new TextEncoder();
const dec = new TextDecoder();
let failed = 0;

async function check(name, fn) {
  try {
    const detail = await fn();
    console.log(JSON.stringify({ check: name, ok: true, detail }));
  } catch (err) {
    failed++;
    console.log(JSON.stringify({ check: name, ok: false, error: String(err?.stack ?? err) }));
  }
}

function assert(cond, msg) {
  if (!cond) throw new Error(msg);
}

const nc = await wsconnect({ servers: url, timeout: 5000 });

await check("pubsub", async () => {
  const sub = nc.subscribe("node.ps", { max: 3 });
  for (let i = 0; i < 3; i++) nc.publish("node.ps", enc.encode(`m${i}`));
  const got = [];
  for await (const m of sub) got.push(dec.decode(m.data));
  assert(got.join(",") === "m0,m1,m2", `got ${got}`);
  return got;
});

await check("request-reply", async () => {
  nc.subscribe("node.svc", { callback: (_err, m) => m.respond(enc.encode("re:" + dec.decode(m.data))) });
  const r = await nc.request("node.svc", enc.encode("q"), { timeout: 2000 });
  assert(dec.decode(r.data) === "re:q", "bad reply");
  return dec.decode(r.data);
});

await check("headers", async () => {
  const sub = nc.subscribe("node.h", { max: 1 });
  const h = headers();
  h.set("X-Node", "yes");
  nc.publish("node.h", enc.encode("with headers"), { headers: h });
  for await (const m of sub) {
    assert(m.headers?.get("X-Node") === "yes", "header lost");
    return m.headers.get("X-Node");
  }
});

await check("jetstream publish and consume", async () => {
  const jsm = await jetstreamManager(nc);
  await jsm.streams.add({ name: "NODEWS", subjects: ["nodews.>"] });
  const js = jetstream(nc);
  for (let i = 0; i < 5; i++) {
    const ack = await js.publish(`nodews.${i}`, enc.encode(`v${i}`));
    assert(ack.seq === i + 1, `seq ${ack.seq}`);
  }
  await jsm.consumers.add("NODEWS", { durable_name: "reader", ack_policy: AckPolicy.Explicit });
  const consumer = await js.consumers.get("NODEWS", "reader");
  const messages = await consumer.consume({ max_messages: 10 });
  const got = [];
  for await (const m of messages) {
    got.push(dec.decode(m.data));
    m.ack();
    if (got.length === 5) break;
  }
  assert(got.join(",") === "v0,v1,v2,v3,v4", `got ${got}`);
  return got;
});

await check("kv", async () => {
  const kvm = new Kvm(nc);
  const kv = await kvm.create("nodecfg");
  await kv.put("color", enc.encode("blue"));
  await kv.put("color", enc.encode("green"));
  const e = await kv.get("color");
  assert(dec.decode(e.value) === "green" && e.revision === 2, "bad kv entry");
  return { value: dec.decode(e.value), revision: e.revision };
});

await check("batched direct get", async () => {
  const jsm = await jetstreamManager(nc);
  await jsm.streams.add({ name: "NODEDG", subjects: ["nodedg.>"], allow_direct: true });
  const js = jetstream(nc);
  for (const [s, v] of [["a", "1"], ["b", "2"], ["a", "3"]]) {
    await js.publish(`nodedg.${s}`, enc.encode(v));
  }
  const batch = [];
  for await (const m of await jsm.direct.getBatch("NODEDG", { seq: 1, batch: 3 })) {
    batch.push(`${m.subject}=${dec.decode(m.data)}`);
  }
  assert(batch.join(",") === "nodedg.a=1,nodedg.b=2,nodedg.a=3", `batch ${batch}`);
  const last = [];
  for await (const m of await jsm.direct.getLastMessagesFor("NODEDG", {
    multi_last: ["nodedg.>"],
  })) {
    last.push(`${m.subject}=${dec.decode(m.data)}`);
  }
  assert(last.join(",") === "nodedg.b=2,nodedg.a=3", `multi_last ${last}`);
  return { batch, last };
});

await check("priority groups and pause", async () => {
  const jsm = await jetstreamManager(nc);
  await jsm.streams.add({ name: "NODEPG", subjects: ["nodepg.>"] });
  const js = jetstream(nc);
  for (let i = 0; i < 3; i++) await js.publish("nodepg.x", enc.encode(`p${i}`));
  await jsm.consumers.add("NODEPG", {
    durable_name: "over", ack_policy: AckPolicy.Explicit,
    priority_policy: "overflow", priority_groups: ["A"],
  });
  const consumer = await js.consumers.get("NODEPG", "over");
  const got = [];
  const iter = await consumer.fetch({ max_messages: 3, expires: 2000, group: "A", min_pending: 1 });
  for await (const m of iter) {
    got.push(dec.decode(m.data));
    m.ack();
  }
  assert(got.join(",") === "p0,p1,p2", `overflow ${got}`);
  const paused = await jsm.consumers.pause("NODEPG", "over", new Date(Date.now() + 60_000));
  assert(paused.paused === true, "not paused");
  const info = await jsm.consumers.info("NODEPG", "over");
  assert(info.paused === true && info.pause_remaining > 0, "info not paused");
  const resumed = await jsm.consumers.resume("NODEPG", "over");
  assert(resumed.paused === false, "not resumed");
  return { got, paused: paused.paused, resumed: resumed.paused };
});

await nc.drain();
process.exit(failed ? 1 : 0);
