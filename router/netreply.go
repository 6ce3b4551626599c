package router

import (
	"encoding/binary"

	"github.com/google/uuid"
	"github.com/netcluster/netcluster/channel"
	"github.com/netcluster/netcluster/internal/wire"
)

// Replies across the multicast group. A reply whose asker is not a
// local client, but one heard from over the network, is sent to the
// group; every server hears it, and only the one the asker
// is connected to delivers it. (Over NATS a reply goes to the asker's
// server alone: nats.go.)

// replyToNet sends a reply to the group when its asker is a client heard
// from over the network lately (Server.net.senders); it reports whether
// it took the reply: sent, or refused by the link and counted as a
// failed send (sendNet), not as undeliverable.
func (s *Server) replyToNet(ev *channel.Event) bool {
	link := s.net.link.Load()
	if link == nil || !s.net.senders.has(uuid.UUID(ev.Header.To)) {
		return false
	}
	// On the link that took over if a reload closes this one under the
	// send; one the link refuses still is dropped and counted as a
	// failed send, as any event for the network: its asker is there.
	return s.sendNet(uuid.UUID(ev.Header.ID), ev.Header.Channel, ev.Frame()[wire.HeaderLen:])
}

// replyFromNet delivers a reply from the network to its addressee, as
// out, when the addressee is a client of this server, and reports
// whether it did; other servers' replies are not for it, and are
// dropped without a word. An asker past its high-water mark holds the
// link back as fromNet's events do, briefly (Event.HoldBack), so that a
// flood of replies slows the replier's server, through flow control,
// instead of filling the asker's queue to maxpending: fromNet waits, as
// for an event, once it has released Server.linkMu, under which it
// calls this.
func (s *Server) replyFromNet(from uuid.UUID, ev *wire.EventHeader, msg []byte, out *channel.Event) bool {
	to := uuid.UUID(ev.To)
	for _, r := range s.table.Load().routes {
		if r.rule.Name == ControlChannel {
			continue // the control channel never takes events from the network
		}
		c := r.ch.Client(to)
		if c == nil {
			continue
		}
		frame := make([]byte, wire.HeaderLen+len(msg))
		binary.BigEndian.PutUint32(frame, uint32(len(msg)))
		copy(frame[wire.HeaderLen:], msg)
		*out = channel.NewEvent(frame)
		c.SendEvent(out)
		s.log.Debug("reply from the network delivered", "peer", from, "channel", r.ch.Name(), "to", to)
		return true
	}
	return false
}
