package router

// The showconfig control request: the running configuration under the
// file's keys, from the schema (schema.go), so that what it shows, saved
// as JSON, loads as a configuration file (a secret excepted, which shows
// as "(set)" and must be supplied again).

func (s *Server) ctlShowConfig(*controlReq, args) (ShowConfigAnswer, error) {
	cfg := s.Config()
	return ShowConfigAnswer{File: cfg.File, Config: configMap(cfg)}, nil
}

// configMap renders a configuration under the file's keys, redacted.
func configMap(c *Config) map[string]any {
	chans := make(map[string]any, len(c.Channels))
	for name, r := range c.Channels {
		chans[name] = ruleMap(r)
	}
	m := fileMap(settings, c)
	m[channelsKey] = chans
	m[natsKey] = natsShown(c)
	return m
}

// ruleMap renders a rule under the file's keys.
func ruleMap(r ChannelConfig) map[string]any { return fileMap(ruleKeys, &r) }

// propagateValue is a rule's propagatetochannels as the file writes it:
// false or the expression.
func propagateValue(r ChannelConfig) any {
	return ruleKeys[indexOf(ruleKeys, "propagatetochannels")].fileValue(&r)
}
