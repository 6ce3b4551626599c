package router

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"runtime/debug"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	"github.com/netcluster/netcluster/channel"
	"github.com/netcluster/netcluster/internal/wire"
	"github.com/netcluster/netcluster/multicast"
)

// network is the server's multicast link, when connecttonet is true, and
// the counters of what crossed it.
type network struct {
	// link is nil when not connected. A reload that changes the network
	// keys swaps in a new link; only the link stored here delivers.
	link atomic.Pointer[multicast.Link]
	// node is what outlives every link the server opens: the sequence
	// counters, the history (a link that a reload swaps in answers NAKs
	// for what the old one sent; a new history bound resizes it in
	// place) and the flow-control state. The first configuration
	// applied, Start's, makes it.
	node *multicast.Node
	// recent are the ids of the events delivered from the network, by
	// any link: the multicast node delivers each datagram once across
	// its links, and recent drops an event that arrives by two kinds of
	// link, or that a peer sends twice.
	recent *multicast.Recent
	// watch stretches recent's window while NATS is behind (dedup.go);
	// nil unless both links are on. Only Start, reloads and Shutdown,
	// which are serialized, use it.
	watch *dedupWatch
	// senders are the clients of other servers heard from over the
	// multicast group: a reply to one of them goes to the group
	// (replyToNet).
	senders clientLog
	// spare is the frame of the last event from the network that was
	// not handed on (a duplicate, or for no channel here), for the next
	// one; under Server.linkMu.
	spare []byte
	// secret is the key the link seals with, read at start and at each
	// reload (Config.Secret); nil for none. Only Start and reloads,
	// which are serialized, use it.
	secret []byte

	// inboundOff is set when the server stops: from then on fromNet
	// delivers nothing, while the link still sends what the clients'
	// last events bring (Server.stopInbound).
	inboundOff atomic.Bool

	delivered, noChannel, refused, malformed, sendFailed, already atomic.Uint64
	// dropping is true from an event the link refused until one it
	// takes: the episode is logged at its start and its end.
	dropping atomic.Bool
	// episodeDrops counts the events refused in the current episode.
	episodeDrops atomic.Uint64

	// holdHook, for the tests, runs as fromNet begins to hold the link
	// back for a client past its high-water mark.
	holdHook func()
}

// NetStats are the counters of the server's network link: with Link
// (multicast.Stats) they are the one table of the network's counters.
// Each field's tags say where it is shown, as multicast.Stats describes
// them; counters.go reads them for the network part of stats and for
// the Prometheus metrics.
type NetStats struct {
	// Connected is true when the server has joined the multicast group.
	// While it is false, stats and /metrics show it alone.
	Connected bool `stats:"connected" metric:"netcluster_net_connected" help:"1 when the server has joined the multicast group."`
	// Delivered counts events from the network delivered to a local
	// channel (and its propagation targets).
	Delivered uint64 `stats:"delivered" metric:"netcluster_net_events_total" label:"direction=in"`
	// NoChannel counts events from the network for a channel this server
	// does not serve.
	NoChannel uint64 `stats:"no_channel" metric:"netcluster_net_ignored_total" label:"reason=no_channel"`
	// Refused counts events from the network for a channel whose
	// acceptfromnet is false.
	Refused uint64 `stats:"refused" metric:"netcluster_net_ignored_total" label:"reason=refused"`
	// DeliveredAlready counts events from the network that the dedup
	// dropped: the NATS link, or the link a reload replaced, had
	// delivered them.
	DeliveredAlready uint64 `stats:"delivered_already" metric:"netcluster_net_ignored_total" label:"reason=delivered_already"`
	// Malformed counts messages from the network that are not well-formed
	// Event frame bodies, or events of the zero id or sender, or of a name
	// that breaks the event-name rule.
	Malformed uint64 `stats:"malformed" metric:"netcluster_net_dropped_total" label:"reason=malformed"`
	// SendFailed counts events of propagatetonet channels that the link
	// refused: too big, or dropped because its send queue stayed full
	// for its bound (Link.QueueFull counts those). Datagrams the system then refuses
	// to send are counted in Link.SendErrors.
	SendFailed uint64 `stats:"send_failed" metric:"netcluster_net_dropped_total" label:"reason=send_failed"`
	// DedupCut counts ids of events from the network that the dedup
	// forgot before dedupWindow had passed, because it remembered
	// dedupMost ids already: with both links on, a copy of one of them
	// that the slower link brings after that is delivered again.
	DedupCut uint64 `stats:"dedup_cut" metric:"netcluster_net_dedup_cut_total" help:"Ids of events from the network forgotten by the dedup before its window had passed (both links on): a later copy of one of them is delivered again."`
	// Link are the link's own counters: datagrams, drops by reason,
	// duplicates, reassembly memory.
	Link multicast.Stats
}

