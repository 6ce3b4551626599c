package channel

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	"github.com/netcluster/netcluster/internal/wire"
)

// Handler receives each event a client sends, on that client's read
// goroutine, after the frame has been checked. ev holds the event's
// parsed header (ev.Header) and its whole frame, length prefix included,
// in a pooled buffer, and may be passed to SendEvent as it is. ev, its
// Header and its frame are valid only until the Handler returns: the
// buffer is then reused. The queues of SendEvent and Conn.SendEvent hold
// their own reference to it; anything else that keeps the frame must copy
// it (Event.Copy), and nothing may modify it.
type Handler func(from *Conn, ev *Event)

// Config describes one channel. Zero values take the defaults shown.
type Config struct {
	Name string      // the channel name (wire.ValidChannelName)
	Path string      // the socket path
	Mode fs.FileMode // socket file mode; 0 means 0660
	// Group is the socket file's group, a name or a number; "" leaves
	// the server's own. The server must be a member of it (or root).
	Group string
	// Access says who may connect and publish, and how many may connect;
	// its zero value admits everyone the socket's mode lets in. SetAccess
	// changes it.
	Access     Access
	MaxFrame   int // largest frame body accepted; 0 means wire.DefaultMaxFrame
	MaxPending int // what one client's queue may hold, buffers and bookkeeping, before it is dropped as slow; 0 means 8 MiB
	// HandshakeTimeout bounds how long a framed client may take, from
	// its connect, to send its whole Hello; 0 means 5 s.
	HandshakeTimeout time.Duration
	// JSONGrace is how long a new connection may stay silent before it is
	// taken for a listen-only client of the JSON text protocol; 0 means
	// DefaultJSONGrace. A framed client sends its Hello at once, so this
	// only has to cover the time between its connect and its first write.
	JSONGrace time.Duration
	// PingInterval and PingTimeout are the liveness check of clients
	// that speak protocol version 2 or later: a client from which
	// nothing has come for PingInterval is sent a Ping, and one from
	// which nothing has come for PingTimeout is dropped (error code
	// PingTimeout). A PingInterval of 0 turns the check off: only the
	// clients the server holds back are pinged then (checkLiveness). A
	// PingTimeout below twice PingInterval is raised to that.
	PingInterval time.Duration
	PingTimeout  time.Duration
	// Overflow is what happens when a client's queue fills: OverflowBlock
	// (the zero value) holds back the publishers that feed it, and
	// OverflowDrop drops the client at MaxPending (flow.go).
	Overflow Overflow
	// StallTimeout is how long a client past its high-water mark may take
	// nothing, while a publisher is held for it, before it is dropped as
	// a slow consumer; 0 means DefaultStallTimeout.
	StallTimeout time.Duration
	Node         uuid.UUID    // the server's node id, sent in the welcome
	Logger       *slog.Logger // nil means slog.Default()
	// Handler routes events from this channel's clients. nil sends each
	// event to the channel's other clients only.
	Handler Handler
	// Retain bounds the ring of recent events kept for clients that
	// resume (retain.go); the zero value keeps none.
	Retain Retain
	// Paused leaves the socket's connections waiting in its backlog
	// until Start is called: a server opens every channel first and
	// serves them once its routes are in place.
	Paused bool
}

// DefaultJSONGrace is the JSONGrace used when a Config leaves it 0.
const DefaultJSONGrace = 300 * time.Millisecond

