package webhook

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

type orderedData struct {
	Zeta  string         `json:"zeta"`
	Alpha string         `json:"alpha"`
	N     int64          `json:"n"`
	F     float64        `json:"f"`
	Inner map[string]any `json:"inner"`
}

var canonicalCases = []struct {
	name string
	in   any
	want string
}{
	{"nil", nil, `{}`},
	{"html", map[string]string{"s": "<script>&</script>"}, `{"s":"<script>&</script>"}`},
	{"emoji", "😀 é €", `"😀 é €"`},
	{"line separators", "a\u2028b\u2029c", "\"a\u2028b\u2029c\""},
	{"escaped backslash before u2028", json.RawMessage(`"\\u2028"`), `"\\u2028"`},
	{"escaped u2028", json.RawMessage(`"\u2028"`), "\"\u2028\""},
	{"controls", "\x00\x01\b\f\n\r\t\x1f\x7f", `"\u0000\u0001\b\f\n\r\t\u001f` + "\x7f\""},
	{"quotes", `"\`, `"\"\\"`},
	{"solidus", json.RawMessage(`"\/"`), `"/"`},
	{"surrogate pair escape", json.RawMessage(`"\ud83d\ude00"`), `"😀"`},
	{"lone high surrogate", json.RawMessage(`"\uD800x"`), `"\ud800x"`},
	{"lone low surrogate", json.RawMessage(`"\uDC00"`), `"\udc00"`},
	{"uppercase escape", json.RawMessage(`"\u00E9\u001F"`), `"é\u001f"`},
	{"struct order kept", orderedData{Zeta: "z", Alpha: "a", N: 9007199254740991, F: 1.5, Inner: map[string]any{"b": 1, "a": 2}},
		`{"zeta":"z","alpha":"a","n":9007199254740991,"f":1.5,"inner":{"a":2,"b":1}}`},
	{"float integral", 1.0, `1`},
	{"big float", 1e21, `1e+21`},
	{"below big", 1e20, `100000000000000000000`},
	{"small", 1e-7, `1e-7`},
	{"micro", 0.000001, `0.000001`},
	{"negative zero", json.RawMessage(`-0`), `0`},
	{"negative zero float", json.RawMessage(`-0.0e5`), `0`},
	{"fraction", 0.1, `0.1`},
	{"third", 1.0 / 3, `0.3333333333333333`},
	{"exponent input", json.RawMessage(`[1E3,1.5e-10,-2.50,12345678901234567890,1e-400,5e-324]`),
		`[1000,1.5e-10,-2.5,12345678901234567000,0,5e-324]`},
	{"beyond 2^53", json.RawMessage(`9007199254740993`), `9007199254740992`},
	{"max float", math.MaxFloat64, `1.7976931348623157e+308`},
	{"integer-like keys", json.RawMessage(`{"b":1,"10":2,"a":3,"2":4,"01":5,"4294967295":6,"4294967294":7,"-1":8}`),
		`{"2":4,"10":2,"4294967294":7,"b":1,"a":3,"01":5,"4294967295":6,"-1":8}`},
	{"duplicate keys", json.RawMessage(`{"a":1,"b":2,"a":3}`), `{"a":3,"b":2}`},
	{"duplicate integer keys", json.RawMessage(`{"1":1,"x":{"k":1,"k":[2]},"1":3,"0":0}`), `{"0":0,"1":3,"x":{"k":[2]}}`},
	{"duplicate escaped key", json.RawMessage(`{"é":1,"\u00e9":2}`), `{"é":2}`},
	{"whitespace", json.RawMessage(" {\n\t\"a\" : [ 1 , true , null , false , { } , [ ] ] } "), `{"a":[1,true,null,false,{},[]]}`},
	{"invalid utf8 raw", json.RawMessage("\"a\xffb\xe2\x82\""), "\"a\ufffdb\ufffd\ufffd\""},
	{"invalid utf8 string", "a\xffb", "\"a\ufffdb\""},
	{"bytes as JSON", []byte(`{"x":1.0}`), `{"x":1}`},
}

func TestCanonicalJSON(t *testing.T) {
	t.Parallel()
	for _, tc := range canonicalCases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got, err := CanonicalJSON(tc.in)
			if err != nil {
				t.Fatalf("CanonicalJSON: %v", err)
			}
			if string(got) != tc.want {
				t.Errorf("CanonicalJSON =\n %s\nwant\n %s", got, tc.want)
			}
			if !json.Valid(got) {
				t.Errorf("output is not valid JSON: %s", got)
			}
			again, err := CanonicalJSON(json.RawMessage(got))
			if err != nil || !bytes.Equal(again, got) {
				t.Errorf("not idempotent: %s -> %s (%v)", got, again, err)
			}
		})
	}
}

// largeObject returns an object of n string keys and n integer-like keys,
// interleaved, then duplicates of the third of each.
func largeObject(n int) string {
	var b strings.Builder
	b.WriteString("{")
	for i := range n {
		fmt.Fprintf(&b, `"k%d":%d,"%d":"v%d",`, i, i, n-i, i)
	}
	fmt.Fprintf(&b, `"k2":"last","%d":"last"}`, n-2)
	return b.String()
}

func TestCanonicalJSONLargeObject(t *testing.T) {
	t.Parallel()
	got, err := CanonicalJSON(json.RawMessage(largeObject(40)))
	if err != nil {
		t.Fatal(err)
	}
	var want strings.Builder
	want.WriteString("{")
	for i := 1; i <= 40; i++ {
		v := fmt.Sprintf(`"v%d"`, 40-i)
		if i == 38 {
			v = `"last"`
		}
		fmt.Fprintf(&want, `"%d":%s,`, i, v)
	}
	for i := range 40 {
		v := fmt.Sprint(i)
		if i == 2 {
			v = `"last"`
		}
		fmt.Fprintf(&want, `"k%d":%s,`, i, v)
	}
	w := strings.TrimSuffix(want.String(), ",") + "}"
	if string(got) != w {
		t.Errorf("got\n %s\nwant\n %s", got, w)
	}
	// Many distinct keys stay linear: 50,000 keys well inside a second.
	var big strings.Builder
	big.WriteString("{")
	for i := range 50000 {
		fmt.Fprintf(&big, `"key%d":0,`, i)
	}
	big.WriteString(`"key0":1}`)
	if _, err := CanonicalJSON(json.RawMessage(big.String())); err != nil {
		t.Fatal(err)
	}
}

func TestCanonicalJSONErrors(t *testing.T) {
	t.Parallel()
	ch := make(chan int)
	if _, err := CanonicalJSON(ch); err == nil {
		t.Error("channel: no error")
	}
	var uve *json.UnsupportedValueError
	if _, err := CanonicalJSON(math.Inf(1)); !errors.As(err, &uve) {
		t.Errorf("Inf: err = %v, want *json.UnsupportedValueError", err)
	}
	for _, in := range []string{``, `{`, `{"a"}`, `{"a":}`, `[1,]`, `01`, `1.`, `-`, `1e`, `"\x"`, `"\u12"`, "\"a\nb\"", `{} x`, `tru`, `{1:2}`, `"abc`, `[1 2]`,
		`1e400`, `{"y":-1e999}`, `[` + strings.Repeat("9", 400) + `]`} {
		if _, err := CanonicalJSON(json.RawMessage(in)); !errors.Is(err, ErrInvalidJSON) {
			t.Errorf("CanonicalJSON(%q) err = %v, want ErrInvalidJSON", in, err)
		}
	}
	deep := strings.Repeat("[", maxJSONDepth+1) + strings.Repeat("]", maxJSONDepth+1)
	if _, err := CanonicalJSON(json.RawMessage(deep)); !errors.Is(err, ErrInvalidJSON) {
		t.Errorf("deep nesting: err = %v, want ErrInvalidJSON", err)
	}
}

