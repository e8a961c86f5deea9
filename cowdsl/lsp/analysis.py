"""What the editor asks about a .cow file, answered as plain data.

Positions here are 0-based lines and 0-based character offsets into the line
(Python string indices); the server converts them to the client's encoding.
Nothing here imports the LSP library.
"""

from __future__ import annotations

import difflib
import re
from pathlib import Path

from attrs import frozen

from cowdsl import fmt, ops
from cowdsl.errors import CowError, Diagnostic, Span
from cowdsl.kernel import eras, options, releases
from cowdsl.kernel.spec import SpecError, resolve
from cowdsl.load import load_text_all
from cowdsl.lsp import docs
from cowdsl.lsp.index import (
    ACTOR_BUILTIN,
    FACT,
    FILE,
    FLAG,
    KWARG,
    MAPPING,
    OP,
    PIPE,
    PROCESS,
    THREAD,
    Index,
    Occurrence,
    build,
)
from cowdsl.syntax import ast
from cowdsl.syntax.include import IncludedError


@frozen
class Pos:
    line: int  # 0-based
    char: int  # 0-based, in characters


@frozen
class Range:
    start: Pos
    end: Pos

    def contains(self, p: Pos) -> bool:
        return (self.start.line, self.start.char) <= (p.line, p.char) <= (self.end.line, self.end.char)

    def overlaps(self, other: Range) -> bool:
        return not ((self.end.line, self.end.char) < (other.start.line, other.start.char)
                    or (other.end.line, other.end.char) < (self.start.line, self.start.char))


@frozen
class Problem:
    """A checker diagnostic, placed."""

    range: Range
    message: str  # the message, then `expected:` and `hint:` lines
    diagnostic: Diagnostic
    severity: str
    elsewhere: str = ""  # the included file the problem is in (its range is then the include line)


@frozen
class Completion:
    label: str
    kind: str  # keyword, op, flag, kwarg, fact, name kinds, backend, version, option, snippet
    detail: str = ""
    doc: str = ""
    insert: str | None = None  # text to insert (default: the label)
    snippet: bool = False  # insert is an LSP snippet ($1, ${1:x})


@frozen
class Edit:
    range: Range
    new_text: str


@frozen
class Action:
    title: str
    problem: Problem
    edit: Edit


@frozen
class Symbol:
    name: str
    kind: str  # declaration, step, par, assertion, expect, scenario
    detail: str
    range: Range
    selection: Range
    children: tuple[Symbol, ...] = ()


def _lines(text: str) -> list[str]:
    return text.replace("\r\n", "\n").split("\n")


def span_range(span: Span, lines: list[str]) -> Range:
    """A diagnostic's 1-based span as a 0-based range, kept inside the line."""
    line = min(max(span.line, 1), max(len(lines), 1)) - 1
    length = len(lines[line].rstrip("\r")) if line < len(lines) else 0
    start = min(max(span.col - 1, 0), length)
    end = min(max(span.end_col - 1, start), length)
    if end == start and length > start:
        end = start + 1
    return Range(Pos(line, start), Pos(line, end))


# --- diagnostics ----------------------------------------------------------------------------


def problems(text: str, filename: str = "<input>") -> list[Problem]:
    """Every diagnostic the checker gives for ``text`` (none for a good file).

    ``filename`` is the file's path when it is on disk: its `include`s are read
    from its folder.  A problem inside an included file is shown at the include
    line that leads to it, with the included file's name, line and column."""
    folder = Path(filename).parent if filename != "<input>" and Path(filename).parent.is_dir() else None
    try:
        load_text_all(text, filename, folder=folder)
    except CowError as e:
        lines = _lines(text)
        out = []
        parts = e.parts if isinstance(e, IncludedError) else [(e.filename, e.source, e.diagnostics, ())]
        for where, _, diags, chain in parts:
            for d in diags:
                msg = d.message + (f"\nexpected: {d.expected}" if d.expected else "") + (f"\nhint: {d.hint}" if d.hint else "")
                if chain:  # in an included file: at this file's include line that leads there
                    msg = f"in `{where}`, line {d.span.line}, column {d.span.col}: {msg}"
                    out.append(Problem(span_range(chain[0][2], lines), msg, d, d.severity, where))
                else:
                    out.append(Problem(span_range(d.span, lines), msg, d, d.severity))
        return out
    return []


