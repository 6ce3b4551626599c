package main

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"

	"github.com/netcluster/netcluster/bus"
)

// requestPrefix names the control requests: nc-control-<command>.
const requestPrefix = "nc-control-"

// requestData makes the arguments of a control request, as the control
// channel's schema names them.
func requestData(c call) (map[string]any, error) {
	args := map[string]any{}
	switch c.name {
	case "reloadconfig":
		if p := c.arg(0); p != "" {
			// The server resolves a relative path from its own
			// directory, not ours.
			abs, err := filepath.Abs(p)
			if err != nil {
				return nil, fmt.Errorf("reloadconfig: %w", err)
			}
			args["path"] = abs
		}
	case "showchannel", "clientcount":
		if ch := c.arg(0); ch != "" {
			args["channel"] = ch
		}
	case "showclient":
		if len(c.args) == 1 {
			args["id"] = c.arg(0)
		} else {
			args["channel"], args["id"] = c.arg(0), c.arg(1)
		}
	case "loglevel":
		if lv := c.arg(0); lv != "" {
			args["level"] = strings.ToLower(lv)
		}
	}
	if len(args) == 0 {
		return nil, nil
	}
	return args, nil
}

// requestError is a control request the server answered with an error.
type requestError struct {
	command  string
	message  string
	problems []string // for reloadconfig: the problems of the file
}

func (e *requestError) Error() string {
	msg := fmt.Sprintf("%s: %s", e.command, e.message)
	for _, p := range e.problems {
		msg += "\n  " + p
	}
	return msg
}

// request sends nc-control-<command> on the control channel and returns
// the answer's map. An answer holding "error" is returned as a
// *requestError.
func (s *session) request(ctx context.Context, command string, args map[string]any) (map[string]any, error) {
	ctx, cancel := context.WithTimeout(ctx, s.set.timeout)
	defer cancel()
	var reply bus.Message
	for attempt := 0; ; attempt++ {
		c, err := s.controlClient(ctx)
		if err != nil {
			return nil, err
		}
		var data any
		if args != nil {
			data = args
		}
		reply, err = c.Request(ctx, requestPrefix+command, data)
		if errors.Is(err, bus.ErrDisconnected) && attempt == 0 {
			// The server went away since the last command, or restarted:
			// dial again once.
			continue
		}
		if errors.Is(err, context.DeadlineExceeded) {
			return nil, fmt.Errorf("%s: the server did not answer within %v", command, s.set.timeout)
		}
		if errors.Is(err, context.Canceled) {
			return nil, fmt.Errorf("%s: interrupted", command)
		}
		if err != nil {
			return nil, fmt.Errorf("%s: %w", command, err)
		}
		break
	}
	var resp map[string]any
	if err := reply.Decode(&resp); err != nil {
		return nil, fmt.Errorf("%s: the answer is not a map: %w", command, err)
	}
	if msg, ok := resp["error"]; ok {
		e := &requestError{command: command, message: fmt.Sprint(msg)}
		if ps, ok := resp["problems"].([]any); ok {
			for _, p := range ps {
				// The message may list them already.
				if text := problemText(p); !strings.Contains(e.message, text) {
					e.problems = append(e.problems, text)
				}
			}
		}
		return nil, e
	}
	return resp, nil
}

// problemText renders one problem of an invalid configuration as the
// server's log does: file:line:column: key: message.
func problemText(p any) string {
	m, ok := p.(map[string]any)
	if !ok {
		return fmt.Sprint(p)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%v:%v:%v: ", m["file"], m["line"], m["column"])
	if k, _ := m["key"].(string); k != "" {
		b.WriteString(k + ": ")
	}
	fmt.Fprint(&b, m["message"])
	return b.String()
}

// controlRequest runs a control command and prints its answer.
func (s *session) controlRequest(ctx context.Context, c call) error {
	args, err := requestData(c)
	if err != nil {
		return err
	}
	resp, err := s.request(ctx, c.name, args)
	if err != nil {
		return err
	}
	if c.name == "channels" {
		names := channelsOf(resp)
		s.mu.Lock()
		s.channels = names
		s.mu.Unlock()
	}
	if s.set.json {
		return writeJSON(s.stdout, resp, true)
	}
	return writeHuman(s.stdout, c.name, resp)
}

// channelsOf returns the channel names of an answer to `channels`.
func channelsOf(resp map[string]any) []string {
	list, _ := resp["channels"].([]any)
	names := make([]string, 0, len(list))
	for _, ch := range list {
		if m, ok := ch.(map[string]any); ok {
			if n, ok := m["name"].(string); ok {
				names = append(names, n)
			}
		}
	}
	return names
}

// clientIDs returns the client ids of an answer to `showchannel`.
func clientIDs(resp map[string]any) []string {
	list, _ := resp["clients"].([]any)
	var ids []string
	for _, cl := range list {
		if m, ok := cl.(map[string]any); ok {
			if id, ok := m["id"].(string); ok {
				ids = append(ids, id)
			}
		}
	}
	return ids
}
