'use strict';
// The cowdsl extension: starts `cowdsl lsp` for .cow files (diagnostics, hover,
// completion, definitions, references, rename, quick fixes, outline,
// formatting), and runs scenarios as tasks whose problem matcher reads
// cowdsl's `file:line:col: error: message` lines.
const path = require('path');
const vscode = require('vscode');
const { LanguageClient } = require('vscode-languageclient/node');
const lib = require('./lib');

const TASK_TYPE = 'cowdsl';
let client;
let output;

function settings() {
  const c = vscode.workspace.getConfiguration('cowdsl');
  return {
    path: c.get('path', 'cowdsl'),
    serverArgs: c.get('serverArgs', ['lsp']),
    runArgs: c.get('runArgs', []),
    enabled: c.get('server.enabled', true),
  };
}

function folderOf(uri) {
  const f = uri ? vscode.workspace.getWorkspaceFolder(uri) : undefined;
  const first = vscode.workspace.workspaceFolders && vscode.workspace.workspaceFolders[0];
  return (f || first) ? (f || first).uri.fsPath : undefined;
}

async function startClient() {
  const s = settings();
  if (!s.enabled) {
    return;
  }
  const { command, args } = lib.serverCommand(s, folderOf());
  client = new LanguageClient('cowdsl', 'cowdsl', { command, args }, {
    documentSelector: [{ scheme: 'file', language: 'cow' }, { scheme: 'untitled', language: 'cow' }],
    outputChannel: output,
  });
  try {
    await client.start();
  } catch (e) {
    client = undefined;
    const choice = await vscode.window.showErrorMessage(
      `cowdsl: could not start the language server \`${[command, ...args].join(' ')}\` (${e.message || e}). ` +
      'Install cowdsl (pip install cowdsl) or set cowdsl.path.', 'Open settings');
    if (choice) {
      vscode.commands.executeCommand('workbench.action.openSettings', 'cowdsl.path');
    }
  }
}

async function stopClient() {
  if (client) {
    const c = client;
    client = undefined;
    await c.stop();
  }
}

// A task for `cowdsl run|check FILE [ARGS]`, with cowdsl's problem matchers.
function makeTask(definition, scope) {
  const s = settings();
  const file = definition.file || (vscode.window.activeTextEditor && vscode.window.activeTextEditor.document.fileName);
  const folder = folderOf(file ? vscode.Uri.file(file) : undefined);
  const sub = definition.command === 'check' ? 'check' : 'run';
  const { command, args } = sub === 'run'
    ? lib.runCommand(s, folder, file, definition.args)
    : { command: lib.resolveCommand(s.path, folder), args: ['check', ...(definition.args || []), file] };
  const task = new vscode.Task(definition, scope || vscode.TaskScope.Workspace, `${sub} ${file ? path.basename(file) : ''}`,
    'cowdsl', new vscode.ProcessExecution(command, args, folder ? { cwd: folder } : {}), ['$cowdsl', '$cowdsl-verdict']);
  task.group = sub === 'check' ? vscode.TaskGroup.Build : vscode.TaskGroup.Test;
  task.presentationOptions = { reveal: vscode.TaskRevealKind.Always, clear: true };
  return task;
}

async function runScenario(uri) {
  const doc = uri && uri.fsPath
    ? await vscode.workspace.openTextDocument(uri)
    : vscode.window.activeTextEditor && vscode.window.activeTextEditor.document;
  if (!doc || doc.languageId !== 'cow') {
    vscode.window.showWarningMessage('cowdsl: open a .cow file to run it');
    return;
  }
  if (doc.isUntitled) {
    vscode.window.showWarningMessage('cowdsl: save the scenario first');
    return;
  }
  if (doc.isDirty) {
    await doc.save();
  }
  await vscode.tasks.executeTask(makeTask({ type: TASK_TYPE, command: 'run', file: doc.fileName }));
}

async function activate(context) {
  output = vscode.window.createOutputChannel('cowdsl');
  context.subscriptions.push(output);
  context.subscriptions.push(vscode.commands.registerCommand('cowdsl.runScenario', runScenario));
  context.subscriptions.push(vscode.commands.registerCommand('cowdsl.restartServer', async () => {
    await stopClient();
    await startClient();
  }));
  context.subscriptions.push(vscode.tasks.registerTaskProvider(TASK_TYPE, {
    provideTasks() {
      const ed = vscode.window.activeTextEditor;
      if (!ed || ed.document.languageId !== 'cow') {
        return [];
      }
      return [makeTask({ type: TASK_TYPE, command: 'run', file: ed.document.fileName }),
        makeTask({ type: TASK_TYPE, command: 'check', file: ed.document.fileName })];
    },
    resolveTask(task) {
      return makeTask(task.definition, task.scope);
    },
  }));
  context.subscriptions.push(vscode.workspace.onDidChangeConfiguration(async (e) => {
    if (e.affectsConfiguration('cowdsl.path') || e.affectsConfiguration('cowdsl.serverArgs') ||
        e.affectsConfiguration('cowdsl.server.enabled')) {
      await stopClient();
      await startClient();
    }
  }));
  await startClient();
}

function deactivate() {
  return stopClient();
}

module.exports = { activate, deactivate };
