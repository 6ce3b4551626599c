package natslink

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"math/bits"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
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
	lag      atomic.Uint64 // what the consumer has yet to deliver, as last asked
	held     bool          // until Config.CatchUp has passed: no consumer yet
	// swapping holds the consumer of a link opened held (Config.Held)
	// until Release: the link it takes over from consumes the same
	// durable until CloseInto has drained it, and two links pulling
	// from it at once would each get part of its events, delivered in
	// two orders. It is atomic so that Release need not wait for mu,
	// which jsApply holds through its requests to JetStream.
	swapping atomic.Bool
	order    jsOrder // puts the consumer's deliveries in order
	stopped  bool    // StopDelivering: no consumer again
	// startSeq is the stream's next sequence number when the link first
	// found the stream: where a durable consumer that does not exist yet
	// starts (jsConsumerConfig); 0 until then. streamMade is when that
	// stream was made: one made again since (its store was lost) starts
	// with its first event.
	startSeq   uint64
	streamMade time.Time
	// reset: the consumer is to be reset to its first unacknowledged
	// event before it consumes (jsApply), when this link starts and
	// after each lost connection; noReset: the NATS server connected to
	// is older than 2.14 and has no consumer reset (serverHasReset).
	// resetMu guards them, and the order's pause and resume that go
	// with them. jsLost takes it alone: it runs on nats.go's callback
	// goroutine, and must not wait, and hold up the other callbacks,
	// while jsApply holds mu through its requests to JetStream.
	// Elsewhere it is taken inside mu.
	resetMu        sync.Mutex
	reset, noReset bool
	// ended is the subscription that nats.go ended for good (the
	// consumer was deleted, a pull refused: jsConsumeErr), for jsApply
	// to forget and make again; under resetMu, as jsConsumeErr runs on
	// nats.go's goroutines.
	ended   jetstream.ConsumeContext
	endedAt time.Time
	deleted bool // ended: the consumer was deleted
	// remaking: the consumer, deleted, is being made again (under mu).
	remaking bool
	counter  jsCounter // jsCount's, kept across subscriptions
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

