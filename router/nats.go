package router

import (
	"errors"
	"fmt"
	"math/bits"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	"github.com/netcluster/netcluster/channel"
	"github.com/netcluster/netcluster/internal/wire"
	"github.com/netcluster/netcluster/multicast"
	"github.com/netcluster/netcluster/natslink"
)

// natsState is the server's NATS link, when the configuration has a
// nats.url, and the counters of what the router did with its events.
type natsState struct {
	// link is nil when not connected. A reload that changes the nats
	// keys swaps in a new link; while both run, the network's dedup
	// (network.recent) delivers an event once.
	link atomic.Pointer[natslink.Link]
	// askers remember the clients that sent events from other servers
	// over NATS, each with its server (the events' origin node): where
	// a reply to one of them, the asker of a request, must go.
	askers clientLog
	// sent are the local clients that sent events to NATS lately: a
	// reply from NATS is delivered only to one of them, so that no one
	// on NATS can address a local client that never sent anything there.
	sent clientLog

	noChannel, refused, malformed, undeliverable, sendFailed, already atomic.Uint64

	// gone sums the counters of the links that were closed, so that the
	// counters go on across a swap; closing is the link a swap replaced
	// while it closes, whose counters NATSStats adds to the new link's
	// meanwhile. swapMu guards both, and the swap of link, so that
	// NATSStats counts each link once: the old one is in closing until
	// its counters are in gone. It is never held while a link closes:
	// stats and the metrics answer during a swap.
	swapMu  sync.Mutex
	closing *natslink.Link
	gone    natslink.Stats
}

// NATSStats are the counters of the NATS link, as stats shows them
// under "nats" and the metrics export them (netcluster_nats_*).
type NATSStats struct {
	natslink.Stats
	// NoChannel counts events from NATS for a channel not served here;
	// Refused those for a channel whose acceptfromnats is false.
	NoChannel uint64 `json:"no_channel" msgpack:"no_channel" metric:"netcluster_nats_no_channel_total" help:"Events from NATS for a channel not served here."`
	Refused   uint64 `json:"refused" msgpack:"refused" metric:"netcluster_nats_refused_total" help:"Events from NATS for a channel whose acceptfromnats is false."`
	// DeliveredAlready counts events from NATS that the dedup dropped:
	// the multicast link, or the connection a reload replaced, had
	// delivered them.
	DeliveredAlready uint64 `json:"delivered_already" msgpack:"delivered_already" metric:"netcluster_nats_delivered_already_total" help:"Events from NATS delivered already, by the multicast link or the connection a reload replaced."`
	// Invalid counts events from NATS whose name or data is not valid,
	// and replies that answer no request sent from here.
	Invalid uint64 `json:"invalid" msgpack:"invalid" metric:"netcluster_nats_invalid_total" help:"Events from NATS whose name or data is not valid."`
	// Undeliverable counts replies from NATS whose asker is gone.
	Undeliverable uint64 `json:"undeliverable" msgpack:"undeliverable" metric:"netcluster_nats_undeliverable_total" help:"Replies from NATS whose asker is not connected here."`
	// SendFailed counts events for NATS that nats.go refused.
	SendFailed uint64 `json:"send_failed" msgpack:"send_failed" metric:"netcluster_nats_send_failed_total" help:"Events for NATS that nats.go refused."`
}

// natsPending, when set, are the pending limits of the link's
// subscriptions of events, in place of the configuration's
// (NATSConfig.PendingMsgs, PendingBytes); the tests lower them
// (SetNATSPendingLimits).
var natsPending struct{ msgs, bytes int }

