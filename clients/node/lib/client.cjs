'use strict';
// Client: one program's membership of one channel, as the Go package bus
// gives it. It emits events and hands those it hears to listeners whose
// anchored pattern matches the name; it asks and answers requests; and
// it outlives its connection, connecting again with a growing, jittered
// wait, keeping what is emitted meanwhile in a bounded buffer, and
// resuming where it stood (resume.cjs). emit says, as stream.write does,
// when the caller should wait for the 'drain' status event (or flush())
// before it emits more: the server holds back a publisher whose
// subscribers are behind, and a caller that waits keeps memory bounded.

const os = require('node:os');
const path = require('node:path');
const { EventEmitter } = require('node:events');
const wire = require('./wire.cjs');
const { openSession } = require('./session.cjs');
const { Message } = require('./message.cjs');
const { ListenerSet } = require('./listeners.cjs');
const { Resume } = require('./resume.cjs');
const { Interest } = require('./interest.cjs');

const REPLY_SUFFIX = '-response';

class ClosedError extends Error {
  constructor() {
    super('netcluster: client closed');
    this.name = 'ClosedError';
  }
}

class DisconnectedError extends Error {
  constructor(message) {
    super(message || 'netcluster: disconnected');
    this.name = 'DisconnectedError';
  }
}

// BufferFullError: an event emitted while disconnected did not fit in
// the reconnect buffer. It is a DisconnectedError.
class BufferFullError extends DisconnectedError {
  constructor(size, limit) {
    super(`netcluster: reconnect buffer full: ${size} bytes kept, the limit is ${limit}`);
    this.name = 'BufferFullError';
  }
}

// defaultSocketTemplate is where ncserver puts its sockets unless
// configured otherwise (PROTOCOL.md section 2).
function defaultSocketTemplate() {
  if (process.platform === 'win32') return '\\\\.\\pipe\\netcluster-{channel}';
  const runtime = process.env.XDG_RUNTIME_DIR || '';
  if (path.isAbsolute(runtime)) return path.join(runtime, 'netcluster', '{channel}.sock');
  return `/tmp/netcluster-${os.userInfo().uid}/{channel}.sock`;
}

function socketPath(opts, channel) {
  if (opts.socket) return opts.socket;
  return (opts.socketTemplate || defaultSocketTemplate()).split('{channel}').join(channel);
}

const channelName = /^[A-Za-z0-9_.-]{1,64}$/;

function checkEvent(event) {
  if (typeof event !== 'string' || event.length === 0 || Buffer.byteLength(event) > 1024) {
    throw new TypeError(`netcluster: event name ${JSON.stringify(event)}: want 1 to 1024 bytes of UTF-8`);
  }
}

// tooBig is the error of an event whose frame body, n bytes, is over
// the server's maxframe.
function tooBig(m, n, limit) {
  return new RangeError(`netcluster: event ${m.event} is ${n} bytes, the server takes at most ${limit}`);
}

// isFinal says whether err, the end of a connection or a refused
// handshake, ends the client for good: the server refused it for a
// protocol error, an unsupported version or its access rules, and
// would refuse it again.
function isFinal(err) {
  return err instanceof wire.ServerError &&
    [wire.ErrorCode.PROTOCOL, wire.ErrorCode.VERSION, wire.ErrorCode.FORBIDDEN].includes(err.code);
}

const defaults = {
  name: path.basename(process.argv[1] || process.argv0 || 'node'),
  timeout: 5000,
  reconnect: true,
  backoffMin: 100,
  backoffMax: 5000,
  reconnectBuffer: 4 << 20,
  pingInterval: 5000,
  pingTimeout: 15000,
  requestTimeout: 5000,
  closeTimeout: 5000,
  echo: true,
  since: 0,
  writeBuffer: 1 << 20,
  receiveAll: false,
};

