"""The parser's table cache never loads a pickle another user could have planted."""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from cowdsl.syntax import parser

MARK = "cowdsl-hostile-cache-ran"  # in the real temp dir, not the planted one


class _Boom:
    def __reduce__(self):  # unpickling this writes a marker file: code execution
        return (os.system, (f"touch {os.path.join(tempfile.gettempdir(), MARK)}",))


def _plant(path: Path) -> None:
    path.write_bytes(pickle.dumps(_Boom()))


def _check_in_child(env: dict, cwd: Path) -> subprocess.CompletedProcess:
    code = ("from cowdsl.load import load_text\n"
            "load_text('process A\\nA: mmap(buf, anon, private, rw)\\nassert true\\n')\n")
    return subprocess.run([sys.executable, "-c", code], env=env, cwd=cwd, capture_output=True, text=True, timeout=60)


@pytest.fixture
def marker():
    m = Path(tempfile.gettempdir()) / MARK
    m.unlink(missing_ok=True)
    yield m
    m.unlink(missing_ok=True)


def test_a_pickle_planted_in_the_shared_temp_dir_is_never_loaded(tmp_path, marker):
    # Regression: Lark(cache=True) read .lark_*.tmp from the shared temp dir, a
    # predictable name another local user can plant a pickle under.
    shared = tmp_path / "shared-tmp"
    shared.mkdir()
    make = ("import lark\nfrom cowdsl.syntax.parser import grammar_text\n"
            "lark.Lark(grammar_text(), parser='lalr', propagate_positions=True, maybe_placeholders=True, cache=True)\n")
    subprocess.run([sys.executable, "-c", make], env={**os.environ, "TMPDIR": str(shared)}, cwd=tmp_path, check=True,
                   timeout=60)
    (legit,) = shared.glob(".lark_*")  # the name Lark's default cache uses
    first_line = legit.read_bytes().split(b"\n", 1)[0]
    legit.write_bytes(first_line + b"\n" + pickle.dumps(_Boom()))
    env = {**os.environ, "TMPDIR": str(shared), "XDG_CACHE_HOME": str(tmp_path / "cache")}
    r = _check_in_child(env, tmp_path)
    assert r.returncode == 0, r.stderr
    assert not marker.exists()


def test_a_cache_folder_others_can_write_is_not_used(tmp_path, marker, monkeypatch):
    folder = tmp_path / "cache" / "cowdsl"
    folder.mkdir(parents=True)
    folder.chmod(0o777)
    with monkeypatch.context() as m:  # the folder is refused, whatever the user's own cache folder is
        m.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
        assert parser.cache_file(parser.grammar_text()) is None
    env = {**os.environ, "XDG_CACHE_HOME": str(tmp_path / "cache")}
    digest_files = []
    # whatever name the cache would have, plant it
    import hashlib

    import lark
    digest = hashlib.sha256(f"{lark.__version__}\n{parser.grammar_text()}".encode()).hexdigest()[:20]
    _plant(folder / f"grammar-{digest}.lalr")
    digest_files.append(folder / f"grammar-{digest}.lalr")
    r = _check_in_child(env, tmp_path)
    assert r.returncode == 0, r.stderr
    assert not marker.exists()


def test_a_cache_file_others_can_write_is_not_used(tmp_path, marker, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    path = parser.cache_file(parser.grammar_text())
    assert path is not None and Path(path).parent.stat().st_mode & 0o777 == 0o700
    _plant(Path(path))
    os.chmod(path, 0o666)
    assert parser.cache_file(parser.grammar_text()) is None
    r = _check_in_child({**os.environ, "XDG_CACHE_HOME": str(tmp_path / "cache")}, tmp_path)
    assert r.returncode == 0, r.stderr
    assert not marker.exists()


def test_a_symlinked_cache_folder_is_not_used(tmp_path, monkeypatch):
    real = tmp_path / "elsewhere"
    real.mkdir(mode=0o700)
    (tmp_path / "cache").mkdir()
    (tmp_path / "cache" / "cowdsl").symlink_to(real)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    assert parser.cache_file(parser.grammar_text()) is None


def test_the_own_cache_is_used_and_parses(tmp_path):
    env = {**os.environ, "XDG_CACHE_HOME": str(tmp_path / "cache")}
    assert _check_in_child(env, tmp_path).returncode == 0
    files = list((tmp_path / "cache" / "cowdsl").glob("grammar-*.lalr"))
    assert len(files) == 1 and files[0].stat().st_mode & 0o022 == 0
    assert _check_in_child(env, tmp_path).returncode == 0  # and loads it again
