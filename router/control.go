package router

import (
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/netcluster/netcluster/internal/wire"

	"github.com/google/uuid"
	"github.com/netcluster/netcluster/channel"
)

// ControlPrefix begins the name of every control request: the event
// "nc-control-stats" on the control channel asks for stats, and is
// answered with "nc-control-stats-response". PROTOCOL.md § 12 lists the
// requests, their arguments and their answers.
const ControlPrefix = "nc-control-"

// ControlCommands are the control requests the server answers, without
// ControlPrefix, sorted.
func ControlCommands() []string { return slices.Sorted(maps.Keys(commands)) }

// command is one control request: the arguments it takes and what it
// does. run is called on the asking client's read goroutine unless
// background is set; it returns the answer, one of the types of
// control_answers.go.
type command struct {
	args       []string // known argument keys
	required   []string // of which these must be given
	background bool     // run on a goroutine of the server's: it may take long
	run        func(s *Server, req *controlReq, a args) (any, error)
	// original recognises the data of the original netcluster's form of
	// the request and returns how to answer it (control_original.go).
	original func(data any) (originalRun, bool)
}

// commands are the control requests by name. They are set up in init:
// answering a request leads back to the handler that looks them up.
var commands map[string]command

func init() {
	commands = map[string]command{
		"showconfig":   {run: answers((*Server).ctlShowConfig), original: originalShowConfig},
		"reloadconfig": {args: []string{"path"}, background: true, run: answers((*Server).ctlReload), original: originalReload},
		"showchannel":  {args: []string{"channel"}, required: []string{"channel"}, run: answers((*Server).ctlShowChannel), original: originalShowChannel},
		"showclient":   {args: []string{"channel", "id"}, required: []string{"id"}, run: answers((*Server).ctlShowClient), original: originalShowClient},
		"clientcount":  {args: []string{"channel"}, run: answers((*Server).ctlClientCount)},
		"channels":     {run: answers((*Server).ctlChannels)},
		"peers":        {run: answers((*Server).ctlPeers)},
		"stats":        {run: answers((*Server).ctlStats)},
		"loglevel":     {args: []string{"level"}, run: answers((*Server).ctlLogLevel)},
		"shutdown":     {run: answers((*Server).ctlShutdown)},
		"restart":      {run: answers((*Server).ctlRestart)},
	}
}

// answers makes a handler that returns its own answer type a command's
// run. A failed request has no answer but its error.
func answers[T any](run func(*Server, *controlReq, args) (T, error)) func(*Server, *controlReq, args) (any, error) {
	return func(s *Server, req *controlReq, a args) (any, error) {
		v, err := run(s, req, a)
		if err != nil {
			return nil, err
		}
		return v, nil
	}
}

// args are a request's arguments: its data, decoded as a map.
type args map[string]any

// str returns a string argument; "" when it is absent.
func (a args) str(key string) (string, error) {
	v, ok := a[key]
	if !ok || v == nil {
		return "", nil
	}
	s, ok := v.(string)
	if !ok {
		return "", fmt.Errorf("argument %q: want a string, got %T", key, v)
	}
	return s, nil
}

// control answers a control request and reports whether ev was one. An
// event on the control channel is a request when its name begins with
// ControlPrefix and it answers nothing; it is then not forwarded. It runs
// on the asking client's read goroutine.
func (s *Server) control(from *channel.Conn, ev *wire.EventHeader) bool {
	name, ok := strings.CutPrefix(string(ev.Event), ControlPrefix)
	if !ok || ev.Re != ([16]byte{}) {
		return false
	}
	req := &controlReq{s: s, from: from, event: string(ev.Event), id: ev.ID}
	cmd, ok := commands[name]
	if !ok {
		req.answer(nil, fmt.Errorf("unknown control request %q; known: %s", name, strings.Join(ControlCommands(), ", ")))
		return true
	}
	run, err := decodeRequest(ev.Data, cmd)
	if err != nil {
		req.answer(nil, fmt.Errorf("%s: %w", name, err))
		return true
	}
	s.log.Debug("control request", "request", name, "client", from.Info().Name, "id", from.ID())
	if !cmd.background {
		data, err := run(s, req)
		req.answer(data, err)
		switch {
		case err != nil:
		case name == "shutdown":
			s.shutdownSoon()
		case name == "restart":
			go s.opts.Restart() // answered first: see Options.Restart
		}
		return true
	}
	if !s.goBackground(func() { req.answer(run(s, req)) }) {
		req.answer(nil, ErrClosed)
	}
	return true
}

