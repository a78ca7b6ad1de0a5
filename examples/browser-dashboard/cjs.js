// A tiny CommonJS loader. The npm builds of @nats-io/nats-core and @nats-io/jetstream are
// CommonJS (their ESM builds live on JSR), which a browser cannot import, not even through
// an import map. This fetches a package and everything it require()s from ./node_modules,
// then runs them in order: no bundler, no build step, the exact files `npm ci` installed.

const NODE_MODULES = new URL("./node_modules/", import.meta.url);
const REQUIRE = /\brequire\(\s*["']([^"'\n]+)["']\s*\)/g;
const fetching = new Map(); // url -> Promise<Map<specifier, url>>
const sources = new Map(); // url -> { text, deps: Map<specifier, url> }
const modules = new Map(); // url -> module

async function fetchText(url) {
  const res = await fetch(url);
  if (!res.ok) throw new Error(`${res.status} ${url}`);
  return res.text();
}

// Where a specifier points: relative files, or a package's "exports" / "main".
async function resolve(spec, from) {
  if (spec.startsWith(".")) {
    const url = new URL(spec, from);
    return /\.(c?js|json)$/.test(url.pathname) ? url.href : `${url.href}.js`;
  }
  const parts = spec.split("/");
  const n = spec.startsWith("@") ? 2 : 1;
  const root = new URL(`${parts.slice(0, n).join("/")}/`, NODE_MODULES);
  const meta = JSON.parse(await fetchText(new URL("package.json", root)));
  const sub = [".", ...parts.slice(n)].join("/");
  let target = typeof meta.exports === "string" && sub === "." ? meta.exports
    : meta.exports?.[sub] ?? (sub === "." ? meta.main ?? "index.js" : sub);
  if (typeof target === "object") target = target.require ?? target.default;
  return resolve(`./${target.replace(/^\.\//, "")}`, root);
}

// One module's text and where each specifier it names in a require() call points. A
// specifier that does not resolve (node's "crypto" in tweetnacl's fallback) throws only if
// that require() runs.
async function fetchModule(url) {
  const text = await fetchText(url);
  const deps = new Map();
  const specs = new Set([...text.matchAll(REQUIRE)].map((m) => m[1]));
  await Promise.all([...specs].map(async (spec) => {
    try {
      deps.set(spec, await resolve(spec, url));
    } catch (err) {
      console.debug(`${url}: require("${spec}") unavailable: ${err.message}`);
    }
  }));
  sources.set(url, { text, deps });
  return deps;
}

// A module and everything it requires, each fetched once even when loads overlap.
async function fetchTree(url, seen = new Set()) {
  if (seen.has(url)) return;
  seen.add(url);
  if (!fetching.has(url)) fetching.set(url, fetchModule(url));
  const deps = await fetching.get(url);
  await Promise.all([...deps.values()].map((dep) => fetchTree(dep, seen)));
}

function run(url) {
  if (modules.has(url)) return modules.get(url).exports;
  const { text, deps } = sources.get(url);
  const module = { exports: {} };
  modules.set(url, module);
  if (url.endsWith(".json")) {
    module.exports = JSON.parse(text);
    return module.exports;
  }
  const require = (spec) => {
    if (!deps.has(spec)) throw new Error(`Cannot find module '${spec}'`);
    return run(deps.get(spec));
  };
  new Function("exports", "require", "module", `${text}\n//# sourceURL=${url}`)(
    module.exports, require, module);
  return module.exports;
}

/** The exports of an installed npm package, like require(spec) in node. */
export async function load(spec) {
  const url = await resolve(spec, NODE_MODULES);
  await fetchTree(url);
  return run(url);
}
