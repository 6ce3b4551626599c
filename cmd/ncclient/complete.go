package main

import (
	"context"
	"regexp"
	"slices"
	"strings"
	"time"
)

// completeTimeout bounds a request that Tab makes for channel names or
// client ids, so that a server that does not answer stalls the prompt
// briefly only.
const completeTimeout = time.Second

// completion is what Tab does to a line: the new line and cursor
// position, or the candidates to show when there is more than one.
type completion struct {
	line       string
	pos        int
	candidates []string
	changed    bool
}

// callPrefix is a line in the call syntax up to its first argument:
// `showchannel("A` gives the command, the quote and the argument so far.
var callPrefix = regexp.MustCompile(`^\s*([A-Za-z][A-Za-z0-9_-]*)\(\s*(["']?)([^"',)]*)$`)

// complete completes the word before pos in line: a command name first,
// then the command's arguments (channel names, client ids, log levels,
// command names).
func (s *session) complete(line string, pos int) completion {
	before, after := line[:pos], line[pos:]
	if m := callPrefix.FindStringSubmatch(before); m != nil {
		cmd := lookup(strings.ToLower(m[1]))
		if cmd == nil || len(cmd.params) == 0 {
			return completion{line: line, pos: pos}
		}
		matches := s.candidates(cmd, 0, nil, m[3])
		open, quote := "", m[2]
		if quote == "" {
			open, quote = `"`, `"`
		}
		start := len(before) - len(m[3])
		return extend(line, pos, start, m[3], matches, func(w string) string {
			w = open + w + quote
			if len(cmd.params) == 1 && strings.TrimSpace(after) == "" {
				w += ")"
			}
			return w
		})
	}
	// Words are split as parseLine splits them: at spaces and tabs.
	words := strings.FieldsFunc(before, func(r rune) bool { return r == ' ' || r == '\t' })
	cur := ""
	if len(words) > 0 && !strings.HasSuffix(before, " ") && !strings.HasSuffix(before, "\t") {
		cur = words[len(words)-1]
		words = words[:len(words)-1]
	}
	start := len(before) - len(cur)
	var matches []string
	if len(words) == 0 {
		matches = filter(commandNames(), cur)
	} else {
		cmd := lookup(strings.ToLower(words[0]))
		if cmd == nil {
			return completion{line: line, pos: pos}
		}
		matches = s.candidates(cmd, len(words)-1, words[1:], cur)
	}
	return extend(line, pos, start, cur, matches, func(w string) string {
		if after == "" {
			return w + " "
		}
		return w
	})
}

// candidates are the completions of argument i of cmd that start with
// cur; prev are the arguments before it.
func (s *session) candidates(cmd *command, i int, prev []string, cur string) []string {
	if i >= len(cmd.params) {
		return nil
	}
	switch cmd.params[i].kind {
	case argCommand:
		return filter(commandNames(), cur)
	case argLevel:
		return filter(logLevels, cur)
	case argChannel:
		ctx, cancel := context.WithTimeout(context.Background(), completeTimeout)
		defer cancel()
		names, _ := s.channelNames(ctx, false)
		if m := filter(names, cur); len(m) > 0 {
			return m
		}
		// The cache may be stale: a reload added channels.
		names, _ = s.channelNames(ctx, true)
		return filter(names, cur)
	case argClient:
		if len(prev) == 0 {
			return nil
		}
		ctx, cancel := context.WithTimeout(context.Background(), completeTimeout)
		defer cancel()
		resp, err := s.request(ctx, "showchannel", map[string]any{"channel": prev[len(prev)-1]})
		if err != nil {
			return nil
		}
		return filter(clientIDs(resp), cur)
	}
	return nil
}

// filter returns the words that start with prefix, sorted, once each.
func filter(words []string, prefix string) []string {
	var out []string
	for _, w := range words {
		if strings.HasPrefix(w, prefix) {
			out = append(out, w)
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// extend replaces the word line[start:pos] (cur) by the one match, with
// wrap adding what follows it, or by the matches' longest common prefix;
// when that adds nothing, the matches are the candidates to show.
func extend(line string, pos, start int, cur string, matches []string, wrap func(string) string) completion {
	switch len(matches) {
	case 0:
		return completion{line: line, pos: pos}
	case 1:
		w := wrap(matches[0])
		return completion{line: line[:start] + w + line[pos:], pos: start + len(w), changed: true}
	}
	common := matches[0]
	for _, m := range matches[1:] {
		for !strings.HasPrefix(m, common) {
			common = common[:len(common)-1]
		}
	}
	if len(common) > len(cur) {
		return completion{line: line[:start] + common + line[pos:], pos: start + len(common), changed: true}
	}
	return completion{line: line, pos: pos, candidates: matches}
}
