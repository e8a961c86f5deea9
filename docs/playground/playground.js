// The cowdsl playground: cowdsl itself, in Pyodide, on the scenario in the editor.
// Everything is loaded from this folder (bundle.json says what); the scenario and
// the backend live in the URL's fragment, so a link in a mail opens the same run:
//   #b=5.10.3&s=<the source, UTF-8, base64url>       a scenario of your own
//   #b=5.10.3&p=races/s12-gup-fast-pin-vs-fork.cow    a bundled one (the menu)
//   ...&run=1                                         and run it on load
"use strict";

const $ = (id) => document.getElementById(id);
const editor = $("source"), shown = $("highlighted"), menu = $("menu"), picker = $("backend");
let web = null;          // cowdsl.playground.web, once Python is up
let scenarios = [];      // scenarios.json: {path, s, title, source}
let timer = null;

function setState(state, text) {
  document.body.dataset.state = state;
  $("status").textContent = text;
}

function encode(text) {
  const bytes = new TextEncoder().encode(text);
  let bin = "";
  for (let i = 0; i < bytes.length; i += 0x8000) bin += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  return btoa(bin).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

function decode(text) {
  const bin = atob(text.replace(/-/g, "+").replace(/_/g, "/"));
  return new TextDecoder("utf-8", { fatal: true }).decode(Uint8Array.from(bin, (c) => c.charCodeAt(0)));
}

function fromUrl() {
  const params = new URLSearchParams(location.hash.slice(1));
  if (params.get("b")) picker.value = params.get("b");
  const bundled = scenarios.find((x) => x.path === params.get("p"));
  if (bundled) {
    menu.value = bundled.path;
    editor.value = bundled.source;
  } else if (params.get("s")) {
    try {
      editor.value = decode(params.get("s"));
      menu.value = "";
    } catch (e) {
      editor.value = "# the link's scenario could not be read: " + e + "\n";
    }
  }
  return params.get("run") === "1";
}

function toUrl() {
  const params = new URLSearchParams();
  params.set("b", picker.value);
  const bundled = scenarios.find((x) => x.path === menu.value);
  if (bundled && bundled.source === editor.value) params.set("p", bundled.path);
  else params.set("s", encode(editor.value));
  history.replaceState(null, "", "#" + params.toString());
}

function escapeHtml(text) {
  return text.replace(/[&<>]/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;" })[c]);
}

function repaint() {
  // the Pygments colours once Python is up; plain text before
  const text = editor.value.endsWith("\n") ? editor.value : editor.value + "\n";
  shown.innerHTML = web ? web.highlight(text) : escapeHtml(text);
  shown.scrollTop = editor.scrollTop;
  shown.scrollLeft = editor.scrollLeft;
}

function edited() {
  repaint();
  clearTimeout(timer);
  timer = setTimeout(toUrl, 300);
}

function show(result) {
  const verdict = $("verdict");
  verdict.dataset.status = result.get("status");
  verdict.dataset.ok = String(result.get("ok"));
  verdict.dataset.expected = result.get("expected") || "";
  verdict.textContent = result.get("summary");
  $("output").innerHTML = result.get("html");
}

function run() {
  if (!web) return;
  toUrl();
  setState("running", "running…");
  $("run").disabled = true;
  setTimeout(() => {            // let the page show "running" first
    try {
      const bundled = scenarios.find((x) => x.path === menu.value && x.source === editor.value);
      const result = web.run(editor.value, picker.value.trim(), bundled ? bundled.path : "playground.cow");
      show(result.toJs({ dict_converter: (entries) => new Map(entries) }));
      result.destroy();
      setState("done", "done");
    } catch (e) {
      $("verdict").dataset.status = "error";
      $("verdict").textContent = "internal error";
      $("output").textContent = String(e);
      setState("done", "internal error (a bug in cowdsl: please report it with the scenario)");
    } finally {
      $("run").disabled = false;
    }
  }, 0);
}

async function json(file) {
  const response = await fetch(file);
  if (!response.ok) throw new Error(`${file}: ${response.status} ${response.statusText}`);
  return response.json();
}

async function boot() {
  const bundle = await json("bundle.json");
  scenarios = await json("scenarios.json");
  const options = [...bundle.backends.eras, ...bundle.backends.versions];
  $("backends").append(...options.map((name) => Object.assign(document.createElement("option"), { value: name })));
  // the reference's S-numbered rows first, then each folder of scenarios/
  const groups = new Map();
  for (const x of scenarios) {
    const label = x.s ? "the reference's rows, by S-number" : x.path.split("/")[0];
    if (!groups.has(label)) groups.set(label, Object.assign(document.createElement("optgroup"), { label }));
    groups.get(label).append(Object.assign(document.createElement("option"), {
      value: x.path, textContent: (x.s ? x.s + ": " : "") + x.title + "  (" + x.path + ")",
    }));
  }
  menu.append(...groups.values());
  let autorun = fromUrl();
  if (!editor.value) {          // no link: the first S-numbered scenario
    const first = scenarios[0];
    if (first) { menu.value = first.path; editor.value = first.source; }
  }
  repaint();
  const py = await loadPyodide({ indexURL: new URL("pyodide/", location.href).href });
  const site = py.runPython("import sysconfig; sysconfig.get_paths()['purelib']");
  for (const archive of bundle.archives) {
    const response = await fetch(archive.file);
    if (!response.ok) throw new Error(`${archive.file}: ${response.status}`);
    py.unpackArchive(await response.arrayBuffer(), archive.format, { extractDir: site });
  }
  // cowdsl.run imports the native runner (never run here: the page refuses `native`), whose
  // controller imports `resource`, which Pyodide's standard library leaves out
  py.runPython("import importlib, sys, types; importlib.invalidate_caches(); " +
               "sys.modules.setdefault('resource', types.ModuleType('resource', 'not in a browser'))");
  web = py.pyimport("cowdsl.playground.web");
  repaint();
  $("run").disabled = false;
  setState("ready", `ready: cowdsl ${bundle.cowdsl}, Pyodide ${bundle.pyodide}`);
  window.addEventListener("hashchange", () => { if (fromUrl()) run(); else repaint(); });
  if (autorun) run();
}

editor.addEventListener("input", edited);
editor.addEventListener("scroll", () => { shown.scrollTop = editor.scrollTop; shown.scrollLeft = editor.scrollLeft; });
editor.addEventListener("keydown", (e) => {
  if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) { e.preventDefault(); run(); }
});
menu.addEventListener("change", () => {
  const bundled = scenarios.find((x) => x.path === menu.value);
  if (bundled) { editor.value = bundled.source; repaint(); toUrl(); }
});
picker.addEventListener("change", toUrl);
$("run").addEventListener("click", run);
$("link").addEventListener("click", () => { toUrl(); navigator.clipboard?.writeText(location.href); });
boot().catch((e) => { setState("failed", "could not start: " + e); console.error(e); });
