package natslink

import (
	"context"
	"errors"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// jsState is the link's JetStream consumer, with Config.JetStream: the
// events of the accepted channels come from a durable consumer of a
// stream that keeps them, instead of plain subscriptions, so that a
// server that was down gets what it missed, in order.
type jsState struct {
	mu       sync.Mutex
	subjects []string // the consumer's filter: the accepted channels' subjects
	cons     jetstream.Consumer
	cc       jetstream.ConsumeContext
	kick     chan struct{} // (re)connected: apply again
	lag      uint64        // what the consumer has yet to deliver, as last asked
	held     bool          // until Config.CatchUp has passed: no consumer yet
	stopped  bool          // StopDelivering: no consumer again
}

// StreamName is the name of the stream of a prefix and a cluster.
func StreamName(prefix, cluster string) string {
	return strings.ReplaceAll(prefix+"_"+ClusterToken(cluster), ".", "_")
}

// durableName is the consumer's name: Config.Durable, or the host name.
func (l *Link) durableName() string {
	if l.cfg.Durable != "" {
		return l.cfg.Durable
	}
	host, _ := os.Hostname()
	return strings.NewReplacer(".", "_", " ", "_", "*", "_", ">", "_").Replace(host)
}

// jsLoop applies the consumer again after each (re)connection, and asks
// how far behind it is every heartbeat, until Close.
func (l *Link) jsLoop() {
	defer l.wg.Done()
	t := time.NewTicker(l.cfg.Heartbeat)
	defer t.Stop()
	catchUp := time.NewTimer(l.cfg.CatchUp)
	defer catchUp.Stop()
	for {
		select {
		case <-l.stop:
			return
		case <-catchUp.C:
			l.js.mu.Lock()
			l.js.held = false
			l.js.mu.Unlock()
			l.jsApply()
		case <-l.js.kick:
			l.jsApply()
		case <-t.C:
			l.jsLag()
		}
	}
}

// jsKick asks jsLoop to apply the consumer again.
func (l *Link) jsKick() {
	if l.cfg.JetStream {
		select {
		case l.js.kick <- struct{}{}:
		default:
		}
	}
}

// jsApply makes the stream when it is missing, and the durable consumer
// for the current filter, and starts consuming. While disconnected it
// does nothing: the connection's handlers kick it again.
func (l *Link) jsApply() {
	l.js.mu.Lock()
	defer l.js.mu.Unlock()
	if !l.nc.IsConnected() || l.js.held || l.js.stopped {
		return
	}
	select {
	case <-l.stop:
		return // closing: jsStop has drained the consumer, or will
	default:
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	js, err := jetstream.New(l.nc)
	if err != nil {
		l.log.Warn("JetStream unavailable", "err", err)
		return
	}
	name := StreamName(l.cfg.Prefix, l.cfg.Cluster)
	_, err = js.CreateStream(ctx, jetstream.StreamConfig{Name: name, Subjects: []string{Subject(l.cfg.Prefix, l.cfg.Cluster, ">")},
		MaxAge: l.cfg.MaxAge, MaxBytes: int64(l.cfg.MaxBytes), Discard: jetstream.DiscardOld, Storage: jetstream.FileStorage})
	if err != nil && !errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) {
		l.log.Warn("creating the JetStream stream failed", "stream", name, "err", err)
		return
	}
	if len(l.js.subjects) == 0 {
		if l.js.cc != nil {
			l.js.cc.Stop()
			l.js.cc = nil
		}
		return
	}
	cons, err := js.CreateOrUpdateConsumer(ctx, name, jetstream.ConsumerConfig{Durable: l.durableName(),
		FilterSubjects: l.js.subjects, AckPolicy: jetstream.AckExplicitPolicy, DeliverPolicy: jetstream.DeliverNewPolicy,
		AckWait: AckWait})
	if err != nil {
		l.log.Warn("creating the JetStream consumer failed", "stream", name, "consumer", l.durableName(), "err", err)
		return
	}
	l.js.cons = cons
	if l.js.cc == nil {
		// The handler decodes into one Event: one message at a time,
		// even while the consumer replaces its subscription.
		// A message the closed link did not deliver is given back
		// (Nak), so that the next consumer of the durable gets it
		// first, without waiting out AckWait.
		handle, one, counter := l.handler(false, nil), new(sync.Mutex), jsCounter{}
		l.js.cc, err = cons.Consume(func(m jetstream.Msg) {
			one.Lock()
			l.jsCount(counter, m)
			ok := handle(&nats.Msg{Subject: m.Subject(), Header: m.Headers(), Data: m.Data()})
			one.Unlock()
			if ok {
				m.Ack()
				return
			}
			m.Nak()
			if md, err := m.Metadata(); err == nil {
				// Rare, and what the next consumer gets first: the
				// sequence tells which event, should one come late.
				l.log.Debug("gave an event back to JetStream: the link delivers no more",
					"subject", m.Subject(), "stream_seq", md.Sequence.Stream)
			}
		})
		if err != nil {
			l.log.Warn("consuming from JetStream failed", "consumer", l.durableName(), "err", err)
			return
		}
		l.log.Info("consuming from JetStream", "stream", name, "consumer", l.durableName())
	}
}

// jsCounter follows, per subject, the numbering (HeaderSeq) of the
// events a JetStream consumer delivers for the first time. Events are
// published to the stream without acknowledgement: a NATS server whose
// JetStream cannot take them as fast drops them, and the stream drops
// its oldest events past maxbytes or maxage, whether consumers have
// them or not; the sender knows of neither. Their numbers show them
// missing, and jsCount counts them (Stats.MissedIn). Redeliveries come
// out of order and are not followed.
type jsCounter map[string]seqSeen

// jsCount notes m, a message from the consumer, in c, and counts the
// events its number shows missing (gap).
func (l *Link) jsCount(c jsCounter, m jetstream.Msg) {
	h := m.Headers()
	if len(h[HeaderSeq]) != 1 {
		return // not numbered
	}
	if md, err := m.Metadata(); err != nil || md.NumDelivered != 1 {
		return
	}
	n := uint64(1)
	var origin uuid.UUID
	if v := h.Get(HeaderPack); v != "" {
		k, err := strconv.ParseUint(v, 10, 32)
		if err != nil {
			return
		}
		n = k
		if _, hdr, _, err := nextPacked(m.Data()); err == nil {
			origin = hdr.Origin
		}
	} else if o, err := uuid.Parse(h.Get(HeaderOrigin)); err == nil {
		origin = o
	}
	if origin == l.cfg.Node {
		return // ours: the handler skips it too
	}
	seen := c[m.Subject()]
	if seen == nil {
		if len(c) >= maxSubjects {
			clear(c)
		}
		seen = seqSeen{}
		c[m.Subject()] = seen
	}
	l.gap(seen, &nats.Msg{Subject: m.Subject(), Header: h}, n, origin)
}

// jsLag asks the consumer how many events it has yet to deliver.
func (l *Link) jsLag() {
	l.js.mu.Lock()
	cons := l.js.cons
	l.js.mu.Unlock()
	if cons == nil || !l.nc.IsConnected() {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if info, err := cons.Info(ctx); err == nil {
		l.js.mu.Lock()
		l.js.lag = info.NumPending + uint64(info.NumAckPending)
		l.js.mu.Unlock()
	}
}

// jsSetChannels sets the consumer's filter to the channels named.
func (l *Link) jsSetChannels(names []string) {
	l.js.mu.Lock()
	l.js.subjects = l.js.subjects[:0]
	for _, name := range names {
		l.js.subjects = append(l.js.subjects, Subject(l.cfg.Prefix, l.cfg.Cluster, name))
	}
	l.js.mu.Unlock()
	l.jsApply()
}

// AckWait is how long NATS waits for the acknowledgement of an event it
// handed to a server before it hands it again, to the next consumer of
// the durable: the bound on the delay of the events a server took but
// neither delivered nor gave back (it was killed, or its drain at Close
// timed out and its connection closed first).
const AckWait = 30 * time.Second

// drainWait bounds how long Close waits for the events the consumer
// has taken from NATS to be delivered.
const drainWait = 2 * time.Second

// jsStop stops consuming: it takes no more from NATS, and delivers and
// acknowledges what it took already (for at most drainWait), so that
// those events are neither lost nor held until AckWait for the next
// consumer, behind newer ones. What comes after drainWait is given back
// once the link is done (see handler).
func (l *Link) jsStop() {
	l.js.mu.Lock()
	cc := l.js.cc
	l.js.cc = nil
	l.js.mu.Unlock()
	if cc == nil {
		return
	}
	cc.Drain()
	select {
	case <-cc.Closed():
	case <-time.After(drainWait):
		l.log.Warn("the JetStream consumer did not drain in time: what it holds goes to the next consumer", "wait", drainWait)
	}
}
