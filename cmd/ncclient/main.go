// Command ncclient inspects and steers a running ncserver, and emits and
// listens to events from the shell.
//
// Usage:
//
//	ncclient [flags]                     interactive prompt
//	ncclient [flags] <command> [args]    run one command and exit
//
// The commands are the control requests of the control channel
// (showconfig, reloadconfig, showchannel, showclient, clientcount,
// channels, peers, stats, loglevel, shutdown, restart) and emit, listen,
// help and quit. At the prompt, both spellings work: `showchannel A` and
// `showchannel("A")`. When standard input is not a terminal, ncclient
// reads one command a line from it, so scripts can pipe commands in.
//
// Exit status: 0 on success, 1 when a request fails (the server answered
// with an error, the channel does not exist, bad JSON data), 2 for a
// usage error, 3 when no server is running.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/netcluster/netcluster/internal/wire"
)

// Exit statuses.
const (
	exitOK       = 0
	exitFailed   = 1 // the request failed or the server answered with an error
	exitUsage    = 2 // bad flags, an unknown command or wrong arguments
	exitNoServer = 3 // no server serves the control channel or the channel named
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}

// settings are the flags.
type settings struct {
	socket  string
	json    bool
	timeout time.Duration
	history string
	// serverUID is the uid the server must run as; -1 checks nothing.
	serverUID int
}

func run(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	s := settings{socket: wire.DefaultSocketTemplate(), timeout: 5 * time.Second, history: defaultHistoryFile(), serverUID: -1}
	fs := flag.NewFlagSet("ncclient", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { usage(stderr, fs) }
	s.register(fs)
	words, err := parseInterspersed(fs, args)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitOK
		}
		return exitUsage
	}
	if err := s.check(); err != nil {
		fmt.Fprintf(stderr, "ncclient: %v\n", err)
		return exitUsage
	}
	sess := newSession(s, stdout, stderr)
	defer sess.close()
	if len(words) == 0 {
		return runInteractive(sess, stdin)
	}
	cmd, err := parseWords(words)
	if err != nil {
		fmt.Fprintf(stderr, "ncclient: %v\n", err)
		return exitUsage
	}
	ctx, stop := interruptContext(context.Background())
	defer stop()
	return sess.report(sess.exec(ctx, cmd, false))
}

// register defines the flags on fs, each defaulting to its value in s.
// Commands with flags of their own register these too, so that they are
// accepted after the command as well.
func (s *settings) register(fs *flag.FlagSet) {
	fs.StringVar(&s.socket, "socket", s.socket, "socket path template of the server; {channel} stands for the channel name")
	fs.BoolVar(&s.json, "json", s.json, "print responses as JSON, and events as one JSON object a line")
	fs.DurationVar(&s.timeout, "timeout", s.timeout, "how long to wait for the server: to connect, and for each answer")
	fs.StringVar(&s.history, "history", s.history, "file that keeps the prompt's history; empty keeps none")
	fs.IntVar(&s.serverUID, "server-uid", s.serverUID, "refuse a server that does not run as this user id (from the socket's peer credentials); -1 checks nothing")
}

// check says what is wrong with the flags' values.
func (s *settings) check() error {
	if !strings.Contains(s.socket, wire.ChannelPlaceholder) {
		return fmt.Errorf("-socket %q must contain %s", s.socket, wire.ChannelPlaceholder)
	}
	if s.timeout <= 0 {
		return fmt.Errorf("-timeout %v must be positive", s.timeout)
	}
	return nil
}

// parseInterspersed parses flags anywhere among the arguments, so that
// `ncclient showconfig --json` works as `ncclient --json showconfig` does.
// A word that starts with '-' and a digit is an argument (a negative
// number for emit), and "--" ends the flags. The words after a command
// that parses its own flags (record, replay) are left to it.
func parseInterspersed(fs *flag.FlagSet, args []string) ([]string, error) {
	return interspersed(fs, args, func(word string) bool {
		c := lookup(strings.ToLower(word))
		return c != nil && c.run != nil
	})
}

// interspersed parses flags anywhere among args. When stop (if not nil)
// holds for the first word, the words after it are left as they are.
func interspersed(fs *flag.FlagSet, args []string, stop func(first string) bool) ([]string, error) {
	var words []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		rest := fs.Args()
		if len(rest) == 0 {
			return words, nil
		}
		if len(args) > len(rest) && args[len(args)-len(rest)-1] == "--" {
			return append(words, rest...), nil
		}
		words = append(words, rest[0])
		args = rest[1:]
		if stop != nil && len(words) == 1 && stop(rest[0]) {
			return append(words, args...), nil
		}
		for len(args) > 0 && isNegativeNumber(args[0]) {
			words = append(words, args[0])
			args = args[1:]
		}
	}
}

func isNegativeNumber(s string) bool {
	return len(s) > 1 && s[0] == '-' && (s[1] >= '0' && s[1] <= '9' || s[1] == '.')
}

func usage(w io.Writer, fs *flag.FlagSet) {
	fmt.Fprint(w, `usage: ncclient [flags]                    interactive prompt
       ncclient [flags] <command> [args]   run one command and exit

Inspects and steers a running ncserver through its control channel, and
emits and listens to events. At the prompt, both "showchannel A" and
"showchannel("A")" work; Tab completes commands and channel names. With
standard input not a terminal, commands are read from it, one a line.

commands:
`)
	for _, c := range commands {
		if syn := c.synopsis(); len(syn) > 34 {
			// Too long for the column: the summary goes below.
			fmt.Fprintf(w, "  %s\n  %-34s %s\n", syn, "", c.summary)
		} else {
			fmt.Fprintf(w, "  %-34s %s\n", syn, c.summary)
		}
	}
	fmt.Fprint(w, `
exit status:
  0  success
  1  the request failed: the server answered with an error, the channel
     does not exist, or the data is not JSON
  2  usage error: bad flags, unknown command, wrong arguments
  3  no server is running (nothing answers on the control socket, or on
     the channel's socket when the control channel is not served)

flags (before or after the command):
`)
	fs.PrintDefaults()
}
