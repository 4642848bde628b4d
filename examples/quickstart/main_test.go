package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"
)

// TestMain fails the package when a goroutine outlives run: the dispatcher,
// the receiver's server and its connections must all be stopped. With
// QUICKSTART_MAIN=1 the test binary is the program instead, for the tests
// that need a process of their own.
func TestMain(m *testing.M) {
	if os.Getenv("QUICKSTART_MAIN") == "1" {
		main()
		os.Exit(0)
	}
	goleak.VerifyTestMain(m)
}

// runMain runs the program in a child process with its temporary directory
// under a fresh TMPDIR and stdout as given, and checks that nothing is left
// there afterwards. When progress is not nil it is called once, with the
// process, at the program's first write to stderr: its progress line, while
// the deliveries are under way.
func runMain(t *testing.T, stdout io.Writer, progress func(*os.Process)) (stderr string, err error) {
	t.Helper()
	tmp := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, os.Args[0])
	cmd.Env = append(os.Environ(), "QUICKSTART_MAIN=1", "TMPDIR="+tmp)
	cmd.Stdout = stdout
	errOut := &firstWrite{f: func() {
		if progress != nil {
			progress(cmd.Process)
		}
	}}
	cmd.Stderr = errOut
	err = cmd.Run()
	left, rerr := os.ReadDir(tmp)
	if rerr != nil {
		t.Fatal(rerr)
	}
	if len(left) != 0 {
		t.Errorf("temporary directory not removed: %v", left)
	}
	return errOut.b.String(), err
}

// firstWrite is a buffer that calls f at its first write. exec.Cmd writes
// to it from one goroutine, and Run returns once that goroutine is done.
type firstWrite struct {
	b bytes.Buffer
	f func()
}

func (w *firstWrite) Write(p []byte) (int, error) {
	if w.f != nil {
		w.f()
		w.f = nil
	}
	return w.b.Write(p)
}

// events are the event types the quickstart emits, in order.
var events = []string{
	"workflow.completed", "agent.status.changed", "agent.task.completed",
	"workflow.failed", "swarm.created", "system.alert", "user.registered",
}

// runIn runs the demo in-process with its temporary directory under a
// fresh TMPDIR, and checks that nothing is left there afterwards.
func runIn(t *testing.T, demo func(ctx context.Context, stdout, stderr io.Writer) error) (stdout, stderr string, err error) {
	t.Helper()
	tmp := t.TempDir()
	t.Setenv("TMPDIR", tmp)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var out, errOut bytes.Buffer
	err = demo(ctx, &out, &errOut)
	left, rerr := os.ReadDir(tmp)
	if rerr != nil {
		t.Fatal(rerr)
	}
	if len(left) != 0 {
		t.Errorf("temporary directory not removed: %v", left)
	}
	return out.String(), errOut.String(), err
}

func TestRun(t *testing.T) {
	stdout, stderr, err := runIn(t, run)
	if err != nil {
		t.Fatalf("run: %v\nstdout:\n%s\nstderr:\n%s", err, stdout, stderr)
	}
	for _, ev := range events {
		// One row per event: delivered, and every receiver check passed.
		want := `(?m)^` + regexp.QuoteMeta(ev) + `\s+success\s+(\d)\s+(\S+)\s+\S+\s+verified\s+matches\s+identical\s+\S`
		m := regexp.MustCompile(want).FindStringSubmatch(stdout)
		if m == nil {
			t.Errorf("no successful, verified row for %s in:\n%s", ev, stdout)
			continue
		}
		// system.alert fails once at the receiver, then succeeds.
		wantAttempts, wantCodes := "1", "200"
		if ev == "system.alert" {
			wantAttempts, wantCodes = "2", "500,200"
		}
		if m[1] != wantAttempts || m[2] != wantCodes {
			t.Errorf("%s: attempts %s, HTTP %s; want %s, %s", ev, m[1], m[2], wantAttempts, wantCodes)
		}
	}
	if !strings.Contains(stdout, "receiver: 8 requests, 7 processed, 1 failed, 0 duplicates, 0 rejected") {
		t.Errorf("receiver counters missing or wrong in:\n%s", stdout)
	}
	if !strings.Contains(stdout, "all 7 deliveries succeeded and were verified") {
		t.Errorf("no success line in:\n%s", stdout)
	}
	if !strings.Contains(stderr, "\r  delivered 7/7, 1 retried, 0 failed in ") {
		t.Errorf("progress line missing its final count: %q", stderr)
	}
}

