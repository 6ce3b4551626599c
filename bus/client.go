package bus

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"sync"
	"time"

	"github.com/google/uuid"
)

// Errors a caller can branch on.
var (
	// ErrClosed is returned by calls on a client after Close.
	ErrClosed = errors.New("bus: client closed")
	// ErrNoServer means no ncserver is listening on the channel's socket.
	ErrNoServer = errors.New("bus: no server is serving the channel")
	// ErrDisconnected is returned by Emit once the connection to the
	// server has broken; the cause went to the ErrorHandler.
	ErrDisconnected = errors.New("bus: disconnected from the server")
)

// ServerError is an error frame from the server: the reason it closed the
// connection.
type ServerError struct {
	Code    ErrorCode
	Message string
}

func (e *ServerError) Error() string {
	return fmt.Sprintf("bus: server closed the connection: %v: %s", e.Code, e.Message)
}

// MaxEventName is the longest event name, in bytes.
const MaxEventName = 1024

// maxSpare is the largest Emit scratch buffer kept for reuse, and the
// smallest send batch kept.
const maxSpare = 1 << 20

// Client is one connection to one channel of an ncserver. Its methods are
// safe for concurrent use.
type Client struct {
	opts    options
	channel string
	path    string
	id      uuid.UUID
	ids     *idSource // the ids of emitted events
	welcome Welcome
	conn    net.Conn

	// Send side. Emit appends whole frames to out; the writer goroutine
	// swaps out for spare and writes the batch in one call.
	mu      sync.Mutex
	space   *sync.Cond // signalled whenever out drains or the client ends
	out     []byte
	spare   []byte
	writing bool
	closing bool  // Close has begun: no more emits
	err     error // why the connection ended; nil while it works
	wake    chan struct{}

	listeners listenerSet
	queue     *queue
	pending   pendingRequests

	errs chan error

	done       chan struct{} // closed when the connection ends
	endOnce    sync.Once
	closeOnce  sync.Once
	ioDone     sync.WaitGroup // reader and writer
	dispatched chan struct{}  // closed when the dispatcher returns
	reported   chan struct{}  // closed when the error reporter returns
	dispatchID uint64         // goroutine ids, so Close called from a
	reportID   uint64         // listener or ErrorHandler does not wait on itself
}

// Dial connects to a channel of the ncserver on this machine and does the
// handshake. The socket is found from the channel name with the default
// template unless Socket or SocketTemplate says otherwise. The context
// bounds the connect and handshake only.
func Dial(ctx context.Context, channel string, opts ...Option) (*Client, error) {
	o := defaultOptions()
	for _, opt := range opts {
		opt(&o)
	}
	if !ValidChannelName(channel) {
		return nil, fmt.Errorf("bus: invalid channel name %q", channel)
	}
	path := o.socket
	if path == "" {
		path = SocketPath(o.template, channel)
	}
	if o.timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, o.timeout)
		defer cancel()
	}
	// A connection whose hello reached the server after its JSON grace
	// was taken for a listen-only JSON client: that can happen to a
	// process descheduled between its connect and its write, and a new
	// connection, whose hello goes out at once, settles it.
	for attempt := 1; ; attempt++ {
		c, br, err := dialOnce(ctx, channel, path, o)
		if errors.Is(err, errLateHello) && attempt < maxLateHello && ctx.Err() == nil {
			continue
		}
		if err != nil {
			return nil, err
		}
		c.start(br)
		return c, nil
	}
}

// maxLateHello is how many connections Dial makes before it gives up on
// a server that takes every one of them for a JSON client.
const maxLateHello = 5

// errLateHello is the handshake's error when the server answered in the
// JSON text protocol because the hello came after its grace.
var errLateHello = errors.New("the server answered in the JSON text protocol: the hello came after its JSON grace")

// dialOnce connects to the socket at path and makes the handshake.
func dialOnce(ctx context.Context, channel, path string, o options) (*Client, *bufio.Reader, error) {
	conn, err := dialSocket(ctx, path)
	if err != nil {
		if noServer(err) {
			return nil, nil, fmt.Errorf("%w: channel %q, socket %s: %v", ErrNoServer, channel, path, err)
		}
		return nil, nil, fmt.Errorf("bus: dialing channel %q: %w", channel, err)
	}
	c := &Client{
		opts:       o,
		channel:    channel,
		path:       path,
		id:         uuid.New(),
		ids:        newIDSource(),
		conn:       conn,
		wake:       make(chan struct{}, 1),
		errs:       make(chan error, 16),
		done:       make(chan struct{}),
		dispatched: make(chan struct{}),
		reported:   make(chan struct{}),
	}
	c.space = sync.NewCond(&c.mu)
	c.queue = newQueue(o.queueLen)
	br := bufio.NewReaderSize(conn, 64<<10)
	if err := c.handshake(ctx, br); err != nil {
		conn.Close()
		return nil, nil, err
	}
	return c, br, nil
}

