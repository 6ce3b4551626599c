// Command ncbench measures netcluster, in the spirit of nats bench:
// events per second from P publishers to S subscribers on one channel and
// on a channel it propagates to, the round-trip latency of a ping-pong
// between two clients (idle, and beside a running stream), the same
// frames over a bare Unix socket with no server, and the memory of an
// ncserver process.
//
// Usage:
//
//	ncbench [flags] [run ...]
//
// The runs are pubsub, propagated, latency, raw and mem; the default is
// "pubsub propagated latency raw". The raw run sends the publishers'
// frames over a bare socket in the same invocation, so every throughput
// figure is also given as a share of that limit. mem starts the ncserver
// binary given by -ncserver and reads its resident memory from /proc.
//
// Without -socket, ncbench starts a server in its own process, on
// sockets in a temporary directory, with channels A (propagating to B),
// B and C. With -socket it uses the running server whose socket template
// that is; -channel, -to and -ping name the channels to use.
//
// Only events that arrive intact (the right size and contents) and in
// sequence (per publisher) are counted as delivered; losses, reorders
// and damaged events are counted and printed, never hidden. Publishers
// stay at most -window events ahead of their slowest subscriber, as an
// application with flow control would (and all publishers together at
// most 4 MiB, half the server's default maxpending); -window 0 sends as fast as the
// publisher can, and a subscriber that falls behind by more than the
// server's maxpending is then disconnected, which the report shows as
// lost events.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/netcluster/netcluster/bus"
	"github.com/netcluster/netcluster/internal/wire"
	"github.com/netcluster/netcluster/router"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Stdout, os.Stderr))
}

var allRuns = []string{"pubsub", "propagated", "latency", "raw", "mem"}

// flags are ncbench's settings.
type flags struct {
	socket        string
	channel, to   string
	ping          string
	pubs          int
	subs          []int
	size          int
	count         uint64
	duration      time.Duration
	window        uint64
	pings         int
	json          bool
	progress      time.Duration
	ncserver      string
	clients       int
	cpuProfile    string
	memProfile    string
	runs          []string
	progressOut   io.Writer
	serverLogging io.Writer
}

