// Types of the netcluster package: the Node.js client of ncserver.

import { EventEmitter } from 'node:events';

/** The highest protocol version the client speaks (PROTOCOL.md). */
export const PROTOCOL_VERSION: number;
/** Appended to a request's name to name its reply. */
export const REPLY_SUFFIX: '-response';

/** Error codes of the server's Error frames (PROTOCOL.md section 7.1). */
export const ErrorCode: Readonly<{
  PROTOCOL: 1;
  FRAME_TOO_BIG: 2;
  VERSION: 3;
  SLOW_CONSUMER: 4;
  SHUTDOWN: 5;
  CHANNEL_GONE: 6;
  HANDSHAKE: 7;
  PING_TIMEOUT: 8;
  FORBIDDEN: 9;
  TOO_MANY_CLIENTS: 10;
}>;

export interface ClientOptions {
  /** The exact socket path; overrides socketTemplate. */
  socket?: string;
  /** A socket path template in which {channel} is the channel name, as the server's "socket" key. */
  socketTemplate?: string;
  /** The name given in the handshake; the control channel shows it. Default: the script's base name. */
  name?: string;
  /** Bound on connect and handshake, in ms. Default 5000. */
  timeout?: number;
  /** Connect again when the connection breaks. Default true. */
  reconnect?: boolean;
  /** First wait before connecting again, in ms; it doubles up to backoffMax. Default 100. */
  backoffMin?: number;
  /** Longest wait before connecting again, in ms. Default 5000. */
  backoffMax?: number;
  /** Bytes of events kept while disconnected; past it emit throws BufferFullError. Default 4 MiB. */
  reconnectBuffer?: number;
  /** Ping the server after this much silence, in ms; 0 turns pings off. Default 5000. */
  pingInterval?: number;
  /** Give the connection up after this much silence, in ms (at least twice pingInterval). Default 15000. */
  pingTimeout?: number;
  /** Default timeout of request, in ms. Default 5000. */
  requestTimeout?: number;
  /** How long close waits to write what is queued, in ms. Default 5000. */
  closeTimeout?: number;
  /** Hand the client's own events to its own listeners, as an EventEmitter does. Default true. */
  echo?: boolean;
  /** On the first connection, ask for the channel's retained events of the last this many ms. Default 0. */
  since?: number;
  /** The socket's write buffer, in bytes: past it emit returns false until 'drain'. Default 1 MiB. */
  writeBuffer?: number;
  /**
   * Declare no interest: the server forwards the client every event of its channel, as before protocol
   * version 4, and the client sends no Interest frame. Default false: the client declares its listeners.
   */
  receiveAll?: boolean;
  /** Called with the reason each time the connection breaks (the status 'disconnect' event). */
  onDisconnect?: (err: Error) => void;
  /** Called each time the client has connected again (the status 'reconnect' event). */
  onReconnect?: () => void;
  /** Called with errors no call can return (the status 'error' event). */
  onError?: (err: Error) => void;
  /** Called with the number of events missed for good on a reconnect (the status 'missed' event). */
  onMissed?: (n: number) => void;
  /** Called when emit, having returned false, takes events again (the status 'drain' event). */
  onDrain?: () => void;
}

/** One event as a listener receives it. Ids are canonical UUID strings. */
export class Message {
  readonly id: string;
  readonly origin: string | null;
  readonly sender: string | null;
  readonly channel: string;
  readonly event: string;
  /** The client the event is addressed to (a reply), or null. */
  readonly to: string | null;
  /** The id of the request the event answers, or null. */
  readonly re: string | null;
  /** The data's msgpack bytes. */
  readonly raw: Buffer;
  /** The data, decoded from msgpack on first use. */
  readonly data: unknown;
}

export interface Listener {
  readonly pattern: string;
  /** The RE2 pattern the listener declares to the server, or null when it declares All (README: Interest). */
  readonly declared: string | null;
  /** Removes the listener. */
  off(): void;
}

/** The client's connection events: 'disconnect' (err), 'reconnect', 'missed' (n), 'drain', 'error' (err), 'close'. */
export interface ClientStatus extends EventEmitter {
  on(event: 'disconnect', fn: (err: Error) => void): this;
  on(event: 'reconnect', fn: () => void): this;
  on(event: 'missed', fn: (n: number) => void): this;
  on(event: 'drain', fn: () => void): this;
  on(event: 'error', fn: (err: Error) => void): this;
  on(event: 'close', fn: () => void): this;
}

