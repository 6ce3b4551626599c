// Package channel serves one netcluster channel: its Unix socket, the
// handshake with each client, and the fan-out of each event to the
// channel's clients.
//
// Each client connection has a read goroutine, which checks every frame
// and hands events to the channel's Handler, and a write goroutine, which
// drains a bounded queue of shared, immutable frames with one writev per
// batch. A frame is never copied per receiver. A client whose queue passes
// maxpending is disconnected with a logged reason, so that a reader that
// stalls never slows the sender or the other receivers.
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
// replaces a file that is not a socket. The socket file is removed when
// the channel closes.
package channel
