package multicast

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	"github.com/netcluster/netcluster/internal/gate"
	"golang.org/x/net/ipv4"
)

// Errors of a Link.
var (
	// ErrClosed reports a Send on a closed link.
	ErrClosed = errors.New("multicast: link closed")
	// ErrTooBig reports a message over Config.MaxMessage.
	ErrTooBig = errors.New("multicast: message too big")
	// ErrQueueFull reports a message dropped because the send queue
	// stayed full for Config.SendWait.
	ErrQueueFull = errors.New("multicast: send queue full")
)

// Config describes a link. Zero values take the defaults shown.
type Config struct {
	Group     netip.Addr // the IPv4 multicast group
	Port      int        // its UDP port
	Interface string     // the interface by name; "" picks the only candidate (see ChooseInterface)
	TTL       int        // multicast time-to-live, used as given: 1 keeps datagrams on the local network
	Cluster   string     // datagrams of other clusters are ignored
	Node      uuid.UUID  // this node's id, which must not be zero; its own datagrams are ignored by it
	// Payload is the largest datagram sent, headers included,
	// MinPayload..MaxPayload; 0 means DefaultPayload.
	Payload int
	// Heartbeat is how often the node announces itself; 0 means 1 s.
	Heartbeat time.Duration
	// PeerTimeout is how long a silent peer stays in the table; 0 means
	// 5 heartbeats.
	PeerTimeout time.Duration
	// MaxMessage bounds a message's size, sent or received; 0 means 1 MiB.
	MaxMessage int
	// MaxReassembly bounds the bytes held for incomplete messages; 0 means
	// 4 times MaxMessage.
	MaxReassembly int
	// ReassemblyTimeout is how long an incomplete message is kept; 0
	// means 5 s.
	ReassemblyTimeout time.Duration
	// Channels lists the channels the node serves, for its heartbeats;
	// nil announces none.
	Channels func() []string
	// Version is the software version heartbeats announce.
	Version string
	// Logger receives the link's logs; nil means slog.Default().
	Logger *slog.Logger
	// Dump logs every datagram received, in a readable form.
	Dump bool
	// SendQueue bounds the bytes of the messages that Send has queued and
	// the writer has not written yet, each charged 64 bytes more; 0 means
	// 1 MiB. A message is always taken into an empty queue, whatever its
	// size.
	SendQueue int
	// SendWait is how long Send waits for room in a full send queue
	// before it drops the message with ErrQueueFull. The wait slows a
	// publisher down to what the link can send, and to what its
	// receivers can take (flow control), as a blocking socket would. 0
	// means PeerTimeout plus one Heartbeat: longer than flow control
	// waits for a stopped receiver before it leaves it out, so that a
	// stopped host slows publishers but makes none drop. A negative
	// value drops at once.
	SendWait time.Duration
	// Key, when not empty, is the cluster's shared secret: every datagram
	// sent is sealed with a key derived from it (see Sealer), and every
	// datagram received must be sealed with the same secret, and not be a
	// replay, or it is dropped and counted (Stats.Unsealed, Forged,
	// Replayed). Empty sends and takes unsealed datagrams only, and drops
	// sealed ones (Stats.Sealed). Sealing takes TagLen bytes of each
	// datagram's Payload. Since a sealed datagram's nonce is made of its
	// node id and sequence number, the node id must be new at every run,
	// and the links of one node must be opened from one Node. The link
	// keeps a copy.
	Key []byte

	// HistoryBytes bounds the history of the node that Open makes, in
	// bytes; 0 means DefaultHistory, a negative value keeps none (every
	// NAK is answered "gone", and receivers skip at once). Node.Open
	// ignores it: the Node's history serves.
	HistoryBytes int
	// GapTimeout is how long a receiver waits for a missing datagram of a
	// peer, NAKing it, before it skips it and counts it as lost; 0 means
	// DefaultGapTimeout.
	GapTimeout time.Duration
	// HoldPeer and HoldTotal bound the bytes of datagrams held because
	// they arrived ahead of a missing one, per peer and for all peers; 0
	// means DefaultHoldPeer and DefaultHoldTotal. When a bound is reached
	// the oldest gap is skipped.
	HoldPeer, HoldTotal int
	// RepairRate bounds the bytes per second of datagrams resent in
	// answer to NAKs; 0 means DefaultRepairRate.
	RepairRate int
	// FlowControl says which receivers hold the sender back (flow.go);
	// "" means FlowMin.
	FlowControl FlowControl
	// MaxRate, when not 0, bounds the bytes per second of every datagram
	// the link writes, data and repairs together; repairs get at most a
	// quarter of it (RepairRate still bounds them too), so that they
	// cannot starve new data.
	MaxRate int

	// Held opens the link with its sending held: Send waits until
	// Release or Close, and the writer leaves what is queued (the link's
	// first heartbeat) until Release; NAKs, repairs and statuses go out
	// meanwhile. The writer numbers datagrams as it writes them, so a
	// node that replaces a link opens the new one held and releases it
	// once the old one has written its queue: no message then overtakes
	// an earlier one in the node's stream, and every number the new
	// link gives follows all those of the old one, which the node's
	// history keeps only in increasing order (History.Add).
	Held bool

	// wrap, when set, wraps the link's socket: the seam where tests
	// shape what the network does.
	wrap func(socket) socket
}

