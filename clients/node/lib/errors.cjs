'use strict';
// The errors of the wire (PROTOCOL.md section 7): the codes of Error
// frames and the two errors a connection can end with.

// Error codes of Error frames (section 7.1). The numbers are on the wire.
const ErrorCode = Object.freeze({
  PROTOCOL: 1, FRAME_TOO_BIG: 2, VERSION: 3, SLOW_CONSUMER: 4,
  SHUTDOWN: 5, CHANNEL_GONE: 6, HANDSHAKE: 7, PING_TIMEOUT: 8, FORBIDDEN: 9, TOO_MANY_CLIENTS: 10,
});
const codeNames = ['', 'protocol error', 'frame too big', 'unsupported version', 'slow consumer',
  'server shutting down', 'channel removed', 'handshake timeout', 'ping timeout', 'forbidden', 'too many clients'];

// ProtocolError: the server sent something the protocol does not allow
// (a malformed frame, a length over the limit, an unexpected type).
class ProtocolError extends Error {
  constructor(message) {
    super('netcluster: ' + message);
    this.name = 'ProtocolError';
  }
}

// ServerError: the Error frame the server sent before it closed.
class ServerError extends Error {
  constructor(code, serverMessage) {
    const name = codeNames[code] || `error ${code}`;
    super(`netcluster: server closed the connection: ${name} (code ${code}): ${serverMessage}`);
    this.name = 'ServerError';
    this.code = code;
    this.serverMessage = serverMessage;
  }
}

module.exports = { ErrorCode, ProtocolError, ServerError };