# --- code actions -----------------------------------------------------------------------------

_DID_YOU_MEAN = re.compile(r"did you mean `([^`]+)`\?")
_REPLACE_HINTS = {"compare with `==`": "==", "write `and`": "and", "write `or`": "or", "write `not`, or `!=` to compare": "not"}


def _word_in(text: str, suggestion: str) -> tuple[int, int] | None:
    """Where, in a diagnostic's text, is the word the suggestion replaces: the whole
    text if it is one word, else the piece most like the suggestion
    (``5.10:wp_seq=of`` with `off`: ``of``)."""
    if re.fullmatch(r"[A-Za-z0-9_.\-]+", text) and ":" not in suggestion:
        return 0, len(text)
    best, where = 0.0, None
    for m in re.finditer(r"[A-Za-z0-9_\-]+", text):
        if m.group() == suggestion:
            continue
        score = difflib.SequenceMatcher(None, m.group(), suggestion).ratio()
        if score > best:
            best, where = score, (m.start(), m.end())
    return where if best >= 0.5 else None


def code_actions(text: str, within: Range | None = None, filename: str = "<input>") -> list[Action]:
    """A quick fix for each hint that names a replacement: "did you mean `longterm`?"
    replaces the word; "compare with `==`" replaces the `=`."""
    lines = _lines(text)
    out = []
    for p in problems(text, filename):
        if (within is not None and not p.range.overlaps(within)) or p.elsewhere:
            continue  # (a fix in an included file is made in that file)
        hint = p.diagnostic.hint or ""
        r = p.range
        got = lines[r.start.line][r.start.char:r.end.char] if r.start.line < len(lines) else ""
        m = _DID_YOU_MEAN.search(hint)
        if m:
            new = m.group(1)
            where = _word_in(got, new)
            if where is None:
                continue
            rng = Range(Pos(r.start.line, r.start.char + where[0]), Pos(r.start.line, r.start.char + where[1]))
            out.append(Action(f"Replace `{got[where[0]:where[1]]}` with `{new}`", p, Edit(rng, new)))
        elif hint in _REPLACE_HINTS and got.strip() in ("=", "&", "&&", "|", "||", "!"):
            new = _REPLACE_HINTS[hint]
            pad = " " if new.isalpha() else ""
            line = lines[r.start.line]
            before = pad if r.start.char > 0 and line[r.start.char - 1] != " " else ""
            after = pad if r.end.char < len(line) and line[r.end.char] != " " else ""
            out.append(Action(f"Replace `{got}` with `{new}`", p, Edit(r, before + new + after)))
    return out


# --- hover --------------------------------------------------------------------------------------


def _word_at(line: str, char: int) -> tuple[int, int, str] | None:
    for m in re.finditer(r"~?[A-Za-z_][A-Za-z0-9_]*", line):
        if m.start() <= char <= m.end():
            return m.start(), m.end(), m.group()
    return None


def _backend_at(line: str, char: int) -> tuple[str, int, int, int] | None:
    """The backend spec under the cursor on an expect line, which ``:`` piece, and its columns."""
    m = re.match(r"(\s*expect\s+\w+\s+on\s+)(.*)$", line)
    if not m:
        return None
    pos = m.end(1)
    for piece in re.finditer(r"[^,\s#]+", re.split(r"\s+when\b", m.group(2))[0]):  # `when kind=thp` ends them
        start, end = pos + piece.start(), pos + piece.end()
        if start <= char <= end:
            spec = piece.group()
            part = spec[: char - start].count(":")
            return spec, part, start, end
    return None


