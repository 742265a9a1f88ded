package sim

import (
	"encoding/hex"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"
)

// Result is what a run measured. It marshals as the `--json` summary.
type Result struct {
	Scenario  string  `json:"scenario"`
	Seed      uint64  `json:"seed"`
	Duration  float64 `json:"duration_s"`
	TraceHash string  `json:"trace_sha256"`
	// Events is the number of link events in the transcript.
	Events int `json:"events"`
	// Messages is how many messages the send actions produced; Failed how
	// many of them failed at the sender: not in the room (such a message
	// expects no deliveries), refused, or unanswered after every attempt.
	// Expected is how many (message, recipient) deliveries the messages
	// should give (the other members when it was sent); Delivered how many
	// reached a /sync.
	Messages      int          `json:"messages"`
	Failed        int          `json:"messages_failed"`
	Expected      int          `json:"deliveries_expected"`
	Delivered     int          `json:"deliveries"`
	DeliveryRatio float64      `json:"delivery_ratio"`
	Latency       LatencyStats `json:"latency"`
	Paths         []PathStats  `json:"paths"`
	Links         []LinkResult `json:"links"`
	// TotalBytes is every byte put on the air, on all links (forwarded
	// datagrams count on each hop).
	TotalBytes        int     `json:"total_bytes"`
	BytesPerDelivered float64 `json:"bytes_per_delivery"`
	Unroutable        int     `json:"unroutable"`
	// Undelivered lists up to maxListed missing deliveries, "#id from → to".
	Undelivered []string `json:"undelivered"`
	Failures    []string `json:"failures"`

	// For the picture: transmissions, link specs, deliveries (sent,
	// delivered) and the send times of missing deliveries.
	spans      []span
	specs      []LinkSpec
	deliveries [][2]time.Duration
	missed     []time.Duration
}

// maxListed bounds the undelivered messages listed in a Result.
const maxListed = 100

// LatencyStats summarise delivery latencies (send action to /sync), in
// seconds.
type LatencyStats struct {
	P50 float64 `json:"p50_s"`
	P95 float64 `json:"p95_s"`
	Max float64 `json:"max_s"`
}

// PathStats are the deliveries from one server's users to another's.
type PathStats struct {
	Path      string       `json:"path"`
	Expected  int          `json:"expected"`
	Delivered int          `json:"delivered"`
	Latency   LatencyStats `json:"latency"`
}

// LinkResult is one link direction.
type LinkResult struct {
	Link string `json:"link"`
	From string `json:"from"`
	To   string `json:"to"`
	LinkStats
	// Utilisation is the airtime as a fraction of the run.
	Utilisation float64 `json:"utilisation"`
}

func latency(ds []time.Duration) LatencyStats {
	if len(ds) == 0 {
		return LatencyStats{}
	}
	ds = slices.Clone(ds)
	slices.Sort(ds)
	q := func(p float64) float64 {
		i := int(p*float64(len(ds))+0.999999) - 1 // nearest rank
		return ds[max(0, min(i, len(ds)-1))].Seconds()
	}
	return LatencyStats{P50: q(0.50), P95: q(0.95), Max: ds[len(ds)-1].Seconds()}
}

