package multicast

import (
	"sync"
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
