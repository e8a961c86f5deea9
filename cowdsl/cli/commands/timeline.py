"""`cowdsl timeline`: a scenario's verdict on every release of the version timeline."""

from __future__ import annotations

import json

from cowdsl.batch import WorkersUnavailable
from cowdsl.cli import EXIT_ERROR, EXIT_OK
from cowdsl.cli.commands.check import batch_for
from cowdsl.cli.commands.run import workers_for
from cowdsl.cli.output import err, out, shown
from cowdsl.kernel import releases
from cowdsl.kernel.version import Version


def while_loading() -> None:
    """The model and the report, imported while the workers load the files (see
    cowdsl.cli.commands.run): the workers that run the versions fork with them."""
    import cowdsl.report.jsonout
    import cowdsl.timeline  # noqa: F401


def timeline(args) -> int:
    versions = releases.ALL
    if args.versions:
        lo, _, hi = args.versions.partition("..")
        a, b = Version.parse(lo), Version.parse(hi)
        if a is None or b is None or b < a:
            err(f"cowdsl: --versions takes LO..HI, e.g. 5.4..5.19, not `{shown(args.versions)}`")
            return EXIT_ERROR
        versions = releases.within(a, b)
    try:
        workers = workers_for(args)
    except WorkersUnavailable as e:
        err(f"cowdsl: {shown(e, 2000)}")
        return EXIT_ERROR
    batch = batch_for(args)
    docs = []
    try:
        scenarios = batch.load(args.paths, workers, meanwhile=while_loading)  # each file parsed and checked by a worker
    except WorkersUnavailable as e:
        err(f"cowdsl: {shown(e, 2000)}")
        return EXIT_ERROR
    from cowdsl import timeline as tl
    from cowdsl.report import jsonout

    try:
        known = tl.prefetch(scenarios, versions, workers)  # every run, -j at a time
    except WorkersUnavailable as e:
        err(f"cowdsl: {shown(e, 2000)}")
        return EXIT_ERROR
    for sc, verdicts in zip(scenarios, known):
        t = batch.call(sc.filename, "drawing its timeline", tl.build, sc, versions, verdicts=verdicts)
        if t is None:
            continue
        if args.format == "json":
            docs.append(tl.as_json(t))
        elif args.format == "dot":
            out(tl.dot(t))
        else:
            out(tl.text(t) + "\n")
    code = EXIT_ERROR if batch.problems else EXIT_OK
    if args.format == "json":
        problems = batch.problems
        out(json.dumps(jsonout.timeline_document(
            docs, [p.error for p in problems if p.error is not None],
            [(p.file, p.message) for p in problems if p.error is None], exit=code), indent=2))
    return code
