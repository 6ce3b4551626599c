// Package wire is what a netcluster client and server both speak: the
// local protocol's frame codec (a 4-byte big-endian length, then one
// msgpack array whose first element is the frame type), the msgpack
// primitives it is built on, the fixed layout of an event frame, the
// event-name and channel-name rules, and the JSON text protocol of the
// original netcluster's agents. PROTOCOL.md describes every frame, with
// test vectors under testdata/.
//
// It is a pure codec: it works on []byte and io.Reader, never owns a
// socket, and keeps no state between calls except what a caller holds (a
// FrameReader, a NameCache). Every function is safe for concurrent use
// on distinct values. Declared lengths are checked against a limit before
// anything is allocated, and decoders say what is wrong and at which
// byte (MalformedError, ErrBadJSON).
//
// The package is internal: applications use the client package bus,
// which exports what a user needs (Message, RawData, the error codes).
package wire
