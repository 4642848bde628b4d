package main

import (
	"encoding/json"
	"fmt"
	"io"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
)

// result is what one scenario measured.
type result struct {
	Scenario string `json:"scenario"`
	// Store is the store the scenario ran on ("" for raw).
	Store string `json:"store,omitempty"`
	// Unit is what Count counts: deliveries received, or events emitted.
	Unit string `json:"unit"`
	// Count is how many were counted in the measured Seconds.
	Count   int64   `json:"count"`
	Seconds float64 `json:"seconds"`
	PerSec  float64 `json:"perSecond"`
	// Latency says what P50Ms and P99Ms measure.
	Latency string  `json:"latency"`
	P50Ms   float64 `json:"p50Ms"`
	P99Ms   float64 `json:"p99Ms"`
	// CPUMicros is the processor time (user and system, all threads) the
	// process used per Unit while measuring, in microseconds: the
	// receiver's share included, as in every scenario. Less noisy than
	// PerSec on a shared machine; 0 where it cannot be read.
	CPUMicros float64 `json:"cpuMicrosPerUnit,omitempty"`
	// PeakRSS is the peak resident set in bytes of RSSScope.
	PeakRSS  int64  `json:"peakRSSBytes"`
	RSSScope string `json:"rssScope"`
	// Ratio is PerSec over the raw ceiling's (0 without a raw run, and for
	// emit and backlog, which measure something else). With several
	// rounds it is the median of the rounds' own ratios, each scenario
	// over the raw run of its round.
	Ratio float64 `json:"ratioToRaw,omitempty"`
	// Errors counts failed Emits, POSTs or bodies without an emit time.
	Errors int64 `json:"errors"`
	// Extra holds scenario-specific figures (fill and drain times, the
	// hung endpoint's hits, the drain phase's own peak RSS, …).
	Extra map[string]float64 `json:"extra,omitempty"`
	// Target is the goal the scenario is held to, with its verdict.
	Target *target `json:"target,omitempty"`
	// Note explains a skip or a setting; Error is why the scenario failed.
	Note  string `json:"note,omitempty"`
	Error string `json:"error,omitempty"`

	// rawRatios are the rounds' own ratios to raw, ascending (see
	// pairedRatios); with two or more, judge notes the lowest and the
	// highest.
	rawRatios []float64
	// pairedRaw, pairedCPU and pairedFanout are the medians over several
	// rounds of the per-round ratios to raw (rate and CPU per unit) and
	// (hung) to fanout; 0 with one round.
	pairedRaw, pairedCPU, pairedFanout float64
	// medianRSS is the median over several rounds of the runs' peak RSS
	// (the higher middle one for an even count); 0 with one round.
	medianRSS int64
	// hwmReset reports that the scenario reset the process's VmHWM (the
	// backlog, after its fill).
	hwmReset bool
	// skipped reports a scenario the run did not run (pg without -pg).
	skipped bool
}

// noRatio are the scenarios whose figure is not comparable with raw's:
// emit counts events and sends nothing; backlog's time includes a start.
var noRatio = []string{"emit", "backlog"}

// target is a goal on one figure of a result.
type target struct {
	// Metric is "ratioToRaw", "perSecond", "ratioToFanout" or "peakRSSMiB".
	Metric string  `json:"metric"`
	Op     string  `json:"op"` // ">=" or "<"
	Goal   float64 `json:"goal"`
	Value  float64 `json:"value"`
	Met    bool    `json:"met"`
}

func (t *target) String() string {
	mark := "MISSED"
	if t.Met {
		mark = "ok"
	}
	return fmt.Sprintf("%s %s %s %s", t.Metric, t.Op, trimFloat(t.Goal), mark)
}

// agree returns s, t.Value printed with some precision, or, when that
// rounding puts it on the other side of the goal than the verdict (0.7996,
// missed, as 0.80), t.Value with as many more digits as it takes.
func (t *target) agree(s string) string {
	side := func(v float64) bool {
		if t.Op == "<" {
			return v < t.Goal
		}
		return v >= t.Goal
	}
	digits := 0
	if i := strings.IndexByte(s, '.'); i >= 0 {
		digits = len(s) - i - 1
	}
	for ; digits <= 9; digits++ {
		s := strconv.FormatFloat(t.Value, 'f', digits, 64)
		if v, err := strconv.ParseFloat(s, 64); err == nil && side(v) == t.Met {
			return s
		}
	}
	return strconv.FormatFloat(t.Value, 'g', -1, 64)
}