func (c *Client) handshake(ctx context.Context, br *bufio.Reader) error {
	if dl, ok := ctx.Deadline(); ok {
		c.conn.SetDeadline(dl)
	}
	stop := context.AfterFunc(ctx, func() { c.conn.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	hello := Hello{Version: ProtocolVersion, ClientID: c.id, Name: c.opts.name, PID: uint64(os.Getpid())}
	if _, err := c.conn.Write(AppendHello(nil, &hello)); err != nil {
		return fmt.Errorf("bus: handshake on channel %q: %w", c.channel, err)
	}
	if first, err := br.Peek(1); err == nil && first[0] == '{' {
		// JSON text: the server took the connection for a listen-only
		// client of the JSON text protocol, because the hello came later
		// than its grace (PROTOCOL.md § 10.1).
		return fmt.Errorf("bus: handshake on channel %q: %w", c.channel, errLateHello)
	}
	frame, err := NewFrameReader(br, 64<<10).ReadFrame()
	if err != nil {
		if ctx.Err() != nil {
			err = ctx.Err()
		}
		return fmt.Errorf("bus: handshake on channel %q: %w", c.channel, err)
	}
	body := frame[HeaderLen:]
	switch t, _ := TypeOf(body); t {
	case FrameWelcome:
		w, err := DecodeWelcome(body)
		if err != nil {
			return fmt.Errorf("bus: handshake on channel %q: %w", c.channel, err)
		}
		if w.Version < 1 || w.Version > ProtocolVersion {
			return fmt.Errorf("bus: handshake on channel %q: server answered with protocol version %d", c.channel, w.Version)
		}
		if w.Channel != c.channel {
			return fmt.Errorf("bus: socket %s serves channel %q, not %q", c.path, w.Channel, c.channel)
		}
		c.welcome = w
	case FrameError:
		e, err := DecodeError(body)
		if err != nil {
			return fmt.Errorf("bus: handshake on channel %q: %w", c.channel, err)
		}
		return &ServerError{Code: e.Code, Message: e.Message}
	default:
		return fmt.Errorf("bus: handshake on channel %q: server sent a %v frame", c.channel, t)
	}
	return c.conn.SetDeadline(time.Time{})
}

func (c *Client) start(br *bufio.Reader) {
	c.ioDone.Add(2)
	go c.readLoop(br)
	go c.writeLoop()
	dispatchID, reportID := make(chan uint64), make(chan uint64)
	go func() {
		dispatchID <- goid()
		defer close(c.dispatched)
		c.dispatchLoop()
	}()
	go func() {
		reportID <- goid()
		defer close(c.reported)
		c.reportLoop()
	}()
	c.dispatchID, c.reportID = <-dispatchID, <-reportID
}

func (c *Client) Channel() string { return c.channel }

// ID is the client's id: the Sender of every event it emits.
func (c *Client) ID() uuid.UUID { return c.id }

// Node is the id of the server the client is connected to.
func (c *Client) Node() uuid.UUID { return c.welcome.Node }

// MaxFrame is the largest frame body the server accepts.
func (c *Client) MaxFrame() int { return int(c.welcome.MaxFrame) }

// Done is closed when the connection has ended, by Close or by an error.
func (c *Client) Done() <-chan struct{} { return c.done }

// Err says why the connection ended: nil while it works, ErrClosed after
// Close, else the error that broke it.
func (c *Client) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}

func (c *Client) readLoop(br *bufio.Reader) {
	defer c.ioDone.Done()
	fr := NewFrameReader(br, int(c.welcome.MaxFrame))
	var names nameCache
	for {
		frame, err := fr.ReadFrame()
		if err != nil {
			c.end(fmt.Errorf("bus: reading from channel %q: %w", c.channel, err))
			return
		}
		body := frame[HeaderLen:]
		switch t, _ := TypeOf(body); t {
		case FrameEvent:
			m, err := names.decodeEvent(body)
			if err != nil {
				c.end(fmt.Errorf("bus: from channel %q: %w", c.channel, err))
				return
			}
			if m.InReplyTo != uuid.Nil && c.pending.deliver(m) {
				continue
			}
			if c.listeners.matchAny(m.Event) && !c.queue.push(m, true) {
				return
			}
		case FrameError:
			e, err := DecodeError(body)
			if err != nil {
				c.end(fmt.Errorf("bus: from channel %q: %w", c.channel, err))
			} else {
				c.end(&ServerError{Code: e.Code, Message: e.Message})
			}
			return
		default:
			c.end(fmt.Errorf("bus: from channel %q: unexpected %v frame", c.channel, t))
			return
		}
	}
}

// end records why the connection ended, reports it unless Close caused
// it, and wakes every goroutine so that it returns.
func (c *Client) end(why error) {
	c.endOnce.Do(func() {
		c.mu.Lock()
		closing := c.closing
		if closing {
			why = ErrClosed
		}
		c.err = why
		c.space.Broadcast()
		c.mu.Unlock()
		if !closing {
			c.report(why)
		}
		c.conn.Close()
		c.queue.close()
		close(c.done)
	})
}

func (c *Client) report(err error) {
	if c.opts.errorHandler == nil {
		return
	}
	select {
	case c.errs <- err:
	default: // the handler is far behind; drop rather than block the bus
	}
}

func (c *Client) reportLoop() {
	for {
		select {
		case err := <-c.errs:
			c.opts.errorHandler(err)
		case <-c.done:
			for {
				select {
				case err := <-c.errs:
					c.opts.errorHandler(err)
				default:
					return
				}
			}
		}
	}
}

// Close writes what Emit has queued (waiting at most CloseTimeout), closes
// the connection and returns when every goroutine of the client has
// ended; listeners are not called after it returns, and events received
// but not yet handed to them are dropped. (When the server ends the
// connection instead, listeners still get every event that arrived
// before the end.) Close may be called
// from a listener or the ErrorHandler: it then returns without waiting
// for that one goroutine, which ends as soon as its function returns.
// Close is idempotent.
func (c *Client) Close() error {
	var err error
	c.closeOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), c.opts.closeTimeout)
		defer cancel()
		c.mu.Lock()
		c.closing = true
		c.space.Broadcast()
		c.mu.Unlock()
		if ferr := c.Flush(ctx); ferr != nil && !errors.Is(ferr, ErrDisconnected) {
			err = ferr
		}
		c.end(ErrClosed)
		c.queue.discard()
	})
	c.ioDone.Wait()
	self := goid()
	if self != c.dispatchID {
		<-c.dispatched
	}
	if self != c.reportID {
		<-c.reported
	}
	return err
}
