// Events emitted while the client is not connected are kept and sent
// once it is: before its first connection as well as while it
// reconnects (reconnect.test.mjs covers a reconnection).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import { Server, GoPeer } from './harness.mjs';

const require = createRequire(import.meta.url);
const { Client, pipedclient } = require('../index.cjs');

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
