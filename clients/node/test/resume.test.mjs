// Resuming after a reconnect (PROTOCOL.md section 5.2) and draining
// before a stop (section 5.3), against a real ncserver that is stopped
// with SIGTERM and started again on the same configuration: a publisher
// that honours emit's signal and the subscribers lose nothing, get
// nothing twice, and keep the order.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { symlinkSync, unlinkSync } from 'node:fs';
import { join } from 'node:path';
import { Server, GoPeer, waitFor } from './harness.mjs';
import { connect, Client } from '../index.mjs';

// publish emits seq 0..n-1, waiting whenever emit says so; restart is
// awaited (in the background) once at is reached.
async function publish(c, n, at, restart) {
  let restarting = null;
  for (let i = 0; i < n; i++) {
    if (i === at) restarting = restart();
    if (!c.emit('seq', i)) await c.flush();
  }
  await restarting;
}

// checkSeq asserts that got is exactly 0..n-1, in order.
function checkSeq(got, n) {
  const doubled = got.length - new Set(got).size;
  const lost = n - new Set(got).size;
  assert.equal(lost, 0, `${lost} events lost`);
  assert.equal(doubled, 0, `${doubled} events doubled`);
  assert.deepEqual(got, Array.from({ length: n }, (_, i) => i), 'order kept');
}

// counting records how often the client disconnected and reconnected.
function counting(c) {
  const n = { down: 0, up: 0, ids: new Set([c.id]) };
  c.status.on('disconnect', () => { n.down++; });
  c.status.on('reconnect', () => { n.up++; n.ids.add(c.id); });
  return n;
}

const fast = { backoffMin: 20, backoffMax: 200 };

// Late is a path to a channel's socket (a symbolic link) that can be
// taken away: a subscriber connected through it is kept from
// reconnecting after a restart until the publisher has reconnected and
// the new server has handled some of its events, so that those are
// only in the new server's ring when the subscriber comes back.
class Late {
  constructor(srv, channel) {
    this.target = srv.path(channel);
    this.path = join(srv.dir, 'late.sock');
    symlinkSync(this.target, this.path);
  }

  away() {
    unlinkSync(this.path);
  }

  back() {
    symlinkSync(this.target, this.path);
  }
}

// restartLate restarts srv with late's subscriber kept away until the
// publisher pub has reconnected (its counts p) and the new server has
// handled what pub emitted before a fence: a request pub answers itself.
async function restartLate(srv, late, pub, p) {
  await srv.stop();
  late.away();
  await srv.start();
  await waitFor('the publisher to reconnect', () => p.up === 1);
  await pub.request('fence', null, { timeout: 60000 });
  late.back();
}

test('resume across a server restart: nothing lost, nothing doubled, order kept', async (t) => {
  const srv = await new Server(t, { A: {} }).start();
  const late = new Late(srv, 'A');
  const pub = await connect('A', { socket: srv.path('A'), ...fast });
  const sub = await connect('A', { socket: late.path, ...fast });
  t.after(() => Promise.all([pub.close(), sub.close()]));
  pub.on('fence', (m) => pub.reply(m, null));
  const got = [];
  sub.on('seq', (m) => got.push(m.data));
  await sub.listening(); // the server forwards 'seq' to it from now on
  const p = counting(pub);
  const s = counting(sub);
  const n = 20000;
  await publish(pub, n, n / 2, async () => {
    await waitFor('the subscriber to be under way', () => got.length > 0);
    await restartLate(srv, late, pub, p);
  });
  await waitFor(`all ${n} events`, () => got.length >= n, 60000);
  checkSeq(got, n);
  assert.equal(p.down, 1, 'the publisher was disconnected once');
  assert.equal(s.down, 1, 'the subscriber was disconnected once');
  assert.ok(p.ids.size === 2 && s.ids.size === 2, 'each reconnected with a new client id');
  assert.equal(sub.missed, 0);
});

test('a Node publisher and a Go subscriber across a restart', async (t) => {
  const srv = await new Server(t, { A: {} }).start();
  const late = new Late(srv, 'A');
  const go = await new GoPeer(t, late.path, 'A').ready();
  const pub = await connect('A', { socket: srv.path('A'), ...fast });
  t.after(() => pub.close());
  pub.on('fence', (m) => pub.reply(m, null));
  const p = counting(pub);
  const heard = () => go.lines.filter((l) => l.event === 'seq');
  const n = 5000;
  await publish(pub, n, n / 2, async () => {
    await waitFor('the Go subscriber to be under way', () => heard().length > 0);
    await restartLate(srv, late, pub, p);
  });
  await waitFor(`all ${n} events at the Go subscriber`, () => heard().length >= n, 60000);
  checkSeq(heard().map((l) => l.data), n);
  assert.equal(p.down, 1, 'the publisher was disconnected once');
  assert.equal(heard().filter((l) => l.sender === go.id).length, 0);
});

