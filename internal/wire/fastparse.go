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
	if hdr, n, ok := blobHead(body[p:]); ok {
		// bin or str: what an event's data usually is
		if uint64(hdr)+n == uint64(len(body)-p) {
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

// blobHead reads the head of a bin or str at the start of b: the head's
// length and the length of what follows it. ok is false for any other
// value, or a head cut short.
func blobHead(b []byte) (hdr int, n uint64, ok bool) {
	if len(b) == 0 {
		return 0, 0, false
	}
	c := b[0]
	switch {
	case c&0xe0 == 0xa0: // fixstr
		return 1, uint64(c & 0x1f), true
	case c == 0xc4 || c == 0xd9: // bin8, str8
		hdr = 2
	case c == 0xc5 || c == 0xda: // bin16, str16
		hdr = 3
	case c == 0xc6 || c == 0xdb: // bin32, str32
		hdr = 5
	default:
		return 0, 0, false
	}
	if len(b) < hdr {
		return 0, 0, false
	}
	for _, x := range b[1:hdr] {
		n = n<<8 | uint64(x)
	}
	return hdr, n, true
}
