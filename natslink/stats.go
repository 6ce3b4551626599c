package natslink

import (
	"sync"
	"time"

	"github.com/nats-io/nats.go"
)

// Stats are the link's counters. Each field's tags say where it is
// shown: json and msgpack name it in the stats control answer, metric
// (with help) in the Prometheus metrics.
type Stats struct {
	// Connected is true while the link is connected to a NATS server.
	Connected bool `json:"connected" msgpack:"connected" metric:"netcluster_nats_connected" help:"1 while the server is connected to NATS."`
	// Server is the URL of the NATS server connected to, without
	// credentials; "" while disconnected.
	Server string `json:"server" msgpack:"server"`
	// Stalled is true when the connection's figures (Connected,
	// Server, MsgsOut to BytesIn, Reconnects, Buffered) did not come
	// within a second, because nats.go held its connection: a write
	// waits for a NATS server, or a path to it, that takes nothing
	// (Config.WriteTimeout at most), or an attempt to connect waits for
	// one that does not answer. They are then those last read.
	Stalled bool `json:"stalled" msgpack:"stalled" metric:"netcluster_nats_stalled" help:"1 while the NATS connection has been held for more than a second: a write waits for a NATS server that takes nothing, or a connection attempt for one that does not answer."`
	// EventsOut and EventsIn count the events sent and delivered.
	EventsOut uint64 `json:"events_out" msgpack:"events_out" metric:"netcluster_nats_events_out_total" help:"Events sent to NATS."`
	EventsIn  uint64 `json:"events_in" msgpack:"events_in" metric:"netcluster_nats_events_in_total" help:"Events received from NATS and delivered."`
	// MsgsOut, MsgsIn, BytesOut and BytesIn are the connection's, as
	// nats.go counts them: heartbeats included, headers not.
	MsgsOut  uint64 `json:"msgs_out" msgpack:"msgs_out" metric:"netcluster_nats_messages_out_total" help:"NATS messages sent, heartbeats included."`
	MsgsIn   uint64 `json:"msgs_in" msgpack:"msgs_in" metric:"netcluster_nats_messages_in_total" help:"NATS messages received, heartbeats included."`
	BytesOut uint64 `json:"bytes_out" msgpack:"bytes_out" metric:"netcluster_nats_bytes_out_total" help:"Bytes of the NATS messages sent."`
	BytesIn  uint64 `json:"bytes_in" msgpack:"bytes_in" metric:"netcluster_nats_bytes_in_total" help:"Bytes of the NATS messages received."`
	// Reconnects counts the reconnections since the link opened.
	Reconnects uint64 `json:"reconnects" msgpack:"reconnects" metric:"netcluster_nats_reconnects_total" help:"Reconnections to NATS."`
	// Buffered is what waits in the buffer now, in bytes: kept while NATS
	// was away and not yet handed to nats.go, and nats.go's own.
	Buffered int `json:"buffered" msgpack:"buffered" metric:"netcluster_nats_buffered_bytes" help:"Bytes waiting for NATS in the buffer."`
	// Dropped counts the events dropped: the buffer was full while NATS
	// was down (or, NATS back, nothing of it had gone for PeerTimeout
	// and Heartbeat), or the link closed (a reload, a shutdown) while
	// NATS was down, with events still in the buffer; with JetStream,
	// also those the stream refused.
	Dropped uint64 `json:"dropped" msgpack:"dropped" metric:"netcluster_nats_dropped_total" help:"Events dropped because NATS was down (the buffer was full, or the link closed with events in it), or refused by the JetStream stream."`
	// DroppedIn counts the messages from NATS that nats.go dropped: they
	// came faster than the server delivered them, past a subscription's
	// pending limits. A message is an event, or a pack of events.
	DroppedIn uint64 `json:"dropped_in" msgpack:"dropped_in" metric:"netcluster_nats_dropped_in_total" help:"Messages from NATS (events, or packs of events) dropped because they came faster than the server delivered them."`
	// MissedIn counts the events of other servers that never reached
	// this one: the numbering of their sender's messages (HeaderSeq)
	// skips them. It counts the events of the messages in DroppedIn, and
	// those lost in NATS: on a NATS server that died with them, or
	// published while this server was disconnected; with JetStream,
	// those the stream refused or dropped. Events of plain NATS programs
	// and replies are not numbered; nor is what a server sent before a
	// subscription began, or from a link of its own that this one never
	// heard from.
	MissedIn uint64 `json:"missed_in" msgpack:"missed_in" metric:"netcluster_nats_missed_in_total" help:"Events of other servers that never came from NATS: their sender's numbering skips them."`
	// JetStreamLag is what the JetStream consumer has yet to deliver, as
	// last asked (every heartbeat); 0 without JetStream.
	JetStreamLag uint64 `json:"jetstream_lag" msgpack:"jetstream_lag" metric:"netcluster_nats_jetstream_lag" help:"Events the JetStream consumer has yet to deliver, as last asked."`
	// JetStreamUnacked counts the events sent to the JetStream stream
	// whose acknowledgement did not come within 5 s (jsAckTimeout), the
	// connection up: the stream may or may not have stored them, and
	// the receiving servers count those it lacks (MissedIn). 0 without
	// JetStream.
	JetStreamUnacked uint64 `json:"jetstream_unacked" msgpack:"jetstream_unacked" metric:"netcluster_nats_jetstream_unacked_total" help:"Events sent to the JetStream stream whose acknowledgement never came: the stream may not have stored them."`
	// Malformed counts the messages that were not events.
	Malformed uint64 `json:"malformed" msgpack:"malformed" metric:"netcluster_nats_malformed_total" help:"Messages from NATS that were not events."`
	// FlowHeld counts the times a publisher waited for a receiver
	// (Config.FlowControl), with JetStream for the stream's
	// acknowledgements (jsRoom), or, NATS back, for room in the buffer
	// kept while it was away (awaitRoom); FlowHeldMs the time they
	// waited in all.
	FlowHeld   uint64 `json:"flow_held" msgpack:"flow_held" metric:"netcluster_nats_flow_held_total" help:"Times events for NATS waited for a receiving server (flow control), for the JetStream stream, or for room in the buffer sent after an outage."`
	FlowHeldMs uint64 `json:"flow_held_ms" msgpack:"flow_held_ms" metric:"netcluster_nats_flow_held_milliseconds_total" help:"Milliseconds events for NATS waited for a receiving server (flow control), for the JetStream stream, or for room in the buffer sent after an outage."`
	// FlowExcluded counts the receivers that left flow control: they
	// held the sender back and took nothing for PeerTimeout.
	FlowExcluded uint64 `json:"flow_excluded" msgpack:"flow_excluded" metric:"netcluster_nats_flow_excluded_total" help:"Receiving servers that left NATS flow control: they took nothing for peertimeout."`
	// FlowReceivers is how many servers' reports hold the sending back
	// now, on some subject.
	FlowReceivers int `json:"flow_receivers" msgpack:"flow_receivers" metric:"netcluster_nats_flow_receivers" help:"Receiving servers whose reports bound what this server sends to NATS."`
	// ReportsOut and ReportsIn count the flow reports sent to the
	// senders and received from the receivers.
	ReportsOut uint64 `json:"reports_out" msgpack:"reports_out" metric:"netcluster_nats_reports_out_total" help:"Flow reports sent to the servers whose events this one takes over NATS."`
	ReportsIn  uint64 `json:"reports_in" msgpack:"reports_in" metric:"netcluster_nats_reports_in_total" help:"Flow reports received from the servers that take this one's events over NATS."`
}