def _name_doc(index: Index, occ: Occurrence) -> str:
    assert occ.key is not None
    defs = index.definition_for(occ)
    if not defs:
        where = "not declared in this file"
        return f"`{occ.text}`: {where}"
    d = defs[0]
    if occ.key[0] == MAPPING:
        return f"mapping `{occ.text}`" + (f" of {d.proc}" if d.proc else "") + f"\n\n```cow\n{d.line_text}\n```\nline {d.span.line}"
    kind = d.kind or "name"
    extra = ""
    if kind == THREAD:
        extra = f" of {index.threads.get(d.text, '?')}"
    elif kind == PROCESS and d.text in index.parents:
        extra = f", forked from {index.parents[d.text]}"
    return f"{kind} `{occ.text}`{extra}\n\n```cow\n{d.line_text}\n```\nline {d.span.line}"


_PARAM = re.compile(r"^[ \t]*param[ \t]+([A-Za-z_]\w*)[ \t]+in[ \t]+([^#\n]*)", re.M)
_CONST = re.compile(r"^[ \t]*const[ \t]+([A-Za-z_]\w*)[ \t]*=[ \t]*([^#\s]*)", re.M)


def _param_at(text: str, code: str, pos: Pos) -> tuple[str, Range] | None:
    """Hover on a param or const: `$kind` anywhere, the name where it is declared
    or in an expect line's `when`: its values, and how many scenarios the file sweeps."""
    params = {m.group(1): [v.strip() for v in m.group(2).split(",") if v.strip()] for m in _PARAM.finditer(text)}
    consts = {m.group(1): m.group(2) for m in _CONST.finditer(text)}
    for m in re.finditer(r"\$?[A-Za-z_]\w*", code):
        if not m.start() <= pos.char <= m.end():
            continue
        word = m.group()
        name = word.lstrip("$")
        declared = re.match(rf"\s*(param|const)\s+{re.escape(name)}\b", code) is not None
        in_when = re.search(rf"\bwhen\b.*\b{re.escape(name)}\s*=", code) is not None
        if not (word.startswith("$") or declared or in_when):
            return None
        r = Range(Pos(pos.line, m.start()), Pos(pos.line, m.end()))
        if name in params:
            count = 1
            for vs in params.values():
                count *= max(len(vs), 1)
            values = ", ".join(f"`{v}`" for v in params[name])
            return (f"param `{name}`: the file runs once per value: {values}; `${name}` stands for it "
                    f"({count} scenario{'s' if count != 1 else ''} in all, named `NAME[{name}=...]`)"), r
        if name in consts:
            return f"const `{name}` = {consts[name]}; `${name}` stands for it", r
        return f"`${name}`: not declared in this file (a `param` or `const` of an included file?)", r
    return None


def hover(text: str, pos: Pos, index: Index | None = None) -> tuple[str, Range] | None:
    """Markdown about the word at ``pos``, and the word's range."""
    lines = _lines(text)
    if pos.line >= len(lines):
        return None
    line = lines[pos.line]
    code, _ = fmt.split_comment(line)
    if pos.char > len(code):
        return None
    pd = _param_at(text, code, pos)
    if pd is not None:
        return pd
    b = _backend_at(code, pos.char)
    if b is not None:
        spec, part, start, end = b
        return docs.backend_doc(spec, part), Range(Pos(pos.line, start), Pos(pos.line, end))
    index = index or build(text)
    occ = index.at(pos.line + 1, pos.char + 1)
    if occ is not None:
        r = span_range(occ.span, lines)
        md: str | None = None
        if occ.role == OP:
            md = docs.op_doc(occ.text)
        elif occ.role == FLAG:
            md = docs.flag_doc(occ.text, occ.op)
        elif occ.role == KWARG:
            md = docs.kwarg_doc(occ.text, occ.op)
        elif occ.role == FACT:
            md = docs.fact_doc(occ.text)
        elif occ.role == ACTOR_BUILTIN:
            md = f"`{occ.text}`: a built-in actor ({'page reclaim: swapout, swapin' if occ.text == ops.RECLAIM else 'the KSM daemon: ksm_merge'})"
        elif occ.key is not None:
            md = _name_doc(index, occ)
        if md:
            return md, r
    w = _word_at(code, pos.char)
    if w is None:
        return None
    start, end, word = w
    r = Range(Pos(pos.line, start), Pos(pos.line, end))
    word = word.lstrip("~")
    if word in docs.KEYWORDS:
        return docs.KEYWORDS[word], r
    if word in ops.FACTS:  # a bare fact (cow_copies) the index saw as a name
        return docs.fact_doc(word) or "", r
    return None


