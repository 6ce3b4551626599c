package bus

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/netcluster/netcluster/internal/wire"

	"github.com/google/uuid"
)

// maxSpare is the largest Emit scratch buffer kept for reuse, and the
// smallest send batch kept.
const maxSpare = 1 << 20

// Client is a program's link to one channel of an ncserver: one
// connection at a time, and, with Reconnect on (the default), a new one
// whenever the last one breaks. Its methods are safe for concurrent use.
type Client struct {
	opts    options
	channel string
	path    string
	ids     *idSource // the ids of emitted events
	// lastName is the last event name that send found valid.
	lastName atomic.Pointer[string]

	// ctx is cancelled by Close: it ends a reconnection under way.
	ctx    context.Context
	cancel context.CancelFunc

	// Send side. Emit appends whole frames to out; the writer goroutine
	// of the current connection swaps out for spare and writes the batch
	// in one call. While disconnected, out keeps the frames, bounded by
	// the reconnect buffer, for the next connection.
	mu       sync.Mutex
	space    *sync.Cond // signalled whenever out drains, a connection ends or the client ends
	sess     *session   // the connection; nil while disconnected
	drained  *session   // a connection the server drained: still read until the server closes it, ended by Close
	last     *session   // the latest connection, ended or not: never nil after Dial
	out      []byte
	spare    []byte
	writing  bool
	failed   uint64 // batches a write error lost, for Flush
	closing  bool   // Close has begun: no more emits
	err      error  // why the client ended for good; nil while it works or reconnects
	wake     chan struct{}
	maxFrame atomic.Int64 // the current server's maxframe

	listeners listenerSet
	want      interest // what the listeners declare to the server (interest.go)
	queue     *queue
	pending   pendingRequests
	notes     notifier

	ended      chan struct{} // closed when the client has ended for good
	closeOnce  sync.Once
	supervised chan struct{} // closed when the supervisor returns
	// The dispatcher and the notifier, which call the application's
	// functions: Close waits for them unless it may be called from one.
	listenerCalls appCalls
	// starting is the listener the dispatcher is about to call, from its
	// last check that it is not removed until the call begins; nil
	// otherwise (offStarting).
	starting      atomic.Pointer[Listener]
	callbackCalls appCalls
	running       atomic.Int32  // the supervisor, dispatcher and notifier, while they run
	done          chan struct{} // closed when all three have returned

	// Resuming (resume.go): the ids of the client's connections, under
	// mu, and the events it missed for good.
	own    [][16]byte
	missed atomic.Uint64
	// listening is closed by the first On, Once or Request when Since
	// asked for history; nil otherwise.
	listening     chan struct{}
	listeningOnce sync.Once
}

// session is one connection to the server, from its handshake to its
// end.
type session struct {
	nc      net.Conn
	id      uuid.UUID // the client id this connection's wire.Hello gave
	welcome wire.Welcome
	done    chan struct{} // closed when the connection has ended
	endOnce sync.Once
	err     error          // why it ended; set before done is closed
	io      sync.WaitGroup // its reader, writer and pinger

	declared decl // what its Hello declared (interest.go)

	heard   atomic.Uint64 // frames read: the pinger watches it move
	stalled atomic.Bool   // the reader waits for room in the receive queue
	// wrote counts the bytes written: a server that reads a writeChunk
	// of them is alive, however long a ping waits behind them.
	wrote atomic.Uint64

	// The id of the last event read, if any: where the next connection
	// resumes (resume.go). Only the reader writes them.
	after      [16]byte
	heardEvent bool
}