// jsLoop applies the consumer again after each (re)connection, and
// every heartbeat while it has none that it should have or has one
// still to reset (making or resetting it failed: NATS was slow to
// answer, say), and asks how far behind it is every heartbeat, until
// Close.
func (l *Link) jsLoop() {
	defer l.wg.Done()
	t := time.NewTicker(l.cfg.Heartbeat)
	defer t.Stop()
	// With no Config.CatchUp the consumer is not held, and the kick of
	// the first connection applies it: a timer firing at once would
	// apply it a second time.
	var catchUp <-chan time.Time
	if l.cfg.CatchUp > 0 {
		t := time.NewTimer(l.cfg.CatchUp)
		defer t.Stop()
		catchUp = t.C
	}
	for {
		select {
		case <-l.stop:
			return
		case <-catchUp:
			l.js.mu.Lock()
			l.js.held = false
			l.js.mu.Unlock()
			l.jsApply()
		case <-l.js.kick:
			l.jsApply()
		case <-t.C:
			l.js.mu.Lock()
			l.js.resetMu.Lock()
			reset, ended := l.js.reset, l.js.ended != nil && time.Since(l.js.endedAt) >= remakeWait
			l.js.resetMu.Unlock()
			missing := (l.js.cc == nil || reset || ended) && !l.js.held && !l.js.swapping.Load() && !l.js.stopped && len(l.js.subjects) > 0
			l.js.mu.Unlock()
			if missing {
				l.jsApply()
			}
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

// jsLost notes a lost connection: the consumer is reset once it is
// back (jsApply), and until then jsOrder holds nothing past a gap.
func (l *Link) jsLost() {
	if !l.cfg.JetStream {
		return
	}
	l.js.resetMu.Lock()
	defer l.js.resetMu.Unlock()
	l.js.reset = true
	if !l.js.noReset {
		l.js.order.pause()
	}
}

// jsApply makes the stream when it is missing, and, once Config.CatchUp
// has passed, the durable consumer for the current filter, and starts
// consuming. While disconnected it does nothing: the connection's
// handlers kick it again.
func (l *Link) jsApply() {
	l.js.mu.Lock()
	defer l.js.mu.Unlock()
	if !l.nc.IsConnected() || l.js.stopped {
		return
	}
	// jsOrder holds events past a gap again once the consumer is reset,
	// or cannot be. A reset that did not happen (NATS was slow to make
	// the stream, say) is tried again the next heartbeat.
	defer l.jsResumeUnlessReset()
	select {
	case <-l.stop:
		return // closing: jsStop has drained the consumer, or will
	default:
	}
	l.js.resetMu.Lock()
	ended, deleted := l.js.ended, l.js.deleted
	if ended != nil && time.Since(l.js.endedAt) >= remakeWait {
		l.js.ended = nil
	} else {
		ended = nil // made again later (remakeWait)
	}
	l.js.resetMu.Unlock()
	if ended != nil && ended == l.js.cc {
		l.js.cc = nil // made again below, or at the next heartbeat
		l.js.remaking = deleted
	}
	ctx, cancel := context.WithTimeout(l.stopCtx, 5*time.Second)
	defer cancel()
	js, err := jetstream.New(l.nc)
	if err != nil {
		l.log.Warn("JetStream unavailable", "err", err)
		return
	}
	name := StreamName(l.cfg.Prefix, l.cfg.Cluster)
	stream, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: name, Subjects: []string{Subject(l.cfg.Prefix, l.cfg.Cluster, ">")},
		MaxAge: l.cfg.MaxAge, MaxBytes: int64(l.cfg.MaxBytes), Discard: jetstream.DiscardOld, Storage: jetstream.FileStorage})
	if errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) {
		stream, err = js.Stream(ctx, name) // made with other limits
	}
	if err != nil {
		if l.stopCtx.Err() == nil { // not cut short by Close
			l.log.Warn("creating the JetStream stream failed", "stream", name, "err", err)
		}
		return
	}
	switch info := stream.CachedInfo(); {
	case l.js.startSeq == 0:
		l.js.startSeq, l.js.streamMade = info.State.LastSeq+1, info.Created
	case !info.Created.Equal(l.js.streamMade):
		l.js.startSeq, l.js.streamMade = 1, info.Created
	}
	if l.js.held || l.js.swapping.Load() {
		return // the consumer waits; the stream, for the events sent, does not
	}
	if len(l.js.subjects) == 0 {
		if l.js.cc != nil {
			l.js.cc.Stop()
			l.js.cc = nil
		}
		return
	}
	ccfg, exists, err := l.jsConsumerConfig(ctx, js, name)
	if err != nil {
		if l.stopCtx.Err() == nil {
			l.log.Warn("looking up the JetStream consumer failed", "stream", name, "consumer", l.durableName(), "err", err)
		}
		return
	}
	// Updated only if it still exists, made only if it does not: one
	// deleted meanwhile (an operator deleted it) is not made again with
	// its old start, which would deliver again all it had delivered.
	var cons jetstream.Consumer
	if exists {
		cons, err = js.UpdateConsumer(ctx, name, ccfg)
	} else {
		cons, err = js.CreateConsumer(ctx, name, ccfg)
	}
	if err != nil {
		if l.stopCtx.Err() == nil {
			l.log.Warn("creating the JetStream consumer failed", "stream", name, "consumer", l.durableName(), "err", err)
		}
		var apiErr *jetstream.APIError
		if exists && l.js.remaking && errors.As(err, &apiErr) && apiErr.ErrorCode == jetstream.JSErrCodeConsumerCreate {
			// NATS (2.15.3) can fail to store a consumer made again
			// under the name of one just deleted, and keep it,
			// broken: every update then fails alike. It starts with
			// new events anyway: deleted, it is made anew at the next
			// heartbeat.
			if err := js.DeleteConsumer(ctx, name, l.durableName()); err == nil {
				l.log.Warn("deleted the JetStream consumer made again, which NATS could not store: it is made anew", "consumer", l.durableName())
			}
		}
		return
	}
	l.js.cons, l.js.remaking = cons, false
	l.js.resetMu.Lock()
	reset := l.js.reset
	l.js.reset = false
	l.js.resetMu.Unlock()
	if reset {
		l.jsReset(js, name)
	}
	if l.js.cc == nil {
		// The handler decodes into one Event: jsOrder hands it one
		// message at a time, even while the consumer replaces its
		// subscription.
		if l.js.counter == nil {
			l.js.counter = jsCounter{}
		}
		counter := l.js.counter
		l.js.order.init(l.handler(false, nil), func(m jetstream.Msg) { l.jsCount(counter, m) }, l.log)
		// Past the reset, what the new subscription brings past a gap
		// waits for the gap (the defer would resume only after the
		// first messages may have come, and dropped them).
		l.jsResumeUnlessReset()
		l.js.cc, err = cons.Consume(func(m jetstream.Msg) {
			o := &l.js.order
			o.mu.Lock()
			o.take(m)
			o.mu.Unlock()
		}, jetstream.ConsumeErrHandler(l.jsConsumeErr))
		if err != nil {
			l.log.Warn("consuming from JetStream failed", "consumer", l.durableName(), "err", err)
			return
		}
		l.log.Info("consuming from JetStream", "stream", name, "consumer", l.durableName())
	}
}

