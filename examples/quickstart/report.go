package main

import (
	"bytes"
	"context"
	"crypto/subtle"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/noa-server/webhook"
	"github.com/noa-server/webhook/receiver"
	"github.com/noa-server/webhook/store"
)

// recorder keeps what the receiver saw of each event, by event id, so the
// report can set it beside what the sender stored. A real receiver needs
// none of this: Verify has already refused anything unsigned.
type recorder struct {
	mu   sync.Mutex
	seen map[string]*seen
}

type seen struct {
	requests int    // requests that passed Verify
	standard bool   // signed webhook-id header present and equal to the payload id
	legacy   bool   // X-Webhook-Signature equal to webhook.SignLegacy(secret, body)
	body     []byte // the raw bytes Verify checked
	note     string // what the handler did
}

func newRecorder() *recorder { return &recorder{seen: make(map[string]*seen)} }

// inspect is middleware mounted inside Verify: every request reaching it has
// a valid Standard Webhooks signature. It also checks the guide's legacy
// header and keeps the raw body.
func (r *recorder) inspect(secret string) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
			e, _ := receiver.EventFromContext(req.Context())
			raw, _ := receiver.RawBodyFromContext(req.Context())
			legacy := subtle.ConstantTimeCompare(
				[]byte(req.Header.Get(webhook.HeaderSignature)),
				[]byte(webhook.SignLegacy(secret, raw))) == 1
			if e != nil {
				r.mu.Lock()
				s := r.get(e.ID)
				s.requests++
				s.standard = e.MessageID != "" && e.MessageID == e.ID
				s.legacy = legacy
				s.body = bytes.Clone(raw)
				r.mu.Unlock()
			}
			next.ServeHTTP(w, req)
		})
	}
}

// handled records what a handler did with an event.
func (r *recorder) handled(eventID, note string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.get(eventID).note = note
}

func (r *recorder) get(eventID string) *seen {
	s, ok := r.seen[eventID]
	if !ok {
		s = &seen{}
		r.seen[eventID] = s
	}
	return s
}

// report prints one row per delivery, in emit order: the sender's record
// from the store, then the receiver's checks. It fails when any delivery
// did not succeed or any check did not pass.
func report(ctx context.Context, out io.Writer, st store.Store, deliveryIDs []string, rec *recorder, health *receiver.Health) error {
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "EVENT\tSTATUS\tATTEMPTS\tHTTP\tLAST ATTEMPT\tSTANDARD SIG\tLEGACY SIG\tBODY\tHANDLER")
	var problems []string
	rec.mu.Lock()
	defer rec.mu.Unlock()
	for _, id := range deliveryIDs {
		d, err := st.GetDelivery(ctx, id)
		if err != nil {
			return err
		}
		attempts, err := st.ListAttempts(ctx, id)
		if err != nil {
			return err
		}
		codes := make([]string, len(attempts))
		var last time.Duration
		for i, a := range attempts {
			codes[i] = strconv.Itoa(a.ResponseStatus)
			last = a.Duration
		}

		s := rec.seen[d.EventID]
		if s == nil {
			s = &seen{} // never reached the receiver's handlers
		}
		note := s.note
		if note == "" {
			note = "-"
		}
		same := s.body != nil && bytes.Equal(s.body, d.Body)
		fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%v\t%s\t%s\t%s\t%s\n",
			d.EventType, d.Status, d.Attempts, strings.Join(codes, ","), last.Round(10*time.Microsecond),
			check(s.standard, "verified"), check(s.legacy, "matches"), check(same, "identical"), note)

		switch {
		case d.Status != store.StatusSuccess:
			problems = append(problems, fmt.Sprintf("%s: %s after %d attempts (%s)", d.EventType, d.Status, d.Attempts, d.LastError))
		case !s.standard || !s.legacy || !same:
			problems = append(problems, d.EventType+": not verified by the receiver")
		}
	}
	if err := tw.Flush(); err != nil {
		return err
	}

	hs := health.Stats()
	fmt.Fprintf(out, "\nreceiver: %d requests, %d processed, %d failed, %d duplicates, %d rejected\n",
		hs.Received, hs.Processed, hs.Failed, hs.Duplicates, hs.Rejected)
	fmt.Fprintln(out, "STANDARD SIG: webhook-id/-timestamp/-signature verified by receiver.Verify (timestamp within 5 min)")
	fmt.Fprintln(out, "LEGACY SIG:   X-Webhook-Signature equals webhook.SignLegacy(secret, body)")
	fmt.Fprintln(out, "BODY:         bytes received equal the bytes the store sent")
	if len(problems) > 0 {
		return fmt.Errorf("%d of %d deliveries failed or were not verified:\n  %s",
			len(problems), len(deliveryIDs), strings.Join(problems, "\n  "))
	}
	fmt.Fprintf(out, "\nall %d deliveries succeeded and were verified\n", len(deliveryIDs))
	return nil
}

func check(ok bool, yes string) string {
	if ok {
		return yes
	}
	return "NO"
}
