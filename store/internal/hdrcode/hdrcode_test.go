package hdrcode

import (
	"encoding/hex"
	"net/http"
	"reflect"
	"testing"
)

// sample has common and other names, values coded by the tables and by
// refs, a name with several values and one with none.
func sample() http.Header {
	return http.Header{
		"Content-Type": {"application/json"}, "X-Webhook-Delivery": {"del_1"},
		"X-Webhook-Attempt": {"2"}, "X-Custom": {"del_1x", "", "noa-webhook/1"}, "Webhook-Signature": {"v1,abc"},
		"Webhook-Id": {"evt_1"}, "X-Webhook-Event": {"a.b"}, "X-Webhook-Id": {"wh_1"}, "Vary": {},
	}
}

var sampleRefs = []string{"del_1", "evt_1", "a.b", "wh_1"}

// TestFormat pins the bytes: boltstore's files hold headers coded so, by
// releases before this package existed (these are what they wrote).
func TestFormat(t *testing.T) {
	for _, c := range []struct {
		refs []string
		want string
	}{
		{sampleRefs, "0901010512000801020a01000676312c6162630008582d437573746f6d03000664656c5f317800000e06010a050101040103030104"},
		{sampleRefs[:1], "090101021200080100056576745f310a01000676312c6162630008582d437573746f6d03000664656c5f317800000b06010705010104010003612e620301000477685f31"},
	} {
		b := Append(nil, sample(), c.refs)
		if got := hex.EncodeToString(b); got != c.want {
			t.Errorf("%d refs: coded\n%s\nwant\n%s", len(c.refs), got, c.want)
		}
		if n := Len(sample(), c.refs); n != len(b) {
			t.Errorf("%d refs: Len = %d, Append wrote %d bytes", len(c.refs), n, len(b))
		}
	}
}

func TestRoundTrip(t *testing.T) {
	for name, h := range map[string]http.Header{
		"sample":   sample(),
		"response": {"Date": {"Mon, 02 Jan 2006 15:04:05 GMT"}, "Content-Length": {"0"}, "Server": {"x"}},
		"none":     {},
		"nil":      nil,
	} {
		for how, appendFn := range map[string]func([]byte, http.Header, []string) []byte{
			"Append": Append, "AppendAnyOrder": AppendAnyOrder,
		} {
			b := appendFn([]byte("head"), h, sampleRefs)
			if n := Len(h, sampleRefs); n != len(b)-len("head") {
				t.Errorf("%s, %s: Len = %d, wrote %d bytes", name, how, n, len(b)-len("head"))
			}
			b = append(b, "tail"...)
			got, rest, ok := Read(b[len("head"):], sampleRefs)
			if !ok || string(rest) != "tail" {
				t.Fatalf("%s, %s: Read = ok %v, rest %q", name, how, ok, rest)
			}
			want := h
			if len(h) == 0 {
				want = nil // a header without names reads as nil
			}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("%s, %s: read %#v, want %#v", name, how, got, want)
			}
		}
	}
}

func TestTables(t *testing.T) {
	for _, c := range []struct {
		table table
		ss    []string
	}{{nameCode, Names}, {valueCode, Values}} {
		for i, s := range c.ss {
			if got := c.table.code(s); got != uint64(i+1) {
				t.Errorf("code(%q) = %d, want %d", s, got, i+1)
			}
			// Another string of the same length, one longer, and a prefix.
			other := "~" + s[1:]
			for _, o := range []string{other, s + "x", s[:len(s)-1]} {
				if got := c.table.code(o); got != 0 {
					t.Errorf("code(%q) = %d, want 0", o, got)
				}
			}
		}
	}
}

// TestCoded checks that what the dispatcher's attempts repeat is coded: the
// names, the refs and the common values take a byte each.
func TestCoded(t *testing.T) {
	h := http.Header{"X-Webhook-Delivery": {"del_0190a5e2-7b9c-7def-8abc-0123456789ab"}, "User-Agent": {"noa-webhook/1"}}
	refs := []string{"del_0190a5e2-7b9c-7def-8abc-0123456789ab"}
	// The count, then a name's code, its number of values and a value's
	// code, twice.
	if n := len(Append(nil, h, refs)); n != 7 {
		t.Errorf("coded in %d bytes, want 7", n)
	}
}

func TestDamaged(t *testing.T) {
	good := Append(nil, sample(), sampleRefs)
	for i := range good {
		if _, _, ok := Read(good[:i], sampleRefs); ok {
			t.Errorf("read %d of %d bytes as a whole header", i, len(good))
		}
	}
	for name, b := range map[string][]byte{
		"huge count":      {0xff, 0xff, 0xff, 0xff, 0x0f},
		"unknown name":    {1, byte(len(Names) + 1), 0},
		"unknown value":   {1, 1, 1, byte(len(sampleRefs) + len(Values) + 1)},
		"too many values": {1, 1, 9, 1},
		"value too long":  {1, 1, 1, 0, 9, 'x'},
	} {
		if h, _, ok := Read(b, sampleRefs); ok || h != nil {
			t.Errorf("%s: Read = %v, %v; want nil, false", name, h, ok)
		}
	}
	// Coded with four refs, read with one: the codes past it are unknown or
	// another's.
	if h, _, ok := Read(good, sampleRefs[:1]); ok && reflect.DeepEqual(h, sample()) {
		t.Error("a header coded with four refs read back whole with one")
	}
}

func TestGuessMatch(t *testing.T) {
	h := http.Header{"Webhook-Id": {"evt_1"}, "X-Webhook-Event": {"a.b"}, "X-Webhook-Id": {"wh_1"}}
	refs := Guess("del_1", h)
	if refs != (Refs{"del_1", "evt_1", "a.b", "wh_1"}) {
		t.Errorf("Guess = %q", refs)
	}
	if !Match(refs, "del_1", "evt_1", "a.b", "wh_1") {
		t.Error("refs do not match their delivery")
	}
	if Match(refs, "del_1", "evt_2", "a.b", "wh_1") {
		t.Error("refs match a delivery of another event")
	}
	if !Match(Guess("del_1", nil), "del_1", "evt_9", "x", "wh_9") {
		t.Error("refs of a request without the headers code only the delivery id, and match any delivery of that id")
	}
}

func FuzzRead(f *testing.F) {
	f.Add(Append(nil, sample(), sampleRefs))
	f.Fuzz(func(t *testing.T, b []byte) {
		h, _, ok := Read(b, sampleRefs)
		if !ok {
			return
		}
		// What reads, codes back to the bytes read, up to the order of
		// the names (sorted when coded) and the choice of codes.
		again, rest2, ok := Read(Append(nil, h, sampleRefs), sampleRefs)
		if !ok || len(rest2) != 0 || !reflect.DeepEqual(again, h) {
			t.Fatalf("%q read as %#v, coded again read as %#v (ok %v)", b, h, again, ok)
		}
	})
}
