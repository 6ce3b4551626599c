package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	"github.com/netcluster/netcluster/bus"
	"github.com/netcluster/netcluster/internal/wire"
)

// Memory is what the mem run measured of an ncserver process. Sizes are
// in bytes, from VmRSS in /proc/<pid>/status.
type Memory struct {
	Binary     string `json:"binary"`
	IdleRSS    uint64 `json:"idle_rss"`
	IdleAnon   uint64 `json:"idle_rss_anon"` // RssAnon: the rest is the executable's and libraries' pages
	Clients    int    `json:"clients"`
	ClientsRSS uint64 `json:"clients_rss"` // with the idle clients connected
	PerClient  uint64 `json:"per_client"`  // (ClientsRSS - IdleRSS) / Clients

	MaxPending   int    `json:"maxpending"`
	SlowBaseRSS  uint64 `json:"slow_base_rss"` // a fresh server with a publisher and a client that never reads
	SlowPeakRSS  uint64 `json:"slow_peak_rss"` // the most RSS seen while the publisher filled that client's queue
	SlowCost     uint64 `json:"slow_cost"`     // SlowPeakRSS - SlowBaseRSS
	SlowDropped  bool   `json:"slow_dropped"`  // the server disconnected the client
	SlowEmitted  uint64 `json:"slow_emitted"`  // bytes of events emitted meanwhile
	SlowReceived uint64 `json:"slow_received"` // bytes the client found in its socket afterwards
	// Retention is a channel's ring of retained events, filled past
	// retainbytes, and what it costs the server.
	Retention *Retention `json:"retention,omitempty"`
	Errors    []string   `json:"errors,omitempty"`
}

func (m *Memory) writeText(w io.Writer) {
	fmt.Fprintf(w, "memory of %s (VmRSS):\n", m.Binary)
	fmt.Fprintf(w, "  idle server: %s, of which %s anonymous (the rest is the executable's and libraries' pages)\n", mib(m.IdleRSS), mib(m.IdleAnon))
	fmt.Fprintf(w, "  with %d idle clients: %s, %.1f KiB per client\n", m.Clients, mib(m.ClientsRSS), float64(m.PerClient)/1024)
	fmt.Fprintf(w, "  client that never reads: %s over %s (maxpending %s), dropped as slow: %v\n",
		mib(m.SlowCost), mib(m.SlowBaseRSS), mib(uint64(m.MaxPending)), m.SlowDropped)
	if m.Retention != nil {
		m.Retention.writeText(w)
	}
	for _, e := range m.Errors {
		fmt.Fprintf(w, "  error: %s\n", e)
	}
}

func mib(b uint64) string { return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20)) }

// maxPendingForMem is the maxpending of the servers the mem run starts.
const maxPendingForMem = 8 << 20

// measureMemory runs the ncserver binary bin three times: once to
// measure it idle and with many idle clients, once to measure what a
// client that never reads costs it, and once what the ring of retained
// events costs it.
func measureMemory(ctx context.Context, f *flags, bin string) (*Memory, error) {
	m := &Memory{Binary: bin, MaxPending: maxPendingForMem}
	if err := raiseFileLimit(f.clients + 64); err != nil {
		m.Errors = append(m.Errors, err.Error())
	}

	p, err := startProcess(ctx, bin, memConfig, []string{"A"}, "error", os.Stderr)
	if err != nil {
		return nil, err
	}
	time.Sleep(500 * time.Millisecond) // let it settle
	m.IdleRSS, err = rss(p.pid())
	if err != nil {
		p.stop()
		return nil, err
	}
	m.IdleAnon, _ = procStatus(p.pid(), "RssAnon")
	conns, err := idleClients(ctx, p.template, "A", f.clients)
	m.Clients = len(conns)
	if err != nil {
		m.Errors = append(m.Errors, err.Error())
	}
	time.Sleep(500 * time.Millisecond)
	m.ClientsRSS, _ = rss(p.pid())
	if m.Clients > 0 && m.ClientsRSS > m.IdleRSS {
		m.PerClient = (m.ClientsRSS - m.IdleRSS) / uint64(m.Clients)
	}
	for _, c := range conns {
		c.Close()
	}
	p.stop()

	if err := slowConsumer(ctx, bin, f.size, m); err != nil {
		m.Errors = append(m.Errors, err.Error())
	}
	r, err := measureRetention(ctx, bin, f.size)
	m.Retention = r
	if err != nil {
		m.Errors = append(m.Errors, "retained events: "+err.Error())
	} else {
		m.Errors = append(m.Errors, r.check()...)
	}
	return m, nil
}

// memConfig is the configuration of the servers the mem run starts.
func memConfig(dir string) (template, text string) {
	template = dir + "/{channel}.sock"
	return template, fmt.Sprintf(`{"socket": %q, "maxpending": %d, "channels": {"A": {}}}`, template, maxPendingForMem)
}