// Dial connects to a channel of the ncserver on this machine and does the
// handshake. The socket is found from the channel name with the default
// template unless Socket or SocketTemplate says otherwise. The context
// bounds the connect and handshake only. Dial does not retry: when no
// server serves the channel, the error matches ErrNoServer. Once
// connected, the client reconnects on its own (option Reconnect).
func Dial(ctx context.Context, channel string, opts ...Option) (*Client, error) {
	o := defaultOptions()
	for _, opt := range opts {
		opt(&o)
	}
	if !wire.ValidChannelName(channel) {
		return nil, fmt.Errorf("bus: invalid channel name %q", channel)
	}
	path := o.socket
	if path == "" {
		path = wire.SocketPath(o.template, channel)
	}
	c := &Client{
		opts:       o,
		channel:    channel,
		path:       path,
		ids:        newIDSource(),
		wake:       make(chan struct{}, 1),
		ended:      make(chan struct{}),
		supervised: make(chan struct{}),
		done:       make(chan struct{}),
	}
	c.listenerCalls.ended = make(chan struct{})
	c.callbackCalls.ended = make(chan struct{})
	c.space = sync.NewCond(&c.mu)
	c.queue = newQueue(o.queueLen)
	if o.since > 0 {
		c.listening = make(chan struct{})
	}
	c.notes.wake = make(chan struct{}, 1)
	c.want.init(c)
	s, br, err := c.dial(ctx)
	if err != nil {
		return nil, err
	}
	c.ctx, c.cancel = context.WithCancel(context.Background())
	c.install(s)
	c.start(s, br)
	return c, nil
}

// maxLateHello is how many connections Dial makes before it gives up on
// a server that takes every one of them for a JSON client.
const maxLateHello = 5

// errLateHello is the handshake's error when the server answered in the
// JSON text protocol because the hello came after its grace.
var errLateHello = errors.New("the server answered in the JSON text protocol: the hello came after its JSON grace")

// dial connects and makes the handshake, within the Timeout option. A
// connection whose hello reached the server after its JSON grace was
// taken for a listen-only JSON client: that can happen to a process
// descheduled between its connect and its write, and a new connection,
// whose hello goes out at once, settles it.
func (c *Client) dial(ctx context.Context) (*session, *bufio.Reader, error) {
	if c.opts.timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, c.opts.timeout)
		defer cancel()
	}
	for attempt := 1; ; attempt++ {
		s, br, err := c.dialOnce(ctx)
		if errors.Is(err, errLateHello) && attempt < maxLateHello && ctx.Err() == nil {
			continue
		}
		return s, br, err
	}
}

// dialOnce connects to the channel's socket and makes the handshake.
func (c *Client) dialOnce(ctx context.Context) (*session, *bufio.Reader, error) {
	conn, err := dialSocket(ctx, c.path)
	if err != nil {
		if noServer(err) {
			return nil, nil, fmt.Errorf("%w: channel %q, socket %s: %v", ErrNoServer, c.channel, c.path, err)
		}
		return nil, nil, fmt.Errorf("bus: dialing channel %q: %w", c.channel, err)
	}
	if err := c.checkServer(conn); err != nil {
		conn.Close()
		return nil, nil, err
	}
	s := &session{nc: conn, id: uuid.New(), done: make(chan struct{})}
	br := bufio.NewReaderSize(conn, 64<<10)
	if err := c.handshake(ctx, s, br); err != nil {
		c.want.handshakeFailed()
		conn.Close()
		return nil, nil, err
	}
	return s, br, nil
}

// checkServer checks the uid of the socket's server, if ServerUID
// asks to.
func (c *Client) checkServer(conn net.Conn) error {
	want := c.opts.serverUID
	if want < 0 {
		return nil
	}
	got, err := peerUID(conn)
	if err != nil {
		return fmt.Errorf("bus: channel %q: checking the uid of the server (option ServerUID): %w", c.channel, err)
	}
	if got != want {
		return &ServerUIDError{Path: c.path, Want: want, Got: got}
	}
	return nil
}

