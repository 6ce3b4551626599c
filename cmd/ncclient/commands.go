package main

import (
	"context"
	"fmt"
	"strings"
)

// argKind says what an argument is, for completion and for how a line is
// split.
type argKind int

const (
	argWord    argKind = iota // any word
	argChannel                // a channel name: completed from `channels`
	argClient                 // a client id of the channel before it
	argLevel                  // a log level
	argCommand                // a command name
	argData                   // JSON text: the rest of the line
)

// param is one argument of a command.
type param struct {
	name     string
	kind     argKind
	optional bool
}

// command is one thing ncclient can do.
type command struct {
	name    string
	params  []param
	summary string
	example string
	// control commands are requests on the control channel: the event
	// nc-control-<name>, answered by nc-control-<name>-response.
	control bool
	// usage, for a command that parses its own flags and arguments
	// (record, replay), is what follows its name in the synopsis. Such a
	// command has no params: run gets its words, as the shell split them,
	// in the call's args.
	usage string
	run   func(s *session, ctx context.Context, c call, interactive bool) error
}

// synopsis is the command with its arguments, as help shows it.
func (c *command) synopsis() string {
	if c.usage != "" {
		return c.name + " " + c.usage
	}
	var b strings.Builder
	b.WriteString(c.name)
	for _, p := range c.params {
		if p.optional {
			fmt.Fprintf(&b, " [%s]", p.name)
		} else {
			fmt.Fprintf(&b, " <%s>", p.name)
		}
	}
	return b.String()
}

// required is how many arguments the command needs at least.
func (c *command) required() int {
	n := 0
	for _, p := range c.params {
		if !p.optional {
			n++
		}
	}
	return n
}

// dataParam is the index of the command's JSON data argument, or -1.
func (c *command) dataParam() int {
	for i, p := range c.params {
		if p.kind == argData {
			return i
		}
	}
	return -1
}

// logLevels are the levels loglevel accepts.
var logLevels = []string{"debug", "info", "warn", "error"}

// commands are every command, in the order help lists them.
var commands = []*command{
	{name: "showconfig", control: true,
		summary: "show the configuration the server runs on",
		example: "showconfig"},
	{name: "reloadconfig", control: true,
		params:  []param{{name: "path", optional: true}},
		summary: "reload the configuration, from path or the file the server started with",
		example: "reloadconfig /etc/netcluster/config.json"},
	{name: "channels", control: true,
		summary: "list the channels the server serves",
		example: "channels"},
	{name: "showchannel", control: true,
		params:  []param{{name: "channel", kind: argChannel}},
		summary: "show a channel: its rule and its clients",
		example: `showchannel A   or   showchannel("A")`},
	{name: "showclient", control: true,
		params:  []param{{name: "channel", kind: argChannel, optional: true}, {name: "id", kind: argClient}},
		summary: "show one client: its id, or a unique prefix of it (4 or more characters)",
		example: "showclient A 5f0c3a2e"},
	{name: "clientcount", control: true,
		params:  []param{{name: "channel", kind: argChannel, optional: true}},
		summary: "count the clients of one channel, or of every channel",
		example: "clientcount A"},
	{name: "peers", control: true,
		summary: "list the other servers of the cluster",
		example: "peers"},
	{name: "stats", control: true,
		summary: "show the server's counters",
		example: "stats"},
	{name: "loglevel", control: true,
		params:  []param{{name: "level", kind: argLevel, optional: true}},
		summary: "show the server's log level, or set it: debug, info, warn or error",
		example: "loglevel debug"},
	{name: "shutdown", control: true,
		summary: "stop the server",
		example: "shutdown"},
	{name: "restart", control: true,
		summary: "stop the server and start it again on its configuration file",
		example: "restart"},
	{name: "emit",
		params:  []param{{name: "channel", kind: argChannel}, {name: "event"}, {name: "json", kind: argData, optional: true}},
		summary: "emit an event; the data is JSON (none sends nil)",
		example: `emit A log {"x": 1}`},
	{name: "listen",
		params:  []param{{name: "channel", kind: argChannel}, {name: "pattern", optional: true}},
		summary: "print the channel's events as they arrive, until Ctrl-C; reconnects when the server restarts",
		example: `listen A 'log.*'`},
	{name: "record", usage: "[-o file.mcap] [-event pattern] [-duration d] [-count n] [-compress lz4] <channel>...",
		run:     (*session).record,
		summary: "record channels' events to an MCAP file, until Ctrl-C, -duration or -count",
		example: "record -o morning.mcap -event 'log.*' A B"},
	{name: "replay", usage: "[-rate r] [-loop] [-map A=B] [-event pattern] <file.mcap>",
		run:     (*session).replay,
		summary: "emit a recording's events again, spaced as recorded, -rate times as fast (max: no waits)",
		example: "replay -rate 2 -map A=C morning.mcap"},
	{name: "top", usage: "[-b] [-n count] [-d delay] [-sort key] [channel]",
		run:     (*session).runTop,
		summary: "watch rates live: channels, the clients of one, the network; -b prints snapshots",
		example: "top A   or   top -b -n 3 -d 1 --json A"},
	{name: "help",
		params:  []param{{name: "command", kind: argCommand, optional: true}},
		summary: "list the commands, or explain one",
		example: "help emit"},
	{name: "quit",
		summary: "leave the prompt (so do exit and Ctrl-D)",
		example: "quit"},
}

// aliases are other names of commands.
var aliases = map[string]string{"exit": "quit"}

// lookup finds a command by name or alias.
func lookup(name string) *command {
	if a, ok := aliases[name]; ok {
		name = a
	}
	for _, c := range commands {
		if c.name == name {
			return c
		}
	}
	return nil
}

// commandNames are the names Tab completes, aliases included.
func commandNames() []string {
	names := make([]string, 0, len(commands)+len(aliases))
	for _, c := range commands {
		names = append(names, c.name)
	}
	for a := range aliases {
		names = append(names, a)
	}
	return names
}