// recentNet is how many ids of events from the network the server
// remembers at least, across links (multicast.Recent: up to twice as
// many).
const recentNet = 4096

// With both links on, an event comes twice, and its second copy may
// come long after the first: as late as NATS lags behind multicast,
// which flow control bounds to half the receiver's pending limits per
// sender (hundreds of thousands of small events in packs). So the dedup
// then remembers each id for at least dedupWindow, growing up to
// dedupMost ids per generation (32 MiB at most) to do so, and counts
// what it forgets earlier (NetStats.DedupCut).
const dedupMost = 1 << 19

// dedupWindow is a variable for the tests (SetDedupWindow), which cannot
// wait out 10 s outages.
var dedupWindow = 10 * time.Second

// setDedupWindow sizes the dedup for cfg: remembering ids for
// dedupWindow when both links are on, longer while NATS is behind
// (dedupWatch), else recentNet ids.
func (s *Server) setDedupWindow(cfg *Config) {
	if cfg.ConnectToNet && cfg.NATS.On() {
		if s.net.watch == nil { // else it may have stretched the window
			s.net.recent.SetWindow(dedupWindow, dedupMost)
		}
		s.startDedupWatch()
	} else {
		s.stopDedupWatch()
		s.net.recent.SetWindow(0, 0)
	}
}

// openNet opens a multicast link of the server's node for cfg, sealing
// with secret when it is not nil, or returns nil when cfg does not
// connect to the network.
func (s *Server) openNet(cfg *Config, secret []byte) (*multicast.Link, error) {
	if !cfg.ConnectToNet {
		return nil, nil
	}
	group, err := netip.ParseAddr(cfg.Addr)
	if err != nil {
		return nil, fmt.Errorf("router: addr %q: %w", cfg.Addr, err)
	}
	var self atomic.Pointer[multicast.Link]
	current := func() bool {
		l := self.Load()
		return l != nil && s.net.link.Load() == l
	}
	// The node delivers each datagram of a peer once, whichever of its
	// links reads it: a link that a reload opens beside the current one
	// may deliver what it reads first, and nothing is lost or repeated
	// across the swap.
	deliver := s.fromNet
	// Heartbeats announce the channels of the configuration the link is
	// opened for until it is current, then those of the server's: a link
	// that Start opens announces the channels it is about to serve.
	channelsOf := func() []string {
		if current() {
			return s.Config().ChannelNames()
		}
		return cfg.ChannelNames()
	}
	link, err := s.net.node.Open(multicast.Config{
		Group:       group,
		Port:        cfg.Port,
		Interface:   cfg.Interface,
		TTL:         cfg.TTL,
		Cluster:     cfg.Cluster,
		Node:        s.node,
		Payload:     cfg.Payload,
		Heartbeat:   cfg.Heartbeat,
		PeerTimeout: cfg.PeerTimeout,
		MaxMessage:  cfg.MaxFrame,
		Channels:    channelsOf,
		Version:     softwareVersion(),
		Logger:      s.log,
		Dump:        cfg.DumpNet,
		Key:         secret,
		GapTimeout:  cfg.GapTimeout,
		FlowControl: multicast.FlowControl(cfg.FlowControl),
		MaxRate:     cfg.MaxRate,
		// A link that replaces one sends once the old one has written
		// its queue (prepareNet).
		Held: s.net.link.Load() != nil,
	}, deliver)
	if err != nil {
		return nil, fmt.Errorf("router: connecttonet: %w", err)
	}
	self.Store(link)
	s.log.Info("joined the multicast group", "group", netip.AddrPortFrom(group, uint16(cfg.Port)),
		"interface", link.Interface(), "ttl", cfg.TTL, "cluster", cfg.Cluster, "node", s.node, "sealed", secret != nil)
	return link, nil
}

// stopNet leaves the multicast group, telling the peers that this
// server leaves (multicast.Link.Leave); it returns once the link's
// goroutines have ended, so nothing arrives from the network after it.
func (s *Server) stopNet() {
	if l := s.net.link.Swap(nil); l != nil {
		l.Leave()
	}
}

// netKeysDiffer reports whether two configurations differ in a key that
// the multicast link is opened with.
func netKeysDiffer(a, b *Config) bool {
	if !a.ConnectToNet && !b.ConnectToNet {
		return false
	}
	return len(differ(settings, a, b, func(k *key[Config]) bool { return k.reload == relink })) > 0
}

