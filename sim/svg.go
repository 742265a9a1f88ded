package sim

import (
	"fmt"
	"html"
	"io"
	"math"
	"strings"
	"time"
)

// Picture geometry, in SVG user units (px).
const (
	svgWidth    = 1200
	svgLeft     = 190 // room for the row labels
	svgRight    = 20
	svgTop      = 56
	svgRow      = 24
	svgPlotH    = 180 // the latency panel
	svgMaxRects = 4000
)

// WriteSVG draws the run: one row per link direction with every
// transmission as a bar (blue delivered, red lost), partitions shaded
// grey and duty-cycle off times pale yellow; below, each delivery as a dot
// at (delivery time, latency) and each missing delivery as a red cross at
// its send time.
func (r *Result) WriteSVG(w io.Writer) error {
	var b strings.Builder
	dur := time.Duration(r.Duration * float64(time.Second))
	plotW := float64(svgWidth - svgLeft - svgRight)
	x := func(t time.Duration) float64 { return svgLeft + plotW*float64(t)/float64(dur) }
	rows := len(r.Links)
	linksH := rows * svgRow
	panelTop := svgTop + linksH + 50
	height := panelTop + svgPlotH + 60

	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="sans-serif" font-size="12">`+"\n",
		svgWidth, height, svgWidth, height)
	fmt.Fprintf(&b, `<rect width="100%%" height="100%%" fill="white"/>`+"\n")
	title := r.Scenario
	if title == "" {
		title = "mxmesh sim"
	}
	fmt.Fprintf(&b, `<text x="%d" y="20" font-size="15" font-weight="bold">%s</text>`+"\n", svgLeft, html.EscapeString(title))
	fmt.Fprintf(&b, `<text x="%d" y="38" fill="#444">seed %d · %d/%d deliveries (%.0f %%) · p50 %s p95 %s · %d B on the air · trace %s…</text>`+"\n",
		svgLeft, r.Seed, r.Delivered, r.Expected, 100*r.DeliveryRatio, secs(r.Latency.P50), secs(r.Latency.P95), r.TotalBytes, r.TraceHash[:12])

	// Time axis ticks over both panels.
	step := tickStep(dur)
	for t := time.Duration(0); t <= dur; t += step {
		xt := x(t)
		fmt.Fprintf(&b, `<line x1="%.1f" y1="%d" x2="%.1f" y2="%d" stroke="#e4e4e4"/>`+"\n", xt, svgTop, xt, panelTop+svgPlotH)
		fmt.Fprintf(&b, `<text x="%.1f" y="%d" text-anchor="middle" fill="#555">%s</text>`+"\n", xt, panelTop+svgPlotH+16, shortDur(t))
	}
	fmt.Fprintf(&b, `<text x="%d" y="%d" text-anchor="middle" fill="#555">virtual time</text>`+"\n", svgLeft+int(plotW/2), panelTop+svgPlotH+34)

	// Link rows.
	rects := 0
	for i, l := range r.Links {
		y := svgTop + i*svgRow
		if i%2 == 0 && i > 0 {
			fmt.Fprintf(&b, `<line x1="0" y1="%d" x2="%d" y2="%d" stroke="#bbb"/>`+"\n", y, svgWidth, y)
		}
		fmt.Fprintf(&b, `<text x="%d" y="%d" text-anchor="end">%s</text>`+"\n", svgLeft-8, y+16, html.EscapeString(l.From+" → "+l.To))
		spec := r.specs[i/2]
		for _, dw := range spec.Down {
			fmt.Fprintf(&b, `<rect x="%.1f" y="%d" width="%.1f" height="%d" fill="#cfcfcf"/>`+"\n",
				x(dw.From.D()), y+2, x(min(dw.To.D(), dur))-x(dw.From.D()), svgRow-4)
		}
		if dc := spec.DutyCycle; dc != nil {
			for t := time.Duration(0); t < dur && rects < svgMaxRects; t += dc.Period.D() {
				off, end := t+dc.On.D(), min(t+dc.Period.D(), dur)
				if off < end {
					fmt.Fprintf(&b, `<rect x="%.1f" y="%d" width="%.1f" height="%d" fill="#fbf3c8"/>`+"\n", x(off), y+2, x(end)-x(off), svgRow-4)
					rects++
				}
			}
		}
	}
	for _, sp := range r.spans {
		y := svgTop + (2*sp.link+sp.dir)*svgRow
		fill := "#2f6fb0"
		if sp.lost {
			fill = "#d62728"
		}
		wdt := math.Max(x(sp.end)-x(sp.start), 0.6)
		fmt.Fprintf(&b, `<rect x="%.2f" y="%d" width="%.2f" height="%d" fill="%s"/>`+"\n", x(sp.start), y+5, wdt, svgRow-10, fill)
	}
	fmt.Fprintf(&b, `<text x="%d" y="%d" fill="#444">bars: transmissions (airtime) · blue delivered · red lost · grey partition · yellow radio off</text>`+"\n",
		svgLeft, svgTop+linksH+20)

	// Latency panel.
	maxLat := r.Latency.Max
	if maxLat <= 0 {
		maxLat = 1
	}
	ymax := niceCeil(maxLat)
	yOf := func(s float64) float64 { return float64(panelTop+svgPlotH) - float64(svgPlotH)*s/ymax }
	fmt.Fprintf(&b, `<rect x="%d" y="%d" width="%.0f" height="%d" fill="none" stroke="#999"/>`+"\n", svgLeft, panelTop, plotW, svgPlotH)
	for _, f := range []float64{0, 0.5, 1} {
		fmt.Fprintf(&b, `<text x="%d" y="%.1f" text-anchor="end" fill="#555">%s</text>`+"\n", svgLeft-6, yOf(f*ymax)+4, secs(f*ymax))
	}
	fmt.Fprintf(&b, `<text x="%d" y="%d" text-anchor="end">delivery latency</text>`+"\n", svgLeft-8, panelTop-8)
	for _, d := range r.deliveries {
		fmt.Fprintf(&b, `<circle cx="%.1f" cy="%.1f" r="3" fill="#2f6fb0" fill-opacity="0.7"/>`+"\n", x(d[1]), yOf((d[1] - d[0]).Seconds()))
	}
	for _, t := range r.missed {
		xm, ym := x(t), float64(panelTop+8)
		fmt.Fprintf(&b, `<path d="M%.1f %.1fl6 6m0 -6l-6 6" stroke="#d62728" stroke-width="2"/>`+"\n", xm-3, ym-3)
	}
	fmt.Fprintf(&b, `<text x="%d" y="%d" fill="#444">dots: a message reaching a member's /sync (x = when, y = latency) · red ×: never delivered (x = sent)</text>`+"\n",
		svgLeft, panelTop-8)
	b.WriteString("</svg>\n")
	_, err := io.WriteString(w, b.String())
	return err
}

