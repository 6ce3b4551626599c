package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"sync"
	"syscall"

	"github.com/netcluster/netcluster/internal/wire"
	"golang.org/x/term"
)

// prompt is shown before each line at the terminal.
const prompt = "ncclient> "

// runInteractive reads commands from stdin: with line editing when stdin
// and stdout are a terminal, else one command a line, without a prompt.
func runInteractive(s *session, stdin io.Reader) int {
	in, ok := stdin.(*os.File)
	out, ok2 := s.stdout.(*os.File)
	if ok && ok2 && term.IsTerminal(int(in.Fd())) && term.IsTerminal(int(out.Fd())) {
		return runTerminal(s, in, out)
	}
	return runScript(s, stdin)
}

// runScript runs the commands read from r, one a line. A command that
// fails does not stop the ones after it; the exit status is that of the
// last one that failed, 0 when none did. quit stops reading. SIGINT or
// SIGTERM ends the command under way, as at the prompt, and the script:
// the commands after it do not run, and the status is a shell's for a
// command the signal ended (130, 143).
func runScript(s *session, r io.Reader) int {
	stopped := watchScriptSignals()
	defer stopped.stop()
	sc := bufio.NewScanner(r)
	sc.Buffer(nil, 64<<20)
	status := exitOK
	for sc.Scan() {
		ctx, ok := stopped.begin()
		if !ok {
			break
		}
		code, quit := s.runLine(ctx, sc.Text(), false)
		if sig := stopped.end(); sig != 0 {
			return 128 + sig
		}
		if code != exitOK {
			status = code
		}
		if quit {
			return status
		}
	}
	if err := sc.Err(); err != nil {
		fmt.Fprintf(s.stderr, "ncclient: reading commands: %v\n", err)
		return exitFailed
	}
	return status
}

// scriptSignals follows SIGINT and SIGTERM while a script runs. One
// that comes while a command runs is kept for end, and ends the command
// by cancelling its context; one that comes between commands, while the
// script waits for its next line, ends the process as the signal would
// have. The command's context is cancelled only here, after the signal
// is kept: a context of its own that the signal cancelled
// (interruptContext) could end the command before the signal was kept,
// and the script would go on.
type scriptSignals struct {
	sigs    chan os.Signal
	done    chan struct{}
	mu      sync.Mutex
	running bool
	cancel  context.CancelFunc // the running command's
	got     syscall.Signal
}

func watchScriptSignals() *scriptSignals {
	w := &scriptSignals{sigs: make(chan os.Signal, 1), done: make(chan struct{})}
	signal.Notify(w.sigs, os.Interrupt, syscall.SIGTERM)
	go func() {
		for {
			select {
			case sig := <-w.sigs:
				n, _ := sig.(syscall.Signal)
				w.mu.Lock()
				if !w.running {
					os.Exit(128 + int(n))
				}
				w.got = n
				w.cancel()
				w.mu.Unlock()
			case <-w.done:
				return
			}
		}
	}()
	return w
}

// begin marks a command as running and returns its context, which a
// signal cancels; false when a signal came already.
func (w *scriptSignals) begin() (context.Context, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.got != 0 {
		return nil, false
	}
	ctx, cancel := context.WithCancel(context.Background())
	w.running, w.cancel = true, cancel
	return ctx, true
}

// end marks the command done and returns the signal that came while it
// ran, 0 if none.
func (w *scriptSignals) end() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.running = false
	w.cancel()
	return int(w.got)
}

func (w *scriptSignals) stop() {
	signal.Stop(w.sigs)
	close(w.done)
}

// runLine parses and runs one line under ctx, which a signal cancels,
// and reports whether it was quit.
func (s *session) runLine(ctx context.Context, line string, interactive bool) (code int, quit bool) {
	c, err := parseLine(line)
	if err != nil {
		return s.report(err), false
	}
	if ctx.Err() != nil {
		// A signal came as the command began: it does not run.
		return exitFailed, false
	}
	err = s.exec(ctx, c, interactive)
	if interactive && ctx.Err() != nil {
		// Ctrl-C ended the command; the terminal echoed ^C without a
		// newline, and the prompt goes on a line of its own.
		fmt.Fprintln(s.stdout)
	}
	if errors.Is(err, errQuit) {
		return exitOK, true
	}
	return s.report(err), false
}

// ctrlC is what the terminal reader turns Ctrl-C into: a key that
// term.Terminal hands to the completion callback, which clears the line,
// instead of ending the input as Ctrl-C would.
const ctrlC = 0x07

// ctrlCReader reads the terminal and replaces Ctrl-C.
type ctrlCReader struct{ r io.Reader }

func (c ctrlCReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	for i := range p[:n] {
		if p[i] == 0x03 {
			p[i] = ctrlC
		}
	}
	return n, err
}

