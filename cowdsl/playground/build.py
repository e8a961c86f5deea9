"""The playground's bundle: everything the page loads, in one folder, served locally.

    python -m cowdsl.playground build [--out DIR]

The page's own files (index.html, playground.js, playground.css) are
docs/playground/ of a checkout, or the copy inside the installed package.  Next
to them the build puts:

* ``pyodide/``: the core of npm's `pyodide` package (pyodide.js, the
  WebAssembly interpreter, the standard library, the lock file): 13.9 MB of its
  14.1 MB (the source maps, TypeScript types, ES module and console page are
  left out).  No Pyodide package is loaded: the wheels below are unpacked;
* ``wheels/``: lark, attrs and Pygments, pure-Python wheels from PyPI, at the
  versions installed here (what the tests ran against);
* ``cowdsl.zip``: this cowdsl's Python files and grammar;
* ``scenarios.json``: the bundled scenarios for the menu, with their S-numbers;
* ``bundle.json``: what to unpack, and the backends for the picker;
* ``pygments.css``: the editor's colours.

Only this step reaches a registry (`npm pack`, `pip download`), and only for what
is not in the cache yet (COWDSL_CACHE, or ~/.cache/cowdsl); the page itself
loads nothing from outside the folder.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import zipfile
from importlib import metadata, resources
from pathlib import Path

import cowdsl
from cowdsl.kernel import eras, releases
from cowdsl.syntax.grammar import grammar_text

PYODIDE_VERSION = "0.27.8"  # Python 3.12; npm's tarball checked by its SHA-256 as well as by npm
PYODIDE_SHA256 = "2595c4b6800f8fc21d1e9b5222b3b3458b479b5f55fd241fee9ec6be0ad7edae"
PYODIDE_FILES = ("pyodide.js", "pyodide.asm.js", "pyodide.asm.wasm", "python_stdlib.zip", "pyodide-lock.json",
                 "package.json")
WHEELS = ("lark", "attrs", "pygments")  # cowdsl's pure-Python dependencies that the model and lexer import
PAGE_FILES = ("index.html", "playground.js", "playground.css")

CHECKOUT = Path(cowdsl.__file__).resolve().parents[1]


class BuildError(Exception):
    pass


def cache_dir() -> Path:
    return Path(os.environ.get("COWDSL_CACHE") or Path.home() / ".cache" / "cowdsl")


def page_dir() -> Path:
    """The page's own files: docs/playground/ of a checkout, else the installed copy."""
    checkout = CHECKOUT / "docs" / "playground"
    if (checkout / "index.html").is_file():
        return checkout
    return Path(str(resources.files("cowdsl") / "playground" / "page"))


def scenarios_dir() -> Path | None:
    for d in (CHECKOUT / "scenarios", Path(str(resources.files("cowdsl") / "playground" / "scenarios"))):
        if d.is_dir():
            return d
    return None


def default_out() -> Path:
    """Where `cowdsl playground` serves from: the page's folder in a checkout, else the cache."""
    page = page_dir()
    return page if page == CHECKOUT / "docs" / "playground" else cache_dir() / "playground"


def built(out: Path) -> bool:
    return (out / "bundle.json").is_file() and all((out / "pyodide" / f).is_file() for f in PYODIDE_FILES)


# --- pyodide ---------------------------------------------------------------------------------

def pyodide_tarball(download: bool = True) -> Path:
    tgz = cache_dir() / f"pyodide-{PYODIDE_VERSION}.tgz"
    if not tgz.is_file():
        if not download:
            raise BuildError(f"{tgz} is not there; `python -m cowdsl.playground build` fetches it with npm")
        npm = shutil.which("npm")
        if npm is None:
            raise BuildError("npm is needed once, to fetch the pyodide package (`npm pack pyodide`)")
        tgz.parent.mkdir(parents=True, exist_ok=True)
        done = subprocess.run([npm, "pack", "--silent", f"pyodide@{PYODIDE_VERSION}", "--pack-destination",
                               str(tgz.parent)], capture_output=True, text=True)
        if done.returncode:
            raise BuildError(f"npm pack pyodide@{PYODIDE_VERSION} failed: {done.stderr.strip()[-2000:]}")
    digest = hashlib.sha256(tgz.read_bytes()).hexdigest()
    if digest != PYODIDE_SHA256:
        raise BuildError(f"{tgz}: SHA-256 {digest}, expected {PYODIDE_SHA256}; delete it and build again")
    return tgz


def unpack_pyodide(tgz: Path, out: Path) -> None:
    target = out / "pyodide"
    target.mkdir(parents=True, exist_ok=True)
    with tarfile.open(tgz) as tar:
        for name in PYODIDE_FILES:
            member = tar.extractfile(f"package/{name}")
            if member is None:
                raise BuildError(f"{tgz} has no package/{name}")
            (target / name).write_bytes(member.read())


# --- wheels ----------------------------------------------------------------------------------