// Channel serves one channel's socket and its clients.
type Channel struct {
	cfg Config
	log *slog.Logger
	ln  net.Listener
	admission

	limits atomic.Pointer[limits]
	ping   atomic.Pointer[pingConfig]
	// liveStop ends the liveness check; Quiesce closes it.
	liveStop chan struct{}

	mu        sync.Mutex
	receivers atomic.Pointer[[]*Conn] // every connection, from its accept on, until it is dropped from the list: see addLocked
	// filterGen counts the filters its clients swapped, and audiences
	// caches who takes each event name for one receiver list and one
	// filterGen (audience.go).
	filterGen atomic.Uint64
	audiences atomic.Pointer[audiences]
	left      int                 // receivers entries whose client has left (marked removed); under mu
	all       map[*Conn]struct{}  // every connection, handshaking or not
	byID      map[uuid.UUID]*Conn // clients whose protocol is known, by client id; under mu
	nextID    uint64
	readers   sync.WaitGroup // read loops
	wg        sync.WaitGroup // accept loop and whole connections

	stopping    atomic.Bool
	stopOnce    sync.Once // stopAccepting
	drainOnce   sync.Once // Drain
	stopAccept  sync.Once
	acceptDone  chan struct{}
	started     chan struct{} // closed by Start: the accept loop runs
	startOnce   sync.Once
	shutdownErr error
	shutOnce    sync.Once

	eventsIn, bytesIn   atomic.Uint64
	framesOut, bytesOut atomic.Uint64
	slow, tooBig        atomic.Uint64
	dropped             atomic.Uint64 // events dropped for the clients, those that have left included (Conn.drop)
	undeliverable       atomic.Uint64
	filtered            atomic.Uint64 // (event, client) pairs not forwarded for the client's interest
	mode                atomic.Uint32 // the socket's current mode
	group               atomic.Pointer[string]
	jsonEncoded         atomic.Uint64
	pingTimeouts        atomic.Uint64
	stalls, stalledUS   atomic.Uint64
	stallTimeouts       atomic.Uint64

	ring ring // retained events, for clients that resume
}

// Listen creates the channel's socket and starts accepting clients. A
// socket that another live server holds is refused with *InUseError; a
// stale one is replaced.
func Listen(cfg Config) (*Channel, error) {
	if cfg.Mode == 0 {
		cfg.Mode = 0o660
	}
	if cfg.MaxFrame == 0 {
		cfg.MaxFrame = wire.DefaultMaxFrame
	}
	if cfg.MaxPending == 0 {
		cfg.MaxPending = 8 << 20
	}
	if cfg.HandshakeTimeout == 0 {
		cfg.HandshakeTimeout = 5 * time.Second
	}
	if cfg.JSONGrace == 0 {
		cfg.JSONGrace = DefaultJSONGrace
	}
	if cfg.StallTimeout == 0 {
		cfg.StallTimeout = DefaultStallTimeout
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if !wire.ValidChannelName(cfg.Name) {
		return nil, errors.New("channel: invalid channel name " + cfg.Name)
	}
	ch := &Channel{
		cfg:        cfg,
		log:        cfg.Logger.With("channel", cfg.Name),
		all:        make(map[*Conn]struct{}),
		byID:       make(map[uuid.UUID]*Conn),
		acceptDone: make(chan struct{}),
		started:    make(chan struct{}),
		liveStop:   make(chan struct{}),
	}
	ch.perUID = make(map[int]int)
	ch.refusing = make(map[net.Conn]struct{})
	ch.access.Store(&cfg.Access)
	ch.group.Store(&cfg.Group)
	gid := -1
	if cfg.Group != "" {
		g, err := LookupGroup(cfg.Group)
		if err != nil {
			return nil, fmt.Errorf("channel %s: socket group: %w", cfg.Name, err)
		}
		gid = g
	}
	ch.limits.Store(newLimits(cfg.MaxFrame, cfg.MaxPending, cfg.Overflow, cfg.StallTimeout))
	ch.ring.init(cfg.Retain)
	ch.SetPing(cfg.PingInterval, cfg.PingTimeout)
	ch.mode.Store(uint32(cfg.Mode))
	ln, stale, err := listenSocket(cfg.Path, cfg.Mode, gid)
	if err != nil {
		return nil, err
	}
	if stale {
		ch.log.Info("replaced a stale socket left by a server that did not shut down", "socket", cfg.Path)
	}
	ch.ln = ln
	if !cfg.Paused {
		ch.Start()
	}
	ch.wg.Add(2)
	go ch.acceptLoop()
	go ch.livenessLoop()
	return ch, nil
}

// Name is the channel's name.
func (ch *Channel) Name() string { return ch.cfg.Name }

// Path is the channel's socket path.
func (ch *Channel) Path() string { return ch.cfg.Path }

// Client returns the connected client whose handshake gave this id, or
// nil.
func (ch *Channel) Client(id uuid.UUID) *Conn {
	ch.mu.Lock()
	defer ch.mu.Unlock()
	return ch.byID[id]
}

// register makes a client that finished its handshake findable by its
// id. It reports false, and registers nothing, when another client of
// the channel has that id: a client must not be able to take another's
// replies by claiming its id.
func (ch *Channel) register(c *Conn, id uuid.UUID) bool {
	ch.mu.Lock()
	defer ch.mu.Unlock()
	if _, taken := ch.byID[id]; taken {
		return false
	}
	ch.byID[id] = c
	return true
}

// CountUndeliverable counts an addressed event sent on this channel whose
// addressee was not there; it shows in Stats.
func (ch *Channel) CountUndeliverable() { ch.undeliverable.Add(1) }

// Start starts accepting the clients of a channel opened Paused; those
// that connected meanwhile are accepted first. Start is idempotent.
func (ch *Channel) Start() { ch.startOnce.Do(func() { close(ch.started) }) }

func (ch *Channel) acceptLoop() {
	defer ch.wg.Done()
	defer close(ch.acceptDone)
	select {
	case <-ch.started:
	case <-ch.liveStop:
		return // closed before it started
	}
	var backoff time.Duration
	for {
		nc, err := ch.ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			// Out of descriptors, most likely: wait and try again
			// rather than spin.
			backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
			ch.log.Warn("accept failed", "err", err, "retry_in", backoff)
			time.Sleep(backoff)
			continue
		}
		backoff = 0
		ch.accept(nc)
	}
}

