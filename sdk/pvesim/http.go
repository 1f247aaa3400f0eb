package pvesim

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"time"
)

// apiError is an error answer. Handler errors carry a JSON body with
// data:null and the full message (as pve-http-server does since 5.2);
// errors raised by the HTTP layer itself (raw) have an empty body, like
// pveproxy's own error() responses.
type apiError struct {
	code   int
	msg    string
	errors map[string]string
	raw    bool
}

func (e *apiError) Error() string {
	return fmt.Sprintf("%d %s", e.code, strings.TrimSuffix(e.msg, "\n"))
}

// die is a plain Perl die: HTTP 500 with the message plus newline.
func die(format string, args ...any) *apiError {
	return &apiError{code: http.StatusInternalServerError, msg: fmt.Sprintf(format, args...) + "\n"}
}

// paramError is PVE's raise_param_exc.
func paramError(errs map[string]string) *apiError {
	return &apiError{code: http.StatusBadRequest, msg: "Parameter verification failed.\n", errors: errs}
}

func paramError1(name, msg string) *apiError { return paramError(map[string]string{name: msg}) }

// permError is PVE's raise_perm_exc.
func permError(what string) *apiError {
	msg := "Permission check failed"
	if what != "" {
		msg += " (" + what + ")"
	}
	return &apiError{code: http.StatusForbidden, msg: msg + "\n"}
}

// rawError is an HTTP-layer error with an empty body.
func rawError(code int, format string, args ...any) *apiError {
	return &apiError{code: code, msg: fmt.Sprintf(format, args...), raw: true}
}

// pval is one request parameter as the Perl side would see it.
type pval struct {
	s    string   // scalar value (JSON numbers keep their literal text)
	kind pkind    // what the value is
	arr  []string // elements of an array value
}

type pkind int

const (
	kScalar pkind = iota
	kUndef        // key given without a value (Perl undef): present but unset
	kJSONBool
	kArray
	kObject
)

// request is one API call after routing and parameter extraction.
type request struct {
	ctx    context.Context
	method string
	path   string // relative to /api2/json, decoded
	route  *route
	params map[string]pval
	auth   *authInfo
	total  *int // the "total" result attribute, when set
}

func (q *request) has(name string) bool {
	v, ok := q.params[name]
	return ok && v.kind != kUndef
}

func (q *request) str(name string) string { return q.params[name].s }

func (q *request) int(name string, def int64) int64 {
	v, ok := q.params[name]
	if !ok {
		return def
	}
	n, err := strconv.ParseInt(strings.TrimPrefix(v.s, "+"), 10, 64)
	if err != nil {
		return def
	}
	return n
}

func (q *request) bool(name string) bool {
	v, ok := q.params[name]
	return ok && v.s == "1"
}

func (q *request) setTotal(n int) { q.total = &n }

// maxPostSize is pveproxy's limit for non-upload bodies.
const maxPostSize = 64 * 1024

func (s *Server) serveHTTP(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		s.writeError(w, r, rawError(http.StatusServiceUnavailable, "server closing"))
		return
	}
	s.inflight.Add(1)
	s.mu.Unlock()
	defer s.inflight.Done()

	switch r.Method {
	case http.MethodGet, http.MethodPost, http.MethodPut, http.MethodDelete:
	default:
		s.writeError(w, r, rawError(http.StatusNotImplemented, "method '%s' not available", r.Method))
		return
	}
	for _, te := range r.TransferEncoding {
		if strings.EqualFold(te, "chunked") {
			s.writeError(w, r, rawError(http.StatusNotImplemented, "chunked transfer encoding not supported"))
			return
		}
	}
	rel, ok := relPath(r.URL.Path)
	if !ok {
		s.writeError(w, r, rawError(http.StatusNotImplemented, "no such file '%s'", r.URL.Path))
		return
	}
	escRel, _ := relPath(r.URL.EscapedPath())
	rt, pathParams := s.matchRoute(r.Method, escRel)
	key := r.Method + " " + rel
	if rt != nil {
		key = rt.method + " " + rt.template
	}
	s.mu.Lock()
	s.stats[key]++
	s.mu.Unlock()

	auth, aerr := s.authenticate(r)
	if aerr != nil {
		s.sleepCtx(r.Context(), s.opts.AuthFailDelay)
		s.writeError(w, r, aerr)
		return
	}
	if r.ContentLength != 0 && r.Method != http.MethodPost && r.Method != http.MethodPut {
		s.writeError(w, r, rawError(http.StatusNotImplemented, "Unexpected content for method '%s'", r.Method))
		return
	}
	if ferr := s.faults.apply(r.Context(), rel); ferr != nil {
		s.writeError(w, r, ferr)
		return
	}
	if rt == nil {
		s.writeError(w, r, &apiError{code: http.StatusNotImplemented, msg: fmt.Sprintf("Method '%s %s' not implemented", r.Method, rel)})
		return
	}
	params, perr := extractParams(r)
	if perr != nil {
		s.writeError(w, r, perr)
		return
	}
	req := &request{ctx: r.Context(), method: r.Method, path: rel, route: rt, params: params, auth: auth}
	data, err := s.dispatch(req, pathParams)
	if err != nil {
		ae, ok := err.(*apiError)
		if !ok {
			ae = die("%v", err)
		}
		s.writeError(w, r, ae)
		return
	}
	body := map[string]any{"data": data}
	if req.total != nil && *req.total != 0 {
		body["total"] = *req.total
	}
	buf, jerr := json.Marshal(body)
	if jerr != nil {
		s.writeError(w, r, die("unable to encode result: %v", jerr))
		return
	}
	h := w.Header()
	setCommonHeaders(h)
	h.Set("Content-Type", "application/json;charset=UTF-8")
	h.Set("Content-Length", strconv.Itoa(len(buf)))
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(buf)
}

