'use strict';
// Resuming (PROTOCOL.md section 5.2). A server of protocol version 3
// keeps a ring of each channel's recent events and says, in each
// Welcome, where the client stands in it (epoch, from). The client
// remembers the id of the last event it received there (replies are
// not retained, so they do not count), and a connection made to replace
// a broken one says in its Hello where it stood, and the client ids of
// its earlier connections: the server then sends what the client
// missed, before anything live, and none of the client's own events.

const wire = require('./wire.cjs');

class Resume {
  // since: ms of history the first connection asks for; 0: none.
  constructor(since) {
    this.since = Math.max(0, Math.floor(since || 0));
    this.started = false; // a connection has been made
    this.epoch = null; // the ring of the last connection, null: none
    this.after = null; // the last event received from it, null: its from
    this.own = []; // the client ids of the connections so far
    this.missed = 0; // events missed for good since the first connection
  }

  // hello is the Hello's version 3 fields for the next connection: the
  // cursor when reconnecting, else the history asked for.
  hello() {
    if (!this.started) return { epoch: null, after: null, since: this.since, own: [] };
    return { epoch: this.epoch, after: this.epoch ? this.after : null, since: 0, own: this.own.slice() };
  }

  // installed takes the cursor of a new connection from its Welcome and
  // returns how many events the client missed for good.
  installed(s) {
    const w = s.welcome;
    this.started = true;
    this.epoch = w.epoch || null;
    this.after = w.from || null;
    this.own.push(s.id);
    if (this.own.length > wire.MAX_OWN) this.own.splice(0, this.own.length - wire.MAX_OWN);
    const n = w.missed || 0;
    this.missed += n;
    return n;
  }

  // heard moves the cursor past an event received: any but a reply or
  // other addressed event, which the server does not retain.
  heard(m) {
    if (this.epoch && !m.to) this.after = m.id;
  }
}

module.exports = { Resume };
