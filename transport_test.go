package webhook

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"slices"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/noa-server/webhook/store"
)

// TestGuardRefusesSpecialPurposeAddresses checks the guard's decision for
// every address family of SIGNATURES.md §6 without dialling any of them.
func TestGuardRefusesSpecialPurposeAddresses(t *testing.T) {
	g, err := newGuard(TransportOptions{})
	if err != nil {
		t.Fatal(err)
	}
	blocked := []string{
		"127.0.0.1", "127.255.255.254", "::1", // loopback
		"0.0.0.0", "::", "0.1.2.3", // unspecified, "this network"
		"10.0.0.1", "172.16.0.1", "172.31.255.255", "192.168.1.1", // RFC 1918
		"100.64.0.1", "100.100.100.200", // CGNAT, Alibaba metadata
		"169.254.169.254", "169.254.0.1", "fe80::1", // link-local, cloud metadata
		"fc00::1", "fd00:ec2::254", // ULA, AWS IPv6 metadata
		"224.0.0.1", "239.255.255.250", "ff02::1", "ff0e::1", // multicast
		"::ffff:127.0.0.1", "::ffff:10.0.0.1", "::ffff:169.254.169.254", // IPv4-mapped
		"64:ff9b::7f00:1", "64:ff9b::a9fe:a9fe", // NAT64 of loopback and metadata
		"2002:7f00:1::1", "2002:a9fe:a9fe::1", // 6to4
		"2001::1",                                               // Teredo
		"192.0.0.1", "192.0.2.1", "198.51.100.1", "203.0.113.1", // IETF, documentation
		"198.18.0.1", "240.0.0.1", "255.255.255.255", // benchmarking, reserved, broadcast
		"2001:db8::1", "::127.0.0.1", "100::1", // documentation, IPv4-compatible, discard
	}
	for _, s := range blocked {
		ip := netip.MustParseAddr(s)
		for _, port := range []uint16{80, 443} {
			err := g.check(netip.AddrPortFrom(ip, port))
			if !errors.Is(err, ErrBlockedDestination) {
				t.Errorf("%s port %d: allowed, want blocked", s, port)
			}
		}
	}
	for _, s := range []string{"93.184.215.14", "8.8.8.8", "1.1.1.1", "2606:4700:4700::1111", "2a00:1450:4001:80b::200e"} {
		ip := netip.MustParseAddr(s)
		if err := g.check(netip.AddrPortFrom(ip, 443)); err != nil {
			t.Errorf("%s:443 refused: %v", s, err)
		}
		if err := g.check(netip.AddrPortFrom(ip, 8080)); !errors.Is(err, ErrBlockedDestination) {
			t.Errorf("%s:8080 allowed, want the port refused", s)
		}
	}
	// Dial-time hook: non-TCP networks and garbage are refused.
	if err := g.control("udp4", "8.8.8.8:443", nil); !errors.Is(err, ErrBlockedDestination) {
		t.Errorf("udp allowed: %v", err)
	}
	if err := g.control("tcp4", "nonsense", nil); !errors.Is(err, ErrBlockedDestination) {
		t.Errorf("unparsable address allowed: %v", err)
	}
}

func TestGuardExplicitAllowances(t *testing.T) {
	g, err := newGuard(TransportOptions{
		AllowedRanges: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("10.1.0.0/16")},
		AllowedPorts:  []int{8443},
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		addr string
		ok   bool
	}{
		{"127.0.0.1:8443", true},
		{"[::ffff:127.0.0.1]:8443", true}, // mapped form of an allowed address
		{"10.1.2.3:8443", true},
		{"10.2.0.1:8443", false}, // outside the allowed range
		{"[::1]:8443", false},    // IPv6 loopback was not allowed
		{"127.0.0.1:443", false}, // the default ports are replaced
		{"8.8.8.8:8443", true},
	} {
		err := g.check(netip.MustParseAddrPort(tt.addr))
		if (err == nil) != tt.ok {
			t.Errorf("%s: err %v, want allowed=%v", tt.addr, err, tt.ok)
		}
	}
	if _, err := newGuard(TransportOptions{AllowedPorts: []int{0}}); err == nil {
		t.Error("port 0 accepted")
	}
}