// rcvBuf is the socket receive buffer a link asks for.
const rcvBuf = 4 << 20

// Link is a node's membership of a multicast group: it sends messages to
// the group and hands the messages it receives to its deliver function.
type Link struct {
	cfg     Config
	log     *slog.Logger
	ifi     *net.Interface
	sock    socket
	dst     netip.AddrPort
	cluster ClusterID
	host    string

	q      sendQueue
	seq    *atomic.Uint64 // numbers datagrams of stream 0; the writer goroutine adds to it
	ctlSeq *atomic.Uint64 // numbers datagrams of stream 1; the writer goroutine adds to it
	hist   *History
	flow   *flow      // the node's; nil in tests that build a link by hand
	rate   rateBucket // the writer's pacing (Config.MaxRate)
	// window is how many datagrams past its position in a peer's stream
	// this node says it can take, in its statuses (report.go).
	window  uint32
	status  statusState
	ctl     ctlQueue
	bucket  repairBucket
	kick    chan struct{} // capacity 1: a gap was found, arm the repair timer
	counts  *counters     // the node's: they go on across the links of a node
	stop    chan struct{}
	written chan struct{} // closed when the writer has ended
	held    gate.Gate     // shut until Release (Config.Held): Send waits, the writer sends stream 1 only
	wg      sync.WaitGroup
	closing sync.Once
	// handingOver is set by CloseInto: closing, the writer still waits
	// for the receivers' windows.
	handingOver atomic.Bool

	// rx is the node's receiving state, which the links of a node share
	// (rx.go); its fields read as the link's own.
	*rx
	// inTurn is handleInTurn, made once: the orderer calls the method of
	// the link that holds rx.mu.
	inTurn inTurnFunc

	sealer  *Sealer   // nil without a key
	payload int       // the room for headers and records in a datagram: Config.Payload less the tag when sealing
	sealing sealState // the read goroutine's
}

// Open joins the group on the configured interface and starts receiving.
// deliver is called with every data message received from another node
// of the cluster, once per message id, each node's in the order sent, one
// call at a time (on the read goroutine, or on the housekeeping one when
// a skipped gap releases what was held); msg is valid only during the
// call.
//
// The link is the only one of a node made for it (NewNode): a server
// that swaps links on a reload opens them from one Node instead.
func Open(cfg Config, deliver func(from uuid.UUID, msg []byte)) (*Link, error) {
	hb := cfg.HistoryBytes
	if hb == 0 {
		hb = DefaultHistory
	}
	return open(cfg, NewNode(cfg.Node, hb), deliver)
}

