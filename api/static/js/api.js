// Every call goes to the HTTP door's own routes as the logged-in user (Basic auth), so
// the server's permission checks decide what the console may show or do.
const KEY = "jetport.console.auth";

export class ApiError extends Error {
  constructor(status, description) {
    super(description || `HTTP ${status}`);
    this.status = status;
  }
}

let onUnauthorized = () => {};
/** Who is logged in, from the overview's `caller` (scope null: every account). */
export const session = { caller: null };
export function whenUnauthorized(fn) { onUnauthorized = fn; }

export function setLogin(user, password) {
  if (user === null) sessionStorage.removeItem(KEY);
  else sessionStorage.setItem(KEY, btoa(unescape(encodeURIComponent(`${user}:${password}`))));
}
export function loggedIn() { return sessionStorage.getItem(KEY) !== null; }

function headers(extra = {}) {
  // Tells the door to answer a 401 without a challenge: the console logs in by itself.
  const h = { "X-Jetport-Console": "1", ...extra };
  const auth = sessionStorage.getItem(KEY);
  if (auth) h.Authorization = `Basic ${auth}`;
  return h;
}

async function failure(res) {
  let text = "";
  try {
    const body = await res.text();
    try { text = JSON.parse(body).error?.description || body; } catch { text = body; }
  } catch { /* no body */ }
  if (res.status === 401) onUnauthorized();
  return new ApiError(res.status, text);
}

/** JSON from a route; body objects are sent as JSON. */
export async function api(path, { method = "GET", body, raw = false, signal } = {}) {
  const init = { method, headers: headers(), signal };
  if (body !== undefined) {
    if (typeof body === "string" || body instanceof Blob) init.body = body;
    else { init.body = JSON.stringify(body); init.headers["Content-Type"] = "application/json"; }
  }
  const res = await fetch(path, init);
  if (!res.ok) throw await failure(res);
  if (raw) return res;
  const type = res.headers.get("content-type") || "";
  return type.includes("json") ? res.json() : res.text();
}

/** Server-Sent Events over fetch (EventSource cannot send credentials headers):
 * calls onEvent(name, data) until the signal aborts or the server ends the stream. */
export async function events(path, onEvent, signal) {
  const res = await fetch(path, { headers: headers({ Accept: "text/event-stream" }), signal });
  if (!res.ok) throw await failure(res);
  const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
  let buf = "";
  onEvent("open", null);
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buf += value;
    let cut;
    while ((cut = buf.indexOf("\n\n")) >= 0) {
      const block = buf.slice(0, cut);
      buf = buf.slice(cut + 2);
      let name = "message";
      const data = [];
      for (const line of block.split("\n")) {
        if (line.startsWith("event: ")) name = line.slice(7);
        else if (line.startsWith("data: ")) data.push(line.slice(6));
      }
      if (data.length) onEvent(name, JSON.parse(data.join("\n")));
    }
  }
}

export const q = (params) => {
  const s = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== undefined && v !== null && v !== "") s.set(k, v);
  const text = s.toString();
  return text ? `?${text}` : "";
};
export const enc = encodeURIComponent;