// openNats opens the NATS link that cfg asks for, or returns nil when
// cfg has no nats.url. The link connects in the background when NATS is
// not reachable yet.
func (s *Server) openNats(cfg *Config) (*natslink.Link, error) {
	n := cfg.NATS
	if !n.On() {
		return nil, nil
	}
	catchUp := n.CatchUp
	if s.nats.link.Load() != nil {
		catchUp = 0 // the link it replaces delivers until the swap: nothing to wait for
	}
	name := n.Name
	if name == "" {
		host, _ := os.Hostname()
		name = "ncserver " + host
	}
	pendingMsgs, pendingBytes := n.PendingMsgs, n.PendingBytes
	if natsPending.msgs != 0 {
		pendingMsgs, pendingBytes = natsPending.msgs, natsPending.bytes
	}
	link, err := natslink.Open(natslink.Config{
		URL: n.URL, User: n.User, Password: n.Password, Token: n.Token,
		NKeyFile: cfg.natsPath(n.NKeyFile), CredsFile: cfg.natsPath(n.CredsFile),
		CA: cfg.natsPath(n.CA), Cert: cfg.natsPath(n.Cert), Key: cfg.natsPath(n.Key),
		Prefix: n.Prefix, Cluster: cfg.Cluster, Name: name, Node: s.node, Buffer: n.Buffer, Pack: n.Pack,
		FlowControl: multicast.FlowControl(n.FlowControl) != multicast.FlowNone,
		JetStream:   n.JetStream, MaxAge: n.MaxAge, MaxBytes: n.MaxBytes, Durable: n.Durable, CatchUp: catchUp,
		Heartbeat: cfg.Heartbeat, PeerTimeout: cfg.PeerTimeout, Version: softwareVersion(),
		Channels: func() []string { return s.Config().ChannelNames() }, Logger: s.log,
		PendingMsgs: pendingMsgs, PendingBytes: pendingBytes, WriteTimeout: n.WriteTimeout,
		Held:       s.nats.link.Load() != nil, // released at the swap (prepareNats)
		DeliverRun: s.fromNatsRun,
	}, s.fromNats)
	if err != nil {
		return nil, fmt.Errorf("router: nats: %w", err)
	}
	s.log.Info("NATS link opened", "subjects", natslink.Subject(n.Prefix, cfg.Cluster, ">"), "node", s.node)
	return link, nil
}

// natsKeysDiffer reports whether the NATS link must be reopened: a key
// of the nats object changed, or one of the top-level keys it uses.
func natsKeysDiffer(a, b *Config) bool {
	return len(natsDiffer(a, b)) > 0 || a.Cluster != b.Cluster || a.Heartbeat != b.Heartbeat || a.PeerTimeout != b.PeerTimeout
}

// natsChannels are the channels of cfg whose events are taken from NATS.
func natsChannels(cfg *Config) []string {
	var out []string
	for _, name := range cfg.ChannelNames() {
		if cfg.Channels[name].AcceptFromNATS {
			out = append(out, name)
		}
	}
	return out
}

// prepareNats opens the new NATS link when change says so, and returns
// the step that swaps it in (commit) and the one that closes it when the
// configuration is not applied after all (undo). The new link
// subscribes to the channels at commit, before the old one closes, so
// nothing is missed; the dedup drops what both deliver. A reload that
// keeps the link only changes its subscriptions, at commit.
func (s *Server) prepareNats(cfg *Config, change linkChange) (commit, undo func(), err error) {
	next := s.nats.link.Load()
	if change != linkSame {
		if next, err = s.openNats(cfg); err != nil {
			return nil, nil, err
		}
		undo = func() {
			if next != nil {
				next.Close()
			}
		}
	}
	commit = func() {
		if next != nil {
			next.SetChannels(natsChannels(cfg))
		}
		if change == linkSame {
			return
		}
		// The new link sends once the old one has sent, and NATS has
		// taken, all it took: what a sender emits keeps its order across
		// the swap. Meanwhile the events for NATS wait, as they wait for
		// a slow NATS. What the old one kept while NATS was away goes
		// to the new one, first.
		s.nats.swapMu.Lock()
		prev := s.nats.link.Swap(next)
		s.nats.closing = prev
		s.nats.swapMu.Unlock()
		if prev != nil {
			prev.CloseInto(next)
			st := prev.Stats()
			s.nats.swapMu.Lock()
			s.nats.gone = st.Plus(s.nats.gone)
			s.nats.closing = nil
			s.nats.swapMu.Unlock()
		}
		if next != nil {
			next.Release()
		}
		if next == nil {
			s.log.Info("NATS link closed: the configuration has no nats.url now")
		}
	}
	return commit, undo, nil
}

// stopInbound ends what the links deliver, leaving them sending: a
// server that stops reads its clients' last events after it, and they
// still go out to the network and to NATS.
func (s *Server) stopInbound() {
	s.net.inboundOff.Store(true)
	if l := s.nats.link.Load(); l != nil {
		l.StopDelivering()
	}
}

