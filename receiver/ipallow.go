package receiver

import (
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/netip"
	"strings"
)

// IPAllowlistOptions configures [IPAllowlistWithOptions].
type IPAllowlistOptions struct {
	// Allow lists the client ranges let through, as CIDRs ("203.0.113.0/24",
	// "2001:db8::/32") or single addresses. IPv4-mapped IPv6 forms are
	// unmapped. Required.
	Allow []string
	// TrustedProxies lists the ranges of the reverse proxies in front of the
	// receiver. The forwarded-for header is read only when the TCP peer is
	// in these ranges. Defaults to none: the TCP peer is the client and the
	// header is ignored.
	TrustedProxies []string
	// ForwardedHeader is the header the trusted proxies append the client
	// address to, as a comma-separated list of addresses (X-Forwarded-For's
	// form; X-Real-IP's single address is one). Defaults to
	// "X-Forwarded-For". RFC 7239's Forwarded header, whose entries are
	// for=/by= pairs, is not read: naming it is an error.
	ForwardedHeader string
	// Logger receives one record per refused request. Defaults to
	// discarding.
	Logger *slog.Logger
}

// IPAllowlist returns middleware that lets through only clients in cidrs
// (see [IPAllowlistWithOptions]), trusting no proxy. It panics on an invalid
// range or on none: a programmer error caught at construction.
func IPAllowlist(cidrs ...string) func(http.Handler) http.Handler {
	mw, err := IPAllowlistWithOptions(IPAllowlistOptions{Allow: cidrs})
	if err != nil {
		panic(err)
	}
	return mw
}

// IPAllowlistWithOptions returns middleware that answers 403 unless the
// client address is in opts.Allow. The client is the TCP peer, unless the
// peer is a trusted proxy: then the forwarded-for header (all its lines,
// merged) is walked from right to left, skipping trusted proxies, and the
// first other address is the client (the leftmost, when all are trusted).
// A peer or header entry that does not parse is refused. It fails on an
// empty Allow, a range that does not parse, and a ForwardedHeader of
// "Forwarded".
func IPAllowlistWithOptions(opts IPAllowlistOptions) (func(http.Handler) http.Handler, error) {
	if len(opts.Allow) == 0 {
		return nil, errors.New("receiver: IPAllowlistOptions.Allow is empty")
	}
	allow, err := parsePrefixes(opts.Allow)
	if err != nil {
		return nil, err
	}
	trusted, err := parsePrefixes(opts.TrustedProxies)
	if err != nil {
		return nil, err
	}
	hdr := opts.ForwardedHeader
	if hdr == "" {
		hdr = "X-Forwarded-For"
	}
	if http.CanonicalHeaderKey(hdr) == "Forwarded" {
		// Every request would be refused: no for= entry parses as an
		// address.
		return nil, errors.New("receiver: ForwardedHeader \"Forwarded\" (RFC 7239) is not supported; name a header holding a list of addresses, such as X-Forwarded-For")
	}
	log := loggerOr(opts.Logger)
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			ip, ok := clientIP(r.RemoteAddr, r.Header.Values(hdr), trusted)
			if !ok || !contains(allow, ip) {
				attrs := []slog.Attr{slog.String("remote_addr", r.RemoteAddr)}
				if ok {
					attrs = append(attrs, slog.String("client_ip", ip.String()))
				}
				log.LogAttrs(r.Context(), slog.LevelWarn, "receiver: client address not allowed", attrs...)
				plain(w, http.StatusForbidden, "Forbidden")
				return
			}
			next.ServeHTTP(w, r)
		})
	}, nil
}

func parsePrefixes(list []string) ([]netip.Prefix, error) {
	out := make([]netip.Prefix, 0, len(list))
	for _, s := range list {
		s = strings.TrimSpace(s)
		var p netip.Prefix
		if strings.Contains(s, "/") {
			var err error
			p, err = netip.ParsePrefix(s)
			if err != nil {
				return nil, fmt.Errorf("receiver: invalid address range %q: %w", s, err)
			}
			if p.Addr().Is4In6() && p.Bits() >= 96 {
				p = netip.PrefixFrom(p.Addr().Unmap(), p.Bits()-96)
			}
		} else {
			a, err := netip.ParseAddr(s)
			if err != nil {
				return nil, fmt.Errorf("receiver: invalid address %q: %w", s, err)
			}
			a = normalize(a)
			p = netip.PrefixFrom(a, a.BitLen())
		}
		out = append(out, p.Masked())
	}
	return out, nil
}

func normalize(a netip.Addr) netip.Addr { return a.WithZone("").Unmap() }

func contains(ps []netip.Prefix, a netip.Addr) bool {
	for _, p := range ps {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// parseHostAddr parses an address with or without a port ("192.0.2.1",
// "192.0.2.1:443", "2001:db8::1", "[2001:db8::1]:443"), drops any IPv6 zone
// and unmaps IPv4-mapped IPv6.
func parseHostAddr(s string) (netip.Addr, bool) {
	s = strings.TrimSpace(s)
	if ap, err := netip.ParseAddrPort(s); err == nil {
		return normalize(ap.Addr()), true
	}
	if a, err := netip.ParseAddr(strings.TrimSuffix(strings.TrimPrefix(s, "["), "]")); err == nil {
		return normalize(a), true
	}
	return netip.Addr{}, false
}

// clientIP returns the client address of a request from remoteAddr and the
// forwarded-for header lines, trusting the header only from trusted peers.
func clientIP(remoteAddr string, forwarded []string, trusted []netip.Prefix) (netip.Addr, bool) {
	peer, ok := parseHostAddr(remoteAddr)
	if !ok {
		return netip.Addr{}, false
	}
	if !contains(trusted, peer) {
		return peer, true
	}
	var hops []netip.Addr
	for _, line := range forwarded {
		for _, entry := range strings.Split(line, ",") {
			a, ok := parseHostAddr(entry)
			if !ok {
				return netip.Addr{}, false
			}
			hops = append(hops, a)
		}
	}
	client := peer
	for i := len(hops) - 1; i >= 0; i-- {
		client = hops[i]
		if !contains(trusted, client) {
			break
		}
	}
	return client, true
}
