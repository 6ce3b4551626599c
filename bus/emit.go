package bus

import (
	"context"
	"fmt"
	"sync"
	"unicode/utf8"

	"github.com/google/uuid"
)

func checkEvent(event string) error {
	if event == "" || len(event) > MaxEventName || !utf8.ValidString(event) {
		return fmt.Errorf("bus: invalid event name %q: want 1 to %d bytes of UTF-8", event, MaxEventName)
	}
	return nil
}

// Emit sends an event to the channel's other clients, and through the
// channel's rules to other channels and the network. data is any value
// msgpack can encode (RawData is sent as it is). The client's own
// listeners that match the event get it too, as an EventEmitter's would.
//
// Emit returns once the event is queued for the socket; it waits while
// the send buffer is full. Events from one client reach every receiver in
// the order Emit was called.
func (c *Client) Emit(event string, data any) error {
	m := Message{ID: c.ids.next(), Event: event}
	return c.send(&m, data)
}

// send emits m with data on the client's channel: it fills in the
// origin, sender and channel, encodes, queues the frame, and hands m to
// the client's own matching listeners unless it is addressed to another
// client.
func (c *Client) send(m *Message, data any) error {
	if err := checkEvent(m.Event); err != nil {
		return err
	}
	m.Origin, m.Sender, m.Channel = c.welcome.Node, c.id, c.channel
	buf := getBuf()
	defer putBuf(buf)
	// Encode the data straight into the frame: one encoding, and one copy
	// (into the send buffer, where frames wait to be written together).
	frame, start := appendEventHead(buf.frame[:0], m)
	dataAt := len(frame)
	frame, err := AppendData(frame, data)
	if err != nil {
		return err
	}
	dataEnd := len(frame)
	buf.frame = endEvent(frame, m, start)
	if n := len(buf.frame) - HeaderLen; n > int(c.welcome.MaxFrame) {
		return fmt.Errorf("%w: event %q is %d bytes, the server takes at most %d", ErrFrameTooBig, m.Event, n, c.welcome.MaxFrame)
	}
	if err := c.enqueue(buf.frame); err != nil {
		return err
	}
	if (m.To == uuid.Nil || m.To == c.id) && c.listeners.matchAny(m.Event) {
		local := *m
		local.Data = append([]byte(nil), buf.frame[dataAt:dataEnd]...)
		c.queue.push(local, false)
	}
	return nil
}

func (c *Client) enqueue(frame []byte) error {
	c.mu.Lock()
	for c.err == nil && !c.closing && len(c.out) > 0 && len(c.out)+len(frame) > c.opts.sendBuffer {
		c.space.Wait()
	}
	switch {
	case c.closing:
		c.mu.Unlock()
		return ErrClosed
	case c.err != nil:
		c.mu.Unlock()
		return ErrDisconnected
	}
	c.out = append(c.out, frame...)
	c.mu.Unlock()
	select {
	case c.wake <- struct{}{}:
	default:
	}
	return nil
}

// Flush waits until every event emitted so far is written to the socket,
// or ctx ends.
func (c *Client) Flush(ctx context.Context) error {
	stop := context.AfterFunc(ctx, func() {
		c.mu.Lock()
		c.space.Broadcast()
		c.mu.Unlock()
	})
	defer stop()
	c.mu.Lock()
	defer c.mu.Unlock()
	for (len(c.out) > 0 || c.writing) && c.err == nil && ctx.Err() == nil {
		c.space.Wait()
	}
	switch {
	case len(c.out) == 0 && !c.writing:
		return nil
	case c.err != nil:
		return ErrDisconnected
	}
	return fmt.Errorf("bus: flush: %w", ctx.Err())
}

func (c *Client) writeLoop() {
	defer c.ioDone.Done()
	for {
		select {
		case <-c.wake:
		case <-c.done:
			return
		}
		for {
			c.mu.Lock()
			if len(c.out) == 0 || c.err != nil {
				c.mu.Unlock()
				break
			}
			// spare must not keep the array that out now uses: a batch
			// too big to keep as spare would leave both pointing at it,
			// and the next batch would be written while Emit fills it.
			batch := c.out
			c.out, c.spare, c.writing = c.spare[:0], nil, true
			c.mu.Unlock()

			_, err := c.conn.Write(batch)

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
			c.space.Broadcast()
			c.mu.Unlock()
			if err != nil {
				c.end(fmt.Errorf("bus: writing to channel %q: %w", c.channel, err))
				return
			}
		}
	}
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
