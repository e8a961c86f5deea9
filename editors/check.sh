#!/usr/bin/env bash
# Editor checks, run by .ci/run (and by hand: bash editors/check.sh).
#
#  1. the generated word lists are up to date with the op registry (editors/generate.py --check);
#  2. the Pygments lexer is installed: `pygmentize -N x.cow` says cow, `-l cow` works;
#  3. Vim: headless syntax test (every word's group, ftdetect, indent);
#  4. Emacs: cow-mode.el byte-compiles without warnings, and its ERT tests pass;
#  5. VS Code: vscode-tmgrammar-test on the TextMate grammar; the extension's node tests
#     (activate() against a stand-in vscode module, the problem matchers on cowdsl's own
#     output, the snippets checked by cowdsl, the language server over vscode-jsonrpc);
#     the .vsix built by @vscode/vsce with its dependencies (vscode-languageclient);
#  6. the language server (`cowdsl lsp`) in the editors, headless: Neovim through
#     editors/neovim/lua/cowdsl_lsp.lua, Emacs through Eglot and editors/emacs/cow-eglot.el:
#     a typo's diagnostic, hover, and the quick fix applied.
#
# Missing tools are installed: vim, emacs-nox, elpa-eglot (Emacs 28 has no Eglot) and
# neovim with apt-get (as root), the npm tools into a temporary prefix, the extension's
# dependencies (package-lock.json) into a copy of editors/vscode (never into the tree).  A tool that cannot be installed is reported
# on a line starting with FAILED and makes the script exit 1; nothing is
# skipped silently.
set -uo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

TMGRAMMAR_TEST=vscode-tmgrammar-test@0.1.3
VSCE=@vscode/vsce@3.9.2

passed=0
failed=0
ok() { echo "ok: $*"; passed=$((passed + 1)); }
bad() { echo "FAILED: $*"; failed=$((failed + 1)); }

if command -v python >/dev/null 2>&1; then py=python; else py=python3; fi

