// The original netcluster's client API, NCAgent: the README's sender and
// receiver snippets, as they were written but for the require, against
// a real server and a Go client.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import { Server, GoPeer, waitFor } from './harness.mjs';

const require = createRequire(import.meta.url);

test('NCAgent: connect, emit, on, once, removeListener, disconnect', async (t) => {
  const srv = await new Server(t, { A: { propagatetochannels: '.*' }, B: {} }).start();
  const go = await new GoPeer(t, srv.path('B'), 'B').ready();
  const goA = await new GoPeer(t, srv.path('A'), 'A').ready();
  // The original: var netcluster = require('netcluster').pipedclient();
  const netcluster = require('../index.cjs').pipedclient({ socket: srv.path('A') });
  const receiver = new (require('../index.cjs').NCAgent)({ socket: srv.path('B') });
  t.after(() => { netcluster.disconnect(); receiver.disconnect(); });

  const got = [];
  const onceGot = [];
  await new Promise((resolve) => receiver.connect('B', resolve));
  receiver.on('log', (msg) => got.push(msg));
  receiver.once('log', (msg) => onceGot.push(msg));
  const removed = () => assert.fail('a removed listener was called');
  receiver.on('log', removed);
  receiver.removeListener('log', removed);

  await new Promise((resolve) => netcluster.connect('A', resolve));
  assert.equal(netcluster.emit('log', 'TESTE'), true);
  netcluster.emit('log', { n: 2 });
  await waitFor('the receiver to hear both', () => got.length === 2);
  assert.equal(onceGot.length, 1);
  const msg = got[0];
  assert.equal(msg.data, 'TESTE');
  assert.equal(msg.event, 'log');
  assert.equal(msg.channel, 'A', 'propagated from A, it keeps its channel');
  assert.equal(msg.broadcast, true);
  assert.equal(msg.emmiteruuid, netcluster.client.id);
  assert.deepEqual(got[1].data, { n: 2 });

  // Go hears the agent; the agent hears Go; the agent never hears itself.
  const fromAgent = await go.next((l) => l.event === 'log');
  assert.equal(fromAgent.data, 'TESTE');
  const own = [];
  netcluster.on('log', (m) => own.push(m));
  netcluster.on('from-go', (m) => own.push(m));
  goA.send({ op: 'emit', event: 'from-go', data: [1, 'two'] });
  netcluster.emit('log', 'again');
  await waitFor('the agent to hear Go', () => own.some((m) => m.event === 'from-go'));
  await waitFor('the receiver to hear the last one', () => got.length === 3);
  assert.deepEqual(own.map((m) => m.event), ['from-go']);
  assert.deepEqual(own[0].data, [1, 'two']);
  assert.equal(own[0].emmiteruuid, goA.id);

  // A bus event named "error" reaches an agent without an error
  // listener harmlessly.
  goA.send({ op: 'emit', event: 'error', data: 'not a crash' });
  goA.send({ op: 'emit', event: 'from-go', data: 'after' });
  await waitFor('the event after it', () => own.length === 2);

  await netcluster.disconnect();
  assert.throws(() => netcluster.emit('log', 'x'), /connect/);
});

test('NCAgent waits for a server that is not there yet', async (t) => {
  const srv = new Server(t, { A: {} });
  const agent = require('../index.cjs').pipedclient({ socket: srv.path('A') });
  t.after(() => agent.disconnect());
  const errors = [];
  agent.on('error', (err) => errors.push(err));
  let connected = false;
  agent.connect('A', () => { connected = true; });
  await waitFor('a failed try', () => errors.length > 0);
  assert.equal(connected, false);
  await srv.start();
  await waitFor('the agent to connect', () => connected);
});

// An agent refused by the server's access rules stops trying: the
// server would refuse it every time. The refusal is emitted as 'error',
// once, and the agent's emit throws. Before the fix it tried again
// forever.
test('NCAgent refused by the access rules tries no more', async (t) => {
  const srv = await new Server(t, { A: { allow: ['nobody'] } }).start();
  const { pipedclient, ServerError, ErrorCode } = require('../index.cjs');
  const agent = pipedclient({ socket: srv.path('A') });
  t.after(() => agent.disconnect());
  const errors = [];
  agent.on('error', (err) => errors.push(err));
  agent.connect('A', () => assert.fail('connected'));
  await waitFor('the refusal', () => errors.length > 0);
  assert.ok(errors[0] instanceof ServerError && errors[0].code === ErrorCode.FORBIDDEN, `refused with ${errors[0]}`);
  await new Promise((r) => setTimeout(r, 1000));
  assert.equal(errors.length, 1, `tried again: ${errors.length} refusals`);
  assert.throws(() => agent.emit('x', 1), /closed/);
});

// An agent hears an event whatever its name holds: line breaks too.
// Before the fix its one listener was '.*', which matches no name with
// \n, \r, U+2028 or U+2029, and such events were never delivered.
test('NCAgent hears events whose names hold line breaks', async (t) => {
  const srv = await new Server(t, { A: {} }).start();
  const go = await new GoPeer(t, srv.path('A'), 'A').ready();
  const agent = require('../index.cjs').pipedclient({ socket: srv.path('A') });
  t.after(() => agent.disconnect());
  await new Promise((resolve) => agent.connect('A', resolve));
  const names = ['line\nbreak', 'cr\rhere', 'ls\u2028x', 'ps\u2029y', 'plain'];
  const got = [];
  for (const name of names) agent.on(name, (m) => got.push(m.event));
  for (const name of names) go.send({ op: 'emit', event: name, data: 1 });
  await waitFor('the last event', () => got.includes('plain'));
  assert.deepEqual(got, names);
});
