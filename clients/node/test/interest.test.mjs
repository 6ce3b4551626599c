// Interest, frame by frame: a fake server socket, written here, reads
// what the client declares (in its Hello and in Interest frames) and
// answers Applied when the test says so. What a real server does with
// the declarations is in filter.test.mjs.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import { fakeSocket, waitFor } from './harness.mjs';
import { Client, connect } from '../index.mjs';

const require = createRequire(import.meta.url);
const wire = require('../lib/wire.cjs');
const { decodeInterest, encodeInterest } = require('../lib/interest.cjs');
const { declared } = require('../lib/patterns.cjs');

const node = wire.newID();

function welcome(version) {
  const body = wire.encodeData([wire.FrameType.WELCOME, version, node, 'A', 1 << 20, 1]);
  const out = Buffer.alloc(4 + body.length);
  out.writeUInt32BE(body.length, 0);
  out.set(body, 4);
  return out;
}

function applied(seq) {
  const body = wire.encodeData([wire.FrameType.APPLIED, seq]);
  const out = Buffer.alloc(4 + body.length);
  out.writeUInt32BE(body.length, 0);
  out.set(body, 4);
  return out;
}

// fakeServer answers each Hello with a Welcome of version; each
// connection records the frames its client sent, decoded.
async function fakeServer(t, version) {
  return fakeSocket(t, (sock) => {
    const c = { sock, frames: [], reader: new wire.FrameReader(1 << 20) };
    sock.on('data', (b) => {
      c.reader.push(b);
      let body;
      while ((body = c.reader.next()) !== null) {
        const h = wire.frameHead(body);
        const type = wire.frameNames[h.type];
        if (type === 'hello') {
          c.frames.push({ type, count: h.count, ...wire.decodeHello(h) });
          sock.write(welcome(version));
        } else if (type === 'interest') {
          c.frames.push({ type, ...decodeInterest(h) });
        } else if (type === 'event') {
          c.frames.push({ type, ...wire.decodeEvent(h, body) });
        } else {
          c.frames.push({ type });
        }
      }
    });
    return c;
  });
}

const interests = (c) => c.frames.filter((f) => f.type === 'interest');

test('the hello declares the listeners added before connect', async (t) => {
  const fake = await fakeServer(t, 4);
  const c = new Client('A', { socket: fake.path, reconnect: false });
  t.after(() => c.close());
  c.on('log', () => {});
  c.on('log', () => {}); // declared once
  c.on('a.b', () => {});
  await c.connect();
  const hello = fake.conns[0].frames[0];
  assert.equal(hello.version, 4);
  assert.equal(hello.count, 10, 'the four resume fields, then the interest');
  assert.equal(hello.resume_epoch, null);
  assert.deepEqual(hello.own, []);
  assert.deepEqual(hello.interest, ['a(?:.|)b', 'log']);
});

test('on sends one Interest for the changes of a tick; listening waits for its Applied', async (t) => {
  const fake = await fakeServer(t, 4);
  const c = await connect('A', { socket: fake.path, reconnect: false });
  t.after(() => c.close());
  const conn = fake.conns[0];
  assert.deepEqual(conn.frames[0].interest, [], 'no listener: only what is addressed to it');
  c.on('one', () => {});
  c.on('two\\.three', () => {});
  let done = false;
  const waiting = c.listening().then(() => { done = true; });
  await waitFor('the Interest frame', () => interests(conn).length === 1);
  assert.deepEqual(interests(conn)[0], { type: 'interest', seq: 1, patterns: ['one', 'two\\.three'] });
  await new Promise((r) => setTimeout(r, 50));
  assert.equal(done, false, 'listening waits for the Applied');
  conn.sock.write(applied(1));
  await waiting;
  assert.equal(await Promise.race([c.listening().then(() => 'at once'), new Promise((r) => setImmediate(r, 'waits'))]), 'at once',
    'nothing new to declare: listening resolves at once');
});

test('a flood of on and off: one Interest in flight, then the latest state', async (t) => {
  const fake = await fakeServer(t, 4);
  const c = await connect('A', { socket: fake.path, reconnect: false });
  t.after(() => c.close());
  const conn = fake.conns[0];
  c.on('first', () => {});
  await waitFor('the first Interest', () => interests(conn).length === 1);
  for (let round = 0; round < 50; round++) {
    for (let i = 0; i < 100; i++) c.on(`e${round}-${i}`, () => {});
    await new Promise((r) => setImmediate(r));
    for (let i = 0; i < 100; i++) c.off(`e${round}-${i}`);
    await new Promise((r) => setImmediate(r));
  }
  c.on('last', () => {});
  const waiting = c.listening();
  await new Promise((r) => setTimeout(r, 50));
  assert.equal(interests(conn).length, 1, 'nothing more is sent while one is in flight');
  conn.sock.write(applied(1));
  await waitFor('the second Interest', () => interests(conn).length === 2);
  assert.deepEqual(interests(conn)[1], { type: 'interest', seq: 2, patterns: ['first', 'last'] });
  conn.sock.write(applied(2));
  await waiting;
  // Narrowing: sent without waiting, and once's removal too.
  c.off('first');
  c.once('x', () => {});
  await waitFor('the third Interest', () => interests(conn).length === 3);
  conn.sock.write(applied(3));
  c.emit('x', 1); // heard by the client's own once listener, which goes
  await waitFor('the fourth Interest', () => interests(conn).length === 4);
  assert.deepEqual(interests(conn)[3].patterns, ['last']);
});

