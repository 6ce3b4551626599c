// Bad frames from the server: a fake server socket, written here, that
// answers the client's Hello and then breaks the protocol. The client
// must close the connection and report why, and never hand a listener
// anything from a broken frame.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import { fakeSocket, waitFor } from './harness.mjs';
import { connect, ProtocolError, ServerError } from '../index.mjs';

const require = createRequire(import.meta.url);
const wire = require('../lib/wire.cjs');

const node = Buffer.from('7c9e6679742540de944be07fc1f90ae7', 'hex');

function frame(hex) {
  const body = Buffer.from(hex.replace(/\s+/g, ''), 'hex');
  const out = Buffer.alloc(4 + body.length);
  out.writeUInt32BE(body.length, 0);
  body.copy(out, 4);
  return out;
}

// welcome is a Welcome for channel A, version 2, maxframe 1024.
function welcome(channel = 'A', version = 2) {
  const ch = Buffer.from(channel);
  return frame('96 02 0' + version + ' c4 10' + node.toString('hex') + (0xa0 | ch.length).toString(16) + ch.toString('hex') +
    ' cd 04 00 cd 04 d2');
}

// fakeServer listens on a socket of its own; each connection gets the
// frames answer(hello) returns once its Hello has arrived. It records
// what each client sent.
async function fakeServer(t, answer) {
  return fakeSocket(t, (sock) => {
    const c = { sock, got: Buffer.alloc(0), closed: false };
    sock.on('data', (b) => {
      const first = c.got.length === 0;
      c.got = Buffer.concat([c.got, b]);
      if (first) {
        for (const f of answer(c)) sock.write(f);
      }
    });
    sock.on('close', () => { c.closed = true; });
    return c;
  });
}

