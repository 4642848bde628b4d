// Command webhookbench measures the webhook library against the ceiling of
// plain net/http, on one machine, against one in-process loopback receiver.
//
// Usage:
//
//	go run ./cmd/webhookbench                      # every scenario, 5 s each, three rounds
//	go run ./cmd/webhookbench -scenarios mem -duration 2s -rounds 1
//	go run ./cmd/webhookbench -json > bench.json   # JSON on stdout, table on stderr
//	go run ./cmd/webhookbench -pg postgres://postgres@127.0.0.1:5432/test?sslmode=disable
//
// # Scenarios
//
// Every scenario uses the same receiver (an HTTP server on 127.0.0.1 that
// reads the body and answers 200 at once) and the same concurrency
// (-concurrency, 64 by default: POSTing goroutines for raw; dispatcher
// workers for the library, whose events come from -emitters goroutines,
// as many as -concurrency by default):
//
//	raw      the ceiling: plain net/http POSTs of the same requests as the
//	         library's: bodies of the same shape and size, each built for its
//	         request, with the same headers (X-Webhook-*, both signature
//	         schemes), built once and sent as they are
//	bare     for reference: the same bodies with Content-Type alone
//	mem      end to end (Emit, store, claim, sign, POST, record) with memstore
//	bolt     the same with boltstore (fsync on every commit unless -nosync)
//	emit     durable Emit alone: boltstore, one matching webhook per event,
//	         delivery off; its figure is events/s and its latency the Emit call
//	fanout   every event matches 10 webhooks (10 receiver paths)
//	hung     as fanout, but one of the 10 endpoints never answers (each attempt
//	         ends at -attempt-timeout, 2 s by default); its figure counts the
//	         9 healthy endpoints' deliveries and is compared with fanout's
//	         (selecting hung runs fanout too, as its all-healthy baseline).
//	         Each timeout halves the hung webhook's concurrency limit, so
//	         after the first ones it holds one worker and its deliveries wait
//	         in the store: the 9 then get the processor time the 10th took,
//	         and hung's figure is close to fanout's, and may exceed it
//	backlog  -backlog pending deliveries (100,000) are stored in boltstore with
//	         delivery off, then a dispatcher drains them; its latency is
//	         measured from the dispatcher's Start
//	pg       end to end with pgstore (only with -pg URL; schema -pg-schema)
//
// fanout and hung run on -fanout-store (bolt by default; mem, or pg with
// -pg) with a per-webhook concurrency of -per-webhook: by default the
// library's 16, but at most a quarter of -concurrency, so the hung endpoint
// holds the same share of the workers at any -concurrency. The other
// library scenarios deliver to one webhook whose per-webhook concurrency is
// -concurrency, as raw's is.
//
// The library scenarios keep at most -window deliveries (4 x concurrency by
// default) emitted but not yet received (or one event of fanout or hung,
// when the window is smaller than its 10 deliveries), so the queue stays
// short and the latency is that of a loaded pipeline rather than of an
// ever-growing backlog. Each scenario warms up (-warmup, a tenth of
// -duration up to 1 s by default) before it counts for -duration.
//
// # Measures
//
// For each scenario: deliveries (or events) per second in the measured
// window; p50 and p99 of the time from Emit (raw: from building the request)
// to receipt by the receiver, from a log-linear histogram (3% buckets); the
// peak resident set (VmHWM) of the process that ran the scenario (backlog:
// of its drain, VmHWM being reset after the fill); the
// processor time (user and system, receiver included) that process used per
// delivery or event while measuring; and the ratio of the figure to the raw
// ceiling of the same run. Where both are bound by the processor, raw's CPU
// per delivery over a scenario's (cpuRatioToRaw in the extras) estimates
// that ratio with less noise from the rest of the machine (less, not none:
// other guests of a shared host slow every instruction). By default every
// scenario runs in a child process of its own (the same executable, re-run
// with -child), so each peak RSS is that scenario's alone; -inprocess runs
// them all in one process and reports that process's peak.
//
// On a shared machine the figures move from run to run: -rounds N (3 by
// default; 1 for a single run) runs the whole list N times, round-robin,
// and reports each scenario's median run (with the lowest and highest rate
// in its extras, and of its ratio to raw: minRatioToRaw and maxRatioToRaw
// say whether a target held in every round). Its targets judge the medians
// of the rounds' own figures: the ratios of each round's run to that
// round's raw (or fanout) run, and backlog's peak RSS; for an even count,
// the less favourable of the middle two.
//
// The targets (on a 2-core machine) are checked and marked in the table:
// mem ≥ 0.80 and bolt ≥ 0.50 of raw; emit ≥ 20,000 events/s; hung healthy
// throughput ≥ 0.90 of fanout's; backlog peak RSS < 150 MiB.
//
// The run stops by itself: every loop is bounded by -duration, and the backlog
// drain by -backlog-timeout. Ctrl-C ends it early: the scenario it cuts
// short and those it never ran are reported as interrupted, and the bolt
// files are removed. It exits 0 when every scenario ran (missed targets
// included), 1 when one failed or the run was interrupted, 2 on bad flags.
//
// # JSON
//
// With -json, stdout holds one JSON object and nothing else (the progress
// line and the table go to stderr). Fields may be added; none is renamed or
// removed. The object holds the run's settings and its results:
//
//	started      when the run began (RFC 3339, UTC)
//	goVersion    the Go release the bench was built with
//	goos         the operating system
//	goarch       the architecture
//	numCPU       the processors the machine has
//	gomaxprocs   the processors Go used
//	duration     -duration (a Go duration: "5s")
//	rounds       -rounds
//	warmup       the warm-up of each scenario (a Go duration)
//	concurrency  -concurrency
//	emitters     -emitters: the goroutines that call Emit (library scenarios and emit)
//	window       the window in deliveries
//	backlog      -backlog
//	attemptTimeout  -attempt-timeout (a Go duration)
//	boltFsync    false with -nosync
//	dataBytes    -data-bytes
//	results      one object per scenario run, in run order (below)
//
// Each result (with -rounds, the run of median rate):
//
//	scenario     raw, bare, mem, bolt, emit, fanout, hung, backlog or pg
//	store        memstore, boltstore or pgstore (absent for raw and bare)
//	unit         what count counts: "deliveries" (received) or "events" (emitted)
//	count        how many were counted in the measured window
//	seconds      the measured window
//	perSecond    count over seconds
//	latency      what p50Ms and p99Ms measure: "post-to-receipt",
//	             "emit-to-receipt", "Emit call" or "Start-to-receipt"
//	p50Ms        median latency in milliseconds
//	p99Ms        99th percentile latency in milliseconds
//	cpuMicrosPerUnit  processor time (user and system) per unit in
//	             microseconds (absent where it cannot be read)
//	peakRSSBytes the peak resident set in bytes of rssScope
//	rssScope     whose peak it is: "child process", its drain phase for
//	             backlog, or the whole process with -inprocess
//	ratioToRaw   perSecond over raw's (with -rounds, the median of the
//	             rounds' own ratios); absent for emit and backlog and
//	             without a raw run
//	errors       failed Emits or POSTs, and bodies without an emit time
//	extra        scenario-specific figures by name (cpuRatioToRaw,
//	             perEndpointRatioToFanout, hungRequests, fillSeconds, …;
//	             with -rounds, minPerSecond and maxPerSecond, and where
//	             there is a ratio to raw, minRatioToRaw and maxRatioToRaw:
//	             the lowest and highest of the rounds' own ratios);
//	             on boltstore, from its Stats over the measured window:
//	             boltWriterBusy (the share of the window its group
//	             commit held the file's writer), boltCallsPerCommit,
//	             boltWriteShare (the share of that busy time spent
//	             writing and syncing pages) and boltPageWritesPerUnit
//	             (bbolt's page writes per delivery or event)
//	target       the target and its verdict, where the scenario has one
//	             and it could be judged (below)
//	note         a skip (pg without -pg) or a setting worth knowing
//	error        why the scenario failed or was not run; any error makes
//	             the exit code 1
//
// A target:
//
//	metric       the figure judged: "ratioToRaw" (mem, bolt),
//	             "perSecond" (emit), "ratioToFanout" (hung) or
//	             "peakRSSMiB" (backlog)
//	op           ">=" or "<"
//	goal         the target's figure
//	value        the figure judged (with -rounds, the median of the rounds')
//	met          whether value op goal holds
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"slices"
	"strings"
	"time"

	"github.com/noa-server/webhook"
	"github.com/noa-server/webhook/store/pgstore"
)

