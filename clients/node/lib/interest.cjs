'use strict';
// Interest (PROTOCOL.md section 5.4): from protocol version 4 a client
// tells the server which event names it listens to, and the server
// forwards it only those (and what is addressed to it). The Hello
// carries the declaration; each change of the listeners afterwards is
// an Interest frame, [8, seq, patterns], which the server answers with
// Applied, [9, seq], once it filters by it. What a listener declares is
// patterns.cjs's business.
//
// Sending is coalesced: at most one Interest frame is in flight; the
// changes made meanwhile are sent as one, the latest state, when its
// Applied comes back. listening() resolves once the server applies a
// declaration that covers the listeners as they were at the call.

const wire = require('./wire.cjs');
const { declared } = require('./patterns.cjs');

// encodeInterest is the whole Interest frame of declaration decl.
function encodeInterest(seq, decl) {
  const body = wire.encodeData([wire.FrameType.INTEREST, seq, decl.all ? null : decl.patterns]);
  const out = Buffer.allocUnsafe(wire.HEADER_LEN + body.length);
  out.writeUInt32BE(body.length, 0);
  out.set(body, wire.HEADER_LEN);
  return out;
}

function needFields(h, n) {
  if (h.count < n + 1) h.r.fail(`a ${wire.frameNames[h.type]} frame has ${n} fields, this one ${h.count - 1}`);
}

// decodeInterest reads an Interest body; a client never receives one,
// but the codec is whole so that the test vectors check every frame.
function decodeInterest(h) {
  needFields(h, 2);
  const seq = h.r.uint(Number.MAX_SAFE_INTEGER, 'seq');
  const decl = wire.readPatterns(h.r);
  h.r.end(h.count, 3);
  return { seq, patterns: decl.all ? null : decl.patterns };
}

// decodeApplied reads an Applied body: the seq it answers.
function decodeApplied(h) {
  needFields(h, 1);
  const seq = h.r.uint(Number.MAX_SAFE_INTEGER, 'seq');
  h.r.end(h.count, 2);
  return { seq };
}

// declaration is what the listeners declare: {all, patterns}, patterns
// sorted and without repeats.
function declaration(listeners) {
  const set = new Set();
  for (const l of listeners) {
    const p = l.declared;
    if (p === null || Buffer.byteLength(p) > wire.MAX_PATTERN_LEN) return { all: true, patterns: [] };
    set.add(p);
  }
  if (set.size > wire.MAX_PATTERNS) return { all: true, patterns: [] };
  return { all: false, patterns: [...set].sort() };
}

function keyOf(decl) {
  return decl.all ? '*' : JSON.stringify(decl.patterns);
}

class Interest {
  // listeners() returns the current listeners; receiveAll: declare
  // nothing, receive every event, send no Interest frame.
  constructor(listeners, receiveAll) {
    this.listeners = listeners;
    this.receiveAll = receiveAll;
    this.session = null; // the connection, while it is of version 4
    this.changes = 0; // counts the changes of the listeners
    this.applied = 0; // the changes covered by what the server applies
    this.sent = null; // the last declaration sent: {key, seq, covers}
    this.inflight = false; // sent has no Applied yet
    this.scheduled = false;
    this.hello = null; // the declaration of the Hello being made
    this.opening = false; // a connection is being made
    this.history = false; // the Hello asked for history before any listener
    this.waiters = []; // listening() calls: {covers, resolve}
  }

  // forHello is the declaration of a new connection's Hello: null for
  // none. A client that asked for history (since) and has no listener
  // yet declares All, so that the history is not filtered out before
  // the listeners that will take it are added.
  forHello(history) {
    if (this.receiveAll) return null;
    this.history = history && this.listeners().length === 0;
    const decl = this.current();
    this.hello = { key: keyOf(decl), seq: 0, covers: this.changes };
    this.opening = true;
    return decl;
  }

  // installed takes a new connection: what its Hello declared is in
  // force; a change made since is sent.
  installed(s) {
    this.opening = false;
    if (this.receiveAll || s.welcome.version < wire.INTEREST_VERSION) {
      this.session = null;
      this.settle(Infinity);
      return;
    }
    this.session = s;
    this.sent = this.hello;
    this.inflight = false;
    this.settle(this.sent.covers);
    this.flush();
  }

  // ended: the connection is gone; the next Hello carries the listeners.
  ended(s) {
    if (s && this.session !== s) return;
    this.session = null;
    this.opening = false;
    this.inflight = false;
    this.settle(Infinity);
  }

  // current is the declaration to make now.
  current() {
    return this.history ? { all: true, patterns: [] } : declaration(this.listeners());
  }

  // changed: a listener was added or removed.
  changed() {
    this.changes++;
    this.history = false;
    if (this.scheduled) return;
    this.scheduled = true;
    queueMicrotask(() => {
      this.scheduled = false;
      this.flush();
    });
  }

  // flush sends the listeners' declaration when it differs from the
  // last one sent and none is in flight.
  flush() {
    const s = this.session;
    if (!s || s.ended || s.draining || this.inflight) return;
    const decl = this.current();
    const key = keyOf(decl);
    if (key === this.sent.key) {
      this.sent.covers = this.changes;
      this.settle(this.changes);
      return;
    }
    this.sent = { key, seq: this.sent.seq + 1, covers: this.changes };
    this.inflight = true;
    s.write(encodeInterest(this.sent.seq, decl));
  }

  // onApplied handles the server's Applied frame.
  onApplied(s, seq) {
    if (s !== this.session || !this.inflight || seq < this.sent.seq) return;
    this.inflight = false;
    this.settle(this.sent.covers);
    this.flush();
  }

  settle(covers) {
    this.applied = Math.max(this.applied, covers);
    if (covers === Infinity) this.applied = this.changes;
    const left = [];
    for (const w of this.waiters) {
      if (w.covers <= covers) w.resolve();
      else left.push(w);
    }
    this.waiters = left;
  }

  // wait resolves once the server filters by a declaration that covers
  // the listeners as they are now: at once when nothing is to be sent,
  // when the connection is not of version 4, or when it ends first.
  wait() {
    const covers = this.changes;
    const idle = !this.opening && (!this.session || this.session.ended);
    if (idle || this.applied >= covers) return Promise.resolve();
    return new Promise((resolve) => this.waiters.push({ covers, resolve }));
  }
}

module.exports = { Interest, declaration, declared, encodeInterest, decodeInterest, decodeApplied };