func open(cfg Config, node *Node, deliver func(from uuid.UUID, msg []byte)) (*Link, error) {
	if err := cfg.defaults(); err != nil {
		return nil, err
	}
	var sealer *Sealer
	if len(cfg.Key) > 0 {
		var err error
		if sealer, err = NewSealer(cfg.Key, cfg.Cluster); err != nil {
			return nil, err
		}
		cfg.Key = nil // the sealer holds it
	}
	ifi, err := ChooseInterface(cfg.Interface)
	if err != nil {
		return nil, err
	}
	conn, got, err := listen(&cfg, ifi)
	if err != nil {
		return nil, err
	}
	l := newLink(cfg, node, ifi, sealer, deliver)
	l.forgetStale(time.Now())
	l.window = receiveWindow(got, cfg.Payload, cfg.HoldPeer)
	node.flow.configure(cfg.FlowControl, cfg.PeerTimeout)
	l.sock = newSocket(conn, l.dst)
	if cfg.wrap != nil {
		l.sock = cfg.wrap(l.sock)
	}
	if sealer != nil {
		l.sock = &sealingSocket{socket: l.sock, s: sealer}
	}
	l.wg.Add(3)
	go func() {
		defer close(l.written)
		l.writeLoop()
	}()
	go l.readLoop()
	go l.housekeeping()
	return l, nil
}

// listen binds the group's port, joins the group on ifi and sets the
// socket's options.
func listen(cfg *Config, ifi *net.Interface) (*net.UDPConn, int, error) {
	group := net.IP(cfg.Group.AsSlice())
	lc := net.ListenConfig{Control: reuse}
	pc, err := lc.ListenPacket(context.Background(), "udp4", bindAddr(group, cfg.Port).String())
	if err != nil {
		return nil, 0, fmt.Errorf("multicast: binding port %d: %w", cfg.Port, err)
	}
	conn := pc.(*net.UDPConn)
	if err := setup(ipv4.NewPacketConn(conn), ifi, group, cfg.TTL); err != nil {
		conn.Close()
		return nil, 0, err
	}
	if !cfg.Dump { // dumpnet shows the node's own datagrams too
		if err := dropOwn(ipv4.NewPacketConn(conn), cfg.Node); err != nil {
			// Not on this system: the read loop ignores them instead.
			cfg.Logger.Debug("the multicast socket does not filter the node's own datagrams", "err", err)
		}
	}
	got, why := setReadBuffer(conn, rcvBuf)
	if why != "" {
		cfg.Logger.Warn("the multicast socket's receive buffer is smaller than asked: senders are held to less (flow control)",
			"asked", rcvBuf, "got", got, "raise", why)
	}
	return conn, got, nil
}

// newLink returns the link that cfg describes, with its state but
// without its socket, and none of its goroutines started. cfg has its
// defaults, and its key is in sealer.
func newLink(cfg Config, node *Node, ifi *net.Interface, sealer *Sealer, deliver func(from uuid.UUID, msg []byte)) *Link {
	host, _ := os.Hostname()
	l := &Link{
		cfg:     cfg,
		log:     cfg.Logger,
		ifi:     ifi,
		dst:     netip.AddrPortFrom(cfg.Group, uint16(cfg.Port)),
		cluster: ClusterIDOf(cfg.Cluster),
		host:    host,
		stop:    make(chan struct{}),
		written: make(chan struct{}),
		sealer:  sealer,
		payload: cfg.Payload,
		sealing: sealState{replay: newReplayGuard(), logged: make(map[forgedFrom]struct{})},
		kick:    make(chan struct{}, 1),
		counts:  &node.counts,
		seq:     &node.seq,
		ctlSeq:  &node.ctlSeq,
		hist:    node.hist,
		flow:    node.flow,
		window:  receiveWindow(rcvBuf, cfg.Payload, cfg.HoldPeer),
		// The burst stays within what the writer's queue takes at once.
		bucket: newRepairBucket(cfg.RepairRate, cfg.MaxRate),
		rate:   newRateBucket(cfg.MaxRate),
	}
	if sealer != nil {
		l.payload -= TagLen
	}
	if cfg.Held {
		l.held.Shut()
	}
	l.inTurn = l.handleInTurn
	l.rx = node.receiving(&cfg, (l.payload-HeaderLen-nakTargetLen)/rangeLen, l.inTurn, deliver)
	l.q.room = make(chan struct{})
	l.q.wake = make(chan struct{}, 1)
	l.status.kick = make(chan struct{}, 1)
	return l
}

