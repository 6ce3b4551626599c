package natslink

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"math/bits"
	"math/rand/v2"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go"
	"github.com/netcluster/netcluster/internal/gate"
	"github.com/netcluster/netcluster/internal/wire"
)

// Errors of Publish.
var (
	// ErrDropped: the connection is down and its buffer is full (or,
	// the connection back, the buffer has not drained for a while).
	ErrDropped = errors.New("natslink: the buffer for NATS is full: event dropped")
	// ErrClosed: the link is closed.
	ErrClosed = errors.New("natslink: link closed")
)

// Config sets up a link. URL is required; the zero value of every other
// field is usable.
type Config struct {
	// URL lists the NATS servers, joined by ",".
	URL string
	// Authentication: at most one of User (with Password), Token,
	// NKeyFile (an nkey seed file) and CredsFile.
	User, Password, Token string
	NKeyFile, CredsFile   string
	// TLS: CA checks the servers' certificates; Cert and Key are the
	// client's. Files.
	CA, Cert, Key string
	// Prefix begins every subject; "" means "netcluster".
	Prefix string
	// Cluster is the cluster name, a token of every subject.
	Cluster string
	// Name is the connection's name.
	Name string
	// Node is this server's node id: its subject for replies, and the
	// origin of the messages the link ignores as its own.
	Node uuid.UUID
	// Buffer bounds what is kept while disconnected, and until the peers
	// are heard again (outage), in bytes; 0 keeps nothing.
	Buffer int
	// Pack sends the events of channels in packs (HeaderPack): the
	// events that come while the previous pack is sent go together, in
	// one message. Whether or not it is set, the link reads packs.
	Pack bool
	// JetStream takes the channels' events from a durable consumer
	// (named Durable; "" is the host name) of a stream that keeps them
	// for MaxAge, up to MaxBytes, instead of plain subscriptions.
	JetStream bool
	MaxAge    time.Duration
	MaxBytes  int
	Durable   string
	// CatchUp delays the first delivery from the consumer, so that what
	// was missed reaches clients that are reconnecting.
	CatchUp time.Duration
	// ReconnectWait is the pause between two rounds of connection
	// attempts; 0 means 1 s.
	ReconnectWait time.Duration
	// WriteTimeout bounds a write to the connection; 0 means 10 s. A
	// NATS server, or a path to it, that takes nothing for that long
	// (the kernel's buffers full) fails the write: nats.go drops the
	// connection and reconnects, and what it had not written yet is
	// lost (receivers count it in Stats.MissedIn), while what comes
	// after waits in the buffer (Buffer). Until then, publishers wait
	// for the write, and so does Close.
	WriteTimeout time.Duration
	// Heartbeat is how often the link announces the server; 0 means 1 s.
	// PeerTimeout is how long a silent peer stays in Peers; 0 means 5 s.
	// It is also how often the link pings the NATS server, within 5 s
	// and 2 min: one that has not answered two pings when the third is
	// due is left, and the link reconnects.
	Heartbeat, PeerTimeout time.Duration
	// Version is what heartbeats announce as the server's software.
	Version string
	// Channels, when set, returns the channels the heartbeats announce.
	Channels func() []string
	// PendingMsgs and PendingBytes bound what nats.go keeps for each
	// subscription of events (the channels' and the node's) while the
	// server delivers an earlier one; past them it drops (counted in
	// Stats.DroppedIn). 0 keeps nats.go's defaults.
	PendingMsgs, PendingBytes int
	// Logger receives the link's logs; nil means slog.Default().
	Logger *slog.Logger
	// DeliverRun, when set, receives the events of a pack together, in
	// order, instead of one by one through Open's deliver: the events
	// and the slice are valid only during the call, their Frames are
	// the receiver's to keep (Event).
	DeliverRun func([]Event)
	// FlowControl holds the link's sending back to the pace of the
	// slowest server that reports taking its events (flow.go). Whether
	// or not it is set, the link reports what it takes to the senders.
	FlowControl bool
	// Held opens the link with its sending and its deliveries held:
	// Publish and PublishFrame wait until Release or Close, and what
	// its subscriptions take waits in nats.go's pending buffers. A
	// server that replaces its link opens the new one held, and
	// releases it once the old one has sent all it took and delivered
	// all its subscriptions took (CloseInto), so that no event overtakes
	// an earlier one across the swap, either way.
	Held bool

	// dialer, for the tests, dials the connections to NATS.
	dialer nats.CustomDialer
	// notAcked, for the tests, hears each message that nats.go reports
	// the stream did not acknowledge, on nats.go's goroutine, before the
	// link does (jsNotAcked): a test that holds it makes the report late.
	notAcked func(*nats.Msg, error)
	// handing, for the tests, runs in jsPublish as it hands a message
	// to nats.go.
	handing func()
	// lastCounted, for the tests, runs in CloseInto once the outage
	// buffer is counted for the last time, before the connection
	// closes.
	lastCounted func()
}

