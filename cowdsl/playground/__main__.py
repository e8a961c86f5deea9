"""python -m cowdsl.playground build [--out DIR] | screenshot FRAGMENT PNG

`screenshot 'b=5.10.3&p=races/s12-gup-fast-pin-vs-fork.cow&run=1' s12.png` serves
the built bundle, opens the page at that fragment in headless Chromium, waits
for the run and writes a PNG (the README's picture)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from cowdsl.playground import browser, build, serve


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m cowdsl.playground", description=__doc__)
    sub = p.add_subparsers(dest="what", required=True)
    b = sub.add_parser("build", help="lay out the bundle (fetches Pyodide with npm and the wheels with pip "
                                     "once, into the cache)")
    b.add_argument("--out", type=Path, default=None, help="the folder (default: docs/playground of a checkout)")
    s = sub.add_parser("screenshot", help="a PNG of the page at FRAGMENT in headless Chromium, once it has run")
    s.add_argument("fragment", metavar="FRAGMENT", help="what follows # in the page's address")
    s.add_argument("png", type=Path)
    s.add_argument("--size", default="1400x1000", help="the window, WIDTHxHEIGHT (default 1400x1000)")
    args = p.parse_args(argv)
    if args.what == "build":
        try:
            out = build.build(args.out)
        except (build.BuildError, OSError) as e:
            print(f"cowdsl playground: {e}", file=sys.stderr)
            return 2
        print(f"built {out}")
        return 0
    width, height = map(int, args.size.split("x"))
    httpd, url = serve.in_background(build.default_out())
    try:
        with browser.Chromium(width=width, height=height) as chrome:
            page = chrome.open(f"{url}index.html#{args.fragment}")
            page.wait_for("document.body.dataset.state === 'done' || document.body.dataset.state === 'failed'")
            args.png.write_bytes(page.screenshot())
    finally:
        httpd.shutdown()
        httpd.server_close()
    print(f"wrote {args.png}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
