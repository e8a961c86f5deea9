'use strict';
// The extension's pieces that run without VS Code, against the real cowdsl:
// the problem matchers on cowdsl's own output, the snippets checked by
// `cowdsl check`, and the language server started as the extension starts it,
// spoken to with vscode-jsonrpc (the library under vscode-languageclient).
// COWDSL_PYTHON: a Python with cowdsl (and pygls) installed; default python3.
const test = require('node:test');
const assert = require('node:assert');
const cp = require('child_process');
const fs = require('fs');
const os = require('os');
const path = require('path');
const lib = require('../lib');
const pkg = require('../package.json');
const snippets = require('../snippets/cow.json');

const PY = process.env.COWDSL_PYTHON || 'python3';
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'cowdsl-vscode-'));
test.after(() => fs.rmSync(tmp, { recursive: true, force: true }));

function cowdsl(...args) {
  return cp.spawnSync(PY, ['-m', 'cowdsl', ...args], { encoding: 'utf8' });
}

function pattern(name) {
  const p = pkg.contributes.problemPatterns.find((x) => x.name === name);
  return { re: new RegExp(p.regexp), p };
}

test('the problem matcher reads cowdsl check errors', () => {
  const file = path.join(tmp, 'typo.cow');
  fs.writeFileSync(file, 'process A\nA: mmap(buf)\nA: pin(buf, longtem) as mr\nassert alive(A)\n');
  const r = cowdsl('check', file);
  assert.strictEqual(r.status, 2, r.stdout + r.stderr);
  const { re, p } = pattern('cowdsl');
  assert.strictEqual(re.source, lib.ERROR_PATTERN.source);
  const lines = (r.stdout + r.stderr).split('\n').filter((l) => re.test(l));
  assert.strictEqual(lines.length, 1, r.stdout + r.stderr);
  const m = re.exec(lines[0]);
  assert.strictEqual(m[p.file], file);
  assert.strictEqual(m[p.line], '3');
  assert.strictEqual(m[p.column], '13');
  assert.strictEqual(m[p.severity], 'error');
  assert.strictEqual(m[p.message], 'unknown flag `longtem` for `pin`');
});

test('the verdict matcher reads a scenario not as expected', () => {
  const file = path.join(tmp, 'wrong.cow');
  fs.writeFileSync(file, 'process A\nA: mmap(buf)\nA: write(buf, 1)\nassert A.buf == 2\nexpect pass on anon-exclusive\n');
  const r = cowdsl('run', file);
  assert.strictEqual(r.status, 1, r.stdout + r.stderr);
  const { re, p } = pattern('cowdsl-verdict');
  const m = (r.stdout + r.stderr).split('\n').map((l) => re.exec(l)).find(Boolean);
  assert.ok(m, r.stdout);
  assert.strictEqual(m[p.file], file);
  for (const matcher of pkg.contributes.problemMatchers) {
    assert.ok(pkg.contributes.problemPatterns.some((x) => `$${x.name}` === matcher.pattern), matcher.name);
  }
});

test('every snippet is a scenario cowdsl accepts', () => {
  for (const [name, s] of Object.entries(snippets)) {
    if (!['Pin across fork', 'GUP-fast race'].includes(name)) continue;
    const file = path.join(tmp, name.replace(/\W+/g, '-') + '.cow');
    fs.writeFileSync(file, lib.expandSnippet(s.body));
    const r = cowdsl('run', file);
    assert.strictEqual(r.status, 0, `${name}:\n${fs.readFileSync(file, 'utf8')}\n${r.stdout}${r.stderr}`);
  }
});

test('settings make the command lines', () => {
  assert.deepStrictEqual(lib.serverCommand({}, '/w'), { command: 'cowdsl', args: ['lsp'] });
  assert.deepStrictEqual(lib.serverCommand({ path: '.venv/bin/cowdsl', serverArgs: ['lsp'] }, '/w'),
    { command: '/w/.venv/bin/cowdsl', args: ['lsp'] });
  assert.deepStrictEqual(lib.runCommand({ path: 'cowdsl', runArgs: ['--trace'] }, '/w', 'x.cow'),
    { command: 'cowdsl', args: ['run', '--trace', 'x.cow'] });
  assert.strictEqual(lib.expandSnippet(['a ${1:buf} $1', 'b ${2|pass,fail|} $2$0']), 'a buf buf\nb pass pass');
});

test('the language server answers as the extension starts it', async () => {
  const rpc = require('vscode-jsonrpc/node');
  const { command, args } = lib.serverCommand({ path: PY, serverArgs: ['-m', 'cowdsl.lsp.server'] }, tmp);
  const child = cp.spawn(command, args, { stdio: ['pipe', 'pipe', 'inherit'] });
  const exited = new Promise((resolve) => child.once('exit', resolve));
  const conn = rpc.createMessageConnection(new rpc.StreamMessageReader(child.stdout), new rpc.StreamMessageWriter(child.stdin));
  const published = new Promise((resolve) => conn.onNotification('textDocument/publishDiagnostics', resolve));
  conn.listen();
  try {
    const init = await conn.sendRequest('initialize', { processId: process.pid, rootUri: null, capabilities: {} });
    assert.strictEqual(init.serverInfo.name, 'cowdsl');
    assert.ok(init.capabilities.hoverProvider && init.capabilities.completionProvider);
    conn.sendNotification('initialized', {});
    const uri = 'file://' + path.join(tmp, 'typo.cow');
    const text = 'process A\nA: mmap(buf)\nA: pin(buf, longtem) as mr\nassert alive(A)\n';
    conn.sendNotification('textDocument/didOpen', { textDocument: { uri, languageId: 'cow', version: 1, text } });
    const diags = await published;
    assert.strictEqual(diags.diagnostics.length, 1);
    assert.match(diags.diagnostics[0].message, /did you mean `longterm`/);
    const hover = await conn.sendRequest('textDocument/hover', { textDocument: { uri }, position: { line: 2, character: 4 } });
    assert.match(hover.contents.value, /pin_user_pages/);
    const items = await conn.sendRequest('textDocument/completion', { textDocument: { uri }, position: { line: 2, character: 19 } });
    assert.ok(items.items.some((i) => i.label === 'longterm'));
    await conn.sendRequest('shutdown');
    await conn.sendNotification('exit');
    assert.strictEqual(await exited, 0);  // the server ends when the client says exit
  } finally {
    conn.dispose();
    child.kill();
  }
});
