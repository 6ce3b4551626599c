package channel

import (
	"unsafe"

	"github.com/netcluster/netcluster/internal/wire"
)

// Event is one event on its way through a channel: its frame, length
// prefix included, the header parsed from it, and the JSON text form
// made from it the first time a JSON client needs it. An Event is used
// by one goroutine at a time.
//
// The Event a Handler receives is one a client sent: its Header is
// parsed, and its frame was read into a pooled buffer, both valid only
// until the Handler returns. The queues that SendEvent and Conn.SendEvent
// put it in take their own reference to the buffer, but anything else
// that keeps the frame must copy it (Copy). The JSON form is the Event's
// own and may be kept.
type Event struct {
	// Header is the event's header, parsed from the frame, which its
	// byte slices alias; nobody may modify it. It is set in the Events a
	// Handler receives, and zero in one made by NewEvent.
	Header wire.EventHeader

	frame []byte
	ref   *frameBuf // the pooled buffer of frame; nil when the GC owns frame
	// slab is the first byte of a buffer the GC owns that frame lies
	// in, with other events' frames (SetFrame), and slabCap its size;
	// nil otherwise.
	slab    *byte
	slabCap int
	taken   int // references to ref that queues took, not yet added to its count
	// src is the client that sent the event, for the Event its read loop
	// hands to the Handler; nil otherwise. hold is a client that the
	// event took past its high-water mark, whose queue the sender is to
	// wait for (flow.go); never src.
	src, hold *Conn
	json      []byte
	tried     bool
	ok        bool
	// unparsable is set once parsed has failed on the frame.
	unparsable bool
	// control marks a frame of the protocol's own (Applied) that the
	// channel's counters leave out, as they leave out the Welcome:
	// frames_out counts events (and pings).
	control bool
	// at is when the read that brought the frame returned, in monoNow
	// nanoseconds; 0 for an event not read from a client. Frames parsed
	// from one read share it, so the ring reads the clock once per read,
	// not once per event.
	at int64
}

// NewEvent wraps an event frame, length prefix included, for SendEvent.
// The frame is handed over: the queues share it until they have written
// it, and nobody may modify it. The Event's Header is left zero.
func NewEvent(frame []byte) Event { return Event{frame: frame} }

// SetFrame makes e what NewEvent(frame) makes, in place, with hdr as its
// Header when not nil (then parsed from frame). slab, when not nil, is a
// buffer that frame lies in with other events' frames, one after the
// other (a NATS pack's body), which is handed over too: nobody may
// modify any of it. The frames of consecutive events of one slab are
// then written to a client as one slice of it.
func (e *Event) SetFrame(frame, slab []byte, hdr *wire.EventHeader) {
	*e = Event{frame: frame, slab: unsafe.SliceData(slab), slabCap: cap(slab)}
	if hdr != nil {
		e.Header = *hdr
	}
}

// Frame returns the event frame, length prefix included. For the Event a
// Handler receives, it is valid only until the Handler returns.
func (e *Event) Frame() []byte { return e.frame }

// Copy returns a copy of the frame that the caller owns.
func (e *Event) Copy() []byte { return append([]byte(nil), e.frame...) }

// reset empties the Event for the next frame a client sends.
func (e *Event) reset(frame []byte, ref *frameBuf) {
	*e = Event{frame: frame, ref: ref}
}

// text returns the JSON form, making it on first use; the channel asking
// counts it. ok is false when the event cannot be said in JSON (its data
// holds a map keyed by arrays, say); the channel's log says why, once
// per event.
func (e *Event) text(ch *Channel) ([]byte, bool) {
	if !e.tried {
		e.tried = true
		var err error
		e.json, err = wire.AppendJSON(nil, e.frame[wire.HeaderLen:])
		e.ok = err == nil
		ch.jsonEncoded.Add(1)
		if err != nil {
			ch.log.Info("event not delivered to JSON clients", "reason", err)
		}
	}
	return e.json, e.ok
}

// parsed makes sure e.Header is parsed from the frame, once, and reports
// whether it is: an Event made by NewEvent has its header parsed only
// when a client's filter needs its name.
func (e *Event) parsed() bool {
	if e.Header.Event != nil {
		return true // a parsed name has at least one byte
	}
	if e.unparsable || len(e.frame) < wire.HeaderLen {
		return false
	}
	h, err := wire.ParseEvent(e.frame[wire.HeaderLen:])
	if err != nil {
		e.unparsable = true
		return false
	}
	e.Header = h
	return true
}
