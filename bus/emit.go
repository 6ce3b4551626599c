package bus

import (
	"context"
	"encoding/binary"
	"fmt"
	"sync"

	"github.com/netcluster/netcluster/internal/wire"

	"github.com/google/uuid"
)

func checkEvent(event string) error {
	if err := wire.CheckEventName(event); err != nil {
		return fmt.Errorf("bus: %w", err)
	}
	return nil
}

// checkName is checkEvent for an event the client emits, remembering the
// last name that passed: a publisher mostly emits one name after
// another, which is then compared, not checked again.
func (c *Client) checkName(event string) error {
	if last := c.lastName.Load(); last != nil && *last == event {
		return nil
	}
	if err := checkEvent(event); err != nil {
		return err
	}
	name := new(string)
	*name = event
	c.lastName.Store(name)
	return nil
}

// Emit sends an event to the channel's other clients, and through the
// channel's rules to other channels and the network. data is any value
// msgpack can encode (RawData is sent as it is). The client's own
// listeners that match the event get it too, as an EventEmitter's would.
//
// Emit returns once the event is queued for the socket; it waits while
// the send buffer is full. Events from one client reach every receiver in
// the order Emit was called. While the client is disconnected and
// reconnecting, Emit keeps the event in the reconnect buffer, to be sent
// once connected again, and returns ErrBufferFull when it does not fit.
func (c *Client) Emit(event string, data any) error {
	m := Message{ID: c.ids.next(), Event: event}
	_, err := c.send(context.Background(), &m, data, true)
	return err
}

// send emits m with data on the client's channel: it fills in the
// origin, sender and channel, encodes, queues the frame, and hands m to
// the client's own matching listeners unless it is addressed to another
// client. While disconnected, it keeps the frame for the next connection
// when buffer is set, and fails otherwise. It returns the connection the
// frame was queued on, nil when it was kept for the next one. ctx bounds
// the wait for room in the send buffer (Request's; Emit and Reply pass
// context.Background): its error is returned when it ends first.
func (c *Client) send(ctx context.Context, m *Message, data any, buffer bool) (*session, error) {
	if err := c.checkName(m.Event); err != nil {
		return nil, err
	}
	m.Channel = c.channel
	buf := getBuf()
	defer putBuf(buf)
	// Encode the data straight into the frame: one encoding, and one copy
	// (into the send buffer, where frames wait to be written together).
	// The origin and sender are filled in as the frame is queued, from
	// the connection it goes out on.
	frame, start := wire.AppendEventHead(buf.frame[:0], m.wireMessage())
	dataAt := len(frame)
	frame, err := wire.AppendData(frame, data)
	if err != nil {
		return nil, err
	}
	dataEnd := len(frame)
	buf.frame = wire.EndEvent(frame, m.wireMessage(), start)
	if n, limit := len(buf.frame)-wire.HeaderLen, c.maxFrame.Load(); int64(n) > limit {
		return nil, fmt.Errorf("%w: event %s is %d bytes, the server takes at most %d", ErrFrameTooBig, wire.Clip(m.Event, 32), n, limit)
	}
	s, err := c.enqueue(ctx, buf.frame, m, buffer)
	if err != nil {
		return nil, err
	}
	// An event addressed to this client itself comes back from the
	// server (PROTOCOL.md § 6.3), where a reply goes to its Request:
	// only an ordinary event is heard here, at once.
	if m.To == uuid.Nil && c.listeners.matchAny(m.Event) {
		local := *m
		local.Data = append([]byte(nil), buf.frame[dataAt:dataEnd]...)
		c.queue.push(local)
	}
	return s, nil
}

// enqueue appends an event frame to the send buffer, with the origin
// and sender of the client's connection (the last one, while
// disconnected: install fills in the next one's), which it also sets in
// m.
func (c *Client) enqueue(ctx context.Context, frame []byte, m *Message, buffer bool) (*session, error) {
	c.mu.Lock()
	if c.sess != nil && !c.closing && len(c.out) > 0 && len(c.out)+len(frame) > c.opts.sendBuffer {
		lent := goid() == c.want.dispatcher.Load() // from a listener: read on meanwhile (queue.lend)
		if lent {
			c.queue.lend(maxOverdraft)
		}
		var ended <-chan struct{}
		if ctx.Done() != nil {
			ended = ctx.Done()
			stop := context.AfterFunc(ctx, func() {
				c.mu.Lock()
				c.space.Broadcast()
				c.mu.Unlock()
			})
			defer stop()
		}
		for c.sess != nil && !c.closing && len(c.out) > 0 && len(c.out)+len(frame) > c.opts.sendBuffer && !isDone(ended) {
			c.space.Wait()
		}
		if lent {
			c.queue.lend(0)
		}
		if isDone(ended) {
			c.mu.Unlock()
			return nil, ctx.Err()
		}
	}
	switch {
	case c.closing:
		c.mu.Unlock()
		return nil, ErrClosed
	case c.err != nil:
		c.mu.Unlock()
		return nil, ErrDisconnected
	case c.sess == nil && (!buffer || !c.opts.reconnect):
		c.mu.Unlock()
		return nil, ErrDisconnected
	case c.sess == nil && len(c.out)+len(frame) > c.opts.reconnectBuffer:
		c.mu.Unlock()
		return nil, ErrBufferFull
	}
	at := len(c.out)
	c.out = growOut(c.out, len(frame), c.opts.sendBuffer)
	c.out = append(c.out, frame...)
	m.Origin, m.Sender = c.last.welcome.Node, c.last.id
	wire.StampEvent(c.out[at:], m.Origin, m.Sender)
	s := c.sess
	c.mu.Unlock()
	if s != nil {
		c.poke()
	}
	return s, nil
}