test('events the server no longer holds are reported missed', async (t) => {
  // A ring of about ten events: the subscriber, kept away while 200
  // are emitted, gets the last ones and is told of the rest.
  const srv = await new Server(t, { A: {} }, { retainbytes: 2000 }).start();
  const late = new Late(srv, 'A');
  const pub = await connect('A', { socket: srv.path('A'), ...fast });
  const sub = await connect('A', { socket: late.path, ...fast });
  t.after(() => Promise.all([pub.close(), sub.close()]));
  const heard = [];
  sub.on('.*', (m) => heard.push(m));
  const missed = [];
  sub.status.on('missed', (k) => missed.push(k));
  const p = counting(pub);
  pub.on('fence', (m) => pub.reply(m, null));
  await srv.stop();
  late.away();
  await srv.start();
  await waitFor('the publisher to reconnect', () => p.up === 1);
  for (let i = 0; i < 200; i++) pub.emit('seq', i);
  // Once the fence's reply is back, the server has handled all 200.
  await pub.request('fence', null);
  late.back();
  await waitFor('the missed report', () => missed.length === 1);
  assert.ok(missed[0] > 0 && missed[0] < 201, `missed ${missed[0]}`);
  assert.equal(sub.missed, missed[0]);
  // The ring kept the fence and the last seq events: what was not
  // missed arrives, in order, ending with the last one.
  await waitFor('the retained events', () => heard.length + missed[0] === 201);
  const seqs = heard.filter((m) => m.event === 'seq').map((m) => m.data);
  assert.deepEqual(seqs, Array.from({ length: seqs.length }, (_, i) => 200 - seqs.length + i));
  assert.equal(heard.at(-1).event, 'fence');
});

// The events kept while disconnected go out before anything a
// 'missed' handler emits: the kept ones were emitted first. Before the
// fix the client reported 'missed' before it sent the kept events, so a
// handler's emit overtook them.
test('an emit from a missed handler follows the events kept while disconnected', async (t) => {
  const srv = await new Server(t, { A: {} }, { retainbytes: 2000 }).start();
  const late = new Late(srv, 'A');
  const pub = await connect('A', { socket: srv.path('A'), ...fast });
  const sub = await connect('A', { socket: late.path, ...fast });
  t.after(() => Promise.all([pub.close(), sub.close()]));
  const missed = [];
  sub.status.on('missed', (k) => {
    missed.push(k);
    sub.emit('resync', 'from-missed');
  });
  const order = [];
  pub.on('kept|resync', (m) => order.push(m.data));
  const p = counting(pub);
  pub.on('fence', (m) => pub.reply(m, null));
  await srv.stop();
  late.away();
  await srv.start();
  await waitFor('the publisher to reconnect', () => p.up === 1);
  await pub.listening();
  // More than the ring holds: the subscriber will have missed some.
  for (let i = 0; i < 200; i++) pub.emit('seq', i);
  await pub.request('fence', null);
  sub.emit('kept', 'kept-1');
  sub.emit('kept', 'kept-2');
  late.back();
  await waitFor('the missed report', () => missed.length === 1);
  await waitFor('three events at the publisher', () => order.length === 3);
  assert.deepEqual(order, ['kept-1', 'kept-2', 'from-missed']);
});

test('since asks for history on the first connection', async (t) => {
  const srv = await new Server(t, { A: {} }).start();
  const pub = await connect('A', { socket: srv.path('A') });
  t.after(() => pub.close());
  for (let i = 0; i < 5; i++) pub.emit('old', i);
  pub.on('fence', (m) => pub.reply(m, null));
  await pub.request('fence', null);

  const plain = await connect('A', { socket: srv.path('A') });
  const late = new Client('A', { socket: srv.path('A'), since: 60000 });
  t.after(() => Promise.all([plain.close(), late.close()]));
  const heardPlain = [];
  const heardLate = [];
  plain.on('old|now', (m) => heardPlain.push(m.data));
  late.on('old|now', (m) => heardLate.push(m.data)); // before connect: nothing can slip past
  await late.connect();
  await plain.listening();
  pub.emit('now', 'live');
  await waitFor('the live event', () => heardLate.includes('live') && heardPlain.includes('live'));
  assert.deepEqual(heardLate, [0, 1, 2, 3, 4, 'live'], 'the history, then what is live');
  assert.deepEqual(heardPlain, ['live'], 'without since, only what comes after connecting');
});