# --- completion ------------------------------------------------------------------------------

_STATEMENTS = [
    ("scenario", 'scenario "${1:what this shows}"', "the scenario's name"),
    ("ref", 'ref "${1:LKML YYYY-MM-DD, ...}"', "a source"),
    ("include", 'include "${1:prelude.cow}"', "the lines of a file in this folder"),
    ("const", "const ${1:N} = ${2:4}", "a number, used as $N"),
    ("param", "param ${1:kind} in ${2:small, thp, pte_thp, hugetlb}", "run the file once per value ($kind)"),
    ("process", "process ${1:A}", "processes at the start"),
    ("thread", "thread ${1:T} of ${2:A}", "a thread of a process"),
    ("file", "file ${1:F} = [${2:1}]", "a file and its page-cache values"),
    ("pipe", "pipe ${1:P}", "a pipe"),
    ("par", "par {\n  $0\n}", "concurrent steps"),
    ("assert", "assert ${1:A.buf == 1}", "holds in every final state"),
    ("always", "always: ${1:EXPR}", "every execution"),
    ("sometimes", "sometimes: ${1:EXPR}", "at least one execution"),
    ("never", "never: ${1:EXPR}", "no execution"),
    ("invariant", "invariant ${1:EXPR}", "every reachable state"),
    ("reachable", "reachable: ${1:EXPR}", "some reachable state, final or not"),
    ("expect", "expect ${1|pass,fail|} on ${2:anon-exclusive}", "what a backend must answer"),
]

_QUANT = r"(?:assert|always|sometimes|never|forall|exists|~\s*exists|invariant|reachable)"

SNIPPETS: tuple[tuple[str, str, str], ...] = (
    ("pin across fork", "a long-term pin, then fork, then the parent writes: does the pin follow?",
     "process A\nA: mmap(${1:buf}, anon, private, rw)\nA: write($1, 1)\nA: pin($1, write, longterm) as ${2:mr}\n"
     "A: fork() as B\nA: write($1, 2)\n\nassert $2 is A.$1\nassert B.$1 == 1\n"
     "expect pass on ${3:early-cow}, cow-fixes-1, anon-exclusive\n"),
    ("GUP-fast race", "pin_user_pages_fast racing fork(): does the pin end on the parent's page?",
     "process A\nthread T of A\nA: mmap(${1:buf}, anon, private, rw)\nA: write($1, 1)\npar {\n"
     "  T: pin($1, write, fast) as ${2:mr}\n  A: fork() as B\n}\nA: write($1, 2)\n\nalways: $2 is A.$1\n"
     "expect pass on ${3:early-cow}\nexpect fail on early-cow:wp_seq=off\n"),
)


def _ops_for(actor: str, index: Index) -> list[str]:
    if actor == ops.RECLAIM or actor == ops.KSMD:
        kind = actor
    elif actor in index.names("pin", "gup reference", "device-exclusive access"):
        kind = ops.DEVICE
    else:
        kind = ops.TASK
    return [n for n, s in ops.OPS.items() if s.actor == kind]