// Plus returns st with the counters of o, a link that st's link took
// over from, added: the gauges (Connected, Server, Stalled, Buffered,
// JetStreamLag, FlowReceivers) stay st's.
func (st Stats) Plus(o Stats) Stats {
	st.EventsOut += o.EventsOut
	st.EventsIn += o.EventsIn
	st.MsgsOut += o.MsgsOut
	st.MsgsIn += o.MsgsIn
	st.BytesOut += o.BytesOut
	st.BytesIn += o.BytesIn
	st.Reconnects += o.Reconnects
	st.Dropped += o.Dropped
	st.DroppedIn += o.DroppedIn
	st.MissedIn += o.MissedIn
	st.JetStreamUnacked += o.JetStreamUnacked
	st.Malformed += o.Malformed
	st.FlowHeld += o.FlowHeld
	st.FlowHeldMs += o.FlowHeldMs
	st.FlowExcluded += o.FlowExcluded
	st.ReportsOut += o.ReportsOut
	st.ReportsIn += o.ReportsIn
	return st
}

// Stats returns the link's counters. It waits for the connection's
// figures (Connected, Server, MsgsOut to BytesIn, Reconnects, Buffered)
// for statsWait at most: past it, they are those last read, and Stalled
// is set.
func (l *Link) Stats() Stats {
	c, fresh := l.connStats()
	return Stats{
		Connected: c.connected, Server: c.server, Stalled: !fresh,
		EventsOut: l.eventsOut.Load(), EventsIn: l.eventsIn.Load(),
		MsgsOut: c.nats.OutMsgs, MsgsIn: c.nats.InMsgs, BytesOut: c.nats.OutBytes, BytesIn: c.nats.InBytes,
		Reconnects: c.nats.Reconnects, Buffered: c.buffered,
		Dropped: l.dropped.Load(), DroppedIn: l.droppedIn(), MissedIn: l.missed.Load(), Malformed: l.malformed.Load(),
		JetStreamLag: l.js.lag.Load(), JetStreamUnacked: l.jsOut.unknown.Load(),
		FlowHeld: l.flowHeld.Load(), FlowHeldMs: l.flowHeldNs.Load() / uint64(time.Millisecond),
		FlowExcluded: l.flowExcluded.Load(), FlowReceivers: l.flowReceivers(),
		ReportsOut: l.reportsOut.Load(), ReportsIn: l.reportsIn.Load(),
	}
}