func (c *Client) handshake(ctx context.Context, s *session, br *bufio.Reader) error {
	if dl, ok := ctx.Deadline(); ok {
		s.nc.SetDeadline(dl)
	}
	stop := context.AfterFunc(ctx, func() { s.nc.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	hello := wire.Hello{Version: wire.ProtocolVersion, ClientID: s.id, Name: c.opts.name, PID: uint64(os.Getpid())}
	c.resumeHello(&hello)
	c.want.helloInterest(s, &hello)
	if _, err := s.nc.Write(wire.AppendHello(nil, &hello)); err != nil {
		return fmt.Errorf("bus: handshake on channel %q: %w", c.channel, err)
	}
	if first, err := br.Peek(1); err == nil && first[0] == '{' {
		// JSON text: the server took the connection for a listen-only
		// client of the JSON text protocol, because the hello came later
		// than its grace (PROTOCOL.md § 10.1).
		return fmt.Errorf("bus: handshake on channel %q: %w", c.channel, errLateHello)
	}
	frame, err := wire.NewFrameReader(br, 64<<10).ReadFrame()
	if err != nil {
		if ctx.Err() != nil {
			err = ctx.Err()
		}
		return fmt.Errorf("bus: handshake on channel %q: %w", c.channel, err)
	}
	body := frame[wire.HeaderLen:]
	switch t, _ := wire.TypeOf(body); t {
	case wire.FrameWelcome:
		w, err := wire.DecodeWelcome(body)
		if err != nil {
			return fmt.Errorf("bus: handshake on channel %q: %w", c.channel, err)
		}
		if w.Version < 1 || w.Version > wire.ProtocolVersion {
			return fmt.Errorf("bus: handshake on channel %q: server answered with protocol version %d", c.channel, w.Version)
		}
		if w.Channel != c.channel {
			return fmt.Errorf("bus: socket %s serves channel %q, not %q", c.path, w.Channel, c.channel)
		}
		s.welcome = w
	case wire.FrameError:
		e, err := wire.DecodeError(body)
		if err != nil {
			return fmt.Errorf("bus: handshake on channel %q: %w", c.channel, err)
		}
		return &ServerError{Code: e.Code, Message: e.Message}
	default:
		return fmt.Errorf("bus: handshake on channel %q: server sent a %v frame", c.channel, t)
	}
	return s.nc.SetDeadline(time.Time{})
}

// start runs the client's long-lived goroutines and the first
// connection's.
func (c *Client) start(s *session, br *bufio.Reader) {
	c.running.Store(3)
	go func() {
		defer c.exit(c.listenerCalls.ended)
		c.dispatchLoop()
	}()
	go func() {
		defer c.exit(c.callbackCalls.ended)
		c.notes.run(c)
	}()
	c.startSession(s, br)
	go func() {
		defer c.exit(c.supervised)
		c.supervise(s)
	}()
}

// exit is deferred by each long-lived goroutine: the last one to return
// closes done, and then each closes its own channel, so that done is
// closed by the time Close has waited for all three. (A connection's
// goroutines end before the supervisor does.)
func (c *Client) exit(ended chan struct{}) {
	if c.running.Add(-1) == 0 {
		close(c.done)
	}
	close(ended)
}

// startSession runs a connection's reader, writer and, when the server
// speaks pings and the client pings, its pinger.
func (c *Client) startSession(s *session, br *bufio.Reader) {
	ping := s.welcome.Version >= wire.PingVersion && c.opts.pingInterval > 0
	s.io.Add(2)
	if ping {
		s.io.Add(1)
		go c.pingLoop(s)
	}
	go func() {
		c.awaitListener(s) // resume.go: history waits for a listener
		c.readLoop(s, br)
	}()
	go c.writeLoop(s)
	c.poke()
}

// Channel is the channel the client is connected to.
func (c *Client) Channel() string { return c.channel }

// ID is the client's id on its current connection (its latest, while
// it reconnects): the Sender of every event it emits. Each connection
// has a new one.
func (c *Client) ID() uuid.UUID {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.last.id
}

// Node is the id of the server the client is connected to (or was
// last, while it reconnects).
func (c *Client) Node() uuid.UUID {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.last.welcome.Node
}

// MaxFrame is the largest frame body the server accepts.
func (c *Client) MaxFrame() int { return int(c.maxFrame.Load()) }

// Connected reports whether the client has a working connection now:
// false while it reconnects, and once it has ended.
func (c *Client) Connected() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.sess != nil
}

// Done is closed when the client has ended for good, after Close, or
// when a connection ended and the client does not reconnect (Reconnect
// off, or a server that refused it for a protocol error), and every
// goroutine of the client has returned: the listeners have had the
// events that arrived before the end (unless Close discarded them) and
// returned, and so have the ErrorHandler and callbacks. A listener or
// callback must therefore not wait for Done.
func (c *Client) Done() <-chan struct{} { return c.done }

// Err says why the client ended: nil while it works or reconnects,
// ErrClosed after Close, else the error that ended it.
func (c *Client) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}