func (ch *Channel) accept(nc net.Conn) {
	cred, known := peerCred(nc)
	ch.mu.Lock()
	defer ch.mu.Unlock()
	if ch.stopping.Load() {
		nc.Close()
		return
	}
	if code, reason := ch.admitLocked(cred, known); code != 0 {
		ch.refuseLocked(nc, cred, known, code, reason)
		return
	}
	ch.perUID[uidKey(cred, known)]++
	ch.nextID++
	c := &Conn{
		ch:    ch,
		id:    ch.nextID,
		nc:    nc,
		since: time.Now(),
		wake:  make(chan struct{}, 1),
		dead:  make(chan struct{}),

		readDone: make(chan struct{}),
	}
	c.log.Store(ch.log.With("conn", ch.nextID))
	c.cred, c.credKnown = cred, known
	c.publish.Store(publishState(ch.access.Load(), cred, known))
	ch.all[c] = struct{}{}
	// A receiver from now on: what arrives before its protocol is known
	// is held for it (see Conn.serve).
	ch.addReceiver(c)
	ch.wg.Add(1)
	ch.readers.Add(1)
	go c.serve()
}

// addLocked makes a new connection visible to Send; ch.mu is held.
//
// The client list is read without a lock. Readers load a slice; add
// appends in place when the array has room, which no reader sees (they
// read only below the length they loaded) until the longer slice is
// stored; an entry, once written, never changes. A client that leaves is
// only marked (remove) and skipped by readers, and the list is rebuilt
// once half of it is gone. So connecting or dropping n clients costs
// O(n), not O(n²), in time and garbage.
func (ch *Channel) addLocked(c *Conn) {
	old := ch.receiverList()
	next := old
	if len(old) == cap(old) {
		next = make([]*Conn, len(old), 2*len(old)+4)
		copy(next, old)
	}
	next = append(next, c)
	ch.receivers.Store(&next)
}

func (ch *Channel) remove(c *Conn) {
	ch.mu.Lock()
	defer ch.mu.Unlock()
	delete(ch.all, c)
	if k := uidKey(c.cred, c.credKnown); ch.perUID[k] <= 1 {
		delete(ch.perUID, k)
	} else {
		ch.perUID[k]--
	}
	if c.mode.Load() != modeUndecided && ch.byID[c.hello.ClientID] == c {
		delete(ch.byID, c.hello.ClientID)
	}
	c.removed.Store(true)
	ch.left++
	old := ch.receiverList()
	if 2*ch.left < len(old) {
		return
	}
	next := make([]*Conn, 0, 2*(len(old)-ch.left)+4)
	for _, x := range old {
		if !x.removed.Load() {
			next = append(next, x)
		}
	}
	ch.receivers.Store(&next)
	ch.left = 0
}

// receiverList returns the channel's receivers, read without a lock
// (addLocked): every connection from its accept on, handshaking or not,
// and also those that have left since the list was last rebuilt, which
// are marked removed and which every caller must skip.
func (ch *Channel) receiverList() []*Conn {
	if p := ch.receivers.Load(); p != nil {
		return *p
	}
	return nil
}

