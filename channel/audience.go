package channel

// The audience of an event name.
//
// Deciding per client, the fan-out would look each client's filter up
// for every event: with 64 clients that each listen to one name, 64 map
// lookups to queue one frame. The channel keeps instead, per event name,
// the clients that take it (its audience), made once from their filters
// and looked up once per event. An audience holds for one receiver list
// and one generation of the channel's filters: any client that comes or
// goes replaces the list, and any filter swapped bumps the generation
// before its Applied is queued, so that an event read after an Applied
// never goes by an audience made before it. The clients of an audience
// are pushed with the filter it was made with, which pushFiltered checks
// again under the client's lock, as the per-client path does.
//
// Events addressed to someone, and events whose header cannot be
// parsed, take the per-client path; so does a name whose audience would
// take the channel's audiences past maxAudienceSize clients in all,
// which bounds their memory however many clients and names there are.

// maxAudienceSize bounds the clients that a channel's audiences hold in
// all.
const maxAudienceSize = 1 << 16

// audiences is a channel's cache of audiences for one receiver list and
// one generation of its filters.
type audiences struct {
	list  *[]*Conn
	gen   uint64
	names nameCache[*audience]
	size  int // clients held in all; under names.mu
}

// audience is who takes the events of one name.
type audience struct {
	conns   []*Conn
	filters []*filter // conns[i]'s filter when the audience was made
	skipped int       // the list's clients that do not take it
}

// audienceOf returns the audience of e, or nil when e takes the
// per-client path.
func (ch *Channel) audienceOf(e *Event) *audience {
	if !e.parsed() || e.Header.To != ([16]byte{}) {
		return nil
	}
	list, gen := ch.receivers.Load(), ch.filterGen.Load()
	if list == nil {
		return nil
	}
	as := ch.audiences.Load()
	if as == nil || as.list != list || as.gen != gen {
		as = &audiences{list: list, gen: gen}
		ch.audiences.Store(as)
	}
	name := e.Header.Event
	if a, ok := as.names.get(name); ok {
		return a
	}
	return as.names.add(name, func() (*audience, bool) {
		a := newAudience(*list, name)
		if as.size+len(a.conns) > maxAudienceSize {
			return a, false
		}
		as.size += len(a.conns)
		return a, true
	})
}

// newAudience decides, for each client of list, whether it takes the
// events named name.
func newAudience(list []*Conn, name []byte) *audience {
	a := &audience{}
	for _, c := range list {
		if c.removed.Load() {
			continue
		}
		f := c.interest.Load()
		if f == nil || f.wants(name) {
			a.conns = append(a.conns, c)
			a.filters = append(a.filters, f)
		} else {
			a.skipped++
		}
	}
	return a
}

// sendTo queues e for the audience a of channel ch, except the client
// except, and returns how many clients of the list e was filtered out
// for.
func (a *audience) sendTo(ch *Channel, e *Event, except *Conn) uint64 {
	exceptTakes := false
	for i, c := range a.conns {
		if c == except {
			exceptTakes = true
			continue
		}
		if !c.removed.Load() {
			c.pushFiltered(e, true, a.filters[i])
		}
	}
	skipped := a.skipped
	if except != nil && !exceptTakes && skipped > 0 && except.ch == ch {
		skipped-- // the sender is not counted as filtered out
	}
	return uint64(skipped)
}
