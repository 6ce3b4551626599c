// Reconnecting across a server restart: the disconnect and reconnect
// events, a new client id, and the events emitted meanwhile, kept in a
// bounded buffer and sent in order once connected again.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Server, GoPeer, waitFor } from './harness.mjs';
import { connect, BufferFullError, ClosedError, DisconnectedError, ServerError, ErrorCode } from '../index.mjs';

test('reconnect across a server restart', async (t) => {
  const srv = await new Server(t, { A: {} }).start();
  const c = await connect('A', { socket: srv.path('A'), backoffMin: 50, backoffMax: 200, reconnectBuffer: 4096 });
  t.after(() => c.close());
  const downs = [];
  let ups = 0;
  c.status.on('disconnect', (err) => downs.push(err));
  c.status.on('reconnect', () => { ups++; });
  const firstID = c.id;

  const asking = assert.rejects(c.request('ask-nobody', null, { timeout: 60000 }), DisconnectedError,
    'a request waiting when the connection ends fails');
  // A request the client answers itself, through the server: once it is
  // back, the server has read all the client wrote, and the stop below
  // cannot meet a write of the client's half-way (EPIPE).
  c.on('fence', (m) => c.reply(m, null));
  await c.request('fence', null);
  await srv.stop();
  await waitFor('the disconnect event', () => downs.length === 1);
  assert.ok(downs[0] instanceof ServerError && downs[0].code === ErrorCode.SHUTDOWN, `disconnect reason ${downs[0]}`);
  await asking;
  assert.equal(c.connected, false);

  // While down: events are kept up to the bound, requests fail at once.
  for (let i = 0; i < 5; i++) c.emit('kept', i);
  assert.throws(() => { for (;;) c.emit('filler', 'x'.repeat(500)); }, BufferFullError);
  await assert.rejects(c.request('ask', null), DisconnectedError);

  // The server comes back without A, so that a Go client can listen on
  // B before A opens (by a reload) and the client gets back in.
  srv.configure({ B: {} });
  await srv.start();
  const go = await new GoPeer(t, srv.path('B'), 'B').ready();
  srv.configure({ A: { propagatetochannels: 'B' }, B: {} });
  srv.reload();
  await waitFor('the reconnect event', () => ups === 1);
  assert.equal(downs.length, 1, 'one disconnect for one restart');
  assert.notEqual(c.id, firstID, 'a new connection has a new client id');
  c.emit('after', 'now');
  const heard = [];
  for (;;) {
    const l = await go.next((x) => x.event === 'kept' || x.event === 'after');
    heard.push(l.data);
    if (l.event === 'after') break;
  }
  assert.deepEqual(heard, [0, 1, 2, 3, 4, 'now'], 'the kept events, in order, before the next one');
});

test('reconnect off: the client ends with its connection', async (t) => {
  const srv = await new Server(t, { A: {} }).start();
  const c = await connect('A', { socket: srv.path('A'), reconnect: false });
  let closed = false;
  c.status.on('disconnect', () => { closed = true; });
  await srv.stop();
  await waitFor('the disconnect', () => closed);
  assert.throws(() => c.emit('x', 1));
});

// A server that refuses a reconnection at the handshake for its access
// rules would refuse every later one: the client ends for good, as it
// does when a live connection is refused ('disconnect' with the
// refusal, then 'close'). Before the fix it tried again forever, every
// backoffMax, and never closed.
test('a reconnection refused by the access rules ends the client', async (t) => {
  const srv = await new Server(t, { A: {} }).start();
  const c = await connect('A', { socket: srv.path('A'), backoffMin: 50, backoffMax: 100 });
  t.after(() => c.close());
  const downs = [];
  let closes = 0;
  c.status.on('disconnect', (err) => downs.push(err));
  c.status.on('close', () => { closes++; });
  await srv.stop();
  await waitFor('the disconnect', () => downs.length === 1);
  c.emit('kept', 1);
  const flushing = assert.rejects(c.flush(), ServerError, 'a flush waiting ends with the refusal');
  srv.configure({ A: { allow: ['nobody'] } });
  await srv.start();
  await waitFor('the refusal', () => closes === 1, 5000);
  assert.equal(downs.length, 2, 'the restart, then the refusal');
  assert.ok(downs[1] instanceof ServerError && downs[1].code === ErrorCode.FORBIDDEN, `refused with ${downs[1]}`);
  await flushing;
  assert.throws(() => c.emit('x', 1), ClosedError);
  // No more tries.
  const refusals = () => (srv.logs.match(/not allowed on channel A/g) || []).length;
  const tried = refusals();
  await new Promise((r) => setTimeout(r, 500));
  assert.equal(refusals(), tried, 'the client tried again after the refusal');
});

test('connect fails when no server is there', async (t) => {
  const srv = new Server(t, { A: {} });
  await assert.rejects(connect('A', { socket: srv.path('A') }), /ENOENT|ECONNREFUSED/);
});