// prepareNet opens the multicast link that cfg asks for, when change
// (the plan's) says the link opens or changes, and returns the step that
// swaps it in. The new link joins the group beside the old one, so no
// datagram is missed, but delivers nothing until commit makes it
// current; commit then closes the old link. If the new link cannot be
// opened, nothing has changed and the error says why. A new history
// bound is applied at commit, in place: the node (multicast.Node)
// outlives every link, so NAKs for what an old link sent are answered
// and receivers see one unbroken stream. The first configuration
// applied (Start's) makes it.
//
// The key file is read again: when its contents changed, the link is
// swapped as for any other network key.
func (s *Server) prepareNet(old, cfg *Config, change linkChange) (commit func(), err error) {
	if s.net.node == nil {
		s.net.node = multicast.NewNode(s.node, cfg.History)
	}
	secret, err := cfg.Secret(s.log)
	if err != nil {
		return nil, err
	}
	keep := func() {
		s.net.secret = secret
		s.net.node.History().SetLimit(cfg.History) // in place: no new link needed
	}
	newSecret := !bytes.Equal(secret, s.net.secret)
	if change == linkSame && (!newSecret || !cfg.ConnectToNet) {
		return keep, nil
	}
	if newSecret && cfg.ConnectToNet && old.Key == cfg.Key && old.KeyFile == cfg.KeyFile {
		s.log.Info("the key file changed: the multicast link is reopened with the new key", "keyfile", cfg.KeyFilePath())
	}
	next, err := s.openNet(cfg, secret)
	if err != nil {
		return nil, err
	}
	return func() {
		keep()
		switch prev := s.net.link.Swap(next); {
		case prev == nil:
		case next == nil:
			prev.Leave() // its peers hear this server no more
		case old.Cluster != cfg.Cluster || old.Addr != cfg.Addr || old.Port != cfg.Port:
			prev.Leave()
			// Its receivers so far no longer hear it: those where it
			// goes join as late joiners do.
			s.net.node.Moved()
		default:
			// Its peers hear the same node go on: what it still
			// holds goes out at their pace (flow control), then next
			// sends.
			prev.CloseInto(next)
		}
		if next != nil {
			next.Release() // after the old queue: one stream, in order
		}
		if next == nil {
			s.log.Info("left the multicast group: connecttonet is now false")
		}
	}, nil
}

// toNet sends an event of a propagatetonet channel to the group. frame
// is valid only while the Handler runs (channel.Handler); the link
// copies the event into its send queue before Send returns, so it needs
// no copy of its own. It runs on the publisher's read goroutine: when
// the link's queue is full, because the network or the slowest live
// receiver cannot take more (flow control), Send waits for room, and
// the publisher is slowed down as a slow local subscriber slows it. The
// wait is bounded (multicast.Config.SendWait: peertimeout plus one
// heartbeat, longer than flow control waits for a stopped receiver);
// an event still refused then is dropped, counted (send_failed) and
// logged once per episode. An event that a link closed by a reload
// refuses goes to the link that took over.
func (s *Server) toNet(ev *wire.EventHeader, frame []byte) {
	s.sendNet(uuid.UUID(ev.ID), ev.Channel, frame[wire.HeaderLen:])
}

// sendNet sends an event's body on the multicast link, as toNet says:
// on the link that took over when a reload closed the link under the
// send; dropped, counted and logged when still refused. It reports
// false when there is no link to send on (the group was left), true
// when the event was sent or dropped.
func (s *Server) sendNet(id uuid.UUID, channel, body []byte) bool {
	link := s.net.link.Load()
	if link == nil {
		return false // a reload has just left the group
	}
	err := link.Send(id, body)
	for errors.Is(err, multicast.ErrClosed) {
		// A reload closed the link under this send: the link that took
		// over sends it, in the node's one stream.
		next := s.net.link.Load()
		if next == nil || next == link {
			return false // the group was left
		}
		link = next
		err = link.Send(id, body)
	}
	if err == nil {
		if s.net.dropping.Load() && s.net.dropping.CompareAndSwap(true, false) {
			s.log.Info("events reach the network again", "dropped", s.net.episodeDrops.Swap(0))
		}
		return true
	}
	s.net.sendFailed.Add(1)
	s.net.episodeDrops.Add(1)
	if s.net.dropping.CompareAndSwap(false, true) {
		s.log.Warn("dropping events for the network until it takes them again", "channel", string(channel), "id", id, "err", err)
	}
	return true
}

// fromNet delivers an event that came from the network: to the local
// channel it names, when the server has it and its rule accepts events
// from the network, and then to that channel's propagation targets. It
// is never sent back to the network. The node delivers each datagram of
// a peer once, across its links; the ids of events delivered are
// dropped here, so that an event that another kind of link brings too,
// or that a peer sends twice, is delivered once.
//
// A client that the event leaves past its high-water mark then holds the
// link back, briefly (Event.HoldBack): the link serves every channel.
// The wait comes after Server.linkMu is released, as fromNats's does,
// so that it never holds the NATS link's deliveries.
func (s *Server) fromNet(from uuid.UUID, msg []byte) {
	if s.net.inboundOff.Load() {
		return // stopping: nothing more from the network
	}
	var out channel.Event
	if s.deliverFromNet(from, msg, &out) && out.Holding() {
		if s.net.holdHook != nil {
			s.net.holdHook()
		}
		out.HoldBack()
	}
}