class Client {
  // Use connect(): it resolves once the first connection is made.
  constructor(channel, options = {}) {
    if (!channelName.test(channel) || channel === '.' || channel === '..') {
      throw new TypeError(`netcluster: ${JSON.stringify(channel)} is not a channel name: 1 to 64 of A-Z a-z 0-9 _ . -`);
    }
    this.channel = channel;
    this.opts = { ...defaults, ...options };
    this.opts.pingTimeout = Math.max(this.opts.pingTimeout, 2 * this.opts.pingInterval);
    this.path = socketPath(this.opts, channel);
    this.status = new EventEmitter();
    for (const [opt, name] of [['onDisconnect', 'disconnect'], ['onReconnect', 'reconnect'], ['onError', 'error'],
      ['onMissed', 'missed'], ['onDrain', 'drain']]) {
      if (typeof this.opts[opt] === 'function') this.status.on(name, this.opts[opt]);
    }
    this.listeners = new ListenerSet(() => this.interest.changed());
    this.interest = new Interest(() => this.listeners.all, Boolean(this.opts.receiveAll));
    this.pending = new Map(); // request id (hex) -> {resolve, reject, timer}
    this.session = null;
    this.kept = []; // events emitted while disconnected: {m, size}
    this.keptBytes = 0;
    this.lastMaxFrame = wire.DEFAULT_MAX_FRAME; // the last Welcome's maxframe
    this.closed = false;
    this.retryTimer = null;
    this.resume = new Resume(this.opts.since);
    this.blocked = false; // emit has returned false, 'drain' is due
    this.flushing = []; // flush() callers waiting for 'drain': {resolve, reject}
  }

  // connect makes the first connection; it rejects when it fails, as
  // Go's Dial does. Later breaks are mended by reconnect.
  async connect() {
    if (this.closed) throw new ClosedError();
    let s;
    try {
      s = await this.open();
    } catch (err) {
      this.interest.ended(null);
      throw err;
    }
    if (this.closed) {
      await s.close(0);
      throw new ClosedError();
    }
    this.install(s, false);
    return this;
  }

  open() {
    const o = this.opts;
    const resume = this.resume.hello();
    return openSession({
      path: this.path, channel: this.channel, name: o.name, timeout: o.timeout,
      pingInterval: o.pingInterval, pingTimeout: o.pingTimeout, writeBuffer: o.writeBuffer,
      resume, interest: this.interest.forHello(resume.since > 0),
    }, {
      onFrame: (m) => this.received(m),
      onApplied: (seq, s) => this.interest.onApplied(s, seq),
      onEnd: (err) => this.broken(err),
      onDrain: () => { this.blocked = true; },
      onWritable: () => this.writable(),
    });
  }

  // install makes s the client's connection, on the first connection
  // and on each reconnection alike: it sends the events kept while the
  // client was not connected, before anything emitted from now on (a
  // 'missed' or 'reconnect' handler's emit included); reports the events
  // the client missed for good while it reconnected, if any; and ends
  // the wait for room that the kept events began. A kept event over this
  // server's maxframe (smaller than the last one's) would end the
  // connection: it is dropped, and reported as a RangeError.
  install(s, reconnected) {
    this.session = s;
    this.lastMaxFrame = s.welcome.maxFrame;
    this.interest.installed(s);
    const n = this.resume.installed(s);
    const kept = this.kept;
    this.kept = [];
    this.keptBytes = 0;
    for (const m of kept) {
      const frame = this.frame(m);
      if (frame.length - wire.HEADER_LEN > this.maxFrame) {
        this.report(new RangeError(`netcluster: event ${m.event}, kept while disconnected, is ${frame.length - wire.HEADER_LEN} ` +
          `bytes, and the server now takes at most ${this.maxFrame}: dropped`));
        continue;
      }
      s.write(frame);
    }
    if (n > 0) {
      this.status.emit('missed', n);
    }
    if (this.closed) return;
    if (reconnected) this.status.emit('reconnect');
    this.writable();
  }

  // missed is how many events the client has missed for good since
  // connect: emitted while it reconnected, and no longer retained by the
  // server when it came back (PROTOCOL.md section 5.2).
  get missed() {
    return this.resume.missed;
  }

  // writable ends a wait for room: emit returns true again, 'drain' is
  // emitted and flush() resolves, once the client is connected and its
  // socket's buffer has room.
  writable() {
    if (!this.connected || this.session.sock.writableNeedDrain) return;
    const was = this.blocked;
    this.blocked = false;
    for (const f of this.flushing.splice(0)) f.resolve();
    if (was) this.status.emit('drain');
  }