func TestAppendJSONString(t *testing.T) {
	for in, want := range map[string]string{
		"plain":             `"plain"`,
		"<&>":               `"<&>"`,
		"\u2028\u2029":      "\"\u2028\u2029\"",
		"\x00\x1f\"\\\n":    `"\u0000\u001f\"\\\n"`,
		"\xff":              "\"\ufffd\"",
		"evt_😀":             `"evt_😀"`,
		"":                  `""`,
		"tab\there\u007fok": "\"tab\\there\x7fok\"",
	} {
		if got := string(appendJSONString(nil, in)); got != want {
			t.Errorf("appendJSONString(%q) = %s, want %s", in, got, want)
		}
	}
	buf := make([]byte, 0, 256)
	if n := testing.AllocsPerRun(100, func() { buf = appendJSONString(buf[:0], "evt_\u2028<x>\n😀") }); n != 0 {
		t.Errorf("appendJSONString allocates %v times, want 0", n)
	}
}

func TestAppendBody(t *testing.T) {
	t.Parallel()
	ts := time.Date(2025, 10, 22, 10, 0, 0, 0, time.FixedZone("X", 3600))
	got := string(appendBody(nil, "evt_123", "workflow.completed", ts, "wh_456", []byte(`{"a":1}`), "req_<1>"))
	want := `{"id":"evt_123","event":"workflow.completed","timestamp":"2025-10-22T09:00:00Z","webhookId":"wh_456","data":{"a":1},"metadata":{"apiVersion":"v1","requestId":"req_<1>"}}`
	if got != want {
		t.Errorf("appendBody =\n %s\nwant\n %s", got, want)
	}
}