// allScenarios lists every scenario in the order a run takes them.
var allScenarios = []string{"raw", "bare", "mem", "bolt", "emit", "fanout", "hung", "backlog", "pg"}

// options are the command's settings, from flags.
type options struct {
	Duration       time.Duration
	Rounds         int
	Warmup         time.Duration
	Concurrency    int
	Emitters       int
	Window         int
	Backlog        int
	BacklogTimeout time.Duration
	AttemptTimeout time.Duration
	PerWebhook     int
	FanoutStore    string
	NoSync         bool
	DataBytes      int
	PG             string
	PGSchema       string
	Scenarios      []string
	JSON           bool
	Quiet          bool
	InProcess      bool
	Dir            string
	CPUProfile     string
	MemProfile     string

	// child names the one scenario this process runs for its parent.
	child string
	// exe and env re-run this program as a child (tests set them).
	exe []string
	env []string
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr, nil)
	stop()
	os.Exit(code)
}

// run parses args and runs the bench; it returns the exit code. childEnv is
// added to the environment of child processes.
func run(ctx context.Context, args []string, stdout, stderr io.Writer, childEnv []string) int {
	o, err := parseFlags(args, stderr)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	o.env = childEnv
	if o.child != "" {
		return runChild(ctx, o, stdout, stderr)
	}
	rep, err := runAll(ctx, o, stderr)
	if err != nil {
		fmt.Fprintln(stderr, "webhookbench:", err)
		return 1
	}
	table := stdout
	if o.JSON {
		table = stderr
		if err := writeJSON(stdout, rep); err != nil {
			fmt.Fprintln(stderr, "webhookbench:", err)
			return 1
		}
	}
	writeTable(table, rep)
	if ctx.Err() != nil {
		fmt.Fprintln(stderr, "webhookbench: interrupted")
		return 1
	}
	for _, r := range rep.Results {
		if r.Error != "" {
			return 1
		}
	}
	return 0
}