// TestGuardMappedRanges: an IPv4-mapped range in AllowedRanges used to match
// nothing, as addresses are unmapped before they are checked: a host that
// allowed ::ffff:10.1.0.0/112 still saw 10.1.2.3 (and ::ffff:10.1.2.3)
// refused. It is read as the IPv4 range it maps, and allows no more.
func TestGuardMappedRanges(t *testing.T) {
	g, err := newGuard(TransportOptions{
		AllowedRanges: []netip.Prefix{netip.MustParsePrefix("::ffff:10.1.0.0/112"), netip.MustParsePrefix("::ffff:127.0.0.1/128")},
		AllowAnyPort:  true,
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		addr string
		ok   bool
	}{
		{"10.1.2.3:443", true},
		{"[::ffff:10.1.2.3]:443", true},
		{"127.0.0.1:443", true},
		{"[::ffff:127.0.0.1]:443", true},
		{"10.2.0.1:443", false},
		{"127.0.0.2:443", false},
		{"[::1]:443", false},
		{"[::a01:203]:443", false}, // IPv4-compatible, not mapped: still IPv6
	} {
		err := g.check(netip.MustParseAddrPort(tt.addr))
		if (err == nil) != tt.ok {
			t.Errorf("%s: err %v, want allowed=%v", tt.addr, err, tt.ok)
		}
	}
	if got, want := g.allowed, []netip.Prefix{netip.MustParsePrefix("10.1.0.0/16"), netip.MustParsePrefix("127.0.0.1/32")}; !slices.Equal(got, want) {
		t.Errorf("allowed ranges %v, want %v", got, want)
	}
	if _, err := NewTransport(TransportOptions{AllowedRanges: []netip.Prefix{{}}}); err == nil {
		t.Error("invalid prefix accepted")
	}
}

func TestTransportIgnoresProxies(t *testing.T) {
	t.Setenv("HTTP_PROXY", "http://127.0.0.1:1")
	t.Setenv("HTTPS_PROXY", "http://127.0.0.1:1")
	tr, err := NewTransport(TransportOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if tr.Proxy != nil {
		t.Error("the guarded transport has a proxy function")
	}
}

// TestBlockedDestinations sends real deliveries that the guard must refuse
// before connecting: a host name resolving to loopback, a loopback address
// on a port that is not allowed, a mapped loopback address.
func TestBlockedDestinations(t *testing.T) {
	eachStore(t, func(t *testing.T, newStore func(t *testing.T) store.Store) {
		st := newStore(t)
		rc := newReceiver(t, nil)
		_, port, _ := net.SplitHostPort(strings.TrimPrefix(rc.URL, "http://"))
		for i, tc := range []struct {
			name string
			cfg  *Config
			url  string
		}{
			{"name resolving to loopback", &Config{AllowAnyPort: true}, "http://localhost:" + port + "/"},
			{"loopback on a port not allowed", &Config{AllowedRanges: loopback}, rc.URL},
			{"IPv4-mapped loopback", &Config{AllowAnyPort: true}, "http://[::ffff:127.0.0.1]:" + port + "/"},
		} {
			t.Run(tc.name, func(t *testing.T) {
				tenant := fmt.Sprint("blocked", i)
				addWebhook(t, st, tenant, tc.url)
				tc.cfg.PollInterval = 10 * time.Millisecond
				d := startDispatcher(t, st, tc.cfg)
				res, err := d.Emit(context.Background(), Event{Type: EventUserLogin, Tenant: tenant})
				if err != nil {
					t.Fatal(err)
				}
				waitStatus(t, st, res.DeliveryIDs[0], store.StatusPending, 1)
				a := attempts(t, st, res.DeliveryIDs[0])[0]
				if a.ErrorClass != store.ErrorBlocked {
					t.Errorf("attempt class %q (%s), want blocked_destination", a.ErrorClass, a.Error)
				}
			})
		}
		if n := rc.count(); n != 0 {
			t.Errorf("the loopback receiver got %d requests", n)
		}
	})
}

func TestClassify(t *testing.T) {
	opErr := func(err error) error {
		return &url.Error{Op: "Post", URL: "https://user:pw@example.com/", Err: &net.OpError{Op: "dial", Net: "tcp", Err: err}}
	}
	for _, tt := range []struct {
		err      error
		stopping bool
		want     store.ErrorClass
	}{
		{opErr(fmt.Errorf("%w: 10.0.0.1", ErrBlockedDestination)), false, store.ErrorBlocked},
		{&url.Error{Op: "Post", Err: &net.DNSError{Err: "no such host", Name: "x.invalid", IsNotFound: true}}, false, store.ErrorDNS},
		{opErr(syscall.ECONNREFUSED), false, store.ErrorRefused},
		{opErr(syscall.ECONNRESET), false, store.ErrorReset},
		{&url.Error{Op: "Post", Err: io.EOF}, false, store.ErrorReset},
		{&url.Error{Op: "Post", Err: context.DeadlineExceeded}, false, store.ErrorTimeout},
		{&url.Error{Op: "Post", Err: context.Canceled}, true, store.ErrorCanceled},
		{&url.Error{Op: "Post", Err: tls.RecordHeaderError{Msg: "first record does not look like a TLS handshake"}}, false, store.ErrorTLS},
		{&url.Error{Op: "Post", Err: &tls.CertificateVerificationError{Err: errors.New("x509: unknown authority")}}, false, store.ErrorTLS},
		{&url.Error{Op: "Post", Err: errors.New("something else")}, false, store.ErrorNetwork},
	} {
		class, msg := classify(tt.err, tt.stopping, time.Second)
		if class != tt.want {
			t.Errorf("classify(%v) = %q, want %q", tt.err, class, tt.want)
		}
		if strings.Contains(msg, "pw") || strings.Contains(msg, "user:") {
			t.Errorf("message %q leaks the URL's credentials", msg)
		}
	}
}

func TestTLSFailureIsClassified(t *testing.T) {
	// A TLS server whose certificate nobody trusts.
	var hits atomic.Int64
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { hits.Add(1) }))
	srv.Config.ErrorLog = log.New(io.Discard, "", 0)
	srv.StartTLS()
	defer srv.Close()
	st := newMemStore(t)
	addWebhook(t, st, "a", srv.URL)
	d := startDispatcher(t, st, testConfig())
	id := emit(t, d)[0]
	waitStatus(t, st, id, store.StatusPending, 1)
	if a := attempts(t, st, id)[0]; a.ErrorClass != store.ErrorTLS {
		t.Errorf("class %q (%s), want tls", a.ErrorClass, a.Error)
	}
	if hits.Load() != 0 {
		t.Error("the request reached the handler over an untrusted certificate")
	}
}

