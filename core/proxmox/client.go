package proxmox

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"

	"gitea.dooplex.hu/admin/felhom-agent/internal/version"
)

// apiPrefix is where pveproxy serves the JSON API. The extjs format answers
// errors with HTTP 200 and is never used.
const apiPrefix = "/api2/json"

// maxBodyBytes bounds a response body; task lists and logs are paged far
// below this.
const maxBodyBytes = 64 << 20

// Config configures a [Client].
type Config struct {
	// BaseURL is the node's API endpoint, "https://HOST:8006". A trailing
	// "/api2/json" is accepted and ignored.
	BaseURL string
	// Node is this agent's node name, used when a call names no node.
	Node string
	// Token is the API token, "USER@REALM!TOKENID=SECRET".
	Token Token
	// Fingerprint pins the SHA-256 of the node's leaf certificate, in any
	// form [NormalizeFingerprint] accepts. It is required: there is no
	// unpinned or insecure mode.
	Fingerprint string
	// Timeout bounds one HTTP attempt (default 60s). Callers bound whole
	// operations with their context.
	Timeout time.Duration
	// Retry governs retries of GET requests; mutations are never retried.
	Retry RetryPolicy
	// Logger receives request logs at debug level; never secrets or
	// parameters. Default: discard.
	Logger hclog.Logger
	// DialContext optionally replaces the TCP dialer (e.g. to reach the API
	// through a tunnel). TLS and pinning still apply on top of it.
	DialContext func(ctx context.Context, network, addr string) (net.Conn, error)
}

// RetryPolicy is the backoff for idempotent requests that failed
// transiently (network errors, 502/503/504, 595/596/599, lock timeouts).
type RetryPolicy struct {
	// MaxAttempts counts the first try; 0 means 4, 1 disables retries.
	MaxAttempts int
	// BaseDelay is the first backoff (default 200ms); it doubles per attempt.
	BaseDelay time.Duration
	// MaxDelay caps one backoff (default 5s).
	MaxDelay time.Duration
}

func (p RetryPolicy) withDefaults() RetryPolicy {
	if p.MaxAttempts <= 0 {
		p.MaxAttempts = 4
	}
	if p.BaseDelay <= 0 {
		p.BaseDelay = 200 * time.Millisecond
	}
	if p.MaxDelay <= 0 {
		p.MaxDelay = 5 * time.Second
	}
	if p.MaxDelay < p.BaseDelay {
		p.MaxDelay = p.BaseDelay
	}
	return p
}

// Client talks to one Proxmox VE API endpoint with one token. It is safe
// for concurrent use.
type Client struct {
	baseURL string // scheme://host[:port], no trailing slash
	node    string
	token   Token
	pin     string // uppercase colon hex, for String
	timeout time.Duration
	retry   RetryPolicy
	log     hclog.Logger
	hc      *http.Client

	waiterOnce sync.Once
	waiter     *Waiter
}

// nodeNameRe is the pve-node format: letters, digits and inner hyphens.
var nodeNameRe = regexp.MustCompile(`^[a-zA-Z0-9]([a-zA-Z0-9\-]*[a-zA-Z0-9])?$`)