// stopNats closes the NATS link; nothing arrives from NATS after it.
func (s *Server) stopNats() {
	if l := s.nats.link.Swap(nil); l != nil {
		l.Close()
	}
}

// toNats sends an event that entered the bus here on a propagatetonats
// channel to NATS: its frame, into a pack, when the link packs. The link
// copies what it keeps before it returns.
func (s *Server) toNats(r *route, ev *channel.Event) {
	link := s.nats.link.Load()
	if link == nil || !r.rule.PropagateToNATS {
		return
	}
	hdr := &ev.Header
	s.nats.sent.add(uuid.UUID(hdr.Sender), uuid.Nil)
	err := s.publishNats(link, func(l *natslink.Link) error {
		if l.Packing() {
			return l.PublishFrame(hdr.Channel, ev.Frame())
		}
		return l.Publish(&natslink.Event{Channel: string(hdr.Channel), Event: string(hdr.Event),
			ID: hdr.ID, Origin: hdr.Origin, Sender: hdr.Sender, Data: hdr.Data}, uuid.Nil)
	})
	if err == nil || errors.Is(err, natslink.ErrDropped) || errors.Is(err, natslink.ErrClosed) {
		return // the link counts and logs its drops; closed: a reload turned NATS off
	}
	if n := s.nats.sendFailed.Add(1); bits.OnesCount64(n) == 1 {
		s.log.Warn("sending an event to NATS failed", "channel", string(hdr.Channel), "failures", n, "err", err)
	}
}

// publishNats hands an event to link with publish and, when a reload
// closed that link under it (ErrClosed: nothing was sent), to the link
// that took over, which sends once the old one has sent all it took
// (prepareNats). It returns ErrClosed when no link took over: a reload
// turned NATS off.
func (s *Server) publishNats(link *natslink.Link, publish func(*natslink.Link) error) error {
	for {
		err := publish(link)
		if !errors.Is(err, natslink.ErrClosed) {
			return err
		}
		next := s.nats.link.Load()
		if next == nil || next == link {
			return err
		}
		link = next
	}
}

// replyToNats sends a reply whose asker is not connected here to the
// server the asker sent events from over NATS, if it did: it reports
// whether it did.
func (s *Server) replyToNats(ev *wire.EventHeader) bool {
	link := s.nats.link.Load()
	if link == nil {
		return false
	}
	node, ok := s.nats.askers.get(uuid.UUID(ev.To))
	if !ok {
		return false
	}
	err := s.publishNats(link, func(l *natslink.Link) error {
		return l.Publish(&natslink.Event{Channel: string(ev.Channel), Event: string(ev.Event),
			ID: ev.ID, Origin: ev.Origin, Sender: ev.Sender, To: ev.To, Re: ev.Re, Data: ev.Data}, node)
	})
	return err == nil || errors.Is(err, natslink.ErrDropped)
}

// fromNats delivers an event from NATS: a reply to its one local
// client, anything else to the channel it names when that channel
// accepts events from NATS, and to the channel's propagation targets. It
// is never sent on to NATS nor to the multicast group.
//
// A local client past its high-water mark then holds the link back as
// it holds a local publisher (Event.HoldBackStall): until it drains, or
// is dropped for taking nothing for stalltimeout. The wait comes after
// Server.linkMu is released, so that it holds only the subscription
// that delivered the event (nats.go calls each one's handler on a
// goroutine of its own) and never the other link or the other
// subscriptions. What NATS sends meanwhile waits in nats.go's pending
// buffer of that subscription, and the senders' flow control holds
// them back (natslink/flow.go). An asker that a reply leaves past its
// mark holds the subscription of the replies to this server (its node
// subject) the same way: the replies to every local asker wait with
// it, in that buffer, which no flow control guards (replies are not
// numbered), so a flood that outlasts it is dropped there, counted in
// dropped_in, rather than the asker at maxpending.
func (s *Server) fromNats(ev *natslink.Event) {
	var out channel.Event
	if s.deliverFromNats(ev, &out) {
		out.HoldBackStall()
	}
}

