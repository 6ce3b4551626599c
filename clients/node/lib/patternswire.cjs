'use strict';
// A declaration's patterns on the wire (PROTOCOL.md section 5.4), in
// the Hello and in Interest frames: nil for All, else an array of str.

const { Encoder } = require('@msgpack/msgpack');

const MAX_PATTERNS = 1024; // the most patterns in one declaration
const MAX_PATTERN_LEN = 4096; // the most bytes in one pattern

const encoder = new Encoder();

// encodePatterns is the msgpack of a declaration's patterns: nil for
// All, else an array of str (interest.cjs).
function encodePatterns(decl) {
  return encoder.encode(decl.all ? null : decl.patterns);
}

// readPatterns reads a declaration's patterns (interest.cjs): nil for
// All, else an array of at most MAX_PATTERNS strings.
function readPatterns(r) {
  if (r.p < r.b.length && r.b[r.p] === 0xc0) {
    r.p++;
    return { all: true, patterns: [] };
  }
  const at = r.p;
  const n = r.arrayHeader();
  if (n > MAX_PATTERNS) {
    r.p = at;
    r.fail(`patterns: ${n}, at most ${MAX_PATTERNS}`);
  }
  const patterns = [];
  for (let i = 0; i < n; i++) {
    const start = r.p;
    const p = r.str('pattern');
    const end = r.p;
    const raw = r.b.subarray(start + ({ 0xd9: 2, 0xda: 3, 0xdb: 5 }[r.b[start]] || 1), end);
    r.p = start; // a refusal names where the pattern begins
    if (raw.length > MAX_PATTERN_LEN) r.fail(`pattern ${i}: ${raw.length} bytes, at most ${MAX_PATTERN_LEN}`);
    if (!Buffer.from(p).equals(raw)) r.fail(`pattern ${i}: not UTF-8`);
    r.p = end;
    patterns.push(p);
  }
  return { all: false, patterns };
}

module.exports = { MAX_PATTERNS, MAX_PATTERN_LEN, encodePatterns, readPatterns };
