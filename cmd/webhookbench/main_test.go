package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"os"
	"os/signal"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/jackc/pgx/v5"
	"go.uber.org/goleak"

	"github.com/noa-server/webhook"
	"github.com/noa-server/webhook/store/memstore"
)

// childEnv makes the test binary act as webhookbench when the bench re-runs
// it as a child process.
const childEnv = "WEBHOOKBENCH_TEST_CHILD=1"

func TestMain(m *testing.M) {
	if os.Getenv("WEBHOOKBENCH_TEST_CHILD") == "1" {
		// As main: an interrupt ends the scenario early.
		ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
		code := run(ctx, os.Args[1:], os.Stdout, os.Stderr, nil)
		stop()
		os.Exit(code)
	}
	code := m.Run()
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintln(os.Stderr, "goleak:", err)
			code = 1
		}
	}
	os.Exit(code)
}

// runBench runs the command with args and returns its exit code, stdout and
// stderr.
func runBench(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	// One round unless the test asks for more: the default's three would
	// only make the tests slower.
	code := run(ctx, append([]string{"-rounds", "1"}, args...), &stdout, &stderr, []string{childEnv})
	return code, stdout.String(), stderr.String()
}

// TestEveryScenario runs each scenario briefly, each in its child process as
// a real run does, and checks that each measured what it claims.
func TestEveryScenario(t *testing.T) {
	// The default list, which skips pg without -pg.
	scenarios := strings.Join(allScenarios, ",")
	// -nosync: on a shared disk one fsync can stall longer than a 300 ms
	// window, and this test checks the bench, not the disk.
	args := []string{"-duration", "300ms", "-warmup", "100ms",
		"-concurrency", "8", "-backlog", "2000", "-attempt-timeout", "500ms", "-nosync", "-json", "-quiet"}
	got := map[string]*result{}
	tables := map[string]string{} // the table on stderr that shows each
	bench := func(args ...string) {
		code, stdout, stderr := runBench(t, args...)
		if code != 0 {
			t.Fatalf("exit code %d; stderr:\n%s", code, stderr)
		}
		var rep report
		if err := json.Unmarshal([]byte(stdout), &rep); err != nil {
			t.Fatalf("stdout is not the JSON report: %v\n%s", err, stdout)
		}
		if rep.Concurrency != 8 || rep.Emitters != 8 || rep.Backlog != 2000 || rep.NumCPU < 1 {
			t.Errorf("report settings = concurrency %d, emitters %d, backlog %d, numCPU %d", rep.Concurrency, rep.Emitters, rep.Backlog, rep.NumCPU)
		}
		for _, r := range rep.Results {
			got[r.Scenario], tables[r.Scenario] = r, stderr
		}
	}
	// Without -pg, the pg scenario is skipped.
	bench(args...)
	if r := got["pg"]; r != nil && (!strings.Contains(r.Note, "skipped") || r.Count != 0) {
		t.Errorf("pg without a URL: note %q, count %d; want a skip", r.Note, r.Count)
	}
	pgURL := os.Getenv("WEBHOOK_TEST_POSTGRES_URL")
	if pgURL != "" {
		// pg again, with raw for its ratio, in a run of its own: 300 ms is
		// too short for a PostgreSQL that other tests keep busy. And in a
		// schema of its own: two runs sharing one would each match the
		// other's webhooks (same tenant) and deliver to the other's
		// receiver.
		schema := fmt.Sprintf("webhookbench_test_%d", os.Getpid())
		t.Cleanup(func() { dropSchema(t, pgURL, schema) })
		pgArgs := slices.Clone(args)
		pgArgs[1], pgArgs[3] = "2s", "500ms"
		bench(append(pgArgs, "-scenarios", "raw,pg", "-pg", pgURL, "-pg-schema", schema)...)
	} else {
		t.Log("WEBHOOK_TEST_POSTGRES_URL not set: the pg scenario is checked without a URL only")
		delete(got, "pg")
	}
	for _, name := range strings.Split(scenarios, ",") {
		r := got[name]
		if r == nil {
			if name != "pg" || pgURL != "" {
				t.Errorf("%s: no result", name)
			}
			continue
		}
		if !strings.Contains(tables[name], name) {
			t.Errorf("%s: missing from the table on stderr:\n%s", name, tables[name])
		}
		if r.Error != "" {
			t.Errorf("%s: error %s", name, r.Error)
			continue
		}
		if r.Count <= 0 || r.PerSec <= 0 || r.Seconds <= 0 {
			t.Errorf("%s: count %d in %.3fs (%.0f/s); want some", name, r.Count, r.Seconds, r.PerSec)
		}
		if r.Errors != 0 {
			t.Errorf("%s: %d errors (%s)", name, r.Errors, r.Note)
		}
		if r.P50Ms <= 0 || r.P99Ms < r.P50Ms {
			t.Errorf("%s: p50 %.3f ms, p99 %.3f ms; want 0 < p50 <= p99", name, r.P50Ms, r.P99Ms)
		}
		if r.PeakRSS < 1<<20 || !strings.HasPrefix(r.RSSScope, "child process") {
			t.Errorf("%s: peak RSS %d bytes, scope %q; want a child's peak", name, r.PeakRSS, r.RSSScope)
		}
		if comparable := !slices.Contains(noRatio, name); name != "raw" && (r.Ratio > 0) != comparable {
			t.Errorf("%s: ratio to raw %.3f; want one only where comparable (%v)", name, r.Ratio, comparable)
		}
		// At most a second of processor time per delivery or event on a
		// machine with a few processors: anything else is a unit mistake.
		if cpuTime() > 0 && (r.CPUMicros <= 0 || r.CPUMicros > 1e6) {
			t.Errorf("%s: %.1f CPU µs per %s; want a positive figure", name, r.CPUMicros, r.Unit)
		}
	}
	if r := got["mem"]; cpuTime() > 0 && r != nil && r.Error == "" && r.Extra["cpuRatioToRaw"] <= 0 {
		t.Errorf("mem: no cpuRatioToRaw in %v", r.Extra)
	}
	if r := got["raw"]; r != nil && r.Ratio != 1 {
		t.Errorf("raw ratio = %v, want 1", r.Ratio)
	}
	for _, name := range []string{"mem", "bolt", "emit", "hung", "backlog"} {
		if r := got[name]; r != nil && r.Error == "" && r.Target == nil {
			t.Errorf("%s: no target judged", name)
		}
	}
	if r := got["backlog"]; r != nil && r.Error == "" {
		if r.Count != 2000 {
			t.Errorf("backlog: %d deliveries received while draining, want 2000", r.Count)
		}
		if r.Extra["fillSeconds"] <= 0 || r.Extra["drainSeconds"] <= 0 {
			t.Errorf("backlog extra = %v; want fill and drain times", r.Extra)
		}
	}
	if r := got["hung"]; r != nil && r.Error == "" {
		if r.Extra["hungRequests"] < 1 {
			t.Errorf("hung: the hung endpoint got %v requests, want some", r.Extra["hungRequests"])
		}
		if r.Target == nil || r.Target.Metric != "ratioToFanout" {
			t.Errorf("hung target = %+v, want a ratio to fanout", r.Target)
		}
	}
	// A library scenario counts the receipts of its measured window alone:
	// fewer than the dispatcher's successes, which include the warm-up's
	// and the drain after the window, and never the hung endpoint's
	// requests nor a delivery twice.
	for _, name := range []string{"mem", "bolt", "fanout", "hung", "pg"} {
		if r := got[name]; r != nil && r.Error == "" && float64(r.Count) >= r.Extra["succeeded"] {
			t.Errorf("%s: counted %d deliveries of %v successes; want only the measured window's", name, r.Count, r.Extra["succeeded"])
		}
	}
	if r := got["fanout"]; r != nil && r.Error == "" && r.Extra["emitted"] < 10 {
		t.Errorf("fanout emitted %v deliveries, want 10 per event", r.Extra["emitted"])
	}
	if r := got["emit"]; r != nil && r.Unit != "events" {
		t.Errorf("emit unit = %q, want events", r.Unit)
	}
	// The scenarios on boltstore report its writer over the window; the
	// others have none.
	for name, r := range got {
		if r.Error != "" {
			continue
		}
		busy, ok := r.Extra["boltWriterBusy"]
		if onBolt := r.Store == "boltstore"; ok != onBolt {
			t.Errorf("%s on %q: boltWriterBusy present = %v", name, r.Store, ok)
			continue
		}
		// Busy counts the commit in progress up to each reading, so it can
		// only exceed the window by the readings' own rounding.
		if ok && (busy <= 0 || busy > 1.01 || r.Extra["boltCallsPerCommit"] < 1 || r.Extra["boltPageWritesPerUnit"] <= 0 ||
			r.Extra["boltWriteShare"] <= 0 || r.Extra["boltWriteShare"] > 1) {
			t.Errorf("%s: bolt figures %v; want a busy share in (0, 1], at least a call per commit, pages written, a write share in (0, 1]", name, r.Extra)
		}
	}
}