// rss reads a process's resident set size.
func rss(pid int) (uint64, error) { return procStatus(pid, "VmRSS") }

// procStatus reads a size in kB from a process's /proc status.
func procStatus(pid int, key string) (uint64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, fmt.Errorf("reading resident memory (Linux /proc only): %w", err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, key+":"); ok {
			kb, err := strconv.ParseUint(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			if err != nil {
				return 0, fmt.Errorf("VmRSS %q: %w", v, err)
			}
			return kb << 10, nil
		}
	}
	return 0, fmt.Errorf("no %s in /proc status", key)
}

// handshake connects to a channel's socket as a client and says hello,
// and reads the welcome; the connection then stays as the caller leaves
// it. It is lighter than a bus.Client, which the mem run does not
// measure.
func handshake(path string) (net.Conn, *bufio.Reader, error) {
	c, err := net.Dial("unix", path)
	if err != nil {
		return nil, nil, err
	}
	// Version 1: the server does not ping these clients, which never
	// read, so that none is dropped while the run measures them.
	h := wire.Hello{Version: 1, ClientID: uuid.New(), Name: "ncbench-idle", PID: uint64(os.Getpid())}
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := c.Write(wire.AppendHello(nil, &h)); err != nil {
		c.Close()
		return nil, nil, err
	}
	br := bufio.NewReaderSize(c, 512)
	frame, err := wire.NewFrameReader(br, 64<<10).ReadFrame()
	if err == nil {
		if t, _ := wire.TypeOf(frame[wire.HeaderLen:]); t != wire.FrameWelcome {
			err = fmt.Errorf("server answered the hello with a %v frame", t)
		}
	}
	if err != nil {
		c.Close()
		return nil, nil, err
	}
	c.SetDeadline(time.Time{})
	return c, br, nil
}

// idleClients connects n clients that say hello and then do nothing.
func idleClients(ctx context.Context, template, channel string, n int) ([]net.Conn, error) {
	path := wire.SocketPath(template, channel)
	conns := make([]net.Conn, n)
	var failed atomic.Pointer[error]
	var wg sync.WaitGroup
	next := atomic.Int64{}
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= n || failed.Load() != nil || ctx.Err() != nil {
					return
				}
				c, _, err := handshake(path)
				if err != nil {
					err = fmt.Errorf("idle client %d: %w", i, err)
					failed.CompareAndSwap(nil, &err)
					return
				}
				conns[i] = c
			}
		}()
	}
	wg.Wait()
	out := conns[:0]
	for _, c := range conns {
		if c != nil {
			out = append(out, c)
		}
	}
	if err := failed.Load(); err != nil {
		return out, *err
	}
	return out, ctx.Err()
}

// slowConsumer starts a fresh server with a client that never reads and
// a publisher that emits three times maxpending, sampling the server's
// memory meanwhile.
func slowConsumer(ctx context.Context, bin string, size int, m *Memory) error {
	p, err := startProcess(ctx, bin, memConfig, []string{"A"}, "error", os.Stderr)
	if err != nil {
		return err
	}
	defer p.stop()
	pid := p.pid()
	lazy, br, err := handshake(wire.SocketPath(p.template, "A"))
	if err != nil {
		return err
	}
	defer lazy.Close()
	pub, err := bus.Dial(ctx, "A", bus.SocketTemplate(p.template), bus.Name("ncbench-pub"))
	if err != nil {
		return err
	}
	defer pub.Close()
	time.Sleep(300 * time.Millisecond)
	m.SlowBaseRSS, err = rss(pid)
	if err != nil {
		return err
	}
	var peak atomic.Uint64
	peak.Store(m.SlowBaseRSS)
	stop := make(chan struct{})
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		t := time.NewTicker(2 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-stop:
				return
			case <-t.C:
				if r, err := rss(pid); err == nil && r > peak.Load() {
					peak.Store(r)
				}
			}
		}
	}()
	payload, off := newPayload(size)
	for seq := uint64(0); m.SlowEmitted < 3*maxPendingForMem && ctx.Err() == nil; seq++ {
		fillPayload(payload[off:], 0, seq)
		if err := pub.Emit(benchEvent, bus.RawData(payload)); err != nil {
			break
		}
		m.SlowEmitted += uint64(size)
	}
	fctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	pub.Flush(fctx)
	cancel()
	time.Sleep(300 * time.Millisecond)
	close(stop)
	<-sampled
	m.SlowPeakRSS = peak.Load()
	m.SlowCost = m.SlowPeakRSS - m.SlowBaseRSS
	// The server has closed the client if it dropped it: reading finds
	// what the socket held, then the end.
	lazy.SetReadDeadline(time.Now().Add(2 * time.Second))
	n, err := io.Copy(io.Discard, br)
	m.SlowReceived = uint64(n)
	m.SlowDropped = err == nil // io.Copy returns nil at EOF
	return nil
}