// isDone says whether done, nil for never, is closed.
func isDone(done <-chan struct{}) bool {
	select {
	case <-done:
		return true
	default:
		return false
	}
}

// growOut makes room in out for n more bytes. It doubles the capacity
// as append would, but never past the send buffer unless one frame needs
// more: append's own growth overshoots it, and the writer keeps a batch
// for reuse only up to the send buffer, so a publisher that keeps the
// buffer full would otherwise grow a new one for every batch.
func growOut(out []byte, n, sendBuffer int) []byte {
	need := len(out) + n
	if need <= cap(out) {
		return out
	}
	grown := make([]byte, len(out), min(max(2*cap(out), need, 512), max(sendBuffer, need)))
	copy(grown, out)
	return grown
}

// Flush waits until every event emitted so far is written to the socket,
// or ctx ends. While the client reconnects, it waits for the next
// connection to write them. When the connection breaks in the middle of
// a write meanwhile, the events of that write may be lost (never sent
// twice): Flush then returns an error that matches ErrDisconnected.
// Written is not read: a server that closes the connection without
// reading what the socket holds loses it, and Flush cannot tell. A
// server that drops the client (a slow consumer, a ping timeout) reads
// what it sent up to its close, and the client lets the write it is in
// end before it closes (PROTOCOL.md § 7).
func (c *Client) Flush(ctx context.Context) error {
	stop := context.AfterFunc(ctx, func() {
		c.mu.Lock()
		c.space.Broadcast()
		c.mu.Unlock()
	})
	defer stop()
	c.mu.Lock()
	defer c.mu.Unlock()
	failed := c.failed
	for (len(c.out) > 0 || c.writing) && c.err == nil && !(c.closing && c.sess == nil) && ctx.Err() == nil {
		c.space.Wait()
	}
	switch {
	case c.failed != failed:
		return fmt.Errorf("bus: flush: the connection broke during a write, whose events may be lost: %w", ErrDisconnected)
	case len(c.out) == 0 && !c.writing:
		return nil
	case c.err != nil, c.closing && c.sess == nil:
		return ErrDisconnected
	}
	return fmt.Errorf("bus: flush: %w", ctx.Err())
}

// writeLoop writes what is queued to connection s, as long as s is the
// client's connection.
func (c *Client) writeLoop(s *session) {
	defer s.io.Done()
	for {
		select {
		case <-c.wake:
		case <-s.done:
			return
		}
		for {
			c.mu.Lock()
			if len(c.out) == 0 || c.sess != s {
				c.mu.Unlock()
				break
			}
			// spare must not keep the array that out now uses: a batch
			// too big to keep as spare would leave both pointing at it,
			// and the next batch would be written while Emit fills it.
			batch := c.out
			c.out, c.spare, c.writing = c.spare[:0], nil, true
			c.mu.Unlock()

			wrote, err := s.writeChunks(batch)

			c.mu.Lock()
			// Keep the written batch for the next swap unless a frame
			// bigger than the send buffer made it grow past it: a
			// publisher that runs ahead of its writer then reuses two
			// buffers instead of growing a new one for every batch.
			if cap(batch) <= max(c.opts.sendBuffer, maxSpare) {
				c.spare = batch[:0]
			} else {
				// c.out may be spare's array: never hand it out again,
				// or the next batch would be written while Emit appends
				// to it.
				c.spare = nil
			}
			c.writing = false
			if err != nil && eventsUnwritten(batch, wrote) {
				c.failed++ // Flush tells of it
			}
			c.space.Broadcast()
			c.mu.Unlock()
			if err != nil {
				// What this batch held is lost, whether the server read
				// some of it or not: at most once.
				c.endSession(s, fmt.Errorf("bus: writing to channel %q: %w", c.channel, err))
				return
			}
		}
	}
}

// writeChunk bounds one write of the send queue to the socket; the
// pinger takes each writeChunk written as a sign of a live server.
const writeChunk = 64 << 10

// writeChunks writes b to the connection a chunk at a time, counting
// the bytes (session.wrote) for the pinger. It returns how many bytes
// of b it wrote.
func (s *session) writeChunks(b []byte) (int, error) {
	total := 0
	for total < len(b) {
		n, err := s.nc.Write(b[total:min(len(b), total+writeChunk)])
		s.wrote.Add(uint64(n))
		total += n
		if err != nil {
			return total, err
		}
	}
	return total, nil
}

// eventsUnwritten reports whether batch, frames of the send buffer of
// which the first wrote bytes were written, holds an event frame not
// written whole: pings, pongs and Interest frames lost to a broken
// connection lose no event.
func eventsUnwritten(batch []byte, wrote int) bool {
	for off := 0; off+wire.HeaderLen <= len(batch); {
		size := wire.HeaderLen + int(binary.BigEndian.Uint32(batch[off:]))
		if off+size > wrote && wire.FrameType(batch[off+wire.HeaderLen+1]) == wire.FrameEvent {
			return true
		}
		off += size
	}
	return false
}

// sendBuf holds the scratch space of one Emit.
type sendBuf struct{ frame []byte }

var sendBufs = sync.Pool{New: func() any { return new(sendBuf) }}

func getBuf() *sendBuf { return sendBufs.Get().(*sendBuf) }

func putBuf(b *sendBuf) {
	if cap(b.frame) <= maxSpare {
		sendBufs.Put(b)
	}
}
