// Small DOM helpers shared by the pages.
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else if (k === "class") el.className = v;
    else if (k === "dataset") Object.assign(el.dataset, v);
    else el.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children.flat()) if (c !== null && c !== undefined && c !== false)
    el.append(c instanceof Node ? c : String(c));
  return el;
}

export function fmtBytes(n) {
  if (n === undefined || n === null) return "";
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
  return `${i ? n.toFixed(1) : n} ${units[i]}`;
}
export const fmtNum = (n) => (n ?? 0).toLocaleString("en-US");

/** A table: columns are {label, key, num, render}; sortable columns call onSort(key). */
export function table(columns, rows, { onSort, sorted, rowAttrs } = {}) {
  const head = h("tr", {}, columns.map((c) => {
    const label = c.sort && onSort
      ? h("button", { type: "button", onclick: () => onSort(c.sort),
          "aria-label": `Sort by ${c.label}` }, c.label + (sorted === c.sort ? " ▾" : ""))
      : c.label;
    return h("th", { class: c.num ? "num" : null, scope: "col",
      "aria-sort": sorted && sorted === c.sort ? "descending" : null }, label);
  }));
  const body = rows.length ? rows.map((r) => h("tr", rowAttrs ? rowAttrs(r) : {}, columns.map((c) =>
    h("td", { class: c.num ? "num" : null, dataset: { col: c.key || c.label } },
      c.render ? c.render(r) : c.num ? fmtNum(r[c.key]) : (r[c.key] ?? "")))))
    : [h("tr", {}, h("td", { colspan: columns.length, class: "muted" }, "None."))];
  return h("div", { class: "scroll" }, h("table", {}, h("thead", {}, head), h("tbody", {}, body)));
}

/** Ask before a destructive action; resolves true only on the Confirm button. */
export function confirmAction(text) {
  const dlg = document.getElementById("confirm");
  document.getElementById("confirm-text").textContent = text;
  dlg.returnValue = "";
  dlg.showModal();
  return new Promise((resolve) => {
    dlg.addEventListener("close", () => resolve(dlg.returnValue === "ok"), { once: true });
  });
}

export function errorBox(err) {
  return h("p", { class: "error", role: "alert" }, err.message || String(err));
}

export function pager(offset, limit, total, go) {
  return h("div", { class: "pager" },
    h("button", { type: "button", disabled: offset <= 0, onclick: () => go(Math.max(0, offset - limit)) }, "Previous"),
    h("span", { class: "muted" }, total ? `${offset + 1}–${Math.min(offset + limit, total)} of ${fmtNum(total)}` : "none"),
    h("button", { type: "button", disabled: offset + limit >= total, onclick: () => go(offset + limit) }, "Next"));
}

/** A message's payload (utf-8 or base64, as the door sends it) as text, JSON or hex. */
export function showPayload(msg, mode) {
  const bytes = msg.encoding === "base64"
    ? Uint8Array.from(atob(msg.data || ""), (c) => c.charCodeAt(0))
    : new TextEncoder().encode(msg.data || "");
  if (mode === "hex") {
    const lines = [];
    for (let i = 0; i < bytes.length; i += 16) {
      const row = [...bytes.slice(i, i + 16)];
      lines.push(i.toString(16).padStart(6, "0") + "  " + row.map((b) => b.toString(16).padStart(2, "0")).join(" ").padEnd(48)
        + "  " + row.map((b) => (b >= 32 && b < 127 ? String.fromCharCode(b) : ".")).join(""));
    }
    return lines.join("\n");
  }
  const text = new TextDecoder().decode(bytes);
  if (mode === "json") {
    try { return JSON.stringify(JSON.parse(text), null, 2); } catch { return `(not JSON) ${text}`; }
  }
  return text;
}