// pingInterval is how often the link pings the NATS server: PeerTimeout,
// within pingFloor and nats.go's default, 2 min. A server that stops
// answering is left after two to three of them without an answer,
// where nats.go's default leaves it after four to six minutes, while
// everything published meanwhile is lost.
func (c *Config) pingInterval() time.Duration {
	return min(max(c.PeerTimeout, pingFloor), 2*time.Minute)
}

// pingFloor is the shortest pingInterval. A NATS server answers a ping
// once it has read what came before it: a busy server, or a long path,
// answers late, and leaving it for that would drop a healthy
// connection. While the link writes, WriteTimeout notices a server that
// takes nothing; pings are for the quiet times. The tests lower it.
var pingFloor = 5 * time.Second

// DefaultWriteTimeout is Config.WriteTimeout's default: a sixth of
// nats.go's own (a minute), as long as nats-server gives a client that
// takes nothing (its write_deadline).
const DefaultWriteTimeout = 10 * time.Second

// Event is an event as it crosses NATS. Data is one msgpack value. The
// Event the link delivers, Data included, is valid only during the call:
// the link reuses it for the next message.
type Event struct {
	Channel, Event             string
	ID, Origin, Sender, To, Re uuid.UUID
	Data                       []byte
	// Frame, set in an event the link delivers from a pack, is its Event
	// frame, length prefix included, and Header is parsed from it; Event
	// is then "" (Header.Event holds the name) and Data is Header.Data.
	// Unlike the Event, Frame is the receiver's to keep: the link never
	// writes to it again.
	Frame  []byte
	Header wire.EventHeader
	// Pack is the body of the pack that Frame lies in, with the frames
	// of the pack's other events one after the other; the receiver's to
	// keep, as Frame is.
	Pack []byte
}

// Link is a connection to NATS. Its methods are safe for concurrent use.
type Link struct {
	cfg     Config
	log     *slog.Logger
	nc      *nats.Conn
	deliver func(*Event)
	closed  chan struct{} // closed by nats.go's ClosedHandler

	// mu guards subs; deliverMu lets Close wait for a delivery under
	// way, and stops those that come after it.
	mu   sync.Mutex
	subs map[string]*nats.Subscription // channel -> its subscription
	// dropMu guards what droppedIn sums, apart from mu so that Stats
	// never waits for SetChannels: eventSubs are the subscriptions of
	// events (nodeSub, the node's subject, and the channels'), and
	// droppedGone is what the ones unsubscribed since had dropped past
	// their pending limits.
	dropMu      sync.Mutex
	nodeSub     *nats.Subscription
	eventSubs   []*nats.Subscription
	droppedGone uint64
	deliverMu   sync.RWMutex
	closing     bool // Close has begun
	done        bool // nothing more is delivered

	pk  packer // with Config.Pack
	out outage // what waits while NATS is away
	// statsRead reads the connection's figures for Stats.
	statsRead statsReader

	held gate.Gate // shut while the link's sending is held (Config.Held), until Release
	// inHeld holds the deliveries of a link opened held, as held holds
	// its sending: until the link it takes over from has delivered
	// what it took (CloseInto), and Release.
	inHeld gate.Gate
	// inStates are the states of the numbered subscriptions' handlers,
	// read when the link hands over to another; handed is, per subject
	// and epoch, the first number that the link this one took over from
	// did not deliver (handedFloors). Both under mu.
	inStates map[string]*inState // by subject
	handed   map[string]map[string]uint64

	pubMu     sync.Mutex
	pubClosed bool     // Close has begun: Publish returns ErrClosed
	pubMsg    nats.Msg // reused: nats.go copies it into its buffer, send into the outage buffer
	// subjects caches the subject of each channel published to, under
	// pubMu.
	subjects subjectCache
	// addressed is set while pubMsg holds the headers of a reply.
	addressed bool
	// origin and sender are the ids last published and their text: an
	// event's origin and sender repeat from one event to the next, its
	// id never does.
	origin, sender uuidText
	// epoch tells this link's numbering (HeaderSeq) from that of the
	// server's earlier links; passNumbering sets it before the link
	// sends, send reads it.
	epoch string

	peers peerTable
	js    jsState
	jsOut jsOut // with Config.JetStream: what the stream has yet to acknowledge
	stop  chan struct{}
	// stopCtx is cancelled as stop is closed: the requests to JetStream
	// (jsApply, jsReset, jsLag) end with it, rather than hold Close for
	// their timeouts when NATS went away as they were asked.
	stopCtx    context.Context
	cancelStop context.CancelFunc
	wg         sync.WaitGroup

	fin  flowIn  // what this link takes, reported to the senders
	fout flowOut // with Config.FlowControl: what the receivers take
	// flowStop is closed as Close begins: publishers stop waiting for
	// receivers (flowWait).
	flowStop                           chan struct{}
	flowHeld, flowHeldNs, flowExcluded atomic.Uint64
	reportsOut, reportsIn              atomic.Uint64

	// dropping is set from the first drop of a disconnected episode to
	// the next reconnect: one log per episode.
	dropping atomic.Bool
	// slowLogged is when drops past the pending limits were last logged
	// (asyncError), in Unix nanoseconds; 0 before the first.
	slowLogged atomic.Int64
	// missedLogged is when events missing from the numbering were last
	// logged (gap), as slowLogged.
	missedLogged atomic.Int64
	// downSince is when the connection was lost, or the link opened, in
	// Unix nanoseconds; 0 once it is connected (DownSince).
	downSince atomic.Int64
	// lostAt is when nats.go last refused a message of the outage
	// buffer as its connection was lost, in Unix nanoseconds; 0 since it
	// connected again (up). See connected.
	lostAt                                  atomic.Int64
	failures                                atomic.Uint64 // connection attempts failed in a row
	failed                                  atomic.Uint64 // publications failed, for the log
	eventsOut, eventsIn, dropped, malformed atomic.Uint64
	missed                                  atomic.Uint64 // Stats.MissedIn
}

