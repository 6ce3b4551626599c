package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"unicode"
)

// call is a parsed command line: the command and its arguments. The
// argument of an argData parameter is JSON text; the others are plain
// strings.
type call struct {
	name string
	cmd  *command
	args []string
}

// arg returns argument i, or "" when it was left out.
func (c call) arg(i int) string {
	if i < len(c.args) {
		return c.args[i]
	}
	return ""
}

// usageError is a line that does not make a command: wrong name, wrong
// arguments, broken quoting.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

func usagef(format string, a ...any) error { return &usageError{fmt.Sprintf(format, a...)} }

// parseLine parses a line typed at the prompt or piped in. Two spellings
// are accepted:
//
//	showchannel A            words, split as a shell does ('…', "…", \)
//	showchannel("A")         the original's call syntax: "…", '…', bare
//	                         words, numbers, and JSON objects or arrays
//
// emit's data is JSON: in the word form it is the rest of the line (one
// pair of enclosing single quotes is removed, so `emit A log '{"x":1}'`
// reads as the shell would pass it); in the call form it is an argument
// read as a JavaScript value would be. A blank line, or one starting with
// #, is no command: the result has no name.
func parseLine(line string) (call, error) {
	line = strings.TrimSpace(line)
	line = strings.TrimSpace(strings.TrimSuffix(line, ";"))
	if line == "" || strings.HasPrefix(line, "#") {
		return call{}, nil
	}
	end := strings.IndexFunc(line, func(r rune) bool { return unicode.IsSpace(r) || r == '(' })
	if end < 0 {
		end = len(line)
	}
	name := strings.ToLower(line[:end])
	cmd := lookup(name)
	if cmd == nil {
		return call{}, unknownCommand(line[:end])
	}
	rest := strings.TrimLeftFunc(line[end:], unicode.IsSpace)
	if cmd.run != nil {
		return ownArgs(cmd, rest)
	}
	if strings.HasPrefix(rest, "(") {
		args, err := parseCallArgs(rest)
		if err != nil {
			return call{}, usagef("%s: %v", cmd.name, err)
		}
		return bind(cmd, args)
	}
	var args []callArg
	i, data := 0, cmd.dataParam()
	for {
		i = skipSpace(rest, i)
		if i == len(rest) {
			break
		}
		if len(args) == data {
			text := strings.TrimSpace(rest[i:])
			if len(text) >= 2 && text[0] == '\'' && text[len(text)-1] == '\'' && !strings.Contains(text[1:len(text)-1], "'") {
				text = text[1 : len(text)-1]
			}
			args = append(args, callArg{value: text, json: text})
			break
		}
		w, next, err := shellWord(rest, i)
		if err != nil {
			return call{}, usagef("%s: %v", cmd.name, err)
		}
		args = append(args, callArg{value: w, json: w})
		i = next
	}
	return bind(cmd, args)
}

// parseWords makes a call from command-line words, as the shell split
// them. Words after emit's event are joined with spaces to make its data.
// A first word holding "(" is read with parseLine's call syntax:
// `ncclient 'showchannel("A")'`.
func parseWords(words []string) (call, error) {
	if strings.Contains(words[0], "(") {
		return parseLine(strings.Join(words, " "))
	}
	cmd := lookup(strings.ToLower(words[0]))
	if cmd == nil {
		return call{}, unknownCommand(words[0])
	}
	if cmd.run != nil {
		return call{name: cmd.name, cmd: cmd, args: words[1:]}, nil
	}
	var args []callArg
	data := cmd.dataParam()
	for i, w := range words[1:] {
		if i == data {
			text := strings.Join(words[1+i:], " ")
			args = append(args, callArg{value: text, json: text})
			break
		}
		args = append(args, callArg{value: w, json: w})
	}
	return bind(cmd, args)
}

func unknownCommand(name string) error {
	return usagef("unknown command %q; help lists the commands", name)
}

// callArg is one argument as written: its value as a string, and as JSON
// text (for emit's data).
type callArg struct{ value, json string }

// bind checks the number of arguments and picks, for each, its string or
// its JSON text.
func bind(cmd *command, args []callArg) (call, error) {
	if len(args) < cmd.required() || len(args) > len(cmd.params) {
		return call{}, usagef("%s takes %s; usage: %s", cmd.name, countArgs(cmd), cmd.synopsis())
	}
	c := call{name: cmd.name, cmd: cmd, args: make([]string, len(args))}
	for i, a := range args {
		if cmd.params[i].kind == argData {
			c.args[i] = a.json
		} else {
			c.args[i] = a.value
		}
	}
	return c, nil
}

// ownArgs splits the rest of a line into words, as a shell does, for a
// command that parses its own flags.
func ownArgs(cmd *command, rest string) (call, error) {
	c := call{name: cmd.name, cmd: cmd}
	for i := skipSpace(rest, 0); i < len(rest); i = skipSpace(rest, i) {
		w, next, err := shellWord(rest, i)
		if err != nil {
			return call{}, usagef("%s: %v", cmd.name, err)
		}
		c.args = append(c.args, w)
		i = next
	}
	return c, nil
}