// remakeWait is how long after its consumer ended for good the link
// makes it again. Not at once: NATS finishes deleting a consumer after
// it has answered the deletion, and one made under the same name
// meanwhile may fail to be stored (jsApply then deletes it and makes it
// anew); nor in a busy loop, should pulls be refused again and again.
const remakeWait = time.Second

// jsConsumeErr hears what goes wrong with the consumer's pulls. A
// consumer deleted under the link (by an operator, or with its stream)
// or a pull refused ends the subscription for good: the link makes the
// consumer again at the first heartbeat (jsLoop, jsApply) past
// remakeWait, rather than deliver nothing, and say nothing, until the
// connection is next lost. Other errors, such as missed heartbeats,
// after which nats.go pulls again, are logged.
func (l *Link) jsConsumeErr(cc jetstream.ConsumeContext, err error) {
	select {
	case <-l.stop:
		return // closing: the subscription drains
	default:
	}
	switch {
	case errors.Is(err, jetstream.ErrConsumerDeleted), errors.Is(err, jetstream.ErrBadRequest):
		l.log.Warn("the JetStream consumer stopped: making it again", "consumer", l.durableName(), "err", err, "in", remakeWait)
		l.js.resetMu.Lock()
		l.js.ended, l.js.endedAt, l.js.deleted = cc, time.Now(), errors.Is(err, jetstream.ErrConsumerDeleted)
		l.js.resetMu.Unlock()
	case errors.Is(err, jetstream.ErrConnectionClosed), errors.Is(err, nats.ErrReconnectBufExceeded):
		// Closing; or a pull refused while nats.go reconnects
		// (natsPending): it pulls again once back.
	default:
		l.log.Warn("consuming from JetStream", "consumer", l.durableName(), "err", err)
	}
}

// jsResumeUnlessReset lets jsOrder hold messages past a gap again,
// unless the consumer is still to be reset.
func (l *Link) jsResumeUnlessReset() {
	l.js.resetMu.Lock()
	defer l.js.resetMu.Unlock()
	if !l.js.reset {
		l.js.order.resume()
	}
}