// runTerminal is the prompt: line editing, history and Tab completion
// (golang.org/x/term). The terminal is raw only while a line is edited;
// a command runs with it restored, so Ctrl-C is a signal that ends a
// listen and returns to the prompt.
func runTerminal(s *session, in, out *os.File) int {
	tm := newTerminal(s, in, out)
	orig, err := term.GetState(tm.fd)
	if err != nil {
		fmt.Fprintf(s.stderr, "ncclient: %v\n", err)
		return exitFailed
	}
	stop := tm.handleSignals(orig)
	defer stop()
	s.greet(out)
	return tm.run()
}

// terminal is the prompt's line editor on the terminal in and out.
type terminal struct {
	s   *session
	t   *term.Terminal
	fd  int // of in, raw while a line is edited
	out *os.File
}

func newTerminal(s *session, in, out *os.File) *terminal {
	rw := struct {
		io.Reader
		io.Writer
	}{ctrlCReader{in}, out}
	tm := &terminal{s: s, t: term.NewTerminal(rw, prompt), fd: int(in.Fd()), out: out}
	tm.t.History = loadHistory(s.set.history, func(err error) {
		fmt.Fprintf(s.stderr, "ncclient: %v; the history is not kept\n", err)
	})
	tm.t.AutoCompleteCallback = tm.key
	return tm
}

// key is the line editor's AutoCompleteCallback: Tab completes the line
// or lists the candidates, Ctrl-C (as ctrlCReader hands it on) clears
// the line.
func (tm *terminal) key(line string, pos int, key rune) (string, int, bool) {
	switch key {
	case '\t':
		c := tm.s.complete(line, pos)
		if len(c.candidates) > 0 {
			tm.t.Write([]byte(strings.Join(c.candidates, "  ") + "\n"))
			return line, pos, true
		}
		return c.line, c.pos, c.changed
	case ctrlC:
		tm.t.Write([]byte(prompt + line + "^C\n"))
		return "", 0, true
	}
	return "", 0, false
}

// resize tells the line editor the terminal's size. A terminal that
// says 0×0 (a pseudo-terminal whose size nobody set, as script makes)
// keeps the editor's 80×24: at width 0 it broke every character onto a
// line of its own.
func (tm *terminal) resize() {
	if w, h, err := term.GetSize(int(tm.out.Fd())); err == nil && w > 0 && h > 0 {
		tm.t.SetSize(w, h)
	}
}

// handleSignals watches signals until stop is called. While a line is
// edited the terminal is raw, and a signal that ends the process must
// give it back as it was (orig). SIGINT from elsewhere is ignored at the
// prompt; while a command runs, its context hears it.
func (tm *terminal) handleSignals(orig *term.State) (stop func()) {
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, append([]os.Signal{syscall.SIGTERM, syscall.SIGHUP, os.Interrupt}, resizeSignals...)...)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for sig := range sigs {
			switch sig {
			case syscall.SIGTERM, syscall.SIGHUP:
				term.Restore(tm.fd, orig)
				fmt.Fprintf(tm.s.stderr, "\nncclient: %v\n", sig)
				os.Exit(exitFailed)
			case os.Interrupt:
			default:
				tm.resize()
			}
		}
	}()
	return func() {
		signal.Stop(sigs)
		close(sigs)
		wg.Wait()
	}
}

// run reads and runs lines until the end of input or quit.
func (tm *terminal) run() int {
	for {
		state, err := term.MakeRaw(tm.fd)
		if err != nil {
			fmt.Fprintf(tm.s.stderr, "ncclient: %v\n", err)
			return exitFailed
		}
		tm.resize()
		line, err := tm.t.ReadLine()
		term.Restore(tm.fd, state)
		if err == io.EOF {
			fmt.Fprintln(tm.out)
			return exitOK
		}
		if err != nil {
			fmt.Fprintf(tm.s.stderr, "ncclient: reading the terminal: %v\n", err)
			return exitFailed
		}
		ctx, stop := interruptContext(context.Background())
		_, quit := tm.s.runLine(ctx, line, true)
		stop()
		if quit {
			return exitOK
		}
	}
}

// greet says, as the prompt starts, which server it talks to and what it
// serves, or why it cannot; the commands will try again.
func (s *session) greet(w io.Writer) {
	ctx, cancel := context.WithTimeout(context.Background(), s.set.timeout)
	defer cancel()
	if names, err := s.channelNames(ctx, true); err != nil {
		fmt.Fprintf(s.stderr, "ncclient: %v\n", err)
	} else {
		fmt.Fprintf(w, "ncclient: connected to %s; channels: %s\n", wire.SocketPath(s.set.socket, controlChannel), strings.Join(names, ", "))
	}
	fmt.Fprintln(w, "help lists the commands, Tab completes, Ctrl-D leaves.")
}
