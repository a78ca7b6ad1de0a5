// The console's shell: hash routes to pages, login when the hub asks for it.
import { api, session, setLogin, loggedIn, whenUnauthorized } from "./api.js";
import * as overview from "./overview.js";
import * as clients from "./clients.js";
import * as streams from "./streams.js";
import * as buckets from "./buckets.js";
import * as tap from "./tap.js";

const PAGES = { overview, clients, streams, kv: buckets.kv, objects: buckets.objects, tap };
const main = document.getElementById("main");
let current = null;

function route() {
  const [name, ...rest] = location.hash.replace(/^#\/?/, "").split("/");
  const page = PAGES[name] ? name : "overview";
  for (const a of document.querySelectorAll("header nav a")) {
    if (a.getAttribute("href") === `#/${page}`) a.setAttribute("aria-current", "page");
    else a.removeAttribute("aria-current");
  }
  if (current) current.abort();
  current = new AbortController();
  main.replaceChildren();
  document.body.dataset.page = page;
  PAGES[page].render(main, current.signal, rest.map(decodeURIComponent));
}

async function whoami() {
  try {
    const doc = await api("/v1/console/overview");
    const c = session.caller = doc.caller;
    document.getElementById("who").textContent = c.auth
      ? `${c.user || "(no user)"} · account ${c.account}${c.scope === null ? " · all accounts" : ""}` : "";
    document.getElementById("logout").hidden = !loggedIn();
    return true;
  } catch (err) {
    return err.status !== 401;
  }
}

function askLogin() {
  const dlg = document.getElementById("login");
  if (!dlg.open) dlg.showModal();
}

document.getElementById("login-form").addEventListener("submit", async (ev) => {
  const form = ev.target;
  ev.preventDefault();
  setLogin(form.user.value, form.password.value);
  if (await whoami()) {
    document.getElementById("login").close();
    document.getElementById("login-error").textContent = "";
    route();
  } else {
    setLogin(null);
    document.getElementById("login-error").textContent = "Wrong user or password.";
  }
});
document.getElementById("login").addEventListener("cancel", (ev) => ev.preventDefault());
document.getElementById("logout").addEventListener("click", () => {
  setLogin(null);
  location.reload();
});

whenUnauthorized(askLogin);
window.addEventListener("hashchange", route);
whoami().then((ok) => { if (ok) route(); });
