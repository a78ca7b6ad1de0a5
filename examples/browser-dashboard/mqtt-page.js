// MQTT 3.1.1 over WebSocket on the hub's WebSocket listener (path /mqtt), with mqtt.js:
// the same readings the NATS page shows, as MQTT topics.
import mqtt from "mqtt";

const TOPIC = "sensors/+/temperature";
const $ = (id) => document.getElementById(id);
const params = new URLSearchParams(location.search);
const base = params.get("server") ?? `ws://${location.hostname || "localhost"}:8080`;
const url = new URL("/mqtt", base).href;
const decoder = new TextDecoder();

function status(text, ok = false) {
  $("status").textContent = text;
  $("status").className = ok ? "ok" : "bad";
}

function describe(topic, payload) {
  const text = decoder.decode(payload);
  try {
    const value = JSON.parse(text);
    const celsius = typeof value === "number" ? value : value?.celsius;
    if (typeof celsius === "number") return `${topic}: ${celsius.toFixed(1)} °C`;
  } catch {
    // not JSON: show it as it came
  }
  return `${topic}: ${text}`;
}

$("server").textContent = url;
$("other").search = location.search;
status("connecting…");
const client = mqtt.connect(url, {
  protocolVersion: 4,
  clientId: `dashboard-${Math.random().toString(16).slice(2, 10)}`,
  reconnectPeriod: 2000,
  connectTimeout: 5000,
});
client.on("connect", () => {
  client.subscribe(TOPIC, { qos: 1 }, (err, granted) => {
    if (err || granted?.[0]?.qos === 128) {
      return status(`subscribe failed: ${err?.message ?? "refused"}`);
    }
    status("connected", true);
  });
});
client.on("message", (topic, payload) => {
  $("latest").textContent = describe(topic, payload);
});
client.on("reconnect", () => status("reconnecting…"));
client.on("offline", () => status("offline"));
client.on("error", (err) => status(`error: ${err.message}`));