// TestInProcessTable runs the ceiling in this process, with the table on
// stdout, as a quick look does.
func TestInProcessTable(t *testing.T) {
	code, stdout, stderr := runBench(t, "-scenarios", "raw", "-duration", "200ms", "-concurrency", "4", "-inprocess")
	if code != 0 {
		t.Fatalf("exit code %d; stderr:\n%s", code, stderr)
	}
	for _, want := range []string{"scenario", "raw", "deliveries", "1.00"} {
		if !strings.Contains(stdout, want) {
			t.Errorf("table lacks %q:\n%s", want, stdout)
		}
	}
	if !strings.Contains(stderr, "\r") {
		t.Errorf("no progress line on stderr: %q", stderr)
	}
}

// TestInProcessRSSScope: in one process, the backlog's peak RSS is its
// drain phase's (it resets VmHWM after the fill), and the scope says so
// rather than "every scenario so far"; the scenarios after it report a peak
// from that reset on.
func TestInProcessRSSScope(t *testing.T) {
	code, stdout, stderr := runBench(t, "-scenarios", "backlog", "-backlog", "200", "-nosync", "-inprocess", "-json", "-quiet")
	if code != 0 {
		t.Fatalf("exit code %d; stderr:\n%s", code, stderr)
	}
	var rep report
	if err := json.Unmarshal([]byte(stdout), &rep); err != nil {
		t.Fatalf("stdout is not the JSON report: %v\n%s", err, stdout)
	}
	r := rep.find("backlog")
	if r == nil || r.Error != "" {
		t.Fatalf("backlog result = %+v", r)
	}
	// Where VmHWM cannot be reset, the peak is the process's, as labelled.
	if resetPeakRSS() && (!strings.Contains(r.RSSScope, "drain") || strings.Contains(r.RSSScope, "every scenario so far")) {
		t.Errorf("backlog RSS scope = %q; want its drain phase", r.RSSScope)
	}
	for _, c := range []struct {
		r     *result
		reset bool
		want  string
	}{
		{&result{}, false, "every scenario so far"},
		{&result{}, true, "since"},
		{&result{hwmReset: true}, false, "drain"},
		{&result{hwmReset: true}, true, "drain"},
	} {
		if got := inProcessScope(c.r, c.reset); !strings.Contains(got, c.want) || strings.HasPrefix(got, "child") {
			t.Errorf("inProcessScope(reset by the result %v, earlier %v) = %q; want %q in it", c.r.hwmReset, c.reset, got, c.want)
		}
	}
}

