-- Headless test of lua/cowdsl_lsp.lua against the real server (editors/check.sh):
--   COWDSL_PYTHON=python3 COWDSL_FILE=typo.cow nvim --headless -u NONE -l? ... -c 'luafile editors/neovim/test/lsp_test.lua'
-- Prints `neovim: N checks passed` and quits 0, or the failure and quits 1.
local root = vim.fn.getcwd()
vim.opt.runtimepath:append(root .. '/editors/neovim')
local py = os.getenv('COWDSL_PYTHON') or 'python3'
local file = assert(os.getenv('COWDSL_FILE'), 'COWDSL_FILE: a .cow file with the typo `longtem` on line 3')
local passed = 0

local function out(s)
  io.stdout:write(s .. '\n')
end

local function check(cond, what)
  if not cond then
    out('FAILED: neovim: ' .. what)
    vim.cmd('cquit 1')
  end
  passed = passed + 1
end

require('cowdsl_lsp').setup({ cmd = { py, '-m', 'cowdsl.lsp.server' } })
vim.cmd('edit ' .. vim.fn.fnameescape(file))
check(vim.bo.filetype == 'cow', 'filetype cow, got ' .. vim.bo.filetype)

check(vim.wait(30000, function() return #vim.diagnostic.get(0) > 0 end, 50), 'diagnostics arrived')
local d = vim.diagnostic.get(0)[1]
check(d.lnum == 2 and d.col == 12, ('diagnostic at 3:13, got %d:%d'):format(d.lnum + 1, d.col + 1))
check(d.message:find('did you mean `longterm`', 1, true) ~= nil, 'diagnostic message: ' .. d.message)

local uri = vim.uri_from_bufnr(0)
local function request(method, params)
  local res = vim.lsp.buf_request_sync(0, method, params, 20000) or {}
  for _, r in pairs(res) do
    if r.result then
      return r.result
    end
  end
  return nil
end

local hover = request('textDocument/hover', { textDocument = { uri = uri }, position = { line = 2, character = 4 } })
check(hover and hover.contents.value:find('pin_user_pages', 1, true), 'hover on pin names the kernel function')

local comp = request('textDocument/completion', { textDocument = { uri = uri }, position = { line = 2, character = 19 } })
local labels = {}
for _, item in ipairs((comp and (comp.items or comp)) or {}) do
  labels[item.label] = true
end
check(labels['longterm'], 'completion offers longterm')

local actions = request('textDocument/codeAction', {
  textDocument = { uri = uri },
  range = { start = { line = 2, character = 12 }, ['end'] = { line = 2, character = 19 } },
  context = { diagnostics = {} },
})
check(actions and actions[1] and actions[1].title == 'Replace `longtem` with `longterm`', 'the quick fix')
vim.lsp.util.apply_workspace_edit(actions[1].edit, 'utf-16')
check(vim.api.nvim_buf_get_lines(0, 2, 3, false)[1] == 'A: pin(buf, longterm) as mr', 'the quick fix applied')

out(('neovim: %d checks passed'):format(passed))
vim.cmd('qall!')
