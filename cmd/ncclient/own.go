package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"sync"
	"time"

	"golang.org/x/term"
)

// commandFlags makes the flag set of a command that parses its own flags
// (record, replay). The global flags are defined on it too, bound to a
// copy of the session's settings, so that they work after the command.
func (s *session) commandFlags(c *command) (*flag.FlagSet, *settings) {
	set := s.set
	fs := flag.NewFlagSet(c.name, flag.ContinueOnError)
	fs.SetOutput(s.stderr)
	set.register(fs)
	fs.Usage = func() {
		fmt.Fprintf(s.stderr, "usage: ncclient %s\n%s\nexample: %s\n\nflags:\n", c.synopsis(), c.summary, c.example)
		fs.PrintDefaults()
	}
	return fs, &set
}

// errHelp is what a command returns after -h printed its usage: nothing
// failed.
var errHelp = errors.New("help")

// parseCommand parses a command's words with fs. It returns the words
// left, and the session to run on: s, or a new one when the global flags
// after the command changed the settings (done closes it).
func (s *session) parseCommand(fs *flag.FlagSet, set *settings, args []string) (rest []string, sub *session, done func(), err error) {
	rest, err = interspersed(fs, args, nil)
	if errors.Is(err, flag.ErrHelp) {
		return nil, nil, nil, errHelp
	}
	if err != nil {
		return nil, nil, nil, usagef("%s: %v", fs.Name(), err)
	}
	if err := set.check(); err != nil {
		return nil, nil, nil, usagef("%s: %v", fs.Name(), err)
	}
	if *set == s.set {
		return rest, s, func() {}, nil
	}
	sub = newSession(*set, s.stdout, s.stderr)
	return rest, sub, sub.close, nil
}

// isTerminal says whether w is a terminal: progress lines are shown only
// there.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// progressInterval is how often a progress line is redrawn.
const progressInterval = 250 * time.Millisecond

// progress redraws one status line on a terminal until end. On anything
// else it does nothing, so that piped output stays quiet.
type progress struct {
	w    io.Writer
	line func(elapsed time.Duration) string
	stop chan struct{}
	done chan struct{}
}

// startProgress starts redrawing line on w, when w is a terminal.
func startProgress(w io.Writer, line func(elapsed time.Duration) string) *progress {
	p := &progress{w: w, line: line, stop: make(chan struct{}), done: make(chan struct{})}
	if !isTerminal(w) {
		close(p.done)
		return p
	}
	start := time.Now()
	go func() {
		defer close(p.done)
		t := time.NewTicker(progressInterval)
		defer t.Stop()
		for {
			select {
			case <-p.stop:
				fmt.Fprintf(p.w, "\r\033[K%s\n", p.line(time.Since(start)))
				return
			case <-t.C:
				fmt.Fprintf(p.w, "\r\033[K%s", p.line(time.Since(start)))
			}
		}
	}()
	return p
}

// end draws the line a last time and stops.
func (p *progress) end() {
	select {
	case <-p.done:
		return
	default:
	}
	close(p.stop)
	<-p.done
}

// counter is a count that a progress line reads while another goroutine
// adds to it.
type counter struct {
	mu     sync.Mutex
	events int64
	bytes  int64
}

func (c *counter) add(events, bytes int64) {
	c.mu.Lock()
	c.events += events
	c.bytes += bytes
	c.mu.Unlock()
}

func (c *counter) get() (events, bytes int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.events, c.bytes
}

// humanBytes writes a byte count with a binary unit.
func humanBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}

// clock writes an elapsed time as h:mm:ss.
func clock(d time.Duration) string {
	s := int(d.Seconds())
	return fmt.Sprintf("%d:%02d:%02d", s/3600, s/60%60, s%60)
}
