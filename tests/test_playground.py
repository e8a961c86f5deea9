"""The browser playground: its Python side in CPython, its bundle, its server, and
the page itself in a real headless Chromium (S5 and S12 run in Pyodide).

The browser tests need Chromium and the bundle (`python -m cowdsl.playground
build`); without them they skip, unless COWDSL_REQUIRE_PLAYGROUND=1 (CI) makes
that a failure."""

from __future__ import annotations

import base64
import json
import os
import urllib.request
import zipfile
from pathlib import Path

import pytest

from cowdsl.cli import main
from cowdsl.playground import build, serve, web

ROOT = Path(__file__).parent.parent
S5 = "pin-fork/s5-longterm-pin-parent-writes-first.cow"
S12 = "races/s12-gup-fast-pin-vs-fork.cow"
REQUIRED = os.environ.get("COWDSL_REQUIRE_PLAYGROUND") == "1"


def source(path: str) -> str:
    return (ROOT / "scenarios" / path).read_text(encoding="utf-8")


# --- the Python the page calls ---------------------------------------------------------------

def test_web_runs_s5_and_s12():
    r = web.run(source(S5), "anon-exclusive", S5)
    assert (r["status"], r["expected"], r["ok"]) == ("pass", "pass", True)
    assert r["text"].startswith("Test s5-longterm-pin-parent-writes-first on anon-exclusive")
    r = web.run(source(S12), "5.10.3", S12)  # before 57efa1fe5957 reached 5.10.y (5.10.4)
    assert (r["status"], r["expected"], r["ok"]) == ("fail", "fail", True)
    assert '<span class="no">Counterexample for line 43 (always: mr is A.buf)</span>' in r["html"]
    assert "schedule: A,A,A,A,A,T,T,T,T,T,A,A,A,A,mr" in r["text"]
    assert web.run(source(S12), "5.10.4", S12)["status"] == "pass"


def test_web_reports_errors_like_the_cli():
    r = web.run("process P\nP: mmap(buf, anon, privte)\nassert P.buf == 0\n")
    assert r["status"] == "error" and not r["ok"]
    assert r["text"].startswith("playground.cow:2:20: error: unknown flag `privte` for `mmap`")
    assert "did you mean `private`?" in r["text"]
    assert "unknown backend `5.10.x`" in web.run(source(S5), "5.10.x")["text"]
    assert "not in a browser" in web.run(source(S5), "native")["text"]
    assert web.run("process P", "anon-exclusive", "../../etc/passwd")["text"].startswith("playground.cow:")


def test_web_runs_every_scenario_of_a_sweep_and_refuses_include():
    swept = ("param kind in small, thp\nprocess A\nA: mmap(buf, anon, private, rw, $kind)\nA: write(buf, 1)\n"
             "assert A.buf == 1\n")
    r = web.run(swept)
    assert (r["status"], r["ok"]) == ("pass", True)
    assert r["summary"] == "2 scenarios (its params) on anon-exclusive: 2 as expected"
    assert "Test playground[kind=small]" in r["text"] and "Test playground[kind=thp]" in r["text"]
    r = web.run('include "other.cow"\nprocess A\nassert true\n')
    assert r["status"] == "error" and r["text"].startswith("playground.cow:1:")


def test_web_escapes_the_scenarios_text():
    r = web.run('scenario "<script>alert(1)</script>"\nprocess P\nP: mmap(buf, anon, private, rw)\n'
                "P: write(buf, 1)\nassert P.buf == 1\n")
    assert r["status"] == "pass"
    assert "<script>" not in r["html"] and "&lt;script&gt;" in r["html"]


def test_web_highlights_in_the_pygments_colours():
    html = web.highlight("A: write(buf, 1)  # x\n")
    assert '<span class="nf">write</span>' in html and '<span class="c1"># x</span>' in html
    assert ".hl .nf" in build.pygments_css()


# --- the bundle ------------------------------------------------------------------------------

def test_scenario_menu_has_the_s_numbered_scenarios():
    index = build.scenario_index(ROOT / "scenarios")
    by_path = {i["path"]: i for i in index}
    assert by_path[S5]["s"] == "S5" and by_path[S12]["s"] == "S12"
    assert by_path[S12]["source"] == source(S12)
    numbered = [int(i["s"][1:]) for i in index if i["s"]]
    assert numbered == sorted(numbered) and index[0]["s"] == "S1"
    assert len(index) == len(list((ROOT / "scenarios").rglob("*.cow")))


def test_cowdsl_zip_is_the_package_with_its_grammar(tmp_path):
    z = zipfile.ZipFile(build.cowdsl_zip(tmp_path))
    names = set(z.namelist())
    assert {"cowdsl/__init__.py", "cowdsl/playground/web.py", "cowdsl/grammar/cow.lark"} <= names
    assert not any("__pycache__" in n for n in names)
    assert build.cowdsl_zip(tmp_path).read_bytes() == build.cowdsl_zip(tmp_path).read_bytes()  # reproducible


def test_backend_choices():
    choices = build.backend_choices()
    assert choices["eras"][0] == "mapcount" and choices["eras"][-1] == "anon-exclusive"
    assert "5.10.198" in choices["versions"] and "5.9-rc4" in choices["versions"]


def test_server_serves_wasm_as_wasm_on_localhost_only(tmp_path):
    (tmp_path / "x.wasm").write_bytes(b"\0asm")
    httpd, url = serve.in_background(tmp_path)
    try:
        assert url.startswith("http://127.0.0.1:")
        with urllib.request.urlopen(url + "x.wasm") as response:
            assert response.headers["Content-Type"] == "application/wasm"
    finally:
        httpd.shutdown()
        httpd.server_close()


