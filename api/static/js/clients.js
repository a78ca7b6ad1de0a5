// Clients: every door's connections in one server-paged table, and MQTT sessions.
import { api, q, session } from "./api.js";
import { h, fmtBytes, fmtNum, table, confirmAction, errorBox, pager } from "./ui.js";

const LIMIT = 50;

export function render(main, signal) {
  const state = { offset: 0, sort: "cid", door: "", account: "", user: "" };
  const form = h("form", { class: "inline", id: "client-filter", onsubmit: (ev) => {
    ev.preventDefault();
    Object.assign(state, { offset: 0, door: form.door.value, account: form.account.value.trim(),
      user: form.user.value.trim() });
    load();
  } },
    h("label", {}, "Door", h("select", { name: "door" },
      ["", "nats", "websocket", "mqtt", "http", "leafnode"].map((d) => h("option", { value: d }, d || "all")))),
    h("label", {}, "Account", h("input", { name: "account", size: 10 })),
    h("label", {}, "User", h("input", { name: "user", size: 10 })),
    h("button", { type: "submit" }, "Filter"));
  const out = h("div", { id: "clients" });
  const sessions = h("div", { id: "sessions" });
  main.append(h("h1", {}, "Clients"), form, out, h("h2", {}, "MQTT sessions"), sessions);

  const columns = [
    { label: "CID", key: "cid", num: true, sort: "cid" },
    { label: "Door", key: "door" },
    { label: "Account", key: "account" },
    { label: "User", key: "authorized_user" },
    { label: "Name", key: "name", render: (c) => c.name || c.mqtt_client || "" },
    { label: "Address", render: (c) => (c.ip ? `${c.ip}:${c.port}` : "") },
    { label: "Uptime", key: "uptime", sort: "uptime" },
    { label: "Subs", key: "subscriptions", num: true, sort: "subs" },
    { label: "Pending", render: (c) => fmtBytes(c.pending_bytes), num: true, sort: "pending" },
    { label: "Msgs in", key: "in_msgs", num: true, sort: "msgs_from" },
    { label: "Msgs out", key: "out_msgs", num: true, sort: "msgs_to" },
    { label: "Bytes in", render: (c) => fmtBytes(c.in_bytes), num: true, sort: "bytes_from" },
    { label: "Bytes out", render: (c) => fmtBytes(c.out_bytes), num: true, sort: "bytes_to" },
  ];
  // Disconnecting is for the system account's users (or a hub without authorization).
  if (!session.caller || session.caller.scope === null)
    columns.push({ label: "", render: (c) => h("button", { type: "button", class: "danger",
      "aria-label": `Disconnect client ${c.cid}`, onclick: () => kick(c) }, "Disconnect") });

  async function kick(c) {
    if (!await confirmAction(`Disconnect client ${c.cid} (${c.door}, ${c.name || c.mqtt_client || c.ip})?`)) return;
    try { await api(`/v1/console/clients/${c.cid}/disconnect`, { method: "POST" }); }
    catch (err) { out.prepend(errorBox(err)); return; }
    load();
  }

  async function load() {
    try {
      const doc = await api("/v1/console/clients" + q({ offset: state.offset, limit: LIMIT,
        sort: state.sort, door: state.door, account: state.account, user: state.user }), { signal });
      out.replaceChildren(
        h("p", { class: "muted" }, h("span", { id: "client-total" }, doc.total), " connections"),
        table(columns, doc.connections, { sorted: state.sort,
          onSort: (s) => { state.sort = s; state.offset = 0; load(); },
          rowAttrs: (c) => ({ dataset: { cid: c.cid, door: c.door } }) }),
        pager(doc.offset, LIMIT, doc.total, (o) => { state.offset = o; load(); }));
    } catch (err) { if (!signal.aborted) out.replaceChildren(errorBox(err)); }
  }

  async function loadSessions(offset = 0) {
    try {
      const doc = await api("/v1/console/mqtt/sessions" + q({ offset, limit: LIMIT }), { signal });
      // Sessions only the store holds (offline since before a restart) are counted up to a
      // cap: the total is then a lower bound.
      sessions.replaceChildren(
        h("p", { class: "muted" }, h("span", { id: "session-total" },
          fmtNum(doc.total) + (doc.total_capped ? "+" : "")), " sessions"),
        table([
          { label: "Client id", key: "client_id" },
          { label: "Account", key: "account" },
          { label: "User", key: "user" },
          { label: "State", render: (s) => (s.connected ? "connected" : s.stored_only ? "offline (stored)" : "offline") },
          { label: "Persistent", render: (s) => (s.persistent ? "yes" : "no") },
          { label: "Subscriptions (QoS)", render: (s) => s.subscriptions.map((x) => `${x.filter} (${x.qos})`).join(", ") },
          { label: "Queued", key: "queued", num: true, render: (s) => (s.queued === null ? "?" : fmtNum(s.queued)) },
          { label: "Expires", key: "expires", render: (s) => (s.expires ? new Date(s.expires * 1000).toISOString().slice(0, 19).replace("T", " ") : "") },
          { label: "Will", render: (s) => (s.will ? `${s.will.topic} (QoS ${s.will.qos})` : "") },
        ], doc.sessions, { rowAttrs: (s) => ({ dataset: { clientId: s.client_id } }) }),
        pager(doc.offset, LIMIT, doc.total, loadSessions));
    } catch (err) { if (!signal.aborted) sessions.replaceChildren(errorBox(err)); }
  }
  load();
  loadSessions();
}
