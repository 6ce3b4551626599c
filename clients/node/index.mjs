// The ES module face of the package: the same objects as index.cjs.
import nc from './index.cjs';

export const {
  connect, Client, Message, NCAgent, pipedclient, defaultSocketTemplate,
  ClosedError, DisconnectedError, BufferFullError, ProtocolError, ServerError,
  ErrorCode, PROTOCOL_VERSION, REPLY_SUFFIX,
} = nc;
export default nc;
