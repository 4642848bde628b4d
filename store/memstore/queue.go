package memstore

import (
	"container/heap"
	"time"
)

// The claim index. Pending deliveries that are not under a lease sit in a
// per-webhook min-heap ordered by (NextAttemptAt, ID); the webhooks sit in a
// top-level min-heap ordered by the head of their own heap. Claim therefore
// walks deliveries in global (NextAttemptAt, ID) order, touches only due
// ones, and skips a webhook named in SkipWebhooks in one step however many
// due deliveries it has. Leased deliveries sit in a third heap ordered by
// LeaseExpiresAt, from which Claim moves expired ones back.

// readyLess orders deliveries by (NextAttemptAt, ID).
func readyLess(a, b *delRec) bool {
	if !a.d.NextAttemptAt.Equal(b.d.NextAttemptAt) {
		return a.d.NextAttemptAt.Before(b.d.NextAttemptAt)
	}
	return a.d.ID < b.d.ID
}

// whQueue is one webhook's heap of ready deliveries.
type whQueue struct {
	webhookID string
	items     []*delRec
	ti        int // index in the top heap; -1 when not in it
}

func (q *whQueue) Len() int           { return len(q.items) }
func (q *whQueue) Less(i, j int) bool { return readyLess(q.items[i], q.items[j]) }
func (q *whQueue) Swap(i, j int) {
	q.items[i], q.items[j] = q.items[j], q.items[i]
	q.items[i].qi = i
	q.items[j].qi = j
}
func (q *whQueue) Push(x any) {
	r := x.(*delRec)
	r.qi = len(q.items)
	q.items = append(q.items, r)
}
func (q *whQueue) Pop() any {
	n := len(q.items) - 1
	r := q.items[n]
	q.items[n] = nil
	q.items = q.items[:n]
	r.qi = -1
	return r
}

// topHeap orders webhook queues by their head delivery.
type topHeap []*whQueue

func (h topHeap) Len() int           { return len(h) }
func (h topHeap) Less(i, j int) bool { return readyLess(h[i].items[0], h[j].items[0]) }
func (h topHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].ti = i
	h[j].ti = j
}
func (h *topHeap) Push(x any) {
	q := x.(*whQueue)
	q.ti = len(*h)
	*h = append(*h, q)
}
func (h *topHeap) Pop() any {
	old := *h
	n := len(old) - 1
	q := old[n]
	old[n] = nil
	*h = old[:n]
	q.ti = -1
	return q
}

// leaseHeap orders leased deliveries by LeaseExpiresAt.
type leaseHeap []*delRec

func (h leaseHeap) Len() int { return len(h) }
func (h leaseHeap) Less(i, j int) bool {
	if !h[i].d.LeaseExpiresAt.Equal(h[j].d.LeaseExpiresAt) {
		return h[i].d.LeaseExpiresAt.Before(h[j].d.LeaseExpiresAt)
	}
	return h[i].d.ID < h[j].d.ID
}
func (h leaseHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].li = i
	h[j].li = j
}
func (h *leaseHeap) Push(x any) {
	r := x.(*delRec)
	r.li = len(*h)
	*h = append(*h, r)
}
func (h *leaseHeap) Pop() any {
	old := *h
	n := len(old) - 1
	r := old[n]
	old[n] = nil
	*h = old[:n]
	r.li = -1
	return r
}

// claimIndex holds every pending delivery exactly once: in its webhook's
// ready queue, or in the lease heap.
type claimIndex struct {
	queues map[string]*whQueue
	top    topHeap
	leases leaseHeap
}

func newClaimIndex() *claimIndex {
	return &claimIndex{queues: make(map[string]*whQueue)}
}

// addReady puts r in its webhook's ready queue.
func (x *claimIndex) addReady(r *delRec) {
	q := x.queues[r.d.WebhookID]
	if q == nil {
		q = &whQueue{webhookID: r.d.WebhookID, ti: -1}
		x.queues[r.d.WebhookID] = q
	}
	heap.Push(q, r)
	x.fixTop(q)
}

// addLeased puts r in the lease heap.
func (x *claimIndex) addLeased(r *delRec) {
	heap.Push(&x.leases, r)
}

// remove takes r out of whichever structure holds it.
func (x *claimIndex) remove(r *delRec) {
	if r.qi >= 0 {
		q := x.queues[r.d.WebhookID]
		heap.Remove(q, r.qi)
		x.fixTop(q)
	}
	if r.li >= 0 {
		heap.Remove(&x.leases, r.li)
	}
}

// fixTop restores q's place in the top heap after its head changed.
func (x *claimIndex) fixTop(q *whQueue) {
	switch {
	case len(q.items) == 0 && q.ti >= 0:
		heap.Remove(&x.top, q.ti)
	case len(q.items) == 0:
		// Not in the top heap and nothing to add.
	case q.ti >= 0:
		heap.Fix(&x.top, q.ti)
	default:
		heap.Push(&x.top, q)
	}
	if len(q.items) == 0 {
		delete(x.queues, q.webhookID)
	}
}

// expire moves deliveries whose lease ended at or before now back to the
// ready queues. Their lease fields are kept: the old owner may still
// complete them until someone else claims them.
func (x *claimIndex) expire(now time.Time) {
	for len(x.leases) > 0 && !x.leases[0].d.LeaseExpiresAt.After(now) {
		r := heap.Pop(&x.leases).(*delRec)
		x.addReady(r)
	}
}

// claim pops up to limit due deliveries in (NextAttemptAt, ID) order,
// passing over the webhooks in skip. It returns them out of every
// structure; the caller leases them and calls addLeased.
func (x *claimIndex) claim(now time.Time, limit int, skip map[string]bool) []*delRec {
	var out []*delRec
	var aside []*whQueue
	for len(out) < limit && len(x.top) > 0 {
		q := x.top[0]
		head := q.items[0]
		if head.d.NextAttemptAt.After(now) {
			break
		}
		if skip[q.webhookID] {
			heap.Pop(&x.top)
			aside = append(aside, q)
			continue
		}
		heap.Pop(q)
		x.fixTop(q)
		if head.d.LeaseOwner != "" && head.d.LeaseExpiresAt.After(now) {
			// Still leased at this (earlier) Now: back to the lease heap.
			x.addLeased(head)
			continue
		}
		out = append(out, head)
	}
	for _, q := range aside {
		heap.Push(&x.top, q)
	}
	return out
}