func parseFlags(args []string, stderr io.Writer) (*options, error) {
	o := &options{}
	fs := flag.NewFlagSet("webhookbench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.DurationVar(&o.Duration, "duration", 5*time.Second, "measured time of each scenario (backlog drains all of -backlog, within -backlog-timeout)")
	fs.IntVar(&o.Rounds, "rounds", 3, "run the scenario list this many times, round-robin, and report each scenario's median run (steadier on a shared machine; 1 for a single run)")
	fs.DurationVar(&o.Warmup, "warmup", 0, "unmeasured time before each scenario counts; 0 for none (default a tenth of -duration, at most 1s)")
	fs.IntVar(&o.Concurrency, "concurrency", 64, "POSTing goroutines (raw); dispatcher workers (library), and emitters unless -emitters")
	fs.IntVar(&o.Emitters, "emitters", 0, "goroutines calling Emit in the library scenarios (default -concurrency); each waits for its Emit, which with boltstore waits for a commit")
	fs.IntVar(&o.Window, "window", 0, "most deliveries emitted and not yet received (default 4 x concurrency; an event of fanout needs 10, and one is let through alone when the window is smaller)")
	fs.IntVar(&o.Backlog, "backlog", 100_000, "pending deliveries the backlog scenario drains")
	fs.DurationVar(&o.BacklogTimeout, "backlog-timeout", 5*time.Minute, "longest the backlog drain may take")
	fs.DurationVar(&o.AttemptTimeout, "attempt-timeout", 2*time.Second, "dispatcher timeout of one attempt (how long the hung endpoint holds a worker)")
	fs.IntVar(&o.PerWebhook, "per-webhook", 0, "dispatcher per-webhook concurrency of fanout and hung (default the library's 16, at most a quarter of -concurrency)")
	fs.StringVar(&o.FanoutStore, "fanout-store", "bolt", "store of the fanout and hung scenarios: bolt, mem or pg (with -pg)")
	fs.BoolVar(&o.NoSync, "nosync", false, "open boltstore without fsync (not durable)")
	fs.IntVar(&o.DataBytes, "data-bytes", 256, "approximate size of each event's data in bytes")
	fs.StringVar(&o.PG, "pg", "", "PostgreSQL URL: adds the pg scenario (the default -scenarios skips pg without it)")
	fs.StringVar(&o.PGSchema, "pg-schema", "webhookbench", "PostgreSQL schema of the pg scenario (its webhooks and deliveries are deleted afterwards)")
	scen := fs.String("scenarios", "raw,bare,mem,bolt,emit,fanout,hung,backlog,pg", "comma-separated scenarios to run: "+strings.Join(allScenarios, ","))
	fs.BoolVar(&o.JSON, "json", false, "write JSON to stdout and the table to stderr")
	fs.BoolVar(&o.Quiet, "quiet", false, "no progress line")
	fs.BoolVar(&o.InProcess, "inprocess", false, "run every scenario in this process (peak RSS is then the process's)")
	fs.StringVar(&o.Dir, "dir", "", "directory for the bolt files (default a new temporary directory)")
	fs.StringVar(&o.CPUProfile, "cpuprofile", "", "directory to write <scenario>.cpu.pprof into (with -rounds, the last round's)")
	fs.StringVar(&o.MemProfile, "memprofile", "", "directory to write <scenario>.heap.pprof into (with -rounds, the last round's)")
	fs.StringVar(&o.child, "child", "", "run one scenario and print its result as JSON (used by the parent process)")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "webhookbench: unexpected arguments %q\n", fs.Args())
		return nil, errors.New("arguments")
	}
	for _, s := range strings.Split(*scen, ",") {
		s = strings.TrimSpace(s)
		if s == "" {
			continue
		}
		if !slices.Contains(allScenarios, s) {
			fmt.Fprintf(stderr, "webhookbench: unknown scenario %q (want some of %s)\n", s, strings.Join(allScenarios, ","))
			return nil, errors.New("scenario")
		}
		if !slices.Contains(o.Scenarios, s) {
			o.Scenarios = append(o.Scenarios, s)
		}
	}
	if len(o.Scenarios) == 0 && o.child == "" {
		fmt.Fprintf(stderr, "webhookbench: -scenarios names none (want some of %s)\n", strings.Join(allScenarios, ","))
		return nil, errors.New("scenario")
	}
	if o.child != "" && !slices.Contains(allScenarios, o.child) {
		fmt.Fprintf(stderr, "webhookbench: unknown child scenario %q\n", o.child)
		return nil, errors.New("scenario")
	}
	var bad []string
	if o.Duration <= 0 {
		bad = append(bad, "-duration must be positive")
	}
	if o.Rounds < 1 || o.Rounds > 100 {
		bad = append(bad, "-rounds must be 1 to 100")
	}
	if o.Warmup < 0 {
		bad = append(bad, "-warmup must not be negative")
	}
	if o.Concurrency < 1 || o.Concurrency > 1000 {
		bad = append(bad, "-concurrency must be 1 to 1000")
	}
	if o.Emitters < 0 || o.Emitters > 10000 {
		bad = append(bad, "-emitters must be 0 to 10000")
	}
	if o.PerWebhook < 0 {
		bad = append(bad, "-per-webhook must not be negative")
	}
	if o.Window < 0 {
		bad = append(bad, "-window must not be negative")
	}
	if o.Backlog < 1 {
		bad = append(bad, "-backlog must be positive")
	}
	if o.BacklogTimeout <= 0 {
		bad = append(bad, "-backlog-timeout must be positive")
	}
	if o.AttemptTimeout < webhook.MinInterval {
		bad = append(bad, fmt.Sprintf("-attempt-timeout must be at least %v", webhook.MinInterval))
	}
	if o.PG != "" && o.PGSchema == "" {
		bad = append(bad, "-pg-schema must not be empty (pgstore would use its default schema, "+pgstore.DefaultSchema+
			", where the bench deletes its tenant's webhooks)")
	}
	scenariosSet := false
	fs.Visit(func(f *flag.Flag) { scenariosSet = scenariosSet || f.Name == "scenarios" })
	if scenariosSet && slices.Contains(o.Scenarios, "pg") && o.PG == "" {
		// The default list has pg, skipped without -pg; named, it is asked for.
		bad = append(bad, "-scenarios pg needs -pg")
	}
	switch {
	case o.FanoutStore == "pg" && o.PG == "":
		bad = append(bad, "-fanout-store pg needs -pg")
	case o.FanoutStore != "bolt" && o.FanoutStore != "mem" && o.FanoutStore != "pg":
		bad = append(bad, "-fanout-store must be bolt, mem or pg")
	}
	if o.DataBytes < 0 || o.DataBytes > 200<<10 {
		bad = append(bad, "-data-bytes must be 0 to 204800")
	}
	for _, b := range bad {
		fmt.Fprintln(stderr, "webhookbench:", b)
	}
	if len(bad) > 0 {
		return nil, errors.New("flags")
	}
	if o.Window == 0 {
		o.Window = 4 * o.Concurrency
	}
	if o.Emitters == 0 {
		o.Emitters = o.Concurrency
	}
	warmupSet := false
	fs.Visit(func(f *flag.Flag) { warmupSet = warmupSet || f.Name == "warmup" })
	if !warmupSet {
		o.Warmup = min(o.Duration/10, time.Second)
	}
	return o, nil
}

