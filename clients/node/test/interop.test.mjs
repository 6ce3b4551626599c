// The Node client against a real ncserver, with a Go client (gopeer) on
// the same channels: events both ways, propagation, request and reply
// across languages, and the listener API.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Server, GoPeer, recorder, waitFor } from './harness.mjs';
import { connect, ClosedError } from '../index.mjs';

async function setup(t) {
  const srv = await new Server(t, { A: { propagatetochannels: 'B' }, B: {} }).start();
  const dial = async (channel, opts = {}) => {
    const c = await connect(channel, { socket: srv.path(channel), name: 'node-test', ...opts });
    t.after(() => c.close());
    return c;
  };
  return { srv, dial };
}

test('events both ways between Node and Go, and propagation', async (t) => {
  const { srv, dial } = await setup(t);
  const go = await new GoPeer(t, srv.path('A'), 'A').ready();
  const node = await dial('A');
  const inB = await dial('B');
  const heard = recorder();
  node.on('from-go', heard);
  const propagated = recorder();
  inB.on('.*', propagated);
  // From protocol version 4 the server forwards what a client listens
  // to: listening() resolves once it does.
  await Promise.all([node.listening(), inB.listening()]);

  const data = { lang: 'node', list: [1, 2.5, null, 'é'], nested: { ok: true }, bin: new Uint8Array([1, 2, 3]) };
  node.emit('from-node', data);
  const got = await go.next((l) => l.event === 'from-node');
  assert.equal(got.sender, node.id);
  assert.equal(got.channel, 'A');
  assert.deepEqual(got.data.list, [1, 2.5, null, 'é']);
  assert.deepEqual(got.data.nested, { ok: true });
  assert.equal(got.data.bin, Buffer.from([1, 2, 3]).toString('base64'), 'bin as Go\'s JSON renders []byte');

  go.send({ op: 'emit', event: 'from-go', data: { text: 'TESTE', n: 42 } });
  await waitFor('the Node client to hear the Go client', () => heard.got.length === 1);
  const m = heard.got[0];
  assert.equal(m.sender, go.id);
  assert.equal(m.channel, 'A');
  assert.equal(m.to, null);
  assert.deepEqual(m.data, { text: 'TESTE', n: 42 });
  assert.match(m.id, /^[0-9a-f-]{36}$/);
  assert.equal(m.origin, node.node);

  // Both events went from A to B by A's rule, keeping their channel.
  await waitFor('B to hear what A heard', () => propagated.got.length === 2);
  assert.deepEqual(propagated.got.map((p) => [p.event, p.channel]).sort(), [['from-go', 'A'], ['from-node', 'A']]);
});

test('request and reply across languages', async (t) => {
  const { srv, dial } = await setup(t);
  const go = await new GoPeer(t, srv.path('A'), 'A').ready();
  const node = await dial('A');

  // Node asks, Go answers (gopeer answers every "ask-" event).
  const r = await node.request('ask-time', { q: 1 });
  assert.deepEqual(r.data, { echo: { q: 1 }, from: 'go' });
  assert.equal(r.event, 'ask-time-response');
  assert.equal(r.to, node.id);
  assert.equal(r.sender, go.id);

  // Go asks, Node answers.
  node.on('get-.*', (m) => node.reply(m, { answer: m.data * 2, from: 'node' }));
  await node.listening();
  go.send({ op: 'request', event: 'get-double', data: 21 });
  const reply = await go.next((l) => 'reply' in l);
  assert.deepEqual(reply.reply, { answer: 42, from: 'node' });
  assert.equal(reply.sender, node.id);

  // A reply reaches the asker only: a third client hears the request
  // but not the answer.
  const third = await dial('A');
  const seen = recorder();
  third.on('.*', seen);
  await third.listening();
  await node.request('ask-again', 'x');
  // The request reaches the third client by the server; its own fence it
  // hears at once, so it waits for the request first.
  await waitFor('the third client to hear the request', () => seen.count('ask-again') === 1);
  third.emit('fence', null);
  await go.next((l) => l.event === 'fence');
  node.emit('fence2', null);
  await waitFor('the third client to hear the fence', () => seen.count('fence2') === 1);
  assert.deepEqual(seen.got.map((m) => m.event), ['ask-again', 'fence', 'fence2'], 'the third client heard the request and its own fence, not the reply');
});

test('patterns are anchored; once and off', async (t) => {
  const { dial } = await setup(t);
  const a = await dial('A');
  const b = await dial('A');
  const exact = recorder();
  const family = recorder();
  const one = recorder();
  const gone = recorder();
  b.on('log', exact);
  b.on('log\\..*', family);
  b.once('.*', one);
  const l = b.on('.*', gone);
  l.off();
  assert.throws(() => b.on('a)|(b', () => {}), /event pattern/);
  await b.listening();
  for (const e of ['log', 'log.x', 'xlog', 'logx', 'log.y']) a.emit(e, e);
  await waitFor('the events', () => family.got.length === 2);
  await waitFor('the last one', () => exact.got.length === 1 && one.got.length === 1);
  assert.deepEqual(exact.got.map((m) => m.event), ['log']);
  assert.deepEqual(family.got.map((m) => m.event), ['log.x', 'log.y']);
  assert.deepEqual(one.got.map((m) => m.event), ['log']);
  assert.equal(gone.got.length, 0);

  // A client's own listeners hear what it emits, as an EventEmitter's do.
  const own = recorder();
  a.on('self', own);
  a.emit('self', 1);
  await waitFor('the emitter to hear itself', () => own.got.length === 1);
  assert.equal(own.got[0].sender, a.id);

  await a.close();
  assert.throws(() => a.emit('x', 1), ClosedError);
  await assert.rejects(a.request('x', 1), ClosedError);
});

test('emit refuses a frame over maxframe and a bad name', async (t) => {
  const srv = await new Server(t, { A: {} }, { maxframe: 1024 }).start();
  const c = await connect('A', { socket: srv.path('A') });
  t.after(() => c.close());
  assert.equal(c.maxFrame, 1024);
  assert.throws(() => c.emit('big', 'x'.repeat(2000)), RangeError);
  assert.throws(() => c.emit('', 1), TypeError);
  assert.throws(() => c.emit('x'.repeat(1025), 1), TypeError);
});
