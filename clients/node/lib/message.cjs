'use strict';
// Message: one event as a listener receives it.

const wire = require('./wire.cjs');

const str = (id) => (id ? wire.idString(id) : null);

class Message {
  constructor(m) {
    this.id = str(m.id); // unique per event
    this.origin = str(m.origin); // the server where the event entered the bus
    this.sender = str(m.sender); // the client connection that emitted it
    this.channel = m.channel; // the channel it was emitted on
    this.event = m.event; // the event name
    this.to = str(m.to); // the one client it is addressed to, or null
    this.re = str(m.re); // the id of the request it answers, or null
    this.raw = Buffer.from(m.data); // the data's msgpack bytes, a copy
    this.decoded = false;
    this.value = undefined;
  }

  // data is the event's value, decoded from msgpack on first use.
  get data() {
    if (!this.decoded) {
      this.value = wire.decode(this.raw);
      this.decoded = true;
    }
    return this.value;
  }
}

module.exports = { Message };
