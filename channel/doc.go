// Package channel serves one netcluster channel: its Unix socket (a named
// pipe on Windows), the handshake with each client, and the fan-out of
// each event to the channel's clients.
//
// A client speaks the framed protocol or the JSON text protocol of the
// original netcluster (PROTOCOL.md § 10): a first byte '{', or silence
// past Config.JSONGrace, makes it a JSON client. A connection is a
// receiver from its accept on, so events that arrive before its protocol
// is known are held in its queue. JSON clients get each event's JSON
// form, made once per event (Event), and what they send is turned
// into frames, so the rest of the server sees frames only.
//
// Each client connection has a read goroutine, which checks every frame
// and hands events to the channel's Handler, and a write goroutine, which
// drains a bounded queue of shared, immutable frames with one writev per
// chunk of a batch. A frame is never copied per receiver. The queue counts
// each frame's whole buffer and bookkeeping, so what a client holds stays
// within maxpending, and a client whose queue would pass it is
// disconnected with a logged reason.
//
// # Interest
//
// A framed client of protocol version 4 may declare the event names it
// listens to, in its Hello and in Interest frames; SendEvent then queues
// for it only the events addressed to it or whose name matches, and
// counts the others as Filtered. Each declaration is compiled once, swapped
// in atomically, and answered with an Applied frame queued after the
// swap; decisions are cached per client and event name. interest.go says
// more.
//
// # Back-pressure
//
// On a channel whose Overflow is OverflowBlock (the default), a client
// whose queue passes half of maxpending holds back the publishers that
// feed it: the read goroutine that queued the event waits, once the
// Handler has returned, until the queue is under a quarter; the network
// link waits briefly (Event.HoldBack). A client that takes nothing for
// StallTimeout meanwhile is dropped as a slow consumer. A publisher is
// never held for its own queue nor in a cycle of held readers. With
// OverflowDrop nobody is held. flow.go says how and why.
//
// # Frame buffers
//
// The read loop reads each frame into a buffer from size-classed pools
// and hands it to the Handler, which may queue it for any number of
// clients (SendEvent) but must copy anything else it keeps past its
// return (Handler). Each queue holds a reference to the buffer until its
// writer has written the frame or the connection has ended; the last
// release returns the buffer to its pool. Built with -tags ncpoison,
// released buffers are poisoned instead of reused, and LiveBuffers
// counts those still held, so that tests find a use after release or a
// reference never released.
//
// # Concurrency
//
// Send may be called from any goroutine; frames from one goroutine reach
// each client in call order. The client list is copy-on-write, so Send
// takes no lock shared with other senders. Quiesce and Shutdown stop the
// channel in two steps so that a server can first stop all input on all
// channels and then flush every queue; Shutdown returns once every
// goroutine the channel started has ended.
//
// # Socket files
//
// Listen refuses a socket that a live process answers on (naming it, from
// the socket's peer credentials where the system has them), replaces one
// that nobody answers on (left by a server that was killed), and never
// replaces a file that is not a socket. It binds the socket in a private
// directory and renames it into place, so that it never exists at its
// path with a wider mode than Config.Mode, and refuses a socket directory
// that another user owns or that others may write without the sticky
// bit. The socket file is removed when the channel closes.
//
// # Access
//
// Each connection is checked when it is accepted, against the kernel's
// peer credentials, by the channel's Access: who may connect (Allow),
// how many (MaxClients, MaxClientsPerUID), and who of them may send
// events (Publish). A refused connection never becomes a client: a
// goroutine of its own reads its hello, so as to answer in its protocol,
// sends the reason (wire.CodeForbidden or wire.CodeTooManyClients) and
// closes it.
package channel