// TestHungNeedsFanout checks that hung brings its all-healthy baseline.
func TestHungNeedsFanout(t *testing.T) {
	o, err := parseFlags([]string{"-scenarios", "hung"}, &bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(o.selected(), ","); got != "fanout,hung" {
		t.Errorf("selected = %s, want fanout,hung", got)
	}
	o, err = parseFlags([]string{"-scenarios", "backlog,raw,raw"}, &bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(o.selected(), ","); got != "raw,backlog" {
		t.Errorf("selected = %s, want raw,backlog", got)
	}
	rep := &report{Results: []*result{
		{Scenario: "raw", PerSec: 1000, Count: 1},
		{Scenario: "fanout", PerSec: 800, Count: 1},
		{Scenario: "hung", PerSec: 700, Count: 1},
	}}
	rep.judge()
	h := rep.find("hung")
	if h.Target == nil || math.Abs(h.Target.Value-0.875) > 1e-9 || h.Target.Met {
		t.Errorf("hung target = %+v, want 0.875 of fanout, missed", h.Target)
	}
	if got := h.Extra["perEndpointRatioToFanout"]; math.Abs(got-(700.0/9)/(800.0/10)) > 1e-9 {
		t.Errorf("hung per-endpoint ratio = %v, want (700/9)/(800/10)", got)
	}
	if math.Abs(h.Ratio-0.7) > 1e-9 {
		t.Errorf("hung ratio to raw = %v, want 0.7", h.Ratio)
	}
}

// TestEmittersFlag: -emitters sets how many goroutines call Emit, apart
// from -concurrency. With one, no two Enqueues can share a commit, so every
// commit of the emit scenario holds exactly one call; with eight (the
// default, as many as -concurrency) they do share. The library scenarios
// start their emitters the same way (goEmitters).
func TestEmittersFlag(t *testing.T) {
	callsPerCommit := func(extra ...string) float64 {
		t.Helper()
		args := append([]string{"-scenarios", "emit", "-duration", "300ms", "-warmup", "100ms",
			"-concurrency", "8", "-nosync", "-json", "-quiet"}, extra...)
		code, stdout, stderr := runBench(t, args...)
		if code != 0 {
			t.Fatalf("%q: exit code %d; stderr:\n%s", args, code, stderr)
		}
		var rep report
		if err := json.Unmarshal([]byte(stdout), &rep); err != nil || len(rep.Results) != 1 {
			t.Fatalf("%q: report %v, err %v", args, stdout, err)
		}
		want := 8
		if len(extra) > 0 {
			want = 1
		}
		if rep.Emitters != want || !strings.Contains(stderr, fmt.Sprintf("emitters %d,", want)) {
			t.Errorf("%q: report says %d emitters, table:\n%s", args, rep.Emitters, stderr)
		}
		r := rep.Results[0]
		if r.Count == 0 {
			t.Fatalf("%q: nothing emitted: %+v", args, r)
		}
		return r.Extra["boltCallsPerCommit"]
	}
	if got := callsPerCommit("-emitters", "1"); got != 1 {
		t.Errorf("one emitter: %v calls a commit, want 1", got)
	}
	if got := callsPerCommit(); got <= 1 {
		t.Errorf("eight emitters: %v calls a commit, want more than 1", got)
	}
}

func TestBadFlags(t *testing.T) {
	for _, args := range [][]string{
		{"-duration", "0s"},
		{"-scenarios", "raw,nope"},
		{"-scenarios", ","},
		{"-fanout-store", "sqlite"},
		{"-fanout-store", "pg"}, // without -pg
		{"-concurrency", "0"},
		{"-emitters", "-1"},
		{"-backlog", "-1"},
		{"extra"},
		// The library refuses an attempt timeout below 1 ms: every
		// library scenario would fail.
		{"-scenarios", "mem", "-duration", "100ms", "-attempt-timeout", "500us"},
		// An empty schema is pgstore's default, "webhook": the bench
		// would delete its tenant's webhooks there.
		{"-scenarios", "raw", "-duration", "100ms", "-pg", "postgres://127.0.0.1:1/none", "-pg-schema", ""},
		// Asked for by name, as -fanout-store pg, pg needs -pg.
		{"-scenarios", "pg"},
	} {
		code, _, stderr := runBench(t, args...)
		if code != 2 || !strings.Contains(stderr, "webhookbench") && !strings.Contains(stderr, "invalid") {
			t.Errorf("%q: exit %d, stderr %q; want 2 and a message", args, code, stderr)
		}
	}
}

// TestRoundsDefault: a run that does not say how many rounds runs three and
// reports each scenario's median, as the README's first command does.
func TestRoundsDefault(t *testing.T) {
	var stdout, stderr bytes.Buffer
	code := run(t.Context(), []string{"-scenarios", "raw", "-duration", "100ms", "-warmup", "0",
		"-concurrency", "2", "-inprocess", "-json", "-quiet"}, &stdout, &stderr, []string{childEnv})
	if code != 0 {
		t.Fatalf("exit code %d; stderr:\n%s", code, stderr.String())
	}
	var rep report
	if err := json.Unmarshal(stdout.Bytes(), &rep); err != nil {
		t.Fatal(err)
	}
	if rep.Rounds != 3 || len(rep.Results) != 1 {
		t.Fatalf("rounds %d, %d results; want 3 rounds, one result", rep.Rounds, len(rep.Results))
	}
	if r := rep.Results[0]; r.Extra["rounds"] != 3 {
		t.Errorf("raw's extras %v; want the rounds it is the median of", r.Extra)
	}
	if !strings.Contains(stderr.String(), "median of 3 rounds") {
		t.Errorf("the table does not say it shows medians:\n%s", stderr.String())
	}
}

// TestWarmupFlag: -warmup 0 asks for no warm-up; only a -warmup left out
// takes the default, and the child is given the parent's figure.
func TestWarmupFlag(t *testing.T) {
	for _, c := range []struct {
		args []string
		want time.Duration
	}{
		{[]string{"-duration", "3s"}, 300 * time.Millisecond},
		{[]string{"-duration", "30s"}, time.Second},
		{[]string{"-duration", "3s", "-warmup", "0"}, 0},
		{[]string{"-duration", "3s", "-warmup", "2s"}, 2 * time.Second},
	} {
		o, err := parseFlags(c.args, io.Discard)
		if err != nil {
			t.Fatalf("%q: %v", c.args, err)
		}
		if o.Warmup != c.want {
			t.Errorf("%q: warmup %v, want %v", c.args, o.Warmup, c.want)
		}
		child, err := parseFlags(o.childArgs("raw"), io.Discard)
		if err != nil {
			t.Fatalf("%q: child: %v", c.args, err)
		}
		if child.Warmup != c.want {
			t.Errorf("%q: the child's warmup is %v, want %v", c.args, child.Warmup, c.want)
		}
	}
}

// TestPairedRatios: over several rounds, a ratio is the median of the
// rounds' own ratios, each scenario over the raw (or fanout) run of its
// round, not the ratio of two medians that may come from different
// rounds; emit and backlog get no ratio to raw.
func TestPairedRatios(t *testing.T) {
	run := func(name string, perSec ...float64) []*result {
		var rs []*result
		for _, p := range perSec {
			rs = append(rs, &result{Scenario: name, PerSec: p, Count: 1})
		}
		return rs
	}
	// The machine slows down round by round, and mem and hung stumble in
	// the second: their median runs (300 and 100) are from that round,
	// raw's and fanout's (600 and 200) too, but the typical ratio is 0.8
	// and 0.95, not 0.5.
	raw := run("raw", 1000, 600, 300)
	mem := run("mem", 900, 300, 240)
	fanout := run("fanout", 500, 200, 100)
	hung := run("hung", 475, 100, 95)
	if got := pairedMedian(mem, raw, perSecond); math.Abs(got-0.8) > 1e-9 {
		t.Errorf("paired mem/raw = %v, want 0.8", got)
	}
	rep := &report{}
	for _, rs := range [][]*result{raw, mem, fanout, hung, run("emit", 30000, 20000, 25000), run("backlog", 9000, 8000, 7000)} {
		rep.Results = append(rep.Results, aggregate(rs, raw, fanout))
	}
	rep.judge()
	if m := rep.find("mem"); math.Abs(m.Ratio-0.8) > 1e-9 || !m.Target.Met {
		t.Errorf("mem ratio %v, target %+v; want 0.8, met", m.Ratio, m.Target)
	}
	// The rounds' own ratios were 0.9, 0.5 and 0.8.
	if m := rep.find("mem"); math.Abs(m.Extra["minRatioToRaw"]-0.5) > 1e-9 || math.Abs(m.Extra["maxRatioToRaw"]-0.9) > 1e-9 {
		t.Errorf("mem's extras %v; want minRatioToRaw 0.5 and maxRatioToRaw 0.9", m.Extra)
	}
	for _, name := range []string{"raw", "emit", "backlog"} {
		if r := rep.find(name); r.Extra["minRatioToRaw"] != 0 || r.Extra["maxRatioToRaw"] != 0 {
			t.Errorf("%s's extras %v; want no range of ratios to raw", name, r.Extra)
		}
	}
	if h := rep.find("hung"); math.Abs(h.Target.Value-0.95) > 1e-9 {
		t.Errorf("hung/fanout %v, want 0.95", h.Target.Value)
	}
	// Per endpoint (9 healthy against 10), from the same paired ratio.
	if h := rep.find("hung"); math.Abs(h.Extra["perEndpointRatioToFanout"]-0.95*10/9) > 1e-9 {
		t.Errorf("hung per-endpoint ratio to fanout %v, want 0.95 x 10/9", h.Extra["perEndpointRatioToFanout"])
	}
	for _, name := range []string{"emit", "backlog"} {
		if r := rep.find(name); r.Ratio != 0 {
			t.Errorf("%s has a ratio to raw, %v: it measures something else", name, r.Ratio)
		}
	}
	if pairedMedian(run("mem", 800), run("raw", 1000), perSecond) != 0 {
		t.Error("one round gave a paired median")
	}
}

func TestHistogram(t *testing.T) {
	var h histogram
	if h.quantile(0.5) != 0 {
		t.Errorf("empty quantile = %v, want 0", h.quantile(0.5))
	}
	// 1..100000 µs uniformly: p50 is 50 ms, p99 is 99 ms.
	for i := int64(1); i <= 100_000; i++ {
		h.record(i * 1000)
	}
	for _, c := range []struct {
		q    float64
		want time.Duration
	}{{0.5, 50 * time.Millisecond}, {0.99, 99 * time.Millisecond}, {1, 100 * time.Millisecond}} {
		got := h.quantile(c.q)
		if rel := math.Abs(float64(got-c.want)) / float64(c.want); rel > 0.035 {
			t.Errorf("quantile(%v) = %v, want %v within 3.5%%", c.q, got, c.want)
		}
	}
	prev := -1
	for _, v := range []int64{0, 1, 31, 32, 33, 63, 64, 1000, 1 << 40, math.MaxInt64} {
		b := bucketOf(v)
		if b <= prev && v > 0 {
			t.Errorf("bucketOf(%d) = %d, not above the previous %d", v, b, prev)
		}
		prev = b
		if mid := bucketMid(b); v < 1<<40 && math.Abs(float64(mid-v)) > float64(v)/16+1 {
			t.Errorf("bucketMid(bucketOf(%d)) = %d, more than 1/16 away", v, mid)
		}
	}
}

func TestEventDataCarriesEmitTime(t *testing.T) {
	for _, size := range []int{0, 256, 4096} {
		data := eventData(nil, 123456789, 42, size)
		if !json.Valid(data) {
			t.Fatalf("size %d: invalid JSON %s", size, data)
		}
		if size > 200 && (len(data) < size-2 || len(data) > size+2) {
			t.Errorf("size %d: got %d bytes", size, len(data))
		}
		at, ok := emitTime(data)
		if !ok || at != 123456789 {
			t.Errorf("size %d: emitTime = %d, %v; want 123456789", size, at, ok)
		}
	}
	b := &bench{o: &options{DataBytes: 100}}
	body := b.body(nil, "evt_1", "wh_1", 7, 1)
	var env struct {
		ID, Event, Timestamp, WebhookID string
		Data                            map[string]any
		Metadata                        map[string]string
	}
	if err := json.Unmarshal(body, &env); err != nil {
		t.Fatalf("body is not JSON: %v\n%s", err, body)
	}
	if env.ID != "evt_1" || env.WebhookID != "wh_1" || env.Event != "workflow.completed" || env.Metadata["apiVersion"] != "v1" {
		t.Errorf("envelope = %+v", env)
	}
	if at, ok := emitTime(body); !ok || at != 7 {
		t.Errorf("emitTime(body) = %d, %v; want 7", at, ok)
	}
	if _, ok := emitTime([]byte(`{"emittedAt":"x"}`)); ok {
		t.Error("emitTime accepted a body without digits")
	}
}

// raw's requests carry the same headers as the library's: the same names,
// and values of the same lengths (the ids and signatures differ).
func TestRawSendsTheLibrarysHeaders(t *testing.T) {
	got := make(chan http.Header, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case got <- r.Header.Clone():
		default:
		}
	}))
	defer srv.Close()
	st := memstore.New()
	defer st.Close()
	rc := &receiver{srv: srv}
	ws, err := createWebhooks(t.Context(), st, rc, []string{"/"})
	if err != nil {
		t.Fatal(err)
	}
	b := &bench{o: &options{Concurrency: 4, AttemptTimeout: 5 * time.Second, DataBytes: 64}, clk: &clock{base: time.Now()}}
	d, err := webhook.New(st, b.config(4))
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	defer d.Stop(context.Background())
	if _, err := d.Emit(t.Context(), webhook.Event{Type: webhook.EventWorkflowCompleted, Tenant: tenant, Data: json.RawMessage(`{}`)}); err != nil {
		t.Fatal(err)
	}
	var lib http.Header
	select {
	case lib = <-got:
	case <-time.After(10 * time.Second):
		t.Fatal("no delivery")
	}
	raw := libraryHeaders(newID("evt_"), ws[0].ID, b.body(nil, newID("evt_"), ws[0].ID, 0, 0))
	// net/http adds these on the wire for both.
	for _, k := range []string{"Content-Length", "Accept-Encoding"} {
		lib.Del(k)
	}
	if len(raw) != len(lib) {
		t.Errorf("raw sends %d headers, the library %d:\nraw %v\nlib %v", len(raw), len(lib), raw, lib)
	}
	for k, v := range lib {
		if len(raw[k]) != len(v) || len(raw[k]) == 1 && len(raw[k][0]) != len(v[0]) {
			t.Errorf("header %s: raw sends %q, the library %q", k, raw[k], v)
		}
	}
}

