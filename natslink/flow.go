package natslink

import (
	"bytes"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go"
)

// Flow control across NATS. Core NATS has no back-pressure from a
// subscriber to a publisher: a server that takes a channel's events
// slower than another sends them drops them past its pending limits
// (Stats.DroppedIn, Stats.MissedIn). So the servers hold back
// themselves, on the numbering of the events (HeaderSeq), as multicast's
// flow control does on the numbering of its datagrams:
//
//   - A receiving server reports, per sender, epoch and subject, the
//     number of the last event it delivered and how many more it can
//     take (its window: half of what the subscription's pending limits
//     hold of such events, shared among the epochs it hears on the
//     subject), on the sender's flow subject (FlowSubject). It reports
//     flowReportDelay after any progress, at once when it has moved a
//     quarter of its window, and at every Heartbeat for each epoch that
//     moved within PeerTimeout.
//   - A sending server with Config.FlowControl sends a message on a
//     subject only when what it sent there, with the message's events,
//     is within last delivered + window of every receiver that
//     reported (or every one has delivered all it sent: a message larger
//     than a window goes alone): the publishers wait meanwhile
//     (Stats.FlowHeld). A receiver whose reports have shown no
//     progress for PeerTimeout while it holds the sender back leaves the
//     calculation (logged, Stats.FlowExcluded), so that a stopped server
//     holds the others for PeerTimeout at most; it comes back with its
//     first report that does not hold the sender back.
//
// While the link is disconnected, or sends what it kept meanwhile, the
// outage buffer bounds what waits instead (outage). Replies, plain NATS
// programs and JetStream consumers are outside flow control: they are
// not numbered, or not delivered in order. With JetStream the stream's
// acknowledgements hold the publishers instead (jsRoom).

// flowToken begins the flow subjects.
const flowToken = "$flow"

// headerBye marks the report of a receiver that stops taking events (it
// shuts down, or a reload replaces its link): its senders stop waiting
// for it at once, not after PeerTimeout.
const headerBye = "Nc-Bye"

// FlowSubject is the subject where node's receivers report: the
// sender's, outside the channels' subjects.
func FlowSubject(prefix, cluster string, node uuid.UUID) string {
	return prefix + "." + flowToken + "." + ClusterToken(cluster) + "." + node.String()
}

// flowReportDelay is how long after progress a receiver reports it,
// unless it has moved a quarter window; minFlowWindow is the least
// window a receiver reports.
const (
	flowReportDelay = 20 * time.Millisecond
	minFlowWindow   = 1
)

// flowIn is the receiving side: what each sender's epoch delivered on
// each subject, reported by reportLoop.
type flowIn struct {
	// sending makes each report, and each bye, one step from reading
	// the progress to publishing it: a report read before a bye is never
	// published after it.
	sending sync.Mutex
	mu      sync.Mutex
	from    map[flowKey]*inbound
	// left are the subjects unsubscribed from (sayBye): a message its
	// handler still delivers is not reported, or the senders would wait
	// for this server again.
	left map[string]bool
	now  chan struct{} // a quarter window moved: report now
	soon chan struct{} // progress: report within flowReportDelay
}

type flowKey struct{ epoch, subject string }

// inbound is what one subscription delivered of a sender's epoch on a
// subject. The handler of the subscription writes delivered, dirty and
// the sizes; reportLoop the rest.
type inbound struct {
	key       flowKey
	origin    uuid.UUID
	delivered atomic.Uint64 // the number of the last event delivered
	reported  atomic.Uint64 // the last number reported
	quarter   atomic.Uint64 // a quarter of the window last reported
	dirty     atomic.Bool   // delivered moved since the last report
	gone      atomic.Bool   // forgotten by reportLoop: a handler that cached it gets another
	// events, msgs and bytes received: the average sizes, for the
	// window. bytes counts as nats.go's pending limits do: data and
	// headers, hdr the headers' size as last measured.
	events, msgs, bytes, hdr atomic.Uint64
	moved                    time.Time // when reportLoop last saw delivered move
}

