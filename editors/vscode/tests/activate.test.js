'use strict';
// extension.js's activate() against a stand-in for the `vscode` module and the
// language client: what it registers, how it starts the server, and the task
// "Run scenario" executes.  (VS Code itself is not run here.)
const test = require('node:test');
const assert = require('node:assert');
const Module = require('module');
const pkg = require('../package.json');

function fakeVscode(config, editor) {
  const log = { commands: {}, providers: {}, executed: [], clients: [], warnings: [] };
  class Task {
    constructor(definition, scope, name, source, execution, matchers) {
      Object.assign(this, { definition, scope, name, source, execution, matchers });
    }
  }
  class ProcessExecution {
    constructor(command, args, options) { Object.assign(this, { command, args, options }); }
  }
  const vscode = {
    Task, ProcessExecution,
    TaskScope: { Workspace: 'workspace' },
    TaskGroup: { Build: 'build', Test: 'test' },
    TaskRevealKind: { Always: 'always' },
    Uri: { file: (p) => ({ fsPath: p }) },
    workspace: {
      workspaceFolders: [{ uri: { fsPath: '/w' } }],
      getWorkspaceFolder: () => ({ uri: { fsPath: '/w' } }),
      getConfiguration: () => ({ get: (k, d) => (k in config ? config[k] : d) }),
      onDidChangeConfiguration: () => ({ dispose() {} }),
      openTextDocument: async () => editor.document,
    },
    window: {
      activeTextEditor: editor,
      createOutputChannel: () => ({ dispose() {} }),
      showErrorMessage: async () => undefined,
      showWarningMessage: (m) => log.warnings.push(m),
    },
    commands: {
      registerCommand: (name, fn) => { log.commands[name] = fn; return { dispose() {} }; },
      executeCommand: async () => undefined,
    },
    tasks: {
      registerTaskProvider: (type, p) => { log.providers[type] = p; return { dispose() {} }; },
      executeTask: async (t) => { log.executed.push(t); },
    },
  };
  class LanguageClient {
    constructor(id, name, server, client) {
      Object.assign(this, { id, name, server, client });
      log.clients.push(this);
    }
    async start() { this.started = true; }
    async stop() { this.stopped = true; }
  }
  return { vscode, lc: { LanguageClient }, log };
}

function load(fake) {
  const orig = Module._load;
  Module._load = function (request, ...rest) {
    if (request === 'vscode') return fake.vscode;
    if (request === 'vscode-languageclient/node') return fake.lc;
    return orig.call(this, request, ...rest);
  };
  try {
    delete require.cache[require.resolve('../extension')];
    return require('../extension');
  } finally {
    Module._load = orig;
  }
}

test('activate starts cowdsl lsp and registers the commands and the task provider', async () => {
  const doc = { languageId: 'cow', fileName: '/w/s.cow', isDirty: true, isUntitled: false, save: async () => { doc.isDirty = false; } };
  const fake = fakeVscode({ path: 'cowdsl' }, { document: doc });
  const ext = load(fake);
  await ext.activate({ subscriptions: [] });
  const [client] = fake.log.clients;
  assert.deepStrictEqual(client.server, { command: 'cowdsl', args: ['lsp'] });
  assert.ok(client.started);
  assert.deepStrictEqual(client.client.documentSelector.map((d) => d.language), ['cow', 'cow']);
  const contributed = pkg.contributes.commands.map((c) => c.command).sort();
  assert.deepStrictEqual(Object.keys(fake.log.commands).sort(), contributed);
  assert.ok(fake.log.providers.cowdsl);

  await fake.log.commands['cowdsl.runScenario']();
  assert.strictEqual(doc.isDirty, false);  // saved first
  const [task] = fake.log.executed;
  assert.strictEqual(task.execution.command, 'cowdsl');
  assert.deepStrictEqual(task.execution.args, ['run', '/w/s.cow']);
  assert.deepStrictEqual(task.matchers, ['$cowdsl', '$cowdsl-verdict']);
  const names = pkg.contributes.problemMatchers.map((m) => `$${m.name}`);
  assert.deepStrictEqual(task.matchers.filter((m) => !names.includes(m)), []);

  const tasks = fake.log.providers.cowdsl.provideTasks();
  assert.deepStrictEqual(tasks.map((t) => t.execution.args[0]), ['run', 'check']);
  await ext.deactivate();
  assert.ok(client.stopped);
});

test('settings choose the server command; a disabled server is not started', async () => {
  const doc = { languageId: 'cow', fileName: '/w/s.cow', isDirty: false, isUntitled: false };
  let fake = fakeVscode({ path: '.venv/bin/python', serverArgs: ['-m', 'cowdsl', 'lsp'], runArgs: ['--trace'] }, { document: doc });
  let ext = load(fake);
  await ext.activate({ subscriptions: [] });
  assert.deepStrictEqual(fake.log.clients[0].server, { command: '/w/.venv/bin/python', args: ['-m', 'cowdsl', 'lsp'] });
  await fake.log.commands['cowdsl.runScenario']();
  assert.deepStrictEqual(fake.log.executed[0].execution.args, ['run', '--trace', '/w/s.cow']);
  await ext.deactivate();

  fake = fakeVscode({ 'server.enabled': false }, { document: { ...doc, languageId: 'plaintext' } });
  ext = load(fake);
  await ext.activate({ subscriptions: [] });
  assert.strictEqual(fake.log.clients.length, 0);
  await fake.log.commands['cowdsl.runScenario']();
  assert.strictEqual(fake.log.executed.length, 0);
  assert.match(fake.log.warnings[0], /open a \.cow file/);
});
