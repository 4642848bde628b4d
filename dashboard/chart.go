package dashboard

import (
	"fmt"
	"time"

	"github.com/noa-server/webhook/store"
)

// Geometry of the chart, in SVG user units.
const (
	chartBuckets = 24
	chartWidth   = 600
	chartHeight  = 100
	barGap       = 3
)

// bucketWidths are the bucket durations a chart picks from: the smallest
// that spans the sample in chartBuckets buckets.
var bucketWidths = []time.Duration{
	time.Minute, 2 * time.Minute, 5 * time.Minute, 10 * time.Minute, 15 * time.Minute, 30 * time.Minute,
	time.Hour, 2 * time.Hour, 3 * time.Hour, 6 * time.Hour, 12 * time.Hour,
	24 * time.Hour, 2 * 24 * time.Hour, 7 * 24 * time.Hour,
}

// chart is the data of the successes-and-failures chart: an SVG drawn by
// the template from these numbers, with no script.
type chart struct {
	Width, Height int
	Bars          []bar
	// Success and Failed are the totals drawn; Sampled is how many
	// deliveries were read, Capped whether that was the sample's limit (so
	// older deliveries are left out).
	Success, Failed int
	Sampled         int
	Capped          bool
	// Max is the tallest bar's count.
	Max int
	// Bucket is the width of one bar ("5m"); From and To label the axis,
	// in UTC, which To names.
	Bucket   string
	From, To string
}

// bar is one bucket: the success part at the bottom, the failed part on
// top of it.
type bar struct {
	X, W             float64
	SuccessY, SuccHt float64
	FailedY, FailHt  float64
	Success, Failed  int
	Title            string
}

// newChart counts the finished deliveries of sample (newest first, as
// ListDeliveries returns them) in chartBuckets buckets ending now. capped
// says the sample was cut at its limit.
func newChart(sample []*store.Delivery, now time.Time, capped bool) chart {
	c := chart{Width: chartWidth, Height: chartHeight, Sampled: len(sample), Capped: capped}
	now = now.UTC()
	oldest := now
	for _, d := range sample {
		if d.Status.Finished() && d.CreatedAt.Before(oldest) {
			oldest = d.CreatedAt.UTC()
		}
	}
	width := bucketWidths[len(bucketWidths)-1]
	for _, w := range bucketWidths {
		if now.Sub(oldest) < w*(chartBuckets-1) {
			width = w
			break
		}
	}
	end := now.Truncate(width).Add(width)
	start := end.Add(-width * chartBuckets)

	var succ, fail [chartBuckets]int
	for _, d := range sample {
		t := d.CreatedAt.UTC()
		if !d.Status.Finished() || t.Before(start) || !t.Before(end) {
			continue
		}
		i := int(t.Sub(start) / width)
		if d.Status == store.StatusSuccess {
			succ[i]++
			c.Success++
		} else {
			fail[i]++
			c.Failed++
		}
	}
	for i := range chartBuckets {
		c.Max = max(c.Max, succ[i]+fail[i])
	}
	scale := 0.0
	if c.Max > 0 {
		scale = float64(chartHeight) / float64(c.Max)
	}
	bw := float64(chartWidth) / chartBuckets
	for i := range chartBuckets {
		from := start.Add(width * time.Duration(i))
		b := bar{
			X: float64(i)*bw + barGap/2.0, W: bw - barGap,
			Success: succ[i], Failed: fail[i],
			SuccHt: float64(succ[i]) * scale,
			FailHt: float64(fail[i]) * scale,
		}
		b.SuccessY = chartHeight - b.SuccHt
		b.FailedY = b.SuccessY - b.FailHt
		b.Title = fmt.Sprintf("%s–%s UTC: %d succeeded, %d failed",
			axisLabel(from, width), axisLabel(from.Add(width), width), succ[i], fail[i])
		c.Bars = append(c.Bars, b)
	}
	c.Bucket = roughly(width)
	c.From = axisLabel(start, width)
	c.To = axisLabel(end, width) + " UTC"
	return c
}

// axisLabel formats t as precisely as a bucket of width needs.
func axisLabel(t time.Time, width time.Duration) string {
	if width >= 24*time.Hour {
		return t.Format("Jan 2")
	}
	if width >= time.Hour {
		return t.Format("Jan 2 15:04")
	}
	return t.Format("15:04")
}
