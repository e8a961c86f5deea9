-- cowdsl's language server for .cow buffers: diagnostics, hover, completion,
-- go to definition, references, rename, code actions, outline, formatting.
--
--   vim.opt.runtimepath:append('/path/to/cowdsl/editors/neovim')
--   require('cowdsl_lsp').setup()                  -- runs `cowdsl lsp`
--   require('cowdsl_lsp').setup({ cmd = { '/path/to/.venv/bin/cowdsl', 'lsp' } })
--
-- Uses vim.lsp.start (Neovim 0.8+), or vim.lsp.start_client on 0.7.
local M = {}

M.defaults = {
  cmd = { 'cowdsl', 'lsp' },
  name = 'cowdsl',
  -- the folder of the nearest .git (or of the file)
  root_markers = { '.git' },
}

local function root_of(bufnr, markers)
  local path = vim.api.nvim_buf_get_name(bufnr)
  local dir = vim.fn.fnamemodify(path, ':p:h')
  for _, m in ipairs(markers) do
    local found = vim.fn.finddir(m, dir .. ';')
    if found == '' then
      found = vim.fn.findfile(m, dir .. ';')
    end
    if found ~= '' then
      return vim.fn.fnamemodify(found, ':p:h:h')
    end
  end
  return dir
end

local started = {}  -- root -> client id, for Neovim 0.7

-- The default on_attach: K hovers and gd goes to the definition, in .cow buffers
-- (Neovim 0.10 maps K itself; older ones do not).
function M.on_attach(_, bufnr)
  local function map(lhs, fn, desc)
    if vim.fn.maparg(lhs, 'n') == '' or vim.fn.has('nvim-0.10') == 0 then
      vim.keymap.set('n', lhs, fn, { buffer = bufnr, desc = desc })
    end
  end
  map('K', vim.lsp.buf.hover, 'cowdsl: hover')
  map('gd', vim.lsp.buf.definition, 'cowdsl: go to definition')
end

function M.start(bufnr, opts)
  opts = vim.tbl_deep_extend('force', M.defaults, opts or {})
  bufnr = bufnr or vim.api.nvim_get_current_buf()
  local config = {
    name = opts.name,
    cmd = opts.cmd,
    root_dir = root_of(bufnr, opts.root_markers),
    on_attach = opts.on_attach or M.on_attach,
    capabilities = opts.capabilities,
  }
  if vim.lsp.start then
    return vim.lsp.start(config, { bufnr = bufnr })
  end
  local id = started[config.root_dir]
  if not id or not vim.lsp.get_client_by_id(id) then
    id = vim.lsp.start_client(config)
    started[config.root_dir] = id
  end
  if id then
    vim.lsp.buf_attach_client(bufnr, id)
  end
  return id
end

function M.setup(opts)
  local group = vim.api.nvim_create_augroup('cowdsl_lsp', { clear = true })
  -- *.cow is filetype `cow` (editors/vim/ftdetect does the same for Vim)
  vim.api.nvim_create_autocmd({ 'BufRead', 'BufNewFile' }, {
    group = group,
    pattern = '*.cow',
    callback = function(args)
      if vim.bo[args.buf].filetype ~= 'cow' then
        vim.bo[args.buf].filetype = 'cow'
      end
    end,
  })
  vim.api.nvim_create_autocmd('FileType', {
    group = group,
    pattern = 'cow',
    callback = function(args)
      M.start(args.buf, opts)
    end,
  })
end

return M
