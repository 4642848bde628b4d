package receiver

import (
	"net/http"
	"net/http/httptest"
	"testing"
)

func TestIPAllowlist(t *testing.T) {
	t.Parallel()
	opts := IPAllowlistOptions{
		Allow:          []string{"203.0.113.0/24", "2001:db8::/32", "198.51.100.7"},
		TrustedProxies: []string{"10.0.0.0/8", "fd00::/8"},
	}
	tests := []struct {
		name   string
		remote string
		xff    []string
		want   int
	}{
		{"allowed v4 peer", "203.0.113.5:4000", nil, 200},
		{"allowed single address", "198.51.100.7:4000", nil, 200},
		{"other v4 peer", "192.0.2.1:4000", nil, 403},
		{"allowed v6 peer", "[2001:db8::1]:4000", nil, 200},
		{"allowed v6 peer with zone", "[2001:db8::1%eth0]:4000", nil, 200},
		{"v4-mapped v6 peer unmapped", "[::ffff:203.0.113.5]:4000", nil, 200},
		{"v4-mapped v6 peer outside", "[::ffff:192.0.2.1]:4000", nil, 403},
		{"other v6 peer", "[2001:db9::1]:4000", nil, 403},
		{"unparsable peer", "nonsense", nil, 403},
		{"spoofed header from untrusted peer", "192.0.2.1:4000", []string{"203.0.113.5"}, 403},
		{"header ignored from allowed untrusted peer", "203.0.113.5:4000", []string{"192.0.2.1"}, 200},
		{"trusted proxy forwards allowed client", "10.1.2.3:4000", []string{"203.0.113.5"}, 200},
		{"trusted proxy forwards other client", "10.1.2.3:4000", []string{"192.0.2.1"}, 403},
		{"client prepends a spoofed allowed address", "10.1.2.3:4000", []string{"203.0.113.5, 192.0.2.1"}, 403},
		{"right to left skips trusted hops", "10.1.2.3:4000", []string{"192.0.2.1, 203.0.113.5, 10.9.9.9"}, 200},
		{"lines merged in order", "10.1.2.3:4000", []string{"192.0.2.1", "203.0.113.5", "10.9.9.9"}, 200},
		{"last line wins over earlier", "10.1.2.3:4000", []string{"203.0.113.5", "192.0.2.1"}, 403},
		{"unparsable entry denies", "10.1.2.3:4000", []string{"203.0.113.5, garbage"}, 403},
		{"unparsable entry left of client denies", "10.1.2.3:4000", []string{"garbage, 203.0.113.5"}, 403},
		{"empty entry denies", "10.1.2.3:4000", []string{"203.0.113.5,"}, 403},
		{"entry with port", "10.1.2.3:4000", []string{"203.0.113.5:1234"}, 200},
		{"v6 entry with port", "10.1.2.3:4000", []string{"[2001:db8::5]:1234"}, 200},
		{"mapped entry unmapped", "10.1.2.3:4000", []string{"::ffff:203.0.113.5"}, 200},
		{"v6 proxy", "[fd00::1]:4000", []string{"2001:db8::9"}, 200},
		{"trusted proxy without header is the client", "10.1.2.3:4000", nil, 403},
		{"all hops trusted: leftmost is the client", "10.1.2.3:4000", []string{"10.0.0.1, 10.0.0.2"}, 403},
	}
	mw, err := IPAllowlistWithOptions(opts)
	if err != nil {
		t.Fatal(err)
	}
	h := mw(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r := httptest.NewRequest("POST", "/", nil)
			r.RemoteAddr = tt.remote
			for _, v := range tt.xff {
				r.Header.Add("X-Forwarded-For", v)
			}
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, r)
			if rec.Code != tt.want {
				t.Fatalf("status = %d, want %d", rec.Code, tt.want)
			}
		})
	}
}

func TestIPAllowlistIgnoresOtherHeaders(t *testing.T) {
	t.Parallel()
	h := IPAllowlist("203.0.113.0/24")(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	r := httptest.NewRequest("POST", "/", nil)
	r.RemoteAddr = "192.0.2.1:1"
	r.Header.Set("X-Real-IP", "203.0.113.5")
	r.Header.Set("X-Forwarded-For", "203.0.113.5")
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, r)
	if rec.Code != 403 {
		t.Fatalf("status = %d", rec.Code)
	}
}

