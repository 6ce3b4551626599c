// Events emitted while the client is not connected are kept and sent
// once it is: before its first connection as well as while it
// reconnects (reconnect.test.mjs covers a reconnection).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import { Server, GoPeer, waitFor } from './harness.mjs';

const require = createRequire(import.meta.url);
const { Client, pipedclient, connect } = require('../index.cjs');

// An event emitted between connect() and the Welcome is kept and sent
// on that first connection, before what is emitted after it; emit
// returns true again and flush() resolves once connected. Before the
// fix the kept event was never sent (only a reconnection sent the
// kept events), emit went on returning false and flush() never resolved.
test('an event emitted before the first connection is sent once connected', async (t) => {
  const srv = await new Server(t, { A: {} }).start();
  const go = await new GoPeer(t, srv.path('A'), 'A').ready();
  const c = new Client('A', { socket: srv.path('A') });
  t.after(() => c.close());
  const connecting = c.connect();
  assert.equal(c.emit('early', 1), false, 'not connected yet: kept, and emit says to wait');
  await connecting;
  const flushed = await Promise.race([c.flush().then(() => 'resolved'),
    new Promise((r) => setTimeout(() => r('pending'), 2000))]);
  assert.equal(flushed, 'resolved', 'flush() after the first connection');
  assert.equal(c.emit('late', 2), true, 'emit on an idle connected client');
  const first = await go.next((l) => l.event === 'early' || l.event === 'late');
  assert.equal(first.event, 'early', 'the kept event, first');
  assert.equal(first.data, 1);
  await go.next((l) => l.event === 'late');
});

// The original API's usage: emit right after connect, before its
// callback. Before the fix the Go peer never heard it.
test('NCAgent: an emit right after connect reaches the channel', async (t) => {
  const srv = await new Server(t, { A: {} }).start();
  const go = await new GoPeer(t, srv.path('A'), 'A').ready();
  const a = pipedclient({ socket: srv.path('A') });
  t.after(() => a.disconnect());
  await new Promise((resolve) => {
    a.connect('A', resolve);
    a.emit('early', 'x');
  });
  a.emit('late', 'y');
  const first = await go.next((l) => l.event === 'early' || l.event === 'late');
  assert.equal(first.event, 'early');
  await go.next((l) => l.event === 'late');
});

// restart stops srv and starts it again, with extra as its top-level
// configuration, once the client c has been disconnected and kept what
// keep() emits. A Go peer listens on channel B before A, propagating to
// B, opens by a reload: it hears what c sends once back, from the
// first event on. It resolves with the peer once c has reconnected.
async function restart(t, srv, c, extra, keep) {
  const downs = [];
  let ups = 0;
  c.status.on('disconnect', (err) => downs.push(err));
  c.status.on('reconnect', () => { ups++; });
  await srv.stop();
  await waitFor('the disconnect', () => downs.length === 1);
  keep();
  srv.extra = extra;
  srv.configure({ B: {} });
  await srv.start();
  const go = await new GoPeer(t, srv.path('B'), 'B').ready();
  srv.configure({ A: { propagatetochannels: 'B' }, B: {} });
  srv.reload();
  await waitFor('the reconnect', () => ups === 1);
  return { go, downs };
}

// heard reads the data of the events named kept up to the one named
// last from the Go peer.
async function heard(go, last) {
  const out = [];
  for (;;) {
    const l = await go.next((x) => x.event === 'kept' || x.event === last);
    out.push(l.data);
    if (l.event === last) return out;
  }
}

// While disconnected, emit holds an event to the last server's
// maxframe, as it does while connected: RangeError, and the events kept
// around it go out on the next connection. Before the fix it kept the
// event (held to no limit, maxFrame read the default), and the server
// closed the next connection on it, losing the kept events behind it.
test('an event over maxframe emitted while disconnected is refused', async (t) => {
  const srv = await new Server(t, { A: {} }, { maxframe: 65536 }).start();
  const c = await connect('A', { socket: srv.path('A'), backoffMin: 50, backoffMax: 200 });
  t.after(() => c.close());
  assert.equal(c.maxFrame, 65536);
  const { go, downs } = await restart(t, srv, c, { maxframe: 65536 }, () => {
    assert.equal(c.maxFrame, 65536, "disconnected: the last server's");
    c.emit('kept', 1);
    assert.throws(() => c.emit('big', 'x'.repeat(100000)), RangeError);
    c.emit('kept', 2);
  });
  c.emit('after', 3);
  assert.deepEqual(await heard(go, 'after'), [1, 2, 3]);
  assert.equal(downs.length, 1, 'one disconnect: the restart');
});

// A kept event within the last server's maxframe but over the next
// one's is dropped and reported to status 'error' as a RangeError; the
// other kept events go out, and the connection lives. Before the fix
// the client wrote it, the server closed the connection for a frame too
// big, and the kept events after it were lost.
test('a kept event over the next server\'s maxframe is dropped and reported', async (t) => {
  const srv = await new Server(t, { A: {} }).start();
  const c = await connect('A', { socket: srv.path('A'), backoffMin: 50, backoffMax: 200 });
  t.after(() => c.close());
  const errors = [];
  c.status.on('error', (err) => errors.push(err));
  const { go, downs } = await restart(t, srv, c, { maxframe: 65536 }, () => {
    c.emit('kept', 1);
    c.emit('big', 'x'.repeat(100000));
    c.emit('kept', 2);
  });
  c.emit('after', 3);
  assert.deepEqual(await heard(go, 'after'), [1, 2, 3]);
  assert.equal(downs.length, 1, 'one disconnect: the restart');
  assert.equal(c.maxFrame, 65536);
  const dropped = errors.filter((err) => err instanceof RangeError);
  assert.equal(dropped.length, 1, `errors: ${errors}`);
  assert.match(dropped[0].message, /event big, kept while disconnected, is \d+ bytes.*65536: dropped/);
});