func (c *Config) defaults() error {
	if c.Payload == 0 {
		c.Payload = DefaultPayload
	}
	if c.Heartbeat == 0 {
		c.Heartbeat = time.Second
	}
	if c.PeerTimeout == 0 {
		c.PeerTimeout = 5 * c.Heartbeat
	}
	if c.MaxMessage == 0 {
		c.MaxMessage = 1 << 20
	}
	if c.MaxReassembly == 0 {
		c.MaxReassembly = 4 * c.MaxMessage
	}
	if c.ReassemblyTimeout == 0 {
		c.ReassemblyTimeout = 5 * time.Second
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.SendQueue == 0 {
		c.SendQueue = 1 << 20
	}
	if c.SendWait == 0 {
		c.SendWait = c.PeerTimeout + c.Heartbeat
	}
	if c.FlowControl == "" {
		c.FlowControl = FlowMin
	}
	if c.Channels == nil {
		c.Channels = func() []string { return nil }
	}
	if c.HistoryBytes == 0 {
		c.HistoryBytes = DefaultHistory
	}
	if c.GapTimeout == 0 {
		c.GapTimeout = DefaultGapTimeout
	}
	if c.HoldPeer == 0 {
		c.HoldPeer = DefaultHoldPeer
	}
	if c.HoldTotal == 0 {
		c.HoldTotal = DefaultHoldTotal
	}
	if c.RepairRate == 0 {
		c.RepairRate = DefaultRepairRate
	}
	switch {
	case !c.Group.Is4() || !c.Group.IsMulticast():
		return fmt.Errorf("multicast: group %v is not an IPv4 multicast address", c.Group)
	case c.Port < 1 || c.Port > 65535:
		return fmt.Errorf("multicast: port %d is out of range 1..65535", c.Port)
	case c.TTL < 0 || c.TTL > 255:
		return fmt.Errorf("multicast: ttl %d is out of range 0..255", c.TTL)
	case c.Node == uuid.UUID{}:
		return errors.New("multicast: the node id is zero")
	case c.Payload < MinPayload || c.Payload > MaxPayload:
		return fmt.Errorf("multicast: payload %d is out of range %d..%d", c.Payload, MinPayload, MaxPayload)
	case Fragments(c.MaxMessage, c.Payload-sealRoom(c.Key)) > MaxFragments:
		return fmt.Errorf("multicast: messages of %d bytes would need more than %d fragments of %d bytes; raise the payload", c.MaxMessage, MaxFragments, c.Payload)
	case c.FlowControl != FlowMin && c.FlowControl != FlowNone:
		return fmt.Errorf("multicast: flow control %q is neither %q nor %q", c.FlowControl, FlowMin, FlowNone)
	case c.MaxRate < 0:
		return fmt.Errorf("multicast: max rate %d is negative", c.MaxRate)
	case c.GapTimeout < 0 || c.HoldPeer < 0 || c.HoldTotal < 0 || c.RepairRate < 0:
		return fmt.Errorf("multicast: gap timeout %v, hold bounds %d and %d, repair rate %d: none may be negative", c.GapTimeout, c.HoldPeer, c.HoldTotal, c.RepairRate)
	case c.SendQueue < 0:
		return fmt.Errorf("multicast: send queue bound %d is negative", c.SendQueue)
	case c.MaxReassembly < c.MaxMessage+partialOverhead+slotOverhead*Fragments(c.MaxMessage, MinPayload):
		return fmt.Errorf("multicast: reassembly bound %d cannot hold one message of %d bytes", c.MaxReassembly, c.MaxMessage)
	}
	return nil
}

// setup joins the group and sets the sending options.
func setup(p *ipv4.PacketConn, ifi *net.Interface, group net.IP, ttl int) error {
	if err := p.JoinGroup(ifi, &net.UDPAddr{IP: group}); err != nil {
		return fmt.Errorf("multicast: joining %v on %s: %w", group, ifi.Name, err)
	}
	if err := p.SetMulticastInterface(ifi); err != nil {
		return fmt.Errorf("multicast: sending on %s: %w", ifi.Name, err)
	}
	if err := p.SetMulticastTTL(ttl); err != nil {
		return fmt.Errorf("multicast: setting ttl %d: %w", ttl, err)
	}
	// Loopback on: other servers on this host are members too.
	if err := p.SetMulticastLoopback(true); err != nil {
		return fmt.Errorf("multicast: turning multicast loopback on: %w", err)
	}
	return nil
}

// Interface is the interface the link joined the group on.
func (l *Link) Interface() string { return l.ifi.Name }

// Close leaves the group and returns after every goroutine of the link
// has ended. Messages still queued are written first, for at most half a
// second; what is left then is dropped, counted in Stats.Unsent and
// logged. The datagrams already numbered among them stay in the node's
// history: a link of the node that takes over (a reload) repairs them
// for the receivers that ask. What is queued is written regardless of
// the receivers' windows (flow control); a link that another takes
// over from closes with CloseInto instead. It is idempotent.
func (l *Link) Close() error {
	l.closing.Do(func() {
		l.q.mu.Lock()
		l.q.closed = true
		l.q.mu.Unlock()
		close(l.stop)
		<-l.written
		l.sock.close()
		l.wg.Wait()
	})
	return nil
}

// CloseInto closes the link as Close does; when next, a link of the
// same node that takes over from it (a reload), is not nil, what is
// still queued goes out at the receivers' pace, as it would had the
// link stayed open: the writer waits for their windows (flow control)
// for up to SendWait, as a Send waits for room, rather than writing it
// at once past them. So no receiver is sent more than its window across
// a swap, and the node's history, which flow control keeps within the
// windows, still holds whatever a receiver may ask for. next must be
// held (Config.Held) until CloseInto returns, and released then. next
// nil is Close.
func (l *Link) CloseInto(next *Link) {
	if next != nil {
		l.handingOver.Store(true)
	}
	l.Close()
}

// Leave closes the link as Close does, after a last heartbeat that says
// the node leaves the cluster (Heartbeat.Leaving): queued after every
// message sent before, and with nothing after it. Its peers forget the
// node at once rather than after PeerTimeout, and, as senders, no longer
// wait for it in flow control. A link that another link of the node
// takes over from, in the same group and cluster (a reload), closes with
// Close: its peers see one unbroken node. It is idempotent, and does
// what Close does once the link is closed.
func (l *Link) Leave() error {
	msg := l.heartbeatMsg(true)
	q := &l.q
	q.mu.Lock()
	if !q.closed {
		q.push(KindHeartbeat, uuid.New(), msg)
		q.closed = true
	}
	q.mu.Unlock()
	poke(q.wake)
	return l.Close()
}

// Release lets a link opened with Config.Held send. It is idempotent.
func (l *Link) Release() {
	l.held.Open()
	poke(l.q.wake) // for what was queued while held
}

// Peers returns the other nodes of the cluster heard from lately, sorted
// by host name.
func (l *Link) Peers() []Peer {
	l.mu.Lock()
	defer l.mu.Unlock()
	peers := l.peers.list()
	l.peerCounts(peers)
	if l.flow != nil {
		for i := range peers {
			peers[i].Flow = l.flow.peer(peers[i].Node)
		}
	}
	return peers
}