// decodeRequest decodes a request's data and returns how to answer it:
// in the original netcluster's form when the data has that form's shape,
// else with cmd.run and the data as arguments (decodeArgs).
func decodeRequest(data []byte, cmd command) (originalRun, error) {
	var v any
	if err := wire.DecodeData(data, &v); err != nil {
		return nil, fmt.Errorf("arguments: %w", err)
	}
	if cmd.original != nil {
		if run, ok := cmd.original(v); ok {
			return run, nil
		}
	}
	a, err := decodeArgs(v, cmd)
	if err != nil {
		return nil, err
	}
	return func(s *Server, req *controlReq) (any, error) { return cmd.run(s, req, a) }, nil
}

// decodeArgs takes a request's decoded data as its arguments: nil, or a
// map of the arguments cmd knows, with those it requires.
func decodeArgs(v any, cmd command) (args, error) {
	a := args{}
	switch v := v.(type) {
	case nil:
	case map[string]any:
		a = v
	default:
		return nil, fmt.Errorf("arguments: want nil or a map with string keys, got %T", v)
	}
	return decodeArgsFrom(a, cmd)
}

// decodeArgsFrom checks arguments: only those cmd knows, with those it
// requires.
func decodeArgsFrom(a args, cmd command) (args, error) {
	for _, k := range slices.Sorted(maps.Keys(a)) {
		if !slices.Contains(cmd.args, k) {
			known := "none"
			if len(cmd.args) > 0 {
				known = strings.Join(cmd.args, ", ")
			}
			return nil, fmt.Errorf("unknown argument %q; known: %s", k, known)
		}
	}
	for _, k := range cmd.required {
		if s, err := a.str(k); err != nil || s == "" {
			return nil, fmt.Errorf("argument %q is required", k)
		}
	}
	return a, nil
}

// controlReq is a request being answered.
type controlReq struct {
	s     *Server
	from  *channel.Conn
	event string
	id    [16]byte
}

// answer sends the reply, or the error, to the asker only.
func (r *controlReq) answer(data any, err error) {
	if err == errAnswered {
		return
	}
	if err != nil {
		data = errorAnswer(err)
		r.s.log.Info("control request failed", "request", r.event, "err", err)
	}
	m := wire.Message{
		ID: uuid.New(), Origin: r.s.node, Sender: r.s.node, Channel: ControlChannel,
		Event: r.event + wire.ReplySuffix, To: r.from.ID(), InReplyTo: r.id,
	}
	frame, err := r.encode(&m, data)
	if err != nil {
		frame, _ = r.encode(&m, errorAnswer(err))
	}
	r.from.Send(frame)
}

func (r *controlReq) encode(m *wire.Message, data any) ([]byte, error) {
	enc, err := wire.AppendData(nil, data)
	if err != nil {
		return nil, err
	}
	m.Data = enc
	frame := wire.AppendEvent(nil, m)
	if max := r.s.Config().MaxFrame; len(frame)-wire.HeaderLen > max {
		return nil, fmt.Errorf("the answer is %d bytes, over maxframe (%d)", len(frame)-wire.HeaderLen, max)
	}
	return frame, nil
}

// list makes a nil slice an empty one, which msgpack encodes as an empty
// array rather than nil.
func list[T any](xs []T) []T {
	if xs == nil {
		return []T{}
	}
	return xs
}
