// Package natslink is the server's link to NATS: it publishes the events
// of bridged channels on NATS subjects and hands what it receives on
// them to its caller, bytes in and out, as package multicast does for
// UDP multicast.
//
// # Subjects and messages
//
// An event of channel C in cluster K travels on the subject
// "<prefix>.K.C" (K is "default" when the cluster name is empty). A reply
// travels on "<prefix>.$node.K.<node id>", the subject of the server
// that the request came from; heartbeats on "<prefix>.$hb.K". The
// server refuses a cluster name that begins with '$', so these never
// clash with a channel's subject, and a JetStream stream on
// "<prefix>.K.>" keeps events alone.
//
// The message's body is the event's data, one msgpack value; its
// headers carry the rest (HeaderEvent and the others below). A plain
// nats.go program can so emit into a channel (HeaderEvent is the one
// header it must set) and listen to one.
//
// With Config.Pack, the events of a channel go in packs instead
// (HeaderPack): a body of length-prefixed event frames, as a channel's
// socket carries them, several to a message. A link reads packs whether
// or not it sends them.
//
// With Config.JetStream, a stream keeps the cluster's subjects, and the
// link takes its channels' events from a durable consumer of it instead
// of plain subscriptions, so that a server that was down gets what it
// missed. It publishes to the stream with acknowledgements, at most
// jsMaxPending messages waiting (fewer while the stream's ingest queue
// overflows, jsretry.go), sends again what a full queue refused and
// what a lost connection left unacknowledged, and delivers what the consumer hands it in each
// sender's order (jsOrder).
//
// # Concurrency
//
// A Link is safe for concurrent use. Publish waits while a receiving
// server holds it back (Config.FlowControl), with JetStream while the
// stream has yet to acknowledge jsMaxPending messages, and, once NATS
// is back after an outage, while the buffer kept meanwhile is full and
// being sent (for PeerTimeout and Heartbeat at most without progress).
// nats.go buffers what it cannot send yet (32 KiB), the link up to
// Config.Buffer bytes while disconnected, and Publish returns ErrDropped
// past that. Past nats.go's buffer, Publish waits on the socket: for
// Config.WriteTimeout at most, should NATS take nothing.
// PublishFrame waits while maxPackedBytes of packs wait for a goroutine
// of the link's to send them, and counts what NATS refuses when it sends.
// The deliver function is called from nats.go's goroutines, one per
// subscribed channel (or the JetStream consumer's), so events of one
// sender on one channel arrive in the order they were sent. Close
// returns once nothing more is delivered and the link's own goroutines
// have ended.
package natslink