// A receiver that keeps failing exhausts the retry budget: run reports the
// failed delivery instead of succeeding.
func TestRunReportsFailedDelivery(t *testing.T) {
	alwaysFailing := func(ctx context.Context, stdout, stderr io.Writer) error {
		return runWith(ctx, stdout, stderr, 100)
	}
	stdout, stderr, err := runIn(t, alwaysFailing)
	if err == nil {
		t.Fatalf("run succeeded with a failing receiver:\n%s", stdout)
	}
	if want := "system.alert: failed after 3 attempts"; !strings.Contains(err.Error(), want) {
		t.Errorf("error %q does not say %q", err, want)
	}
	if !regexp.MustCompile(`(?m)^system\.alert\s+failed\s+3\s+500,500,500\s`).MatchString(stdout) {
		t.Errorf("table does not show the failed delivery:\n%s", stdout)
	}
	if !strings.Contains(stderr, "\r  delivered 6/7, 2 retried, 1 failed in ") {
		t.Errorf("progress line does not count the failure: %q", stderr)
	}
	if strings.Contains(stdout, "all 7 deliveries succeeded") {
		t.Errorf("success line printed despite a failure:\n%s", stdout)
	}
}

// A reader that goes away early (go run ./examples/quickstart | head -1)
// makes the table's writes fail: the program still removes its temporary
// directory and exits 1, instead of being killed by SIGPIPE.
func TestMainClosedStdout(t *testing.T) {
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	r.Close()
	defer w.Close()
	stderr, err := runMain(t, w, nil)
	if exit, ok := errors.AsType[*exec.ExitError](err); !ok || exit.ExitCode() != 1 {
		t.Errorf("exit: %v, want exit status 1\nstderr:\n%s", err, stderr)
	}
}

// A TMPDIR that cannot hold the store's directory fails at once, with an
// error that names the setting to change.
func TestRunUnusableTempDir(t *testing.T) {
	file := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	for name, tmp := range map[string]string{
		"missing":       filepath.Join(t.TempDir(), "missing"),
		"not directory": file,
	} {
		t.Run(name, func(t *testing.T) {
			t.Setenv("TMPDIR", tmp)
			err := run(context.Background(), io.Discard, io.Discard)
			if err == nil || !strings.Contains(err.Error(), "TMPDIR") || !strings.Contains(err.Error(), tmp) {
				t.Errorf("run: %v, want an error naming TMPDIR and %s", err, tmp)
			}
		})
	}
}

// A signal while the deliveries are under way (Ctrl-C, kill, or the
// terminal closing) ends the program with exit status 1 and its temporary
// directory removed.
func TestMainSignal(t *testing.T) {
	for _, sig := range []syscall.Signal{syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP} {
		t.Run(sig.String(), func(t *testing.T) {
			stderr, err := runMain(t, io.Discard, func(p *os.Process) {
				if err := p.Signal(sig); err != nil {
					t.Error(err)
				}
			})
			if exit, ok := errors.AsType[*exec.ExitError](err); !ok || exit.ExitCode() != 1 {
				t.Errorf("exit: %v, want exit status 1\nstderr:\n%s", err, stderr)
			}
			if want := sig.String() + " signal received"; !strings.Contains(stderr, want) {
				t.Errorf("stderr does not say %q:\n%s", want, stderr)
			}
		})
	}
}

// A signal before the first delivery (Ctrl-C as the program starts) ends
// it with the signal's message, not with the error of whichever store
// call the cancelled context happened to interrupt.
func TestRunInterruptedEarly(t *testing.T) {
	cause := errors.New("interrupt signal received")
	ctx, cancel := context.WithCancelCause(context.Background())
	cancel(cause)
	_, _, err := runIn(t, func(_ context.Context, stdout, stderr io.Writer) error {
		return run(ctx, stdout, stderr)
	})
	if err == nil || err.Error() != cause.Error() {
		t.Errorf("run: %v, want %q alone", err, cause)
	}
}

// The quickstart takes no flags: -h says what it does instead of running
// it, and anything else is refused rather than ignored.
func TestArgs(t *testing.T) {
	for _, c := range []struct {
		args []string
		want error // nil: run the demo
	}{
		{nil, nil},
		{[]string{"-h"}, flag.ErrHelp},
		{[]string{"-help"}, flag.ErrHelp},
		{[]string{"-timeout", "5s"}, errUsage},
		{[]string{"extra"}, errUsage},
	} {
		var out bytes.Buffer
		err := checkArgs(c.args, &out)
		if !errors.Is(err, c.want) {
			t.Errorf("%q: %v, want %v", c.args, err, c.want)
		}
		if c.want != nil && !strings.Contains(out.String(), "go run ./examples/quickstart") {
			t.Errorf("%q: no usage in %q", c.args, out.String())
		}
	}
}
