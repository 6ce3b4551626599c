#!/usr/bin/env node
// A minimal netcluster client in Node.js, without dependencies.
//
// For a real program use the package in clients/node (netcluster): it
// speaks the framed protocol, reconnects, and has request and reply and
// the original's NCAgent API. This file shows the JSON text protocol in
// a few dozen lines.
//
// It speaks the JSON text protocol (PROTOCOL.md section 10): JSON
// objects, each followed by a NUL byte, on the channel's Unix socket.
//
//   node netcluster-client.js A --emit hello --data '{"n": 1}' --count 1
//
// connects to channel A, emits "hello", prints every event it hears as
// one JSON object per line, and exits after --count events or --timeout
// seconds (exit status 1 on timeout). Without --emit it only listens, as
// the original agents could.
'use strict';

const net = require('net');
const os = require('os');
const path = require('path');
const { EventEmitter } = require('events');

// The socket path ncserver uses unless configured otherwise.
function defaultSocket(channel) {
  const runtime = process.env.XDG_RUNTIME_DIR || '';
  if (path.isAbsolute(runtime)) {
    return path.join(runtime, 'netcluster', channel + '.sock');
  }
  return `/tmp/netcluster-${os.userInfo().uid}/${channel}.sock`;
}

// One connection to one channel: send() sends. The client emits the
// connection's 'connect', 'error' and 'close', and 'message' for each
// event heard; it also emits each event under its name prefixed with
// "event:" (an event named "hello" as 'event:hello'), so that a bus
// event named "error" or "close" is not taken for the connection's own.
class Client extends EventEmitter {
  constructor(socketPath) {
    super();
    this.buf = Buffer.alloc(0);
    this.sock = net.createConnection(socketPath);
    this.sock.on('connect', () => this.emit('connect'));
    this.sock.on('error', (err) => this.emit('error', err));
    this.sock.on('close', () => this.emit('close'));
    this.sock.on('data', (chunk) => {
      this.buf = Buffer.concat([this.buf, chunk]);
      let nul;
      while ((nul = this.buf.indexOf(0)) >= 0) {
        const text = this.buf.subarray(0, nul).toString('utf8');
        this.buf = this.buf.subarray(nul + 1);
        if (text.length > 0) {
          const msg = JSON.parse(text);
          this.emit('message', msg);
          this.emit('event:' + msg.event, msg);
        }
      }
    });
  }

  // send writes an event; extra keys such as id, to, re are sent too.
  send(event, data, extra) {
    const msg = Object.assign({}, extra, { event, data: data === undefined ? null : data });
    this.sock.write(JSON.stringify(msg) + '\0');
  }

  close() {
    this.sock.end();
  }
}

function main(argv) {
  const opts = { data: 'null', count: 0, timeout: 0 };
  let channel;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--socket') opts.socket = argv[++i];
    else if (a === '--emit') opts.emit = argv[++i];
    else if (a === '--data') opts.data = argv[++i];
    else if (a === '--count') opts.count = Number(argv[++i]);
    else if (a === '--timeout') opts.timeout = Number(argv[++i]);
    else if (!channel) channel = a;
    else throw new Error(`unexpected argument ${a}`);
  }
  if (!channel) {
    console.error('usage: netcluster-client.js CHANNEL [--socket PATH] [--emit EVENT] [--data JSON] [--count N] [--timeout SECONDS]');
    process.exit(2);
  }
  const c = new Client(opts.socket || defaultSocket(channel));
  let heard = 0;
  let done = false;
  if (opts.timeout > 0) {
    setTimeout(() => {
      console.error(`timed out after ${heard} events`);
      process.exit(1);
    }, opts.timeout * 1000).unref();
  }
  c.on('error', (err) => {
    console.error(err.message);
    process.exit(1);
  });
  c.on('connect', () => {
    if (opts.emit) c.send(opts.emit, JSON.parse(opts.data), { channel });
  });
  c.on('message', (msg) => {
    console.log(JSON.stringify(msg));
    if (msg.event === 'nc-error') {
      console.error(`server closed the connection: ${JSON.stringify(msg.data)}`);
      process.exit(1);
    }
    heard++;
    if (heard === opts.count) {
      done = true;
      c.close();
    }
  });
  // Exit once the socket is closed, letting stdout drain.
  c.on('close', () => {
    process.exitCode = done || opts.count === 0 ? 0 : 1;
  });
}

module.exports = { Client, defaultSocket };

if (require.main === module) {
  main(process.argv.slice(2));
}