// fromNatsRun delivers the events of a pack, in order, each as fromNats
// does, but as one run: Server.linkMu is taken once, the route looked up
// once per channel and the clock read once, unless an event leaves a
// local client past its high-water mark: the run then holds back, out of
// the lock, after that event, as fromNats does, and goes on.
func (s *Server) fromNatsRun(evs []natslink.Event) {
	var out channel.Event
	for len(evs) > 0 {
		n, held := s.deliverRun(evs, &out)
		evs = evs[n:]
		if held {
			out.HoldBackStall()
		}
	}
}

// deliverRun delivers events under Server.linkMu, up to the first one
// that holds back (channel.Event.Holding), which it leaves in out, and
// reports how many it took, and whether the last one holds back. out is
// the Event each is delivered as, made once per run, not once per event.
func (s *Server) deliverRun(evs []natslink.Event, out *channel.Event) (int, bool) {
	s.linkMu.Lock()
	defer s.linkMu.Unlock()
	run := natsRun{at: channel.Clock()}
	for i := range evs {
		if s.deliverNats(&evs[i], &run, out) && out.Holding() {
			return i + 1, true
		}
	}
	return len(evs), false
}

// natsRun is what the events of a run share: the route of their
// channel, and when they arrived (channel.Clock), or 0 to read the clock
// per event.
type natsRun struct {
	channel string
	route   *route
	at      int64
}

// deliverFromNats is fromNats under Server.linkMu: dedup and delivery
// are one step, so that order is kept per sender across links. It
// reports whether it delivered the event, as out, to a channel or, a
// reply, to its asker, for its HoldBackStall.
func (s *Server) deliverFromNats(ev *natslink.Event, out *channel.Event) bool {
	s.linkMu.Lock()
	defer s.linkMu.Unlock()
	return s.deliverNats(ev, &natsRun{}, out)
}

// deliverNats is deliverFromNats for an event of run, under
// Server.linkMu.
func (s *Server) deliverNats(ev *natslink.Event, run *natsRun, out *channel.Event) bool {
	if ev.To != uuid.Nil {
		// Checked before its id is remembered, as an event is below.
		if !s.natsFrame(ev, out) {
			return false
		}
		if !s.net.recent.Add(ev.ID) {
			s.nats.already.Add(1)
			return false
		}
		return s.replyFromNats(ev, out)
	}
	if run.route == nil || run.channel != ev.Channel {
		run.channel, run.route = ev.Channel, s.table.Load().routes[ev.Channel]
	}
	r := run.route
	switch {
	case r == nil:
		s.nats.noChannel.Add(1)
		s.log.Debug("dropped an event from NATS for a channel not served here", "channel", ev.Channel)
		return false
	case !r.rule.AcceptFromNATS:
		s.nats.refused.Add(1)
		return false
	}
	// An invalid event is dropped before its id is remembered: it must
	// not hide a valid copy, which the other link may bring.
	if !s.natsFrame(ev, out) {
		return false
	}
	if !s.net.recent.Add(ev.ID) {
		s.nats.already.Add(1)
		return false // delivered already, by the other link or the old one
	}
	if run.at != 0 {
		out.SetArrived(run.at)
	}
	if ev.Origin != uuid.Nil {
		s.nats.askers.add(ev.Sender, ev.Origin)
	}
	if r.rule.DumpToConsole {
		s.dump(&out.Header)
	}
	r.ch.SendEvent(out, nil)
	for _, d := range r.targets {
		d.SendEvent(out, nil)
	}
	return true
}