const cases = [
  ['data with the never-used byte c1', () => frame('97 03 c4 10' + '11'.repeat(16) + 'c4 10' + node.toString('hex') +
    'c4 10' + '22'.repeat(16) + 'a1 41 a1 65 c1'), /0xc1/],
  ['a length over the Welcome\'s maxframe', () => Buffer.from('0000ffff00', 'hex'), /frame too big/],
  ['a length of 0', () => Buffer.from('00000000', 'hex'), /length 0/],
  ['a second Welcome', () => welcome(), /unexpected welcome/],
  ['a Hello', () => frame('95 01 01 c4 10' + '11'.repeat(16) + 'a0 00'), /unexpected hello/],
  ['bytes after the array', () => frame('91 05 00'), /after the frame's array/],
  ['an unknown frame type', () => frame('91 0a'), /frame of type 10/],
  ['an Applied on a version 2 connection', () => frame('92 09 01'), /unexpected applied/],
  ['a Drain on a version 2 connection', () => Buffer.from(wire.DRAIN_FRAME), /unexpected drain/],
];

for (const [name, bad, why] of cases) {
  test(`the server sends ${name}`, async (t) => {
    const fake = await fakeServer(t, () => [welcome(), bad()]);
    const c = await connect('A', { socket: fake.path, reconnect: false });
    t.after(() => c.close());
    const heard = [];
    c.on('.*', (m) => heard.push(m));
    const downs = [];
    c.status.on('disconnect', (err) => downs.push(err));
    await waitFor('the client to give up the connection', () => downs.length === 1);
    assert.ok(downs[0] instanceof ProtocolError, `${downs[0]}`);
    assert.match(downs[0].message, why);
    await waitFor('the socket to be closed', () => fake.conns[0].closed);
    assert.equal(heard.length, 0);
    // The client sent its Hello and nothing else: never an Error frame.
    const hello = wire.frameHead(fake.conns[0].got.subarray(4));
    assert.equal(hello.type, wire.FrameType.HELLO);
    assert.equal(fake.conns[0].got.length, 4 + fake.conns[0].got.readUInt32BE(0));
  });
}

test('an Error frame is reported with its code and message', async (t) => {
  const fake = await fakeServer(t, () => [welcome(), frame('93 04 05 a4 62 79 65 21')]);
  const c = await connect('A', { socket: fake.path, reconnect: false });
  const downs = [];
  c.status.on('disconnect', (err) => downs.push(err));
  await waitFor('the disconnect', () => downs.length === 1);
  assert.ok(downs[0] instanceof ServerError);
  assert.equal(downs[0].code, 5);
  assert.equal(downs[0].serverMessage, 'bye!');
});

test('the handshake refuses a wrong channel, a wrong version, an Error, and JSON', async (t) => {
  const answers = [
    [() => [welcome('B')], /serves channel "B"/],
    [() => [welcome('A', 5)], /protocol version 5/],
    [() => [frame('93 04 03 a2 6e 6f')], /unsupported version \(code 3\): no/],
    [() => [Buffer.from('{"event":"x"}\0')], /JSON client/],
    [() => [frame('91 05')], /answered the hello with a ping/],
  ];
  for (const [answer, why] of answers) {
    const fake = await fakeServer(t, answer);
    await assert.rejects(connect('A', { socket: fake.path, reconnect: false }), why);
  }
});

test('the client answers a Ping with a Pong, and pings a silent server', async (t) => {
  const fake = await fakeServer(t, () => [welcome(), Buffer.from(wire.PING_FRAME)]);
  const c = await connect('A', { socket: fake.path, pingInterval: 100, pingTimeout: 400, reconnect: false });
  const downs = [];
  c.status.on('disconnect', (err) => downs.push(err));
  await waitFor('the pong and a ping', () => {
    const got = fake.conns[0].got;
    return got.includes(wire.PONG_FRAME) && got.includes(wire.PING_FRAME);
  });
  // The fake never answers: the client gives up after the timeout.
  await waitFor('the ping timeout', () => downs.length === 1);
  assert.match(downs[0].message, /ping timeout/);
});

// frames cuts what a client sent into decoded frame heads.
function framesOf(bytes) {
  const fr = new wire.FrameReader(1 << 20);
  fr.push(bytes);
  const out = [];
  for (let body; (body = fr.next()) !== null;) {
    const h = wire.frameHead(body);
    out.push(h.type === wire.FrameType.EVENT ? { type: h.type, ...wire.decodeEvent(h, body) } : h);
  }
  return out;
}

test('the client answers a Drain after its last event, then keeps what it emits', async (t) => {
  let sock;
  const fake = await fakeServer(t, (c) => {
    sock = c.sock;
    return [welcome('A', 3)];
  });
  const c = await connect('A', { socket: fake.path, backoffMin: 60000 });
  t.after(() => c.close());
  const heard = [];
  c.on('late', (m) => heard.push(m));
  assert.equal(c.emit('before', 1), true);
  await waitFor('the event before the drain', () => framesOf(fake.conns[0].got).length === 2);
  sock.write(wire.DRAIN_FRAME);
  await waitFor('the answer', () => framesOf(fake.conns[0].got).length === 3);
  assert.equal(c.connected, false, 'a drained client is not connected');
  let drained = false;
  c.status.on('drain', () => { drained = true; });
  const downs = [];
  c.status.on('disconnect', (err) => downs.push(err));
  assert.equal(c.emit('after', 2), false, 'an event emitted after the drain is kept, and says wait');
  // Events still come after the Drain, up to the Error frame.
  const ev = wire.encodeEvent({ id: wire.newID(), origin: node, sender: wire.newID(), channel: 'A', event: 'late',
    data: Buffer.from([0xc0]), to: null, re: null });
  sock.write(ev);
  await waitFor('the event after the drain', () => heard.length === 1);
  sock.write(frame('93 04 05 a4 62 79 65 21'));
  await waitFor('the disconnect', () => downs.length === 1);
  assert.ok(downs[0] instanceof ServerError && downs[0].code === 5, `${downs[0]}`);
  const got = framesOf(fake.conns[0].got);
  assert.deepEqual(got.map((f) => f.type), [wire.FrameType.HELLO, wire.FrameType.EVENT, wire.FrameType.DRAIN]);
  assert.equal(got[1].event, 'before');
  assert.equal(c.kept.length, 1, 'the event after the drain waits for the next connection');
  assert.equal(drained, false);
});

// welcome3 is a Welcome of version 3 for channel A with the resume
// fields: epoch, from (null: the ring's start) and missed.
function welcome3(epoch, from, missed) {
  return frame('99 02 03 c4 10' + node.toString('hex') + 'a1 41 cd 04 00 cd 04 d2 c4 10' + epoch.toString('hex') +
    (from ? 'c4 10' + from.toString('hex') : 'c0') + missed.toString(16).padStart(2, '0'));
}

test('a reconnecting client sends its cursor and its earlier ids, and reports what it missed', async (t) => {
  const epoch = wire.newID();
  const from = wire.newID();
  const event = (to) => wire.encodeEvent({ id: wire.newID(), origin: node, sender: wire.newID(), channel: 'A',
    event: 'e', data: Buffer.from([0xc0]), to, re: to ? wire.newID() : null });
  const heardID = [];
  const fake = await fakeServer(t, (c) => {
    if (fake.conns.length > 1) return [welcome3(epoch, null, 7)];
    // The first connection: an event, then a reply (addressed: not a
    // place to resume from), then the server goes away.
    const ev = event(null);
    heardID.push(wire.decodeEvent(wire.frameHead(ev.subarray(4)), ev.subarray(4)).id);
    setTimeout(() => c.sock.end(), 100);
    return [welcome3(epoch, from, 0), ev, event(wire.newID())];
  });
  const c = await connect('A', { socket: fake.path, backoffMin: 20, since: 5000 });
  t.after(() => c.close());
  const firstID = c.id;
  const missed = [];
  c.status.on('missed', (n) => missed.push(n));
  await waitFor('the reconnection', () => fake.conns.length === 2 && c.connected);
  const hello = (i) => wire.decodeHello(wire.frameHead(fake.conns[i].got.subarray(4, 4 + fake.conns[i].got.readUInt32BE(0))));
  const first = hello(0);
  assert.equal(first.version, 4);
  assert.equal(first.since, 5000, 'the first connection asks for history');
  assert.equal(first.resume_epoch, null);
  const second = hello(1);
  assert.equal(second.since, 0, 'a reconnection asks for no history: it resumes');
  assert.deepEqual(second.resume_epoch, epoch);
  assert.deepEqual(second.resume_after, heardID[0], 'the cursor is the last event, not the reply after it');
  assert.deepEqual(second.own.map(wire.idString), [firstID], 'the earlier connection\'s id');
  await waitFor('the missed report', () => missed.length === 1);
  assert.deepEqual(missed, [7]);
  assert.equal(c.missed, 7);
});