def _items(words: list[str], kind: str, detail: str = "") -> list[Completion]:
    return [Completion(w, kind, detail) for w in words]


def _backend_items(fragment: str) -> list[Completion]:
    if "=" in fragment.rsplit(":", 1)[-1] and ":" in fragment:
        name = fragment.rsplit(":", 1)[-1].split("=", 1)[0]
        o = options.BY_NAME.get(name)
        return [Completion(c, "option", f"{name}={c}") for c in (o.choices if o else ())]
    if ":" in fragment:
        head = fragment.split(":", 1)[0]
        try:
            model = resolve(head).model
        except SpecError:
            return []
        return [Completion(f"{k}=", "option", "|".join(o.choices), o.doc) for k, o in options.of_era(model).items()]
    out = [Completion(e.name, "backend", f"era {e.versions}", e.description) for e in eras.ERAS]
    out += [Completion(a, "backend", f"= {n}") for a, n in eras.ALIASES.items()]
    out.append(Completion(eras.NATIVE, "backend", "the real kernel"))
    out += [Completion(str(v), "version", "Linux " + str(v)) for v in releases.ALL]
    return out


def _step_args(index: Index, actor: str, op: str, before: str) -> list[Completion]:
    """Completion inside ``op(...)``: ``before`` is the text after ``(`` up to the cursor."""
    spec = ops.OPS.get(op)
    if spec is None:
        return []
    current = re.split(r"[,(]", before)[-1].strip()
    m = re.match(r"([A-Za-z_]\w*)\.\w*$", current)
    if m:  # A.|
        return _items(index.mappings_of(m.group(1)), MAPPING, f"mapping of {m.group(1)}")
    m = re.match(r"(\w+)=\w*$", current)
    if m:
        return _items(index.names(FILE), FILE, "file") if m.group(1) == "file" else []
    used = {w.strip() for w in before.split(",")}
    out: list[Completion] = []
    for g in spec.flags:
        if used & set(g.choices):
            continue
        out += [Completion(c, FLAG, f"{g.name} of {op}", g.doc) for c in g.choices]
    out += [Completion(f"{k.name}=", KWARG, f"keyword of {op}", k.doc) for k in spec.keywords if f"{k.name}=" not in before]
    kinds = {p.kind for p in spec.params}
    proc = index.process_of(actor)
    if kinds & {ops.ADDRESS, ops.ANY_ADDRESS, ops.MAPPING, ops.PART}:
        out += _items(index.mappings_of(proc), MAPPING, f"mapping of {proc}")
    if kinds & {ops.REMOTE, ops.ANY_ADDRESS}:
        out += [Completion(f"{p}.", PROCESS, "process", insert=f"{p}.") for p in index.names(PROCESS)]
    if ops.HANDLE in kinds:
        kind = "pin" if op == "unpin" else "gup reference"
        out += _items(index.names(kind), kind, kind)
    if ops.PIPE in kinds:
        out += _items(index.names(PIPE), PIPE, "pipe")
    return out


def _expression(index: Index, before: str) -> list[Completion]:
    m = re.search(r"([A-Za-z_]\w*)\.\w*$", before)
    if m:
        return _items(index.mappings_of(m.group(1)), MAPPING, f"mapping of {m.group(1)}")
    out = [Completion(f, FACT, ops.FACTS[f].kind, ops.FACTS[f].doc,
                      insert=None if 0 in ops.FACTS[f].arity else f"{f}($1)", snippet=0 not in ops.FACTS[f].arity)
           for f in ops.FACTS]
    out += [Completion(f"{p}.", PROCESS, "process") for p in index.names(PROCESS)]
    for kind in ("pin", "gup reference", "device-exclusive access", "value", "step outcome"):
        out += _items(index.names(kind), kind, kind)
    out += [Completion(f"{f}[", FILE, "file page") for f in index.names(FILE)]
    out += _items(["and", "or", "not", "implies", "is", "true", "false"], "keyword")
    return out


