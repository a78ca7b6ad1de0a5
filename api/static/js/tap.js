// Live tap: watch a subject (or MQTT topic filter) over SSE, whichever door publishes;
// publish a test message on a subject or MQTT topic.
import { api, events, enc } from "./api.js";
import { h, errorBox, showPayload } from "./ui.js";

const KEEP = 500;

/** The NATS subject of an MQTT topic or filter, as the MQTT door maps them. */
export function topicToSubject(topic) {
  let out = "";
  for (let i = 0; i < topic.length; i++) {
    const ch = topic[i];
    if (ch === "/") {
      if (i === 0 || out.endsWith(".")) out += "/.";
      else if (i === topic.length - 1 || topic[i + 1] === "/") out += "./";
      else out += ".";
    } else if (ch === ".") out += "//";
    else if (ch === "+") out += "*";
    else if (ch === "#") out += ">";
    else out += ch;
  }
  return out.replace(/\.>$/, ".>").replace(/^>$/, ">");
}

export function render(main, signal) {
  let watching = null;
  const log = h("div", { id: "tap-log", class: "tap-log scroll", "aria-live": "off" });
  const count = h("span", { id: "tap-count" }, "0");
  const status = h("p", { class: "muted", id: "tap-status", role: "status" }, "Not watching.");
  const kind = () => h("select", { name: "kind" }, h("option", { value: "subject" }, "NATS subject"),
    h("option", { value: "topic" }, "MQTT topic"));
  const watch = h("form", { class: "inline", id: "tap-form", onsubmit: start },
    h("label", {}, "Watch", h("input", { name: "subject", required: true, value: ">", size: 22 })),
    h("label", {}, "as", kind()),
    h("button", { type: "submit", class: "primary" }, "Watch"),
    h("button", { type: "button", onclick: stop }, "Stop"));
  const pub = h("form", { class: "inline", id: "publish-form", onsubmit: publish },
    h("label", {}, "Subject or topic", h("input", { name: "subject", required: true, size: 20 })),
    h("label", {}, "as", kind()),
    h("label", {}, "Payload", h("input", { name: "payload", size: 28 })),
    h("button", { type: "submit" }, "Publish"));
  const pubNote = h("div", { role: "status", id: "publish-note" });
  main.append(h("h1", {}, "Live tap"), watch, status,
    h("p", { class: "muted" }, count, " messages"), log,
    h("h2", {}, "Publish a test message"), pub, pubNote);

  const subjectOf = (form) => (form.kind.value === "topic"
    ? topicToSubject(form.subject.value.trim()) : form.subject.value.trim());

  function stop() {
    if (watching) watching.abort();
    watching = null;
    status.textContent = "Not watching.";
  }

  function start(ev) {
    ev.preventDefault();
    stop();
    const subject = subjectOf(watch);
    watching = new AbortController();
    signal.addEventListener("abort", stop, { once: true });
    let n = 0;
    count.textContent = "0";
    log.replaceChildren();
    events(`/v1/subscribe/${enc(subject)}?heartbeat=10`, (name, data) => {
      if (name === "open") { status.textContent = `Watching ${subject}`; return; }
      if (name === "error") { status.replaceChildren(errorBox(new Error(data.description))); return; }
      n++;
      count.textContent = String(n);
      const origin = data.headers?.["Nmqtt-Pub"] !== undefined ? "MQTT" : "";
      log.prepend(h("div", { class: "tap-msg", dataset: { subject: data.subject } },
        h("b", {}, data.subject), " ", h("span", { class: "muted" }, new Date().toLocaleTimeString(), origin ? ` · ${origin}` : ""),
        h("pre", {}, showPayload(data, "text"))));
      while (log.children.length > KEEP) log.lastChild.remove();
    }, watching.signal).catch((err) => {
      if (err.name !== "AbortError") status.replaceChildren(errorBox(err));
    });
  }

  async function publish(ev) {
    ev.preventDefault();
    const subject = subjectOf(pub);
    try {
      const r = await api(`/v1/publish/${enc(subject)}`, { method: "POST", body: pub.payload.value });
      pubNote.replaceChildren(h("p", {}, r && r.seq ? `Stored in ${r.stream} as #${r.seq}.` : `Published on ${subject}.`));
    } catch (err) { pubNote.replaceChildren(errorBox(err)); }
  }
}
