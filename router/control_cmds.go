package router

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/netcluster/netcluster/channel"
)

// The handlers of the control requests but showconfig. Each returns its
// answer's type (control_answers.go).

func (s *Server) ctlReload(req *controlReq, a args) (*ReloadAnswer, error) {
	path, err := a.str("path")
	if err != nil {
		return nil, err
	}
	// Answer as soon as the new configuration is in place: closing the
	// removed channels may close the asker's.
	if _, err := s.reloadFile(path, func(rep ReloadReport) { req.answer(reloadAnswer(rep), nil) }); err != nil {
		return nil, err
	}
	return nil, errAnswered
}

// errAnswered tells control that the request has been answered already.
var errAnswered = errors.New("answered")

// channelInfo finds a served channel by name.
func (s *Server) channelInfo(name string) (ChannelInfo, error) {
	for _, ci := range s.Channels() {
		if ci.Name == name {
			return ci, nil
		}
	}
	return ChannelInfo{}, fmt.Errorf("no channel %q; channels: %s", name, strings.Join(s.Config().ChannelNames(), ", "))
}

func (s *Server) ctlShowChannel(req *controlReq, a args) (*ChannelAnswer, error) {
	name, err := a.str("channel")
	if err != nil {
		return nil, err
	}
	ci, err := s.channelInfo(name)
	if err != nil {
		return nil, err
	}
	clients, _ := s.Clients(name)
	cs := make([]ClientAnswer, len(clients))
	for i, c := range clients {
		cs[i] = clientAnswer(c)
	}
	return &ChannelAnswer{
		Channel: ci.Name, Socket: ci.Socket, Mode: fmt.Sprintf("%04o", ci.Mode),
		PropagateToChannels: propagateValue(ci.Rule), PropagateToNet: ci.Rule.PropagateToNet,
		DumpToConsole: ci.Rule.DumpToConsole, AcceptFromNet: ci.Rule.AcceptFromNet,
		Targets: list(ci.Targets), Stats: ci.Stats, Clients: cs,
	}, nil
}

// minIDPrefix is the shortest prefix of a client id that showclient takes.
const minIDPrefix = 4

func (s *Server) ctlShowClient(req *controlReq, a args) (*ShowClientAnswer, error) {
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
	var found []ShowClientAnswer
	for _, name := range names {
		clients, _ := s.Clients(name)
		for _, c := range clients {
			if strings.HasPrefix(c.ID.String(), id) {
				found = append(found, ShowClientAnswer{Channel: name, ClientAnswer: clientAnswer(c)})
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
		return &found[0], nil
	}
	return nil, fmt.Errorf("%d clients %s have ids beginning %s; give more of the id", len(found), where, id)
}

func (s *Server) ctlClientCount(req *controlReq, a args) (*ClientCountAnswer, error) {
	only, err := a.str("channel")
	if err != nil {
		return nil, err
	}
	out := &ClientCountAnswer{Channels: map[string]int{}}
	for _, ci := range s.Channels() {
		if only != "" && ci.Name != only {
			continue
		}
		out.Channels[ci.Name] = ci.Stats.Clients
		out.Total += ci.Stats.Clients
	}
	if only != "" && len(out.Channels) == 0 {
		if _, err := s.channelInfo(only); err != nil {
			return nil, err
		}
	}
	return out, nil
}

func (s *Server) ctlChannels(*controlReq, args) (*ChannelsAnswer, error) {
	out := &ChannelsAnswer{Channels: []ChannelSummary{}}
	for _, ci := range s.Channels() {
		out.Channels = append(out.Channels, ChannelSummary{
			Name: ci.Name, Socket: ci.Socket, Mode: fmt.Sprintf("%04o", ci.Mode),
			PropagateToChannels: propagateValue(ci.Rule), Targets: list(ci.Targets), Clients: ci.Stats.Clients,
		})
	}
	return out, nil
}

// ctlPeers answers peers: the other servers of the cluster heard lately.
func (s *Server) ctlPeers(*controlReq, args) (*PeersAnswer, error) {
	out := &PeersAnswer{Network: s.NetStats().Connected, Peers: []PeerAnswer{}}
	for _, p := range s.Peers() {
		out.Peers = append(out.Peers, peerAnswer(p))
	}
	s.addNatsPeers(out)
	return out, nil
}

func (s *Server) ctlStats(*controlReq, args) (*StatsAnswer, error) {
	out := &StatsAnswer{
		Uptime: time.Since(s.started).Seconds(), Reloads: s.reloads.Load(), Undeliverable: s.undeliverable.Load(),
		Channels: map[string]channel.Stats{}, Network: newNetworkAnswer(s.NetStats()), Peers: map[string]PeerAnswer{},
	}
	for _, p := range s.Peers() {
		out.Peers[p.Node.String()] = peerAnswer(p)
	}
	for _, ci := range s.Channels() {
		out.Channels[ci.Name] = ci.Stats
		addStats(&out.Total, ci.Stats)
	}
	s.addNatsStats(out)
	return out, nil
}

func (s *Server) ctlLogLevel(req *controlReq, a args) (*LogLevelAnswer, error) {
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
		return &LogLevelAnswer{Level: cur}, nil
	}
	var l slog.Level
	if err := l.UnmarshalText([]byte(want)); err != nil {
		return nil, fmt.Errorf("level %q: want debug, info, warn or error", want)
	}
	lv.Set(l)
	s.log.Info("log level changed", "level", levelName(l), "previous", cur)
	return &LogLevelAnswer{Level: levelName(l), Previous: cur}, nil
}

// levelName names a level as the loglevel request takes it.
func levelName(l slog.Level) string { return strings.ToLower(l.String()) }

func (s *Server) ctlShutdown(*controlReq, args) (*OKAnswer, error) {
	s.log.Info("stopping", "reason", "control request shutdown")
	return &OKAnswer{OK: true}, nil
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
func (s *Server) ctlRestart(*controlReq, args) (*OKAnswer, error) {
	if s.opts.Restart == nil {
		return nil, errNoRestart
	}
	s.log.Info("restarting", "reason", "control request restart")
	return &OKAnswer{OK: true}, nil
}
