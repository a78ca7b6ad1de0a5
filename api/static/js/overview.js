// Overview: each door's connections and message rates as live charts (5 minutes, one
// point a second), the server's resources, and warnings as their counters move.
import { api } from "./api.js";
import { RateChart } from "./chart.js";
import { h, fmtBytes, fmtNum, errorBox } from "./ui.js";

const SPAN = 300;

export function render(main, signal) {
  const server = h("div", { class: "stats", id: "server" });
  const doors = h("div", { class: "grid", id: "doors" });
  const warnings = h("ul", { id: "warnings", "aria-live": "polite" });
  const status = h("p", { class: "muted", id: "overview-status" }, "Loading…");
  main.append(h("h1", {}, "Overview"), server, h("h2", {}, "Doors"), doors,
    h("h2", {}, "Warnings"), warnings, status);
  const cards = new Map();
  let last = null;

  function warn(text) {
    const li = h("li", { class: "error" }, `${new Date().toLocaleTimeString()} — ${text}`);
    warnings.prepend(li);
    while (warnings.children.length > 50) warnings.lastChild.remove();
  }

  function card(d) {
    let c = cards.get(d.name);
    if (c) return c;
    const canvas = h("canvas", { class: "chart", id: `chart-${d.name}`, role: "img",
      "aria-label": `${d.name} messages per second in and out, last 5 minutes` });
    const el = h("section", { class: "card door", dataset: { door: d.name } },
      h("h3", {}, d.name, h("span", { class: "state" })),
      h("div", { class: "stats" },
        h("span", {}, "address ", h("b", { class: "url" })),
        h("span", {}, "connections ", h("b", { class: "conns" })),
        h("span", { class: "legend" }, h("span", { class: "in" }, "in "), h("b", { class: "rate-in" }), "/s"),
        h("span", { class: "legend" }, h("span", { class: "out" }, "out "), h("b", { class: "rate-out" }), "/s"),
        h("span", {}, "total in ", h("b", { class: "in-msgs" })),
        h("span", {}, "total out ", h("b", { class: "out-msgs" }))),
      canvas);
    doors.append(el);
    c = { el, chart: new RateChart(canvas, SPAN) };
    cards.set(d.name, c);
    return c;
  }

  function update(doc) {
    const s = doc.server, st = doc.store;
    server.replaceChildren(
      h("span", {}, "server ", h("b", {}, s.server_name)),
      h("span", {}, "version ", h("b", {}, s.version)),
      h("span", {}, "uptime ", h("b", { id: "uptime" }, s.uptime)),
      h("span", {}, "memory ", h("b", { id: "mem" }, fmtBytes(s.mem))),
      h("span", {}, "CPU ", h("b", { id: "cpu" }, `${s.cpu}%`)),
      h("span", {}, "store ", h("b", { id: "store" }, fmtBytes(st.storage + st.memory))),
      h("span", {}, "streams ", h("b", { id: "stream-count" }, fmtNum(st.streams))));
    const dt = last ? Math.max(doc.now - last.now, 0.001) : 0;
    for (const d of doc.doors) {
      const c = card(d);
      const prev = last?.doors.find((p) => p.name === d.name);
      const rin = prev ? Math.max(0, (d.in_msgs - prev.in_msgs) / dt) : 0;
      const rout = prev ? Math.max(0, (d.out_msgs - prev.out_msgs) / dt) : 0;
      const q = (sel) => c.el.querySelector(sel);
      q(".state").textContent = d.state;
      q(".state").className = `state state-${d.state.replace(" ", "-")}`;
      q(".url").textContent = d.url || "—";
      q(".conns").textContent = fmtNum(d.connections);
      q(".rate-in").textContent = fmtNum(Math.round(rin));
      q(".rate-out").textContent = fmtNum(Math.round(rout));
      q(".in-msgs").textContent = fmtNum(d.in_msgs);
      q(".out-msgs").textContent = fmtNum(d.out_msgs);
      c.el.dataset.connections = d.connections;
      c.el.dataset.inMsgs = d.in_msgs;
      c.el.dataset.outMsgs = d.out_msgs;
      c.chart.push(rin, rout);
    }
    const w = doc.warnings, pw = last?.warnings;
    if (pw) {
      if (w.slow_consumers > pw.slow_consumers)
        warn(`${w.slow_consumers - pw.slow_consumers} slow consumer(s) cut off`);
      for (const [door, n] of Object.entries(w.auth_failures || {})) {
        const before = pw.auth_failures?.[door] ?? 0;
        if (n > before) warn(`${n - before} authentication failure(s) on the ${door} door`);
      }
      for (const [acc, why] of Object.entries(w.storage))
        if (!(acc in pw.storage)) warn(`storage degraded for account ${acc}: ${why}`);
    } else {
      for (const [acc, why] of Object.entries(w.storage)) warn(`storage degraded for account ${acc}: ${why}`);
    }
    last = doc;
    status.textContent = `Updated ${new Date(doc.now * 1000).toLocaleTimeString()}`;
  }

  async function tick() {
    if (signal.aborted) return;
    try { update(await api("/v1/console/overview", { signal })); }
    catch (err) { if (!signal.aborted) status.replaceChildren(errorBox(err)); }
    if (!signal.aborted) setTimeout(tick, 1000);
  }
  tick();
}
