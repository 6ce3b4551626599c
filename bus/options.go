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
}

func defaultOptions() options {
	return options{
		name:         filepath.Base(os.Args[0]),
		timeout:      5 * time.Second,
		sendBuffer:   4 << 20,
		queueLen:     8192,
		closeTimeout: 5 * time.Second,
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
// 8192 events.
func QueueLen(n int) Option { return func(o *options) { o.queueLen = n } }

// CloseTimeout bounds how long Close waits to write what Emit has queued.
// The default is 5 s.
func CloseTimeout(d time.Duration) Option { return func(o *options) { o.closeTimeout = d } }
