'use strict';
// The framed wire protocol, version 4 (PROTOCOL.md sections 3 to 7): the
// frames a client writes and reads, as a pure codec on Buffers. Event
// data is encoded and decoded with @msgpack/msgpack; the envelope around
// it is read here by hand, so that every rule of section 3.2 holds (uint
// formats only, 16-byte uuids, one well-formed value, nothing after the
// array).

const { newID, idString, idBytes } = require('./ids.cjs');
const { ErrorCode, ProtocolError, ServerError } = require('./errors.cjs');
const { Encoder, Decoder } = require('@msgpack/msgpack');
const { FrameReader } = require('./framereader.cjs');
const { MAX_PATTERNS, MAX_PATTERN_LEN, encodePatterns, readPatterns } = require('./patternswire.cjs');

// One encoder and one decoder serve every call (they copy themselves
// when re-entered); making one per value cost more than the encoding.
const encoder = new Encoder();
const decoder = new Decoder();
const decode = (bytes) => decoder.decode(bytes);

const PROTOCOL_VERSION = 4; // the highest version this client speaks
const PING_VERSION = 2; // the first version with Ping and Pong
const RESUME_VERSION = 3; // the first with the resume fields and Drain (section 5.2)
const INTEREST_VERSION = 4; // the first with the Hello's interest, Interest and Applied (interest.cjs)
const MAX_OWN = 16; // the most earlier client ids a Hello names in own
const HEADER_LEN = 4; // the big-endian length prefix
const HANDSHAKE_MAX = 65536; // the limit on the Welcome (section 3.1)
const DEFAULT_MAX_FRAME = 1 << 20;

// Frame types (section 4). The numbers are on the wire.
const FrameType = Object.freeze({ HELLO: 1, WELCOME: 2, EVENT: 3, ERROR: 4, PING: 5, PONG: 6, DRAIN: 7, INTEREST: 8, APPLIED: 9 });
const frameNames = ['', 'hello', 'welcome', 'event', 'error', 'ping', 'pong', 'drain', 'interest', 'applied'];

// --- encoding -------------------------------------------------------------

function strHeaderLen(n) {
  if (n < 32) return 1;
  if (n < 256) return 2;
  if (n < 65536) return 3;
  return 5;
}

function uintLen(n) {
  if (n < 128) return 1;
  if (n < 256) return 2;
  if (n < 65536) return 3;
  if (n < 2 ** 32) return 5;
  return 9;
}

// Writer fills a Buffer of a size known in advance.
class Writer {
  constructor(size) {
    this.b = Buffer.allocUnsafe(size);
    this.p = 0;
  }

  byte(v) {
    this.b[this.p++] = v;
  }

  uint(n) {
    const b = this.b;
    if (n < 128) {
      b[this.p++] = n;
    } else if (n < 256) {
      b[this.p++] = 0xcc;
      b[this.p++] = n;
    } else if (n < 65536) {
      b[this.p++] = 0xcd;
      this.p = b.writeUInt16BE(n, this.p);
    } else if (n < 2 ** 32) {
      b[this.p++] = 0xce;
      this.p = b.writeUInt32BE(n, this.p);
    } else {
      b[this.p++] = 0xcf;
      this.p = b.writeBigUInt64BE(BigInt(n), this.p);
    }
  }

  // str writes a string whose UTF-8 length is n.
  str(s, n) {
    const b = this.b;
    if (n < 32) {
      b[this.p++] = 0xa0 | n;
    } else if (n < 256) {
      b[this.p++] = 0xd9;
      b[this.p++] = n;
    } else if (n < 65536) {
      b[this.p++] = 0xda;
      this.p = b.writeUInt16BE(n, this.p);
    } else {
      b[this.p++] = 0xdb;
      this.p = b.writeUInt32BE(n, this.p);
    }
    this.p += b.write(s, this.p, 'utf8');
  }