  // flush resolves when emit would return true: at once if it would,
  // else at the next 'drain' status event. It rejects when the client
  // closes or ends for good first.
  flush() {
    if (this.closed) return Promise.reject(new ClosedError());
    if (!this.blocked && this.connected) return Promise.resolve();
    return new Promise((resolve, reject) => this.flushing.push({ resolve, reject }));
  }

  // id is this connection's client id, the sender of what it emits.
  get id() {
    return this.session ? wire.idString(this.session.id) : null;
  }

  // node is the id of the server this client is connected to.
  get node() {
    return this.session ? wire.idString(this.session.welcome.node) : null;
  }

  // maxFrame is the server's maxframe: the last server's while
  // disconnected (the default before the first connection).
  get maxFrame() {
    return this.session ? this.session.welcome.maxFrame : this.lastMaxFrame;
  }

  // connected is false while the client reconnects, and from the
  // server's Drain (it is stopping) to the next connection.
  get connected() {
    return Boolean(this.session) && !this.session.ended && !this.session.draining;
  }

  // emit sends an event to the channel's other clients (and through the
  // server's rules further); the client's own matching listeners get it
  // too. While disconnected the event is kept for the next connection.
  // It returns false, as stream.write does, when the caller should wait
  // for the 'drain' status event (or await flush()) before emitting
  // more: the socket's buffer is over writeBuffer bytes, or the client
  // is disconnected. The event itself is taken either way.
  emit(event, data) {
    return this.send({ id: wire.newID(), event, data: wire.encodeData(data), to: null, re: null }, true);
  }

  // reply answers the request msg: msg.event + "-response", addressed to
  // the asker, naming the request's id.
  reply(msg, data) {
    if (!msg || !msg.sender || !msg.id) throw new TypeError('netcluster: reply: the message has no sender or id to answer');
    this.send({
      id: wire.newID(), event: msg.event + REPLY_SUFFIX, data: wire.encodeData(data),
      to: wire.idBytes(msg.sender), re: wire.idBytes(msg.id),
    }, true);
  }

  // request emits event and resolves with the first reply to it.
  request(event, data, { timeout = this.opts.requestTimeout } = {}) {
    const m = { id: wire.newID(), event, data: wire.encodeData(data), to: null, re: null };
    return new Promise((resolve, reject) => {
      const key = m.id.toString('hex');
      const timer = setTimeout(() => {
        this.pending.delete(key);
        reject(new Error(`netcluster: request ${JSON.stringify(event)} on channel ${this.channel}: no reply within ${timeout} ms`));
      }, timeout);
      this.pending.set(key, { resolve, reject, timer });
      try {
        this.send(m, false);
      } catch (err) {
        clearTimeout(timer);
        this.pending.delete(key);
        reject(err);
      }
    });
  }

  // send checks and sends m, or keeps it while disconnected when keep.
  // It returns false when the caller should wait for 'drain'.
  send(m, keep) {
    if (this.closed) throw new ClosedError();
    checkEvent(m.event);
    m.channel = this.channel;
    const size = wire.HEADER_LEN + 128 + Buffer.byteLength(m.event) + m.data.length;
    if (this.connected) {
      const frame = this.frame(m);
      if (frame.length - wire.HEADER_LEN > this.maxFrame) {
        throw tooBig(m, frame.length - wire.HEADER_LEN, this.maxFrame);
      }
      if (!this.session.write(frame)) this.blocked = true;
    } else if (!keep) {
      throw new DisconnectedError();
    } else if (wire.eventBodyLen(m) > this.maxFrame) {
      throw tooBig(m, wire.eventBodyLen(m), this.maxFrame);
    } else if (this.keptBytes + size > this.opts.reconnectBuffer) {
      throw new BufferFullError(this.keptBytes, this.opts.reconnectBuffer);
    } else {
      m.data = Buffer.from(m.data); // encodeData's bytes are its own
      this.kept.push(m);
      this.keptBytes += size;
      this.blocked = true;
    }
    if (this.opts.echo && (!m.to || (this.session && m.to.equals(this.session.id)))) {
      const local = new Message(m);
      if (this.listeners.matchAny(m.event)) process.nextTick(() => this.dispatch(local));
    }
    return !this.blocked;
  }

