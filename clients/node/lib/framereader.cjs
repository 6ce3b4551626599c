'use strict';
// FrameReader: the framing of PROTOCOL.md section 3.1 on a byte stream.

const { ProtocolError } = require('./errors.cjs');

const HEADER_LEN = 4; // the big-endian length prefix

// FrameReader cuts a byte stream into frame bodies, refusing a length of
// 0 or over limit from the prefix alone (section 3.1).
class FrameReader {
  constructor(limit) {
    this.limit = limit;
    this.buf = Buffer.alloc(0);
  }

  push(chunk) {
    this.buf = this.buf.length === 0 ? chunk : Buffer.concat([this.buf, chunk]);
  }

  // next returns the next whole frame body, or null until more arrives.
  next() {
    if (this.buf.length < HEADER_LEN) return null;
    const n = this.buf.readUInt32BE(0);
    if (n === 0) throw new ProtocolError('malformed frame: length 0');
    if (n > this.limit) throw new ProtocolError(`frame too big: a length of ${n} bytes, over the limit of ${this.limit}`);
    if (this.buf.length < HEADER_LEN + n) return null;
    const body = this.buf.subarray(HEADER_LEN, HEADER_LEN + n);
    this.buf = this.buf.subarray(HEADER_LEN + n);
    return body;
  }

  // pending is how many bytes are held without a whole frame.
  get pending() {
    return this.buf.length;
  }
}

module.exports = { FrameReader };