// Open connects to NATS, or starts connecting in the background when no
// server answers yet: events published meanwhile wait in the buffer.
// deliver receives every event from NATS of a channel that SetChannels
// named, and every reply addressed to this node, but never an event
// whose origin is this node.
func Open(cfg Config, deliver func(*Event)) (*Link, error) {
	if cfg.Prefix == "" {
		cfg.Prefix = "netcluster"
	}
	cfg.Heartbeat = cmpOr(cfg.Heartbeat, time.Second)
	cfg.PeerTimeout = cmpOr(cfg.PeerTimeout, 5*time.Second)
	cfg.ReconnectWait = cmpOr(cfg.ReconnectWait, time.Second)
	cfg.WriteTimeout = cmpOr(cfg.WriteTimeout, DefaultWriteTimeout)
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	l := &Link{cfg: cfg, log: cfg.Logger, deliver: deliver, closed: make(chan struct{}),
		subs: make(map[string]*nats.Subscription), stop: make(chan struct{}), inStates: make(map[string]*inState),
		peers: peerTable{peers: make(map[uuid.UUID]*Peer)}, epoch: fmt.Sprintf("%016x", rand.Uint64()),
		flowStop: make(chan struct{})}
	l.stopCtx, l.cancelStop = context.WithCancel(context.Background())
	l.fin = flowIn{from: make(map[flowKey]*inbound), left: make(map[string]bool),
		now: make(chan struct{}, 1), soon: make(chan struct{}, 1)}
	l.fout = flowOut{epoch: l.epoch, subjects: make(map[string]*flowSubject)}
	if cfg.Held {
		l.held.Shut()
		l.inHeld.Shut()
	}
	l.out.kick = make(chan struct{}, 1)
	l.js.order.wait = jsReorderWait
	// Before Connect: its handlers kick the consumer, and put back what
	// is in flight to the stream.
	l.js.kick = make(chan struct{}, 1)
	if cfg.JetStream {
		l.jsOut.init()
	}
	l.js.reset = true
	l.js.held = cfg.JetStream && cfg.CatchUp > 0
	l.js.swapping.Store(cfg.JetStream && cfg.Held)
	opts, err := l.options()
	if err != nil {
		return nil, err
	}
	l.down() // until the connect handler (up)
	nc, err := nats.Connect(cfg.URL, opts...)
	if err != nil {
		return nil, fmt.Errorf("natslink: connecting to %s: %w", cfg.URL, err)
	}
	l.nc = nc
	l.pubMsg.Header = nats.Header{}
	if cfg.JetStream {
		if err := l.jsOpenPublisher(); err != nil {
			l.Close()
			return nil, err
		}
	}
	sub, err := nc.Subscribe(NodeSubject(cfg.Prefix, cfg.Cluster, cfg.Node), l.receive(true, nil)) // replies are not numbered
	if err != nil {
		l.Close()
		return nil, fmt.Errorf("natslink: subscribing: %w", err)
	}
	l.setPendingLimits(sub)
	l.dropMu.Lock()
	l.nodeSub = sub
	l.eventSubs = append(l.eventSubs, sub)
	l.dropMu.Unlock()
	if _, err := nc.Subscribe(hbSubject(cfg.Prefix, cfg.Cluster), l.heard); err != nil {
		l.Close()
		return nil, fmt.Errorf("natslink: subscribing: %w", err)
	}
	if cfg.FlowControl {
		if _, err := nc.Subscribe(FlowSubject(cfg.Prefix, cfg.Cluster, cfg.Node), l.heardReport); err != nil {
			l.Close()
			return nil, fmt.Errorf("natslink: subscribing: %w", err)
		}
	}
	if !nc.IsConnected() {
		l.log.Warn("NATS is not reachable yet: connecting in the background", "url", redactURL(cfg.URL))
	}
	l.wg.Add(3)
	go l.beat()
	go l.outageLoop()
	go l.reportLoop()
	if cfg.JetStream {
		l.wg.Add(1)
		go l.jsLoop()
	}
	if cfg.Pack {
		l.pk.init(l.packLimit())
		l.wg.Add(1)
		go l.packLoop()
	}
	return l, nil
}