def wheels(out: Path, download: bool = True) -> list[Path]:
    """The pure-Python wheels of WHEELS at the installed versions, from the cache or PyPI."""
    cache = cache_dir() / "wheels"
    cache.mkdir(parents=True, exist_ok=True)
    found = []
    for name in WHEELS:
        version = metadata.version(name)
        pattern = re.compile(rf"^{name}-{re.escape(version)}-.*py3-none-any\.whl$", re.I)
        have = [w for w in cache.iterdir() if pattern.match(w.name)]
        if not have:
            if not download:
                raise BuildError(f"no {name} {version} wheel in {cache}")
            done = subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps",
                                   "--only-binary=:all:", "--python-version", "3.12", "--platform", "any",
                                   "--implementation", "py", "--abi", "none", "-d", str(cache), f"{name}=={version}"],
                                  capture_output=True, text=True)
            if done.returncode:
                raise BuildError(f"pip download {name}=={version} failed: {done.stderr.strip()[-2000:]}")
            have = [w for w in cache.iterdir() if pattern.match(w.name)]
            if not have:
                raise BuildError(f"pip downloaded no pure-Python wheel of {name} {version}")
        found.append(have[0])
    target = out / "wheels"
    if target.exists():
        shutil.rmtree(target)
    target.mkdir(parents=True)
    return [Path(shutil.copy2(w, target / w.name)) for w in found]


# --- cowdsl, the scenarios, the backends -------------------------------------------------------

def cowdsl_zip(out: Path) -> Path:
    """This cowdsl's Python files and its grammar, as they are laid out when installed."""
    package = Path(cowdsl.__file__).resolve().parent
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        for f in sorted(package.rglob("*.py")):
            if "__pycache__" not in f.parts:
                z.writestr(zipfile.ZipInfo(f"cowdsl/{f.relative_to(package).as_posix()}", (2020, 1, 1, 0, 0, 0)),
                           f.read_bytes(), zipfile.ZIP_DEFLATED)
        z.writestr(zipfile.ZipInfo("cowdsl/grammar/cow.lark", (2020, 1, 1, 0, 0, 0)), grammar_text(),
                   zipfile.ZIP_DEFLATED)
    path = out / "cowdsl.zip"
    path.write_bytes(buf.getvalue())
    return path


_S_NUMBER = re.compile(r'^scenario\s+"(S\d+):\s*(.*)"', re.M)
_TITLE = re.compile(r'^scenario\s+"(.*)"', re.M)


def scenario_index(root: Path | None) -> list[dict[str, str]]:
    """The menu: each bundled scenario's path, S-number (scenarios/README.md's rows), title and text."""
    if root is None:
        return []
    items = []
    for f in sorted(root.rglob("*.cow")):
        text = f.read_text(encoding="utf-8")
        m = _S_NUMBER.search(text)
        title = _TITLE.search(text)
        items.append({"path": f.relative_to(root).as_posix(), "s": m.group(1) if m else "",
                      "title": (m.group(2) if m else title.group(1) if title else f.stem), "source": text})
    return sorted(items, key=lambda i: (i["s"] == "", int(i["s"][1:] or 0), i["path"]))


def backend_choices() -> dict[str, list[str]]:
    return {"eras": [e.name for e in eras.ERAS], "versions": [str(v) for v in releases.ALL]}


def pygments_css() -> str:
    """The editor's colours: Pygments' default style for the classes of its HtmlFormatter
    (what cowdsl.playground.web.highlight writes), under the editor's class `hl`."""
    from pygments.formatters import HtmlFormatter  # Pygments only when building

    return str(HtmlFormatter(style="default").get_style_defs(".hl"))


def build(out: Path | None = None, *, download: bool = True) -> Path:
    """Build the bundle into ``out`` (default_out()); the folder."""
    out = default_out() if out is None else out
    out.mkdir(parents=True, exist_ok=True)
    page = page_dir()
    if page.resolve() != out.resolve():
        for name in PAGE_FILES:
            shutil.copy2(page / name, out / name)
    try:
        unpack_pyodide(pyodide_tarball(download), out)
        wheel_files = wheels(out, download)
    except BuildError:
        if download or not built(out):
            raise
        wheel_files = sorted((out / "wheels").glob("*.whl"))  # laid out before: keep it, refresh the rest
    cowdsl_zip(out)
    (out / "scenarios.json").write_text(json.dumps(scenario_index(scenarios_dir()), indent=1), encoding="utf-8")
    (out / "pygments.css").write_text(pygments_css() + "\n", encoding="utf-8")
    bundle = {
        "cowdsl": cowdsl.__version__,
        "pyodide": PYODIDE_VERSION,
        "archives": [{"file": f"wheels/{w.name}", "format": "wheel"} for w in wheel_files]
        + [{"file": "cowdsl.zip", "format": "zip"}],
        "backends": backend_choices(),
    }
    (out / "bundle.json").write_text(json.dumps(bundle, indent=1), encoding="utf-8")
    return out
