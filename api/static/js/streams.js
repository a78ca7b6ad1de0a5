// Streams and consumers, a message browser, purge/delete with confirmation, a create form.
import { api, q, enc, session } from "./api.js";
import { h, fmtBytes, fmtNum, table, confirmAction, errorBox, pager, showPayload } from "./ui.js";

export function render(main, signal, [name]) {
  const c = session.caller;
  if (name) detail(main, signal, name);
  else if (c && c.auth && c.scope === null) everyAccount(main, signal);
  else list(main, signal);
}

const STREAM_COLUMNS = [
  { label: "Subjects", render: (s) => (s.config.subjects || []).join(", ") },
  { label: "Storage", render: (s) => s.config.storage },
  { label: "Messages", render: (s) => fmtNum(s.state.messages), num: true },
  { label: "Bytes", render: (s) => fmtBytes(s.state.bytes), num: true },
  { label: "First seq", render: (s) => fmtNum(s.state.first_seq), num: true },
  { label: "Last seq", render: (s) => fmtNum(s.state.last_seq), num: true },
  { label: "Consumers", render: (s) => fmtNum(s.state.consumer_count), num: true },
];

/** The system account's users: every account's streams, read-only (the stream routes
 * act in the caller's own account). */
function everyAccount(main, signal) {
  const out = h("div", { id: "streams" });
  let account = "";
  const form = h("form", { class: "inline", onsubmit: (ev) => {
    ev.preventDefault(); account = form.account.value.trim(); load(0);
  } }, h("label", {}, "Account", h("input", { name: "account", size: 12 })),
  h("button", { type: "submit" }, "Filter"));
  main.append(h("h1", {}, "Streams of every account"),
    h("p", { class: "muted" }, "Read-only: log in as a user of an account to browse, purge or create its streams."),
    form, out);
  async function load(offset) {
    try {
      const doc = await api("/v1/console/streams" + q({ offset, limit: 100, account }), { signal });
      out.replaceChildren(
        h("p", { class: "muted" }, h("span", { id: "stream-total" }, doc.total), " streams"),
        table([{ label: "Account", key: "account" }, { label: "Name", render: (s) => s.config.name },
          ...STREAM_COLUMNS], doc.streams,
        { rowAttrs: (s) => ({ dataset: { stream: s.config.name, account: s.account, messages: s.state.messages } }) }),
        pager(doc.offset, doc.limit, doc.total, load));
    } catch (err) { if (!signal.aborted) out.replaceChildren(errorBox(err)); }
  }
  load(0);
}

function list(main, signal) {
  const out = h("div", { id: "streams" });
  const note = h("div", { role: "status" });
  const form = h("form", { class: "inline", id: "create-stream", onsubmit: create },
    h("label", {}, "Name", h("input", { name: "name", required: true, pattern: "[^.*>\\s]+", size: 12 })),
    h("label", {}, "Subjects (comma separated)", h("input", { name: "subjects", size: 24 })),
    h("label", {}, "Storage", h("select", { name: "storage" }, h("option", {}, "file"), h("option", {}, "memory"))),
    h("label", {}, "Max messages", h("input", { name: "max_msgs", type: "number", min: -1, value: -1, size: 8 })),
    h("label", {}, "Max age (s)", h("input", { name: "max_age", type: "number", min: 0, value: 0, size: 8 })),
    h("button", { type: "submit", class: "primary" }, "Create stream"));
  main.append(h("h1", {}, "Streams"), out, h("h2", {}, "Create a stream"), form, note);

  async function create(ev) {
    ev.preventDefault();
    const subjects = form.subjects.value.split(",").map((s) => s.trim()).filter(Boolean);
    const body = { name: form.name.value.trim(), storage: form.storage.value,
      max_msgs: Number(form.max_msgs.value), max_age: Number(form.max_age.value) * 1e9 };
    if (subjects.length) body.subjects = subjects;
    try {
      await api("/v1/streams", { method: "POST", body });
      note.replaceChildren(h("p", {}, `Stream ${body.name} created.`));
      load(0);
    } catch (err) { note.replaceChildren(errorBox(err)); }
  }

  async function load(offset) {
    try {
      const doc = await api("/v1/streams" + q({ offset }), { signal });
      out.replaceChildren(
        h("p", { class: "muted" }, h("span", { id: "stream-total" }, doc.total), " streams"),
        table([
          { label: "Name", render: (s) => h("a", { href: `#/streams/${enc(s.config.name)}` }, s.config.name) },
          ...STREAM_COLUMNS,
        ], doc.streams, { rowAttrs: (s) => ({ dataset: { stream: s.config.name, messages: s.state.messages } }) }),
        pager(doc.offset, doc.limit, doc.total, load));
    } catch (err) { if (!signal.aborted) out.replaceChildren(errorBox(err)); }
  }
  load(0);
}

