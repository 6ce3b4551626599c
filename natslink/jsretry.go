package natslink

import (
	"errors"
	"math/bits"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// A NATS server takes a stream's messages into a queue of bounded
// length (its stream ingest limits: max_buffered_msgs and
// max_buffered_size, 100,000 messages and 128 MiB by default) and
// refuses what overflows it with a 429. One server's publishers keep
// at most its window of messages unacknowledged, but servers publishing
// at once can overflow the queue all the same: eight windows of packs
// fill 128 MiB. A message refused so is not dropped. The window halves
// (down to jsMinWindow), at most once per jsRetryWait, and the refused
// messages are sent again after jsRetryWait, in the order refused;
// nothing newer is sent until they have landed, so they land soon
// after the messages sent with them, and the receivers put them back
// in their senders' order (jsOrder) within jsReorderWait. The window
// grows back by a message per window of acknowledgements (jsWiden), as
// TCP's congestion window does: grown back faster, it fills the queue
// again at once and the sender spends its time waiting jsRetryWait.

// A message refused jsMaxTries times in a row (a queue that never has
// room for it: max_buffered_size below a pack) is dropped and counted
// as other refusals are, so that the publishers do not wait forever.
const (
	jsMinWindow = 4
	jsRetryWait = 20 * time.Millisecond
	jsMaxTries  = 250
)

// queueFull reports whether err is the stream's refusal for a full
// ingest queue.
func queueFull(err error) bool {
	var ae *jetstream.APIError
	return errors.As(err, &ae) && ae.Code == 429
}

// jsQueueFull keeps m, refused for a full ingest queue, to send it
// again: it stays in flight, counted against the window. It reports
// false when m is not kept (the link closes, m was sent again already
// after a lost connection, or it was refused jsMaxTries times).
func (l *Link) jsQueueFull(m *nats.Msg) bool {
	o := &l.jsOut
	o.mu.Lock()
	defer o.mu.Unlock()
	f := o.byMsg[m]
	if f == nil || f.done || o.closing || f.tries >= jsMaxTries {
		return false
	}
	f.tries++
	f.retrying = true
	if !f.again {
		f.again = true
		o.waiting.Add(1)
	}
	o.retry = append(o.retry, f)
	if o.timer != nil {
		return true // armed: this round has halved the window already
	}
	o.window.Store(max(jsMinWindow, o.window.Load()/2))
	o.sending.Add(1)
	o.timer = time.AfterFunc(jsRetryWait, l.jsRetry)
	if n := o.full.Add(1); bits.OnesCount64(n) == 1 {
		l.log.Info("JetStream's ingest queue is full: this server publishes less at once, and sends the refused events again",
			"subject", m.Subject, "window", o.window.Load(), "rounds", n)
	}
	return true
}

// jsRetry sends again, in order, the messages refused for a full
// queue. The publishers go on once they have landed (jsLanded).
func (l *Link) jsRetry() {
	o := &l.jsOut
	defer o.sending.Done()
	o.mu.Lock()
	batch := o.retry
	o.retry, o.timer = nil, nil
	o.mu.Unlock()
	for _, f := range batch {
		o.mu.Lock()
		live := f.retrying && !f.done
		f.retrying = false
		o.mu.Unlock()
		if !live {
			continue // sent again after a lost connection
		}
		if _, err := o.js.PublishMsgAsync(f.m, jetstream.WithRetryAttempts(0)); err != nil {
			if connectionLost(err) {
				// Gone before the link heard it go: sent again
				// once NATS is back, with what is in flight.
				err = nats.ErrDisconnected
			}
			l.jsNotAcked(nil, f.m, err)
		}
	}
}

// jsWiden counts an acknowledgement of the stream, and grows the
// window by a message, up to jsMaxPending, once a window of them has
// come.
func (l *Link) jsWiden() {
	o := &l.jsOut
	w := o.window.Load()
	if w >= jsMaxPending {
		return
	}
	if n := o.acked.Add(1); n >= w && o.acked.CompareAndSwap(n, 0) {
		o.window.CompareAndSwap(w, w+1)
	}
}

// jsStopRetrying sends now what waits to be sent again, and keeps
// nothing more to send again: the link closes. It returns once the
// timer's jsRetry, if it fired, has ended.
func (l *Link) jsStopRetrying() {
	o := &l.jsOut
	o.mu.Lock()
	o.closing = true
	armed := o.timer != nil && o.timer.Stop()
	o.mu.Unlock()
	if armed {
		l.jsRetry()
	}
	o.sending.Wait()
}
