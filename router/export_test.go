package router

import (
	"reflect"
	"time"
)

// What the external tests need of the schema (schema.go).

// SettingNames returns the top-level keys of the schema but "channels",
// in table order.
func SettingNames() []string {
	var out []string
	for i := range settings {
		out = append(out, settings[i].name)
	}
	return out
}

// RuleKeyNames returns the keys of a channel's rule.
func RuleKeyNames() []string {
	var out []string
	for i := range ruleKeys {
		out = append(out, ruleKeys[i].name)
	}
	return out
}

// SecretSetting reports whether the top-level key name is a secret.
func SecretSetting(name string) bool { return settings[indexOf(settings, name)].secret }

// SettingValue returns the value of the top-level key name in c.
func SettingValue(c *Config, name string) any { return settings[indexOf(settings, name)].value(c) }

// RuleValue returns the value of the rule key name in r.
func RuleValue(r ChannelConfig, name string) any { return ruleKeys[indexOf(ruleKeys, name)].value(&r) }

// NetworkAnswerType is the shape of the network part of stats while the
// server is on the network, built from the tags of NetStats.
func NetworkAnswerType() reflect.Type { return netAnswerType }

// NewNetworkAnswer is the network part of stats for n.
func NewNetworkAnswer(n NetStats) NetworkAnswer { return newNetworkAnswer(n) }

// SetNATSPendingLimits sets the pending limits of the subscriptions of
// events of the NATS links opened until the test ends.
func SetNATSPendingLimits(t interface{ Cleanup(func()) }, msgs, bytes int) {
	natsPending.msgs, natsPending.bytes = msgs, bytes
	t.Cleanup(func() { natsPending.msgs, natsPending.bytes = 0, 0 })
}

// NATSPendingLimits are the limits SetNATSPendingLimits set; 0, 0 when
// none is set.
func NATSPendingLimits() (msgs, bytes int) { return natsPending.msgs, natsPending.bytes }

// SetDedupWindow sets how long the dedup remembers ids with both links
// on, for the servers started until the test ends.
func SetDedupWindow(t interface{ Cleanup(func()) }, d time.Duration) {
	was := dedupWindow
	dedupWindow = d
	t.Cleanup(func() { dedupWindow = was })
}

// SetNetHoldHook makes hold run each time fromNet begins to hold the
// multicast link back for a client past its high-water mark. It is set
// under Server.linkMu, which fromNet takes before it reads it.
func (s *Server) SetNetHoldHook(hold func()) {
	s.linkMu.Lock()
	defer s.linkMu.Unlock()
	s.net.holdHook = hold
}
