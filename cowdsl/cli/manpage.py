"""The manual page, cowdsl(1), generated from the argparse definitions (cowdsl.cli.args).

``render`` builds it with argparse-manpage (a build and test tool, not needed to
run cowdsl); `python -m cowdsl.cli.manpage` writes it to man/cowdsl.1, which
is committed, and a test holds the two equal.  The wheel installs that file as
share/man/man1/cowdsl.1 (`man cowdsl`) and inside the package (`cowdsl man`).
The page carries the version, not a date, so that it is the same on every day.
"""

from __future__ import annotations

import os
import sys
from importlib import resources
from pathlib import Path

from cowdsl import __version__

CHECKOUT_PAGE = Path(__file__).resolve().parents[2] / "man" / "cowdsl.1"

EXAMPLES = r""".nf
cowdsl run scenarios/                        # every bundled scenario on anon-exclusive (5.19+)
cowdsl run --backend 5.10.198 s5.cow         # one scenario on the model of a stable kernel
cowdsl run --backend all scenarios/          # the era matrix
cat s5.cow | cowdsl run -                    # a scenario from standard input
cowdsl ops pin                               # one op: arguments, micro-steps, locks
cowdsl explain has_write_protect_seq         # what a rule decides, in which versions
eval "$(cowdsl completion bash)"             # shell completion
.fi""".replace("-", "\\-")  # a hyphen in roff; \- is the minus of an option

SEE_ALSO = r"""The README and docs/ of the cowdsl source; \fBcowdsl fmt \-\-help\fR, \fBcowdsl lsp \-\-help\fR,
\fBcowdsl kernels \-\-help\fR for the commands with their own options."""


def render() -> str:
    """The page as roff, from the parser of cowdsl.cli.args."""
    from argparse_manpage.manpage import Manpage  # a build/test dependency only

    from cowdsl.cli.args import parser

    columns = os.environ.get("COLUMNS")
    os.environ["COLUMNS"] = "80"  # argparse wraps usage lines at the terminal's width: the same on every machine
    try:
        p = parser()
        p._manpage = [{"heading": "examples", "content": EXAMPLES},  # type: ignore[attr-defined]
                      {"heading": "see also", "content": SEE_ALSO}]
        page = Manpage(p)
        page.date = f"cowdsl {__version__}"
        page.source = f"cowdsl {__version__}"
        page.manual = "cowdsl manual"
        page.description = "scenarios for Linux copy-on-write, page pinning and fork"
        return str(page)
    finally:
        if columns is None:
            del os.environ["COLUMNS"]
        else:
            os.environ["COLUMNS"] = columns


def installed() -> str:
    """The page shipped with cowdsl: inside the installed package, or man/ of a checkout."""
    packaged = resources.files("cowdsl") / "man" / "cowdsl.1"
    if packaged.is_file():
        return packaged.read_text(encoding="utf-8")
    return CHECKOUT_PAGE.read_text(encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    """Write the page to man/cowdsl.1 of the checkout (or to the path given)."""
    argv = sys.argv[1:] if argv is None else argv
    target = Path(argv[0]) if argv else CHECKOUT_PAGE
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(render(), encoding="utf-8")
    print(f"wrote {target}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