# --- tools ----------------------------------------------------------------------------
have_vim() { command -v vim >/dev/null 2>&1 && vim --version 2>/dev/null | grep -q '+syntax' && vim --version | grep -q '+eval'; }
apt_pkgs=()
have_vim || apt_pkgs+=(vim)
command -v emacs >/dev/null 2>&1 || apt_pkgs+=(emacs-nox)
# Eglot: built into Emacs 29+; Debian's elpa-eglot on 28 (package.el finds it under site-lisp/elpa)
emacs_pkgs="(progn (require 'package) (add-to-list 'package-directory-list \"/usr/share/emacs/site-lisp/elpa\") (package-initialize))"
have_eglot() { emacs --batch -Q --eval "$emacs_pkgs" --eval '(kill-emacs (if (locate-library "eglot") 0 1))' >/dev/null 2>&1; }
if ! command -v emacs >/dev/null 2>&1 || ! have_eglot; then apt_pkgs+=(elpa-eglot); fi
command -v nvim >/dev/null 2>&1 || apt_pkgs+=(neovim)
command -v npm >/dev/null 2>&1 || apt_pkgs+=(nodejs npm)
if ((${#apt_pkgs[@]})); then
  echo "installing with apt-get: ${apt_pkgs[*]}"
  if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
    echo "FAILED to install ${apt_pkgs[*]}: needs root and apt-get (install them, then run this again)"
  elif ! { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${apt_pkgs[@]}"; } >"$tmp/apt.log" 2>&1; then
    tail -n 20 "$tmp/apt.log"
    echo "FAILED to install ${apt_pkgs[*]} with apt-get (log above)"
  fi
fi
have_vim || bad "vim with +syntax and +eval is not installed: the Vim syntax is untested"
command -v emacs >/dev/null 2>&1 || bad "emacs is not installed: cow-mode.el is untested"
command -v nvim >/dev/null 2>&1 || bad "neovim is not installed: the Neovim LSP configuration is untested"

npm_bin=""
if command -v npm >/dev/null 2>&1; then
  echo "installing with npm into a temporary prefix: $TMGRAMMAR_TEST $VSCE"
  if npm install --prefix "$tmp/npm" --no-audit --no-fund --no-save --loglevel=error \
       "$TMGRAMMAR_TEST" "$VSCE" >"$tmp/npm.log" 2>&1; then
    npm_bin="$tmp/npm/node_modules/.bin"
  else
    tail -n 20 "$tmp/npm.log"
    bad "npm could not install $TMGRAMMAR_TEST and $VSCE (log above): the TextMate grammar is untested, no .vsix"
  fi
else
  bad "npm is not installed: the TextMate grammar is untested, no .vsix"
fi

# The language server's Python side: cowdsl and pygls in the same Python.
have_lsp=0
if "$py" -c 'import cowdsl.lsp.protocol' >"$tmp/pygls.out" 2>&1; then have_lsp=1
else
  tail -n 3 "$tmp/pygls.out"
  bad "$py cannot import cowdsl.lsp.protocol (is pygls installed?): the language server is untested in the editors"
fi

# --- 1. generated files -------------------------------------------------------------------
if "$py" editors/generate.py --check; then ok "generated editor files are up to date"
else bad "generated editor files are stale: run python editors/generate.py"; fi

# --- 2. Pygments ----------------------------------------------------------------------------
sample="$root/editors/tests/words.cow"
if out=$("$py" -m pygments -N x.cow 2>&1) && [ "$out" = cow ] \
   && "$py" -m pygments -l cow -f terminal "$sample" >/dev/null 2>"$tmp/pyg.err" && ! [ -s "$tmp/pyg.err" ]; then
  ok "pygments: -N x.cow is cow, -l cow highlights"
else
  bad "pygments: the cow lexer is not registered (got \`${out:-}\`; is cowdsl installed with its entry points?)"
fi

# --- 3. Vim ------------------------------------------------------------------------------------
if have_vim; then
  # run.vim quits with :qall! only when every check passed; `-c cquit` catches a script that stops early.
  if vim -Nu NONE -es -S editors/vim/test/run.vim -c cquit </dev/null >"$tmp/vim.out" 2>&1 \
     && grep -q '^vim: [0-9]* checks passed' "$tmp/vim.out"; then
    ok "$(grep '^vim:' "$tmp/vim.out")"
  else
    cat "$tmp/vim.out"
    bad "vim syntax test"
  fi
fi

# --- 4. Emacs ------------------------------------------------------------------------------------
if command -v emacs >/dev/null 2>&1; then
  mkdir -p "$tmp/el" && cp editors/emacs/cow-mode.el "$tmp/el/"
  if emacs --batch -Q --eval '(setq byte-compile-error-on-warn t)' -f batch-byte-compile "$tmp/el/cow-mode.el" \
       >"$tmp/bc.out" 2>&1; then
    ok "emacs: cow-mode.el byte-compiles without warnings"
  else
    cat "$tmp/bc.out"
    bad "emacs: cow-mode.el byte-compile"
  fi
  if emacs --batch -Q -L editors/emacs -l editors/emacs/test/cow-mode-test.el \
       -f ert-run-tests-batch-and-exit >"$tmp/ert.out" 2>&1; then
    ok "emacs: $(grep '^Ran ' "$tmp/ert.out")"
  else
    cat "$tmp/ert.out"
    bad "emacs ERT tests"
  fi
fi

# --- 5. VS Code ----------------------------------------------------------------------------------
if [ -n "$npm_bin" ]; then
  if (cd editors/vscode && "$npm_bin/vscode-tmgrammar-test" -c 'tests/*.cow') >"$tmp/tm.out" 2>&1; then
    ok "vscode-tmgrammar-test: $(grep -c 'run successfuly' "$tmp/tm.out") grammar test file(s)"
  else
    cat "$tmp/tm.out"
    bad "vscode-tmgrammar-test"
  fi
  # The extension in a copy of its folder, its dependencies from package-lock.json.
  ext="$tmp/vscode"
  mkdir -p "$ext"
  tar -C editors/vscode --exclude=./node_modules --exclude='*.vsix' -cf - . | tar -C "$ext" -xf -
  if (cd "$ext" && npm ci --omit=dev --no-audit --no-fund --loglevel=error) >"$tmp/npmci.out" 2>&1; then
    if [ "$have_lsp" = 1 ] && (cd "$ext" && COWDSL_PYTHON="$py" node --test tests/) >"$tmp/node.out" 2>&1; then
      ok "vscode extension: $(sed -n 's/^# pass //p' "$tmp/node.out") node tests passed"
    elif [ "$have_lsp" = 1 ]; then
      cat "$tmp/node.out"
      bad "vscode extension node tests"
    fi
    version=$("$py" -c 'import json; print(json.load(open("editors/vscode/package.json"))["version"])')
    vsix="editors/vscode/cowdsl-$version.vsix"
    rm -f "$vsix"
    if (cd "$ext" && "$npm_bin/vsce" package --allow-missing-repository --skip-license -o "$root/$vsix") \
          >"$tmp/vsce.out" 2>&1 \
       && "$py" - "$vsix" <<'EOF'
import sys, zipfile
names = set(zipfile.ZipFile(sys.argv[1]).namelist())
need = {"extension/package.json", "extension/syntaxes/cow.tmLanguage.json", "extension/language-configuration.json",
        "extension/extension.js", "extension/lib.js", "extension/snippets/cow.json",
        "extension/node_modules/vscode-languageclient/package.json"}
sys.exit(0 if need <= names and not any(n.startswith("extension/tests/") for n in names)
         else f"{sys.argv[1]}: missing {sorted(need - names)} or has tests/")
EOF
    then
      ok "vsce: built $vsix (with vscode-languageclient)"
    else
      cat "$tmp/vsce.out"
      bad "vsce package"
    fi
  else
    tail -n 20 "$tmp/npmci.out"
    bad "npm ci in editors/vscode (the extension's dependencies): no node tests, no .vsix"
  fi
fi

# --- 6. the language server in Neovim and Emacs ----------------------------------------------
if [ "$have_lsp" = 1 ]; then
  mkdir -p "$tmp/lsp" "$tmp/el2"
  printf 'process A\nA: mmap(buf)\nA: pin(buf, longtem) as mr\nassert alive(A)\n' >"$tmp/lsp/typo.cow"
  if command -v nvim >/dev/null 2>&1; then
    if COWDSL_PYTHON="$py" COWDSL_FILE="$tmp/lsp/typo.cow" timeout 180 \
         nvim --headless -u NONE -i NONE -c 'luafile editors/neovim/test/lsp_test.lua' -c 'cquit 1' \
         </dev/null >"$tmp/nvim.out" 2>&1 && grep -q '^neovim: [0-9]* checks passed' "$tmp/nvim.out"; then
      ok "$(grep '^neovim:' "$tmp/nvim.out") ($(nvim --version | head -n 1), lua/cowdsl_lsp.lua)"
    else
      cat "$tmp/nvim.out"
      bad "neovim LSP test"
    fi
  fi
  if command -v emacs >/dev/null 2>&1 && have_eglot; then
    cp editors/emacs/cow-mode.el editors/emacs/cow-eglot.el "$tmp/el2/"
    if emacs --batch -Q --eval "$emacs_pkgs" -L "$tmp/el2" --eval '(setq byte-compile-error-on-warn t)' \
         -f batch-byte-compile "$tmp/el2/cow-eglot.el" >"$tmp/bc2.out" 2>&1; then
      ok "emacs: cow-eglot.el byte-compiles without warnings"
    else
      cat "$tmp/bc2.out"
      bad "emacs: cow-eglot.el byte-compile"
    fi
    if COWDSL_PYTHON="$py" COWDSL_FILE="$tmp/lsp/typo.cow" timeout 180 emacs --batch -Q -L editors/emacs \
         -l editors/emacs/test/cow-eglot-test.el -f ert-run-tests-batch-and-exit >"$tmp/eglot.out" 2>&1; then
      ok "emacs eglot: $(grep '^Ran ' "$tmp/eglot.out")"
    else
      cat "$tmp/eglot.out"
      bad "emacs eglot test"
    fi
  elif command -v emacs >/dev/null 2>&1; then
    bad "Eglot is not available to emacs (Emacs 29+, or elpa-eglot): the Emacs LSP configuration is untested"
  fi
fi

echo "editors: $passed passed, $failed failed"
[ "$failed" = 0 ]