func parseFlags(args []string, stderr io.Writer) (*flags, error) {
	shared := &lockedWriter{w: stderr} // progress lines of runs side by side, and the server's log
	f := &flags{progressOut: shared, serverLogging: shared}
	fs := flag.NewFlagSet("ncbench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "usage: ncbench [flags] [run ...]\n\nruns: %s (default: pubsub propagated latency raw)\n\nflags:\n",
			strings.Join(allRuns, ", "))
		fs.PrintDefaults()
	}
	fs.StringVar(&f.socket, "socket", "", "socket template of a running ncserver (\"{channel}\" stands for the channel); empty starts a server in process")
	fs.StringVar(&f.channel, "channel", "A", "channel the publishers emit on")
	fs.StringVar(&f.to, "to", "B", "channel the subscribers of the propagated run listen on; -channel must propagate to it")
	fs.StringVar(&f.ping, "ping", "C", "channel of the latency run")
	fs.IntVar(&f.pubs, "pub", 1, "publishers")
	subs := fs.String("sub", "1,4", "subscribers; a comma-separated list runs each")
	fs.IntVar(&f.size, "size", 128, "bytes of data per event")
	fs.Uint64Var(&f.count, "count", 1_000_000, "events per publisher")
	fs.DurationVar(&f.duration, "duration", 0, "emit for this long instead of -count events")
	fs.Uint64Var(&f.window, "window", 8192, "events a publisher may be ahead of its slowest subscriber, at most 4 MiB for all publishers together; 0: no flow control")
	fs.IntVar(&f.pings, "pings", 20_000, "round trips per latency run")
	fs.BoolVar(&f.json, "json", false, "print the report as JSON")
	fs.DurationVar(&f.progress, "progress", time.Second, "print progress on stderr this often during a run; 0: never")
	fs.StringVar(&f.ncserver, "ncserver", "ncserver", "the ncserver binary the mem run starts")
	fs.IntVar(&f.clients, "clients", 10_000, "idle clients the mem run connects")
	fs.StringVar(&f.cpuProfile, "cpuprofile", "", "write a CPU profile of ncbench (and its in-process server) to this file")
	fs.StringVar(&f.memProfile, "memprofile", "", "write an allocation profile to this file at the end")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	for _, s := range strings.Split(*subs, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || n < 1 {
			return nil, fmt.Errorf("-sub %q: want positive numbers separated by commas", *subs)
		}
		f.subs = append(f.subs, n)
	}
	if f.pubs < 1 {
		return nil, fmt.Errorf("-pub %d: want at least 1", f.pubs)
	}
	if err := checkSize(f.size); err != nil {
		return nil, err
	}
	if f.count == 0 && f.duration == 0 {
		return nil, errors.New("-count 0 needs a -duration")
	}
	if f.pings < 1 {
		return nil, fmt.Errorf("-pings %d: want at least 1", f.pings)
	}
	for _, c := range []string{f.channel, f.to, f.ping} {
		if !wire.ValidChannelName(c) {
			return nil, fmt.Errorf("invalid channel name %q", c)
		}
	}
	if f.socket != "" && !strings.Contains(f.socket, wire.ChannelPlaceholder) {
		return nil, fmt.Errorf("-socket %q: the template must contain %s", f.socket, wire.ChannelPlaceholder)
	}
	f.runs = fs.Args()
	if len(f.runs) == 0 {
		f.runs = []string{"pubsub", "propagated", "latency", "raw"}
	}
	for _, r := range f.runs {
		if !slices.Contains(allRuns, r) {
			return nil, fmt.Errorf("unknown run %q; want %s", r, strings.Join(allRuns, ", "))
		}
	}
	return f, nil
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	f, err := parseFlags(args, stderr)
	if err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(stderr, "ncbench:", err)
		}
		return 2
	}
	if f.cpuProfile != "" {
		pf, err := os.Create(f.cpuProfile)
		if err != nil {
			fmt.Fprintln(stderr, "ncbench:", err)
			return 1
		}
		defer pf.Close()
		pprof.StartCPUProfile(pf)
		defer pprof.StopCPUProfile()
	}
	rep, err := bench(ctx, f)
	if err != nil {
		fmt.Fprintln(stderr, "ncbench:", err)
		return 1
	}
	if f.memProfile != "" {
		if err := writeHeapProfile(f.memProfile); err != nil {
			fmt.Fprintln(stderr, "ncbench:", err)
			return 1
		}
	}
	if f.json {
		rep.writeJSON(stdout)
	} else {
		rep.writeText(stdout)
	}
	for _, r := range rep.Runs {
		if r.Latency == nil && !r.Honest() {
			return 3 // some events were not delivered intact and in order
		}
	}
	return 0
}

func writeHeapProfile(path string) error {
	pf, err := os.Create(path)
	if err != nil {
		return err
	}
	defer pf.Close()
	return pprof.Lookup("allocs").WriteTo(pf, 0)
}

// env is what the runs share: where the server is, and where progress
// goes.
type env struct {
	f        *flags
	template string
}

func (e *env) dial(ctx context.Context, channel, name string, onErr func(error)) (*bus.Client, error) {
	// No reconnecting: a client whose connection ends is gone from the
	// run, and says so.
	opts := []bus.Option{bus.SocketTemplate(e.template), bus.Name(name), bus.Reconnect(false)}
	if onErr != nil {
		opts = append(opts, bus.ErrorHandler(onErr))
	}
	return bus.Dial(ctx, channel, opts...)
}

// progress prints a line on stderr every interval until the returned
// function is called (which may be called more than once).
func (e *env) progress(name string, counts func() (sent, delivered uint64)) (stop func()) {
	if e.f.progress <= 0 {
		return func() {}
	}
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		start := time.Now()
		t := time.NewTicker(e.f.progress)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case now := <-t.C:
				s, d := counts()
				fmt.Fprintf(e.f.progressOut, "ncbench: %s: %.0fs, %d sent, %d delivered\n", name, now.Sub(start).Seconds(), s, d)
			}
		}
	}()
	var once sync.Once
	return func() { once.Do(func() { close(done); wg.Wait() }) }
}

