'use strict';
// One connection to one channel's socket: connect, handshake (PROTOCOL.md
// section 5), frames in and out, pings (section 5.1), the server's Drain
// (section 5.3). A Session ends once, with the reason; the Client
// (client.cjs) decides what comes next.

const net = require('node:net');
const wire = require('./wire.cjs');
const { decodeApplied } = require('./interest.cjs');

// JSON_RETRIES is how many connections a client tries when the server
// took it for a JSON client (it read '{' where the Welcome was due).
const JSON_RETRIES = 5;

class Session {
  // opts: path, channel, name, timeout (ms), pingInterval, pingTimeout
  // (ms, 0 interval: no pings), writeBuffer (the socket's high-water
  // mark, bytes), resume (the Hello's version 3 fields, wire.encodeHello),
  // interest (its version 4 declaration, interest.cjs; null: none);
  // hooks: onFrame(m), onEnd(err), onApplied(seq) (the server filters by
  // the Interest frame seq), onDrain() (the server asked the
  // client to stop writing; the session has answered), onWritable() (the
  // socket's buffer has emptied).
  constructor(opts, hooks) {
    this.opts = opts;
    this.hooks = hooks;
    this.id = wire.newID();
    this.welcome = null;
    this.ended = false;
    this.lastHeard = Date.now();
    this.lastPing = 0;
    this.timer = null;
    this.draining = false; // the server sent a Drain: write nothing more
  }

  // open connects and handshakes; it resolves with the Welcome.
  open() {
    return new Promise((resolve, reject) => {
      this.handshake = { resolve, reject };
      const t = setTimeout(() => this.end(new Error(
        `netcluster: connecting to channel ${JSON.stringify(this.opts.channel)} at ${this.opts.path}: ` +
        `no welcome within ${this.opts.timeout} ms`)), this.opts.timeout);
      t.unref();
      this.handshakeTimer = t;
      this.reader = new wire.FrameReader(wire.HANDSHAKE_MAX);
      const sock = net.createConnection({ path: this.opts.path, writableHighWaterMark: this.opts.writeBuffer });
      this.sock = sock;
      sock.setNoDelay?.(true);
      sock.on('connect', () => sock.write(wire.encodeHello(wire.PROTOCOL_VERSION, this.id, this.opts.name, process.pid,
        this.opts.resume, this.opts.interest)));
      sock.on('drain', () => { if (!this.ended && !this.draining) this.hooks.onWritable(); });
      sock.on('data', (chunk) => this.data(chunk));
      sock.on('error', (err) => this.end(err));
      sock.on('close', () => this.end(null));
    });
  }

  data(chunk) {
    if (this.ended) return;
    this.lastHeard = Date.now();
    if (!this.welcome && this.reader.pending === 0 && chunk[0] === 0x7b) {
      this.end(new JSONGraceError());
      return;
    }
    this.reader.push(chunk);
    try {
      let body;
      while (!this.ended && (body = this.reader.next()) !== null) {
        const welcomed = !this.welcome;
        this.frame(body);
        if (welcomed && this.reader.pending > 0) {
          // What came with the Welcome waits for the caller of connect
          // to have its client, and to add its listeners.
          setImmediate(() => this.data(Buffer.alloc(0)));
          return;
        }
      }
    } catch (err) {
      this.end(err);
    }
  }

  // frame handles one frame body; it throws a ProtocolError for what the
  // protocol does not allow at this point.
  frame(body) {
    const h = wire.frameHead(body);
    if (!this.welcome) {
      if (h.type === wire.FrameType.ERROR) {
        const e = wire.decodeError(h);
        throw new wire.ServerError(e.code, e.message);
      }
      if (h.type !== wire.FrameType.WELCOME) {
        throw new wire.ProtocolError(`the server answered the hello with a ${wire.frameNames[h.type] || `frame of type ${h.type}`}`);
      }
      this.welcomed(wire.decodeWelcome(h));
      return;
    }
    switch (h.type) {
      case wire.FrameType.EVENT:
        this.hooks.onFrame(wire.decodeEvent(h, body));
        return;
      case wire.FrameType.ERROR: {
        const e = wire.decodeError(h);
        throw new wire.ServerError(e.code, e.message);
      }
      case wire.FrameType.PING:
      case wire.FrameType.PONG:
        if (this.welcome.version >= wire.PING_VERSION) {
          wire.decodeEmpty(h);
          if (h.type === wire.FrameType.PING && !this.draining) this.sock.write(wire.PONG_FRAME);
          return;
        }
        break;
      case wire.FrameType.DRAIN:
        if (this.welcome.version >= wire.RESUME_VERSION) {
          wire.decodeEmpty(h);
          this.drain();
          return;
        }
        break;
      case wire.FrameType.APPLIED:
        if (this.welcome.version >= wire.INTEREST_VERSION) {
          this.hooks.onApplied(decodeApplied(h).seq, this);
          return;
        }
    }
    throw new wire.ProtocolError(`unexpected ${wire.frameNames[h.type] || `frame of type ${h.type}`} frame from the server`);
  }

