package wire

// parseEventFast decodes the event frames that Go clients and servers
// write, in their usual encoding: a fixarray of exactly the seven
// fields, frame type as a positive fixint, ids as bin8 of 16 bytes,
// channel and event as fixstr or str8. It reports false for anything
// else, valid or not, and ParseEvent then takes the general path, which
// accepts every encoding and says what is wrong. For what it accepts it
// returns exactly what the general path would.
func parseEventFast(body []byte) (h EventHeader, ok bool) {
	if len(body) < eventIDsEnd+3 || body[0] != 0x97 || body[1] != byte(FrameEvent) {
		return h, false
	}
	for _, at := range [...]int{EventIDAt, EventOriginAt, EventSenderAt} {
		if body[at-2] != 0xc4 || body[at-1] != 16 {
			return h, false
		}
	}
	copy(h.ID[:], body[EventIDAt:])
	copy(h.Origin[:], body[EventOriginAt:])
	copy(h.Sender[:], body[EventSenderAt:])
	p := eventIDsEnd
	if h.Channel, p, ok = fastStr(body, p); !ok {
		return h, false
	}
	if h.Event, p, ok = fastStr(body, p); !ok {
		return h, false
	}
	if p >= len(body) {
		return h, false
	}
	if body[p] == 0xc4 { // bin8: what an event's data usually is
		if p+2 <= len(body) && p+2+int(body[p+1]) == len(body) {
			h.Data = body[p:len(body):len(body)]
			return h, true
		}
		return h, false
	}
	r := reader{b: body, off: p}
	h.Data = r.skipValue("data")
	if r.err != nil || r.off != len(body) {
		return h, false
	}
	return h, true
}

// fastStr reads a fixstr or str8 at p.
func fastStr(b []byte, p int) ([]byte, int, bool) {
	if p >= len(b) {
		return nil, p, false
	}
	var n int
	switch c := b[p]; {
	case c&0xe0 == 0xa0:
		n, p = int(c&0x1f), p+1
	case c == 0xd9 && p+1 < len(b):
		n, p = int(b[p+1]), p+2
	default:
		return nil, p, false
	}
	if n > len(b)-p {
		return nil, p, false
	}
	return b[p : p+n : p+n], p + n, true
}