// raw's bodies are the library's: for the same data size, a raw body is as
// long as the body a delivery of an emitted event puts on the wire (the
// ids, timestamps and emit times differ, not their lengths).
func TestRawBodiesMatchTheLibrarys(t *testing.T) {
	got := make(chan []byte, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		select {
		case got <- body:
		default:
		}
	}))
	defer srv.Close()
	st := memstore.New()
	defer st.Close()
	ws, err := createWebhooks(t.Context(), st, &receiver{srv: srv}, []string{"/"})
	if err != nil {
		t.Fatal(err)
	}
	b := &bench{o: &options{Concurrency: 4, AttemptTimeout: 5 * time.Second, DataBytes: 256}, clk: &clock{base: time.Now()}}
	d, err := webhook.New(st, b.config(4))
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	defer d.Stop(context.Background())
	const at, seq = 123456789, 42
	// As library() emits its events.
	data := eventData(nil, at, seq, b.o.DataBytes)
	if _, err := d.Emit(t.Context(), webhook.Event{Type: webhook.EventWorkflowCompleted, Tenant: tenant, Data: json.RawMessage(data)}); err != nil {
		t.Fatal(err)
	}
	var lib []byte
	select {
	case lib = <-got:
	case <-time.After(10 * time.Second):
		t.Fatal("no delivery")
	}
	raw := b.body(nil, newID("evt_"), ws[0].ID, at, seq)
	if len(raw) != len(lib) {
		t.Errorf("raw body is %d bytes, the library's %d:\nraw %s\nlib %s", len(raw), len(lib), raw, lib)
	}
	// The data is the same however much the buffer already holds.
	if prefixed := eventData([]byte("prefix"), at, seq, 256); string(prefixed[len("prefix"):]) != string(data) {
		t.Errorf("eventData after a prefix = %s, want %s", prefixed[len("prefix"):], data)
	}
}

