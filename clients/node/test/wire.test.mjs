// The codec against the protocol's test vectors (PROTOCOL.md section 11):
// every valid frame decodes to its fields, every canonical one encodes
// back to its bytes, and every invalid one is refused for its reason.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { createRequire } from 'node:module';
import { repo } from './harness.mjs';

const require = createRequire(import.meta.url);
const wire = require('../lib/wire.cjs');
const { decodeInterest, decodeApplied, encodeInterest } = require('../lib/interest.cjs');

const dir = join(repo, 'testdata', 'frames');
const names = readdirSync(dir).filter((f) => f.endsWith('.json')).map((f) => f.slice(0, -5));

function hexOf(name) {
  const text = readFileSync(join(dir, name + '.hex'), 'utf8').replace(/#.*$/gm, '').replace(/\s+/g, '');
  return Buffer.from(text, 'hex');
}

const decoders = {
  hello: (h) => wire.decodeHello(h),
  welcome: (h) => wire.decodeWelcome(h),
  event: (h, body) => wire.decodeEvent(h, body),
  error: (h) => wire.decodeError(h),
  ping: (h) => wire.decodeEmpty(h),
  pong: (h) => wire.decodeEmpty(h),
  drain: (h) => wire.decodeEmpty(h),
  interest: (h) => decodeInterest(h),
  applied: (h) => decodeApplied(h),
};
const types = { hello: 1, welcome: 2, event: 3, error: 4, ping: 5, pong: 6, drain: 7, interest: 8, applied: 9 };

// read decodes the one frame of stream as type (default: its own).
function read(stream, maxframe, as) {
  const fr = new wire.FrameReader(maxframe);
  fr.push(stream);
  const body = fr.next();
  if (body === null) return { eof: true };
  const h = wire.frameHead(body);
  const type = as || wire.frameNames[h.type];
  if (as && types[as] !== h.type) h.r.fail(`a ${wire.frameNames[h.type]} frame where ${as} was due`);
  const fields = decoders[type] ? decoders[type](h, body) : h.r.fail(`unknown frame type ${h.type}`);
  return { type, fields, rest: fr.pending };
}

// plain renders decoded fields as the vectors write them: ids as UUID
// strings, a nil id as "".
function plain(type, f) {
  if (!f) return {};
  const out = {};
  for (const [k, v] of Object.entries(f)) {
    if (Buffer.isBuffer(v) && v.length === 16) out[k] = wire.idString(v);
    else if (v === null) out[k] = k === 'interest' || k === 'patterns' ? null : '';
    else if (Array.isArray(v)) out[k] = v.map((x) => (Buffer.isBuffer(x) ? wire.idString(x) : x));
    else if (k === 'data') out.data_hex = Buffer.from(v).toString('hex');
    else if (k === 'maxFrame') out.maxframe = v;
    else out[k] = v;
  }
  return out;
}

for (const name of names) {
  const want = JSON.parse(readFileSync(join(dir, name + '.json'), 'utf8'));
  test(`vector ${name}`, () => {
    const stream = hexOf(name);
    const maxframe = want.maxframe || wire.DEFAULT_MAX_FRAME;
    if (want.error) {
      let got;
      try {
        got = read(stream, maxframe, want.decode_as);
      } catch (err) {
        assert.ok(err instanceof wire.ProtocolError, `${err}`);
        const tooBig = /frame too big/.test(err.message);
        assert.equal(tooBig, want.error === 'frame_too_big', err.message);
        return;
      }
      assert.ok(got.eof && want.error === 'unexpected_eof', `decoded ${JSON.stringify(got)}, want ${want.error}`);
      return;
    }
    const got = read(stream, maxframe);
    assert.equal(got.type, want.type);
    assert.equal(got.rest, 0, 'bytes after the one frame');
    const fields = plain(got.type, got.fields);
    for (const [k, v] of Object.entries(want.fields || {})) {
      if (k === 'data') {
        assert.deepEqual(wire.decode(Buffer.from(want.data_hex, 'hex')), wire.decode(got.fields.data), 'data');
        assert.equal(fields.data_hex, want.data_hex);
      } else {
        assert.deepEqual(fields[k], v, k);
      }
    }
  });
}

test('canonical vectors encode back to their bytes', () => {
  const hello = JSON.parse(readFileSync(join(dir, 'hello.json'), 'utf8')).fields;
  assert.equal(wire.encodeHello(hello.version, wire.idBytes(hello.client_id), hello.name, hello.pid).toString('hex'),
    hexOf('hello').toString('hex'));
  for (const name of ['event-map', 'event-nil', 'event-name-str16', 'event-reply', 'event-scalars']) {
    const v = JSON.parse(readFileSync(join(dir, name + '.json'), 'utf8'));
    const f = v.fields;
    const m = {
      id: wire.idBytes(f.id), origin: wire.idBytes(f.origin), sender: wire.idBytes(f.sender),
      channel: f.channel, event: f.event, data: Buffer.from(v.data_hex, 'hex'),
      to: f.to ? wire.idBytes(f.to) : null, re: f.re ? wire.idBytes(f.re) : null,
    };
    assert.equal(wire.encodeEvent(m).toString('hex'), hexOf(name).toString('hex'), name);
  }
  assert.equal(wire.PING_FRAME.toString('hex'), hexOf('ping').toString('hex'));
  assert.equal(wire.PONG_FRAME.toString('hex'), hexOf('pong').toString('hex'));
  assert.equal(wire.DRAIN_FRAME.toString('hex'), hexOf('drain').toString('hex'));
  const hr = JSON.parse(readFileSync(join(dir, 'hello-resume.json'), 'utf8')).fields;
  const resume = {
    epoch: wire.idBytes(hr.resume_epoch), after: wire.idBytes(hr.resume_after),
    since: hr.since, own: hr.own.map((id) => wire.idBytes(id)),
  };
  assert.equal(wire.encodeHello(hr.version, wire.idBytes(hr.client_id), hr.name, hr.pid, resume).toString('hex'),
    hexOf('hello-resume').toString('hex'), 'hello-resume');
});

test('canonical vectors of version 4 encode back to their bytes', () => {
  const decl = (patterns) => (patterns === null ? { all: true, patterns: [] } : { all: false, patterns });
  for (const name of names) {
    const v = JSON.parse(readFileSync(join(dir, name + '.json'), 'utf8'));
    if (!v.canonical) continue;
    const f = v.fields;
    let got;
    if (v.type === 'hello' && 'interest' in f) {
      got = wire.encodeHello(f.version, wire.idBytes(f.client_id), f.name, f.pid,
        { epoch: f.resume_epoch ? wire.idBytes(f.resume_epoch) : null, after: f.resume_after ? wire.idBytes(f.resume_after) : null,
          since: f.since, own: f.own.map((id) => wire.idBytes(id)) }, decl(f.interest));
    } else if (v.type === 'interest') {
      got = encodeInterest(f.seq, decl(f.patterns));
    } else {
      continue;
    }
    assert.equal(got.toString('hex'), hexOf(name).toString('hex'), name);
  }
});

test('a hello writes the resume fields only when it asks for something', () => {
  const id = wire.newID();
  const decoded = (frame) => wire.decodeHello(wire.frameHead(frame.subarray(wire.HEADER_LEN)));
  assert.deepEqual(Object.keys(decoded(wire.encodeHello(3, id, 'n', 1, { epoch: null, since: 0, own: [] }))),
    ['version', 'client_id', 'name', 'pid'], 'nothing asked: no resume fields');
  assert.equal(wire.encodeHello(2, id, 'n', 1, { since: 5000 }).length, wire.encodeHello(2, id, 'n', 1).length,
    'version 2 has no resume fields');
  const h = decoded(wire.encodeHello(3, id, 'n', 1, { since: 5000, after: wire.newID() }));
  assert.equal(h.since, 5000);
  assert.equal(h.resume_epoch, null);
  assert.equal(h.resume_after, null, 'after is nil without an epoch');
  const own = Array.from({ length: 20 }, () => wire.newID());
  assert.deepEqual(decoded(wire.encodeHello(3, id, 'n', 1, { own })).own, own.slice(-wire.MAX_OWN),
    'own keeps the latest ids, at most MAX_OWN');
});

test('a hello of version 4 declares after the four resume fields', () => {
  const id = wire.newID();
  const decoded = (frame) => wire.decodeHello(wire.frameHead(frame.subarray(wire.HEADER_LEN)));
  const h = decoded(wire.encodeHello(4, id, 'n', 1, { epoch: null, since: 0, own: [] }, { all: false, patterns: ['a', 'b\\.c'] }));
  assert.deepEqual(h, {
    version: 4, client_id: id, name: 'n', pid: 1, resume_epoch: null, resume_after: null, since: 0, own: [],
    interest: ['a', 'b\\.c'],
  });
  assert.equal(decoded(wire.encodeHello(4, id, 'n', 1, undefined, { all: true, patterns: [] })).interest, null, 'All');
  assert.equal(decoded(wire.encodeHello(4, id, 'n', 1, undefined, null)).interest, undefined, 'null declares nothing');
  assert.equal(decoded(wire.encodeHello(3, id, 'n', 1, undefined, { all: true, patterns: [] })).interest, undefined,
    'version 3 has no interest');
  const many = Array.from({ length: wire.MAX_PATTERNS + 1 }, (_, i) => `e${i}`);
  assert.throws(() => decoded(wire.encodeHello(4, id, 'n', 1, undefined, { all: false, patterns: many })), /at most 1024/);
});