// seqNum is a HeaderSeq value, parsed: first is 0 when the message is
// not numbered.
type seqNum struct {
	epoch string
	first uint64
}

// seqOf parses a HeaderSeq value.
func seqOf(v string) (s seqNum, ok bool) {
	epoch, num, ok := strings.Cut(v, ".")
	first, err := strconv.ParseUint(num, 10, 64)
	if !ok || err != nil || first == 0 {
		return seqNum{}, false
	}
	return seqNum{epoch, first}, true
}

// delivered notes that a subscription delivered the n events of m,
// numbered s, from origin. last caches the subscription's last inbound,
// so that a run of messages of one sender takes no lock.
func (l *Link) delivered(last **inbound, m *nats.Msg, s seqNum, origin uuid.UUID, n int) {
	epoch, first := s.epoch, s.first
	if first == 0 || n == 0 {
		return
	}
	in := *last
	if in == nil || in.key.epoch != epoch || in.key.subject != m.Subject || in.gone.Load() {
		in = l.fin.get(flowKey{epoch, m.Subject}, origin)
		if in == nil {
			return
		}
		*last = in
	}
	end := first + uint64(n) - 1
	if end > in.delivered.Load() {
		in.delivered.Store(end)
	}
	in.events.Add(uint64(n))
	// The headers of a sender's messages hardly change in size:
	// measured once every 64 messages.
	hdr := in.hdr.Load()
	if in.msgs.Add(1)%64 == 1 {
		hdr = headerSize(m.Header)
		in.hdr.Store(hdr)
	}
	in.bytes.Add(uint64(len(m.Data)) + hdr)
	if !in.dirty.Load() {
		in.dirty.Store(true)
		kick(l.fin.soon)
	}
	if end-in.reported.Load() >= in.quarter.Load() {
		kick(l.fin.now)
	}
}

// headerSize is the size of h as NATS carries it, which nats.go's
// pending limits count.
func headerSize(h nats.Header) uint64 {
	if len(h) == 0 {
		return 0
	}
	n := len("NATS/1.0\r\n\r\n")
	for k, vs := range h {
		for _, v := range vs {
			n += len(k) + len(": \r\n") + len(v)
		}
	}
	return uint64(n)
}

// maxInbound bounds the epochs and subjects a link reports on.
const maxInbound = 4096

// get returns the inbound of key, made when new; nil past maxInbound.
func (f *flowIn) get(key flowKey, origin uuid.UUID) *inbound {
	f.mu.Lock()
	defer f.mu.Unlock()
	in := f.from[key]
	if in == nil {
		if len(f.from) >= maxInbound || f.left[key.subject] {
			return nil
		}
		// The strings are the message's: keep copies.
		key = flowKey{strings.Clone(key.epoch), strings.Clone(key.subject)}
		in = &inbound{key: key, origin: origin, moved: time.Now()}
		in.quarter.Store(1)
		f.from[key] = in
	}
	return in
}

func kick(c chan struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}

// reportLoop sends the reports, until Close.
func (l *Link) reportLoop() {
	defer l.wg.Done()
	tick := time.NewTicker(l.cfg.Heartbeat)
	defer tick.Stop()
	delay := time.NewTimer(time.Hour)
	delay.Stop()
	waiting := false
	for {
		all := false
		select {
		case <-l.stop:
			delay.Stop()
			return
		case <-tick.C:
			all = true
		case <-l.fin.now:
		case <-l.fin.soon:
			if !waiting {
				waiting = true
				delay.Reset(flowReportDelay)
			}
			continue
		case <-delay.C:
			waiting = false
		}
		l.report(all)
	}
}

