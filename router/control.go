package router

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/netcluster/netcluster/bus"
	"github.com/netcluster/netcluster/channel"
	"github.com/netcluster/netcluster/multicast"
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
// background is set; it returns the answer's map.
type command struct {
	args       []string // known argument keys
	required   []string // of which these must be given
	background bool     // run on a goroutine of the server's: it may take long
	run        func(s *Server, req *controlReq, a args) (map[string]any, error)
}

// commands are the control requests by name. They are set up in init:
// answering a request leads back to the handler that looks them up.
var commands map[string]command

func init() {
	commands = map[string]command{
		"showconfig":   {run: (*Server).ctlShowConfig},
		"reloadconfig": {args: []string{"path"}, background: true, run: (*Server).ctlReload},
		"showchannel":  {args: []string{"channel"}, required: []string{"channel"}, run: (*Server).ctlShowChannel},
		"showclient":   {args: []string{"channel", "id"}, required: []string{"id"}, run: (*Server).ctlShowClient},
		"clientcount":  {args: []string{"channel"}, run: (*Server).ctlClientCount},
		"channels":     {run: (*Server).ctlChannels},
		"peers":        {run: (*Server).ctlPeers},
		"stats":        {run: (*Server).ctlStats},
		"loglevel":     {args: []string{"level"}, run: (*Server).ctlLogLevel},
		"shutdown":     {run: (*Server).ctlShutdown},
		"restart":      {run: (*Server).ctlRestart},
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
func (s *Server) control(from *channel.Conn, ev *bus.EventHeader) bool {
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
	a, err := decodeArgs(ev.Data, cmd)
	if err != nil {
		req.answer(nil, fmt.Errorf("%s: %w", name, err))
		return true
	}
	s.log.Debug("control request", "request", name, "client", from.Info().Name, "id", from.ID())
	if !cmd.background {
		data, err := cmd.run(s, req, a)
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
	if !s.goBackground(func() { req.answer(cmd.run(s, req, a)) }) {
		req.answer(nil, ErrClosed)
	}
	return true
}

// decodeArgs decodes a request's data: nil, or a map of the arguments
// cmd knows, with those it requires.
func decodeArgs(data []byte, cmd command) (args, error) {
	var v any
	if err := (bus.Message{Data: data}).Decode(&v); err != nil {
		return nil, fmt.Errorf("arguments: %w", err)
	}
	a := args{}
	switch v := v.(type) {
	case nil:
	case map[string]any:
		a = v
	default:
		return nil, fmt.Errorf("arguments: want nil or a map with string keys, got %T", v)
	}
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
func (r *controlReq) answer(data map[string]any, err error) {
	if err == errAnswered {
		return
	}
	if err != nil {
		data = errorAnswer(err)
		r.s.log.Info("control request failed", "request", r.event, "err", err)
	}
	m := bus.Message{
		ID: uuid.New(), Origin: r.s.node, Sender: r.s.node, Channel: ControlChannel,
		Event: r.event + bus.ReplySuffix, To: r.from.ID(), InReplyTo: r.id,
	}
	frame, err := r.encode(&m, data)
	if err != nil {
		frame, _ = r.encode(&m, errorAnswer(err))
	}
	r.from.Send(frame)
}

func (r *controlReq) encode(m *bus.Message, data map[string]any) ([]byte, error) {
	enc, err := bus.AppendData(nil, data)
	if err != nil {
		return nil, err
	}
	m.Data = enc
	frame := bus.AppendEvent(nil, m)
	if max := r.s.Config().MaxFrame; len(frame)-bus.HeaderLen > max {
		return nil, fmt.Errorf("the answer is %d bytes, over maxframe (%d)", len(frame)-bus.HeaderLen, max)
	}
	return frame, nil
}

// errorAnswer is the answer to a failed request: the error, and for an
// invalid configuration each problem.
func errorAnswer(err error) map[string]any {
	out := map[string]any{"error": err.Error()}
	var ce *ConfigError
	if errors.As(err, &ce) {
		ps := make([]map[string]any, len(ce.Problems))
		for i, p := range ce.Problems {
			ps[i] = map[string]any{"file": ce.File, "line": p.Line, "column": p.Column, "key": p.Key, "message": p.Msg}
		}
		out["problems"] = ps
	}
	return out
}

// list makes a nil slice an empty one, which msgpack encodes as an empty
// array rather than nil.
func list[T any](xs []T) []T {
	if xs == nil {
		return []T{}
	}
	return xs
}

func (s *Server) ctlReload(req *controlReq, a args) (map[string]any, error) {
	path, err := a.str("path")
	if err != nil {
		return nil, err
	}
	// Answer as soon as the new configuration is in place: closing the
	// removed channels may close the asker's.
	if _, err := s.reloadFile(path, func(rep ReloadReport) { req.answer(reportMap(rep), nil) }); err != nil {
		return nil, err
	}
	return nil, errAnswered
}

// errAnswered tells control that the request has been answered already.
var errAnswered = errors.New("answered")

func reportMap(rep ReloadReport) map[string]any {
	return map[string]any{
		"file": rep.File, "added": list(rep.Added), "removed": list(rep.Removed),
		"changed": list(rep.Changed), "reopened": list(rep.Reopened), "settings": list(rep.Settings),
	}
}

// channelInfo finds a served channel by name.
func (s *Server) channelInfo(name string) (ChannelInfo, error) {
	for _, ci := range s.Channels() {
		if ci.Name == name {
			return ci, nil
		}
	}
	return ChannelInfo{}, fmt.Errorf("no channel %q; channels: %s", name, strings.Join(s.Config().ChannelNames(), ", "))
}

func (s *Server) ctlShowChannel(req *controlReq, a args) (map[string]any, error) {
	name, err := a.str("channel")
	if err != nil {
		return nil, err
	}
	ci, err := s.channelInfo(name)
	if err != nil {
		return nil, err
	}
	clients, _ := s.Clients(name)
	cs := make([]map[string]any, len(clients))
	for i, c := range clients {
		cs[i] = clientMap(c)
	}
	out := ruleMap(ci.Rule)
	out["channel"] = ci.Name
	out["socket"] = ci.Socket
	out["mode"] = fmt.Sprintf("%04o", ci.Mode)
	out["targets"] = list(ci.Targets)
	out["stats"] = statsMap(ci.Stats)
	out["clients"] = cs
	return out, nil
}

func clientMap(c channel.ClientInfo) map[string]any {
	return map[string]any{
		"id": c.ID.String(), "conn": c.Conn, "name": c.Name, "pid": c.PID, "uid": c.UID, "hello_pid": c.HelloPID,
		"since": c.Since.Format(time.RFC3339Nano), "events_in": c.FramesIn, "bytes_in": c.BytesIn,
		"frames_out": c.FramesOut, "bytes_out": c.BytesOut, "pending": c.Pending, "dropped": c.Dropped,
	}
}

func statsMap(st channel.Stats) map[string]any {
	m := map[string]any{
		"clients": st.Clients, "events_in": st.EventsIn, "bytes_in": st.BytesIn,
		"frames_out": st.FramesOut, "bytes_out": st.BytesOut, "dropped": st.Dropped,
		"slow_consumers": st.SlowConsumers, "too_big": st.TooBig, "undeliverable": st.Undeliverable,
	}
	m["ping_timeouts"] = st.PingTimeouts
	return m
}

// minIDPrefix is the shortest prefix of a client id that showclient takes.
const minIDPrefix = 4

func (s *Server) ctlShowClient(req *controlReq, a args) (map[string]any, error) {
	only, err := a.str("channel")
	if err != nil {
		return nil, err
	}
	id, err := a.str("id")
	if err != nil {
		return nil, err
	}
	id = strings.ToLower(id)
	if len(id) < minIDPrefix {
		return nil, fmt.Errorf("client id %q: give at least %d characters of it", id, minIDPrefix)
	}
	names := s.Config().ChannelNames()
	if only != "" {
		if _, err := s.channelInfo(only); err != nil {
			return nil, err
		}
		names = []string{only}
	}
	var found []map[string]any
	for _, name := range names {
		clients, _ := s.Clients(name)
		for _, c := range clients {
			if strings.HasPrefix(c.ID.String(), id) {
				m := clientMap(c)
				m["channel"] = name
				found = append(found, m)
			}
		}
	}
	where := "on any channel"
	if only != "" {
		where = "on channel " + only
	}
	switch len(found) {
	case 0:
		return nil, fmt.Errorf("no client %s %s", id, where)
	case 1:
		return found[0], nil
	}
	return nil, fmt.Errorf("%d clients %s have ids beginning %s; give more of the id", len(found), where, id)
}

func (s *Server) ctlClientCount(req *controlReq, a args) (map[string]any, error) {
	only, err := a.str("channel")
	if err != nil {
		return nil, err
	}
	counts := map[string]any{}
	total := 0
	for _, ci := range s.Channels() {
		if only != "" && ci.Name != only {
			continue
		}
		counts[ci.Name] = ci.Stats.Clients
		total += ci.Stats.Clients
	}
	if only != "" && len(counts) == 0 {
		_, err := s.channelInfo(only)
		return nil, err
	}
	return map[string]any{"total": total, "channels": counts}, nil
}

func (s *Server) ctlChannels(*controlReq, args) (map[string]any, error) {
	var out []map[string]any
	for _, ci := range s.Channels() {
		out = append(out, map[string]any{
			"name": ci.Name, "socket": ci.Socket, "mode": fmt.Sprintf("%04o", ci.Mode),
			"propagatetochannels": propagateValue(ci.Rule), "targets": list(ci.Targets), "clients": ci.Stats.Clients,
		})
	}
	return map[string]any{"channels": list(out)}, nil
}

// ctlPeers answers peers: the other servers of the cluster heard lately.
func (s *Server) ctlPeers(*controlReq, args) (map[string]any, error) {
	peers := []map[string]any{}
	for _, p := range s.Peers() {
		peers = append(peers, peerMap(p))
	}
	return map[string]any{"network": s.NetStats().Connected, "peers": peers}, nil
}

// peerMap is one peer as peers and stats show it.
func peerMap(p multicast.Peer) map[string]any {
	return map[string]any{
		"node": p.Node.String(), "host": p.Host, "pid": p.PID, "version": p.Version,
		"channels": list(p.Channels), "addr": p.Addr.String(),
		"first_seen": p.FirstSeen.UTC().Format(time.RFC3339Nano), "last_seen": p.LastSeen.UTC().Format(time.RFC3339Nano),
		"last_seq": p.LastSeq, "lost": p.Lost, "datagrams": p.Datagrams, "bytes": p.Bytes,
		"repaired": p.Repaired,
	}
}

// netStatsMap is the network part of stats.
func netStatsMap(n NetStats) map[string]any {
	if !n.Connected {
		return map[string]any{"connected": false}
	}
	l := n.Link
	return map[string]any{
		"connected": n.Connected, "delivered": n.Delivered, "no_channel": n.NoChannel, "refused": n.Refused,
		"malformed": n.Malformed, "send_failed": n.SendFailed,
		"datagrams_sent": l.DatagramsSent, "bytes_sent": l.BytesSent, "messages_sent": l.MessagesSent, "send_errors": l.SendErrors,
		"datagrams_received": l.DatagramsReceived, "bytes_received": l.BytesReceived, "heartbeats": l.Heartbeats,
		"own": l.Own, "other_cluster": l.OtherCluster, "dropped": l.Dropped(), "duplicates": l.Duplicates,
		"expired": l.Expired, "evicted": l.Evicted, "lost": l.Lost, "reassembly_bytes": l.ReassemblyBytes, "peers": l.Peers,
		"queue_full": l.QueueFull, "unsent": l.Unsent, "queue_bytes": l.QueueBytes, "queue_peak": l.QueuePeak,
		"unsealed": l.Unsealed, "sealed": l.Sealed, "forged": l.Forged, "replayed": l.Replayed,
		"repaired": l.Repaired, "out_of_order": l.OutOfOrder, "late": l.Late, "gaps": l.Gaps,
		"held_bytes": l.HeldBytes, "held_peak": l.HeldPeak, "naks_sent": l.NAKsSent, "naks_received": l.NAKsReceived, "naks_heard": l.NAKsHeard,
		"repairs_sent": l.RepairsSent, "resent": l.Resent, "unavailable": l.Unavailable, "repair_limited": l.RepairLimited,
		"repairs_received": l.RepairsIn, "ctl_dropped": l.CtlDropped, "history_bytes": l.HistoryBytes, "history_datagrams": l.HistoryCount,
	}
}

func (s *Server) ctlStats(*controlReq, args) (map[string]any, error) {
	peers := map[string]any{}
	for _, p := range s.Peers() {
		peers[p.Node.String()] = peerMap(p)
	}
	chans := map[string]any{}
	var total channel.Stats
	for _, ci := range s.Channels() {
		st := ci.Stats
		chans[ci.Name] = statsMap(st)
		total.Clients += st.Clients
		total.EventsIn += st.EventsIn
		total.BytesIn += st.BytesIn
		total.FramesOut += st.FramesOut
		total.BytesOut += st.BytesOut
		total.Dropped += st.Dropped
		total.SlowConsumers += st.SlowConsumers
		total.TooBig += st.TooBig
		total.Undeliverable += st.Undeliverable
		total.PingTimeouts += st.PingTimeouts
	}
	return map[string]any{
		"uptime": time.Since(s.started).Seconds(), "reloads": s.reloads.Load(),
		"undeliverable": s.undeliverable.Load(), "channels": chans, "total": statsMap(total),
		"network": netStatsMap(s.NetStats()), "peers": peers,
	}, nil
}

func (s *Server) ctlLogLevel(req *controlReq, a args) (map[string]any, error) {
	lv := s.opts.LogLevel
	if lv == nil {
		return nil, errors.New("this server's log level cannot be changed while it runs")
	}
	want, err := a.str("level")
	if err != nil {
		return nil, err
	}
	cur := levelName(lv.Level())
	if want == "" {
		return map[string]any{"level": cur}, nil
	}
	var l slog.Level
	if err := l.UnmarshalText([]byte(want)); err != nil {
		return nil, fmt.Errorf("level %q: want debug, info, warn or error", want)
	}
	lv.Set(l)
	s.log.Info("log level changed", "level", levelName(l), "previous", cur)
	return map[string]any{"level": levelName(l), "previous": cur}, nil
}

// levelName names a level as the loglevel request takes it.
func levelName(l slog.Level) string { return strings.ToLower(l.String()) }

func (s *Server) ctlShutdown(*controlReq, args) (map[string]any, error) {
	s.log.Info("stopping", "reason", "control request shutdown")
	return map[string]any{"ok": true}, nil
}

// shutdownSoon shuts the server down gracefully from a goroutine of its
// own: it cannot be done on a client's read goroutine, which Shutdown
// waits for. The goroutine ends as soon as Shutdown returns; Done tells
// when that is.
func (s *Server) shutdownSoon() {
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), s.opts.ShutdownTimeout)
		defer cancel()
		if err := s.Shutdown(ctx); err != nil {
			s.log.Warn("queued frames were dropped at shutdown", "err", err)
		}
	}()
}

// errNoRestart answers restart on a server started without Options.Restart.
var errNoRestart = errors.New("this server cannot restart itself")

// ctlRestart answers restart; control then calls Options.Restart.
func (s *Server) ctlRestart(*controlReq, args) (map[string]any, error) {
	if s.opts.Restart == nil {
		return nil, errNoRestart
	}
	s.log.Info("restarting", "reason", "control request restart")
	return map[string]any{"ok": true}, nil
}