func TestIPAllowlistCustomHeader(t *testing.T) {
	t.Parallel()
	mw, err := IPAllowlistWithOptions(IPAllowlistOptions{Allow: []string{"203.0.113.0/24"}, TrustedProxies: []string{"127.0.0.1"}, ForwardedHeader: "X-Real-IP"})
	if err != nil {
		t.Fatal(err)
	}
	h := mw(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	r := httptest.NewRequest("POST", "/", nil)
	r.RemoteAddr = "127.0.0.1:1"
	r.Header.Set("X-Real-IP", "203.0.113.5")
	r.Header.Set("X-Forwarded-For", "192.0.2.1")
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, r)
	if rec.Code != 200 {
		t.Fatalf("status = %d", rec.Code)
	}
}

func TestIPAllowlistConstruction(t *testing.T) {
	t.Parallel()
	for _, o := range []IPAllowlistOptions{
		{},
		{Allow: []string{"300.0.0.0/8"}},
		{Allow: []string{"10.0.0.0/33"}},
		{Allow: []string{"10.0.0.0/8"}, TrustedProxies: []string{"proxy.internal"}},
		{Allow: []string{"10.0.0.0/8"}, TrustedProxies: []string{"127.0.0.1"}, ForwardedHeader: "forwarded"},
	} {
		if _, err := IPAllowlistWithOptions(o); err == nil {
			t.Errorf("%+v: no error", o)
		}
	}
	// A mapped range is unmapped.
	mw, err := IPAllowlistWithOptions(IPAllowlistOptions{Allow: []string{"::ffff:203.0.113.0/120"}})
	if err != nil {
		t.Fatal(err)
	}
	r := httptest.NewRequest("POST", "/", nil)
	r.RemoteAddr = "203.0.113.9:1"
	rec := httptest.NewRecorder()
	mw(http.NotFoundHandler()).ServeHTTP(rec, r)
	if rec.Code != 404 {
		t.Fatalf("mapped range: status %d", rec.Code)
	}
	defer func() {
		if recover() == nil {
			t.Error("IPAllowlist with a bad range did not panic")
		}
	}()
	IPAllowlist("nope")
}

