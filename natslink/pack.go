package natslink

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math/bits"
	"strconv"
	"sync"

	"github.com/nats-io/nats.go"
	"github.com/netcluster/netcluster/internal/wire"
)

// HeaderPack marks a pack: a message that carries several events of one
// channel, its value their number. Its body is their frames one after
// another, each as a channel's socket carries it: a 4-byte big-endian
// length, then the Event frame (PROTOCOL.md). A pack has no other
// header: each frame holds its event's name, ids and data.
const HeaderPack = "Nc-Pack"

// Bounds of the packs: a pack is sent at maxPackBytes (or NATS's
// max_payload, when lower), and PublishFrame waits while maxPackedBytes
// wait to be sent, so that a NATS server that takes events slowly holds
// the publishers back, as a full multicast link does. At most
// maxFreePacks sent packs are kept for reuse.
const (
	maxPackBytes   = 64 << 10
	maxPackedBytes = 4 * maxPackBytes
	maxFreePacks   = 16
)

// packer gathers, per channel, the events that PublishFrame hands over
// while packLoop is sending the previous packs: under load a pack holds
// what came during one send, and a lone event goes alone, without
// waiting.
type packer struct {
	mu   sync.Mutex
	room sync.Cond // signalled when packLoop has sent packs, or stopped
	// filling is the pack of each channel that takes the next event;
	// queued are the packs to send, in the order of their first event.
	// last is the pack that took the last event, one of filling, so
	// that a run of events of one channel looks the map up once.
	filling map[string]*pack
	last    *pack
	queued  []*pack
	bytes   int // in the queued packs
	// limit is the size a pack is sent at (packLimit), as packLoop last
	// asked nats.go: not asked per event, as it takes nats.go's lock.
	limit    int
	stopped  bool
	free     []*pack
	kick     chan struct{}
	msg      nats.Msg     // reused by packLoop alone
	subjects subjectCache // packLoop's alone
}

// pack is a message being filled: frames of one channel.
type pack struct {
	channel string
	body    []byte
	n       int
}

func (p *packer) init(limit int) {
	p.limit = limit
	p.room.L = &p.mu
	p.filling = make(map[string]*pack)
	p.kick = make(chan struct{}, 1)
	p.msg.Header = nats.Header{}
}

// Packing reports whether the link sends the events of channels in
// packs (Config.Pack): then PublishFrame sends them, and Publish only
// replies.
func (l *Link) Packing() bool { return l.cfg.Pack }

// PublishFrame adds the frame of an event of channel (its length prefix
// included) to the channel's pack, waiting while the packs already hold
// maxPackedBytes. It copies frame before it returns. Errors: ErrClosed
// once the link is closing; a pack that NATS did not take is counted
// and logged (Stats.Dropped) when it is sent, not here.
func (l *Link) PublishFrame(channel, frame []byte) error {
	l.held.Wait(l.stop) // a closing link refuses the frame below
	p := &l.pk
	p.mu.Lock()
	for p.bytes >= maxPackedBytes && !p.stopped {
		p.room.Wait()
	}
	if p.stopped {
		p.mu.Unlock()
		return ErrClosed
	}
	pk := p.last
	if pk == nil || pk.channel != string(channel) {
		pk = p.filling[string(channel)]
	}
	queued := false
	if pk == nil || (pk.n > 0 && len(pk.body)+len(frame) > p.limit) {
		pk = p.newPack(string(channel))
		p.filling[pk.channel] = pk
		p.queued = append(p.queued, pk)
		queued = true
	}
	p.last = pk
	pk.body = append(pk.body, frame...)
	pk.n++
	p.bytes += len(frame)
	p.mu.Unlock()
	if queued {
		// Only a new pack needs packLoop woken: one that is filling is
		// queued already, and packLoop takes it with the pack whose
		// kick it has, or has yet to take.
		select {
		case p.kick <- struct{}{}:
		default:
		}
	}
	return nil
}

// pendingBytes is what the packs hold, not yet sent.
func (p *packer) pendingBytes() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.bytes
}

// packLimit is the size a pack's body is sent at: maxPackBytes, or the
// NATS server's max_payload when lower, less room for the header, which
// max_payload counts too; or less, so that a pack fits the outage
// buffer (Config.Buffer), which would drop a larger one whole.
func (l *Link) packLimit() int {
	limit := maxPackBytes
	if mp := l.nc.MaxPayload() - packHeaderRoom; mp > 0 && mp < int64(limit) {
		limit = int(mp)
	}
	if b := l.cfg.Buffer - packKeptRoom; l.cfg.Buffer > 0 && b < limit {
		limit = max(b, 1) // a pack holds one event at least
	}
	return limit
}