  // frame encodes m as sent on the current connection.
  frame(m) {
    m.origin = this.session.welcome.node;
    m.sender = this.session.id;
    return wire.encodeEvent(m);
  }

  received(m) {
    this.resume.heard(m);
    if (m.re) {
      const key = m.re.toString('hex');
      const p = this.pending.get(key);
      if (p) {
        this.pending.delete(key);
        clearTimeout(p.timer);
        p.resolve(new Message(m));
        return;
      }
    }
    this.dispatch(new Message(m));
  }

  dispatch(msg) {
    for (const l of this.listeners.matching(msg.event)) {
      try {
        l.fn(msg);
      } catch (err) {
        this.report(err);
      }
    }
  }

  report(err) {
    if (this.status.listenerCount('error') > 0) this.status.emit('error', err);
  }

  // broken handles the end of a connection: reasons are reported, the
  // requests waiting fail, and the client connects again.
  broken(err) {
    this.session = null;
    this.interest.ended(null);
    for (const [key, p] of this.pending) {
      clearTimeout(p.timer);
      p.reject(new DisconnectedError(`netcluster: disconnected before the reply: ${err.message}`));
      this.pending.delete(key);
    }
    if (this.closed) return;
    this.report(err);
    this.status.emit('disconnect', err);
    if (!this.opts.reconnect || isFinal(err)) {
      this.shut(err);
      this.status.emit('close');
      return;
    }
    this.retry(this.opts.backoffMin);
  }

  // refused ends the client for good when a reconnection is refused for
  // a final reason, as broken does: 'disconnect' with that reason, then
  // 'close'.
  refused(err) {
    this.report(err);
    this.status.emit('disconnect', err);
    this.shut(err);
    this.status.emit('close');
  }

  retry(wait) {
    const jittered = wait / 2 + Math.random() * (wait / 2);
    this.retryTimer = setTimeout(async () => {
      this.retryTimer = null;
      if (this.closed) return;
      let s;
      try {
        s = await this.open();
      } catch (err) {
        this.interest.ended(null);
        if (this.closed) return;
        if (isFinal(err)) {
          this.refused(err);
          return;
        }
        this.retry(Math.min(wait * 2, this.opts.backoffMax));
        return;
      }
      if (this.closed) {
        s.close(0);
        return;
      }
      this.install(s, true);
    }, jittered);
  }

  // on registers fn for every event whose whole name matches pattern, a
  // regular expression anchored at both ends. With a server of protocol
  // version 4 it declares the pattern to the server (interest.cjs); await
  // listening() to know that the server forwards what it matches.
  on(pattern, fn) {
    return this.listeners.add(this, pattern, fn, false);
  }

  once(pattern, fn) {
    return this.listeners.add(this, pattern, fn, true);
  }

  // off removes a listener (what on returned), or the listeners of a
  // pattern, or of a pattern and function.
  off(what, fn) {
    this.listeners.remove(what, fn);
    return this;
  }

  // listening resolves once the server forwards the client every event
  // its listeners, as they are now, match: an event emitted by anyone
  // after that reaches them. It resolves at once when nothing new is to
  // be declared, with a server older than protocol version 4, with
  // receiveAll, or when the connection ends first (the next connection's
  // Hello declares the listeners before the server forwards it anything).
  listening() {
    if (this.closed) return Promise.reject(new ClosedError());
    return this.interest.wait();
  }

  // close flushes what is queued and closes; it resolves once closed.
  async close() {
    if (this.closed) return;
    this.shut();
    if (this.session) await this.session.close(this.opts.closeTimeout);
    this.status.emit('close');
  }

  shut(why) {
    this.closed = true;
    this.interest.ended(null);
    clearTimeout(this.retryTimer);
    for (const f of this.flushing.splice(0)) f.reject(why || new ClosedError());
    for (const [, p] of this.pending) {
      clearTimeout(p.timer);
      p.reject(new ClosedError());
    }
    this.pending.clear();
  }
}

// connect connects a client to channel and resolves with it.
function connect(channel, options) {
  return new Client(channel, options).connect();
}

module.exports = {
  Client, connect, ClosedError, DisconnectedError, BufferFullError,
  defaultSocketTemplate, REPLY_SUFFIX, isFinal,
};
