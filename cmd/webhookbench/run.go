package main

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/pprof"
	"slices"
	"strings"
	"time"
)

// runAll runs the selected scenarios, each in a child process unless
// o.InProcess, and judges the results.
func runAll(ctx context.Context, o *options, stderr io.Writer) (*report, error) {
	rep := newReport(o)
	names := o.selected()
	if o.Dir == "" {
		dir, err := os.MkdirTemp("", "webhookbench-")
		if err != nil {
			return nil, err
		}
		defer os.RemoveAll(dir)
		o.Dir = dir
	}
	runs := make(map[string][]*result, len(names))
	hwmReset := false // a backlog run in this process reset VmHWM
	for round := 0; round < o.Rounds; round++ {
		for _, name := range names {
			if ctx.Err() != nil {
				break
			}
			if name == "pg" && o.PG == "" {
				if round == 0 {
					runs[name] = append(runs[name], &result{Scenario: "pg", Store: "pgstore", Note: "skipped: no -pg URL given", skipped: true})
				}
				continue
			}
			var r *result
			if o.InProcess {
				r = runScenario(ctx, o, name, stderr)
				r.RSSScope = inProcessScope(r, hwmReset)
				hwmReset = hwmReset || r.hwmReset
			} else {
				r = runChildProcess(ctx, o, name, stderr)
			}
			runs[name] = append(runs[name], r)
		}
	}
	for _, name := range names {
		if len(runs[name]) == 0 {
			if ctx.Err() != nil {
				rep.Results = append(rep.Results, &result{Scenario: name, Error: "interrupted before it ran"})
			}
			continue
		}
		r := aggregate(runs[name], runs["raw"], runs["fanout"])
		if name == "hung" && o.Duration+o.Warmup < o.AttemptTimeout {
			r.Note = joinNote(r.Note, "the run was shorter than -attempt-timeout: no attempt to the hung endpoint timed out while it was measured")
		}
		if name == "fanout" && !slices.Contains(o.Scenarios, "fanout") {
			r.Note = joinNote(r.Note, "run as the all-healthy baseline of hung")
		}
		rep.Results = append(rep.Results, r)
	}
	rep.judge()
	return rep, nil
}

// inProcessScope says what the peak RSS of r, run in this process
// (-inprocess), covers: every scenario run so far, unless a backlog run reset
// VmHWM after its fill (r itself, or an earlier one when reset).
func inProcessScope(r *result, reset bool) string {
	switch {
	case r.hwmReset:
		return "process (-inprocess), drain phase (VmHWM reset after the fill; what earlier scenarios left resident included)"
	case reset:
		return "process (-inprocess), every scenario since the last backlog drain began (VmHWM reset then)"
	}
	return "process (every scenario so far: -inprocess)"
}

// selected returns the scenarios to run, in run order: those asked for,
// and fanout when hung is (its all-healthy baseline).
func (o *options) selected() []string {
	var names []string
	for _, s := range allScenarios {
		if slices.Contains(o.Scenarios, s) || s == "fanout" && slices.Contains(o.Scenarios, "hung") {
			names = append(names, s)
		}
	}
	return names
}

// aggregate returns the run of rs (one scenario's rounds) to report, with
// the medians over the rounds its targets judge: the ratios to the raw
// runs and, for hung, to the fanout runs of the same rounds, and the peak
// RSS (backlog's target).
func aggregate(rs, raw, fanout []*result) *result {
	r := median(rs)
	r.rawRatios = pairedRatios(rs, raw, perSecond)
	r.pairedRaw = middle(r.rawRatios)
	r.pairedCPU = pairedMedian(rs, raw, cpuPerUnit)
	if r.Scenario == "hung" {
		r.pairedFanout = pairedMedian(rs, fanout, perSecond)
	}
	if r.Error == "" && len(rs) > 1 {
		// The less favourable middle one for an even count: the higher.
		peaks := make([]int64, len(rs))
		for i, x := range rs {
			peaks[i] = x.PeakRSS
		}
		slices.Sort(peaks)
		r.medianRSS = peaks[len(peaks)/2]
	}
	return r
}

