package router

import (
	"encoding/json"
	"errors"
	"strconv"

	"github.com/netcluster/netcluster/channel"
	"github.com/tailscale/hujson"
)

// The keys of a channel's rule that say who may use it (allow, publish,
// socketgroup, maxclients, maxclientsperuid) and its socket's mode:
// their checks, and the channel.Access they make.

// list checks that v is a list of strings and integers (user and group
// names and numbers), and records where it starts if so.
func (c *checker) list(key string, v *hujson.Value, s slot) bool {
	arr, ok := v.Value.(*hujson.Array)
	if !ok {
		c.add(v.StartOffset, key, "want %s, got %s", s.want, describeValue(v))
		return false
	}
	good := true
	for i := range arr.Elements {
		e := &arr.Elements[i]
		lit, _ := e.Value.(hujson.Literal)
		switch fit := literalFits(lit, tString); {
		case fit == nil:
		case literalFits(lit, tInt) == nil && !errors.Is(literalFits(lit, tInt), strconv.ErrRange):
		default:
			c.add(e.StartOffset, key, "want a user or group name or number, got %s", describeValue(e))
			good = false
		}
	}
	if good {
		c.at[key] = v.StartOffset
	}
	return good
}

// asStrings is a decoded list as strings (numbers as written), or a
// default.
func asStrings(v any) []string {
	var out []string
	switch l := v.(type) {
	case []any:
		for _, e := range l {
			switch e := e.(type) {
			case string:
				out = append(out, e)
			case json.Number:
				out = append(out, e.String())
			}
		}
	case []string:
		out = append(out, l...)
	}
	return out
}

// principals looks the entries of an allow or publish list up.
func principals(c *checker, key string, entries []string) *channel.Principals {
	if len(entries) == 0 {
		return nil
	}
	p, err := channel.ParsePrincipals(entries)
	if err != nil {
		c.addAt([]string{key}, "%v", err)
		return nil
	}
	return p
}

func checkAllow(c *checker, key string, r *ChannelConfig) {
	r.AllowSet = principals(c, key, r.Allow)
}

func checkPublish(c *checker, key string, r *ChannelConfig) {
	r.PublishSet = principals(c, key, r.Publish)
}

func checkSocketGroup(c *checker, key string, r *ChannelConfig) {
	if r.SocketGroup == "" {
		return
	}
	if r.Name == ControlChannel {
		c.addAt([]string{key}, "the control channel's socket is the server user's alone")
		return
	}
	if _, err := channel.LookupGroup(r.SocketGroup); err != nil {
		c.addAt([]string{key}, "no such group %q: %v", clipText(r.SocketGroup, 40), err)
	}
}

func checkRuleSocketMode(c *checker, key string, r *ChannelConfig) {
	if _, set := c.at[key]; set && r.Name == ControlChannel && r.SocketMode != 0o600 {
		c.addAt([]string{key}, "the control channel's socket is always 0600")
	}
}

// inheritSocketMode gives each channel whose rule leaves socketmode out
// the top-level one.
func (c *checker) inheritSocketMode(cfg *Config) {
	for name, r := range cfg.Channels {
		switch _, set := c.at[channelsKey+"."+name+".socketmode"]; {
		case name == ControlChannel:
			r.SocketMode = 0o600
		case !set:
			r.SocketMode = cfg.SocketMode
		}
		cfg.Channels[name] = r
	}
}

// channelAccess is the channel.Access of a channel's rule.
func channelAccess(r ChannelConfig) channel.Access {
	return channel.Access{Allow: r.AllowSet, Publish: r.PublishSet, MaxClients: r.MaxClients, MaxClientsPerUID: r.MaxClientsPerUID}
}