// TestCanonicalJSONMatchesNode compares CanonicalJSON with
// JSON.stringify(JSON.parse(x)) as run by node, byte for byte.
func TestCanonicalJSONMatchesNode(t *testing.T) {
	node, err := exec.LookPath("node")
	if err != nil {
		t.Skip("node not found in PATH: skipping the comparison with JSON.stringify")
	}
	var inputs, wants [][]byte
	for _, tc := range canonicalCases {
		if strings.HasPrefix(tc.name, "invalid utf8") {
			continue // JS decoders may merge invalid sequences differently
		}
		var src []byte
		switch v := tc.in.(type) {
		case nil:
			continue
		case json.RawMessage:
			src = v
		case []byte:
			src = v
		default:
			src, _ = json.Marshal(v)
		}
		got, err := CanonicalJSON(tc.in)
		if err != nil {
			t.Fatal(err)
		}
		inputs = append(inputs, src)
		wants = append(wants, got)
	}
	for _, d := range []any{
		orderedData{Alpha: "<a href='x'>&amp;</a>", Inner: map[string]any{"10": 1, "9": 2, "z": []any{1.25, math.Copysign(0, -1), 1e-6, 123456789.125}}},
		map[string]any{"k\u2028": "v\u2029", "2": 2, "1": 1, "\x00": "\x1b"},
		json.RawMessage(largeObject(40)),
		[]float64{1e21, 1e-7, 1.7976931348623157e308, 4.9e-324, 0.1 + 0.2, 100, 1e300 * 1e8 / 1e8},
	} {
		src, _ := json.Marshal(d)
		got, err := CanonicalJSON(d)
		if err != nil {
			t.Fatal(err)
		}
		inputs = append(inputs, src)
		wants = append(wants, got)
	}
	// One JSON string per line: the input text, JSON-encoded so newlines and
	// all else survive.
	var file bytes.Buffer
	for _, in := range inputs {
		line, _ := json.Marshal(string(in))
		file.Write(line)
		file.WriteByte('\n')
	}
	path := filepath.Join(t.TempDir(), "in.txt")
	if err := os.WriteFile(path, file.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	script := `const fs=require('fs');const out=[];for(const l of fs.readFileSync(process.argv[1],'utf8').split('\n')){if(l==='')continue;out.push(JSON.stringify(JSON.parse(JSON.parse(l))));}process.stdout.write(JSON.stringify(out));`
	out, err := exec.Command(node, "-e", script, path).Output()
	if err != nil {
		t.Fatalf("node: %v", err)
	}
	var got []string
	if err := json.Unmarshal(out, &got); err != nil {
		t.Fatalf("node output: %v", err)
	}
	if len(got) != len(wants) {
		t.Fatalf("node returned %d results, want %d", len(got), len(wants))
	}
	for i := range wants {
		if got[i] != string(wants[i]) {
			t.Errorf("input %s:\n node: %s\n   go: %s", inputs[i], got[i], wants[i])
		}
	}
}

func FuzzCanonicalJSON(f *testing.F) {
	for _, tc := range canonicalCases {
		if raw, ok := tc.in.(json.RawMessage); ok {
			f.Add([]byte(raw))
		}
	}
	f.Add([]byte(`{"a":{"1":[1e21,"\u2028"]},"a":null}`))
	f.Fuzz(func(t *testing.T, in []byte) {
		out, err := CanonicalJSON(json.RawMessage(in))
		if err != nil {
			if json.Valid(in) && !errors.Is(err, ErrInvalidJSON) {
				t.Fatalf("unexpected error type: %v", err)
			}
			return
		}
		if !json.Valid(in) {
			t.Fatalf("accepted invalid JSON %q", in)
		}
		if !json.Valid(out) {
			t.Fatalf("output is not valid JSON: %q", out)
		}
		again, err := CanonicalJSON(json.RawMessage(out))
		if err != nil || !bytes.Equal(again, out) {
			t.Fatalf("not idempotent:\n%q\n%q (%v)", out, again, err)
		}
	})
}

type benchData struct {
	WorkflowID  string    `json:"workflowId"`
	ExecutionID string    `json:"executionId"`
	Name        string    `json:"name"`
	Status      string    `json:"status"`
	Duration    int64     `json:"duration"`
	StartedAt   time.Time `json:"startedAt"`
	Tags        []string  `json:"tags"`
}

func BenchmarkCanonicalJSON(b *testing.B) {
	d := benchData{"wf_789", "exec_abc", "Data Processing Pipeline", "success", 45000,
		time.Date(2025, 10, 22, 9, 59, 15, 0, time.UTC), []string{"a", "b", "c"}}
	b.Run("struct", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := CanonicalJSON(d); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("json.Marshal", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := json.Marshal(d); err != nil {
				b.Fatal(err)
			}
		}
	})
	raw := json.RawMessage(`{"b":1.50,"10":2,"a":"<x>\u2028","2":[1e21,0.1],"a":3}`)
	b.Run("raw reorder", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := CanonicalJSON(raw); err != nil {
				b.Fatal(err)
			}
		}
	})
}