export class Client {
  constructor(channel: string, options?: ClientOptions);
  readonly channel: string;
  /** The socket path the client connects to. */
  readonly path: string;
  /** Connection events. */
  readonly status: ClientStatus;
  /** This connection's client id; null while disconnected. */
  readonly id: string | null;
  /** The node id of the server; null while disconnected. */
  readonly node: string | null;
  /** The largest frame body the server accepts: the last server's while disconnected. */
  readonly maxFrame: number;
  /** False while reconnecting, and from the server's Drain (it is stopping) to the next connection. */
  readonly connected: boolean;
  /** How many events the client missed for good on its reconnects: no longer retained by the server. */
  readonly missed: number;
  /** Makes the first connection; rejects when it fails. */
  connect(): Promise<this>;
  /**
   * Emits an event; throws on a bad name, a frame over maxFrame, a full reconnect buffer or a closed client.
   * Returns false, as stream.write does, when the caller should wait for 'drain' (or flush()) before emitting more.
   */
  emit(event: string, data?: unknown): boolean;
  /** Resolves when emit would return true: at once, or at the next 'drain'. Rejects if the client ends first. */
  flush(): Promise<void>;
  /**
   * Registers fn for every event whose whole name matches pattern (a regular expression anchored at both ends),
   * and declares it to the server (protocol version 4). Await listening() to know the server forwards what it matches.
   */
  on(pattern: string, fn: (msg: Message) => void): Listener;
  /** on for the first matching event only. */
  once(pattern: string, fn: (msg: Message) => void): Listener;
  /** Removes a listener, or the listeners of a pattern (and of fn). */
  off(what: Listener | string, fn?: (msg: Message) => void): this;
  /**
   * Resolves once the server forwards every event the listeners, as they are now, match: an event emitted by
   * anyone after that reaches them. At once when nothing new is to be declared, with a server of protocol
   * version 3 or older, with receiveAll, or when the connection ends first. Rejects on a closed client.
   */
  listening(): Promise<void>;
  /** Emits event and resolves with the first reply to it. */
  request(event: string, data?: unknown, options?: { timeout?: number }): Promise<Message>;
  /** Answers the request msg: msg.event + '-response', to its sender only. */
  reply(msg: Message, data?: unknown): void;
  /** Writes what is queued and closes. */
  close(): Promise<void>;
}

/** Connects a client to channel; resolves once connected. */
export function connect(channel: string, options?: ClientOptions): Promise<Client>;

/** Where ncserver puts its sockets unless configured otherwise. */
export function defaultSocketTemplate(): string;

/** The message object the original netcluster's listeners received. */
export interface OriginalMessage {
  emmiteruuid: string | null;
  channel: string;
  broadcast: boolean;
  event: string;
  data: unknown;
  id: string;
  origin: string | null;
  to?: string;
  re?: string;
}

/** The original netcluster's client API, as an EventEmitter. */
export class NCAgent extends EventEmitter {
  constructor(options?: ClientOptions);
  /** The client underneath, once connect has been called. */
  readonly client: Client | null;
  /** Joins channel; cb is called once connected. Waits for a server that is not there yet. */
  connect(channel: string, cb?: () => void): this;
  /** Sends event with data on the agent's channel. */
  emit(event: string | symbol, data?: unknown): boolean;
  on(event: string | symbol, listener: (msg: OriginalMessage) => void): this;
  once(event: string | symbol, listener: (msg: OriginalMessage) => void): this;
  /** Closes the connection. */
  disconnect(): Promise<void>;
}

/** Makes an NCAgent, as the original's factory of that name. */
export function pipedclient(options?: ClientOptions): NCAgent;

export class ClosedError extends Error {}
export class DisconnectedError extends Error {}
export class BufferFullError extends DisconnectedError {}
/** The server broke the protocol. */
export class ProtocolError extends Error {}
/** The server's Error frame. */
export class ServerError extends Error {
  readonly code: number;
  readonly serverMessage: string;
}

declare const netcluster: {
  connect: typeof connect;
  Client: typeof Client;
  Message: typeof Message;
  NCAgent: typeof NCAgent;
  pipedclient: typeof pipedclient;
  defaultSocketTemplate: typeof defaultSocketTemplate;
  ClosedError: typeof ClosedError;
  DisconnectedError: typeof DisconnectedError;
  BufferFullError: typeof BufferFullError;
  ProtocolError: typeof ProtocolError;
  ServerError: typeof ServerError;
  ErrorCode: typeof ErrorCode;
  PROTOCOL_VERSION: typeof PROTOCOL_VERSION;
  REPLY_SUFFIX: typeof REPLY_SUFFIX;
};
export default netcluster;