// TestIPAllowlistOverHTTP runs the allowlist on a real server, whose TCP
// peer is 127.0.0.1: forwarding headers count only from a configured
// trusted proxy, and ranges match by their meaning, not their spelling.
func TestIPAllowlistOverHTTP(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		opts    IPAllowlistOptions
		headers http.Header
		want    int
	}{
		// No trusted proxy: every forwarding header is the client's word.
		{"peer allowed", IPAllowlistOptions{Allow: []string{"127.0.0.1"}}, nil, 200},
		{"peer outside", IPAllowlistOptions{Allow: []string{"203.0.113.0/24"}}, nil, 403},
		{"X-Forwarded-For ignored", IPAllowlistOptions{Allow: []string{"203.0.113.0/24"}}, http.Header{"X-Forwarded-For": {"203.0.113.5"}}, 403},
		{"x-forwarded-for in lower case ignored", IPAllowlistOptions{Allow: []string{"203.0.113.0/24"}}, http.Header{"x-forwarded-for": {"203.0.113.5"}}, 403},
		{"X-Real-IP ignored", IPAllowlistOptions{Allow: []string{"203.0.113.0/24"}}, http.Header{"X-Real-Ip": {"203.0.113.5"}}, 403},
		{"Forwarded ignored", IPAllowlistOptions{Allow: []string{"203.0.113.0/24"}}, http.Header{"Forwarded": {"for=203.0.113.5"}}, 403},

		// The peer is a trusted proxy: X-Forwarded-For, right to left.
		{"trusted proxy forwards an allowed client", IPAllowlistOptions{Allow: []string{"203.0.113.0/24"}, TrustedProxies: []string{"127.0.0.1"}}, http.Header{"X-Forwarded-For": {"203.0.113.5"}}, 200},
		{"trusted proxy forwards another client", IPAllowlistOptions{Allow: []string{"203.0.113.0/24"}, TrustedProxies: []string{"127.0.0.1"}}, http.Header{"X-Forwarded-For": {"192.0.2.1"}}, 403},
		{"client prepends an allowed address", IPAllowlistOptions{Allow: []string{"203.0.113.0/24"}, TrustedProxies: []string{"127.0.0.1"}}, http.Header{"X-Forwarded-For": {"203.0.113.5, 192.0.2.1"}}, 403},
		{"lines merged, last one nearest", IPAllowlistOptions{Allow: []string{"203.0.113.0/24"}, TrustedProxies: []string{"127.0.0.1"}}, http.Header{"X-Forwarded-For": {"192.0.2.1", "203.0.113.5"}}, 200},
		{"lines in two cases merged", IPAllowlistOptions{Allow: []string{"203.0.113.0/24"}, TrustedProxies: []string{"127.0.0.1"}}, http.Header{"X-Forwarded-For": {"203.0.113.5"}, "x-forwarded-for": {"192.0.2.1"}}, 403},
		{"trusted hops skipped", IPAllowlistOptions{Allow: []string{"203.0.113.0/24"}, TrustedProxies: []string{"127.0.0.1", "10.0.0.0/8"}}, http.Header{"X-Forwarded-For": {"192.0.2.1, 203.0.113.5, 10.1.1.1"}}, 200},
		{"unparsable entry", IPAllowlistOptions{Allow: []string{"203.0.113.0/24"}, TrustedProxies: []string{"127.0.0.1"}}, http.Header{"X-Forwarded-For": {"unknown, 203.0.113.5"}}, 403},
		{"obfuscated entry", IPAllowlistOptions{Allow: []string{"203.0.113.0/24"}, TrustedProxies: []string{"127.0.0.1"}}, http.Header{"X-Forwarded-For": {"203.000.113.005"}}, 403},
		{"Forwarded from a trusted proxy still ignored", IPAllowlistOptions{Allow: []string{"203.0.113.0/24"}, TrustedProxies: []string{"127.0.0.1"}}, http.Header{"Forwarded": {"for=203.0.113.5"}}, 403},
		{"mapped forwarded client", IPAllowlistOptions{Allow: []string{"203.0.113.0/24"}, TrustedProxies: []string{"127.0.0.1"}}, http.Header{"X-Forwarded-For": {"::ffff:203.0.113.5"}}, 200},
		{"zoned forwarded client", IPAllowlistOptions{Allow: []string{"fe80::/10"}, TrustedProxies: []string{"127.0.0.1"}}, http.Header{"X-Forwarded-For": {"fe80::1%eth0"}}, 200},
		{"trusted range given mapped", IPAllowlistOptions{Allow: []string{"203.0.113.0/24"}, TrustedProxies: []string{"::ffff:127.0.0.0/104"}}, http.Header{"X-Forwarded-For": {"203.0.113.5"}}, 200},
		{"trusted proxy elsewhere", IPAllowlistOptions{Allow: []string{"203.0.113.0/24"}, TrustedProxies: []string{"10.0.0.0/8"}}, http.Header{"X-Forwarded-For": {"203.0.113.5"}}, 403},

		// Ranges.
		{"range", IPAllowlistOptions{Allow: []string{"127.0.0.0/8"}}, nil, 200},
		{"host bits masked", IPAllowlistOptions{Allow: []string{"127.9.9.9/8"}}, nil, 200},
		{"neighbour /32", IPAllowlistOptions{Allow: []string{"127.0.0.2/32"}}, nil, 403},
		{"/31 pair", IPAllowlistOptions{Allow: []string{"127.0.0.0/31"}}, nil, 200},
		{"all IPv4", IPAllowlistOptions{Allow: []string{"0.0.0.0/0"}}, nil, 200},
		{"mapped single address", IPAllowlistOptions{Allow: []string{"::ffff:127.0.0.1"}}, nil, 200},
		{"mapped range", IPAllowlistOptions{Allow: []string{"::ffff:127.0.0.0/104"}}, nil, 200},
		{"all mapped IPv4", IPAllowlistOptions{Allow: []string{"::ffff:0.0.0.0/96"}}, nil, 200},
		{"IPv6 loopback is not IPv4's", IPAllowlistOptions{Allow: []string{"::1"}}, nil, 403},
		// An IPv4 client is matched as IPv4: ::/0 is every IPv6 address,
		// not every address.
		{"all IPv6", IPAllowlistOptions{Allow: []string{"::/0"}}, nil, 403},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			mw, err := IPAllowlistWithOptions(tt.opts)
			if err != nil {
				t.Fatal(err)
			}
			srv := httptest.NewServer(mw(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {})))
			defer srv.Close()
			req, err := http.NewRequest(http.MethodPost, srv.URL, nil)
			if err != nil {
				t.Fatal(err)
			}
			for k, vs := range tt.headers {
				req.Header[k] = vs
			}
			resp, err := srv.Client().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != tt.want {
				t.Fatalf("status %d, want %d", resp.StatusCode, tt.want)
			}
		})
	}
}
