package bus

import (
	"os"
	"path/filepath"
	"time"
)

// Option configures Dial.
type Option func(*options)

type options struct {
	name         string
	socket       string
	template     string
	errorHandler func(error)
	timeout      time.Duration
	sendBuffer   int
	queueLen     int
	closeTimeout time.Duration

	reconnect       bool
	backoffMin      time.Duration
	backoffMax      time.Duration
	reconnectBuffer int
	onDisconnect    func(error)
	onReconnect     func()
	pingInterval    time.Duration
	pingTimeout     time.Duration
	serverUID       int
	since           time.Duration // resume.go
	onMissed        func(n uint64)
	receiveAll      bool // interest.go
}

func defaultOptions() options {
	return options{
		name:         filepath.Base(os.Args[0]),
		timeout:      5 * time.Second,
		sendBuffer:   4 << 20,
		queueLen:     8192,
		closeTimeout: 5 * time.Second,

		reconnect:       true,
		backoffMin:      100 * time.Millisecond,
		backoffMax:      5 * time.Second,
		reconnectBuffer: 4 << 20,
		pingInterval:    5 * time.Second,
		pingTimeout:     15 * time.Second,
		serverUID:       -1,
	}
}

// Name sets the name the client gives in its handshake; the control
// channel shows it. The default is the program's base name.
func Name(name string) Option { return func(o *options) { o.name = name } }

// Socket makes Dial connect to this exact socket path instead of the
// channel's path under the default template.
func Socket(path string) Option { return func(o *options) { o.socket = path } }

// SocketTemplate makes Dial find the channel's socket with this template,
// as the server's "socket" configuration key does ("{channel}" stands for
// the channel name).
func SocketTemplate(t string) Option { return func(o *options) { o.template = t } }

// ErrorHandler sets the function that hears about errors no call can
// return: a broken connection, an error frame from the server, a listener
// that panicked. It runs on its own goroutine, never concurrently with
// itself. The default ignores them.
func ErrorHandler(f func(error)) Option { return func(o *options) { o.errorHandler = f } }

// Timeout bounds the connect and handshake when the context given to Dial
// has no earlier deadline. The default is 5 s.
func Timeout(d time.Duration) Option { return func(o *options) { o.timeout = d } }

// SendBuffer bounds, in bytes, the frames Emit has queued that are not yet
// written to the socket; past it, Emit waits. The default is 4 MiB.
func SendBuffer(n int) Option { return func(o *options) { o.sendBuffer = n } }

// QueueLen bounds the events received and not yet handed to listeners;
// past it the client stops reading from the socket until listeners catch
// up (and a server may then drop it as a slow consumer). The default is
// 8192 events. While an Emit from a listener waits for room in the send
// buffer, the client reads on, up to 65,536 events past the bound, so
// that two clients echoing each other's streams do not hold each other.
func QueueLen(n int) Option { return func(o *options) { o.queueLen = n } }

// CloseTimeout bounds how long Close waits to write what Emit has queued.
// The default is 5 s.
func CloseTimeout(d time.Duration) Option { return func(o *options) { o.closeTimeout = d } }

// Reconnect turns reconnecting on or off. On (the default), a client
// whose connection breaks, or whose server shuts down or drops it,
// connects again on its own, with a new client id, after a wait that
// grows from one attempt to the next (ReconnectBackoff); meanwhile Emit
// keeps events in a buffer (ReconnectBuffer) and sends them, in order,
// once connected again. It keeps trying until Close. Only a server that
// refuses the client for a protocol error, an unsupported version or
// its access rules (CodeForbidden) ends it for good. Off, the client ends when its connection does:
// Done is closed and Emit returns ErrDisconnected.
//
// Reconnecting starts only after Dial has succeeded once: Dial itself
// reports a server that is not there.
func Reconnect(on bool) Option { return func(o *options) { o.reconnect = on } }