  uuid(id) {
    this.b[this.p++] = 0xc4;
    this.b[this.p++] = 16;
    this.p += id.copy(this.b, this.p);
  }

  optUUID(id) {
    if (id) this.uuid(id);
    else this.b[this.p++] = 0xc0;
  }

  raw(bytes) {
    this.b.set(bytes, this.p);
    this.p += bytes.length;
  }
}

// encodeHello is the whole Hello frame, length prefix included. resume,
// when given, holds the version 3 fields (section 4.1): epoch and after
// (16-byte Buffers or null), since (ms) and own (Buffers); they are
// written, all four, only when version is 3 or more and the client
// resumes or asks for something, or declares. interest, when given and
// version is 4 or more, is the declaration that follows them:
// {all, patterns}; null declares nothing.
function encodeHello(version, clientID, name, pid, resume, interest) {
  const n = Buffer.byteLength(name);
  const ip = interest && version >= INTEREST_VERSION ? encodePatterns(interest) : null;
  const r = version >= RESUME_VERSION && (ip || (resume &&
    (resume.epoch || resume.since > 0 || (resume.own && resume.own.length > 0)))) ? (resume || {}) : null;
  const own = r ? (r.own || []).slice(-MAX_OWN) : [];
  const since = r ? Math.max(0, Math.floor(r.since || 0)) : 0;
  const extra = (r ? (r.epoch ? 18 : 1) + (r.epoch && r.after ? 18 : 1) + uintLen(since) + (own.length < 16 ? 1 : 3) + 18 * own.length : 0) +
    (ip ? ip.length : 0);
  const body = 1 + 1 + uintLen(version) + 18 + strHeaderLen(n) + n + uintLen(pid) + extra;
  const w = new Writer(HEADER_LEN + body);
  w.p = w.b.writeUInt32BE(body, 0);
  w.byte(ip ? 0x9a : r ? 0x99 : 0x95);
  w.byte(FrameType.HELLO);
  w.uint(version);
  w.uuid(clientID);
  w.str(name, n);
  w.uint(pid);
  if (r) {
    w.optUUID(r.epoch);
    w.optUUID(r.epoch ? r.after : null); // after MUST be nil without an epoch
    w.uint(since);
    if (own.length < 16) {
      w.byte(0x90 | own.length);
    } else {
      w.byte(0xdc);
      w.p = w.b.writeUInt16BE(own.length, w.p);
    }
    for (const id of own) w.uuid(id);
  }
  if (ip) w.raw(ip);
  return w.b;
}

// encodeData is an event's data as msgpack; undefined is nil. The bytes
// are the encoder's own, valid until the next call: copy to keep them.
function encodeData(value) {
  return encoder.encodeSharedRef(value === undefined ? null : value);
}

// encodeEvent is the whole Event frame of m, length prefix included: m
// has id, origin, sender (16-byte Buffers), channel, event (strings),
// data (its msgpack bytes) and optionally to and re (Buffers or null).
// Both to and re are written when either is set (section 4.3).
function encodeEvent(m) {
  const nc = Buffer.byteLength(m.channel);
  const ne = Buffer.byteLength(m.event);
  const addressed = Boolean(m.to || m.re);
  const body = eventBodyLen(m);
  const w = new Writer(HEADER_LEN + body);
  w.p = w.b.writeUInt32BE(body, 0);
  w.byte(addressed ? 0x99 : 0x97);
  w.byte(FrameType.EVENT);
  w.uuid(m.id);
  w.uuid(m.origin);
  w.uuid(m.sender);
  w.str(m.channel, nc);
  w.str(m.event, ne);
  w.raw(m.data);
  if (addressed) {
    for (const id of [m.to, m.re]) {
      if (id) w.uuid(id);
      else w.byte(0xc0);
    }
  }
  return w.b;
}