// pairedMedian is the median of pairedRatios(rs, base, ratio) (see middle).
func pairedMedian(rs, base []*result, ratio func(r, base *result) float64) float64 {
	return middle(pairedRatios(rs, base, ratio))
}

// middle returns the median of ratios, ascending (the lower middle one for
// an even count); 0 with fewer than two, where the ratio of the median runs
// is the same thing.
func middle(ratios []float64) float64 {
	if len(ratios) < 2 {
		return 0
	}
	return ratios[(len(ratios)-1)/2]
}

// pairedRatios returns the rounds' ratios ratio(rs[i], base[i]), over the
// rounds where both ran and the ratio is positive, in ascending order.
func pairedRatios(rs, base []*result, ratio func(r, base *result) float64) []float64 {
	var ratios []float64
	for i := range min(len(rs), len(base)) {
		if r, b := rs[i], base[i]; r.Error == "" && b.Error == "" && r.Count > 0 {
			if v := ratio(r, b); v > 0 && !math.IsInf(v, 0) {
				ratios = append(ratios, v)
			}
		}
	}
	slices.Sort(ratios)
	return ratios
}

// perSecond is r's rate over base's: how close r comes to base.
func perSecond(r, base *result) float64 { return r.PerSec / base.PerSec }

// cpuPerUnit is base's processor time per unit over r's: the rate ratio
// if both were bound by the processor alone. 0 unless both are known and
// count the same unit.
func cpuPerUnit(r, base *result) float64 {
	if r.Unit != base.Unit || r.CPUMicros <= 0 {
		return 0
	}
	return base.CPUMicros / r.CPUMicros
}

// median returns the run with the median rate (the lower middle one for an
// even count), noting every run's rate in its Extra when there were several.
// A failed run is returned as it is.
func median(rs []*result) *result {
	if len(rs) == 1 {
		return rs[0]
	}
	for _, r := range rs {
		if r.Error != "" {
			return r
		}
	}
	sorted := slices.Clone(rs)
	slices.SortFunc(sorted, func(a, b *result) int { return cmp.Compare(a.PerSec, b.PerSec) })
	m := sorted[(len(sorted)-1)/2]
	if m.Extra == nil {
		m.Extra = map[string]float64{}
	}
	m.Extra["rounds"] = float64(len(rs))
	m.Extra["minPerSecond"] = sorted[0].PerSec
	m.Extra["maxPerSecond"] = sorted[len(sorted)-1].PerSec
	return m
}

// runChildProcess runs one scenario in a new process and reads its result.
func runChildProcess(ctx context.Context, o *options, name string, stderr io.Writer) *result {
	exe := o.exe
	if len(exe) == 0 {
		self, err := os.Executable()
		if err != nil {
			return &result{Scenario: name, Error: fmt.Sprintf("find own executable: %v", err)}
		}
		exe = []string{self}
	}
	var out bytes.Buffer
	cmd := exec.CommandContext(ctx, exe[0], append(slices.Clone(exe[1:]), o.childArgs(name)...)...)
	cmd.Env = append(os.Environ(), o.env...)
	cmd.Stdout = &out
	cmd.Stderr = stderr
	// On Ctrl-C, as the terminal does: the child stops its scenario,
	// closes and removes its store and reports. Killed only if it has not
	// exited 10 s later.
	cmd.Cancel = func() error {
		if err := cmd.Process.Signal(os.Interrupt); err != nil {
			return cmd.Process.Kill()
		}
		return nil
	}
	cmd.WaitDelay = 10 * time.Second
	runErr := cmd.Run()
	if cmd.Process != nil {
		// What a child killed or crashed left (it removes its own file).
		os.Remove(boltPath(o.Dir, name, cmd.Process.Pid))
	}
	var r result
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &r); err != nil {
		msg := fmt.Sprintf("child process gave no result: %v", runErr)
		if runErr == nil {
			msg = fmt.Sprintf("child process gave no result: %v", err)
		}
		if ctx.Err() != nil {
			msg = "interrupted: " + msg
		}
		return &result{Scenario: name, Error: msg}
	}
	if runErr != nil && r.Error == "" {
		r.Error = fmt.Sprintf("child process: %v", runErr)
	}
	if ctx.Err() != nil && r.Error == "" {
		r.Error = "interrupted"
	}
	return &r
}

