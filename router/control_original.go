package router

import (
	"encoding/json"
	"fmt"
)

// The original netcluster's forms of four control requests. Its REPL
// sent showconfig with the data "", showchannel with the bare channel
// name, showclient with {channel, client} and reloadconfig with the whole
// configuration object; PROTOCOL.md § 12.6 lists them and their answers.
// Each command that has such a form recognises it by its data's shape,
// which never overlaps today's form (nil or a map of known arguments).

// originalRun answers a request in its original form.
type originalRun func(s *Server, req *controlReq) (any, error)

// ObjectConfigName names a configuration sent as an object by
// reloadconfig, in its errors and as the File of the configuration.
const ObjectConfigName = "<reloadconfig request>"

// OriginalReloaded is the answer to a reloadconfig with a configuration
// object that was applied, as the original server answered.
const OriginalReloaded = "done"

// originalShowConfig: any string (the original sent "") asks for the
// configuration object itself.
func originalShowConfig(v any) (originalRun, bool) {
	if _, ok := v.(string); !ok {
		return nil, false
	}
	return func(s *Server, _ *controlReq) (any, error) { return configMap(s.Config()), nil }, true
}

// originalShowChannel: a string names the channel; the answer is the
// array of its clients.
func originalShowChannel(v any) (originalRun, bool) {
	name, ok := v.(string)
	if !ok {
		return nil, false
	}
	return func(s *Server, req *controlReq) (any, error) {
		ch, err := s.ctlShowChannel(req, args{"channel": name})
		if err != nil {
			return nil, err
		}
		return ch.Clients, nil
	}, true
}

// originalShowClient: a map with "client" (the original's key for the
// id) and "channel".
func originalShowClient(v any) (originalRun, bool) {
	m, ok := v.(map[string]any)
	if !ok {
		return nil, false
	}
	if _, ok := m["client"]; !ok {
		return nil, false
	}
	a := args{}
	for k, v := range m {
		if k == "client" {
			k = "id"
		}
		a[k] = v
	}
	return func(s *Server, req *controlReq) (any, error) {
		if _, err := decodeArgsFrom(a, commands["showclient"]); err != nil {
			return nil, err
		}
		return s.ctlShowClient(req, a)
	}, true
}

// originalReload: a map with any key but "path" is a whole configuration.
func originalReload(v any) (originalRun, bool) {
	m, ok := v.(map[string]any)
	if !ok || len(m) == 0 {
		return nil, false
	}
	if _, ok := m["path"]; ok && len(m) == 1 {
		return nil, false
	}
	return func(s *Server, req *controlReq) (any, error) {
		cfg, err := parseObject(m)
		if err != nil {
			return nil, err
		}
		if _, err := s.reload(cfg, func(ReloadReport) { req.answer(OriginalReloaded, nil) }); err != nil {
			return nil, err
		}
		return nil, errAnswered
	}, true
}

// parseObject checks a configuration sent as an object exactly as a
// file: it is written out as JSON, one key a line so that the problems'
// lines point somewhere, and parsed under the name ObjectConfigName.
func parseObject(m map[string]any) (*Config, error) {
	text, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("the configuration object: %w", err)
	}
	return Parse(ObjectConfigName, text)
}