// report sends, to each sender, the progress of its epochs: what moved,
// or everything that moved within PeerTimeout when all.
func (l *Link) report(all bool) {
	pendMsgs, pendBytes := l.pendingLimits()
	now := time.Now()
	f := &l.fin
	f.sending.Lock()
	defer f.sending.Unlock()
	f.mu.Lock()
	senders := make(map[string]uint64) // epochs heard per subject
	for key, in := range f.from {
		if now.Sub(in.moved) > l.cfg.PeerTimeout && !in.dirty.Load() {
			delete(f.from, key) // a sender gone, or idle: it reports again when it sends
			in.gone.Store(true)
			continue
		}
		senders[key.subject]++
	}
	lines := make(map[uuid.UUID][]byte)
	for key, in := range f.from {
		moved := in.dirty.Swap(false)
		d := in.delivered.Load()
		if moved {
			in.moved = now
		}
		if !moved && !all || d == 0 {
			continue
		}
		// The window: half of what the pending limits hold of this
		// sender's messages, shared among the senders of the subject.
		events, nmsgs, nbytes := in.events.Load(), in.msgs.Load(), in.bytes.Load()
		win := uint64(pendMsgs) / 2 * max(1, events/max(1, nmsgs))
		if nbytes > 0 {
			win = min(win, uint64(pendBytes)/2/max(1, nbytes/max(1, events)))
		}
		win = max(minFlowWindow, win/senders[key.subject])
		in.quarter.Store(max(1, win/4))
		in.reported.Store(d)
		lines[in.origin] = appendReport(lines[in.origin], reportLine{key.epoch, d, win, key.subject})
	}
	f.mu.Unlock()
	if !l.nc.IsConnected() {
		return // a report is never buffered: the next one says more
	}
	for origin, b := range lines {
		m := nats.NewMsg(FlowSubject(l.cfg.Prefix, l.cfg.Cluster, origin))
		m.Header.Set(headerNode, l.cfg.Node.String())
		m.Data = b
		l.nc.PublishMsg(m)
		l.reportsOut.Add(1)
	}
}

// sayBye tells the senders this link took events from lately that it
// takes no more (headerBye), when connected: on the subjects named, or,
// with none, on any.
func (l *Link) sayBye(subjects ...string) {
	f := &l.fin
	f.sending.Lock()
	defer f.sending.Unlock()
	f.mu.Lock()
	bodies := make(map[uuid.UUID][]byte)
	for key, in := range f.from {
		if len(subjects) == 0 {
			bodies[in.origin] = nil
			continue
		}
		if slices.Contains(subjects, key.subject) {
			bodies[in.origin] = append(append(bodies[in.origin], key.subject...), '\n')
			delete(f.from, key)
			in.gone.Store(true)
		}
	}
	for _, subject := range subjects {
		f.left[subject] = true
	}
	f.mu.Unlock()
	if !l.nc.IsConnected() {
		return
	}
	for origin, body := range bodies {
		m := nats.NewMsg(FlowSubject(l.cfg.Prefix, l.cfg.Cluster, origin))
		m.Header.Set(headerNode, l.cfg.Node.String())
		m.Header.Set(headerBye, "1")
		m.Data = body
		l.nc.PublishMsg(m)
		l.reportsOut.Add(1)
	}
}

// pendingLimits are the pending limits of the subscriptions of events.
func (l *Link) pendingLimits() (msgs, bytes int) {
	msgs, bytes = l.cfg.PendingMsgs, l.cfg.PendingBytes
	if msgs <= 0 {
		msgs = nats.DefaultSubPendingMsgsLimit
	}
	if bytes <= 0 {
		bytes = nats.DefaultSubPendingBytesLimit
	}
	return msgs, bytes
}

// flowOut is the sending side (Config.FlowControl): the receivers of
// each subject the link numbers events on, from their reports.
type flowOut struct {
	mu       sync.Mutex
	epoch    string // the link's, as passNumbering leaves it
	subjects map[string]*flowSubject
}

// flowSubject is the flow control of one subject.
type flowSubject struct {
	subject string
	// limit: the link sends a message of n events when what it sent on
	// the subject, plus n, is within it (the least of the live
	// receivers' last delivered + window), or when every live receiver
	// has delivered all it sent (floor, the least last delivered): a
	// message larger than a window goes alone. limit is 0 while no
	// receiver holds the link back.
	limit, floor atomic.Uint64
	// sent is what the link sent on the subject (subjectOut.sent), for
	// the reports' handler.
	sent atomic.Uint64
	// Under flowOut.mu: wake is closed, and made again, when limit
	// changes.
	wake      chan struct{}
	receivers map[uuid.UUID]*receiver
}