// jsReset resets the consumer to its first unacknowledged event (a
// NATS 2.14 API), so that everything it holds unacknowledged comes again
// at once, in the order of the stream. Otherwise NATS, which counts as
// delivered what it was sending as a connection went and what a killed
// server had taken, would send those again only after AckWait, behind
// newer events. What was delivered already comes twice, and jsOrder
// drops the copies. l.js.mu is held.
//
// What the consumer delivers after the reset must not mix with what
// the old subscription still brings: from the reset on, a gap in a
// sender's numbering is for good, and messages from before it would
// look like gaps, given up before the copies ahead of the events they
// lack had come. So the subscription stops first, dropping what it
// holds (unacknowledged: it comes again), and jsApply starts a new one
// after the reset.
func (l *Link) jsReset(js jetstream.JetStream, stream string) {
	v := l.nc.ConnectedServerVersion()
	old := !serverHasReset(v)
	l.js.resetMu.Lock()
	changed := old != l.js.noReset
	l.js.noReset = old
	l.js.resetMu.Unlock()
	if changed && old {
		l.log.Warn("the NATS server has no consumer reset (2.14 and later have): what a lost connection or a killed server leaves unacknowledged comes again only after the ack wait",
			"server_version", v, "consumer", l.durableName(), "ack_wait", AckWait)
	}
	if old {
		return
	}
	if cc := l.js.cc; cc != nil {
		l.js.cc = nil
		cc.Stop()
		select {
		case <-cc.Closed():
		case <-time.After(time.Second):
			// Its pull may still take events of the reset, which then
			// come again only after the ack wait, behind newer ones.
			l.log.Warn("the old JetStream subscription did not end within a second of the reset: events it still takes come again after the ack wait",
				"consumer", l.durableName(), "ack_wait", AckWait)
		}
		// NATS has heard the old subscription go before the reset: it
		// sends no event of the reset to a pull request of the old.
		l.nc.FlushTimeout(time.Second)
	}
	ctx, cancel := context.WithTimeout(l.stopCtx, 2*time.Second)
	defer cancel()
	r, err := js.ResetConsumer(ctx, stream, l.durableName())
	if err != nil && l.stopCtx.Err() != nil {
		return // Close cut it short
	}
	if err != nil {
		// NATS too slow to answer, or the reset not allowed: asked
		// again after the next lost connection.
		l.log.Warn("resetting the JetStream consumer failed: events in flight when the connection went come again only after the ack wait",
			"consumer", l.durableName(), "ack_wait", AckWait, "err", err)
		return
	}
	l.log.Debug("reset the JetStream consumer to its first unacknowledged event", "consumer", l.durableName(), "stream_seq", r.ResetSeq)
}

// serverHasReset reports whether a NATS server of version v (as its
// INFO gives it: "2.15.3", "2.14.0-beta.1") has the consumer reset of
// 2.14. A version it cannot read is taken to have it: a reset that
// fails is logged.
func serverHasReset(v string) bool {
	major, rest, ok := strings.Cut(strings.TrimPrefix(v, "v"), ".")
	if !ok {
		return true
	}
	minor, _, _ := strings.Cut(rest, ".")
	ma, err1 := strconv.Atoi(major)
	mi, err2 := strconv.Atoi(minor)
	if err1 != nil || err2 != nil {
		return true
	}
	return ma > 2 || ma == 2 && mi >= 14
}

// jsCounter follows, per subject, the numbering (HeaderSeq) of the
// events a JetStream consumer delivers for the first time. The stream
// refuses events (jsNotAcked), a NATS server may die before storing
// them, and the stream drops its oldest events past maxbytes or maxage,
// whether consumers have them or not. Their numbers show them missing,
// and jsCount counts them (Stats.MissedIn). Redeliveries come out of
// order and are not followed.
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

// jsHandCounter gives next, which takes over the same durable, a copy
// of what jsCount knows of the numbering, so that it counts the events
// that never come after the swap as this link would have.
func (l *Link) jsHandCounter(next *Link) {
	o := &l.js.order
	o.mu.Lock() // jsCount runs under it
	c := make(jsCounter, len(l.js.counter))
	for subject, seen := range l.js.counter {
		c[subject] = maps.Clone(seen)
	}
	o.mu.Unlock()
	next.js.mu.Lock()
	next.js.counter = c
	next.js.mu.Unlock()
}

// jsLag asks the consumer how many events it has yet to deliver.
func (l *Link) jsLag() {
	l.js.mu.Lock()
	cons := l.js.cons
	l.js.mu.Unlock()
	if cons == nil || !l.nc.IsConnected() {
		return
	}
	ctx, cancel := context.WithTimeout(l.stopCtx, time.Second)
	defer cancel()
	if info, err := cons.Info(ctx); err == nil {
		l.js.lag.Store(info.NumPending + uint64(info.NumAckPending))
	}
}

