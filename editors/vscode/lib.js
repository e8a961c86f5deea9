'use strict';
// What the extension decides without VS Code: how to start the server, the
// command line of a run, and the pattern of cowdsl's errors.  Tested with
// `node --test tests/` (editors/check.sh).
const path = require('path');

// cowdsl's diagnostics: `file:line:col: error: message` (the problem matcher
// in package.json uses the same expression).
const ERROR_PATTERN = /^(.+?):(\d+):(\d+): (error|warning|note): (.*)$/;

// Settings (cowdsl.path, cowdsl.serverArgs, cowdsl.runArgs) to a command.
// A relative path with a slash is taken from the workspace folder.
function resolveCommand(command, folder) {
  const cmd = (command || 'cowdsl').trim() || 'cowdsl';
  if (folder && !path.isAbsolute(cmd) && cmd.includes('/')) {
    return path.join(folder, cmd);
  }
  return cmd;
}

function serverCommand(settings, folder) {
  const args = Array.isArray(settings.serverArgs) ? settings.serverArgs.map(String) : ['lsp'];
  return { command: resolveCommand(settings.path, folder), args };
}

function runCommand(settings, folder, file, extra) {
  const args = ['run', ...(Array.isArray(settings.runArgs) ? settings.runArgs.map(String) : []),
    ...(extra || []), file];
  return { command: resolveCommand(settings.path, folder), args };
}

// The snippet body with every placeholder at its default: `${1:buf}` and `$1`
// become `buf`, `${1|pass,fail|}` becomes `pass`, `$0` nothing.
function expandSnippet(body) {
  const text = Array.isArray(body) ? body.join('\n') : body;
  const values = {};
  let out = text.replace(/\$\{(\d+)\|([^|}]*)[^}]*\|\}/g, (_, n, first) => (values[n] = first.split(',')[0]));
  out = out.replace(/\$\{(\d+):([^}]*)\}/g, (_, n, dflt) => (values[n] = dflt));
  return out.replace(/\$(\d+)/g, (_, n) => values[n] || '');
}

module.exports = { ERROR_PATTERN, resolveCommand, serverCommand, runCommand, expandSnippet };
