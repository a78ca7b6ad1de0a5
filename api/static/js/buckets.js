// KV buckets (keys, history, a live watch) and object store buckets (objects, download).
import { api, events, q, enc } from "./api.js";
import { h, fmtBytes, fmtNum, table, errorBox } from "./ui.js";

const MAX_ROWS = 1000;

const b64text = (m) => (m.encoding === "base64"
  ? new TextDecoder().decode(Uint8Array.from(atob(m.data || ""), (c) => c.charCodeAt(0))) : m.data);

export const kv = { render(main, signal, [bucket]) {
  const out = h("div", { id: "kv" });
  main.append(h("h1", {}, bucket ? `KV bucket ${bucket}` : "KV buckets"), out);
  if (bucket) kvBucket(out, signal, bucket); else kvList(out, signal);
} };

async function kvList(out, signal) {
  try {
    const names = await api("/v1/kv", { signal });
    const rows = await Promise.all(names.slice(0, MAX_ROWS).map((b) => api(`/v1/kv/${enc(b)}`, { signal })));
    out.replaceChildren(table([
      { label: "Bucket", render: (b) => h("a", { href: `#/kv/${enc(b.bucket)}` }, b.bucket) },
      { label: "Values", key: "values", num: true },
      { label: "History", key: "history", num: true },
      { label: "Bytes", render: (b) => fmtBytes(b.bytes), num: true },
    ], rows, { rowAttrs: (b) => ({ dataset: { bucket: b.bucket } }) }));
  } catch (err) { if (!signal.aborted) out.replaceChildren(errorBox(err)); }
}

function kvBucket(out, signal, bucket) {
  const keys = h("div", { id: "kv-keys" });
  const history = h("div", { id: "kv-history" });
  const watchLog = h("ul", { id: "kv-watch", "aria-live": "polite" });
  out.append(h("p", {}, h("a", { href: "#/kv" }, "← All buckets")),
    h("div", { class: "split" }, h("div", {}, h("h2", {}, "Keys"), keys), h("div", {}, h("h2", {}, "History"), history)),
    h("h2", {}, "Live changes"), watchLog);

  async function loadKeys() {
    try {
      const doc = await api(`/v1/kv/${enc(bucket)}/keys` + q({ limit: MAX_ROWS }), { signal });
      const list = doc.keys;
      keys.replaceChildren(
        h("p", { class: "muted" }, doc.keys.length < MAX_ROWS ? `${fmtNum(doc.keys.length)} keys` : `the first ${fmtNum(MAX_ROWS)} keys`),
        table([{ label: "Key", render: (k) => h("button", { type: "button", onclick: () => showHistory(k) }, k) }],
          list, { rowAttrs: (k) => ({ dataset: { key: k } }) }));
    } catch (err) { if (!signal.aborted) keys.replaceChildren(errorBox(err)); }
  }

  async function showHistory(key) {
    try {
      const doc = await api(`/v1/kv/${enc(bucket)}/history/${enc(key)}`, { signal });
      history.replaceChildren(h("h3", {}, key), table([
        { label: "Revision", key: "revision", num: true },
        { label: "Operation", key: "operation" },
        { label: "Value", render: (e) => h("code", {}, b64text({ encoding: e.encoding, data: e.value })) },
        { label: "Created", key: "created" },
      ], doc.entries, { rowAttrs: (e) => ({ dataset: { revision: e.revision } }) }));
    } catch (err) { history.replaceChildren(errorBox(err)); }
  }

  loadKeys();
  events(`/v1/subscribe/${enc(`$KV.${bucket}.>`)}?heartbeat=10`, (name, m) => {
    if (name === "open") watchLog.dataset.open = "1";
    if (name !== "message") return;
    const key = m.subject.slice(`$KV.${bucket}.`.length);
    const op = m.headers?.["KV-Operation"] || "PUT";
    watchLog.prepend(h("li", { dataset: { key } }, `${new Date().toLocaleTimeString()} ${op} ${key} = ${b64text(m)}`));
    while (watchLog.children.length > 200) watchLog.lastChild.remove();
    loadKeys();
  }, signal).catch((err) => { if (err.name !== "AbortError") watchLog.replaceChildren(errorBox(err)); });
}

export const objects = { render(main, signal, [bucket]) {
  const out = h("div", { id: "objects" });
  main.append(h("h1", {}, bucket ? `Object bucket ${bucket}` : "Object buckets"), out);
  if (bucket) objBucket(out, signal, bucket); else objList(out, signal);
} };

async function objList(out, signal) {
  try {
    const doc = await api("/v1/streams" + q({ subject: "$O.>" }), { signal });
    const rows = doc.streams.filter((s) => s.config.name.startsWith("OBJ_"));
    out.replaceChildren(table([
      { label: "Bucket", render: (s) => h("a", { href: `#/objects/${enc(s.config.name.slice(4))}` }, s.config.name.slice(4)) },
      { label: "Bytes", render: (s) => fmtBytes(s.state.bytes), num: true },
    ], rows, { rowAttrs: (s) => ({ dataset: { bucket: s.config.name.slice(4) } }) }));
  } catch (err) { if (!signal.aborted) out.replaceChildren(errorBox(err)); }
}

async function objBucket(out, signal, bucket) {
  out.append(h("p", {}, h("a", { href: "#/objects" }, "← All buckets")));
  try {
    const doc = await api(`/v1/objects/${enc(bucket)}` + q({ limit: MAX_ROWS }), { signal });
    out.append(table([
      { label: "Name", key: "name" },
      { label: "Size", render: (o) => fmtBytes(o.size), num: true },
      { label: "Modified", key: "mtime" },
      { label: "", render: (o) => h("button", { type: "button", onclick: () => download(bucket, o.name) }, "Download") },
    ], doc.objects, { rowAttrs: (o) => ({ dataset: { object: o.name, size: o.size } }) }));
  } catch (err) { if (!signal.aborted) out.append(errorBox(err)); }
}

async function download(bucket, name) {
  // Through fetch, so the download carries the logged-in user's credentials.
  const res = await api(`/v1/objects/${enc(bucket)}/${enc(name)}`, { raw: true });
  const url = URL.createObjectURL(await res.blob());
  const a = h("a", { href: url, download: name.split("/").pop() });
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10_000);
}