// report is the whole run.
type report struct {
	Started     time.Time `json:"started"`
	GoVersion   string    `json:"goVersion"`
	GOOS        string    `json:"goos"`
	GOARCH      string    `json:"goarch"`
	NumCPU      int       `json:"numCPU"`
	GOMAXPROCS  int       `json:"gomaxprocs"`
	Duration    string    `json:"duration"`
	Rounds      int       `json:"rounds"`
	Warmup      string    `json:"warmup"`
	Concurrency int       `json:"concurrency"`
	Emitters    int       `json:"emitters"`
	Window      int       `json:"window"`
	Backlog     int       `json:"backlog"`
	Attempt     string    `json:"attemptTimeout"`
	BoltSync    bool      `json:"boltFsync"`
	DataBytes   int       `json:"dataBytes"`
	Results     []*result `json:"results"`
}

func newReport(o *options) *report {
	return &report{
		Started:     time.Now().UTC(),
		GoVersion:   runtime.Version(),
		GOOS:        runtime.GOOS,
		GOARCH:      runtime.GOARCH,
		NumCPU:      runtime.NumCPU(),
		GOMAXPROCS:  runtime.GOMAXPROCS(0),
		Duration:    o.Duration.String(),
		Rounds:      o.Rounds,
		Warmup:      o.Warmup.String(),
		Concurrency: o.Concurrency,
		Emitters:    o.Emitters,
		Window:      o.Window,
		Backlog:     o.Backlog,
		Attempt:     o.AttemptTimeout.String(),
		BoltSync:    !o.NoSync,
		DataBytes:   o.DataBytes,
	}
}

func (rep *report) find(name string) *result {
	for _, r := range rep.Results {
		if r.Scenario == name {
			return r
		}
	}
	return nil
}

// judge computes the ratios and checks the targets.
func (rep *report) judge() {
	raw := rep.find("raw")
	for _, r := range rep.Results {
		if r.Error == "" && r.Count == 0 && !r.skipped {
			r.Error = "nothing was counted in the measured window"
		}
		if r.Error != "" || r.skipped {
			continue
		}
		if raw != nil && raw.Error == "" && raw.PerSec > 0 && !slices.Contains(noRatio, r.Scenario) {
			r.Ratio = r.PerSec / raw.PerSec
			if r.pairedRaw > 0 {
				r.Ratio = r.pairedRaw
			}
			// What the ratio would be if throughput were bound by the
			// processor alone: raw's CPU per delivery over this one's.
			// With several rounds, the median of the rounds' own.
			cpu := r.pairedCPU
			if cpu == 0 && raw.CPUMicros > 0 {
				cpu = cpuPerUnit(r, raw)
			}
			if r != raw && cpu > 0 {
				if r.Extra == nil {
					r.Extra = map[string]float64{}
				}
				r.Extra["cpuRatioToRaw"] = cpu
			}
			// The spread of the rounds' own ratios: whether the target
			// held in every round, or in the median one only.
			if n := len(r.rawRatios); r != raw && n >= 2 {
				if r.Extra == nil {
					r.Extra = map[string]float64{}
				}
				r.Extra["minRatioToRaw"], r.Extra["maxRatioToRaw"] = r.rawRatios[0], r.rawRatios[n-1]
			}
		}
		switch r.Scenario {
		case "mem", "bolt":
			goal := 0.80
			if r.Scenario == "bolt" {
				goal = 0.50
			}
			switch {
			case r.Ratio > 0:
				r.Target = atLeast("ratioToRaw", goal, r.Ratio)
			case raw == nil:
				r.Note = joinNote(r.Note, fmt.Sprintf("target (%s of raw) not judged: add raw to -scenarios", trimFloat(goal)))
			}
		case "emit":
			r.Target = atLeast("perSecond", 20_000, r.PerSec)
		case "hung":
			if f := rep.find("fanout"); f != nil && f.Error == "" && f.PerSec > 0 {
				v := r.PerSec / f.PerSec
				if r.pairedFanout > 0 {
					v = r.pairedFanout
				}
				r.Target = atLeast("ratioToFanout", 0.90, v)
				// Each event still costs 10 enqueued deliveries of which 9
				// arrive: per endpoint, the healthy ones fare this well.
				if r.Extra == nil {
					r.Extra = map[string]float64{}
				}
				r.Extra["perEndpointRatioToFanout"] = v * 10 / 9
			}
		case "backlog":
			rss := r.PeakRSS
			if r.medianRSS > 0 {
				rss = r.medianRSS
			}
			mib := float64(rss) / (1 << 20)
			r.Target = &target{Metric: "peakRSSMiB", Op: "<", Goal: 150, Value: mib, Met: mib < 150}
		}
	}
}