function detail(main, signal, name) {
  const info = h("div", { id: "stream-info" });
  const consumers = h("div", { id: "consumers" });
  const note = h("div", { role: "status", id: "stream-note" });
  const browser = h("div", { id: "messages" });
  const shown = h("div", { id: "message" });
  const path = `/v1/streams/${enc(name)}`;
  const purgeBtn = h("button", { type: "button", class: "danger", id: "purge", onclick: purge }, "Purge…");
  const deleteBtn = h("button", { type: "button", class: "danger", id: "delete", onclick: remove }, "Delete stream…");
  const form = h("form", { class: "inline", id: "browse", onsubmit: (ev) => { ev.preventDefault(); browse(); } },
    h("label", {}, "From sequence", h("input", { name: "seq", type: "number", min: 1, value: 1, size: 8 })),
    h("label", {}, "Subject filter", h("input", { name: "subject", size: 14, placeholder: "orders.>" })),
    h("label", {}, "From time", h("input", { name: "time", type: "datetime-local" })),
    h("label", {}, "Show as", h("select", { name: "mode" }, ["text", "json", "hex"].map((m) => h("option", {}, m)))),
    h("button", { type: "submit", class: "primary" }, "Show messages"));
  main.append(h("p", {}, h("a", { href: "#/streams" }, "← All streams")), h("h1", {}, `Stream ${name}`),
    info, h("div", { class: "toolbar" }, purgeBtn, deleteBtn), note,
    h("h2", {}, "Consumers"), consumers, h("h2", {}, "Messages"), form,
    h("div", { class: "split" }, browser, shown));

  async function loadInfo() {
    try {
      const s = await api(path, { signal });
      const st = s.state;
      info.replaceChildren(h("div", { class: "stats" },
        h("span", {}, "subjects ", h("b", {}, (s.config.subjects || []).join(", ") || "—")),
        h("span", {}, "messages ", h("b", { id: "msg-count" }, fmtNum(st.messages))),
        h("span", {}, "bytes ", h("b", {}, fmtBytes(st.bytes))),
        h("span", {}, "first ", h("b", { id: "first-seq" }, fmtNum(st.first_seq))),
        h("span", {}, "last ", h("b", { id: "last-seq" }, fmtNum(st.last_seq))),
        h("span", {}, "subjects stored ", h("b", {}, fmtNum(st.num_subjects ?? 0))),
        h("span", {}, "storage ", h("b", {}, s.config.storage))));
      info.dataset.messages = st.messages;
    } catch (err) { if (!signal.aborted) info.replaceChildren(errorBox(err)); }
  }

  async function loadConsumers(offset = 0) {
    try {
      const doc = await api(`${path}/consumers` + q({ offset }), { signal });
      consumers.replaceChildren(table([
        { label: "Name", key: "name" },
        { label: "Filter", render: (c) => c.config.filter_subject || (c.config.filter_subjects || []).join(", ") },
        { label: "Ack policy", render: (c) => c.config.ack_policy },
        { label: "Pending", key: "num_pending", num: true },
        { label: "Ack pending", key: "num_ack_pending", num: true },
        { label: "Redelivered", key: "num_redelivered", num: true },
        { label: "Waiting", key: "num_waiting", num: true },
        { label: "Delivered", render: (c) => fmtNum(c.delivered?.stream_seq), num: true },
        { label: "Ack floor", render: (c) => fmtNum(c.ack_floor?.stream_seq), num: true },
      ], doc.consumers, { rowAttrs: (c) => ({ dataset: { consumer: c.name } }) }),
      pager(doc.offset, doc.limit, doc.total, loadConsumers));
    } catch (err) { if (!signal.aborted) consumers.replaceChildren(errorBox(err)); }
  }

  async function browse() {
    const params = { limit: 50, subject: form.subject.value.trim() };
    if (form.time.value) params.start_time = new Date(form.time.value).toISOString();
    else params.start_seq = form.seq.value || 1;
    try {
      const doc = await api(`${path}/messages` + q(params), { signal });
      browser.replaceChildren(table([
        { label: "Seq", key: "seq", num: true },
        { label: "Subject", key: "subject" },
        { label: "Time", render: (m) => (m.time || "").replace("T", " ").slice(0, 23) },
        { label: "", render: (m) => h("button", { type: "button", onclick: () => show(m) }, "View") },
      ], doc.messages, { rowAttrs: (m) => ({ dataset: { seq: m.seq } }) }));
      if (doc.messages.length) show(doc.messages[0]);
      else shown.replaceChildren(h("p", { class: "muted" }, "No messages there."));
    } catch (err) { browser.replaceChildren(errorBox(err)); }
  }

  function show(m) {
    const mode = form.mode.value;
    shown.replaceChildren(h("div", {}, h("h3", {}, `#${m.seq} ${m.subject}`),
      m.headers ? h("pre", { class: "headers" }, Object.entries(m.headers).map(([k, v]) => `${k}: ${v}`).join("\n")) : null,
      h("pre", { class: "payload", dataset: { mode } }, showPayload(m, mode))));
  }

  async function purge() {
    const filter = form.subject.value.trim();
    const what = filter ? `the messages on ${filter} of stream ${name}` : `every message of stream ${name}`;
    if (!await confirmAction(`Purge ${what}? This cannot be undone.`)) {
      note.replaceChildren(h("p", { class: "muted" }, "Purge cancelled."));
      return;
    }
    try {
      const r = await api(`${path}/purge`, { method: "POST", body: filter ? { filter } : {} });
      note.replaceChildren(h("p", {}, `Purged ${fmtNum(r.purged)} messages.`));
      loadInfo(); loadConsumers(); browse();
    } catch (err) { note.replaceChildren(errorBox(err)); }
  }

  async function remove() {
    if (!await confirmAction(`Delete stream ${name} with all its messages and consumers?`)) return;
    try {
      await api(path, { method: "DELETE" });
      location.hash = "#/streams";
    } catch (err) { note.replaceChildren(errorBox(err)); }
  }
  loadInfo();
  loadConsumers();
  browse();
}
