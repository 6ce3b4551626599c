// Interest against a real ncserver of protocol version 4: the server
// forwards a Node client only what its listeners declare, nothing is
// missed once listening() resolves, a pattern JavaScript and RE2 may
// read apart declares All, and a Go client that declares All beside it
// sees everything.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Server, GoPeer, recorder, waitFor } from './harness.mjs';
import { connect, Client } from '../index.mjs';

async function setup(t) {
  const srv = await new Server(t, { A: {} }).start();
  const dial = async (channel, opts = {}) => {
    const c = await connect(channel, { socket: srv.path(channel), name: 'node-filter', ...opts });
    t.after(() => c.close());
    return c;
  };
  const control = await dial('control');
  const ask = async (command, args) => (await control.request(`nc-control-${command}`, args)).data;
  return { srv, dial, ask };
}

// wire records the name of every event that crossed c's socket, heard
// by a listener or not.
function wire(c) {
  const names = [];
  const received = c.received.bind(c);
  c.received = (m) => {
    names.push(m.event);
    received(m);
  };
  return names;
}

test('a Node client listening to one name receives only that name', async (t) => {
  const { srv, dial, ask } = await setup(t);
  const go = await new GoPeer(t, srv.path('A'), 'A').ready(); // listens to .*: declares All
  const sub = await dial('A');
  assert.equal(sub.session.welcome.version, 4, 'the server speaks version 4');
  const crossed = wire(sub);
  const one = recorder();
  sub.on('one', one);
  await sub.listening();
  const pub = await dial('A');
  const names = ['two', 'one', 'three', 'four', 'one'];
  for (const n of names) pub.emit(n, n);
  for (const n of names) assert.equal((await go.next((l) => l.event === n)).event, n);
  await waitFor('the listener to hear both', () => one.count('one') === 2);
  assert.deepEqual(crossed, ['one', 'one'], 'only what the client listens to crossed its socket');

  const client = await ask('showclient', { id: sub.id, channel: 'A' });
  assert.deepEqual(client.interest, ['one']);
  const channel = await ask('showchannel', { channel: 'A' });
  const stats = channel.stats || channel;
  assert.ok(stats.filtered >= 3, `the channel counts what it did not forward: ${JSON.stringify(stats)}`);
});

test('an event emitted after listening() resolves reaches the new listener, under traffic', async (t) => {
  const { dial } = await setup(t);
  const sub = await dial('A');
  const pub = await dial('A');
  // The publisher cycles through the names all along.
  const rounds = 20;
  const sent = Array.from({ length: rounds }, () => 0);
  let running = true;
  const traffic = (async () => {
    for (let i = 0; running; i++) {
      const k = i % rounds;
      pub.emit(`name-${k}`, sent[k]++);
      if (i % 50 === 49) await new Promise((r) => setImmediate(r));
    }
  })();
  const heard = [];
  const from = [];
  for (let k = 0; k < rounds; k++) {
    heard[k] = [];
    sub.on(`name-${k}`, (m) => heard[k].push(m.data));
    await sub.listening();
    from[k] = sent[k]; // every event of the name emitted from now on must arrive
    if (k % 2 === 1) sub.off(`name-${k - 1}`); // narrowing, not waited for
  }
  await new Promise((r) => setTimeout(r, 100));
  running = false;
  await traffic;
  const last = sent.map((n) => n - 1);
  await waitFor('the last event of each name still listened to', () =>
    heard.every((h, k) => k % 2 === 0 && k < rounds - 1 ? true : h.includes(last[k])));
  for (let k = 1; k < rounds; k += 2) {
    const want = Array.from({ length: sent[k] - from[k] }, (_, i) => from[k] + i);
    const got = heard[k].filter((n) => n >= from[k]);
    assert.deepEqual(got, want, `name-${k}: every event from the moment listening() resolved, in order`);
  }
});

test('a pattern outside the portable subset declares All; NCAgent and receiveAll receive everything', async (t) => {
  const { srv, dial, ask } = await setup(t);
  const sub = await dial('A');
  const crossed = wire(sub);
  const tee = recorder();
  const l = sub.on('(?=t)t.*', tee);
  assert.equal(l.declared, null);
  await sub.listening();
  assert.equal((await ask('showclient', { id: sub.id, channel: 'A' })).interest ?? null, null, 'All shows as null');
  const all = new Client('A', { socket: srv.path('A'), receiveAll: true });
  t.after(() => all.close());
  await all.connect();
  const allCrossed = wire(all);
  const pub = await dial('A');
  for (const n of ['two', 'one', 'three']) pub.emit(n, n);
  await waitFor('the three', () => crossed.length === 3 && allCrossed.length === 3);
  assert.deepEqual(tee.got.map((m) => m.event), ['two', 'three'], 'the client still filters locally');
  assert.deepEqual(crossed, ['two', 'one', 'three']);
  l.off();
  sub.on('one', () => {});
  await sub.listening();
  assert.deepEqual((await ask('showclient', { id: sub.id, channel: 'A' })).interest, ['one']);
});

test('listening() awaited inside a listener resolves', async (t) => {
  const { dial } = await setup(t);
  const sub = await dial('A');
  const pub = await dial('A');
  const inner = recorder();
  sub.on('start', async () => {
    sub.on('inner', inner);
    await sub.listening();
    pub.emit('inner', 1);
  });
  await sub.listening();
  pub.emit('start', null);
  await waitFor('the event emitted once the inner listener was applied', () => inner.got.length === 1);
});
