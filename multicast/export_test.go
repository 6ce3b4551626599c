package multicast

import (
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"
)

// ChooseFrom exposes chooseFrom to the tests.
var ChooseFrom = chooseFrom

// SlowWrites makes the link that cfg opens spend d on each datagram it
// writes: a socket that cannot keep up.
func SlowWrites(cfg *Config, d time.Duration) {
	cfg.wrap = func(s socket) socket { return &slowSocket{socket: s, delay: d} }
}

type slowSocket struct {
	socket
	delay time.Duration
}

// writeBatch writes one datagram per call, as a socket may.
func (s *slowSocket) writeBatch(dgs [][]byte) (int, error) {
	time.Sleep(s.delay)
	return s.socket.writeBatch(dgs[:1])
}

// HoldWrites makes the link that cfg opens hold its writes until release
// is called, so that what is sent meanwhile queues up. release may be
// called more than once; the test must call it before the link closes.
func HoldWrites(cfg *Config) (release func()) {
	gate := make(chan struct{})
	var once sync.Once
	cfg.wrap = func(s socket) socket { return &heldSocket{socket: s, gate: gate} }
	return func() { once.Do(func() { close(gate) }) }
}

type heldSocket struct {
	socket
	gate chan struct{}
}

func (s *heldSocket) writeBatch(dgs [][]byte) (int, error) {
	<-s.gate
	return s.socket.writeBatch(dgs)
}

// DropReads makes the link that cfg opens drop a share of the datagrams
// it reads before it handles them, as a lossy network would: set it in
// per mille (0 to 1000), at any time. dropped counts them.
func DropReads(cfg *Config, seed uint64) (perMille, dropped *atomic.Uint64) {
	perMille, dropped = new(atomic.Uint64), new(atomic.Uint64)
	cfg.wrap = func(s socket) socket {
		return &dropSocket{socket: s, perMille: perMille, dropped: dropped, rnd: rand.New(rand.NewPCG(seed, seed))}
	}
	return perMille, dropped
}

type dropSocket struct {
	socket
	perMille, dropped *atomic.Uint64
	rnd               *rand.Rand // the read goroutine's alone
}

func (s *dropSocket) readBatch(ms []inDatagram) (int, error) {
	for {
		n, err := s.socket.readBatch(ms)
		k := 0
		for i := range n {
			if s.rnd.Uint64N(1000) < s.perMille.Load() {
				s.dropped.Add(1)
				continue
			}
			ms[k], ms[i] = ms[i], ms[k]
			k++
		}
		if k > 0 || err != nil {
			return k, err
		}
	}
}

// Seqs returns the node's last sequence numbers of streams 0 and 1.
func (n *Node) Seqs() (uint64, uint64) { return n.seq.Load(), n.ctlSeq.Load() }

// Freeze makes the link that cfg opens able to stop as a process does
// under SIGSTOP: while frozen, it reads nothing (datagrams wait in the
// socket's buffer, and what does not fit is lost) and what it writes
// never leaves (its statuses and heartbeats stop). freeze and thaw may
// be called in turn; the test must thaw before the link closes.
func Freeze(cfg *Config) (freeze, thaw func()) {
	f := &frozenSocket{}
	f.cond = sync.NewCond(&f.mu)
	cfg.wrap = func(s socket) socket { f.socket = s; return f }
	freeze = func() {
		f.mu.Lock()
		f.frozen = true
		f.mu.Unlock()
	}
	thaw = func() {
		f.mu.Lock()
		f.frozen = false
		f.cond.Broadcast()
		f.mu.Unlock()
	}
	return freeze, thaw
}

type frozenSocket struct {
	socket
	mu     sync.Mutex
	cond   *sync.Cond
	frozen bool
}

func (s *frozenSocket) wait() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	was := s.frozen
	for s.frozen {
		s.cond.Wait()
	}
	return was
}

func (s *frozenSocket) readBatch(ms []inDatagram) (int, error) {
	s.wait()
	return s.socket.readBatch(ms)
}

func (s *frozenSocket) writeBatch(dgs [][]byte) (int, error) {
	s.mu.Lock()
	frozen := s.frozen
	s.mu.Unlock()
	if frozen {
		return len(dgs), nil
	}
	return s.socket.writeBatch(dgs)
}