// bench runs what f asks for.
func bench(ctx context.Context, f *flags) (*Report, error) {
	rep := &Report{Machine: machine(), Server: "in-process"}
	e := &env{f: f, template: f.socket}
	needServer := slices.ContainsFunc(f.runs, func(r string) bool { return r != "raw" && r != "mem" })
	if f.socket != "" {
		rep.Server = f.socket
	} else if needServer {
		template, cleanup, err := startServer(f)
		if err != nil {
			return nil, err
		}
		defer cleanup()
		e.template = template
	}
	for _, name := range f.runs {
		switch name {
		case "pubsub", "propagated":
			to := f.channel
			if name == "propagated" {
				to = f.to
			}
			for _, s := range f.subs {
				r, err := e.runStream(ctx, streamSpec{
					name: name, pubChannel: f.channel, subChannel: to, pubs: f.pubs, subs: s,
					size: f.size, count: f.count, duration: f.duration, window: f.window,
				})
				if err != nil {
					return nil, fmt.Errorf("%s: %w", name, err)
				}
				rep.Runs = append(rep.Runs, r)
			}
		case "latency":
			r, err := e.runLatency(ctx, "latency-idle", f.ping, f.pings, f.size)
			if err != nil {
				return nil, fmt.Errorf("latency: %w", err)
			}
			rep.Runs = append(rep.Runs, r)
			busy, stream, err := e.latencyBeside(ctx)
			if err != nil {
				return nil, fmt.Errorf("latency: %w", err)
			}
			rep.Runs = append(rep.Runs, busy, stream)
		case "raw":
			r, err := e.runRaw(ctx, f.count*uint64(f.pubs), f.duration, f.size)
			if err != nil {
				return nil, err
			}
			rep.Runs = append(rep.Runs, r)
		case "mem":
			m, err := measureMemory(ctx, f)
			if err != nil {
				return nil, fmt.Errorf("mem: %w", err)
			}
			rep.Memory = m
		}
	}
	rep.setRatios()
	return rep, nil
}

// latencyBeside measures round trips while a 1->1 stream runs on
// -channel, and returns both.
func (e *env) latencyBeside(ctx context.Context) (lat, stream Result, err error) {
	stop := make(chan struct{})
	type out struct {
		r   Result
		err error
	}
	done := make(chan out, 1)
	go func() {
		r, err := e.runStream(ctx, streamSpec{
			name: "stream-beside-latency", pubChannel: e.f.channel, subChannel: e.f.channel, pubs: 1, subs: 1,
			size: e.f.size, window: e.f.window, stop: stop,
		})
		done <- out{r, err}
	}()
	// Let the stream reach its pace before the first ping.
	select {
	case <-time.After(200 * time.Millisecond):
	case <-ctx.Done():
	}
	lat, err = e.runLatency(ctx, "latency-beside-stream", e.f.ping, e.f.pings, e.f.size)
	close(stop)
	o := <-done
	if err == nil {
		err = o.err
	}
	return lat, o.r, err
}

// startServer starts a server in this process on sockets in a new
// temporary directory.
func startServer(f *flags) (template string, cleanup func(), err error) {
	dir, err := os.MkdirTemp("", "ncbench")
	if err != nil {
		return "", nil, err
	}
	template = dir + "/{channel}.sock"
	chans := map[string]string{f.channel: fmt.Sprintf(`{"propagatetochannels": %q}`, "^"+f.to+"$")}
	for _, c := range []string{f.to, f.ping} {
		if _, ok := chans[c]; !ok {
			chans[c] = "{}"
		}
	}
	var members []string
	for name, rule := range chans {
		members = append(members, fmt.Sprintf("%q: %s", name, rule))
	}
	text := fmt.Sprintf(`{"socket": %q, "channels": {%s}}`, template, strings.Join(members, ", "))
	cfg, err := router.Parse("ncbench.json", []byte(text))
	if err != nil {
		os.RemoveAll(dir)
		return "", nil, err
	}
	log := slog.New(slog.NewTextHandler(f.serverLogging, &slog.HandlerOptions{Level: slog.LevelWarn}))
	srv, err := router.Start(cfg, router.Options{Logger: log})
	if err != nil {
		os.RemoveAll(dir)
		return "", nil, err
	}
	return template, func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
		os.RemoveAll(dir)
	}, nil
}

// lockedWriter serializes writes from several goroutines.
type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}