// dropSchema drops a schema a test run of the bench made in PostgreSQL.
func dropSchema(t *testing.T, url, schema string) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Errorf("drop schema %s: %v", schema, err)
		return
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "DROP SCHEMA IF EXISTS "+pgx.Identifier{schema}.Sanitize()+" CASCADE"); err != nil {
		t.Errorf("drop schema %s: %v", schema, err)
	}
}

// TestFanoutSmallWindow: an event of fanout and hung needs more window
// places (10, 9) than a small -window, or the default one at -concurrency 2
// (8), holds; it is still emitted, one at a time, rather than waiting for
// places that never come and counting nothing.
func TestFanoutSmallWindow(t *testing.T) {
	for _, args := range [][]string{
		{"-scenarios", "fanout", "-concurrency", "2"},
		{"-scenarios", "hung", "-concurrency", "4", "-window", "3", "-attempt-timeout", "200ms"},
	} {
		args = append(args, "-duration", "300ms", "-warmup", "0", "-nosync", "-json", "-quiet")
		code, stdout, stderr := runBench(t, args...)
		var rep report
		if err := json.Unmarshal([]byte(stdout), &rep); err != nil {
			t.Fatalf("%q: stdout is not the JSON report: %v\n%s", args, err, stdout)
		}
		for _, r := range rep.Results {
			if r.Error != "" || r.Count == 0 {
				t.Errorf("%q: %s counted %d deliveries (error %q)", args, r.Scenario, r.Count, r.Error)
			}
		}
		if code != 0 {
			t.Errorf("%q: exit code %d; stderr:\n%s", args, code, stderr)
		}
	}
}

