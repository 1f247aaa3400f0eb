// Package plugintls gives the felhom-agent core and one plugin process a
// mutually pinned TLS 1.3 channel without go-plugin's AutoMTLS.
//
// AutoMTLS makes two P-521 keys per launch (about 39 ms on the target
// machine). Instead, the host calls [Issue], which makes one ECDSA P-256
// identity for itself and one for the plugin (self-signed leaves, no CA: each
// side accepts exactly the other's certificate). P-256 rather than ed25519:
// a fresh plugin process pays about 2.3 ms for its first ed25519 operations
// (the base-point table is built at first use) against about 0.25 ms for
// P-256, whose tables are compiled in; a plugin's first handshake is on the
// cold-start path. The plugin's key and
// certificate and the host's certificate travel over an inherited pipe
// ([Credentials.Attach] puts it on exec.Cmd.ExtraFiles and names the fd in
// FELHOM_PLUGIN_TLS_FD), never through the environment or the disk.
//
// The host keeps the pipe's write end open for the plugin's lifetime. The
// plugin ([FromEnv]) reads its identity, then watches the pipe: end of file
// means the host is gone, and the plugin exits. So a plugin dies with its
// host even when nothing else (process group, Pdeathsig) catches it.
package plugintls

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/big"
	"os"
	"os/exec"
	"strconv"
	"sync"
	"syscall"
	"time"
)

// EnvFD names the environment variable that tells the plugin which
// inherited file descriptor carries its TLS identity.
const EnvFD = "FELHOM_PLUGIN_TLS_FD"

// magic starts every bundle, so a wrong fd fails loudly.
const magic = "FELHOM-PLUGIN-TLS/1\n"

// maxBundle bounds what the plugin reads from the pipe.
const maxBundle = 16 << 10

// Credentials holds one launch's pair of identities.
type Credentials struct {
	// Host is the host's config for go-plugin's ClientConfig.TLSConfig. It
	// presents the host's certificate and accepts only the plugin's, both
	// when the host dials the plugin and when it serves host services on
	// the broker.
	Host *tls.Config
	// Plugin is the plugin's config, for running a plugin in-process (tests);
	// a plugin process gets the same through [FromEnv].
	Plugin *tls.Config

	bundle []byte
}

// Issue makes a fresh pair of identities for one plugin launch (about
// 0.4 ms).
func Issue() (*Credentials, error) {
	hostCert, hostKey, err := selfSigned("felhom-agent")
	if err != nil {
		return nil, fmt.Errorf("issue host identity: %w", err)
	}
	plugCert, plugKey, err := selfSigned("felhom-plugin")
	if err != nil {
		return nil, fmt.Errorf("issue plugin identity: %w", err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(plugKey)
	if err != nil {
		return nil, fmt.Errorf("encode plugin key: %w", err)
	}
	var b bytes.Buffer
	b.WriteString(magic)
	for _, part := range [][]byte{keyDER, plugCert, hostCert} {
		var n [4]byte
		binary.BigEndian.PutUint32(n[:], uint32(len(part)))
		b.Write(n[:])
		b.Write(part)
	}
	return &Credentials{
		Host:   Config(hostCert, hostKey, plugCert),
		Plugin: Config(plugCert, plugKey, hostCert),
		bundle: b.Bytes(),
	}, nil
}

// selfSigned makes a P-256 key and a self-signed leaf. Validity is wide
// on purpose: peers pin the exact certificate, so a clock jump must not
// break a running plugin.
func selfSigned(cn string) ([]byte, crypto.Signer, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	pub := key.Public()
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 64))
	if err != nil {
		return nil, nil, err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: cn},
		DNSNames:     []string{"localhost"},
		NotBefore:    now.Add(-24 * time.Hour),
		NotAfter:     now.Add(100 * 365 * 24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, pub, key)
	if err != nil {
		return nil, nil, err
	}
	return der, key, nil
}