func setCommonHeaders(h http.Header) {
	now := time.Now().UTC().Format(http.TimeFormat)
	h.Set("Server", "pve-api-daemon/3.0")
	h.Set("Cache-Control", "max-age=0")
	h.Set("Pragma", "no-cache")
	h.Set("Expires", now)
}

// dispatch runs the steps of pve-manager's rest_handler after routing: merge
// URI parameters, check permissions, resolve the proxy node, validate
// parameters and call the handler.
func (s *Server) dispatch(req *request, pathParams map[string]string) (any, error) {
	rt := req.route
	for name, v := range pathParams {
		if old, ok := req.params[name]; ok && (old.kind != kScalar || old.s != v) {
			return nil, paramError1(name, "duplicate parameter (already defined in URI) with conflicting values!")
		}
		req.params[name] = pval{s: v}
	}
	if err := s.checkRoutePerm(req); err != nil {
		return nil, err
	}
	if rt.proxyNode {
		if n := req.params["node"].s; n != s.node && n != "localhost" {
			return nil, die("hostname lookup '%s' failed - failed to get address info for: %s: Name or service not known", n, n)
		}
	}
	if errs := rt.params.validate(req.params); len(errs) > 0 {
		return nil, paramError(errs)
	}
	return rt.handler(req)
}

// writeError answers with an error, putting the first line of the message
// into the status line's reason phrase as pveproxy does.
func (s *Server) writeError(w http.ResponseWriter, r *http.Request, e *apiError) {
	reason := e.msg
	if i := strings.IndexAny(reason, "\r\n"); i >= 0 {
		reason = reason[:i]
	}
	if reason == "" {
		reason = http.StatusText(e.code)
	}
	var body []byte
	if !e.raw {
		m := map[string]any{"data": nil, "message": e.msg}
		if len(e.errors) > 0 {
			m["errors"] = e.errors
		}
		body, _ = json.Marshal(m)
	}
	writeWithReason(w, r, e.code, reason, body)
}

// writeWithReason writes a response whose status line carries a custom
// reason phrase. net/http cannot do that, so the connection is hijacked and
// the response written by hand; like pveproxy after any error, the
// connection is closed afterwards.
func writeWithReason(w http.ResponseWriter, r *http.Request, code int, reason string, body []byte) {
	// Read what is left of the body so closing the socket sends FIN, not RST.
	_, _ = io.Copy(io.Discard, io.LimitReader(r.Body, 1<<20))
	if hj, ok := w.(http.Hijacker); ok {
		conn, rw, err := hj.Hijack()
		if err == nil {
			defer conn.Close()
			_ = conn.SetWriteDeadline(time.Now().Add(10 * time.Second))
			h := http.Header{}
			setCommonHeaders(h)
			h.Set("Date", time.Now().UTC().Format(http.TimeFormat))
			h.Set("Connection", "close")
			if len(body) > 0 {
				h.Set("Content-Type", "application/json;charset=UTF-8")
				h.Set("Content-Length", strconv.Itoa(len(body)))
			}
			var b bytes.Buffer
			fmt.Fprintf(&b, "HTTP/1.1 %03d %s\r\n", code, reason)
			_ = h.Write(&b)
			b.WriteString("\r\n")
			b.Write(body)
			_, _ = rw.Write(b.Bytes())
			_ = rw.Flush()
			return
		}
	}
	h := w.Header()
	setCommonHeaders(h)
	h.Set("Connection", "close")
	if len(body) > 0 {
		h.Set("Content-Type", "application/json;charset=UTF-8")
		h.Set("Content-Length", strconv.Itoa(len(body)))
	}
	w.WriteHeader(code)
	_, _ = w.Write(body)
}