// New validates cfg and returns a client. It makes no request.
func New(cfg Config) (*Client, error) {
	base, err := parseBaseURL(cfg.BaseURL)
	if err != nil {
		return nil, fmt.Errorf("proxmox config: %w", err)
	}
	if !nodeNameRe.MatchString(cfg.Node) {
		return nil, fmt.Errorf("proxmox config: node %q: must be a PVE node name (letters, digits, inner '-')", cfg.Node)
	}
	if err := cfg.Token.Validate(); err != nil {
		return nil, fmt.Errorf("proxmox config: %w", err)
	}
	pin, err := parseFingerprint(cfg.Fingerprint)
	if err != nil {
		return nil, fmt.Errorf("proxmox config: %w", err)
	}
	if cfg.Timeout < 0 {
		return nil, fmt.Errorf("proxmox config: timeout %s: must not be negative", cfg.Timeout)
	}
	timeout := cfg.Timeout
	if timeout == 0 {
		timeout = 60 * time.Second
	}
	log := cfg.Logger
	if log == nil {
		log = hclog.NewNullLogger()
	}
	dial := cfg.DialContext
	if dial == nil {
		dial = (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext
	}
	tr := &http.Transport{
		DialContext:           dial,
		TLSClientConfig:       pinnedTLSConfig(pin),
		TLSHandshakeTimeout:   10 * time.Second,
		MaxIdleConnsPerHost:   16,
		IdleConnTimeout:       90 * time.Second,
		ExpectContinueTimeout: time.Second,
		// Environment proxies are ignored: the agent runs on the node it
		// manages and reaches pveproxy directly.
		Proxy: nil,
	}
	return &Client{
		baseURL: base,
		node:    cfg.Node,
		token:   cfg.Token,
		pin:     formatFingerprint(pin[:]),
		timeout: timeout,
		retry:   cfg.Retry.withDefaults(),
		log:     log.Named("proxmox"),
		hc: &http.Client{
			Transport: tr,
			// The API never redirects; following one could leak the token.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		},
	}, nil
}

func parseBaseURL(s string) (string, error) {
	u, err := url.Parse(strings.TrimSpace(s))
	if err != nil {
		return "", fmt.Errorf("base URL %q: %w", s, err)
	}
	switch {
	case u.Scheme != "https":
		return "", fmt.Errorf("base URL %q: scheme must be https", s)
	case u.Host == "" || u.Hostname() == "":
		return "", fmt.Errorf("base URL %q: no host", s)
	case u.User != nil:
		return "", fmt.Errorf("base URL: must not contain credentials")
	case u.RawQuery != "" || u.Fragment != "":
		return "", fmt.Errorf("base URL %q: must not have a query or fragment", s)
	}
	if p := strings.TrimSuffix(u.Path, "/"); p != "" && p != apiPrefix {
		return "", fmt.Errorf("base URL %q: unexpected path %q (want https://HOST:8006)", s, u.Path)
	}
	return "https://" + u.Host, nil
}

// Node returns the node name the client was configured with.
func (c *Client) Node() string { return c.node }

// String describes the client without its token secret.
func (c *Client) String() string {
	return fmt.Sprintf("proxmox.Client(%s node=%s token=%s pin=%s)", c.baseURL, c.node, c.token.ID(), c.pin)
}

// CloseIdleConnections closes kept-alive connections (and their goroutines).
func (c *Client) CloseIdleConnections() { c.hc.CloseIdleConnections() }

// Waiter returns the client's shared task waiter, created with default
// [WaiterOptions] on first use. [Client.Mutate] waits with it.
func (c *Client) Waiter() *Waiter {
	c.waiterOnce.Do(func() { c.waiter = NewWaiter(c, WaiterOptions{}) })
	return c.waiter
}

// Do calls the API and decodes the response's data into out (unless out is
// nil). path is relative to /api2/json, e.g. "/nodes/pve/status", with
// segments already escaped. params may be nil, url.Values,
// map[string]string or map[string]any; they go in the query for GET and
// DELETE and form-encoded in the body for POST and PUT. Only GET is retried.
func (c *Client) Do(ctx context.Context, method, path string, params any, out any) error {
	vals, err := toValues(params)
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, path, err)
	}
	data, _, err := c.Raw(ctx, method, path, vals)
	if err != nil {
		return err
	}
	return decodeData(method, path, data, out)
}

func decodeData(method, path string, data json.RawMessage, out any) error {
	if out == nil {
		return nil
	}
	if raw, ok := out.(*json.RawMessage); ok {
		*raw = append((*raw)[:0], data...)
		return nil
	}
	if len(data) == 0 {
		data = json.RawMessage("null")
	}
	if err := json.Unmarshal(data, out); err != nil {
		return &decodeError{fmt.Errorf("%s %s: decode data: %w", method, path, err)}
	}
	return nil
}

// Raw calls the API and returns the response's data as it came, with the
// "total" attribute that paged lists carry (nil when absent). It is the
// primitive under [Client.Do], exported for proxying plugin calls.
func (c *Client) Raw(ctx context.Context, method, path string, params url.Values) (json.RawMessage, *int, error) {
	if err := checkRequest(method, path); err != nil {
		return nil, nil, err
	}
	idempotent := method == http.MethodGet
	for attempt := 1; ; attempt++ {
		data, total, err := c.once(ctx, method, path, params)
		if err == nil {
			return data, total, nil
		}
		if !idempotent || attempt >= c.retry.MaxAttempts || ctx.Err() != nil || !isTransient(err) {
			return nil, nil, err
		}
		delay := backoff(c.retry, attempt)
		c.log.Debug("retrying request", "method", method, "path", path, "attempt", attempt, "delay", delay, "error", err)
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, nil, fmt.Errorf("%s %s: %w (while backing off after: %w)", method, path, ctx.Err(), err)
		case <-t.C:
		}
	}
}

