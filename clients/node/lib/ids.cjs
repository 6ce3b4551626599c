'use strict';
// Ids: version 4 UUIDs as 16-byte Buffers, and their canonical text.

const crypto = require('node:crypto');

// newID returns a fresh version 4 UUID's 16 bytes. The random bytes are
// drawn from the system 4 KiB at a time: one call per event cost more
// than encoding it.
const idPool = Buffer.alloc(4096);
let idAt = idPool.length;
function newID() {
  if (idAt === idPool.length) {
    crypto.randomFillSync(idPool);
    idAt = 0;
  }
  const id = Buffer.from(idPool.subarray(idAt, idAt + 16));
  idAt += 16;
  id[6] = (id[6] & 0x0f) | 0x40;
  id[8] = (id[8] & 0x3f) | 0x80;
  return id;
}

const hex = [];
for (let i = 0; i < 256; i++) hex.push((i + 0x100).toString(16).slice(1));

// idString renders a 16-byte id as a canonical UUID.
function idString(b) {
  return hex[b[0]] + hex[b[1]] + hex[b[2]] + hex[b[3]] + '-' + hex[b[4]] + hex[b[5]] + '-' +
    hex[b[6]] + hex[b[7]] + '-' + hex[b[8]] + hex[b[9]] + '-' + hex[b[10]] + hex[b[11]] +
    hex[b[12]] + hex[b[13]] + hex[b[14]] + hex[b[15]];
}

const uuidText = /^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$/;

// idBytes parses a canonical UUID into its 16 bytes.
function idBytes(s) {
  if (typeof s !== 'string' || !uuidText.test(s)) throw new TypeError(`netcluster: ${JSON.stringify(s)} is not a UUID`);
  return Buffer.from(s.replace(/-/g, ''), 'hex');
}

module.exports = { newID, idString, idBytes };
