// The README's Node.js example runs as written, against a real server
// at the default socket path (XDG_RUNTIME_DIR points into a temporary
// directory), importing the package by its name.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync, mkdirSync, rmSync } from 'node:fs';
import { execFile } from 'node:child_process';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Server, repo } from './harness.mjs';

const here = dirname(fileURLToPath(import.meta.url));

test("the README's Node.js example", async (t) => {
  const readme = readFileSync(join(repo, 'README.md'), 'utf8');
  const m = /^## Node\.js\n[\s\S]*?^```js\n([\s\S]*?)^```/m.exec(readme);
  assert.ok(m, 'README.md has a js block under "## Node.js"');
  const srv = new Server(t, { A: {} });
  mkdirSync(join(srv.dir, 'netcluster'));
  srv.template = join(srv.dir, 'netcluster', '{channel}.sock');
  srv.configure({ A: {} });
  await srv.start();
  // Inside the package, so that 'netcluster' names the package itself.
  const script = join(here, `readme-example-${process.pid}.mjs`);
  writeFileSync(script, m[1]);
  t.after(() => rmSync(script, { force: true }));
  const out = await new Promise((resolve, reject) => {
    execFile(process.execPath, [script], { env: { ...process.env, XDG_RUNTIME_DIR: srv.dir }, timeout: 30000 },
      (err, stdout, stderr) => (err ? reject(new Error(`${err}\n${stderr}`)) : resolve(stdout)));
  });
  const lines = out.trim().split('\n');
  assert.match(lines[0], /^[0-9a-f-]{36} \{ level: 'info', msg: 'hello' \}$/);
  assert.match(lines.at(-1), /^\d{4}-\d\d-\d\dT/);
});