// handle counts an event a client sent and hands it to the Handler.
func (ch *Channel) handle(from *Conn, ev *Event) {
	if !ch.mayHandle(from) {
		return
	}
	ch.eventsIn.Add(1)
	ch.bytesIn.Add(uint64(len(ev.frame)))
	if ch.cfg.Handler != nil {
		ch.cfg.Handler(from, ev)
		return
	}
	ch.SendEvent(ev, from)
}

// Send queues frame for every client of the channel except `except`
// (which may be nil). Frames from one caller reach each client in the
// order of the calls.
func (ch *Channel) Send(frame []byte, except *Conn) {
	e := NewEvent(frame)
	ch.SendEvent(&e, except)
}

// SendEvent is Send for an event that may go to several channels: the
// JSON text form that e keeps is made at most once, for the first JSON
// client that hears it, on whichever channel. Each queue that takes a
// pooled frame holds its own reference to the buffer. A client that
// declared what it listens to gets e only if it wants it (Conn.wantsBy);
// the others are counted as filtered, and e neither costs their queue
// nor holds its publisher for them.
func (ch *Channel) SendEvent(e *Event, except *Conn) {
	kept := ch.retain(e) // holds the ring's lock until the event is fanned out
	var filtered uint64
	if a := ch.audienceOf(e); a != nil {
		filtered = a.sendTo(ch, e, except)
	} else {
		filtered = ch.sendEach(e, except)
	}
	if kept {
		ch.ring.mu.Unlock()
	}
	if filtered > 0 {
		ch.filtered.Add(filtered)
	}
}

// ClientInfos describes the channel's connected clients: those whose
// protocol is known.
func (ch *Channel) ClientInfos() []ClientInfo {
	list := ch.receiverList()
	out := make([]ClientInfo, 0, len(list))
	for _, c := range list {
		if !c.removed.Load() && c.mode.Load() != modeUndecided {
			out = append(out, c.Info())
		}
	}
	return out
}

// Quiesce stops accepting clients, removes the socket file and stops
// reading from the clients, so that no new event enters through this
// channel; it returns once every event already read has been handed to
// the Handler. The clients that Drain asked to stop are read up to their
// answer first (for at most drainTimeout). Clients still get what is
// queued for them until Shutdown.
func (ch *Channel) Quiesce() {
	ch.stopAccept.Do(func() {
		ch.stopAccepting()
		ch.drainOnce.Do(func() {}) // a Drain from now on would be answered to nobody
		ch.mu.Lock()
		conns := ch.connsLocked()
		for nc := range ch.refusing {
			nc.SetReadDeadline(time.Unix(1, 0))
		}
		ch.mu.Unlock()
		awaitDrained(conns)
		past := time.Unix(1, 0)
		for _, c := range conns {
			c.nc.SetReadDeadline(past)
		}
		ch.readers.Wait()
	})
}

// Shutdown quiesces the channel, then writes to each client what is
// queued for it followed by an error frame that says why, and closes it.
// When ctx ends first, the remaining clients are closed at once. It
// returns when every goroutine of the channel has ended: nil, or ctx's
// error if it cut the flush short. code and reason go into the error
// frame (wire.CodeShutdown, wire.CodeChannelGone).
func (ch *Channel) Shutdown(ctx context.Context, code wire.ErrorCode, reason string) error {
	ch.shutOnce.Do(func() {
		if ctx.Err() == nil {
			ch.Drain()
		}
		ch.Quiesce()
		ch.mu.Lock()
		conns := ch.connsLocked()
		ch.mu.Unlock()
		for _, c := range conns {
			c.finish(slog.LevelDebug, code, reason, 0)
		}
		done := make(chan struct{})
		go func() { ch.wg.Wait(); close(done) }()
		select {
		case <-done:
		case <-ctx.Done():
			ch.shutdownErr = ctx.Err()
			for _, c := range conns {
				c.kill(slog.LevelWarn, "shutdown deadline passed before its queue was written")
			}
			<-done
		}
		ch.releaseRing()
	})
	return ch.shutdownErr
}

// Close closes the channel and all its clients at once.
func (ch *Channel) Close() error {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	ch.Shutdown(ctx, wire.CodeShutdown, "server shutting down")
	return nil
}
