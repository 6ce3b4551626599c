// Command gopeer is the Go side of the Node.js client's tests and
// benchmark: a bus client driven by lines of JSON on its standard input,
// reporting what it hears as lines of JSON on its standard output.
//
//	gopeer -socket PATH -channel A [-slow DURATION] [-queue N]
//	gopeer -patterns
//
// It prints {"ready": true, "id": ...} once connected, then one line per
// event heard ({"event", "channel", "sender", "id", "data"}). It answers
// every event whose name begins with "ask-" with {"echo": data, "from":
// "go"}. Each input line is a command: {"op": "emit", "event", "data"},
// {"op": "request", "event", "data"} (prints {"reply": data, "re": id})
// or {"op": "bench-pub", "count", "size"} / {"op": "bench-sub", "count"}
// (print {"bench": events per second}). With -slow, the listener takes
// that long over each event, as a slow subscriber does; -queue sets the
// client's QueueLen.
//
// With -patterns it connects to nothing: it reads lines of JSON
// {"pattern", "names"} and prints, for each, {"matches": [...]} (which
// names the pattern, anchored as the server anchors a declared one,
// matches) or {"error": ...}, so that the Node tests check what the
// client declares against Go's regexp.
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/netcluster/netcluster/bus"
)

type command struct {
	Op    string `json:"op"`
	Event string `json:"event"`
	Data  any    `json:"data"`
	Count int    `json:"count"`
	Size  int    `json:"size"`
}

type peer struct {
	c   *bus.Client
	mu  sync.Mutex
	out *json.Encoder
	// bench counts the events of a bench-sub run; nil otherwise.
	bench chan struct{}
}

func (p *peer) print(v any) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.out.Encode(v)
}

func main() {
	socket := flag.String("socket", "", "the channel's socket")
	channel := flag.String("channel", "A", "the channel")
	flag.DurationVar(&slow, "slow", 0, "how long the listener takes over each event")
	queue := flag.Int("queue", 0, "the client's QueueLen (0: the default)")
	patterns := flag.Bool("patterns", false, "match patterns against names, read from standard input")
	flag.Parse()
	if *patterns {
		if err := matchPatterns(); err != nil {
			fmt.Fprintln(os.Stderr, "gopeer:", err)
			os.Exit(1)
		}
		return
	}
	if err := run(*socket, *channel, *queue); err != nil {
		fmt.Fprintln(os.Stderr, "gopeer:", err)
		os.Exit(1)
	}
}

func run(socket, channel string, queue int) error {
	p := &peer{out: json.NewEncoder(os.Stdout)}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	opts := []bus.Option{bus.Socket(socket), bus.Name("gopeer")}
	if queue > 0 {
		opts = append(opts, bus.QueueLen(queue))
	}
	c, err := bus.Dial(ctx, channel, opts...)
	if err != nil {
		return err
	}
	defer c.Close()
	p.c = c
	subs := make(chan chan struct{}, 1)
	c.On("bench", func(bus.Message) {
		select {
		case ch := <-subs:
			p.bench = ch
		default:
		}
		if p.bench != nil {
			p.bench <- struct{}{}
		}
	})
	c.On(".*", func(m bus.Message) { p.heard(m) })
	p.print(map[string]any{"ready": true, "id": c.ID().String()})
	in := bufio.NewScanner(os.Stdin)
	for in.Scan() {
		var cmd command
		if err := json.Unmarshal(in.Bytes(), &cmd); err != nil {
			return fmt.Errorf("command %q: %w", in.Text(), err)
		}
		if err := p.do(cmd, subs); err != nil {
			return err
		}
	}
	return in.Err()
}

// slow is how long the listener takes over each event (-slow).
var slow time.Duration

func (p *peer) heard(m bus.Message) {
	if m.Event == "bench" {
		return
	}
	if slow > 0 {
		time.Sleep(slow)
	}
	var data any
	if err := m.Decode(&data); err != nil {
		data = err.Error()
	}
	p.print(map[string]any{"event": m.Event, "channel": m.Channel, "sender": m.Sender.String(), "id": m.ID.String(), "data": data})
	if strings.HasPrefix(m.Event, "ask-") {
		p.c.Reply(m, map[string]any{"echo": data, "from": "go"})
	}
}

func (p *peer) do(cmd command, subs chan chan struct{}) error {
	switch cmd.Op {
	case "emit":
		return p.c.Emit(cmd.Event, cmd.Data)
	case "request":
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		r, err := p.c.Request(ctx, cmd.Event, cmd.Data)
		if err != nil {
			return err
		}
		var data any
		r.Decode(&data)
		p.print(map[string]any{"reply": data, "re": r.InReplyTo.String(), "sender": r.Sender.String()})
	case "bench-pub":
		payload := strings.Repeat("x", cmd.Size)
		start := time.Now()
		for range cmd.Count {
			if err := p.c.Emit("bench", payload); err != nil {
				return err
			}
		}
		p.print(map[string]any{"sent": cmd.Count, "seconds": time.Since(start).Seconds()})
	case "bench-sub":
		ch := make(chan struct{}, 1024)
		subs <- ch
		p.print(map[string]any{"subscribed": true})
		<-ch
		start := time.Now()
		for range cmd.Count - 1 {
			<-ch
		}
		p.print(map[string]any{"bench": float64(cmd.Count-1) / time.Since(start).Seconds()})
	default:
		return fmt.Errorf("unknown op %q", cmd.Op)
	}
	return nil
}

// matchPatterns is the -patterns mode.
func matchPatterns() error {
	in := bufio.NewScanner(os.Stdin)
	in.Buffer(make([]byte, 1<<20), 1<<20)
	out := json.NewEncoder(os.Stdout)
	for in.Scan() {
		var q struct {
			Pattern string   `json:"pattern"`
			Names   []string `json:"names"`
		}
		if err := json.Unmarshal(in.Bytes(), &q); err != nil {
			return err
		}
		re, err := regexp.Compile("^(?:" + q.Pattern + ")$")
		if err != nil {
			out.Encode(map[string]any{"error": err.Error()})
			continue
		}
		m := make([]bool, len(q.Names))
		for i, n := range q.Names {
			m[i] = re.MatchString(n)
		}
		out.Encode(map[string]any{"matches": m})
	}
	return in.Err()
}
