// FrameReader on a byte stream cut anywhere: frames come out whole and in
// order, the limits hold from the prefix alone, and a big frame in many
// small chunks is joined once, not once a chunk.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);
const { FrameReader } = require('../lib/framereader.cjs');

function frame(body) {
  const head = Buffer.alloc(4);
  head.writeUInt32BE(body.length);
  return Buffer.concat([head, body]);
}

test('frames cut at every byte come out whole and in order', () => {
  const bodies = [Buffer.from('a'), Buffer.alloc(300, 7), Buffer.from('three'), Buffer.alloc(70000, 9)];
  const stream = Buffer.concat(bodies.map(frame));
  for (const size of [1, 2, 3, 5, 4096, stream.length]) {
    const fr = new FrameReader(1 << 20);
    const got = [];
    for (let at = 0; at < stream.length; at += size) {
      fr.push(stream.subarray(at, at + size));
      for (let body; (body = fr.next()) !== null;) got.push(Buffer.from(body));
    }
    assert.deepEqual(got, bodies, `chunks of ${size} bytes`);
    assert.equal(fr.pending, 0);
  }
});

test('a partial frame is pending, and an empty chunk changes nothing', () => {
  const fr = new FrameReader(100);
  const f = frame(Buffer.from('hello'));
  fr.push(f.subarray(0, 3));
  fr.push(Buffer.alloc(0));
  assert.equal(fr.next(), null);
  assert.equal(fr.pending, 3);
  fr.push(f.subarray(3, 6));
  assert.equal(fr.next(), null);
  fr.push(f.subarray(6));
  assert.equal(fr.next().toString(), 'hello');
  assert.equal(fr.next(), null);
  assert.equal(fr.pending, 0);
});

test('a length of 0 or over the limit is refused from the prefix alone', () => {
  const zero = new FrameReader(100);
  zero.push(Buffer.from([0, 0]));
  assert.equal(zero.next(), null);
  zero.push(Buffer.from([0, 0]));
  assert.throws(() => zero.next(), /length 0/);
  const big = new FrameReader(100);
  big.push(Buffer.from([0, 0, 0, 101])); // no body yet: the prefix is enough
  assert.throws(() => big.next(), /over the limit of 100/);
});

test('a big frame in many chunks is joined once', () => {
  const n = 1 << 20;
  const f = frame(Buffer.alloc(n, 1));
  const fr = new FrameReader(n);
  const concat = Buffer.concat;
  let copied = 0;
  Buffer.concat = (list, ...rest) => {
    const out = concat(list, ...rest);
    copied += out.length;
    return out;
  };
  try {
    for (let at = 0; at < f.length; at += 1024) {
      fr.push(f.subarray(at, at + 1024));
      fr.next();
    }
  } finally {
    Buffer.concat = concat;
  }
  // The prefix is joined out of the first chunk never (it holds all 4
  // bytes), and the frame once: about its size, where joining each chunk
  // as it came would copy about n*n/2048 bytes.
  assert.ok(copied <= f.length, `copied ${copied} bytes for a frame of ${f.length}`);
});
