// Events per second, one publisher to one subscriber on one channel of a
// real ncserver, for the Node.js client and the Go client (bus) in the
// same run, on the same server:
//
//   node bench/bench.mjs [count] [size]
//
// Each publisher and subscriber is its own process. The subscriber times
// the events from the first to the last it receives; the publisher sends
// as fast as its socket takes them, waiting whenever emit says so. The server's maxpending is raised to
// 1 GiB so that a subscriber slower than its publisher is measured, not
// dropped. Figures depend on the machine and its load: compare the rows
// of one run, not runs.
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { Server, GoPeer, build } from '../test/harness.mjs';
import { connect } from '../index.mjs';

const self = fileURLToPath(import.meta.url);

// publish is the Node publisher's process: count events of size bytes.
async function publish(socket, count, size) {
  const c = await connect('A', { socket, name: 'bench-pub' });
  const payload = 'x'.repeat(size);
  for (let i = 0; i < count; i++) {
    if (!c.emit('bench', payload)) await c.flush();
  }
  await c.close();
}

// nodeSub subscribes a Node client and resolves with events per second.
async function nodeSub(socket, count) {
  const c = await connect('A', { socket, name: 'bench-sub' });
  let n = 0;
  let start = 0;
  const done = new Promise((resolve) => {
    c.on('bench', () => {
      n++;
      if (n === 1) start = process.hrtime.bigint();
      if (n === count) resolve(Number(count - 1) / (Number(process.hrtime.bigint() - start) / 1e9));
    });
  });
  return { ready: c.listening(), rate: done.finally(() => c.close()) };
}

async function goSub(t, socket, count) {
  const p = await new GoPeer(t, socket, 'A').ready();
  p.send({ op: 'bench-sub', count });
  await p.next((l) => l.subscribed);
  return { ready: Promise.resolve(), rate: p.next((l) => 'bench' in l, 600000).then((l) => l.bench) };
}

function nodePub(socket, count, size) {
  return new Promise((resolve, reject) => {
    const p = spawn(process.execPath, [self, 'pub', socket, String(count), String(size)], { stdio: 'inherit' });
    p.on('exit', (code) => (code === 0 ? resolve() : reject(new Error(`node publisher exited ${code}`))));
  });
}

async function goPub(t, socket, count, size) {
  const p = await new GoPeer(t, socket, 'A').ready();
  p.send({ op: 'bench-pub', count, size });
  await p.next((l) => 'sent' in l, 600000);
}

async function main() {
  const count = Number(process.argv[2] || 100000);
  const size = Number(process.argv[3] || 16);
  const cleanups = [];
  const t = { after: (fn) => cleanups.push(fn) };
  build();
  const srv = await new Server(t, { A: {} }, { maxpending: 1 << 30 }).start();
  const socket = srv.path('A');
  const rows = [
    ['node', 'node', () => nodeSub(socket, count), () => nodePub(socket, count, size)],
    ['go', 'go', () => goSub(t, socket, count), () => goPub(t, socket, count, size)],
    ['node', 'go', () => goSub(t, socket, count), () => nodePub(socket, count, size)],
    ['go', 'node', () => nodeSub(socket, count), () => goPub(t, socket, count, size)],
  ];
  console.log(`${count} events of ${size} bytes, 1 publisher to 1 subscriber, node ${process.version}`);
  console.log('publisher  subscriber  events/s');
  try {
    for (const [pub, sub, subscribe, publishWith] of rows) {
      const s = await subscribe();
      await s.ready;
      await publishWith();
      const rate = await s.rate;
      console.log(`${pub.padEnd(10)} ${sub.padEnd(11)} ${Math.round(rate)}`);
    }
  } finally {
    for (const fn of cleanups.reverse()) await fn();
  }
}

if (process.argv[2] === 'pub') {
  await publish(process.argv[3], Number(process.argv[4]), Number(process.argv[5]));
} else {
  await main();
}