// extractParams merges body and query parameters the way pveproxy does:
// form-urlencoded or JSON bodies on POST/PUT, then the query string on top.
func extractParams(r *http.Request) (map[string]pval, *apiError) {
	params := map[string]pval{}
	if r.Method == http.MethodPost || r.Method == http.MethodPut {
		if r.ContentLength > maxPostSize {
			return nil, rawError(http.StatusNotImplemented, "for data too large")
		}
		data, err := io.ReadAll(io.LimitReader(r.Body, maxPostSize+1))
		if err != nil {
			return nil, rawError(http.StatusBadRequest, "unable to read request body: %v", err)
		}
		if len(data) > maxPostSize {
			return nil, rawError(http.StatusNotImplemented, "for data too large")
		}
		ct := contentType(r.Header.Get("Content-Type"))
		switch {
		case ct == "application/json":
			p, perr := decodeJSONParams(data)
			if perr != nil {
				return nil, perr
			}
			params = p
		case ct == "" || ct == "application/x-www-form-urlencoded":
			params = decodeURLEncoded(string(data))
		default:
			if len(data) > 0 {
				return nil, rawError(506, "upload 'Content-Type '%s' not implemented", r.Header.Get("Content-Type"))
			}
		}
	}
	for k, v := range decodeURLEncoded(r.URL.RawQuery) {
		params[k] = v
	}
	delete(params, "_dc")
	return params, nil
}

// contentType returns the media type without parameters, split like
// pveproxy's parse_content_type.
func contentType(h string) string {
	if i := strings.IndexAny(h, ";,"); i >= 0 {
		h = h[:i]
	}
	return strings.ToLower(strings.TrimSpace(h))
}

// decodeURLEncoded mirrors pveproxy's decode_urlencoded: '&' and ';'
// separate pairs, '+' is a space, %XX is decoded (invalid escapes stay), and
// a repeated key joins its values with NUL.
func decodeURLEncoded(data string) map[string]pval {
	res := map[string]pval{}
	if data == "" {
		return res
	}
	for _, kv := range strings.FieldsFunc(data, func(r rune) bool { return r == '&' || r == ';' }) {
		k, v, hasV := strings.Cut(kv, "=")
		if hasV {
			// Perl's split(/=/) drops everything after a second '='.
			if i := strings.IndexByte(v, '='); i >= 0 {
				v = v[:i]
			}
		}
		k = percentDecode(k)
		if !hasV {
			// A key without value is undefined in Perl: present but unset.
			if _, ok := res[k]; !ok {
				res[k] = pval{kind: kUndef}
			}
			continue
		}
		v = percentDecode(v)
		if old, ok := res[k]; ok && old.kind == kScalar {
			v = old.s + "\x00" + v
		}
		res[k] = pval{s: v}
	}
	return res
}

func percentDecode(s string) string {
	if !strings.ContainsAny(s, "+%") {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '+':
			b.WriteByte(' ')
		case c == '%' && i+2 < len(s) && isHex(s[i+1]) && isHex(s[i+2]):
			n, _ := strconv.ParseUint(s[i+1:i+3], 16, 8)
			b.WriteByte(byte(n))
			i += 2
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}

func isHex(c byte) bool {
	return ('0' <= c && c <= '9') || ('a' <= c && c <= 'f') || ('A' <= c && c <= 'F')
}

// decodeJSONParams decodes a JSON object body. Numbers keep their literal
// text, booleans become JSON booleans (valid only for boolean parameters),
// null means "not given".
func decodeJSONParams(data []byte) (map[string]pval, *apiError) {
	res := map[string]pval{}
	if len(bytes.TrimSpace(data)) == 0 {
		return res, nil
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var raw any
	if err := dec.Decode(&raw); err != nil {
		return nil, rawError(http.StatusNotImplemented, "malformed JSON string: %v", err)
	}
	if dec.More() {
		return nil, rawError(http.StatusNotImplemented, "malformed JSON string: garbage after JSON object")
	}
	obj, ok := raw.(map[string]any)
	if !ok {
		return nil, rawError(http.StatusNotImplemented, "Not a HASH reference")
	}
	for k, v := range obj {
		switch x := v.(type) {
		case nil:
			res[k] = pval{kind: kUndef}
		case string:
			res[k] = pval{s: x}
		case json.Number:
			res[k] = pval{s: x.String()}
		case bool:
			s := "0"
			if x {
				s = "1"
			}
			res[k] = pval{s: s, kind: kJSONBool}
		case []any:
			arr := make([]string, 0, len(x))
			for _, e := range x {
				arr = append(arr, fmt.Sprint(e))
			}
			res[k] = pval{kind: kArray, arr: arr}
		default:
			res[k] = pval{kind: kObject}
		}
	}
	return res, nil
}

// sortedKeys returns the keys of m in order.
func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
