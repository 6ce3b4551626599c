package router

import (
	"sync/atomic"

	"github.com/google/uuid"
	"github.com/netcluster/netcluster/channel"
	"github.com/netcluster/netcluster/internal/wire"
)

// table is the routing table. It is never modified once built: a reload
// builds a new one and swaps it in.
type table struct {
	routes map[string]*route
}

// route is what happens to an event that enters through one channel.
type route struct {
	ch      *channel.Channel
	rule    ChannelConfig
	targets []*channel.Channel // the other channels the rule names, sorted by name
	// sources are the other channels whose rules name this one: where
	// the requests that this channel's clients hear can come from, and
	// so where the askers their replies address may be.
	sources []*channel.Channel
}

func buildTable(cfg *Config, chans map[string]*channel.Channel) *table {
	t := &table{routes: make(map[string]*route, len(chans))}
	for name, ch := range chans {
		t.routes[name] = &route{ch: ch, rule: cfg.Channels[name]}
	}
	for _, name := range cfg.ChannelNames() {
		r := t.routes[name]
		if r == nil {
			continue
		}
		for _, d := range cfg.Targets(name) {
			if dr := t.routes[d]; dr != nil {
				r.targets = append(r.targets, dr.ch)
				dr.sources = append(dr.sources, r.ch)
			}
		}
	}
	return t
}

// handler returns the channel.Handler of one channel: it looks the route
// up in the current table for every event, so that a reload takes effect
// from the next event on. The event's frame and header are valid only
// during the call: the queues it goes to take their own references to
// the frame, and toNet copies what the network link keeps.
func (s *Server) handler(name string) channel.Handler {
	// The route found in the last table, so that the map is looked up
	// once per table, not once per event.
	type found struct {
		t *table
		r *route
	}
	var last atomic.Pointer[found]
	return func(from *channel.Conn, ev *channel.Event) {
		t := s.table.Load()
		f := last.Load()
		if f == nil || f.t != t {
			f = &found{t, t.routes[name]}
			last.Store(f)
		}
		r := f.r
		if r == nil {
			return // the channel is being removed
		}
		hdr := &ev.Header
		if r.rule.DumpToConsole {
			s.dump(hdr)
		}
		if hdr.To != ([16]byte{}) {
			s.sendTo(r, ev)
			return
		}
		if name == ControlChannel && s.control(from, hdr) {
			return
		}
		// One Event for all the channels: a JSON form, if any client
		// needs one, is made once.
		r.ch.SendEvent(ev, from)
		for _, d := range r.targets {
			d.SendEvent(ev, nil)
		}
		if r.rule.PropagateToNet {
			s.toNet(hdr, ev.Frame())
		}
		s.toNats(r, ev)
	}
}

// sendTo delivers an addressed event (a reply) to its one client: on the
// sender's channel, or on a channel whose rule propagates to it, so that
// a request that arrived by propagation can be answered. An addressee
// that is not there is counted, not an error.
func (s *Server) sendTo(r *route, ev *channel.Event) {
	to := uuid.UUID(ev.Header.To)
	c := r.ch.Client(to)
	for i := 0; c == nil && i < len(r.sources); i++ {
		c = r.sources[i].Client(to)
	}
	if c == nil && (s.replyToNats(&ev.Header) || s.replyToNet(ev)) {
		return // the asker is on the server the request came from
	}
	if c == nil {
		r.ch.CountUndeliverable()
		s.undeliverable.Add(1)
		s.log.Debug("addressed event dropped: its client is not connected", "channel", r.ch.Name(),
			"event", string(ev.Header.Event), "to", to)
		return
	}
	c.SendEvent(ev)
}

// maxDump is how much of an event's data dumptoconsole shows.
const maxDump = 512

func (s *Server) dump(ev *wire.EventHeader) {
	channel, event := string(ev.Channel), string(ev.Event)
	text := wire.Describe(channel, event, ev.Data)
	if len(text) > maxDump {
		text = text[:maxDump] + "…"
	}
	s.log.Info("event", "channel", channel, "event", event,
		"sender", uuid.UUID(ev.Sender), "id", uuid.UUID(ev.ID), "bytes", len(ev.Data), "data", text)
}