func BenchmarkAppendBody(b *testing.B) {
	data := []byte(`{"workflowId":"wf_789","status":"success","duration":45000}`)
	ts := time.Date(2025, 10, 22, 10, 0, 0, 0, time.UTC)
	buf := make([]byte, 0, 512)
	b.ReportAllocs()
	for b.Loop() {
		buf = appendBody(buf[:0], "evt_0192f3a4-5b6c-7d8e-9f00-112233445566", "workflow.completed", ts, "wh_0192f3a4-5b6c-7d8e-9f00-112233445566", data, "req_12345")
	}
}

// bodySize is an upper bound of appendBody's output when nothing needs
// escaping, so Emit's buffer is not grown.
func TestBodySize(t *testing.T) {
	ts := time.Date(2026, 11, 29, 7, 0, 0, 0, time.UTC)
	for _, req := range []string{"", "req_123"} {
		data := []byte(`{"workflowId":"wf_1","status":"completed"}`)
		got := len(appendBody(nil, "evt_01J", EventWorkflowCompleted, ts, "wh_0193", data, req))
		if max := bodySize("evt_01J", EventWorkflowCompleted, "wh_0193", data, req); got > max || got < max-32 {
			t.Errorf("body of %d bytes, bodySize %d", got, max)
		}
	}
}

// TestCanonicalJSONAllocatesItsOutputOnly pins CanonicalJSON's cost for an
// event's data already in order: one allocation, the output. (A member
// stack local to the function moved to the heap on every call, 640 bytes.)
func TestCanonicalJSONAllocatesItsOutputOnly(t *testing.T) {
	// Boxed once, as Event.Data is: boxing a slice allocates too.
	var data any = json.RawMessage(`{"workflowId":"wf_789","executionId":"exec_abc","status":"completed","duration":45000,"steps":[{"name":"fetch","ok":true},{"name":"store","ok":true}],"output":{"rows":1200}}`)
	if _, err := CanonicalJSON(data); err != nil {
		t.Fatal(err)
	}
	if n := testing.AllocsPerRun(100, func() { _, _ = CanonicalJSON(data) }); n != 1 {
		t.Errorf("CanonicalJSON made %v allocations, want 1 (its output)", n)
	}
}