test('a pattern outside the portable subset declares All; receiveAll declares nothing', async (t) => {
  const fake = await fakeServer(t, 4);
  const c = await connect('A', { socket: fake.path, reconnect: false });
  t.after(() => c.close());
  const conn = fake.conns[0];
  c.on('name', () => {});
  const look = c.on('(?=a)a.*', () => {});
  await waitFor('the Interest', () => interests(conn).length === 1);
  assert.deepEqual(interests(conn)[0], { type: 'interest', seq: 1, patterns: null });
  conn.sock.write(applied(1));
  await c.listening();
  look.off();
  await waitFor('the narrower Interest', () => interests(conn).length === 2);
  assert.deepEqual(interests(conn)[1].patterns, ['name']);

  const all = new Client('A', { socket: fake.path, reconnect: false, receiveAll: true });
  t.after(() => all.close());
  all.on('name', () => {});
  await all.connect();
  all.on('other', () => {});
  await all.listening();
  all.emit('fence', 1);
  const conn2 = fake.conns[1];
  await waitFor('the fence', () => conn2.frames.some((f) => f.type === 'event'));
  assert.equal(conn2.frames[0].count, 5, 'the Hello declares nothing');
  assert.equal(interests(conn2).length, 0);
});

test('with a server of version 3 the client sends no Interest frame', async (t) => {
  const fake = await fakeServer(t, 3);
  const c = await connect('A', { socket: fake.path, reconnect: false });
  t.after(() => c.close());
  c.on('one', () => {});
  await c.listening();
  c.off('one');
  c.on('.*', () => {});
  await c.listening();
  c.emit('fence', 1);
  const conn = fake.conns[0];
  await waitFor('the fence', () => conn.frames.some((f) => f.type === 'event'));
  assert.deepEqual(conn.frames.map((f) => f.type), ['hello', 'event']);
});

test('a client that asks for history declares All until it has a listener', async (t) => {
  const fake = await fakeServer(t, 4);
  const c = await connect('A', { socket: fake.path, reconnect: false, since: 1000 });
  t.after(() => c.close());
  const conn = fake.conns[0];
  assert.equal(conn.frames[0].since, 1000);
  assert.equal(conn.frames[0].interest, null, 'All');
  c.on('one', () => {});
  await waitFor('the Interest', () => interests(conn).length === 1);
  assert.deepEqual(interests(conn)[0].patterns, ['one']);
});

test('Interest frames encode as the protocol has them', () => {
  assert.equal(encodeInterest(1, { all: false, patterns: ['a', 'b'] }).toString('hex'), '0000000893080192a161a162');
  assert.equal(encodeInterest(300, { all: true, patterns: [] }).toString('hex'), '0000000693 08 cd012c c0'.replace(/ /g, ''));
  const long = 'x'.repeat(40);
  assert.equal(declared(long), long);
  assert.equal(declared('a+b'), 'a+b');
  assert.equal(declared('a.b'), 'a(?:.|)b', 'an "any" atom may take half of a surrogate pair in JavaScript');
  assert.equal(declared('log\\..*'), 'log\\..*');
  assert.equal(declared('get|set'), 'get|set');
  for (const all of ['.*', '(?=a)a', 'a\\sb', '\\bx', '(?<n>a)\\k<n>', 'a{2,1000}', '[[:alpha:]]', '\\u0041']) {
    assert.equal(declared(all), null, all);
  }
});

test('a reconnection declares in its Hello what was in flight', async (t) => {
  const fake = await fakeServer(t, 4);
  const c = await connect('A', { socket: fake.path, backoffMin: 20, backoffMax: 50 });
  t.after(() => c.close());
  c.on('one', () => {});
  const waiting = c.listening();
  await waitFor('the Interest', () => interests(fake.conns[0]).length === 1);
  fake.conns[0].sock.destroy(); // no Applied: the connection ends first
  await waiting;
  c.on('two', () => {});
  await waitFor('the reconnection', () => fake.conns.length === 2 && c.connected);
  const hello = fake.conns[1].frames[0];
  assert.equal(hello.count, 10);
  assert.equal(hello.own.length, 1, 'the resume fields, naming the earlier connection');
  assert.ok(hello.interest.includes('one'), 'what was in flight is in the Hello');
  // The Hello carries what the listeners were when it was made; a change
  // made while connecting follows in an Interest frame.
  const declaredNow = async () => {
    const i = interests(fake.conns[1]);
    return i.length ? i.at(-1).patterns : hello.interest;
  };
  await waitFor('both declared', async () => JSON.stringify(await declaredNow()) === '["one","two"]');
});