// natsFrame makes out the Event of an event from NATS, checking its name
// and data. The channels copy what they keep of out, so the caller's
// stays on its stack and the frame is the one allocation. An event from
// a pack comes with its frame, parsed and checked by the link, which is
// the channels' to keep: no allocation at all.
func (s *Server) natsFrame(ev *natslink.Event, out *channel.Event) bool {
	if ev.Frame != nil {
		err := wire.CheckEventName(ev.Header.Event)
		if err != nil || len(ev.Frame) > s.Config().MaxFrame+wire.HeaderLen {
			s.nats.malformed.Add(1)
			s.log.Debug("dropped an invalid event from NATS", "channel", ev.Channel,
				"event", wire.Clip(string(ev.Header.Event), 64), "bytes", len(ev.Frame), "err", err)
			return false
		}
		out.SetFrame(ev.Frame, ev.Pack, &ev.Header)
		return true
	}
	m := wire.Message{ID: ev.ID, Origin: ev.Origin, Sender: ev.Sender, Channel: ev.Channel, Event: ev.Event,
		Data: ev.Data, To: ev.To, InReplyTo: ev.Re}
	frame := wire.AppendEvent(make([]byte, 0, natsFrameSize(ev)), &m)
	hdr, err := wire.ParseEvent(frame[wire.HeaderLen:])
	if err == nil {
		err = wire.CheckEventName(ev.Event)
	}
	if err != nil || len(frame) > s.Config().MaxFrame+wire.HeaderLen {
		s.nats.malformed.Add(1)
		s.log.Debug("dropped an invalid event from NATS", "channel", ev.Channel, "event", wire.Clip(ev.Event, 64), "err", err)
		return false
	}
	out.SetFrame(frame, nil, &hdr) // parsed from frame: filters and the ring need not parse it again
	return true
}

// natsFrameSize bounds the size of the frame of ev, so that it is made
// in one allocation: the length prefix, the array header and the frame
// type, five ids of 18 bytes in msgpack, the two strings with headers of
// at most 5 bytes, and the data (1 byte when empty).
func natsFrameSize(ev *natslink.Event) int {
	return wire.HeaderLen + 2 + 5*18 + 2*5 + len(ev.Channel) + len(ev.Event) + max(1, len(ev.Data))
}

// replyFromNats delivers a reply from NATS, out (natsFrame), to its
// asker, on whichever channel it is connected to here, and reports
// whether it did: out then holds back as an event does (fromNats).
func (s *Server) replyFromNats(ev *natslink.Event, out *channel.Event) bool {
	if !s.nats.sent.has(ev.To) {
		s.nats.malformed.Add(1)
		s.log.Debug("dropped a reply from NATS to a client that sent nothing to NATS from here", "channel", ev.Channel, "to", ev.To)
		return false
	}
	for _, r := range s.table.Load().routes {
		c := r.ch.Client(ev.To)
		if c == nil {
			continue
		}
		return c.SendEvent(out)
	}
	s.nats.undeliverable.Add(1)
	s.log.Debug("reply from NATS dropped: its asker is not connected", "channel", ev.Channel, "to", ev.To)
	return false
}

// NATSStats returns the counters of the NATS link; ok is false when the
// server has none.
func (s *Server) NATSStats() (st NATSStats, ok bool) {
	s.nats.swapMu.Lock()
	link, closing, gone := s.nats.link.Load(), s.nats.closing, s.nats.gone
	s.nats.swapMu.Unlock()
	if link == nil {
		return st, false
	}
	// The counters of a link closed after the lock was let go are in
	// closing, and not yet in gone, as read: each link counts once.
	all := link.Stats().Plus(gone)
	if closing != nil {
		all = all.Plus(closing.Stats())
	}
	return NATSStats{Stats: all, NoChannel: s.nats.noChannel.Load(),
		Refused: s.nats.refused.Load(), Invalid: s.nats.malformed.Load(), Undeliverable: s.nats.undeliverable.Load(),
		SendFailed: s.nats.sendFailed.Load(), DeliveredAlready: s.nats.already.Load()}, true
}

// NATSPeers returns the servers heard from over NATS lately; nil
// without a NATS link.
func (s *Server) NATSPeers() []natslink.Peer {
	if link := s.nats.link.Load(); link != nil {
		return link.Peers()
	}
	return nil
}

// natsPeerAnswer shows a peer heard over NATS as peers and stats do;
// its address is "nats", its datagrams are its events, and lost are
// those of its events that never came (natslink.Stats.MissedIn).
func natsPeerAnswer(p natslink.Peer) PeerAnswer {
	return PeerAnswer{
		Node: p.Node.String(), Host: p.Host, PID: p.PID, Version: p.Version, Channels: list(p.Channels), Addr: "nats",
		FirstSeen: p.FirstSeen.UTC().Format(time.RFC3339Nano), LastSeen: p.LastSeen.UTC().Format(time.RFC3339Nano),
		Datagrams: p.Msgs, Bytes: p.Bytes, Lost: p.Missed,
	}
}