// checkRequest refuses methods and paths the API does not take, so that a
// proxied path cannot escape /api2/json.
func checkRequest(method, path string) error {
	switch method {
	case http.MethodGet, http.MethodPost, http.MethodPut, http.MethodDelete:
	default:
		return fmt.Errorf("%s %s: method not supported by the Proxmox API", method, path)
	}
	if !strings.HasPrefix(path, "/") {
		return fmt.Errorf("%s %s: path must start with '/'", method, path)
	}
	if strings.ContainsAny(path, "?#") {
		return fmt.Errorf("%s %s: path must not contain a query or fragment; pass params", method, path)
	}
	for _, seg := range strings.Split(path, "/") {
		dec, err := url.PathUnescape(seg)
		if err != nil {
			return fmt.Errorf("%s %s: %w", method, path, err)
		}
		if dec == "." || dec == ".." {
			return fmt.Errorf("%s %s: path must not contain '.' or '..' segments", method, path)
		}
	}
	for i := 0; i < len(path); i++ {
		if path[i] < 0x21 || path[i] == 0x7f {
			return fmt.Errorf("%s %q: path contains whitespace or control characters", method, path)
		}
	}
	return nil
}

// envelope is pveproxy's JSON response wrapper.
type envelope struct {
	Data    json.RawMessage `json:"data"`
	Total   json.RawMessage `json:"total"`
	Message string          `json:"message"`
	Errors  map[string]any  `json:"errors"`
}

func (c *Client) once(ctx context.Context, method, path string, params url.Values) (json.RawMessage, *int, error) {
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()

	u, err := url.Parse(c.baseURL + apiPrefix + path)
	if err != nil {
		return nil, nil, fmt.Errorf("%s %s: %w", method, path, err)
	}
	var body io.Reader
	if method == http.MethodPost || method == http.MethodPut {
		body = strings.NewReader(params.Encode())
	} else if len(params) > 0 {
		u.RawQuery = params.Encode()
	}
	req, err := http.NewRequestWithContext(ctx, method, u.String(), body)
	if err != nil {
		return nil, nil, fmt.Errorf("%s %s: %w", method, path, err)
	}
	req.Header.Set("Authorization", c.token.authHeader())
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", "felhom-agent/"+version.Version)
	if body != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}

	start := time.Now()
	resp, err := c.hc.Do(req)
	if err != nil {
		// url.Error would repeat the full URL, query included.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		c.log.Debug("request failed", "method", method, "path", path, "duration", time.Since(start), "error", err)
		return nil, nil, fmt.Errorf("%s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, maxBodyBytes+1))
	if err != nil {
		return nil, nil, fmt.Errorf("%s %s: read response: %w", method, path, err)
	}
	c.log.Debug("request", "method", method, "path", path, "status", resp.StatusCode, "duration", time.Since(start))
	if len(raw) > maxBodyBytes {
		return nil, nil, &decodeError{fmt.Errorf("%s %s: response larger than %d bytes", method, path, maxBodyBytes)}
	}

	var env envelope
	decodeErr := json.Unmarshal(raw, &env)
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		reason := strings.TrimSpace(strings.TrimPrefix(resp.Status, strconv.Itoa(resp.StatusCode)))
		var perr map[string]string
		if len(env.Errors) > 0 {
			perr = make(map[string]string, len(env.Errors))
			for k, v := range env.Errors {
				if s, ok := v.(string); ok {
					perr[k] = strings.TrimSpace(s)
				} else {
					b, _ := json.Marshal(v)
					perr[k] = string(b)
				}
			}
		}
		return nil, nil, newAPIError(method, path, resp.StatusCode, reason, env.Message, perr)
	}
	if decodeErr != nil {
		return nil, nil, &decodeError{fmt.Errorf("%s %s: decode response envelope: %w", method, path, decodeErr)}
	}
	var total *int
	if len(env.Total) > 0 && string(env.Total) != "null" {
		n, err := strconv.Atoi(strings.Trim(string(env.Total), `"`))
		if err != nil {
			return nil, nil, &decodeError{fmt.Errorf("%s %s: decode total %s: %w", method, path, env.Total, err)}
		}
		total = &n
	}
	return env.Data, total, nil
}

// decodeError marks a malformed 2xx response; retrying would not help.
type decodeError struct{ err error }

func (e *decodeError) Error() string { return e.err.Error() }
func (e *decodeError) Unwrap() error { return e.err }

// nodePath builds "/nodes/{node}" plus escaped segments.
func nodePath(node string, segs ...string) string {
	var b strings.Builder
	b.WriteString("/nodes/")
	b.WriteString(url.PathEscape(node))
	for _, s := range segs {
		b.WriteByte('/')
		b.WriteString(url.PathEscape(s))
	}
	return b.String()
}