func atLeast(metric string, goal, v float64) *target {
	return &target{Metric: metric, Op: ">=", Goal: goal, Value: v, Met: v >= goal}
}

func writeJSON(w io.Writer, rep *report) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(rep)
}

// writeTable prints the results as a table, then the notes.
func writeTable(w io.Writer, rep *report) {
	fsync := "fsync on"
	if !rep.BoltSync {
		fsync = "fsync off"
	}
	rounds := ""
	if rep.Rounds > 1 {
		rounds = fmt.Sprintf(", median of %d rounds", rep.Rounds)
	}
	fmt.Fprintf(w, "webhookbench %s %s/%s, %d CPU, concurrency %d, emitters %d, window %d, %s per scenario%s, bolt %s, attempt timeout %s\n\n",
		rep.GoVersion, rep.GOOS, rep.GOARCH, rep.NumCPU, rep.Concurrency, rep.Emitters, rep.Window, rep.Duration, rounds, fsync, rep.Attempt)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "scenario\tstore\tper second\tunit\tCPU µs/unit\tp50 ms\tp99 ms\tpeak RSS MiB\tvs raw\ttarget\t")
	var notes []string
	for _, r := range rep.Results {
		if r.Error != "" {
			fmt.Fprintf(tw, "%s\t%s\tFAILED\t\t\t\t\t\t\t\t\n", r.Scenario, r.Store)
			notes = append(notes, fmt.Sprintf("%s: %s", r.Scenario, r.Error))
			continue
		}
		if r.Note != "" {
			notes = append(notes, fmt.Sprintf("%s: %s", r.Scenario, r.Note))
		}
		if r.skipped {
			fmt.Fprintf(tw, "%s\t%s\tskipped\t\t\t\t\t\t\t\t\n", r.Scenario, r.Store)
			continue
		}
		perSec, rss := fmt.Sprintf("%.0f", r.PerSec), fmt.Sprintf("%.1f", float64(r.PeakRSS)/(1<<20))
		ratio, tgt := "", ""
		if r.Ratio > 0 {
			ratio = fmt.Sprintf("%.2f", r.Ratio)
		}
		if t := r.Target; t != nil {
			// The judged figure, wherever it is printed, on the side of
			// the goal its verdict says.
			switch t.Metric {
			case "ratioToRaw":
				ratio = t.agree(ratio)
			case "perSecond":
				perSec = t.agree(perSec)
			case "peakRSSMiB":
				if float64(r.PeakRSS)/(1<<20) == t.Value { // else the median of several rounds
					rss = t.agree(rss)
				}
			}
			tgt = fmt.Sprintf("%s %s %s: %s", t.Metric, t.Op, trimFloat(t.Goal), t.agree(trimFloat(t.Value)))
			if t.Met {
				tgt += " ok"
			} else {
				tgt += " MISSED"
			}
		}
		cpu := ""
		if r.CPUMicros > 0 {
			cpu = fmt.Sprintf("%.1f", r.CPUMicros)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%.2f\t%.2f\t%s\t%s\t%s\t\n",
			r.Scenario, r.Store, perSec, r.Unit, cpu, r.P50Ms, r.P99Ms, rss, ratio, tgt)
		if r.Errors > 0 {
			notes = append(notes, fmt.Sprintf("%s: %d errors", r.Scenario, r.Errors))
		}
	}
	tw.Flush()
	if len(notes) > 0 {
		fmt.Fprintln(w)
		for _, n := range notes {
			fmt.Fprintln(w, n)
		}
	}
	fmt.Fprintln(w)
	for _, r := range rep.Results {
		if len(r.Extra) == 0 {
			continue
		}
		var parts []string
		for _, k := range sortedKeys(r.Extra) {
			parts = append(parts, fmt.Sprintf("%s=%s", k, trimFloat(r.Extra[k])))
		}
		fmt.Fprintf(w, "%s: %s\n", r.Scenario, strings.Join(parts, " "))
	}
}

func trimFloat(v float64) string {
	switch {
	case v >= 1000:
		return fmt.Sprintf("%.0f", v)
	case v >= 10:
		return fmt.Sprintf("%.1f", v)
	default:
		return fmt.Sprintf("%.3g", v)
	}
}