// runChild is the child process: it runs one scenario and prints its result
// as one line of JSON.
func runChild(ctx context.Context, o *options, stdout, stderr io.Writer) int {
	r := runScenario(ctx, o, o.child, stderr)
	if r.RSSScope == "" {
		r.RSSScope = "child process"
	}
	if err := json.NewEncoder(stdout).Encode(r); err != nil {
		fmt.Fprintln(stderr, "webhookbench:", err)
		return 1
	}
	return 0
}

// runScenario runs one scenario in this process.
func runScenario(ctx context.Context, o *options, name string, stderr io.Writer) (r *result) {
	for _, dir := range []string{o.CPUProfile, o.MemProfile} {
		if dir != "" {
			if err := os.MkdirAll(dir, 0o755); err != nil {
				return &result{Scenario: name, Error: err.Error()}
			}
		}
	}
	if o.CPUProfile != "" {
		f, err := os.Create(filepath.Join(o.CPUProfile, name+".cpu.pprof"))
		if err != nil {
			return &result{Scenario: name, Error: err.Error()}
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return &result{Scenario: name, Error: err.Error()}
		}
		defer pprof.StopCPUProfile()
	}
	if o.MemProfile != "" {
		defer func() {
			f, err := os.Create(filepath.Join(o.MemProfile, name+".heap.pprof"))
			if err == nil {
				_ = pprof.Lookup("heap").WriteTo(f, 0)
				f.Close()
			}
		}()
	}
	b := &bench{o: o, name: name, clk: &clock{base: time.Now()}, stderr: stderr}
	switch name {
	case "raw":
		r = b.raw(ctx, false)
	case "bare":
		r = b.raw(ctx, true)
	case "mem":
		r = b.endToEnd(ctx, "memstore")
	case "bolt":
		r = b.endToEnd(ctx, "boltstore")
	case "pg":
		r = b.endToEnd(ctx, "pgstore")
	case "emit":
		r = b.emit(ctx)
	case "fanout":
		r = b.fanout(ctx, false)
	case "hung":
		r = b.fanout(ctx, true)
	case "backlog":
		r = b.backlog(ctx)
	default:
		r = &result{Error: "unknown scenario"}
	}
	r.Scenario = name
	if err := ctx.Err(); err != nil {
		// Cut short: what it counted is not a -duration measurement, and
		// an error may be the interrupt's own doing.
		switch {
		case r.Error == "" || r.Error == err.Error():
			r.Error = "interrupted"
		case !strings.HasPrefix(r.Error, "interrupted"):
			r.Error = "interrupted: " + r.Error
		}
	}
	if b.boltFileBytes > 0 {
		if r.Extra == nil {
			r.Extra = map[string]float64{}
		}
		r.Extra["boltFileMiB"] = float64(b.boltFileBytes) / (1 << 20)
	}
	if r.PeakRSS == 0 {
		r.PeakRSS = peakRSS()
	}
	if b.cpu > 0 && r.Count > 0 {
		r.CPUMicros = float64(b.cpu.Microseconds()) / float64(r.Count)
	}
	return r
}

func joinNote(a, b string) string {
	if a == "" {
		return b
	}
	return a + "; " + b
}

func sortedKeys(m map[string]float64) []string { return slices.Sorted(maps.Keys(m)) }
