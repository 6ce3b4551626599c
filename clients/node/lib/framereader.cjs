'use strict';
// FrameReader: the framing of PROTOCOL.md section 3.1 on a byte stream.

const { ProtocolError } = require('./errors.cjs');

const HEADER_LEN = 4; // the big-endian length prefix

// FrameReader cuts a byte stream into frame bodies, refusing a length of
// 0 or over limit from the prefix alone (section 3.1). It keeps the
// chunks as they come and joins them only once a whole frame is there,
// so that a big frame in many chunks is copied once, not once a chunk.
class FrameReader {
  constructor(limit) {
    this.limit = limit;
    this.chunks = [];
    this.length = 0; // of the chunks, all told
  }

  push(chunk) {
    if (chunk.length === 0) return;
    this.chunks.push(chunk);
    this.length += chunk.length;
  }

  // next returns the next whole frame body, or null until more arrives.
  next() {
    if (this.length < HEADER_LEN) return null;
    const n = this.head(HEADER_LEN).readUInt32BE(0);
    if (n === 0) throw new ProtocolError('malformed frame: length 0');
    if (n > this.limit) throw new ProtocolError(`frame too big: a length of ${n} bytes, over the limit of ${this.limit}`);
    if (this.length < HEADER_LEN + n) return null;
    const first = this.head(HEADER_LEN + n);
    const body = first.subarray(HEADER_LEN, HEADER_LEN + n);
    if (first.length === HEADER_LEN + n) this.chunks.shift();
    else this.chunks[0] = first.subarray(HEADER_LEN + n);
    this.length -= HEADER_LEN + n;
    return body;
  }

  // head makes the first chunk at least n bytes long, n being at most
  // what is held, and returns it.
  head(n) {
    if (this.chunks[0].length >= n) return this.chunks[0];
    let k = 1;
    for (let got = this.chunks[0].length; got < n; k++) got += this.chunks[k].length;
    const joined = Buffer.concat(this.chunks.slice(0, k));
    this.chunks.splice(0, k, joined);
    return joined;
  }

  // pending is how many bytes are held without a whole frame.
  get pending() {
    return this.length;
  }
}

module.exports = { FrameReader };