func cmpOr(d, def time.Duration) time.Duration {
	if d <= 0 {
		return def
	}
	return d
}

// options are the nats.go options of cfg.
func (l *Link) options() ([]nats.Option, error) {
	cfg := l.cfg
	opts := []nats.Option{
		nats.Name(cfg.Name), nats.NoEcho(), nats.RetryOnFailedConnect(true), nats.MaxReconnects(-1),
		nats.ReconnectWait(cfg.ReconnectWait), nats.ReconnectBufSize(natsPending), nats.FlusherTimeout(cfg.WriteTimeout),
		nats.PingInterval(cfg.pingInterval()), nats.MaxPingsOutstanding(2),
		nats.ConnectHandler(func(nc *nats.Conn) {
			l.up()
			l.jsKick()
			l.failures.Store(0)
			l.log.Info("connected to NATS", "server", nc.ConnectedUrlRedacted())
		}),
		nats.DisconnectErrHandler(func(nc *nats.Conn, err error) {
			l.down()
			l.jsLost()
			if nc.IsClosed() {
				// Close closed it: nothing is sent again, and
				// nothing reconnects.
				return
			}
			l.log.Warn("disconnected from NATS: reconnecting; events wait in the buffer", "err", err, "buffer", cfg.Buffer)
			// Here, and not only as nats.go's publisher reports
			// them failed, which may come after the reconnection
			// (jsSendAgain).
			if cfg.JetStream {
				l.jsSendAgain(nil)
			}
		}),
		nats.ReconnectErrHandler(func(_ *nats.Conn, err error) {
			// The 1st, 2nd, 4th, 8th... failure: a NATS server that
			// stays away must not flood the log.
			if n := l.failures.Add(1); bits.OnesCount64(n) == 1 {
				l.log.Warn("connecting to NATS failed; trying again", "url", redactURL(cfg.URL), "attempts", n, "err", err)
			}
		}),
		nats.ReconnectHandler(func(nc *nats.Conn) {
			l.up()
			l.jsKick()
			l.failures.Store(0)
			l.log.Info("reconnected to NATS", "server", nc.ConnectedUrlRedacted())
		}),
		nats.ClosedHandler(func(*nats.Conn) { close(l.closed) }),
		nats.ErrorHandler(l.asyncError),
	}
	switch {
	case cfg.User != "":
		opts = append(opts, nats.UserInfo(cfg.User, cfg.Password))
	case cfg.Token != "":
		opts = append(opts, nats.Token(cfg.Token))
	case cfg.NKeyFile != "":
		o, err := nats.NkeyOptionFromSeed(cfg.NKeyFile)
		if err != nil {
			return nil, fmt.Errorf("natslink: nkeyfile: %w", err)
		}
		opts = append(opts, o)
	case cfg.CredsFile != "":
		if _, err := os.Stat(cfg.CredsFile); err != nil {
			return nil, fmt.Errorf("natslink: credsfile: %w", err)
		}
		opts = append(opts, nats.UserCredentials(cfg.CredsFile))
	}
	if cfg.dialer != nil {
		opts = append(opts, nats.SetCustomDialer(cfg.dialer))
	}
	if cfg.CA != "" {
		opts = append(opts, nats.RootCAs(cfg.CA))
	}
	if cfg.Cert != "" {
		opts = append(opts, nats.ClientCert(cfg.Cert, cfg.Key))
	}
	return opts, nil
}