def completions(text: str, pos: Pos, index: Index | None = None) -> list[Completion]:
    """What may be typed at ``pos``."""
    lines = _lines(text)
    line = lines[pos.line] if pos.line < len(lines) else ""
    before = line[: pos.char]
    if fmt.split_comment(before)[1] is not None:
        return []  # in a comment
    index = index or build(text)
    # expect lines
    m = re.match(r"\s*expect\s+(\w*)$", before)
    if m:
        return _items(["pass", "fail"], "keyword")
    if re.match(r"\s*expect\s+(pass|fail)\s+\w*$", before):
        return _items(["on"], "keyword")
    m = re.match(r"\s*expect\s+(?:pass|fail)\s+on\s+(.*)$", before)
    if m:
        return _backend_items(m.group(1).split(",")[-1].strip())
    # declarations
    if re.match(r"\s*thread\s+\w+\s+of\s+\w*$", before):
        return _items(index.names(PROCESS), PROCESS, "process")
    if re.match(r"\s*(process|pipe|file|thread|scenario|ref)\b", before):
        return []
    # assertions
    if re.match(rf"\s*{_QUANT}\b", before):
        return _expression(index, before)
    # steps: ACTOR: op(args
    m = re.match(r"\s*([A-Za-z_]\w*)\s*:\s*([A-Za-z_]\w*)\s*\((.*)$", before)
    if m:
        if ")" in m.group(3):
            return _items(["as"], "keyword") if not re.search(r"\bas\b", m.group(3)) else []
        return _step_args(index, m.group(1), m.group(2), m.group(3))
    m = re.match(r"\s*([A-Za-z_]\w*)\s*:\s*(\w*)$", before)
    if m:
        return [Completion(n, OP, ops.OPS[n].signature(), ops.OPS[n].doc,
                           insert=n + ("($1)" if ops.OPS[n].params or ops.OPS[n].flags else "()"), snippet=True)
                for n in _ops_for(m.group(1), index)]
    # the start of a line: a statement or an actor
    if re.match(r"\s*\w*$", before):
        out = [Completion(k, "keyword", d, insert=s, snippet=True) for k, s, d in _STATEMENTS]
        actors = index.names(PROCESS, THREAD) + index.names("pin", "gup reference", "device-exclusive access")
        out += [Completion(a, "actor", "actor", insert=f"{a}: ") for a in actors]
        out += [Completion(a, "actor", "built-in actor", insert=f"{a}: ") for a in ops.BUILTIN_ACTORS]
        if not text.strip() or not any(ln.strip() for i, ln in enumerate(lines) if i != pos.line):
            out += [Completion(name, "snippet", doc, insert=body, snippet=True) for name, doc, body in SNIPPETS]
        return out
    return []


# --- names: definition, references, rename --------------------------------------------------------


def _occ_at(text: str, pos: Pos, index: Index | None) -> tuple[Index, Occurrence | None]:
    index = index or build(text)
    return index, index.at(pos.line + 1, pos.char + 1)


def definition(text: str, pos: Pos, index: Index | None = None) -> list[Range]:
    index, occ = _occ_at(text, pos, index)
    if occ is None or occ.key is None:
        return []
    lines = _lines(text)
    return [span_range(d.span, lines) for d in index.definition_for(occ)]


def references(text: str, pos: Pos, include_declaration: bool = True, index: Index | None = None) -> list[Range]:
    index, occ = _occ_at(text, pos, index)
    if occ is None or occ.key is None:
        return []
    lines = _lines(text)
    return [span_range(o.span, lines) for o in index.uses(occ.key) if include_declaration or not o.is_def]


