package natslink

import (
	"github.com/google/uuid"
	"github.com/nats-io/nats.go"
)

// receive returns the handler of a channel's subscription (node false)
// or of the node's (node true): it decodes the message and delivers it,
// unless it is this node's own or the link is closed. nats.go calls a
// subscription's handler for one message at a time, so the handler
// decodes every message into the same Event.
func (l *Link) receive(node bool) nats.MsgHandler {
	prefix := Subject(l.cfg.Prefix, l.cfg.Cluster, "")
	var ev Event
	return func(m *nats.Msg) {
		ok := decode(&ev, m, prefix, node)
		if !ok {
			l.malformed.Add(1)
			l.log.Debug("dropped a malformed message from NATS", "subject", m.Subject)
			return
		}
		if ev.Origin == l.cfg.Node {
			return // ours, back through another connection of this server
		}
		l.deliverMu.RLock()
		defer l.deliverMu.RUnlock()
		if l.done {
			return
		}
		l.eventsIn.Add(1)
		l.peers.count(ev.Origin, len(m.Data))
		l.deliver(&ev)
	}
}

// decode reads an event from a message of a channel's subject, whose
// channel follows prefix, or of a node's subject (node true), which
// names its channel in a header, into ev.
func decode(ev *Event, m *nats.Msg, prefix string, node bool) bool {
	*ev = Event{Event: m.Header.Get(HeaderEvent), Data: m.Data}
	if node {
		ev.Channel = m.Header.Get(HeaderChannel)
	} else if len(m.Subject) > len(prefix) {
		ev.Channel = m.Subject[len(prefix):]
	}
	if ev.Event == "" || ev.Channel == "" {
		return false
	}
	ok := true
	id := func(name string, dst *uuid.UUID, made bool) {
		s := m.Header.Get(name)
		switch {
		case s != "":
			u, err := uuid.Parse(s)
			*dst, ok = u, ok && err == nil
		case made:
			*dst = uuid.New()
		}
	}
	id(HeaderID, &ev.ID, true)
	id(HeaderOrigin, &ev.Origin, false)
	// A sender the message does not name is made up, so that a reply
	// to it is addressed to nobody here rather than to everyone.
	id(HeaderSender, &ev.Sender, true)
	id(HeaderTo, &ev.To, false)
	id(HeaderRe, &ev.Re, false)
	// Replies only on a node's subject, and only replies there.
	return ok && node == (ev.To != uuid.Nil)
}
