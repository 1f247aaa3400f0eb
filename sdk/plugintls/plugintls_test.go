package plugintls

import (
	"bytes"
	"crypto/tls"
	"errors"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// handshake runs a TLS handshake over a socket pair and returns both errors.
func handshake(t *testing.T, client, server *tls.Config) (cerr, serr error) {
	t.Helper()
	a, b := socketPair(t)
	defer a.Close()
	defer b.Close()
	deadline := time.Now().Add(5 * time.Second)
	_ = a.SetDeadline(deadline)
	_ = b.SetDeadline(deadline)
	c, s := tls.Client(a, client), tls.Server(b, server)
	done := make(chan error, 1)
	go func() { done <- s.Handshake() }()
	cerr = c.Handshake()
	if cerr != nil {
		a.Close() // unblock the server
	}
	serr = <-done
	if serr != nil {
		b.Close()
	}
	if cerr == nil && serr == nil {
		if v := c.ConnectionState().Version; v != tls.VersionTLS13 {
			t.Errorf("negotiated TLS version %x, want 1.3", v)
		}
	}
	return cerr, serr
}

// socketPair returns two connected, buffered local sockets.
func socketPair(t *testing.T) (net.Conn, net.Conn) {
	t.Helper()
	fds, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_STREAM, 0)
	if err != nil {
		t.Fatal(err)
	}
	conn := func(fd int) net.Conn {
		f := os.NewFile(uintptr(fd), "socketpair")
		defer f.Close()
		c, err := net.FileConn(f)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	return conn(fds[0]), conn(fds[1])
}

func TestPinnedPairHandshakes(t *testing.T) {
	creds, err := Issue()
	if err != nil {
		t.Fatal(err)
	}
	plugin, err := ReadBundle(bytes.NewReader(creds.bundle))
	if err != nil {
		t.Fatal(err)
	}
	// Host dials the plugin (the main connection) ...
	if cerr, serr := handshake(t, creds.Host, plugin); cerr != nil || serr != nil {
		t.Fatalf("host->plugin: %v / %v", cerr, serr)
	}
	// ... and the plugin dials the host (host services on the broker).
	if cerr, serr := handshake(t, plugin, creds.Host); cerr != nil || serr != nil {
		t.Fatalf("plugin->host: %v / %v", cerr, serr)
	}
}

func TestForeignIdentitiesRefused(t *testing.T) {
	a, err := Issue()
	if err != nil {
		t.Fatal(err)
	}
	b, err := Issue()
	if err != nil {
		t.Fatal(err)
	}
	// A host of another launch, in both directions.
	if cerr, serr := handshake(t, b.Host, a.Plugin); cerr == nil && serr == nil {
		t.Error("plugin accepted another launch's host")
	}
	if cerr, serr := handshake(t, a.Plugin, b.Host); cerr == nil && serr == nil {
		t.Error("host of another launch accepted the plugin")
	}
	// A client without a certificate.
	anon := &tls.Config{InsecureSkipVerify: true, MinVersion: tls.VersionTLS13}
	if _, serr := handshake(t, anon, a.Plugin); serr == nil {
		t.Error("plugin accepted a client without a certificate")
	}
	// TLS 1.2 is not offered.
	old := a.Host.Clone()
	old.MaxVersion = tls.VersionTLS12
	old.MinVersion = tls.VersionTLS12
	if cerr, serr := handshake(t, old, a.Plugin); cerr == nil && serr == nil {
		t.Error("plugin accepted TLS 1.2")
	}
}

func TestAttachAndFromEnv(t *testing.T) {
	creds, err := Issue()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("/bin/true")
	cmd.ExtraFiles = []*os.File{os.Stdin} // a pre-existing extra file shifts the fd
	pipe, err := creds.Attach(cmd)
	if err != nil {
		t.Fatal(err)
	}
	defer pipe.Close()
	if len(cmd.ExtraFiles) != 2 || cmd.Env[len(cmd.Env)-1] != EnvFD+"=4" {
		t.Fatalf("ExtraFiles %d, env %v; want the pipe at fd 4", len(cmd.ExtraFiles), cmd.Env)
	}
	// Play the plugin: its own descriptor of the read end.
	fd, err := syscall.Dup(int(pipe.child.Fd()))
	if err != nil {
		t.Fatal(err)
	}
	pipe.Started()
	t.Setenv(EnvFD, strconv.Itoa(fd))
	cfg, watch, err := FromEnv(time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer watch.Close()
	if cerr, serr := handshake(t, creds.Host, cfg); cerr != nil || serr != nil {
		t.Fatalf("identity from the pipe does not match: %v / %v", cerr, serr)
	}
	gone := make(chan struct{})
	go func() {
		watch.HostGone()
		close(gone)
	}()
	select {
	case <-gone:
		t.Fatal("HostGone returned while the host holds the pipe")
	case <-time.After(50 * time.Millisecond):
	}
	pipe.Close()
	select {
	case <-gone:
	case <-time.After(2 * time.Second):
		t.Fatal("HostGone did not return after the host closed the pipe")
	}
}

func TestFromEnvErrors(t *testing.T) {
	t.Setenv(EnvFD, "")
	if _, _, err := FromEnv(time.Second); !errors.Is(err, ErrNoFD) {
		t.Errorf("unset: err = %v, want ErrNoFD", err)
	}
	t.Setenv(EnvFD, "1")
	if _, _, err := FromEnv(time.Second); err == nil || !strings.Contains(err.Error(), ">= 3") {
		t.Errorf("fd 1: err = %v", err)
	}
	// A pipe with nothing in it times out instead of hanging.
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	fd, err := syscall.Dup(int(r.Fd()))
	if err != nil {
		t.Fatal(err)
	}
	r.Close()
	t.Setenv(EnvFD, strconv.Itoa(fd))
	start := time.Now()
	_, _, err = FromEnv(100 * time.Millisecond)
	if err == nil || time.Since(start) > 2*time.Second {
		t.Errorf("empty pipe: err = %v after %s", err, time.Since(start))
	}
}

func TestReadBundleRejects(t *testing.T) {
	creds, err := Issue()
	if err != nil {
		t.Fatal(err)
	}
	other, err := Issue()
	if err != nil {
		t.Fatal(err)
	}
	good := creds.bundle
	// Swap in the other launch's plugin certificate: key and cert differ.
	mixed := swapPart(t, good, other.bundle, 1)
	cases := map[string][]byte{
		"empty":          nil,
		"bad header":     append([]byte("NOT-A-BUNDLE/1\n\n\n\n\n\n"), good[len(magic):]...),
		"truncated":      good[:len(good)-10],
		"zero length":    append([]byte(magic), 0, 0, 0, 0),
		"huge length":    append([]byte(magic), 0xff, 0xff, 0xff, 0xff),
		"key/cert mixed": mixed,
	}
	for name, b := range cases {
		if _, err := ReadBundle(bytes.NewReader(b)); err == nil {
			t.Errorf("%s: ReadBundle accepted it", name)
		}
	}
	if !strings.Contains(errString(ReadBundle(bytes.NewReader(mixed))), "does not match the plugin key") {
		t.Error("mixed key/cert: error does not say what is wrong")
	}
}

func errString(_ *tls.Config, err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// swapPart replaces part i of bundle a with part i of bundle b.
func swapPart(t *testing.T, a, b []byte, i int) []byte {
	t.Helper()
	pa, pb := parts(a), parts(b)
	pa[i] = pb[i]
	var out bytes.Buffer
	out.WriteString(magic)
	for _, p := range pa {
		out.Write([]byte{byte(len(p) >> 24), byte(len(p) >> 16), byte(len(p) >> 8), byte(len(p))})
		out.Write(p)
	}
	return out.Bytes()
}

func parts(b []byte) [][]byte {
	b = b[len(magic):]
	var out [][]byte
	for len(b) >= 4 {
		n := int(b[0])<<24 | int(b[1])<<16 | int(b[2])<<8 | int(b[3])
		out = append(out, b[4:4+n])
		b = b[4+n:]
	}
	return out
}

func FuzzReadBundle(f *testing.F) {
	creds, err := Issue()
	if err != nil {
		f.Fatal(err)
	}
	f.Add(creds.bundle)
	f.Add([]byte(magic))
	f.Add(append([]byte(magic), 0, 0, 0, 3, 1, 2, 3))
	f.Fuzz(func(t *testing.T, b []byte) {
		cfg, err := ReadBundle(bytes.NewReader(b))
		if err == nil && (cfg == nil || len(cfg.Certificates) != 1 || cfg.MinVersion != tls.VersionTLS13) {
			t.Fatalf("accepted bundle gave config %+v", cfg)
		}
	})
}

func BenchmarkIssue(b *testing.B) {
	for b.Loop() {
		if _, err := Issue(); err != nil {
			b.Fatal(err)
		}
	}
}