// perWebhook is the per-webhook concurrency of the scenarios with 10
// webhooks. With the library's default (16) and fewer than 64 workers, one
// hung endpoint would hold most or all of the workers, so by default it is
// also at most a quarter of the workers: the hung endpoint then holds as
// large a share of them at every -concurrency.
func (o *options) perWebhook() int {
	if o.PerWebhook > 0 {
		return o.PerWebhook
	}
	return max(1, min(webhook.DefaultPerWebhookConcurrency, o.Concurrency/4))
}

// childArgs are the flags a child process needs to run scenario name as
// this process would.
func (o *options) childArgs(name string) []string {
	args := []string{
		"-child", name,
		"-duration", o.Duration.String(),
		"-warmup", o.Warmup.String(),
		"-concurrency", fmt.Sprint(o.Concurrency),
		"-emitters", fmt.Sprint(o.Emitters),
		"-window", fmt.Sprint(o.Window),
		"-backlog", fmt.Sprint(o.Backlog),
		"-backlog-timeout", o.BacklogTimeout.String(),
		"-attempt-timeout", o.AttemptTimeout.String(),
		"-per-webhook", fmt.Sprint(o.PerWebhook),
		"-fanout-store", o.FanoutStore,
		"-data-bytes", fmt.Sprint(o.DataBytes),
		"-pg-schema", o.PGSchema,
	}
	if o.NoSync {
		args = append(args, "-nosync")
	}
	if o.PG != "" {
		args = append(args, "-pg", o.PG)
	}
	if o.Quiet {
		args = append(args, "-quiet")
	}
	if o.Dir != "" {
		args = append(args, "-dir", o.Dir)
	}
	if o.CPUProfile != "" {
		args = append(args, "-cpuprofile", o.CPUProfile)
	}
	if o.MemProfile != "" {
		args = append(args, "-memprofile", o.MemProfile)
	}
	return args
}