def rename(text: str, pos: Pos, new_name: str, index: Index | None = None) -> list[Edit] | str:
    """The edits that rename the name at ``pos``, or why not."""
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", new_name):
        return f"`{new_name}` is not a name: letters, digits and `_`, not starting with a digit"
    if new_name in ops.keywords() or new_name in ops.BUILTIN_ACTORS:
        return f"`{new_name}` is a keyword"
    index, occ = _occ_at(text, pos, index)
    if occ is None or occ.key is None:
        return "no name here"
    if any(o.key == (occ.key[0], new_name) for o in index.occurrences):
        return f"`{new_name}` is already used"
    lines = _lines(text)
    return [Edit(span_range(o.span, lines), new_name) for o in index.uses(occ.key)]


# --- symbols and formatting -------------------------------------------------------------------------


def _whole_line(lines: list[str], line: int) -> Range:
    """A 1-based line as a range, without its comment and indentation."""
    raw = lines[line - 1] if 0 < line <= len(lines) else ""
    code = fmt.split_comment(raw)[0].rstrip()
    start = len(code) - len(code.lstrip())
    return Range(Pos(line - 1, start), Pos(line - 1, len(code)))


def _stmt(lines: list[str], line: int) -> str:
    return " ".join(fmt.split_comment(lines[line - 1])[0].split()) if 0 < line <= len(lines) else ""


def symbols(text: str, index: Index | None = None) -> list[Symbol]:
    """The outline: declarations, steps, par blocks (with their steps), assertions, expect lines."""
    index = index or build(text)
    lines = _lines(text)
    out: list[Symbol] = []

    def step_symbol(st: ast.Step) -> Symbol:
        r = _whole_line(lines, st.span.line)
        sel = span_range(Span(st.op.span.line, st.op.span.col, st.op.span.end_col), lines)
        return Symbol(_stmt(lines, st.span.line), "step", st.op.text, r, sel)

    for item in index.module.items:
        if isinstance(item, ast.Step):
            out.append(step_symbol(item))
        elif isinstance(item, ast.ParBlock):
            first = item.span.line
            last = max((s.span.line for s in item.steps), default=first)
            end = next((n for n in range(last + 1, len(lines) + 1) if lines[n - 1].strip().startswith("}")), last)
            r = Range(Pos(first - 1, _whole_line(lines, first).start.char), _whole_line(lines, end).end)
            actors = ", ".join(dict.fromkeys(s.actor.text for s in item.steps))
            out.append(Symbol(f"par {{ {actors} }}", "par", f"{len(item.steps)} concurrent steps", r,
                              _whole_line(lines, first), tuple(step_symbol(s) for s in item.steps)))
        elif isinstance(item, ast.Assertion):
            r = _whole_line(lines, item.span.line)
            out.append(Symbol(_stmt(lines, item.span.line), "assertion", item.quantifier, r, r))
        elif isinstance(item, ast.ExpectLine):
            r = _whole_line(lines, item.span.line)
            out.append(Symbol(_stmt(lines, item.span.line), "expect", item.outcome, r, r))
        elif isinstance(item, ast.ProcessDecl | ast.ThreadDecl | ast.FileDecl | ast.PipeDecl):
            r = _whole_line(lines, item.span.line)
            out.append(Symbol(_stmt(lines, item.span.line), "declaration", type(item).__name__, r, r))
        elif isinstance(item, ast.ScenarioName):
            r = _whole_line(lines, item.span.line)
            out.append(Symbol(item.text or "scenario", "scenario", "scenario", r, r))
    return out


def formatting(text: str) -> list[Edit] | None:
    """One edit replacing the whole text with its canonical layout; [] when it is
    already canonical, None when it does not parse."""
    try:
        new = fmt.format_text(text)
    except (CowError, fmt.FormatError):
        return None
    if new == text:
        return []
    lines = _lines(text)
    return [Edit(Range(Pos(0, 0), Pos(len(lines) - 1, len(lines[-1]))), new)]


__all__ = [
    "Action", "Completion", "Edit", "Pos", "Problem", "Range", "SNIPPETS", "Symbol", "code_actions", "completions",
    "definition", "formatting", "hover", "problems", "references", "rename", "span_range", "symbols",
]
