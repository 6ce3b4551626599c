'use strict';
// netcluster: the Node.js client of ncserver (README.md).

const client = require('./lib/client.cjs');
const agent = require('./lib/agent.cjs');
const wire = require('./lib/wire.cjs');
const { Message } = require('./lib/message.cjs');

module.exports = {
  connect: client.connect,
  Client: client.Client,
  Message,
  NCAgent: agent.NCAgent,
  pipedclient: agent.pipedclient,
  defaultSocketTemplate: client.defaultSocketTemplate,
  ClosedError: client.ClosedError,
  DisconnectedError: client.DisconnectedError,
  BufferFullError: client.BufferFullError,
  ProtocolError: wire.ProtocolError,
  ServerError: wire.ServerError,
  ErrorCode: wire.ErrorCode,
  PROTOCOL_VERSION: wire.PROTOCOL_VERSION,
  REPLY_SUFFIX: client.REPLY_SUFFIX,
};