// up notes a connection: the outage buffer may be sent, once the peers
// are heard again (outageLoop), and publishers wait for room in it.
// Drops are logged again from the next outage on; while the buffer is
// still held, this one goes on.
func (l *Link) up() {
	l.downSince.Store(0)
	l.lostAt.Store(0)
	l.out.mu.Lock()
	l.out.told = false
	if !l.out.holding {
		l.dropping.Store(false)
	}
	l.out.drained() // the buffer goes soon: its publishers wait for it
	l.out.mu.Unlock()
	select {
	case l.out.kick <- struct{}{}:
	default:
	}
}

// down notes that the connection is lost, unless it was already.
func (l *Link) down() { l.downSince.CompareAndSwap(0, time.Now().UnixNano()) }

// DownSince is when the link lost its connection to NATS, or opened
// without one; zero while it is connected.
func (l *Link) DownSince() time.Time {
	if ns := l.downSince.Load(); ns != 0 {
		return time.Unix(0, ns)
	}
	return time.Time{}
}

// JetStreamLag is what the JetStream consumer has yet to deliver, as
// last asked (Stats.JetStreamLag), without asking for the connection's
// figures as Stats does.
func (l *Link) JetStreamLag() uint64 { return l.js.lag.Load() }

// redactURL drops the user information from URLs for logs.
func redactURL(urls string) string {
	var out []string
	for _, u := range strings.Split(urls, ",") {
		if at := strings.LastIndex(u, "@"); at >= 0 {
			scheme, _, _ := strings.Cut(u, "://")
			u = scheme + "://(redacted)@" + u[at+1:]
		}
		out = append(out, u)
	}
	return strings.Join(out, ",")
}