// statsWait is how long Stats waits for the connection's figures.
const statsWait = time.Second

// connFigures are the figures of Stats that nats.go keeps under its
// connection's lock, and the outage buffer's size, under out.mu. A
// publisher whose write waits on a NATS server that takes nothing
// holds both, until WriteTimeout.
type connFigures struct {
	connected bool
	server    string
	nats      nats.Statistics
	buffered  int
}

// statsReader reads the connection's figures for Stats, each time on a
// goroutine of its own, so that Stats need not wait for them.
type statsReader struct {
	mu      sync.Mutex
	last    connFigures // what the latest read to end found
	lastSeq uint64      // the number of that read
	seq     uint64      // the number of the last read begun
	// late is set when a read did not end within statsWait: the
	// connection is held, and Stats gives last at once, until a read
	// ends.
	late   bool
	closed bool // the link is closed: Stats reads the figures itself
	wg     sync.WaitGroup
}

// connStats returns the connection's figures, read since the call
// began, and true; or, when they do not come within statsWait, or an
// earlier read is late already, those the latest read found, and false.
func (l *Link) connStats() (connFigures, bool) {
	r := &l.statsRead
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return l.readConn(), true // nothing holds a closed connection
	}
	if r.late {
		defer r.mu.Unlock()
		return r.last, false
	}
	r.seq++
	seq, read := r.seq, make(chan connFigures, 1)
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		c := l.readConn()
		r.mu.Lock()
		if seq > r.lastSeq {
			r.last, r.lastSeq = c, seq
		}
		r.late = false
		r.mu.Unlock()
		read <- c
	}()
	r.mu.Unlock()
	timer := time.NewTimer(statsWait)
	defer timer.Stop()
	select {
	case c := <-read:
		return c, true
	case <-timer.C:
		r.mu.Lock()
		defer r.mu.Unlock()
		if r.lastSeq >= seq {
			return r.last, true // it ended as the timer fired
		}
		r.late = true // until this read, still under way, ends
		return r.last, false
	}
}

// readConn reads the connection's figures; it waits while a write to
// NATS holds the connection.
func (l *Link) readConn() connFigures {
	buffered, err := l.nc.Buffered() // -1 and an error once closed
	if err != nil {
		buffered = 0
	}
	return connFigures{connected: l.nc.IsConnected(), server: l.nc.ConnectedUrlRedacted(),
		nats: l.nc.Stats(), buffered: max(buffered, 0) + l.keptBytes()}
}

// closeStats waits for the reads under way, once the connection is
// closed: from then on Stats reads the figures itself.
func (l *Link) closeStats() {
	r := &l.statsRead
	r.mu.Lock()
	r.closed = true
	r.mu.Unlock()
	r.wg.Wait()
}