// maxBatch bounds the events the read loop decodes before it hands them
// to the dispatcher in one step.
const maxBatch = 256

// readLoop reads the connection's frames until it ends. A frame that
// lies whole in the read buffer is decoded where it lies, and only its
// data is copied (Message.Data is the listener's to keep); events go to
// the dispatcher in batches, one batch per read from the socket at
// most, and always before the loop waits for the socket again.
func (c *Client) readLoop(s *session, br *bufio.Reader) {
	defer s.io.Done()
	r := reception{c: c, s: s, batch: make([]Message, 0, maxBatch)}
	fr := wire.NewFrameReader(br, int(s.welcome.MaxFrame))
	for {
		frame := fr.Peek()
		inBuffer := frame != nil
		if !inBuffer {
			if !r.handOff() {
				return
			}
			var err error
			if frame, err = fr.ReadFrame(); err != nil {
				c.endSession(s, fmt.Errorf("bus: reading from channel %q: %w", c.channel, err))
				return
			}
		}
		s.heard.Add(1)
		ok := r.frame(frame[wire.HeaderLen:], inBuffer)
		if inBuffer {
			fr.Skip(len(frame))
		}
		if !ok {
			return
		}
	}
}

// endSession ends connection s: it records why, takes it off the client
// so that Emit buffers, closes the socket and wakes s's goroutines. The
// supervisor then reports it and reconnects, or ends the client.
func (c *Client) endSession(s *session, why error) {
	s.endOnce.Do(func() {
		c.mu.Lock()
		if c.closing {
			why = ErrClosed
		}
		s.err = why
		if c.sess == s {
			c.sess = nil
		}
		if c.drained == s {
			c.drained = nil
		}
		c.space.Broadcast()
		c.mu.Unlock()
		s.nc.Close()
		close(s.done)
		c.want.lost(s)
	})
}

// finish ends the client for good, once its last connection's
// goroutines have returned: Emit fails from now on, the dispatcher
// hands out what had arrived (unless Close discarded it) and returns.
func (c *Client) finish(why error) {
	c.mu.Lock()
	if c.closing {
		why = ErrClosed
	}
	c.err = why
	c.space.Broadcast()
	c.mu.Unlock()
	c.want.shutdown()
	c.queue.close()
	close(c.ended)
}

// Close writes what Emit has queued (waiting at most CloseTimeout; while
// disconnected, what is buffered is dropped), closes the connection and
// stops reconnecting. Listeners are not called after it returns, and
// events received but not yet handed to them are dropped. (When the
// client ends for another reason, listeners still get every event that
// arrived before the end.) Close is idempotent.
//
// Close returns when every goroutine of the client has ended, with one
// exception. Close may be called from a listener, the ErrorHandler or a
// callback, and it cannot tell which goroutine calls it; so when the
// goroutine that runs listeners, or the one that runs the ErrorHandler
// and callbacks, is inside such a function, Close does not wait for it,
// whoever called Close. That goroutine calls nothing more and ends when
// the function returns, and Done is closed then: a caller that must know
// every goroutine has ended, while a listener may be running, waits for
// Done after Close.
func (c *Client) Close() error {
	var err error
	c.closeOnce.Do(func() {
		c.mu.Lock()
		c.closing = true
		connected := c.sess != nil
		c.space.Broadcast()
		c.mu.Unlock()
		c.want.shutdown()
		if connected {
			ctx, cancel := context.WithTimeout(context.Background(), c.opts.closeTimeout)
			if ferr := c.Flush(ctx); ferr != nil && !errors.Is(ferr, ErrDisconnected) {
				err = ferr
			}
			cancel()
		}
		c.cancel()
		c.mu.Lock()
		s, drained := c.sess, c.drained
		c.mu.Unlock()
		if s != nil {
			c.endSession(s, ErrClosed)
		}
		if drained != nil {
			// Its server waits for it to read what is queued for it, or
			// to leave: leave.
			c.endSession(drained, ErrClosed)
		}
		c.queue.discard()
	})
	<-c.supervised
	c.listenerCalls.wait(true)
	c.callbackCalls.wait(false)
	return err
}