// eventBodyLen is the length of m's Event frame body, as encodeEvent
// writes it (the ids have a fixed length, so m needs no origin or
// sender yet): what the server's maxframe bounds.
function eventBodyLen(m) {
  const nc = Buffer.byteLength(m.channel);
  const ne = Buffer.byteLength(m.event);
  const addressed = Boolean(m.to || m.re);
  return 1 + 1 + 3 * 18 + strHeaderLen(nc) + nc + strHeaderLen(ne) + ne + m.data.length +
    (addressed ? (m.to ? 18 : 1) + (m.re ? 18 : 1) : 0);
}

const PING_FRAME = Buffer.from([0, 0, 0, 2, 0x91, FrameType.PING]);
const PONG_FRAME = Buffer.from([0, 0, 0, 2, 0x91, FrameType.PONG]);
const DRAIN_FRAME = Buffer.from([0, 0, 0, 2, 0x91, FrameType.DRAIN]);

// --- decoding -------------------------------------------------------------

// Reader reads the envelope of one frame body.
class Reader {
  constructor(body) {
    this.b = body;
    this.p = 0;
  }

  fail(reason) {
    throw new ProtocolError(`malformed frame at byte ${this.p}: ${reason}`);
  }

  need(n, what) {
    if (this.p + n > this.b.length) this.fail(`${what} reaches past the end of the frame`);
  }

  byte(what) {
    this.need(1, what);
    return this.b[this.p++];
  }

  // count reads a length or count of size bytes after a format byte.
  count(size, what) {
    this.need(size, what);
    const b = this.b;
    const p = this.p;
    this.p += size;
    if (size === 1) return b[p];
    if (size === 2) return b.readUInt16BE(p);
    return b.readUInt32BE(p);
  }

  arrayHeader() {
    const t = this.byte('array header');
    if (t >= 0x90 && t <= 0x9f) return t & 0x0f;
    if (t === 0xdc) return this.count(2, 'array header');
    if (t === 0xdd) return this.count(4, 'array header');
    this.p--;
    return this.fail(`want an array, got byte 0x${t.toString(16)}`);
  }

  // uint reads an unsigned integer no larger than max; the signed
  // formats are refused even for a value of 0 or more.
  uint(max, what) {
    const t = this.byte(what);
    let v;
    if (t <= 0x7f) v = t;
    else if (t === 0xcc) v = this.count(1, what);
    else if (t === 0xcd) v = this.count(2, what);
    else if (t === 0xce) v = this.count(4, what);
    else if (t === 0xcf) {
      this.need(8, what);
      const big = this.b.readBigUInt64BE(this.p);
      this.p += 8;
      v = big > BigInt(Number.MAX_SAFE_INTEGER) ? Infinity : Number(big);
    } else {
      this.p--;
      return this.fail(`${what}: want an unsigned integer, got byte 0x${t.toString(16)}`);
    }
    if (v > max) this.fail(`${what}: ${v} is over ${max}`);
    return v;
  }

  str(what) {
    const t = this.byte(what);
    let n;
    if (t >= 0xa0 && t <= 0xbf) n = t & 0x1f;
    else if (t === 0xd9) n = this.count(1, what);
    else if (t === 0xda) n = this.count(2, what);
    else if (t === 0xdb) n = this.count(4, what);
    else {
      this.p--;
      return this.fail(`${what}: want a string, got byte 0x${t.toString(16)}`);
    }
    this.need(n, what);
    const s = this.b.toString('utf8', this.p, this.p + n);
    this.p += n;
    return s;
  }

  // uuid reads a bin of exactly 16 bytes, or nil when nilOK.
  uuid(what, nilOK) {
    const t = this.byte(what);
    if (nilOK && t === 0xc0) return null;
    let n;
    if (t === 0xc4) n = this.count(1, what);
    else if (t === 0xc5) n = this.count(2, what);
    else if (t === 0xc6) n = this.count(4, what);
    else {
      this.p--;
      return this.fail(`${what}: want a 16-byte bin, got byte 0x${t.toString(16)}`);
    }
    if (n !== 16) this.fail(`${what}: a uuid is 16 bytes, got ${n}`);
    this.need(16, what);
    const id = Buffer.from(this.b.subarray(this.p, this.p + 16));
    this.p += 16;
    return id;
  }

