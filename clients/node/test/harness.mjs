// Test harness: a real ncserver and Go peer, built from this tree into a
// temporary directory once per test file, and a server per test whose
// configuration and sockets live in a temporary directory of its own.
import { spawn, execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createInterface } from 'node:readline';
import net from 'node:net';

const here = dirname(fileURLToPath(import.meta.url));
export const repo = join(here, '..', '..', '..');

let built = null;

// build compiles ncserver and gopeer once.
export function build() {
  if (built) return built;
  const dir = mkdtempSync(join(tmpdir(), 'ncnode-bin-'));
  process.on('exit', () => rmSync(dir, { recursive: true, force: true }));
  const ncserver = join(dir, 'ncserver');
  const gopeer = join(dir, 'gopeer');
  execFileSync('go', ['build', '-o', ncserver, './cmd/ncserver'], { cwd: repo, stdio: 'inherit' });
  execFileSync('go', ['build', '-o', gopeer, './clients/node/test/gopeer'], { cwd: repo, stdio: 'inherit' });
  built = { ncserver, gopeer };
  return built;
}

// waitFor polls cond until it holds, failing after ms.
export async function waitFor(what, cond, ms = 20000) {
  const deadline = Date.now() + ms;
  while (!(await cond())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

// Server is an ncserver process on a configuration of the given
// channels, its sockets in a fresh directory (short, for the socket
// path limit).
export class Server {
  constructor(t, channels = { A: {}, B: {} }, extra = {}) {
    this.dir = mkdtempSync(join(tmpdir(), 'ncn'));
    this.template = join(this.dir, '{channel}.sock');
    this.config = join(this.dir, 'config.json');
    this.extra = extra;
    this.configure(channels);
    this.logs = '';
    t.after(async () => {
      await this.stop();
      rmSync(this.dir, { recursive: true, force: true });
    });
  }

  // configure writes the configuration file with these channels.
  configure(channels) {
    writeFileSync(this.config, JSON.stringify({
      socket: this.template, connecttonet: false, channels, ...this.extra,
    }, null, 2));
  }

  // reload has the running server load its file again (SIGHUP).
  reload() {
    this.proc.kill('SIGHUP');
  }

  path(channel) {
    return this.template.replace('{channel}', channel);
  }

  async start() {
    const { ncserver } = build();
    this.proc = spawn(ncserver, ['-log-level', 'debug', this.config], { stdio: ['ignore', 'ignore', 'pipe'] });
    this.proc.stderr.on('data', (b) => { this.logs += b; });
    const proc = this.proc;
    this.exited = new Promise((r) => proc.on('exit', r));
    await waitFor('the server\'s sockets', () => existsSync(this.path('control')) || proc.exitCode !== null);
    if (proc.exitCode !== null) throw new Error(`ncserver exited: ${this.logs}`);
    return this;
  }

  async stop() {
    if (!this.proc || this.proc.exitCode !== null) return;
    this.proc.kill('SIGTERM');
    await this.exited;
  }
}

// GoPeer is the gopeer program on a channel: send() writes a command,
// next() reads the next line it printed that passes filter.
export class GoPeer {
  constructor(t, socket, channel, args = []) {
    const { gopeer } = build();
    this.proc = spawn(gopeer, ['-socket', socket, '-channel', channel, ...args], { stdio: ['pipe', 'pipe', 'pipe'] });
    this.stderr = '';
    this.proc.stderr.on('data', (b) => { this.stderr += b; });
    this.lines = [];
    this.waiters = [];
    createInterface({ input: this.proc.stdout }).on('line', (line) => {
      this.lines.push(JSON.parse(line));
      for (const w of this.waiters.splice(0)) w();
    });
    t.after(() => {
      this.proc.stdin.end();
      this.proc.kill();
    });
  }

  send(cmd) {
    this.proc.stdin.write(JSON.stringify(cmd) + '\n');
  }

  // next resolves with the first line not read yet that passes filter.
  async next(filter = () => true, ms = 20000) {
    const deadline = Date.now() + ms;
    for (;;) {
      const i = this.lines.findIndex(filter);
      if (i >= 0) return this.lines.splice(i, 1)[0];
      if (this.proc.exitCode !== null) throw new Error(`gopeer exited: ${this.stderr}`);
      if (Date.now() > deadline) throw new Error(`gopeer printed nothing wanted; it printed ${JSON.stringify(this.lines)}; stderr ${this.stderr}`);
      await new Promise((r) => {
        this.waiters.push(r);
        setTimeout(r, 100);
      });
    }
  }

  async ready() {
    this.id = (await this.next((l) => l.ready)).id;
    return this;
  }
}

// recorder collects what a listener hears.
export function recorder() {
  const got = [];
  const fn = (m) => got.push(m);
  fn.got = got;
  fn.count = (event) => got.filter((m) => m.event === event).length;
  return fn;
}

// fakeSocket listens on a Unix socket of its own in a fresh directory,
// for tests that play the server; accept(sock) makes the record of each
// connection. The sockets and the directory go when the test ends.
export async function fakeSocket(t, accept) {
  const dir = mkdtempSync(join(tmpdir(), 'ncf'));
  const path = join(dir, 'A.sock');
  const conns = [];
  const srv = net.createServer((sock) => {
    conns.push(accept(sock));
    sock.on('error', () => {});
  });
  await new Promise((r) => srv.listen(path, r));
  t.after(() => {
    for (const c of conns) c.sock.destroy();
    srv.close();
    rmSync(dir, { recursive: true, force: true });
  });
  return { path, conns };
}