def test_playground_command_without_a_bundle_says_how(monkeypatch, tmp_path, capsys):
    monkeypatch.setenv("COWDSL_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(build, "default_out", lambda: tmp_path / "site")
    assert main(["playground", "--port", "0"]) == 2
    assert "python -m cowdsl.playground build" in capsys.readouterr().err


# --- the page in headless Chromium -----------------------------------------------------------

@pytest.fixture(scope="module")
def page(tmp_path_factory):
    """The page in headless Chromium, served from a bundle of this cowdsl laid out in a
    temp dir from the cache (each xdist worker its own: no worker rewrites another's files)."""
    from cowdsl.playground import browser

    why = None
    if browser.find() is None:
        why = "no Chromium (apt-get install chromium)"
    else:
        try:
            root = build.build(tmp_path_factory.mktemp("playground"), download=False)
        except (build.BuildError, OSError) as e:
            why = f"no playground bundle in the cache ({e}); `python -m cowdsl.playground build` fetches it"
    if why:
        if REQUIRED:
            pytest.fail(f"COWDSL_REQUIRE_PLAYGROUND=1 but {why}")
        pytest.skip(why)
    httpd, url = serve.in_background(root)
    try:
        with browser.Chromium(width=1400, height=1000) as chrome:
            p = chrome.open(url + "index.html")
            p.url = url  # type: ignore[attr-defined]
            p.wait_for("document.body.dataset.state === 'ready' || document.body.dataset.state === 'failed'")
            assert p.evaluate("document.body.dataset.state") == "ready", p.console()
            yield p
    finally:
        httpd.shutdown()
        httpd.server_close()


def _run(page, fragment: str) -> dict:
    page.evaluate("document.body.dataset.state = 'ready'; document.getElementById('verdict').dataset.status = ''")
    page.evaluate(f"location.hash = {json.dumps(fragment)}")
    page.wait_for("document.body.dataset.state === 'done'", timeout=120)
    return page.evaluate("""(() => { const v = document.getElementById('verdict');
        return {status: v.dataset.status, ok: v.dataset.ok, expected: v.dataset.expected, summary: v.textContent,
                output: document.getElementById('output').textContent,
                html: document.getElementById('output').innerHTML, hash: location.hash,
                backend: document.getElementById('backend').value,
                menu: document.getElementById('menu').value}; })()""")


def test_page_runs_s5(page):
    r = _run(page, f"b=anon-exclusive&p={S5}&run=1")
    assert (r["status"], r["ok"], r["expected"]) == ("pass", "true", "pass"), r
    assert r["summary"] == "pass on anon-exclusive: expected pass, as expected"
    assert r["menu"] == S5
    assert "Expect pass on anon-exclusive: got pass, as expected" in r["output"]


def test_page_runs_s12_and_shows_the_counterexample(page):
    r = _run(page, f"b=5.10.3&p={S12}&run=1")
    assert (r["status"], r["ok"], r["expected"]) == ("fail", "true", "fail"), r
    assert "Counterexample for line 43 (always: mr is A.buf)" in r["output"]
    assert "CPU0 (A: fork)" in r["output"] and "CPU1 (T: GUP-fast pin)" in r["output"]
    assert '<span class="no">Counterexample for line 43' in r["html"]
    r = _run(page, f"b=6.1.158&p={S12}&run=1")
    assert (r["status"], r["ok"]) == ("pass", "true"), r


def test_page_keeps_the_scenario_in_the_url(page):
    text = "process P\nP: mmap(buf, anon, privte)\nassert P.buf == 0\n"
    encoded = base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")
    r = _run(page, f"b=anon-exclusive&s={encoded}&run=1")
    assert r["status"] == "error" and r["menu"] == ""
    assert r["output"].startswith("playground.cow:2:20: error: unknown flag `privte` for `mmap`")
    # typing changes the link: the page writes the source into the fragment
    page.evaluate("""(() => { const e = document.getElementById('source');
        e.value = e.value.replace('privte', 'private'); e.dispatchEvent(new Event('input')); })()""")
    fixed = base64.urlsafe_b64encode(text.replace("privte", "private").encode()).decode().rstrip("=")
    page.wait_for(f"location.hash.includes({json.dumps('s=' + fixed)})", timeout=10)
    # and the editor shows the Pygments colours
    assert '<span class="nf">mmap</span>' in page.evaluate("document.getElementById('highlighted').innerHTML")


def test_page_menu_and_run_button(page):
    page.evaluate(f"""(() => {{ const m = document.getElementById('menu'); m.value = {json.dumps(S5)};
        m.dispatchEvent(new Event('change')); document.getElementById('backend').value = 'mapcount';
        document.body.dataset.state = 'ready'; document.getElementById('run').click(); }})()""")
    page.wait_for("document.body.dataset.state === 'done'", timeout=120)
    assert page.evaluate("document.getElementById('verdict').dataset.status") == "fail"  # E0 loses the pin
    assert page.evaluate("location.hash") == f"#b=mapcount&p={S5.replace('/', '%2F')}"


def test_page_loads_nothing_from_outside(page):
    urls = page.requests()
    assert any(u.endswith("pyodide.asm.wasm") for u in urls) and any(u.endswith("cowdsl.zip") for u in urls)
    assert [u for u in urls if not u.startswith(page.url)] == []


def test_screenshot_png(page):
    png = page.screenshot()
    assert png.startswith(b"\x89PNG\r\n\x1a\n") and len(png) > 10_000