  // skip passes over one well-formed msgpack value and returns where it
  // began. It walks iteratively, so nesting costs no stack, and refuses
  // a count larger than the bytes left before looking at the elements.
  skip(what) {
    const start = this.p;
    let pending = 1;
    while (pending > 0) {
      pending--;
      const t = this.byte(what);
      let n = 0;
      if (t <= 0x7f || t >= 0xe0 || (t >= 0xc0 && t <= 0xc3 && t !== 0xc1)) continue;
      if (t >= 0x80 && t <= 0x8f) n = 2 * (t & 0x0f);
      else if (t >= 0x90 && t <= 0x9f) n = t & 0x0f;
      else if (t >= 0xa0 && t <= 0xbf) this.bytes(t & 0x1f, what);
      else if (t === 0xc4 || t === 0xd9) this.bytes(this.count(1, what), what);
      else if (t === 0xc5 || t === 0xda) this.bytes(this.count(2, what), what);
      else if (t === 0xc6 || t === 0xdb) this.bytes(this.count(4, what), what);
      else if (t === 0xc7) this.bytes(this.count(1, what) + 1, what);
      else if (t === 0xc8) this.bytes(this.count(2, what) + 1, what);
      else if (t === 0xc9) this.bytes(this.count(4, what) + 1, what);
      else if (t === 0xca) this.bytes(4, what);
      else if (t === 0xcb) this.bytes(8, what);
      else if (t >= 0xcc && t <= 0xcf) this.bytes(1 << (t - 0xcc), what);
      else if (t >= 0xd0 && t <= 0xd3) this.bytes(1 << (t - 0xd0), what);
      else if (t >= 0xd4 && t <= 0xd8) this.bytes(1 + (1 << (t - 0xd4)), what);
      else if (t === 0xdc) n = this.count(2, what);
      else if (t === 0xdd) n = this.count(4, what);
      else if (t === 0xde) n = 2 * this.count(2, what);
      else if (t === 0xdf) n = 2 * this.count(4, what);
      else {
        this.p--;
        this.fail(`${what}: byte 0xc1 is never used in msgpack`);
      }
      if (n > this.b.length - this.p) this.fail(`${what}: a count of ${n} elements reaches past the end of the frame`);
      pending += n;
    }
    return start;
  }

  bytes(n, what) {
    this.need(n, what);
    this.p += n;
  }

  // end skips the fields a later version appends (section 3.3), then
  // requires the end of the body.
  end(count, known) {
    for (let i = known; i < count; i++) this.skip('extra field');
    if (this.p !== this.b.length) this.fail(`${this.b.length - this.p} bytes after the frame's array`);
  }
}

// frameType reads the type of a frame body: [type, ...].
function frameHead(body) {
  if (body.length === 0) throw new ProtocolError('malformed frame: an empty body');
  const r = new Reader(body);
  const count = r.arrayHeader();
  if (count === 0) r.fail('an empty array has no frame type');
  const type = r.uint(255, 'frame type');
  return { r, count, type };
}

// need checks that a frame of type has the fields it needs.
function needFields(h, fields) {
  if (h.count < fields + 1) {
    h.r.fail(`a ${frameNames[h.type]} frame has ${fields} fields, this one ${h.count - 1}`);
  }
}

