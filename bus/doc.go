// Package bus is the netcluster client: it connects a program to one
// channel of the ncserver on its machine, so that it can emit and listen
// to named events the way a Node.js EventEmitter does, with every other
// program on the channel (and, through the server's rules, on other
// channels and machines).
//
//	c, err := bus.Dial(ctx, "A")
//	c.On("log", func(m bus.Message) { var s string; m.Decode(&s); fmt.Println(s) })
//	c.Emit("log", "hello")
//	c.Close()
//
// Request emits an event and waits for its reply; a listener answers
// with Reply, which the server delivers to the asker only:
//
//	c.On("get-time", func(m bus.Message) { c.Reply(m, time.Now().String()) })
//	reply, err := other.Request(ctx, "get-time", nil)
//
// The client speaks the local wire protocol (PROTOCOL.md) through the
// module's internal codec package, which the server shares. bus imports
// only that codec, the standard library, msgpack and uuid, never the
// server, so a program that only emits and listens pulls in nothing
// else.
//
// # Concurrency
//
// A Client's methods are safe for concurrent use. Emit encodes the event
// and queues it for a writer goroutine, which writes whatever has queued
// up in one system call; Emit waits only when the send buffer is full.
// Events one client emits reach every receiver in the order Emit was
// called.
//
// Received events are handed to listeners on one dispatcher goroutine,
// one listener at a time, in arrival order, never on the socket's read
// loop. A listener that blocks delays the listeners after it; if it
// blocks long enough, the receive queue fills, the client stops reading,
// and the server drops it as a slow consumer (the ErrorHandler hears
// why). A listener may call Emit, On, Off and Close, and Request: replies
// are taken off the socket by the read loop, not the dispatcher. On
// called from a listener does not wait for the server to apply its
// pattern, as On does elsewhere (see On).
//
// # Interest
//
// The client tells a server of protocol version 4 which event names its
// listeners match, in its Hello and whenever On, Once and Off change
// them, and the server forwards it only those and the events addressed
// to it. ReceiveAll turns it off: the client then takes every event of
// its channel, as with older servers.
//
// # Reconnecting
//
// A Client outlives its connection. When the connection breaks (the
// server restarts, the socket fails, the server stops answering pings)
// the client connects again on its own, with a growing, jittered wait
// between attempts, until Close (options Reconnect, ReconnectBackoff).
// Meanwhile Emit keeps events in a bounded buffer and sends them first
// once connected (ReconnectBuffer; ErrBufferFull past it); OnDisconnect
// and OnReconnect tell the application. The new connection resumes
// where the last one stood: the server sends what the client missed,
// from its ring of retained events, before anything live, and nothing
// is ever delivered twice or out of order. Events the server no longer
// retains are reported, never dropped silently (OnMissed, the
// ErrorHandler with a *MissedError, Missed). A first Dial replays
// nothing unless Since asks for history. A server that stops gracefully
// drains the client first: Emit then keeps events for the next
// connection, and nothing the client wrote is left unread. Listeners
// live in the client and need no registering again. A supervisor goroutine does the reconnecting;
// each connection has its own reader, writer and pinger, which end with
// it.
//
// # What callers owe
//
// Close every Client: Close flushes what Emit has queued and returns only
// after all the client's goroutines have ended, but for one inside a
// listener or callback (Close may be called from it); Done is closed
// once that one has returned too. A listener or callback must not wait
// for Done. Message.Data aliases a buffer that is not reused; a listener
// may keep it.
package bus
