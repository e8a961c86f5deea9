"""`cowdsl playground`: lay out the bundle (from the cache: nothing is downloaded here) and serve it."""

from __future__ import annotations

import sys

from cowdsl.cli import EXIT_ERROR, EXIT_OK
from cowdsl.cli.output import err, out, shown


def playground(args) -> int:
    from cowdsl.playground import build, serve

    try:
        root = build.build(download=False)
    except (build.BuildError, OSError) as e:
        err(f"cowdsl playground: {shown(e, 2000)}")
        err("  build it once with `python -m cowdsl.playground build` (it fetches Pyodide with npm "
            "and three wheels with pip)")
        return EXIT_ERROR
    try:
        httpd = serve.server(root, args.port)
    except OSError as e:
        err(f"cowdsl playground: port {args.port}: {shown(e.strerror or e)}")
        return EXIT_ERROR
    out(f"cowdsl playground: http://127.0.0.1:{httpd.server_address[1]}/  (Ctrl-C stops it)")
    sys.stdout.flush()  # the address before the server blocks, through a pipe too
    try:
        httpd.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        httpd.server_close()
    return EXIT_OK