// SetChannels makes the link deliver the events of exactly the channels
// named, subscribing and unsubscribing as needed.
func (l *Link) SetChannels(names []string) {
	if l.cfg.JetStream {
		l.jsSetChannels(names)
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	want := make(map[string]bool, len(names))
	for _, name := range names {
		want[name] = true
		if l.subs[name] != nil {
			continue
		}
		subject := Subject(l.cfg.Prefix, l.cfg.Cluster, name)
		st := &inState{seen: seqSeen{}}
		sub, err := l.nc.Subscribe(subject, l.receive(false, st))
		if err != nil {
			l.log.Warn("subscribing to a channel on NATS failed", "channel", name, "err", err)
			continue
		}
		// What a slow delivery leaves waiting is bounded by nats.go's
		// pending limits; past them nats.go drops (Stats.DroppedIn) and
		// asyncError logs.
		l.setPendingLimits(sub)
		l.subs[name] = sub
		l.inStates[subject] = st // read when the link hands over (drainInto)
		l.fin.mu.Lock()
		delete(l.fin.left, sub.Subject) // reported again
		l.fin.mu.Unlock()
	}
	l.dropMu.Lock()
	var gone []string
	for name, sub := range l.subs {
		if !want[name] {
			if n, err := sub.Dropped(); err == nil {
				l.droppedGone += uint64(n)
			}
			sub.Unsubscribe()
			delete(l.subs, name)
			delete(l.inStates, sub.Subject)
			gone = append(gone, sub.Subject)
		}
	}
	l.eventSubs = append(l.eventSubs[:0], l.nodeSub)
	for _, sub := range l.subs {
		l.eventSubs = append(l.eventSubs, sub)
	}
	l.dropMu.Unlock()
	if len(gone) > 0 {
		l.sayBye(gone...) // their senders stop waiting for this server
	}
	// Once the server has the subscriptions, what is published after
	// SetChannels returns is delivered. A link still connecting sends
	// them when it connects.
	if l.nc.IsConnected() {
		if err := l.nc.FlushTimeout(5 * time.Second); err != nil {
			l.log.Debug("NATS did not confirm the subscriptions", "err", err)
		}
	}
}

// Publish sends an event on its channel's subject, or, when ev.To is
// set, on the subject of node, the asker's server.
func (l *Link) Publish(ev *Event, node uuid.UUID) error {
	l.held.Wait(l.stop) // a closing link refuses the event below
	l.pubMu.Lock()
	if l.pubClosed {
		l.pubMu.Unlock()
		return ErrClosed
	}
	m := &l.pubMsg
	out := l.subjects.of(&l.cfg, ev.Channel)
	m.Subject, m.Data = out.subject, ev.Data
	h := m.Header
	if l.addressed {
		for _, k := range [...]string{HeaderTo, HeaderRe, HeaderChannel} {
			delete(h, k)
		}
		l.addressed = false
	}
	if setHeaders(h, ev, l.origin.of(ev.Origin), l.sender.of(ev.Sender)) {
		m.Subject = NodeSubject(l.cfg.Prefix, l.cfg.Cluster, node)
		l.addressed = true
		out = nil // replies are not numbered
	}
	err := l.send(m, 1, out)
	m.Data = nil
	l.pubMu.Unlock()
	return err
}

// setHeaders writes ev's headers on h, as decode reads them; origin and
// sender are ev's ids as text. A reply (ev.To set) also gets its
// addressee, the request it answers and its channel, and setHeaders
// reports true: it goes on the asker's node subject.
func setHeaders(h nats.Header, ev *Event, origin, sender string) (reply bool) {
	setHeader(h, HeaderEvent, ev.Event)
	setHeader(h, HeaderID, ev.ID.String())
	setHeader(h, HeaderOrigin, origin)
	setHeader(h, HeaderSender, sender)
	if ev.To == uuid.Nil {
		return false
	}
	setHeader(h, HeaderTo, ev.To.String())
	setHeader(h, HeaderRe, ev.Re.String())
	setHeader(h, HeaderChannel, ev.Channel)
	return true
}

// setSeq sets the HeaderSeq of a message of events on out's subject, in
// buf, with the link's epoch; or removes it when the subject's events are
// not numbered (out nil, or out.loose). send adds the message's events to
// out.sent once NATS took it, or the link kept it: an event that nats.go
// refused is counted dropped by this server, not missed by the others.
func setSeq(h nats.Header, buf *[]byte, epoch string, out *subjectOut) {
	if out == nil || out.loose {
		delete(h, HeaderSeq)
		return
	}
	b := append((*buf)[:0], epoch...)
	b = append(b, '.')
	b = strconv.AppendUint(b, out.sent+1, 10)
	*buf = b
	setHeader(h, HeaderSeq, string(b))
}

// passNumbering makes next, which takes over from l and sends nothing
// yet, go on with l's numbering (HeaderSeq): the same epoch, and, on
// each channel's subject, the numbers after l's last. The swap keeps the
// order of the events, so a receiver sees one numbering across it, and
// counts what goes missing in it; and does not learn a new epoch at
// every reload.
func (l *Link) passNumbering(next *Link) {
	next.pubMu.Lock()
	defer next.pubMu.Unlock()
	next.out.mu.Lock()
	defer next.out.mu.Unlock()
	next.epoch = l.epoch
	next.fout.mu.Lock()
	next.fout.epoch = l.epoch
	next.fout.mu.Unlock()
	to := &next.subjects
	if next.cfg.Pack {
		to = &next.pk.subjects // the pack loop's, which waits for Release
	}
	for _, from := range []*subjectCache{&l.subjects, &l.pk.subjects} {
		for channel, out := range from.m {
			if out.sent > 0 {
				if o := to.of(&next.cfg, channel); !o.loose {
					o.sent = out.sent
				}
			}
		}
	}
}

// subjectCache keeps the subjects of the channels published to, up to
// maxSubjects, with the number of events sent on each; its owner
// serializes its use.
type subjectCache struct{ m map[string]*subjectOut }

// subjectOut is a channel's subject and how many events the link sent
// on it (HeaderSeq). A subject past maxSubjects is made for each
// message (loose), and its events are not numbered. flow is its flow
// control (Config.FlowControl), set at its first message.
type subjectOut struct {
	subject string
	sent    uint64
	loose   bool
	flow    *flowSubject
}

// of returns the subject of channel.
func (c *subjectCache) of(cfg *Config, channel string) *subjectOut {
	out := c.m[channel]
	if out == nil {
		out = &subjectOut{subject: Subject(cfg.Prefix, cfg.Cluster, channel)}
		if c.m == nil {
			c.m = make(map[string]*subjectOut)
		}
		if len(c.m) < maxSubjects {
			c.m[channel] = out
		} else {
			out.loose = true
		}
	}
	return out
}

// maxSubjects bounds the cache of subjects.
const maxSubjects = 4096

// uuidText is a uuid and its text, made once for a run of events that
// carry the same uuid.
type uuidText struct {
	id   uuid.UUID
	text string
}

// of returns the text of id, making it only when id is not the last one.
func (t *uuidText) of(id uuid.UUID) string {
	if t.text == "" || t.id != id {
		t.id, t.text = id, id.String()
	}
	return t.text
}

// setHeader sets the one value of key in h, reusing its slice.
func setHeader(h nats.Header, key, value string) {
	if v := h[key]; len(v) == 1 {
		v[0] = value
		return
	}
	h[key] = []string{value}
}

// Release lets a link opened with Config.Held send and deliver. It is
// idempotent.
func (l *Link) Release() {
	l.inHeld.Open()
	l.held.Open()
	if l.js.swapping.Swap(false) {
		l.jsKick()
	}
}

// StopDelivering ends the link's deliveries and leaves it sending: a
// server that stops calls it before it reads the last events its
// clients wrote, which must still go out, and Close after them. With
// JetStream it first delivers what the consumer took already (jsStop),
// and makes no consumer again. The senders it reports to stop waiting
// for it (sayBye). It is idempotent.
func (l *Link) StopDelivering() {
	l.js.mu.Lock()
	l.js.stopped = true
	l.js.mu.Unlock()
	l.jsStop(false)
	l.deliverMu.Lock()
	l.done = true
	l.deliverMu.Unlock()
	l.sayBye()
}

// Close leaves NATS. From its start on, Publish and PublishFrame return
// ErrClosed and send nothing; what they took before it is sent, and, when
// connected, NATS has confirmed taking it by the time Close returns (a
// link that takes over from this one sends after that, and keeps the
// order). Once it returns, nothing more is delivered; it is
// idempotent. With JetStream it first delivers what the consumer took
// already (jsStop), so deliver must still work when Close is called,
// unless StopDelivering was. The events it kept while disconnected
// (outage) are dropped and counted; CloseInto hands them over instead.
func (l *Link) Close() { l.CloseInto(nil) }

// CloseInto closes l as Close does, but first, when next is not nil
// (and l has no JetStream), lets l's subscriptions deliver what they
// took (drainInto). When next, the link that takes
// over from it, sends on the same subjects (Prefix and Cluster), next
// goes on with l's numbering (passNumbering), and gets the events l kept
// while disconnected, if it is (a reload that swaps the link while NATS
// is away): next sends them first, once it is connected and has heard
// the peers l was waiting for. What does not fit
// next's buffer is dropped and counted in l's Stats.Dropped. next must be
// held (Config.Held) until CloseInto returns. next nil is Close.
func (l *Link) CloseInto(next *Link) {
	start := time.Now()
	l.deliverMu.Lock()
	if l.closing {
		l.deliverMu.Unlock()
		return
	}
	l.closing = true
	l.deliverMu.Unlock()
	if next != nil && !l.cfg.JetStream {
		l.drainInto(next)
	}
	close(l.flowStop) // a publisher waiting for a receiver holds pubMu
	l.pubMu.Lock()
	l.pubClosed = true
	l.pubMu.Unlock()
	close(l.stop)
	l.cancelStop()
	l.wg.Wait()
	// next consumes the same durable once released: it waits for what
	// this link's pull requests lost, as this link would have, and what
	// this link holds past a gap comes to it again, after the gap.
	sameDurable := next != nil && l.cfg.JetStream && next.cfg.JetStream && next.durableName() == l.durableName() &&
		next.cfg.Prefix == l.cfg.Prefix && next.cfg.Cluster == l.cfg.Cluster
	l.jsStop(sameDurable)
	if sameDurable {
		l.js.order.handOver(&next.js.order)
		l.jsHandCounter(next)
	}
	l.deliverMu.Lock()
	l.done = true
	l.deliverMu.Unlock()
	// A link opened held and closed before Release (a reload that was
	// not applied after all) never took over: the link of the same
	// node that goes on is the one the others hear, and must not be
	// told gone.
	if l.held.Opened() {
		l.sayBye()
		if next == nil || next.cfg.Prefix != l.cfg.Prefix || next.cfg.Cluster != l.cfg.Cluster {
			l.sayLeaving()
		}
	}
	if l.jsOut.js != nil {
		l.jsStopRetrying()
	}
	if l.nc.IsConnected() {
		// What the outage buffer holds goes now, without waiting for
		// the peers: a link that takes over sends after this one.
		l.release(false)
		// The events, the acknowledgements and the Naks. At a swap, what
		// the publishers sent while drainInto waited is confirmed only
		// here: the link that takes over sends after it, and may
		// overtake what is still on its way once the wait is over.
		wait := closeFlushWait
		if left := time.Until(start.Add(swapDrainWait)); next != nil && left > wait {
			wait = left
		}
		if err := l.nc.FlushTimeout(wait); err != nil {
			msg := "NATS did not confirm the last messages of the closing NATS link in time: they may still arrive, or be lost"
			if next != nil {
				msg = "NATS did not confirm the last messages of the NATS link a reload replaces in time: the new link's may overtake them"
			}
			l.log.Warn(msg, "waited", wait, "error", err)
		}
		l.jsAllAcked()
	}
	if next != nil && next.cfg.Prefix == l.cfg.Prefix && next.cfg.Cluster == l.cfg.Cluster {
		l.passNumbering(next)
		if n := l.handOver(next); n > 0 {
			l.log.Info("the NATS link closes while disconnected: the events waiting in its buffer go to the link that takes over", "events", n)
		}
	}
	if n := l.dropKeptForGood(); n > 0 {
		l.dropped.Add(uint64(n))
		l.log.Warn("the NATS link closes while disconnected: the events waiting in its buffer are dropped", "events", n)
	}
	if l.cfg.lastCounted != nil {
		l.cfg.lastCounted()
	}
	l.nc.Close()
	l.closeStats()
	select {
	case <-l.closed:
	case <-time.After(5 * time.Second):
	}
}

// closeFlushWait bounds how long Close waits for NATS to confirm the
// link's last messages; CloseInto, at a swap, waits for it until
// swapDrainWait from its start, and at least closeFlushWait.
const closeFlushWait = time.Second

// swapDrainWait bounds how long CloseInto waits for the subscriptions
// to deliver what they took before a swap.
const swapDrainWait = 5 * time.Second

// drainInto ends l's subscriptions, the node's and the channels', and
// waits (for at most swapDrainWait) until they have delivered what they
// took: next subscribed before, so nothing is missed, and the messages
// both took are those after next subscribed. Then, when next hears the
// same subjects, it tells next up to which number of each sender's
// epoch l delivered, so that next drops the messages l delivered
// already and delivers the rest, in order: next is held (Config.Held)
// until then. What is not delivered by then is dropped, counted in
// Stats.DroppedIn and logged. While l is disconnected its subscriptions
// cannot end (nats.go's drain waits for NATS to confirm it), and nothing
// more comes to them: the wait ends once they have delivered what they
// hold.
func (l *Link) drainInto(next *Link) {
	l.mu.Lock()
	subs := make([]*nats.Subscription, 0, len(l.subs)+1)
	for _, sub := range l.subs {
		subs = append(subs, sub)
	}
	l.mu.Unlock()
	l.dropMu.Lock()
	if l.nodeSub != nil {
		subs = append(subs, l.nodeSub)
	}
	l.dropMu.Unlock()
	for _, sub := range subs {
		sub.Drain() // an error leaves the subscription as it is: counted below
	}
	for deadline := time.Now().Add(swapDrainWait); ; time.Sleep(time.Millisecond) {
		left, held := 0, 0
		for _, sub := range subs {
			if sub.IsValid() {
				left++
				// nats.go counts a message pending until its
				// handler has returned.
				if n, _, err := sub.Pending(); err == nil {
					held += n
				}
			}
		}
		if left == 0 || held == 0 && !l.nc.IsConnected() {
			break
		}
		if time.Now().After(deadline) {
			var lost uint64
			for _, sub := range subs {
				if n, _, err := sub.Pending(); err == nil && n > 0 {
					lost += uint64(n)
				}
			}
			l.dropMu.Lock()
			l.droppedGone += lost
			l.dropMu.Unlock()
			l.log.Warn("the NATS link that a reload replaces did not deliver all it had taken in time: the rest is dropped",
				"messages", lost, "waited", swapDrainWait)
			break
		}
	}
	if next.cfg.Prefix != l.cfg.Prefix || next.cfg.Cluster != l.cfg.Cluster {
		return
	}
	handed := make(map[string]map[string]uint64)
	l.mu.Lock()
	states := maps.Clone(l.inStates)
	l.mu.Unlock()
	for subject, st := range states {
		st.mu.Lock()
		if len(st.seen) > 0 {
			handed[subject] = maps.Clone(map[string]uint64(st.seen))
		}
		st.mu.Unlock()
	}
	next.mu.Lock()
	next.handed = handed
	next.mu.Unlock()
}

// handedFloors returns, for the handler of subject, the first number of
// each epoch that the link this one took over from did not deliver.
func (l *Link) handedFloors(subject string) map[string]uint64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return maps.Clone(l.handed[subject])
}

// Connected reports whether the link is connected to a NATS server now.
func (l *Link) Connected() bool { return l.nc.IsConnected() }