// TestTransportTimeoutIsNamed: a TLS handshake that stalls ends at the
// transport's own limit, before Config.Timeout; the attempt says which
// limit it was, not that Timeout passed.
func TestTransportTimeoutIsNamed(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	conns := make(chan net.Conn, 10)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				close(conns)
				return
			}
			conns <- c // held open, silent
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		for c := range conns {
			c.Close()
		}
	})
	tr, err := NewTransport(TransportOptions{AllowedRanges: loopback, AllowAnyPort: true})
	if err != nil {
		t.Fatal(err)
	}
	tr.TLSHandshakeTimeout = 100 * time.Millisecond
	st := newMemStore(t)
	addWebhook(t, st, "a", "https://"+ln.Addr().String()+"/")
	cfg := testConfig()
	cfg.Transport, cfg.AllowedRanges, cfg.AllowAnyPort = tr, nil, false // tr has its own guard
	cfg.Timeout = 5 * time.Second
	d := startDispatcher(t, st, cfg)
	id := emit(t, d)[0]
	waitStatus(t, st, id, store.StatusPending, 1)
	a := attempts(t, st, id)[0]
	if a.ErrorClass != store.ErrorTimeout || !strings.Contains(a.Error, "TLS handshake timeout") {
		t.Errorf("attempt after %v: class %q error %q; want class timeout naming the TLS handshake", a.Duration, a.ErrorClass, a.Error)
	}
}