// TestNothingCountedFails: a scenario that ran and counted nothing in its
// window failed (exit 1), whatever its note says; only a scenario the run
// skipped (pg without -pg) shows as skipped.
func TestNothingCountedFails(t *testing.T) {
	rep := &report{Results: []*result{
		{Scenario: "raw", Unit: "deliveries", PerSec: 1000, Count: 1000, Seconds: 1},
		{Scenario: "mem", Store: "memstore", Unit: "deliveries", Note: "first Emit error: boom"},
		{Scenario: "pg", Store: "pgstore", Note: "skipped: no -pg URL given", skipped: true},
	}}
	rep.judge()
	if m := rep.find("mem"); m.Error == "" {
		t.Errorf("mem counted nothing and has no error: %+v", m)
	}
	if p := rep.find("pg"); p.Error != "" {
		t.Errorf("skipped pg has error %q", p.Error)
	}
	var table bytes.Buffer
	writeTable(&table, rep)
	for _, line := range strings.Split(table.String(), "\n") {
		f := strings.Fields(line)
		if len(f) < 3 {
			continue
		}
		if f[0] == "mem" && f[2] != "FAILED" || f[0] == "pg" && f[2] != "skipped" {
			t.Errorf("table row %q", line)
		}
	}
}

// TestInterrupt: Ctrl-C stops the run within a few seconds; the scenario it
// cut short is reported as interrupted (not as a measurement of a shorter
// window, nor as "context canceled"), those it never ran as not run, the
// JSON stays valid, the exit code is 1, and no bolt file is left in -dir,
// in a child process or in this one.
func TestInterrupt(t *testing.T) {
	for _, c := range []struct {
		scenarios string
		inProcess bool
	}{
		{"bolt,emit", false},
		{"bolt,emit", true},
		// Cut short while it fills its store.
		{"backlog", false},
	} {
		dir := t.TempDir()
		args := []string{"-rounds", "1", "-scenarios", c.scenarios, "-duration", "30s", "-warmup", "0", "-concurrency", "4",
			"-backlog", "50000000", "-nosync", "-json", "-quiet", "-dir", dir}
		if c.inProcess {
			args = append(args, "-inprocess")
		}
		ctx, cancel := context.WithCancel(t.Context())
		timer := time.AfterFunc(time.Second, cancel)
		var stdout, stderr bytes.Buffer
		start := time.Now()
		code := run(ctx, args, &stdout, &stderr, []string{childEnv})
		took := time.Since(start)
		timer.Stop()
		cancel()
		if took > 15*time.Second {
			t.Errorf("%+v: the run took %v after an interrupt at 1s", c, took)
		}
		if code != 1 {
			t.Errorf("%+v: exit code %d, want 1; stderr:\n%s", c, code, stderr.String())
		}
		var rep report
		if err := json.Unmarshal(stdout.Bytes(), &rep); err != nil {
			t.Fatalf("%+v: stdout is not the JSON report: %v\n%s", c, err, stdout.String())
		}
		for _, name := range strings.Split(c.scenarios, ",") {
			if r := rep.find(name); r == nil || !strings.HasPrefix(r.Error, "interrupted") {
				t.Errorf("%+v: %s result %+v; want an interrupted error", c, name, r)
			}
		}
		if left, _ := os.ReadDir(dir); len(left) > 0 {
			t.Errorf("%+v: -dir holds %v after the run", c, left)
		}
	}
}

