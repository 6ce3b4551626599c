'use strict';
// NCAgent: the original netcluster's client API on the framed protocol,
// so that an app written for the original changes only what it
// requires. It is an EventEmitter: connect(channel, cb) joins a
// channel, emit(event, data) sends, and each event heard is emitted
// under its name with the message object the original's listeners got:
// {emmiteruuid, channel, broadcast, event, data}. on, once,
// removeListener and the rest are the EventEmitter's own: listeners
// match names exactly, as the original's did, and an agent does not hear
// its own events, as the original's did not.

const { EventEmitter } = require('node:events');
const { Client, isFinal } = require('./client.cjs');

const emitLocal = EventEmitter.prototype.emit;

// EVERY is the pattern of the agent's one listener: it matches every
// event name, line breaks included, where '.*' matches none with \n,
// \r, U+2028 or U+2029. Outside the portable subset (patterns.cjs), it
// declares All, as an agent must.
const EVERY = '[\\s\\S]*';

// original is the message object of the original client: what the JSON
// protocol gives its agents (PROTOCOL.md section 10.3).
function original(msg) {
  const out = {
    emmiteruuid: msg.sender, channel: msg.channel, broadcast: msg.to === null,
    event: msg.event, data: msg.data, id: msg.id, origin: msg.origin,
  };
  if (msg.to) out.to = msg.to;
  if (msg.re) out.re = msg.re;
  return out;
}

class NCAgent extends EventEmitter {
  // options are those of Client (socket, socketTemplate, name, ...).
  constructor(options = {}) {
    super();
    this.options = options;
    this.client = null;
  }

  // connect joins channel and calls cb once connected. An agent whose
  // server is not there yet waits for it, trying again; each failed try
  // is emitted as 'error' when the agent has an 'error' listener. A
  // server that refuses it for a protocol error, an unsupported version
  // or its access rules ends it: it tries no more, and emit throws. Once
  // connected it reconnects on its own, with the same exception.
  connect(channel, cb) {
    if (this.client) throw new Error('netcluster: this agent is connected already; disconnect first');
    const c = new Client(channel, { ...this.options, echo: false });
    this.client = c;
    c.on(EVERY, (msg) => {
      if (msg.event === 'error' && this.listenerCount('error') === 0) return;
      emitLocal.call(this, msg.event, original(msg));
    });
    c.status.on('error', (err) => this.failed(err));
    const attempt = (wait) => {
      c.connect().then(() => {
        if (typeof cb === 'function') cb();
      }, (err) => {
        if (c.closed) return;
        this.failed(err);
        if (isFinal(err)) {
          c.close();
          return;
        }
        this.retry = setTimeout(() => attempt(Math.min(wait * 2, 5000)), wait);
      });
    };
    attempt(100);
    return this;
  }

  failed(err) {
    if (this.listenerCount('error') > 0) emitLocal.call(this, 'error', err);
  }

  // emit sends event with data on the agent's channel. (Events heard
  // are emitted to the agent's listeners, not through this method.)
  emit(event, data) {
    if (!this.client) throw new Error('netcluster: connect the agent to a channel before emit');
    this.client.emit(event, data);
    return true;
  }

  // disconnect closes the connection; it resolves once closed.
  disconnect() {
    const c = this.client;
    this.client = null;
    clearTimeout(this.retry);
    return c ? c.close() : Promise.resolve();
  }
}

// pipedclient makes an agent, as the original's factory of that name.
function pipedclient(options) {
  return new NCAgent(options);
}

module.exports = { NCAgent, pipedclient };