// Config builds the TLS 1.3 config one side uses in both roles (client and
// server): it presents own and accepts a peer only if the peer's leaf is
// byte-for-byte peerDER. Chain verification is replaced by this pin; the
// handshake still proves the peer holds the pinned certificate's key.
func Config(ownDER []byte, ownKey crypto.Signer, peerDER []byte) *tls.Config {
	peer := bytes.Clone(peerDER)
	verify := func(cs tls.ConnectionState) error {
		if len(cs.PeerCertificates) == 0 {
			return errors.New("plugintls: peer sent no certificate")
		}
		if !bytes.Equal(cs.PeerCertificates[0].Raw, peer) {
			return errors.New("plugintls: peer certificate is not the one issued for this launch")
		}
		return nil
	}
	return &tls.Config{
		Certificates: []tls.Certificate{{Certificate: [][]byte{bytes.Clone(ownDER)}, PrivateKey: ownKey}},
		MinVersion:   tls.VersionTLS13,
		// Client role: the pin in VerifyConnection replaces name and chain checks.
		InsecureSkipVerify: true, //nolint:gosec // pinned in VerifyConnection
		// Server role: demand a client certificate; VerifyConnection pins it.
		ClientAuth:       tls.RequireAnyClientCert,
		VerifyConnection: verify,
		ServerName:       "localhost",
		// Both ends are processes on one host talking over a private unix
		// socket; classic X25519 saves the hybrid ML-KEM key share, which
		// is most of a cold plugin's handshake cost.
		CurvePreferences: []tls.CurveID{tls.X25519},
	}
}

// Pipe is the inherited pipe of one launch, seen from the host.
type Pipe struct {
	mu    sync.Mutex
	child *os.File // read end, duplicated into the plugin
	w     *os.File // write end, kept by the host
}

// Attach creates the pipe, writes the plugin's identity into it, adds its
// read end to cmd.ExtraFiles and FELHOM_PLUGIN_TLS_FD to cmd.Env. Call it
// before the command starts (with go-plugin: before NewClient/Start), then
// [Pipe.Started] once it has started, and [Pipe.Close] when the plugin is
// gone (closing earlier makes the plugin exit).
func (c *Credentials) Attach(cmd *exec.Cmd) (*Pipe, error) {
	r, w, err := os.Pipe()
	if err != nil {
		return nil, fmt.Errorf("create plugin tls pipe: %w", err)
	}
	// The bundle is a few hundred bytes, far below the pipe buffer, so this
	// write does not wait for the plugin.
	if _, err := w.Write(c.bundle); err != nil {
		r.Close()
		w.Close()
		return nil, fmt.Errorf("write plugin tls bundle: %w", err)
	}
	fd := 3 + len(cmd.ExtraFiles)
	cmd.ExtraFiles = append(cmd.ExtraFiles, r)
	cmd.Env = append(cmd.Env, EnvFD+"="+strconv.Itoa(fd))
	return &Pipe{child: r, w: w}, nil
}

// Started closes the host's copy of the plugin's end. Safe to call twice.
func (p *Pipe) Started() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.child != nil {
		p.child.Close()
		p.child = nil
	}
}

// Close closes both ends; a running plugin sees end of file and exits.
func (p *Pipe) Close() error {
	p.Started()
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.w == nil {
		return nil
	}
	err := p.w.Close()
	p.w = nil
	return err
}

// Watch is the plugin's end of the pipe after the identity was read.
type Watch struct {
	f *os.File
}

// HostGone blocks until the host closes its end of the pipe (or dies) and
// then returns. Any data after the bundle counts as a protocol error and
// also returns: the host does not write more.
func (w *Watch) HostGone() {
	var b [1]byte
	_, _ = w.f.Read(b[:])
}

// Close stops the watch; a blocked HostGone returns.
func (w *Watch) Close() error { return w.f.Close() }