// TestVerdictFiguresAgree: the figure the table prints next to a verdict is
// on the same side of the goal as the verdict: a ratio of 0.7996 missed is
// not printed as 0.80 (nor 0.8), 19,999.6 events/s as 20000, nor a peak of
// 149.97 MiB, met, as 150.0; figures clear of the goal keep their format.
func TestVerdictFiguresAgree(t *testing.T) {
	rep := &report{Results: []*result{
		{Scenario: "raw", Unit: "deliveries", PerSec: 10000, Count: 10000, Seconds: 1},
		{Scenario: "mem", Store: "memstore", Unit: "deliveries", PerSec: 7996, Count: 7996, Seconds: 1},
		{Scenario: "bolt", Store: "boltstore", Unit: "deliveries", PerSec: 4996, Count: 4996, Seconds: 1},
		{Scenario: "emit", Store: "boltstore", Unit: "events", PerSec: 19999.6, Count: 19999, Seconds: 1},
		{Scenario: "backlog", Store: "boltstore", Unit: "deliveries", PerSec: 1000, Count: 1000, Seconds: 1, PeakRSS: 157254942},
	}}
	rep.judge()
	var table bytes.Buffer
	writeTable(&table, rep)
	rows := 0
	for _, line := range strings.Split(table.String(), "\n") {
		f := strings.Fields(line)
		if len(f) < 2 || rep.find(f[0]) == nil || f[0] == "raw" {
			continue
		}
		rows++
		r := rep.find(f[0])
		// ... [vs raw] metric op goal: value verdict
		n := len(f)
		verdict, value := f[n-1], strings.TrimSuffix(f[n-2], ":")
		if want := map[bool]string{true: "ok", false: "MISSED"}[r.Target.Met]; verdict != want {
			t.Errorf("%s: verdict %q, want %q: %s", f[0], verdict, want, line)
		}
		check := func(what, s string) {
			v, err := strconv.ParseFloat(s, 64)
			if err != nil {
				t.Fatalf("%s: %s %q: %v in %q", f[0], what, s, err, line)
			}
			if met := v >= r.Target.Goal; r.Target.Op == "<" && (v < r.Target.Goal) != r.Target.Met || r.Target.Op == ">=" && met != r.Target.Met {
				t.Errorf("%s: %s printed as %s beside %s %s %v: %s", f[0], what, s, verdict, r.Target.Op, r.Target.Goal, line)
			}
		}
		check("target figure", value)
		// The column of the judged figure says the same.
		switch r.Target.Metric {
		case "ratioToRaw":
			check("vs raw", f[n-6])
		case "perSecond":
			check("per second", f[2])
		case "peakRSSMiB":
			check("peak RSS", f[n-6])
		}
	}
	// Only the digits it takes: bolt's 0.4996 is not printed as 0.
	if !strings.Contains(table.String(), "ratioToRaw >= 0.5: 0.4996 MISSED") {
		t.Errorf("bolt's verdict is not 0.4996 MISSED:\n%s", table.String())
	}
	if rows != 4 {
		t.Errorf("found %d judged rows, want 4:\n%s", rows, table.String())
	}
}

// TestBacklogRSSOverRounds: over several rounds the backlog's RSS target
// judges the median of the rounds' peaks, not the peak of whichever round
// had the median rate: here two of three drains peaked above 150 MiB, one
// of them the median, while the round of median rate stayed below.
func TestBacklogRSSOverRounds(t *testing.T) {
	const mib = 1 << 20
	runs := []*result{
		{Scenario: "backlog", Unit: "deliveries", PerSec: 100, Count: 100, Seconds: 1, PeakRSS: 170 * mib},
		{Scenario: "backlog", Unit: "deliveries", PerSec: 200, Count: 200, Seconds: 1, PeakRSS: 140 * mib},
		{Scenario: "backlog", Unit: "deliveries", PerSec: 300, Count: 300, Seconds: 1, PeakRSS: 160 * mib},
	}
	rep := &report{Results: []*result{aggregate(runs, nil, nil)}}
	rep.judge()
	if tg := rep.find("backlog").Target; tg == nil || tg.Value != 160 || tg.Met {
		t.Errorf("backlog target = %+v; want the median peak, 160 MiB, missed", tg)
	}
	// With an even count, the less favourable middle one: the higher peak.
	rep = &report{Results: []*result{aggregate(runs[1:], nil, nil)}}
	rep.judge()
	if tg := rep.find("backlog").Target; tg == nil || tg.Value != 160 || tg.Met {
		t.Errorf("backlog target over two rounds = %+v; want 160 MiB, missed", tg)
	}
}

