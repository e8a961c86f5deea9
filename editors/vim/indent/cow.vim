" Vim indent file: cowdsl scenarios (.cow): the steps of a `par { ... }` block
if exists("b:did_indent")
  finish
endif
let b:did_indent = 1

setlocal indentexpr=CowIndent(v:lnum) indentkeys=0},o,O,!^F autoindent
let b:undo_indent = "setlocal indentexpr< indentkeys< autoindent<"

if exists("*CowIndent")
  finish
endif

function! CowIndent(lnum) abort
  let prev = prevnonblank(a:lnum - 1)
  if prev == 0
    return 0
  endif
  let ind = indent(prev)
  if getline(prev) =~# '{\s*\%(#.*\)\=$'
    let ind += shiftwidth()
  endif
  if getline(a:lnum) =~# '^\s*}'
    let ind -= shiftwidth()
  endif
  return max([ind, 0])
endfunction
