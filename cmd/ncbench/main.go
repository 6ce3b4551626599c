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
// The runs are pubsub, propagated, latency, raw, mem and interest; the
// default is "pubsub propagated latency raw". interest has -names
// subscribers each listen to an event name of its own while one
// publisher cycles through the names, twice: with the subscribers
// declaring their interest, so that the server forwards each only its
// events, and with bus.ReceiveAll, so that it sends every event to all
// of them; it compares deliveries per second and the server's bytes
// written per event. The raw run sends the publishers'
// frames over a bare socket in the same invocation, so every throughput
// figure is also given as a share of that limit. mem starts ncserver
// processes of its own and reads their resident memory from /proc: idle,
// with many idle clients, with a client that never reads, and with a
// channel's ring of retained events filled past retainbytes, whose
// counters it reads from the control channel's stats.
//
// By default ncbench measures what a user runs: a separate ncserver
// process, which it starts on a configuration of its own in a temporary
// directory (channels A propagating to B, B and C) and stops at the end,
// and clients on default options. The binary is -ncserver, or else one
// that ncbench builds with go build from the netcluster tree it runs in.
// With -inprocess the server runs inside ncbench's process instead; with
// -socket ncbench uses the running server whose socket template that is,
// and -channel, -to and -ping name the channels to use.
//
// Only events that arrive intact (the right size and contents) and in
// sequence (per publisher) are counted as delivered; losses, reorders,
// duplicates and damaged events are counted and printed, never hidden,
// and so are the subscribers' disconnections. By default publishers emit
// as fast as they can, as an application does: a subscriber that falls
// behind is then as the server's flow control leaves it. With -window N
// a publisher stays at most N events ahead of its slowest subscriber, as
// an application with flow control of its own would (and all publishers
// together at most 4 MiB, half the server's default maxpending). With
// -work D each subscriber's listener spends D on every event, as an
// application's own work would.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
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
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Stdout, os.Stderr))
}

var allRuns = []string{"pubsub", "propagated", "latency", "raw", "mem", "interest"}

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
	work          time.Duration
	pings         int
	json          bool
	progress      time.Duration
	ncserver      string
	inProcess     bool
	clients       int
	names         int
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
	fs.StringVar(&f.socket, "socket", "", "socket template of a running ncserver (\"{channel}\" stands for the channel); empty: ncbench starts an ncserver process")
	fs.BoolVar(&f.inProcess, "inprocess", false, "run the server inside ncbench's process instead of starting an ncserver process")
	fs.StringVar(&f.channel, "channel", "A", "channel the publishers emit on")
	fs.StringVar(&f.to, "to", "B", "channel the subscribers of the propagated run listen on; -channel must propagate to it")
	fs.StringVar(&f.ping, "ping", "C", "channel of the latency run")
	fs.IntVar(&f.pubs, "pub", 1, "publishers")
	subs := fs.String("sub", "1,4", "subscribers; a comma-separated list runs each")
	fs.IntVar(&f.size, "size", 128, "bytes of data per event")
	fs.Uint64Var(&f.count, "count", 1_000_000, "events per publisher")
	fs.DurationVar(&f.duration, "duration", 0, "emit for this long instead of -count events")
	fs.Uint64Var(&f.window, "window", 0, "events a publisher may be ahead of its slowest subscriber, at most 4 MiB for all publishers together; 0: none, emit as fast as possible")
	fs.DurationVar(&f.work, "work", 0, "time each subscriber's listener spends on each event of the pubsub and propagated runs (busy), as an application's own work would")
	fs.IntVar(&f.pings, "pings", 20_000, "round trips per latency run")
	fs.BoolVar(&f.json, "json", false, "print the report as JSON")
	fs.DurationVar(&f.progress, "progress", time.Second, "print progress on stderr this often during a run; 0: never")
	fs.StringVar(&f.ncserver, "ncserver", "", "the ncserver binary to start; empty: build it with go build from the netcluster tree ncbench runs in")
	fs.IntVar(&f.clients, "clients", 10_000, "idle clients the mem run connects")
	fs.IntVar(&f.names, "names", 64, "event names of the interest run, one subscriber listening to each")
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
	if f.work < 0 {
		return nil, fmt.Errorf("-work %v: want 0 or more", f.work)
	}
	if f.names < 1 {
		return nil, fmt.Errorf("-names %d: want at least 1", f.names)
	}
	if f.pings < 1 {
		return nil, fmt.Errorf("-pings %d: want at least 1", f.pings)
	}
	for _, c := range []string{f.channel, f.to, f.ping} {
		if !wire.ValidChannelName(c) {
			return nil, fmt.Errorf("invalid channel name %q", c)
		}
	}
	if f.socket != "" && f.inProcess {
		return nil, errors.New("-socket and -inprocess exclude each other")
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

// dial connects a client with default options (it reconnects when its
// connection ends), plus opts.
func (e *env) dial(ctx context.Context, channel, name string, opts ...bus.Option) (*bus.Client, error) {
	return bus.Dial(ctx, channel, append([]bus.Option{bus.SocketTemplate(e.template), bus.Name(name)}, opts...)...)
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
	rep := &Report{Machine: machine()}
	e := &env{f: f, template: f.socket}
	needServer := slices.ContainsFunc(f.runs, func(r string) bool { return r != "raw" && r != "mem" })
	separate := needServer && f.socket == "" && !f.inProcess
	var bin string
	if separate || slices.Contains(f.runs, "mem") {
		buildDir, err := os.MkdirTemp("", "ncbench")
		if err != nil {
			return nil, err
		}
		defer os.RemoveAll(buildDir)
		if bin, err = ncserverBinary(ctx, f, buildDir); err != nil {
			return nil, err
		}
	}
	cleanup, err := e.startServer(ctx, rep, needServer, bin)
	if err != nil {
		return nil, err
	}
	defer cleanup()
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
					size: f.size, count: f.count, duration: f.duration, window: f.window, work: f.work,
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
		case "interest":
			rs, err := e.runInterest(ctx)
			if err != nil {
				return nil, fmt.Errorf("interest: %w", err)
			}
			rep.Runs = append(rep.Runs, rs...)
		case "raw":
			r, err := e.runRaw(ctx, f.count*uint64(f.pubs), f.duration, f.size)
			if err != nil {
				return nil, err
			}
			rep.Runs = append(rep.Runs, r)
		case "mem":
			m, err := measureMemory(ctx, f, bin)
			if err != nil {
				return nil, fmt.Errorf("mem: %w", err)
			}
			rep.Memory = m
		}
	}
	rep.setRatios()
	return rep, nil
}

// startServer starts the server the runs use, as f says: none with
// -socket (or when no run needs one), one inside this process with
// -inprocess, else an ncserver process of binary bin. It sets e's
// template and names the server in rep.
func (e *env) startServer(ctx context.Context, rep *Report, needServer bool, bin string) (cleanup func(), err error) {
	f := e.f
	switch {
	case f.socket != "":
		rep.Server = f.socket
	case !needServer && bin != "":
		rep.Server = "processes of " + bin // the mem run starts its own
	case !needServer:
		rep.Server = "none"
	case f.inProcess:
		template, stop, err := startInProcess(f)
		if err != nil {
			return nil, err
		}
		e.template, rep.Server, rep.ServerPID = template, "in-process", os.Getpid()
		return stop, nil
	default:
		p, err := startServerProcess(ctx, f, bin)
		if err != nil {
			return nil, err
		}
		e.template, rep.Server, rep.ServerPID = p.template, "process "+bin, p.pid()
		return p.stop, nil
	}
	return func() {}, nil
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