// deliverFromNet is fromNet under Server.linkMu, but for the wait: it
// reports whether it delivered the event, as out, to a channel or, a
// reply, to its asker.
func (s *Server) deliverFromNet(from uuid.UUID, msg []byte, out *channel.Event) bool {
	s.linkMu.Lock()
	defer s.linkMu.Unlock()
	// The event is copied into its frame first and parsed there, once:
	// the header goes on with the frame, so that the channel's ring of
	// recent events need not parse it again. A frame not handed on is
	// kept for the next event.
	frame := s.net.frameFor(len(msg))
	binary.BigEndian.PutUint32(frame, uint32(len(msg)))
	copy(frame[wire.HeaderLen:], msg)
	msg = frame[wire.HeaderLen:]
	ev, err := wire.ParseEvent(msg)
	if err == nil {
		err = wire.CheckEventIDs(&ev)
	}
	if err == nil {
		// The rule a client's event is held to, and one from NATS: a
		// client need not expect a name it could not have sent.
		err = wire.CheckEventName(ev.Event)
	}
	if err != nil {
		s.net.malformed.Add(1)
		s.log.Debug("dropped a malformed event from the network", "peer", from, "err", err)
		return false
	}
	if ev.To != ([16]byte{}) {
		if !s.net.recent.Add(uuid.UUID(ev.ID)) {
			s.net.already.Add(1)
			return false
		}
		return s.replyFromNet(from, &ev, msg, out) // netreply.go
	}
	r := s.table.Load().routes[string(ev.Channel)]
	switch {
	case r == nil:
		s.net.noChannel.Add(1)
		s.log.Debug("dropped an event from the network for a channel not served here", "peer", from, "channel", string(ev.Channel))
		return false
	case !r.rule.AcceptFromNet:
		s.net.refused.Add(1)
		s.log.Debug("dropped an event from the network: the channel does not accept them", "peer", from, "channel", string(ev.Channel))
		return false
	}
	// Only an event delivered is remembered: one this link refuses may
	// still come, and be accepted, over NATS.
	if !s.net.recent.Add(uuid.UUID(ev.ID)) {
		s.net.already.Add(1)
		return false // delivered already, by NATS or by the link a reload replaced
	}
	s.net.senders.add(uuid.UUID(ev.Sender), uuid.Nil)
	if r.rule.DumpToConsole {
		s.dump(&ev)
	}
	s.net.spare = nil // handed on
	*out = channel.NewEvent(frame)
	out.Header = ev // parsed from frame, which its slices alias
	r.ch.SendEvent(out, nil)
	for _, d := range r.targets {
		d.SendEvent(out, nil)
	}
	s.net.delivered.Add(1)
	return true
}

// frameFor returns a frame of an event of size bytes from the network,
// length prefix included: the spare one when it fits without wasting
// more than a quarter of itself, else a new one, kept as the spare
// until fromNet hands it on. Server.linkMu is held.
func (n *network) frameFor(size int) []byte {
	need := wire.HeaderLen + size
	if f := n.spare; cap(f) >= need && cap(f)-need <= need/4 {
		return f[:need]
	}
	n.spare = make([]byte, need)
	return n.spare
}

// Peers returns the other servers of the cluster that this one has heard
// from lately, sorted by host name; nil when it is not connected to the
// network.
func (s *Server) Peers() []multicast.Peer {
	link := s.net.link.Load()
	if link == nil {
		return nil
	}
	return link.Peers()
}

// NetStats returns the counters of the server's network link.
func (s *Server) NetStats() NetStats {
	link := s.net.link.Load()
	st := NetStats{
		Connected:        link != nil,
		Delivered:        s.net.delivered.Load(),
		NoChannel:        s.net.noChannel.Load(),
		Refused:          s.net.refused.Load(),
		Malformed:        s.net.malformed.Load(),
		SendFailed:       s.net.sendFailed.Load(),
		DedupCut:         s.net.recent.Cut(),
		DeliveredAlready: s.net.already.Load(),
	}
	if link != nil {
		st.Link = link.Stats()
	}
	return st
}

// softwareVersion is what heartbeats announce: the module's version and
// the Go release that built it.
func softwareVersion() string {
	v := "(devel)"
	bi, ok := debug.ReadBuildInfo()
	if ok && bi.Main.Version != "" {
		v = bi.Main.Version
	}
	if ok {
		v += " " + bi.GoVersion
	}
	return "netcluster " + v
}