  welcomed(w) {
    if (w.version < 1 || w.version > wire.PROTOCOL_VERSION) {
      throw new wire.ProtocolError(`the server answered with protocol version ${w.version}; this client speaks 1 to ${wire.PROTOCOL_VERSION}`);
    }
    if (w.channel !== this.opts.channel) {
      throw new wire.ProtocolError(`the socket ${this.opts.path} serves channel ${JSON.stringify(w.channel)}, not ${JSON.stringify(this.opts.channel)}`);
    }
    this.welcome = w;
    this.reader.limit = w.maxFrame;
    clearTimeout(this.handshakeTimer);
    if (w.version >= wire.PING_VERSION && this.opts.pingInterval > 0) {
      this.timer = setInterval(() => this.check(), Math.max(1, this.opts.pingInterval / 4));
      this.timer.unref();
    }
    const hs = this.handshake;
    this.handshake = null;
    hs.resolve(w);
  }

  // drain answers the server's Drain (section 4.6): the server is
  // stopping. The answer follows every frame written so far, and nothing
  // follows it: the client keeps what it emits from now on for its next
  // connection. The session goes on reading what the server still sends,
  // up to its Error frame.
  drain() {
    if (this.draining) return;
    this.draining = true;
    this.write(wire.DRAIN_FRAME);
    this.hooks.onDrain();
  }

  // check sends a Ping after pingInterval of silence, and ends the
  // session after pingTimeout (section 5.1).
  check() {
    const now = Date.now();
    const silent = now - this.lastHeard;
    if (silent >= this.opts.pingTimeout) {
      this.end(new Error(`netcluster: the server sent nothing for ${silent} ms (ping timeout ${this.opts.pingTimeout} ms)`));
    } else if (silent >= this.opts.pingInterval && now - this.lastPing >= this.opts.pingInterval && !this.draining) {
      this.lastPing = now;
      this.sock.write(wire.PING_FRAME);
    }
  }

  // write sends a frame; it returns false when the socket's buffer is
  // over its high-water mark. The frames written in one tick of the
  // event loop go out together, in one system call.
  write(frame) {
    if (!this.corked) {
      this.corked = true;
      this.sock.cork();
      process.nextTick(() => {
        this.corked = false;
        this.sock.uncork();
      });
    }
    return this.sock.write(frame);
  }

  // end ends the session once: err is the reason, null for a clean close
  // by the server.
  end(err) {
    if (this.ended) return;
    this.ended = true;
    clearTimeout(this.handshakeTimer);
    clearInterval(this.timer);
    if (this.sock) this.sock.destroy();
    const reason = err || new Error('netcluster: the server closed the connection');
    if (this.handshake) {
      this.handshake.reject(reason);
      this.handshake = null;
      return;
    }
    this.hooks.onEnd(reason);
  }

  // close writes what is queued, then closes; it resolves once closed
  // or after timeout ms.
  close(timeout) {
    if (this.ended) return Promise.resolve();
    return new Promise((resolve) => {
      // After timeout, what the server has not taken is given up: the
      // socket is destroyed, or it would keep the process alive.
      const t = setTimeout(() => { this.sock.destroy(); resolve(); }, timeout);
      t.unref();
      this.ended = true;
      clearInterval(this.timer);
      this.sock.end(() => {
        clearTimeout(t);
        this.sock.destroy();
        resolve();
      });
    });
  }
}

// JSONGraceError: the server read nothing from the client within its
// JSON grace and took it for a JSON client (section 10.1).
class JSONGraceError extends Error {
  constructor() {
    super('netcluster: the server took this connection for a JSON client (it sent "{" where the welcome was due)');
    this.name = 'JSONGraceError';
  }
}

// openSession connects, trying again up to JSON_RETRIES times when the
// server took a connection for a JSON client.
async function openSession(opts, hooks) {
  for (let i = 1; ; i++) {
    const s = new Session(opts, hooks);
    try {
      await s.open();
      return s;
    } catch (err) {
      if (!(err instanceof JSONGraceError) || i >= JSON_RETRIES) throw err;
    }
  }
}

module.exports = { Session, openSession, JSONGraceError };
