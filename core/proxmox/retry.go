package proxmox

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"math/rand/v2"
	"net/http"
	"time"
)

// isTransient reports whether a failed request may succeed when repeated
// unchanged: network failures, gateway errors, pveproxy's 595/596/599 and
// config lock timeouts. Refusals (4xx), server errors, TLS pin or protocol
// failures and malformed responses are final.
func isTransient(err error) bool {
	var apiErr *APIError
	if errors.As(err, &apiErr) {
		switch apiErr.Status {
		case http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout, 595, 596, 599:
			return true
		}
		return errors.Is(apiErr, ErrLockTimeout)
	}
	var (
		pinErr    *PinMismatchError
		decErr    *decodeError
		recErr    tls.RecordHeaderError
		certErr   *tls.CertificateVerificationError
		hostErr   x509.HostnameError
		unknownCA x509.UnknownAuthorityError
	)
	switch {
	case errors.As(err, &pinErr), errors.As(err, &decErr), errors.As(err, &recErr),
		errors.As(err, &certErr), errors.As(err, &hostErr), errors.As(err, &unknownCA):
		return false
	case errors.Is(err, context.Canceled):
		return false
	}
	// What remains are transport failures: refused or reset connections,
	// timeouts of one attempt, EOF mid-response.
	return true
}

// backoff returns the delay before retry number attempt (1-based):
// exponential from BaseDelay, capped at MaxDelay, with "equal jitter" so
// that concurrent clients spread out but never retry immediately.
func backoff(p RetryPolicy, attempt int) time.Duration {
	d := p.BaseDelay
	for i := 1; i < attempt && d < p.MaxDelay; i++ {
		d *= 2
	}
	d = min(d, p.MaxDelay)
	half := d / 2
	return half + rand.N(half+1)
}