func (s *Sim) result() *Result {
	r := &Result{Scenario: s.sc.Name, Seed: s.seed, Duration: s.sc.Duration.D().Seconds(),
		TraceHash: hex.EncodeToString(s.trace.Sum(nil)), Events: s.events, Messages: len(s.msgs),
		Unroutable: s.unroutable, Failures: s.failures, spans: s.spans}
	if r.Failures == nil {
		r.Failures = []string{}
	}
	r.Undelivered = []string{}
	var all []time.Duration
	paths := map[string]*PathStats{}
	pathLat := map[string][]time.Duration{}
	var order []string
	for _, m := range s.msgs {
		if m.failed {
			r.Failed++
		}
		for _, to := range m.expect {
			p := m.from.sv.name + " → " + to.sv.name
			ps := paths[p]
			if ps == nil {
				ps = &PathStats{Path: p}
				paths[p] = ps
				order = append(order, p)
			}
			r.Expected++
			ps.Expected++
			at, ok := m.delivered[to]
			if !ok {
				r.missed = append(r.missed, m.sentAt)
				if len(r.Undelivered) < maxListed {
					r.Undelivered = append(r.Undelivered, fmt.Sprintf("#%d %s → %s (sent at %v)", m.id, m.from.spec.User, to.spec.User, m.sentAt))
				}
				continue
			}
			r.Delivered++
			ps.Delivered++
			all = append(all, at-m.sentAt)
			pathLat[p] = append(pathLat[p], at-m.sentAt)
			r.deliveries = append(r.deliveries, [2]time.Duration{m.sentAt, at})
		}
	}
	if r.Expected > 0 {
		r.DeliveryRatio = float64(r.Delivered) / float64(r.Expected)
	}
	r.Latency = latency(all)
	slices.Sort(order)
	for _, p := range order {
		ps := paths[p]
		ps.Latency = latency(pathLat[p])
		r.Paths = append(r.Paths, *ps)
	}
	for _, l := range s.links {
		r.specs = append(r.specs, l.spec)
		for d := range 2 {
			ld := l.dirs[d]
			r.TotalBytes += ld.stats.SentBytes
			r.Links = append(r.Links, LinkResult{Link: l.spec.Name, From: s.eps[l.from(d)].name, To: s.eps[l.to(d)].name,
				LinkStats: ld.stats, Utilisation: ld.stats.Airtime.Seconds() / s.sc.Duration.D().Seconds()})
		}
	}
	if r.Delivered > 0 {
		r.BytesPerDelivered = float64(r.TotalBytes) / float64(r.Delivered)
	}
	return r
}

// WriteText writes the human summary.
func (r *Result) WriteText(w io.Writer) error {
	var b strings.Builder
	name := r.Scenario
	if name == "" {
		name = "(unnamed)"
	}
	fmt.Fprintf(&b, "scenario   %s, seed %d, %v of virtual time\n", name, r.Seed, time.Duration(r.Duration*float64(time.Second)))
	fmt.Fprintf(&b, "trace      sha256 %s (%d link events)\n", r.TraceHash, r.Events)
	failed := ""
	if r.Failed > 0 {
		failed = fmt.Sprintf(" (%d failed at the sender)", r.Failed)
	}
	fmt.Fprintf(&b, "messages   %d sent%s, %d of %d deliveries to /sync (%.1f %%)\n", r.Messages, failed, r.Delivered, r.Expected, 100*r.DeliveryRatio)
	fmt.Fprintf(&b, "latency    p50 %s  p95 %s  max %s\n", secs(r.Latency.P50), secs(r.Latency.P95), secs(r.Latency.Max))
	for _, p := range r.Paths {
		fmt.Fprintf(&b, "  %-34s %4d/%-4d p50 %s  p95 %s  max %s\n", p.Path, p.Delivered, p.Expected,
			secs(p.Latency.P50), secs(p.Latency.P95), secs(p.Latency.Max))
	}
	per := "-"
	if r.Delivered > 0 {
		per = fmt.Sprintf("%.0f B", r.BytesPerDelivered)
	}
	fmt.Fprintf(&b, "bytes      %d B on the air, %s per delivery\n", r.TotalBytes, per)
	fmt.Fprintf(&b, "links      %-28s %7s %9s %6s %5s %5s %5s %6s\n", "direction", "dgrams", "bytes", "lost", "down", "qdrop", "maxq", "air")
	for _, l := range r.Links {
		fmt.Fprintf(&b, "  %-37s %7d %9d %6d %5d %5d %5d %5.1f%%\n", l.From+" → "+l.To, l.Sent, l.SentBytes, l.Lost,
			l.LostDown, l.QueueDrops+l.Oversize, l.MaxQueue, 100*l.Utilisation)
	}
	if r.Unroutable > 0 {
		fmt.Fprintf(&b, "unroutable %d datagrams\n", r.Unroutable)
	}
	for i, u := range r.Undelivered {
		if i == 10 {
			fmt.Fprintf(&b, "  … %d more\n", len(r.Undelivered)-10)
			break
		}
		fmt.Fprintf(&b, "undelivered %s\n", u)
	}
	if len(r.Failures) > 0 {
		fmt.Fprintf(&b, "failures   %d\n", len(r.Failures))
		for i, f := range r.Failures {
			if i == 10 {
				fmt.Fprintf(&b, "  … %d more\n", len(r.Failures)-10)
				break
			}
			fmt.Fprintf(&b, "  %s\n", f)
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func secs(s float64) string { return fmt.Sprintf("%.1fs", s) }
