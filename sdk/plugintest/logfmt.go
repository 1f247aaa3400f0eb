package plugintest

import (
	"bytes"
	"encoding/json"
	"io"
	"strings"
	"sync"
)

// readableLine turns one line of a plugin's stderr, a JSON object from
// sdk.Logger (hclog), into "LEVEL message: key=value ...", with strings
// decoded ("<namespace>", not "\u003cnamespace\u003e") and the timestamp
// and caller left out. A line that is not a JSON object (a panic trace, a
// stray print) comes back as it is.
func readableLine(line string) string {
	dec := json.NewDecoder(strings.NewReader(line))
	dec.UseNumber()
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return line
	}
	var level, msg, module string
	var fields []string
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return line
		}
		key, ok := tok.(string)
		if !ok {
			return line
		}
		var v any
		if err := dec.Decode(&v); err != nil {
			return line
		}
		switch key {
		case "@timestamp", "@caller":
		case "@level":
			level = strings.ToUpper(plain(v))
		case "@message":
			msg = plain(v)
		case "@module":
			module = plain(v)
		default:
			fields = append(fields, key+"="+quoteIfSpaced(plain(v)))
		}
	}
	if tok, err := dec.Token(); err != nil || tok != json.Delim('}') {
		return line
	}
	if _, err := dec.Token(); err != io.EOF {
		return line // trailing data: not one object
	}
	var b strings.Builder
	if level != "" {
		b.WriteString(level + " ")
	}
	if module != "" {
		b.WriteString("[" + module + "] ")
	}
	b.WriteString(msg)
	if len(fields) > 0 {
		if msg != "" {
			b.WriteString(":")
		}
		b.WriteString(" " + strings.Join(fields, " "))
	}
	return strings.TrimSpace(b.String())
}

// plain renders a decoded JSON value for people: strings as they are,
// anything else as compact JSON without HTML escaping.
func plain(v any) string {
	if s, ok := v.(string); ok {
		return s
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return "?"
	}
	return strings.TrimSuffix(buf.String(), "\n")
}

// quoteIfSpaced wraps values holding blanks in quotes so that where one
// key=value ends stays visible; inner quotes stay as they are (this is
// for reading, not for parsing). Continuation lines are indented.
func quoteIfSpaced(s string) string {
	if s == "" || strings.ContainsAny(s, " \t\n\r") {
		s = `"` + s + `"`
	}
	return strings.ReplaceAll(s, "\n", "\n    ")
}

// logBuffer collects a plugin's stderr.
type logBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

// lines returns the last n lines, readable (see readableLine).
func (l *logBuffer) lines(n int) []string {
	l.mu.Lock()
	text := strings.TrimRight(l.b.String(), "\n")
	l.mu.Unlock()
	if text == "" {
		return nil
	}
	raw := strings.Split(text, "\n")
	if len(raw) > n {
		raw = raw[len(raw)-n:]
	}
	out := make([]string, len(raw))
	for i, r := range raw {
		out[i] = readableLine(r)
	}
	return out
}
