// Back-pressure: the server stops reading a publisher whose subscribers
// are behind (PROTOCOL.md section 8); emit then returns false, and a
// publisher that waits for 'drain' (or flush) before it goes on loses
// nothing and holds a bounded buffer.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Server, GoPeer, waitFor } from './harness.mjs';
import { connect, ClosedError } from '../index.mjs';

test('a publisher that honours emit keeps up with a slow Go subscriber, losing nothing', async (t) => {
  // Small queues everywhere, so that a few thousand events fill them;
  // a stalltimeout long enough that the slow subscriber, which does
  // take events, is never taken for a stopped one on a loaded machine.
  const srv = await new Server(t, { A: {} }, { maxpending: 1 << 20, stalltimeout: '1m' }).start();
  const go = await new GoPeer(t, srv.path('A'), 'A', ['-slow', '200us', '-queue', '64']).ready();
  const writeBuffer = 32 << 10;
  const pub = await connect('A', { socket: srv.path('A'), writeBuffer });
  t.after(() => pub.close());
  let drains = 0;
  pub.status.on('drain', () => { drains++; });
  const n = 4000;
  const payload = 'x'.repeat(1000);
  let waits = 0;
  let most = 0;
  for (let i = 0; i < n; i++) {
    const ok = pub.emit('seq', [i, payload]);
    most = Math.max(most, pub.session.sock.writableLength);
    if (!ok) {
      waits++;
      await pub.flush();
    }
  }
  assert.ok(waits > 0, 'emit said to wait: the server held the publisher back');
  assert.equal(drains, waits, 'one drain event per wait');
  assert.ok(most < writeBuffer + 1200, `the socket's buffer held ${most} bytes, over writeBuffer ${writeBuffer} and a frame`);
  assert.equal(pub.kept.length, 0, 'nothing was kept for a reconnect');
  const heard = () => go.lines.filter((l) => l.event === 'seq');
  await waitFor(`all ${n} events at the Go subscriber`, () => heard().length >= n, 120000).catch((err) => {
    throw new Error(`${err.message}: it has ${heard().length}; gopeer: ${go.stderr}; server: ${srv.logs.slice(-2000)}`);
  });
  const got = heard().map((l) => l.data[0]);
  assert.deepEqual(got, Array.from({ length: n }, (_, i) => i), 'every event, once, in order');
});

test('flush resolves at once when emit would send, and rejects on close', async (t) => {
  const srv = await new Server(t, { A: {} }).start();
  const c = await connect('A', { socket: srv.path('A'), backoffMin: 60000 });
  await c.flush();
  await srv.stop();
  await waitFor('the disconnect', () => !c.connected);
  assert.equal(c.emit('x', 1), false, 'while disconnected, emit says to wait');
  const waiting = c.flush();
  await c.close();
  await assert.rejects(waiting);
  await assert.rejects(c.flush(), ClosedError);
});

test('close gives up after closeTimeout when the server reads nothing', async (t) => {
  // A fake server that answers the Hello, then never reads again.
  const dir = mkdtempSync(join(tmpdir(), 'ncb'));
  const path = join(dir, 'A.sock');
  const socks = [];
  const srv = net.createServer((sock) => {
    socks.push(sock);
    sock.once('data', () => {
      sock.pause();
      const body = Buffer.from('9602' + '03' + 'c410' + '7c'.repeat(16) + 'a141' + 'ce00100000' + '01', 'hex');
      const len = Buffer.alloc(4);
      len.writeUInt32BE(body.length);
      sock.write(Buffer.concat([len, body]));
    });
  });
  await new Promise((r) => srv.listen(path, r));
  t.after(() => {
    for (const s of socks) s.destroy();
    srv.close();
    rmSync(dir, { recursive: true, force: true });
  });
  const c = await connect('A', { socket: path, writeBuffer: 16 << 10, closeTimeout: 300 });
  // More than the socket buffers of the kernel take, signal or not.
  for (let i = 0; i < 4000; i++) c.emit('x', 'y'.repeat(1000));
  const sock = c.session.sock;
  assert.ok(sock.writableLength > 0, 'the socket holds what the server did not take');
  await c.close();
  assert.ok(sock.destroyed, 'the socket is destroyed, not left to keep the process alive');
});