// decodeHello reads a Hello body; a client never receives one, but the
// codec is whole so that the test vectors check every frame type.
function decodeHello(h) {
  needFields(h, 4);
  const r = h.r;
  const hello = {
    version: r.uint(Number.MAX_SAFE_INTEGER, 'version'),
    client_id: r.uuid('client id'),
    name: r.str('name'),
    pid: r.uint(Number.MAX_SAFE_INTEGER, 'pid'),
  };
  let known = 5;
  if (hello.version >= RESUME_VERSION && h.count >= known + 4) {
    // The version 3 fields: all four, or none (section 4.1).
    hello.resume_epoch = r.uuid('resume epoch', true);
    hello.resume_after = r.uuid('resume after', true);
    hello.since = r.uint(Number.MAX_SAFE_INTEGER, 'since');
    const at = r.p;
    const n = r.arrayHeader();
    if (n > MAX_OWN) {
      r.p = at;
      r.fail(`own: ${n} ids, at most ${MAX_OWN}`);
    }
    hello.own = [];
    for (let i = 0; i < n; i++) hello.own.push(r.uuid('own id'));
    if (!hello.resume_epoch && hello.resume_after) r.fail('resume after an event without a resume epoch');
    known += 4;
    if (hello.version >= INTEREST_VERSION && h.count > known) {
      // The interest follows the resume fields, never stands in their place.
      const p = readPatterns(r);
      hello.interest = p.all ? null : p.patterns;
      known++;
    }
  }
  r.end(h.count, known);
  return hello;
}

// decodeWelcome reads a Welcome body (its type checked by frameHead).
function decodeWelcome(h) {
  needFields(h, 5);
  const r = h.r;
  const w = {
    version: r.uint(Number.MAX_SAFE_INTEGER, 'version'),
    node: r.uuid('node'),
    channel: r.str('channel'),
    maxFrame: r.uint(Number.MAX_SAFE_INTEGER, 'maxframe'),
    pid: r.uint(Number.MAX_SAFE_INTEGER, 'pid'),
  };
  let known = 6;
  if (w.version >= RESUME_VERSION && h.count >= known + 3) {
    // The version 3 fields, when the channel retains events (section 4.2).
    w.epoch = r.uuid('epoch');
    w.from = r.uuid('from', true);
    w.missed = r.uint(Number.MAX_SAFE_INTEGER, 'missed');
    known += 3;
  }
  r.end(h.count, known);
  return w;
}

function decodeError(h) {
  needFields(h, 2);
  const r = h.r;
  const e = { code: r.uint(65535, 'error code'), message: r.str('error message') };
  r.end(h.count, 3);
  return e;
}

// decodeEvent reads an Event body. data is the msgpack bytes of the
// value (a view into body); to and re are null when unset.
function decodeEvent(h, body) {
  needFields(h, 6);
  const r = h.r;
  const m = { id: r.uuid('id'), origin: r.uuid('origin'), sender: r.uuid('sender') };
  m.channel = r.str('channel');
  m.event = r.str('event');
  const at = r.skip('data');
  m.data = body.subarray(at, r.p);
  m.to = h.count > 7 ? r.uuid('to', true) : null;
  m.re = h.count > 8 ? r.uuid('re', true) : null;
  r.end(h.count, 9 > h.count ? h.count : 9);
  if (m.to && m.to.equals(ZERO_ID)) m.to = null;
  if (m.re && m.re.equals(ZERO_ID)) m.re = null;
  return m;
}

// decodeEmpty reads a Ping, Pong or Drain body.
function decodeEmpty(h) {
  h.r.end(h.count, 1);
}

const ZERO_ID = Buffer.alloc(16);

module.exports = {
  PROTOCOL_VERSION, PING_VERSION, RESUME_VERSION, INTEREST_VERSION, MAX_OWN, MAX_PATTERNS, MAX_PATTERN_LEN, HEADER_LEN, HANDSHAKE_MAX, DEFAULT_MAX_FRAME,
  FrameType, ErrorCode, ProtocolError, ServerError, frameNames,
  encodeHello, encodePatterns, readPatterns, encodeEvent, eventBodyLen, encodeData, decode, PING_FRAME, PONG_FRAME, DRAIN_FRAME,
  frameHead, decodeHello, decodeWelcome, decodeError, decodeEvent, decodeEmpty, FrameReader,
  idString, idBytes, newID,
};