// ReconnectBackoff sets how long the client waits before each attempt to
// connect again: first, then twice as long after each failure, up to
// longest. Each wait is drawn at random between half of it and all of it, so
// that the clients of a restarted server do not all knock at once. The
// defaults are 100 ms and 5 s. A first or longest of 0 or less keeps the
// default, and longest is raised to first when it is smaller.
func ReconnectBackoff(first, longest time.Duration) Option {
	return func(o *options) {
		if first > 0 {
			o.backoffMin = first
		}
		if longest > 0 {
			o.backoffMax = longest
		}
		o.backoffMax = max(o.backoffMin, o.backoffMax)
	}
}

// ReconnectBuffer bounds, in bytes of encoded frames, the events that
// Emit keeps while the client is disconnected and reconnecting. An event
// that does not fit is not sent, and Emit returns ErrBufferFull (which
// also matches ErrDisconnected). 0 keeps nothing: every Emit while
// disconnected fails. The default is 4 MiB.
func ReconnectBuffer(bytes int) Option { return func(o *options) { o.reconnectBuffer = max(bytes, 0) } }

// OnDisconnect sets a function called with the reason each time the
// connection breaks, before the client starts to reconnect (with
// Reconnect off, once, as the client ends). It is not called for Close.
// It runs on the goroutine that runs the ErrorHandler, never
// concurrently with it or with itself, in the order things happened.
func OnDisconnect(f func(error)) Option { return func(o *options) { o.onDisconnect = f } }

// OnReconnect sets a function called each time the client has connected
// again, after the events buffered meanwhile are queued for the server
// and before any event emitted after it. It runs where OnDisconnect
// does.
func OnReconnect(f func()) Option { return func(o *options) { o.onReconnect = f } }

// Ping sets how the client finds out that its server has stopped
// answering (a hung or stopped process, a socket nobody reads): when it
// has heard nothing from the server for interval, it sends a Ping,
// which the server answers; when it has heard nothing for timeout, it
// takes the connection for dead, closes it and, with Reconnect on,
// connects again. The check runs every interval/4, so a dead server is
// noticed between timeout and timeout+interval/4 after the last frame
// from it. A server that reads what the client writes, however slowly
// (it holds the publisher back, and the ping waits behind the events),
// counts as heard from: 64 KiB written is a sign of life. A server that
// reads nothing at all for a while, holding the publisher back, pings
// the client meanwhile (PROTOCOL.md § 5.1). The defaults
// are 5 s and 15 s; an interval of 0 turns pinging
// off. timeout is raised to twice interval when it is smaller. Pings
// need a server of protocol version 2 or later (PROTOCOL.md § 4.5);
// with an older one the client does not ping. The client also answers
// the server's pings, from its read loop: a listener that blocks the
// receive queue (QueueLen) for longer than the server's pingtimeout gets
// the client dropped.
func Ping(interval, timeout time.Duration) Option {
	return func(o *options) {
		o.pingInterval, o.pingTimeout = max(interval, 0), max(timeout, 2*interval)
	}
}

// ServerUID makes Dial, and every reconnection, check that the process
// serving the channel's socket runs as this user id, from the socket's
// peer credentials, before it sends anything: another local user who
// got to the socket path first cannot pose as the server. Dial fails
// with a *ServerUIDError (matching ErrWrongServer) otherwise; a
// reconnection keeps trying, and reports it to the ErrorHandler. It
// works where the system tells a socket's peer (Linux SO_PEERCRED, macOS
// LOCAL_PEERCRED); elsewhere every Dial with it fails. A negative uid
// (the default) checks nothing.
func ServerUID(uid int) Option { return func(o *options) { o.serverUID = uid } }

// ReceiveAll makes the client declare no interest: the server forwards
// it every event of its channel, as servers before protocol version 4
// do, and the client drops locally those no listener matches. On then
// never waits for the server. Tools that want everything (a recorder, a
// benchmark's unfiltered baseline) use it; without it the server
// forwards only the events the client's listeners match and those
// addressed to it.
func ReceiveAll() Option { return func(o *options) { o.receiveAll = true } }