// tickStep picks a clock-friendly step giving at most about ten ticks.
func tickStep(d time.Duration) time.Duration {
	for _, st := range []time.Duration{time.Second, 2 * time.Second, 5 * time.Second, 10 * time.Second, 15 * time.Second,
		30 * time.Second, time.Minute, 2 * time.Minute, 5 * time.Minute, 10 * time.Minute, 15 * time.Minute,
		30 * time.Minute, time.Hour, 2 * time.Hour, 6 * time.Hour, 12 * time.Hour} {
		if d/st <= 10 {
			return st
		}
	}
	return 24 * time.Hour
}

// niceCeil rounds up to 1, 2 or 5 × 10^k.
func niceCeil(v float64) float64 {
	p := math.Pow(10, math.Floor(math.Log10(v)))
	for _, m := range []float64{1, 2, 2.5, 5, 10} {
		if m*p >= v {
			return m * p
		}
	}
	return 10 * p
}

// shortDur writes 90s as "1m30s" and whole minutes as "5m".
func shortDur(d time.Duration) string {
	s := d.Round(time.Second).String()
	if strings.HasSuffix(s, "m0s") {
		s = s[:len(s)-2]
	}
	if strings.HasSuffix(s, "h0m") {
		s = s[:len(s)-2]
	}
	return s
}