// TestClassifyDNSHidesResolver: a failed lookup is shown to the tenant in
// the attempt log; it names the host and the failure, not the address of
// the host's DNS server (an internal address a tenant has no use for).
func TestClassifyDNSHidesResolver(t *testing.T) {
	err := &url.Error{Op: "Post", URL: "https://db.internal/", Err: &net.OpError{Op: "dial", Net: "tcp", Err: &net.DNSError{
		Err: "no such host", Name: "db.internal", Server: "10.255.255.53:53", IsNotFound: true,
	}}}
	class, msg := classify(err, false, time.Second)
	if class != store.ErrorDNS {
		t.Errorf("class %q, want dns", class)
	}
	if strings.Contains(msg, "10.255.255.53") {
		t.Errorf("message %q names the DNS server", msg)
	}
	if !strings.Contains(msg, "db.internal") || !strings.Contains(msg, "no such host") {
		t.Errorf("message %q does not say which host failed and why", msg)
	}
}

// TestBlockedNameHidesResolvedAddress: a tenant who registers an internal
// host name learns from the attempt log that it was refused, not the
// internal address the host's resolver gave for it.
func TestBlockedNameHidesResolvedAddress(t *testing.T) {
	addrs, err := net.LookupHost("localhost")
	if err != nil || len(addrs) == 0 {
		t.Skipf("localhost does not resolve: %v", err)
	}
	st := newMemStore(t)
	rc := newReceiver(t, nil)
	_, port, _ := net.SplitHostPort(rc.Listener.Addr().String())
	addWebhook(t, st, "a", "http://localhost:"+port+"/")
	d := startDispatcher(t, st, &Config{AllowAnyPort: true, PollInterval: 10 * time.Millisecond})
	id := emit(t, d)[0]
	waitStatus(t, st, id, store.StatusPending, 1)
	a := attempts(t, st, id)[0]
	if a.ErrorClass != store.ErrorBlocked {
		t.Fatalf("attempt class %q (%s), want blocked_destination", a.ErrorClass, a.Error)
	}
	for _, addr := range addrs {
		if strings.Contains(a.Error, addr) {
			t.Errorf("attempt error %q names the resolved address %s", a.Error, addr)
		}
	}
	if n := rc.count(); n != 0 {
		t.Errorf("the loopback receiver got %d requests", n)
	}
}

// TestLoopbackSpellingsNeverConnect delivers to a loopback receiver through
// every spelling of a loopback or unspecified address a tenant might try,
// with any port allowed but no range: none may reach it. Spellings the
// resolver does not take as addresses (127.1, 2130706433, …) fail as
// lookups; the others are refused by the guard at dial time.
func TestLoopbackSpellingsNeverConnect(t *testing.T) {
	st := newMemStore(t)
	rc := newReceiver(t, nil)
	_, port, _ := net.SplitHostPort(rc.Listener.Addr().String())
	hosts := []string{
		"127.0.0.1", "127.1", "0x7f.1", "2130706433", "0177.0.0.1", "0.0.0.0",
		"[::]", "[::1]", "[::ffff:127.0.0.1]", "[::ffff:7f00:1]", "[::127.0.0.1]",
		"[64:ff9b::7f00:1]", "[fe80::1%25lo]", "localhost", "LOCALHOST",
		// Trailing dots, a percent-encoded host, a zone on a mapped
		// address, local-use NAT64, 6to4, and user information before
		// the host (which the Registry refuses, but a store may hold).
		"localhost.", "127.0.0.1.", "%31%32%37.0.0.1", "[::ffff:7f00:1%25lo]",
		"[64:ff9b:1::7f00:1]", "[2002:7f00:1::1]", "0x7f000001", "good@127.0.0.1",
	}
	d := startDispatcher(t, st, &Config{AllowAnyPort: true, PollInterval: 10 * time.Millisecond})
	for i, h := range hosts {
		tenant := fmt.Sprint("spelling", i)
		addWebhook(t, st, tenant, "http://"+h+":"+port+"/")
		res, err := d.Emit(context.Background(), Event{Type: EventUserLogin, Tenant: tenant})
		if err != nil {
			t.Fatal(err)
		}
		waitStatus(t, st, res.DeliveryIDs[0], store.StatusPending, 1)
		if a := attempts(t, st, res.DeliveryIDs[0])[0]; a.ErrorClass != store.ErrorBlocked && a.ErrorClass != store.ErrorDNS {
			t.Errorf("%s: attempt class %q (%s), want blocked_destination or dns", h, a.ErrorClass, a.Error)
		}
	}
	if n := rc.count(); n != 0 {
		t.Errorf("the loopback receiver got %d requests", n)
	}
}