// jsConsumerConfig is the configuration of the durable consumer, with
// the current filter. Where it starts is set once, as it is made (NATS
// refuses to change it): a consumer that exists keeps its own. One this
// link makes starts with the events stored since the link first found
// the stream (jsState.startSeq): a server that starts for the first
// time has its catch-up wait (Config.CatchUp) before it makes its
// consumer, and the events stored meanwhile are for it. One made again
// after it went (an operator deleted it) starts with new events. It
// reports whether the consumer exists. Under jsState.mu.
func (l *Link) jsConsumerConfig(ctx context.Context, js jetstream.JetStream, stream string) (cfg jetstream.ConsumerConfig, exists bool, err error) {
	cfg = jetstream.ConsumerConfig{Durable: l.durableName(), FilterSubjects: l.js.subjects,
		AckPolicy: jetstream.AckExplicitPolicy, DeliverPolicy: jetstream.DeliverNewPolicy, AckWait: AckWait}
	cons, err := js.Consumer(ctx, stream, cfg.Durable)
	switch {
	case err == nil:
		was := cons.CachedInfo().Config
		cfg.DeliverPolicy, cfg.OptStartSeq, cfg.OptStartTime = was.DeliverPolicy, was.OptStartSeq, was.OptStartTime
		return cfg, true, nil
	case !errors.Is(err, jetstream.ErrConsumerNotFound):
		return cfg, false, err
	case l.js.cons == nil && l.js.startSeq > 0:
		cfg.DeliverPolicy, cfg.OptStartSeq = jetstream.DeliverByStartSequencePolicy, l.js.startSeq
	}
	return cfg, false, nil
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
// once the link is done (see handler). With giveBack, what waits for
// messages that have not come is given back too (jsOrder.stop).
func (l *Link) jsStop(giveBack bool) {
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
	l.js.order.stop(giveBack)
}

// Publishing to the stream. A NATS server takes a stream's messages
// into a queue of bounded length (its stream ingest limits) and drops
// those past it: a burst published as core NATS messages, as fast as
// the publishers go, loses events there before they are stored. So, with
// JetStream, the events of channels are published asking for the
// stream's acknowledgement (nats.go's asynchronous publication), and at
// most jsMaxPending messages go unacknowledged: past that, the
// publishers wait (jsRoom), as they wait for a receiving server under
// flow control, and counted alike (Stats.FlowHeld). A message the
// stream refused for a full ingest queue is sent again (jsQueueFull);
// one refused otherwise (no stream, a limit that discards new
// messages) is counted dropped (Stats.Dropped) and logged. The
// messages not yet acknowledged when the connection is lost (the NATS
// server died with them, or with their acknowledgements) go back, in
// order, to the head of the outage buffer, and are sent again
// once NATS is back (jsSendAgain): those the stream had stored come
// twice, and the receivers drop the second by its number (jsOrder). One
// whose acknowledgement did not come in jsAckTimeout, the connection
// up, may or may not be stored: it is logged and counted
// (Stats.JetStreamUnacked), and the receivers count what the stream
// lacks (Stats.MissedIn, from the numbering).
type jsOut struct {
	js      jetstream.JetStream
	pending atomic.Int64  // published, not yet acknowledged
	room    chan struct{} // kicked when pending falls
	// refused and unknown count the events refused, for the logs, and
	// those whose acknowledgement never came (Stats.JetStreamUnacked).
	refused, unknown atomic.Uint64

	// window is how many messages may wait for an acknowledgement:
	// jsMaxPending, less while the stream's ingest queue overflows
	// (jsQueueFull).
	window atomic.Int64
	acked  atomic.Int64  // acknowledgements since the window last grew
	full   atomic.Uint64 // rounds of refusals for a full queue, for the logs
	// waiting counts the messages refused for a full queue that have
	// yet to land: until they do, nothing newer is sent, so that they
	// land soon after the messages sent with them, for the receivers to
	// put back in order within jsReorderWait.
	waiting atomic.Int64

	mu       sync.Mutex
	inflight []*jsFlight // in the order published, until done
	byMsg    map[*nats.Msg]*jsFlight
	retry    []*jsFlight // refused for a full queue: sent again, in order
	timer    *time.Timer // sends retry, when armed
	closing  bool        // retry no more
	// sending counts the timer armed or firing, for jsStopRetrying to
	// wait for.
	sending sync.WaitGroup
}

// jsFlight is a message published to the stream: a copy, kept until
// the stream acknowledges it, to be sent again should the connection be
// lost first.
type jsFlight struct {
	m        *nats.Msg
	events   int
	done     bool // acknowledged, refused, or handed to the outage buffer
	retrying bool // in jsOut.retry
	again    bool // refused for a full queue, counted in jsOut.waiting
	tries    int  // times refused for a full queue
	// handing: jsPublish is handing it to nats.go. jsSendAgain leaves it
	// to jsPublish, marking it lost: the connection went meanwhile.
	handing, lost bool
}

// unwait ends f's count in o.waiting, if it is counted: it landed, or
// goes to the outage buffer. o.mu is held.
func (f *jsFlight) unwait(o *jsOut) {
	if f.again {
		f.again = false
		o.waiting.Add(-1)
	}
}

// jsMaxPending bounds the messages sent to the stream that it has yet
// to acknowledge: packs of up to maxPackBytes, or single events.
const jsMaxPending = 256

// jsAckTimeout is how long the link waits for the stream's
// acknowledgement of a message.
const jsAckTimeout = 5 * time.Second

// init readies o before the link connects: the connection's handlers
// put back what is in flight (jsSendAgain) whenever it is lost.
func (o *jsOut) init() {
	o.room = make(chan struct{}, 1)
	o.byMsg = make(map[*nats.Msg]*jsFlight)
	o.window.Store(jsMaxPending)
}

// jsOpenPublisher sets up the publications to the stream.
func (l *Link) jsOpenPublisher() error {
	notAcked := l.jsNotAcked
	if hook := l.cfg.notAcked; hook != nil {
		notAcked = func(js jetstream.JetStream, m *nats.Msg, err error) {
			hook(m, err)
			l.jsNotAcked(js, m, err)
		}
	}
	js, err := jetstream.New(l.nc, jetstream.WithPublishAsyncTimeout(jsAckTimeout),
		jetstream.WithPublishAsyncAckHandler(func(_ jetstream.JetStream, m *nats.Msg, _ *jetstream.PubAck) {
			l.jsLanded(m)
			l.jsWiden()
			l.jsResolved()
		}),
		jetstream.WithPublishAsyncErrHandler(notAcked))
	if err != nil {
		return fmt.Errorf("natslink: JetStream: %w", err)
	}
	l.jsOut.js = js
	return nil
}

// jsRoom waits while the window's messages (jsMaxPending, or fewer
// while the stream's ingest queue overflows) wait for the stream's
// acknowledgement, unless the link closes. Every one of them ends, in
// jsAckTimeout at most: acknowledged, refused, timed out, or failed
// with the connection; one refused for a full queue is sent again.
//
// Several may wait at once: the publishers, and release sending the
// outage buffer. A kick of o.room wakes one of them, and the room it
// found is for the others too: it kicks o.room again as it goes.
// Otherwise the last kick (the last refused message landing, say) could
// wake only a publisher that, the buffer held, keeps its events and
// sends nothing, and release would wait, with room, for a kick that
// no message in flight is left to give: the buffer never sent.
func (l *Link) jsRoom() {
	o := &l.jsOut
	full := func() bool { return o.pending.Load() >= o.window.Load() || o.waiting.Load() > 0 }
	if !full() {
		return
	}
	start := time.Now()
	l.flowHeld.Add(1)
	defer func() { l.flowHeldNs.Add(uint64(time.Since(start))) }()
	for full() {
		select {
		case <-o.room:
		case <-l.flowStop:
			return
		}
	}
	kick(o.room)
}

// jsPublish publishes m, a message of n events on a channel's subject,
// to the stream, asking for its acknowledgement, and keeps a copy of it
// until the acknowledgement comes (jsFlight).
//
// A connection lost while nats.go takes m is the caller's to handle, as
// when nats.go refuses m: it keeps m in its place (connectionLost).
// jsSendAgain, which the loss runs meanwhile, leaves m alone. Before,
// it put m back as well, at the head of the outage buffer: ahead of
// what it had put back earlier, and twice.
func (l *Link) jsPublish(m *nats.Msg, n int) error {
	f := &jsFlight{m: copyMsg(m), events: n, handing: true}
	o := &l.jsOut
	o.mu.Lock()
	o.inflight = append(o.inflight, f)
	o.byMsg[f.m] = f
	o.mu.Unlock()
	o.pending.Add(1)
	if l.cfg.handing != nil {
		l.cfg.handing()
	}
	_, err := o.js.PublishMsgAsync(f.m, jetstream.WithRetryAttempts(0))
	o.mu.Lock()
	f.handing = false
	lost := f.lost
	o.mu.Unlock()
	switch {
	case err != nil:
		l.jsLanded(f.m)
		l.jsResolved()
	case lost:
		// nats.go took it, on the connection that went (and most
		// likely lost it) or on the next one. Kept again, it may be
		// stored twice, and the receivers drop the copy; taken by the
		// next connection, it went ahead of what was put back before
		// it, and the receivers put it back in order (jsOrder). Its
		// acknowledgement, or nats.go's report that it failed, still
		// comes, and resolves it.
		l.jsLanded(f.m)
		err = errLostInHand
	}
	return err
}

// errLostInHand is jsPublish's error for a message that nats.go took as
// the connection was lost.
var errLostInHand = errors.New("natslink: the connection to NATS was lost as nats.go took the message")

// jsLanded notes that m, published to the stream, needs no keeping: it
// was acknowledged, refused, or not sent. It returns m's events, or 0
// when m was not kept (any more: jsSendAgain took it).
func (l *Link) jsLanded(m *nats.Msg) (events int) {
	o := &l.jsOut
	o.mu.Lock()
	defer o.mu.Unlock()
	if f := o.byMsg[m]; f != nil {
		f.done = true
		events = f.events
		delete(o.byMsg, m)
		f.unwait(o)
	}
	k := 0
	for k < len(o.inflight) && o.inflight[k].done {
		o.inflight[k] = nil
		k++
	}
	o.inflight = o.inflight[k:]
	return events
}

// jsSendAgain moves the messages the stream has yet to acknowledge, in
// the order published, to the head of the outage buffer: the connection
// was lost, and with it the messages in flight or their
// acknowledgements. The link sends them again once NATS is back, before
// what was published since.
//
// It runs as the link hears the connection go (failed nil), on
// nats.go's callback goroutine, which runs the connection's handlers in
// order: before the link hears the connection back (up), after which
// the outage buffer is sent, and the publishers send directly again.
// nats.go's JetStream publisher reports each message in flight failed
// as well (jsNotAcked: ErrDisconnected, failed that message), from a
// goroutine of its own, not ordered with those handlers: a report that
// comes first moves them all; one that comes after they were moved
// (failed no longer in flight) moves nothing, and least of all the
// messages published since on the new connection, which it would send
// twice. (A report late past the reconnection may name a message of
// the new connection itself: nats.go forgets it, no acknowledgement
// will come for it, and it goes again with what is in flight then.)
// A message that jsPublish is handing to nats.go meanwhile is left to
// it: its caller keeps it, in its place (errLostInHand). Once CloseInto
// has counted the outage buffer for the last time (outage.over),
// nothing would send them: they are dropped and counted.
func (l *Link) jsSendAgain(failed *nats.Msg) {
	o := &l.jsOut
	o.mu.Lock()
	if failed != nil && o.byMsg[failed] == nil {
		o.mu.Unlock()
		return // moved already, or acknowledged
	}
	var again []keptMsg
	var handing []*jsFlight
	events, retrying := 0, 0
	for _, f := range o.inflight {
		if f.handing {
			// jsPublish gives it back to its caller, which keeps it
			// in its place, behind what is put back here.
			f.lost = true
			handing = append(handing, f)
			continue
		}
		if !f.done {
			f.done = true
			again = append(again, keptMsg{m: f.m, events: f.events, size: msgSize(f.m), channel: true, stored: true, again: true})
			events += f.events
		}
		if f.retrying {
			// Not in nats.go's hands: no failure will resolve it.
			f.retrying = false
			retrying++
		}
		f.unwait(o)
	}
	clear(o.inflight)
	o.inflight = append(o.inflight[:0], handing...)
	clear(o.byMsg)
	for _, f := range handing {
		o.byMsg[f.m] = f
	}
	o.mu.Unlock()
	for range retrying {
		l.jsResolved()
	}
	if len(again) == 0 {
		return
	}
	// Counted again when sent again.
	l.eventsOut.Add(^uint64(events - 1))
	out := &l.out
	out.mu.Lock()
	if out.over {
		out.mu.Unlock()
		l.dropped.Add(uint64(events))
		l.log.Warn("NATS went away as the NATS link closed, before JetStream acknowledged events: they are dropped", "events", events)
		return
	}
	if !out.holding {
		l.hold()
	}
	out.queue = append(again, out.queue...)
	for _, k := range again {
		out.bytes += k.size
		out.events += k.events
	}
	out.mu.Unlock()
	l.log.Info("NATS went away before JetStream acknowledged events: they are sent again once it is back", "events", events)
}

// jsResolved notes the end of a message's wait for its acknowledgement.
func (l *Link) jsResolved() {
	o := &l.jsOut
	o.pending.Add(-1)
	select {
	case o.room <- struct{}{}:
	default:
	}
}

// jsNotAcked is told of each message the stream did not acknowledge.
func (l *Link) jsNotAcked(_ jetstream.JetStream, m *nats.Msg, err error) {
	if queueFull(err) && l.jsQueueFull(m) {
		return // still waiting: it is sent again
	}
	defer l.jsResolved()
	if errors.Is(err, nats.ErrDisconnected) {
		l.jsSendAgain(m) // every message in flight, unless moved already
		return
	}
	n := uint64(l.jsLanded(m))
	if n == 0 {
		return
	}
	o := &l.jsOut
	switch {
	case errors.Is(err, jetstream.ErrAsyncPublishTimeout), errors.Is(err, jetstream.ErrJetStreamPublisherClosed):
		if u := o.unknown.Add(n); logAgain(u, n) {
			l.log.Warn("JetStream did not acknowledge events: they may be missing from the stream, and receiving servers count those that are (missed_in)",
				"subject", m.Subject, "events", u, "err", err)
		}
	default:
		l.dropped.Add(n)
		if r := o.refused.Add(n); logAgain(r, n) {
			l.log.Warn("JetStream refused events: they are dropped", "subject", m.Subject, "events", r, "err", err)
		}
		if errors.Is(err, jetstream.ErrNoStreamResponse) {
			l.jsKick() // no stream: make it again
		}
	}
}

// logAgain reports whether a count that grew by n to total has reached
// a new power of two: logged at the 1st, 2nd, 4th, 8th... event, however
// many come at once (a pack's).
func logAgain(total, n uint64) bool { return bits.Len64(total) > bits.Len64(total-n) }

// jsAllAcked waits, for at most drainWait, until the stream has
// acknowledged every message the link sent it: a link that takes over
// sends after them, in order.
func (l *Link) jsAllAcked() {
	if l.jsOut.js == nil {
		return
	}
	select {
	case <-l.jsOut.js.PublishAsyncComplete():
	case <-time.After(drainWait):
		l.log.Warn("JetStream did not acknowledge every event in time", "waiting", l.jsOut.pending.Load(), "wait", drainWait)
	}
}