// packKeptRoom bounds what a pack takes in the outage buffer besides its
// body: subject and headers (msgSize).
const packKeptRoom = 1024

// packHeaderRoom bounds the header block of a pack:
// "NATS/1.0\r\nNc-Pack: <count>\r\n\r\n".
const packHeaderRoom = 64

func (p *packer) newPack(channel string) *pack {
	if n := len(p.free); n > 0 {
		pk := p.free[n-1]
		p.free = p.free[:n-1]
		pk.channel = channel
		return pk
	}
	return &pack{channel: channel}
}

// packLoop sends the packs as they fill, until Close: then it sends what
// is left, and PublishFrame returns ErrClosed from then on.
func (l *Link) packLoop() {
	defer l.wg.Done()
	p := &l.pk
	var sending []*pack
	for {
		stopping := false
		select {
		case <-p.kick:
		case <-l.stop:
			stopping = true
		}
		limit := l.packLimit() // the server connected to may have changed
		p.mu.Lock()
		p.limit = limit
		sending = append(sending[:0], p.queued...)
		p.queued = p.queued[:0]
		clear(p.filling)
		p.last = nil
		if stopping {
			p.stopped = true
			p.room.Broadcast()
		}
		p.mu.Unlock()
		sent := 0
		for _, pk := range sending {
			l.sendPack(pk)
			sent += len(pk.body)
		}
		p.mu.Lock()
		p.bytes -= sent
		for _, pk := range sending {
			if cap(pk.body) <= 2*maxPackBytes && len(p.free) < maxFreePacks {
				pk.body, pk.n = pk.body[:0], 0
				p.free = append(p.free, pk)
			}
		}
		p.room.Broadcast()
		p.mu.Unlock()
		clear(sending)
		if stopping {
			return
		}
	}
}

// sendPack publishes one pack; a pack of one event is a pack all the
// same, so that a receiver reads every event of the link alike.
func (l *Link) sendPack(pk *pack) {
	m := &l.pk.msg
	out := l.pk.subjects.of(&l.cfg, pk.channel)
	m.Subject, m.Data = out.subject, pk.body
	setHeader(m.Header, HeaderPack, strconv.Itoa(pk.n))
	l.send(m, pk.n, out) // counted there
	m.Data = nil
}

// published counts n events that a publication of err sent or dropped.
func (l *Link) published(n int, err error) error {
	switch {
	case err == nil:
		l.eventsOut.Add(uint64(n))
		return nil
	case errors.Is(err, nats.ErrReconnectBufExceeded):
		l.dropped.Add(uint64(n))
		if !l.dropping.Swap(true) {
			l.log.Warn("the buffer for NATS is full: events are dropped until it has been sent (NATS is down, or has taken none of it for a while)",
				"buffer", l.cfg.Buffer, "connected", l.nc.IsConnected())
		}
		return ErrDropped
	case errors.Is(err, nats.ErrConnectionClosed):
		l.dropped.Add(uint64(n))
		return ErrClosed
	}
	l.dropped.Add(uint64(n))
	if f := l.failed.Add(1); bits.OnesCount64(f) == 1 {
		l.log.Warn("sending events to NATS failed: they are dropped", "events", n, "failures", f, "err", err)
	}
	return err
}

// errPack is the error of a pack that is not frames of events.
var errPack = errors.New("natslink: malformed pack")

// nextPacked reads the first frame of a pack's body: the frame, length
// prefix included, its header, and what follows it. The frame must be a
// valid Event frame, with an id and a sender (wire.CheckEventIDs).
func nextPacked(body []byte) (frame []byte, hdr wire.EventHeader, rest []byte, err error) {
	if len(body) < wire.HeaderLen {
		return nil, hdr, nil, fmt.Errorf("%w: %d bytes left, less than a length", errPack, len(body))
	}
	n := binary.BigEndian.Uint32(body)
	if uint64(n) > uint64(len(body)-wire.HeaderLen) {
		return nil, hdr, nil, fmt.Errorf("%w: a frame of %d bytes, with %d left", errPack, n, len(body)-wire.HeaderLen)
	}
	end := wire.HeaderLen + int(n)
	hdr, err = wire.ParseEvent(body[wire.HeaderLen:end])
	if err == nil {
		err = wire.CheckEventIDs(&hdr)
	}
	if err != nil {
		return nil, hdr, nil, fmt.Errorf("%w: %w", errPack, err)
	}
	return body[:end:end], hdr, body[end:], nil
}