// receiver is what a receiving server reported of a subject.
type receiver struct {
	delivered, window uint64
	moved             time.Time // when its reports last showed progress, or that it had everything
	heard             time.Time // its last report
	excluded          bool      // left the calculation (flowWait), until it catches up
}

// flowOf returns the flow control of subject, when the link has it.
func (l *Link) flowOf(subject string) *flowSubject {
	if !l.cfg.FlowControl {
		return nil
	}
	f := &l.fout
	f.mu.Lock()
	defer f.mu.Unlock()
	fs := f.subjects[subject]
	if fs == nil {
		fs = &flowSubject{subject: subject, wake: make(chan struct{}), receivers: make(map[uuid.UUID]*receiver)}
		f.subjects[subject] = fs
	}
	return fs
}

// reportLine is a line of a report: a sender's epoch, the last number
// of it delivered on subject, and the window.
type reportLine struct {
	epoch             string
	delivered, window uint64
	subject           string
}

// appendReport appends r to a report's body: "<epoch> <last> <window>
// <subject>\n".
func appendReport(b []byte, r reportLine) []byte {
	b = append(b, r.epoch...)
	b = append(b, ' ')
	b = strconv.AppendUint(b, r.delivered, 10)
	b = append(b, ' ')
	b = strconv.AppendUint(b, r.window, 10)
	b = append(b, ' ')
	b = append(b, r.subject...)
	return append(b, '\n')
}

// nextReport reads the first line of a report's body, and what follows
// it; ok is false when the line is not a report line: four fields, the
// epoch without spaces, two decimal numbers, the window not 0, and a
// subject (ValidSubject).
func nextReport(body []byte) (r reportLine, rest []byte, ok bool) {
	line, rest, _ := bytes.Cut(body, []byte{'\n'})
	fields := strings.SplitN(string(line), " ", 4)
	if len(fields) != 4 || fields[0] == "" || !ValidSubject(fields[3]) {
		return r, nil, false
	}
	d, err1 := strconv.ParseUint(fields[1], 10, 64)
	win, err2 := strconv.ParseUint(fields[2], 10, 64)
	if err1 != nil || err2 != nil || win == 0 {
		return r, nil, false
	}
	return reportLine{fields[0], d, win, fields[3]}, rest, true
}

// heardReport takes a receiver's report (reportLoop).
func (l *Link) heardReport(m *nats.Msg) {
	node, err := uuid.Parse(m.Header.Get(headerNode))
	if err != nil {
		l.malformed.Add(1)
		return
	}
	if node == l.cfg.Node {
		return
	}
	l.reportsIn.Add(1)
	now := time.Now()
	f := &l.fout
	f.mu.Lock()
	defer f.mu.Unlock()
	if m.Header.Get(headerBye) != "" {
		// Its subjects, one a line; none: all of them.
		var only []string
		if len(m.Data) > 0 {
			only = strings.Split(strings.TrimSuffix(string(m.Data), "\n"), "\n")
		}
		for subject, fs := range f.subjects {
			if fs.receivers[node] != nil && (only == nil || slices.Contains(only, subject)) {
				delete(fs.receivers, node)
				l.setLimit(fs, now, time.Time{}, 0)
			}
		}
		return
	}
	for body := m.Data; len(body) > 0; {
		line, rest, ok := nextReport(body)
		if !ok {
			l.malformed.Add(1)
			return
		}
		body = rest
		d, win := line.delivered, line.window
		fs := f.subjects[line.subject]
		if line.epoch != f.epoch || fs == nil {
			continue // another link's of this node, or a subject it never sent on
		}
		r := fs.receivers[node]
		if r == nil {
			if len(fs.receivers) >= maxPeers {
				continue
			}
			r = &receiver{moved: now}
			fs.receivers[node] = r
		}
		sent := fs.sent.Load()
		if d > r.delivered || d >= sent {
			r.moved = now
		}
		r.delivered, r.window, r.heard = max(r.delivered, d), win, now
		if r.excluded && r.delivered+r.window > sent {
			r.excluded = false
			l.log.Info("a receiver rejoined flow control", "peer", node, "subject", fs.subject)
		}
		l.setLimit(fs, now, time.Time{}, 0)
	}
}