// TestJSONDocumented: every field of the -json report is described in the
// command's documentation (go doc) and in the README, which a reviewer
// reads to compare the report with the targets.
func TestJSONDocumented(t *testing.T) {
	var tags []string
	for _, v := range []any{report{}, result{}, target{}} {
		typ := reflect.TypeOf(v)
		for i := range typ.NumField() {
			if tag, _, _ := strings.Cut(typ.Field(i).Tag.Get("json"), ","); tag != "" {
				tags = append(tags, tag)
			}
		}
	}
	for _, file := range []string{"main.go", "../../README.md"} {
		b, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		text := string(b)
		has := func(tag string) bool { return strings.Contains(text, "`"+tag+"`") }
		if file == "main.go" {
			// Its "# JSON" section lists one field a line.
			_, text, _ = strings.Cut(text, "// # JSON\n")
			text, _, _ = strings.Cut(text, "\npackage main")
			has = func(tag string) bool {
				for _, line := range strings.Split(text, "\n") {
					if strings.HasPrefix(strings.TrimLeft(line, "/\t "), tag+" ") {
						return true
					}
				}
				return false
			}
		}
		for _, tag := range tags {
			if !has(tag) {
				t.Errorf("%s does not describe the JSON field %q", file, tag)
			}
		}
	}
}

// TestTargetNeedsRaw: mem and bolt are judged against raw; run without it,
// they say why they have no verdict rather than showing none silently.
func TestTargetNeedsRaw(t *testing.T) {
	rep := &report{Results: []*result{
		{Scenario: "mem", Store: "memstore", Unit: "deliveries", PerSec: 900, Count: 900, Seconds: 1},
		{Scenario: "bolt", Store: "boltstore", Unit: "deliveries", PerSec: 500, Count: 500, Seconds: 1},
	}}
	rep.judge()
	var table bytes.Buffer
	writeTable(&table, rep)
	for _, name := range []string{"mem", "bolt"} {
		if r := rep.find(name); r.Target != nil || !strings.Contains(r.Note, "raw") {
			t.Errorf("%s without raw: target %v, note %q; want no target and a note naming raw", name, r.Target, r.Note)
		}
	}
	if !strings.Contains(table.String(), "mem: ") {
		t.Errorf("the table does not say why mem has no verdict:\n%s", table.String())
	}
}

// TestPairedCPURatio: over several rounds, cpuRatioToRaw is, like the rate
// ratio, the median of the rounds' own ratios, not raw's median run's CPU
// over the scenario's median run's from another round.
func TestPairedCPURatio(t *testing.T) {
	runs := func(name string, perSec, cpu []float64) []*result {
		var rs []*result
		for i := range perSec {
			rs = append(rs, &result{Scenario: name, Unit: "deliveries", PerSec: perSec[i], Count: 1, CPUMicros: cpu[i]})
		}
		return rs
	}
	// Every round, mem costs 1.25 times raw's CPU; the machine slows down
	// round by round, and mem's median rate is in the first round, raw's
	// in the second.
	raw := runs("raw", []float64{1000, 600, 300}, []float64{50, 100, 200})
	mem := runs("mem", []float64{400, 480, 240}, []float64{62.5, 125, 250})
	rep := &report{Results: []*result{aggregate(raw, raw, nil), aggregate(mem, raw, nil)}}
	rep.judge()
	if got := rep.find("mem").Extra["cpuRatioToRaw"]; math.Abs(got-0.8) > 1e-9 {
		t.Errorf("mem cpuRatioToRaw = %v, want 0.8", got)
	}
}

// TestChildArgsCarryEveryFlag: a child process runs its scenario with every
// setting of its parent (-nosync, -dir, the profiles, …), not its defaults.
func TestChildArgsCarryEveryFlag(t *testing.T) {
	parent, err := parseFlags([]string{
		"-duration", "3s", "-warmup", "0", "-concurrency", "12", "-window", "30", "-backlog", "77",
		"-backlog-timeout", "9s", "-attempt-timeout", "250ms", "-per-webhook", "2", "-fanout-store", "mem",
		"-nosync", "-data-bytes", "99", "-pg", "postgres://h/db", "-pg-schema", "s1", "-quiet",
		"-dir", "/d", "-cpuprofile", "/c", "-memprofile", "/m",
		// The parent's alone.
		"-rounds", "3", "-json", "-inprocess", "-scenarios", "raw",
	}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	child, err := parseFlags(parent.childArgs("bolt"), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if child.child != "bolt" {
		t.Errorf("child scenario %q, want bolt", child.child)
	}
	ignore := cmpopts.IgnoreFields(options{}, "Rounds", "JSON", "InProcess", "Scenarios")
	if diff := cmp.Diff(parent, child, cmp.AllowUnexported(options{}), ignore,
		cmpopts.IgnoreFields(options{}, "child")); diff != "" {
		t.Errorf("the child's settings differ from its parent's (-parent +child):\n%s", diff)
	}
}