// ErrNoFD is returned by [FromEnv] when FELHOM_PLUGIN_TLS_FD is unset: the
// binary was not started by felhom-agent (plugins have no plaintext mode).
var ErrNoFD = errors.New(EnvFD + " is not set: felhom plugins only run under felhom-agent, which passes a TLS identity on an inherited pipe")

// FromEnv reads the plugin's identity from the fd named by
// FELHOM_PLUGIN_TLS_FD and returns the plugin's TLS config and the watch on
// the host. It waits at most timeout for the bundle.
func FromEnv(timeout time.Duration) (*tls.Config, *Watch, error) {
	v := os.Getenv(EnvFD)
	if v == "" {
		return nil, nil, ErrNoFD
	}
	fd, err := strconv.Atoi(v)
	if err != nil || fd < 3 {
		return nil, nil, fmt.Errorf("%s=%q: want a file descriptor number >= 3", EnvFD, v)
	}
	// Non-blocking so reads go through the poller (deadlines work, no
	// thread is parked), close-on-exec so the plugin's own children do not
	// keep the host's pipe alive.
	if err := syscall.SetNonblock(fd, true); err != nil {
		return nil, nil, fmt.Errorf("%s=%d: %w", EnvFD, fd, err)
	}
	syscall.CloseOnExec(fd)
	f := os.NewFile(uintptr(fd), "felhom-plugin-tls")
	if err := f.SetReadDeadline(time.Now().Add(timeout)); err != nil {
		f.Close()
		return nil, nil, fmt.Errorf("%s=%d is not a pipe: %w", EnvFD, fd, err)
	}
	cfg, err := ReadBundle(f)
	if err != nil {
		f.Close()
		return nil, nil, fmt.Errorf("read tls identity from fd %d: %w", fd, err)
	}
	if err := f.SetReadDeadline(time.Time{}); err != nil {
		f.Close()
		return nil, nil, fmt.Errorf("clear deadline on fd %d: %w", fd, err)
	}
	return cfg, &Watch{f: f}, nil
}

// ReadBundle parses one identity bundle from r, reading exactly its bytes.
func ReadBundle(r io.Reader) (*tls.Config, error) {
	head := make([]byte, len(magic))
	if _, err := io.ReadFull(r, head); err != nil {
		return nil, fmt.Errorf("read header: %w", err)
	}
	if string(head) != magic {
		return nil, errors.New("bad header: not a felhom plugin tls bundle")
	}
	var parts [3][]byte
	total := 0
	for i := range parts {
		var n [4]byte
		if _, err := io.ReadFull(r, n[:]); err != nil {
			return nil, fmt.Errorf("read part %d length: %w", i, err)
		}
		size := int(binary.BigEndian.Uint32(n[:]))
		total += size
		if size == 0 || total > maxBundle {
			return nil, fmt.Errorf("part %d has a bad length %d", i, size)
		}
		parts[i] = make([]byte, size)
		if _, err := io.ReadFull(r, parts[i]); err != nil {
			return nil, fmt.Errorf("read part %d: %w", i, err)
		}
	}
	key, err := x509.ParsePKCS8PrivateKey(parts[0])
	if err != nil {
		return nil, fmt.Errorf("parse plugin key: %w", err)
	}
	ecKey, ok := key.(*ecdsa.PrivateKey)
	if !ok || ecKey.Curve != elliptic.P256() {
		return nil, fmt.Errorf("plugin key is %T, want ECDSA P-256", key)
	}
	own, err := x509.ParseCertificate(parts[1])
	if err != nil {
		return nil, fmt.Errorf("parse plugin certificate: %w", err)
	}
	if pub, ok := own.PublicKey.(*ecdsa.PublicKey); !ok || !pub.Equal(ecKey.Public()) {
		return nil, errors.New("plugin certificate does not match the plugin key")
	}
	if _, err := x509.ParseCertificate(parts[2]); err != nil {
		return nil, fmt.Errorf("parse host certificate: %w", err)
	}
	return Config(parts[1], ecKey, parts[2]), nil
}