// setLimit computes fs's limit from its receivers, with f.mu held,
// forgetting those not heard for PeerTimeout that do not hold back a
// message of n events, and the excluded ones whose server is gone. A
// publisher that has waited since waiting (zero: none waits) to send n
// excludes the receivers that hold it back and have shown no progress
// for PeerTimeout, counted from when it began to wait at the earliest:
// a receiver that was not sent anything for a while has not reported.
func (l *Link) setLimit(fs *flowSubject, now, waiting time.Time, n uint64) {
	sent := fs.sent.Load()
	var limit, floor uint64
	for node, r := range fs.receivers {
		end := r.delivered + r.window
		holds := sent+max(n, 1) > end && sent > r.delivered
		exclude := !waiting.IsZero() && now.Sub(later(r.moved, waiting)) > l.cfg.PeerTimeout
		switch {
		case r.excluded:
			// Kept while its server is heard: it rejoins when it
			// reports again, as it does when it gets events again.
			if now.Sub(r.heard) > l.cfg.PeerTimeout && !l.peers.heardSince(node, now.Add(-l.cfg.PeerTimeout)) {
				delete(fs.receivers, node)
			}
			continue
		case !holds && now.Sub(r.heard) > l.cfg.PeerTimeout:
			delete(fs.receivers, node) // gone while it held nothing back
			continue
		case holds && exclude:
			r.excluded = true
			l.flowExcluded.Add(1)
			l.log.Warn("a receiver left flow control: it has taken nothing for peertimeout", "peer", node,
				"subject", fs.subject, "behind", sent-r.delivered, "peertimeout", l.cfg.PeerTimeout)
			continue
		}
		if limit == 0 || end < limit {
			limit = end
		}
		if floor == 0 || r.delivered < floor {
			floor = r.delivered
		}
	}
	fs.floor.Store(floor)
	if fs.limit.Swap(limit) != limit {
		close(fs.wake)
		fs.wake = make(chan struct{})
	}
}

// flowWait waits, before a message on out's subject is sent, while a
// receiver holds the sender back, unless the link is disconnected or
// sends what it kept (the outage buffer bounds what waits then), or
// closes. Its caller serializes the use of out.
func (l *Link) flowWait(out *subjectOut, n int) {
	fs := out.flow
	if fs.open(out.sent, n) {
		return
	}
	start := time.Now()
	l.flowHeld.Add(1)
	defer func() { l.flowHeldNs.Add(uint64(time.Since(start))) }()
	poll := time.NewTimer(flowPoll)
	defer poll.Stop()
	for {
		if !l.nc.IsConnected() || l.holding() {
			return
		}
		f := &l.fout
		f.mu.Lock()
		l.setLimit(fs, time.Now(), start, uint64(n))
		wake := fs.wake
		f.mu.Unlock()
		if fs.open(out.sent, n) {
			return
		}
		select {
		case <-wake:
		case <-poll.C:
			poll.Reset(flowPoll)
		case <-l.flowStop:
			return
		}
	}
}

// open reports whether a message of n events may go, sent having gone.
func (fs *flowSubject) open(sent uint64, n int) bool {
	lim := fs.limit.Load()
	return lim == 0 || sent+uint64(n) <= lim || sent <= fs.floor.Load()
}

func later(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

// flowPoll is how often a waiting publisher looks for receivers to
// exclude, and for the connection.
const flowPoll = 50 * time.Millisecond

// flowReceivers counts the receivers that hold the link back now, on
// any subject.
func (l *Link) flowReceivers() int {
	f := &l.fout
	f.mu.Lock()
	defer f.mu.Unlock()
	live := make(map[uuid.UUID]bool)
	for _, fs := range f.subjects {
		for node, r := range fs.receivers {
			if !r.excluded {
				live[node] = true
			}
		}
	}
	return len(live)
}
