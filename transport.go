package webhook

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"slices"
	"syscall"
	"time"

	"code.dny.dev/ssrf"
)

// DefaultAllowedPorts returns the only destination ports the guarded
// transport dials unless TransportOptions says otherwise: 80 and 443. It is a
// function, not a variable, so no code can change the default for everyone.
func DefaultAllowedPorts() []int { return []int{80, 443} }

// ErrBlockedDestination reports an outbound connection the SSRF guard
// refused: a special-purpose address (loopback, private, link-local, CGNAT,
// cloud metadata, multicast, …), a port that is not allowed, or a scheme
// other than http and https. Match it with errors.Is; the attempt is
// recorded with error class blocked_destination.
var ErrBlockedDestination = errors.New("webhook: destination not allowed")

// TransportOptions tunes NewTransport. The zero value is the safe default:
// only public unicast addresses on ports 80 and 443.
type TransportOptions struct {
	// AllowedRanges are address ranges dialled even though they are special
	// purpose (for example 127.0.0.0/8 and ::1/128 for tests against
	// httptest servers, or a private range the host trusts). Empty by
	// default: every special-purpose range is refused. An IPv4-mapped
	// prefix (::ffff:a.b.c.d/n, n at least 96) is read as the IPv4 prefix
	// it maps (a.b.c.d/n-96), as IPv4-mapped addresses are judged as IPv4.
	AllowedRanges []netip.Prefix
	// AllowedPorts are the destination ports that may be dialled. Defaults
	// to DefaultAllowedPorts (80 and 443).
	AllowedPorts []int
	// AllowAnyPort dials every port (tests against httptest servers, whose
	// ports are random). Off by default.
	AllowAnyPort bool
	// MaxIdleConnsPerHost is how many idle keep-alive connections are kept
	// per destination. Defaults to DefaultWorkers.
	MaxIdleConnsPerHost int
	// DialTimeout bounds connection setup. Defaults to 10 seconds.
	DialTimeout time.Duration
}

// guard decides whether an address may be dialled. It checks the resolved
// address of every connection attempt (net.Dialer.Control), so a host name
// that resolves, or re-resolves, to an internal address is refused.
type guard struct {
	allowed  []netip.Prefix
	ports    []uint16 // nil: any port
	denylist *ssrf.Guardian
}

// newGuard builds the guard of o. Its errors have no prefix: NewTransport
// and New each add theirs.
func newGuard(o TransportOptions) (*guard, error) {
	g := &guard{denylist: ssrf.New(ssrf.WithAnyPort())}
	for _, p := range o.AllowedRanges {
		if !p.IsValid() {
			return nil, fmt.Errorf("allowed range %v is not a valid prefix", p)
		}
		p = p.Masked()
		// Addresses are judged unmapped (see check): an IPv4-mapped
		// prefix, ::ffff:10.0.0.0/104, would match none of them. It
		// names IPv4 addresses, so it is read as IPv4: 10.0.0.0/8.
		if p.Addr().Is4In6() && p.Bits() >= 96 {
			p = netip.PrefixFrom(p.Addr().Unmap(), p.Bits()-96)
		}
		g.allowed = append(g.allowed, p)
	}
	if !o.AllowAnyPort {
		ports := o.AllowedPorts
		if len(ports) == 0 {
			ports = DefaultAllowedPorts()
		}
		for _, p := range ports {
			if p < 1 || p > 65535 {
				return nil, fmt.Errorf("allowed port %d is outside 1-65535", p)
			}
			g.ports = append(g.ports, uint16(p))
		}
	}
	return g, nil
}

// check returns nil when ap may be dialled, else an error wrapping
// ErrBlockedDestination.
func (g *guard) check(ap netip.AddrPort) error {
	if g.ports != nil && !slices.Contains(g.ports, ap.Port()) {
		return fmt.Errorf("%w: port %d is not allowed", ErrBlockedDestination, ap.Port())
	}
	// ::ffff:127.0.0.1 is 127.0.0.1: judge IPv4-mapped addresses as IPv4.
	ip := ap.Addr().Unmap().WithZone("")
	for _, p := range g.allowed {
		if p.Contains(ip) {
			return nil
		}
	}
	// The message does not name ip: it is shown to the tenant, and for a
	// host name it is what the host's resolver answered, perhaps the
	// address of an internal machine.
	if !ip.IsValid() || ip.IsUnspecified() || g.denylist.SafeAddr(ip) != nil {
		return errSpecialPurpose
	}
	return nil
}

var errSpecialPurpose = fmt.Errorf("%w: the address is loopback, private, link-local or otherwise special-purpose", ErrBlockedDestination)

// control is the net.Dialer.Control hook: it runs after DNS resolution,
// before every connect.
func (g *guard) control(network, address string, _ syscall.RawConn) error {
	if network != "tcp4" && network != "tcp6" {
		return fmt.Errorf("%w: network %s", ErrBlockedDestination, network)
	}
	ap, err := netip.ParseAddrPort(address)
	if err != nil {
		return fmt.Errorf("%w: unparsable address", ErrBlockedDestination)
	}
	return g.check(ap)
}

// NewTransport returns a net/http Transport with the SSRF guard of the
// dispatcher's default transport, for a Config.Transport of your own (one
// that wraps it to trace requests, say): its dialer refuses special-purpose
// addresses and ports that are not allowed after DNS resolution, it
// ignores environment proxies (a proxy would hide the real destination from
// the guard), and it keeps connections alive for reuse across attempts. It
// fails only on invalid options.
func NewTransport(o TransportOptions) (*http.Transport, error) {
	g, err := newGuard(o)
	if err != nil {
		return nil, fmt.Errorf("webhook: %w", err)
	}
	return newGuardedTransport(g, o), nil
}

func newGuardedTransport(g *guard, o TransportOptions) *http.Transport {
	return &http.Transport{
		Proxy:                  nil,
		DialContext:            guardedDialer(g, o).DialContext,
		ForceAttemptHTTP2:      true,
		MaxIdleConns:           maxIdlePerHost(o) * 4,
		MaxIdleConnsPerHost:    maxIdlePerHost(o),
		IdleConnTimeout:        90 * time.Second,
		TLSHandshakeTimeout:    10 * time.Second,
		ExpectContinueTimeout:  time.Second,
		MaxResponseHeaderBytes: maxResponseHeaderBytes,
	}
}

// guardedDialer returns the dialer of the guarded transports: g checks
// every address it connects to.
func guardedDialer(g *guard, o TransportOptions) *net.Dialer {
	dialTimeout := o.DialTimeout
	if dialTimeout <= 0 {
		dialTimeout = 10 * time.Second
	}
	return &net.Dialer{
		Timeout:   dialTimeout,
		KeepAlive: 30 * time.Second,
		Control:   g.control,
	}
}

func maxIdlePerHost(o TransportOptions) int {
	if o.MaxIdleConnsPerHost > 0 {
		return o.MaxIdleConnsPerHost
	}
	return DefaultWorkers
}
