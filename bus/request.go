package bus

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/google/uuid"
	"github.com/netcluster/netcluster/internal/wire"
)

// ReplySuffix is appended to a request's event name to name its reply:
// the answer to "nc-control-stats" is "nc-control-stats-response".
const ReplySuffix = wire.ReplySuffix

// pendingRequests maps the id of each request waiting for its reply to
// the channel the reply is handed over on.
type pendingRequests struct {
	mu sync.Mutex
	m  map[uuid.UUID]chan Message
}

func (p *pendingRequests) add(id uuid.UUID) chan Message {
	ch := make(chan Message, 1)
	p.mu.Lock()
	if p.m == nil {
		p.m = make(map[uuid.UUID]chan Message)
	}
	p.m[id] = ch
	p.mu.Unlock()
	return ch
}

func (p *pendingRequests) remove(id uuid.UUID) {
	p.mu.Lock()
	delete(p.m, id)
	p.mu.Unlock()
}

// deliver hands m to the request it answers and reports whether one was
// waiting. Only the first reply counts; a second one is not delivered.
func (p *pendingRequests) deliver(m Message) bool {
	p.mu.Lock()
	ch, ok := p.m[m.InReplyTo]
	delete(p.m, m.InReplyTo)
	p.mu.Unlock()
	if ok {
		ch <- m // buffered, and the only send
	}
	return ok
}

// Request emits event with data, as Emit does, and waits for the first
// reply to it: an event whose InReplyTo is the request's id, sent with
// Reply (or by the server, for control requests). The reply goes to this
// client only, and is returned here rather than handed to listeners.
//
// Request returns ctx's error when ctx ends first, and ErrDisconnected
// (or ErrClosed after Close) when the connection ends first: the reply
// would go to the client id of that connection, which the next one does
// not have, so a request is never resent. While the client reconnects,
// Request fails at once with ErrDisconnected. A reply that arrives after
// Request has returned is handed to listeners like any other event.
func (c *Client) Request(ctx context.Context, event string, data any) (Message, error) {
	m := Message{ID: c.ids.next(), Event: event}
	wait := c.pending.add(m.ID)
	defer c.pending.remove(m.ID)
	c.heard() // the reply must be read, history or not (Since)
	s, err := c.send(ctx, &m, data, false)
	if cerr := ctx.Err(); err != nil && cerr != nil && errors.Is(err, cerr) {
		return Message{}, fmt.Errorf("bus: request %q on channel %q: %w", event, c.channel, cerr)
	}
	if err != nil {
		return Message{}, err
	}
	select {
	case reply := <-wait:
		return reply, nil
	case <-ctx.Done():
		return Message{}, fmt.Errorf("bus: request %q on channel %q: %w", event, c.channel, ctx.Err())
	case <-s.done:
		select {
		case reply := <-wait: // it arrived just before the end
			return reply, nil
		default:
		}
		if s.err == ErrClosed {
			return Message{}, ErrClosed
		}
		return Message{}, ErrDisconnected
	}
}

// Reply answers the request m with data: it emits m.Event+"-response" on
// this client's channel, addressed to the client that sent m and marked
// as the answer to m. The server delivers it to that client only (also
// when m reached this client through propagation from another channel),
// never to the channel's other clients or the network. If the asker has
// gone away the server drops the reply and counts it.
func (c *Client) Reply(m Message, data any) error {
	if m.Sender == uuid.Nil || m.ID == uuid.Nil {
		return fmt.Errorf("bus: reply to event %q: it has no sender or id to answer", m.Event)
	}
	r := Message{ID: c.ids.next(), Event: m.Event + ReplySuffix, To: m.Sender, InReplyTo: m.ID}
	_, err := c.send(context.Background(), &r, data, true)
	return err
}