func countArgs(cmd *command) string {
	lo, hi := cmd.required(), len(cmd.params)
	plural := func(n int) string {
		if n == 1 {
			return "1 argument"
		}
		return fmt.Sprintf("%d arguments", n)
	}
	switch {
	case hi == 0:
		return "no arguments"
	case lo == hi:
		return plural(hi)
	case lo == 0:
		return "at most " + plural(hi)
	}
	return fmt.Sprintf("%d to %d arguments", lo, hi)
}

func skipSpace(s string, i int) int {
	for i < len(s) && (s[i] == ' ' || s[i] == '\t') {
		i++
	}
	return i
}

// shellWord reads one word starting at s[i], as a POSIX shell would
// split it: '…' is literal, "…" allows \" and \\, and \ outside quotes
// escapes the next character. It returns the word and where the next
// one may start.
func shellWord(s string, i int) (string, int, error) {
	var b strings.Builder
	for i < len(s) && s[i] != ' ' && s[i] != '\t' {
		switch c := s[i]; c {
		case '\'':
			end := strings.IndexByte(s[i+1:], '\'')
			if end < 0 {
				return "", 0, errors.New("unterminated ' quote")
			}
			b.WriteString(s[i+1 : i+1+end])
			i += end + 2
		case '"':
			i++
			for {
				if i == len(s) {
					return "", 0, errors.New(`unterminated " quote`)
				}
				if s[i] == '"' {
					i++
					break
				}
				if s[i] == '\\' && i+1 < len(s) && (s[i+1] == '"' || s[i+1] == '\\') {
					i++
				}
				b.WriteByte(s[i])
				i++
			}
		case '\\':
			if i+1 < len(s) {
				i++
			}
			b.WriteByte(s[i])
			i++
		default:
			b.WriteByte(c)
			i++
		}
	}
	return b.String(), i, nil
}

// parseCallArgs reads "(arg, arg, …)" and what may follow it: nothing.
func parseCallArgs(s string) ([]callArg, error) {
	var args []callArg
	i := skipSpace(s, 1)
	if i < len(s) && s[i] == ')' {
		return args, closeCall(s, i)
	}
	for {
		i = skipSpace(s, i)
		a, next, err := callArgAt(s, i)
		if err != nil {
			return nil, err
		}
		args = append(args, a)
		i = skipSpace(s, next)
		if i == len(s) {
			return nil, errors.New("missing )")
		}
		switch s[i] {
		case ',':
			i++
		case ')':
			return args, closeCall(s, i)
		default:
			return nil, fmt.Errorf("unexpected %q after argument %d; want , or )", s[i], len(args))
		}
	}
}

func closeCall(s string, i int) error {
	if rest := strings.TrimSpace(s[i+1:]); rest != "" {
		return fmt.Errorf("unexpected %q after )", rest)
	}
	return nil
}

// callArgAt reads one argument of the call syntax at s[i].
func callArgAt(s string, i int) (callArg, int, error) {
	if i == len(s) {
		return callArg{}, 0, errors.New("missing argument and )")
	}
	switch s[i] {
	case '"':
		end, err := jsonStringEnd(s, i)
		if err != nil {
			return callArg{}, 0, err
		}
		var v string
		if err := json.Unmarshal([]byte(s[i:end]), &v); err != nil {
			return callArg{}, 0, fmt.Errorf("string %s: %v", s[i:end], err)
		}
		return callArg{value: v, json: s[i:end]}, end, nil
	case '\'':
		var b strings.Builder
		for j := i + 1; j < len(s); j++ {
			switch s[j] {
			case '\\':
				if j+1 < len(s) {
					j++
				}
				b.WriteByte(s[j])
			case '\'':
				text, _ := json.Marshal(b.String())
				return callArg{value: b.String(), json: string(text)}, j + 1, nil
			default:
				b.WriteByte(s[j])
			}
		}
		return callArg{}, 0, errors.New("unterminated ' quote")
	case '{', '[':
		end, err := bracketEnd(s, i)
		if err != nil {
			return callArg{}, 0, err
		}
		return callArg{value: s[i:end], json: s[i:end]}, end, nil
	case ',', ')':
		return callArg{}, 0, fmt.Errorf("empty argument before %q", s[i])
	}
	end := strings.IndexAny(s[i:], ",)")
	if end < 0 {
		return callArg{}, 0, errors.New("missing )")
	}
	w := strings.TrimSpace(s[i : i+end])
	return callArg{value: w, json: w}, i + end, nil
}

// jsonStringEnd finds the end of the JSON string literal at s[i].
func jsonStringEnd(s string, i int) (int, error) {
	for j := i + 1; j < len(s); j++ {
		switch s[j] {
		case '\\':
			j++
		case '"':
			return j + 1, nil
		}
	}
	return 0, errors.New(`unterminated " quote`)
}

// bracketEnd finds the end of the JSON object or array at s[i], counting
// brackets outside string literals.
func bracketEnd(s string, i int) (int, error) {
	depth := 0
	for j := i; j < len(s); j++ {
		switch s[j] {
		case '"':
			end, err := jsonStringEnd(s, j)
			if err != nil {
				return 0, err
			}
			j = end - 1
		case '{', '[':
			depth++
		case '}', ']':
			depth--
			if depth == 0 {
				return j + 1, nil
			}
		}
	}
	return 0, fmt.Errorf("unclosed %c", s[i])
}
