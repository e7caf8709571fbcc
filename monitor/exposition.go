package monitor

import (
	"bufio"
	"compress/gzip"
	"io"
	"math"
	"net/http"
	"strconv"
	"strings"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
)

// WriteMetrics writes the Monitor's metrics in the Prometheus text format
// (version 0.0.4): the families, series and values Collect gives, written
// line by line from one snapshot of the UEs. It holds no per-series
// objects, so 10,000 UEs cost a few MiB and tens of ms, not the hundreds of
// MiB and ms of client_golang's registry (issue 3).
func (m *Monitor) WriteMetrics(w io.Writer) error {
	return m.writeMetrics(w, nil)
}

// MetricsHandler serves /metrics for a fleet of any size: the metric
// families of g, merged by name with the Monitor's own, which WriteMetrics
// writes. The Monitor must not be registered in g (its families would be
// gathered at full cost and then left out). The answer is the text format,
// which every Prometheus accepts, or protobuf for a scraper that asks for it
// (serveProtobuf), gzipped when the client accepts gzip. If gathering g fails, the answer is a 500 with the error, as
// promhttp does by default.
func (m *Monitor) MetricsHandler(g prometheus.Gatherer) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if wantsProtobuf(r.Header.Get("Accept")) {
			m.serveProtobuf(w, r, g)
			return
		}
		var mfs []*dto.MetricFamily
		if g != nil {
			var err error
			if mfs, err = g.Gather(); err != nil {
				m.log.Error("gather metrics", "err", err)
				http.Error(w, "An error has occurred while gathering metrics:\n\n"+err.Error(), http.StatusInternalServerError)
				return
			}
		}
		out, done := startBody(w, r, expfmt.NewFormat(expfmt.TypeTextPlain))
		defer done()
		if err := m.writeMetrics(out, mfs); err != nil {
			m.log.Debug("write metrics", "err", err) // the scraper went away
		}
	})
}

// serveProtobuf answers a scraper that asks for the protobuf format (a
// Prometheus taking native histograms): the Monitor's families go through
// client_golang's registry, at its cost (~10x the text writer's at 10,000
// UEs), which only such scrapers pay.
func (m *Monitor) serveProtobuf(w http.ResponseWriter, r *http.Request, g prometheus.Gatherer) {
	gs := prometheus.Gatherers{m.selfReg}
	if g != nil {
		gs = append(gs, g)
	}
	mfs, err := gs.Gather()
	if err != nil {
		m.log.Error("gather metrics", "err", err)
		http.Error(w, "An error has occurred while gathering metrics:\n\n"+err.Error(), http.StatusInternalServerError)
		return
	}
	format := expfmt.NewFormat(expfmt.TypeProtoDelim)
	out, done := startBody(w, r, format)
	defer done()
	enc := expfmt.NewEncoder(out, format)
	for _, mf := range mfs {
		if err := enc.Encode(mf); err != nil {
			m.log.Debug("write metrics", "err", err) // the scraper went away
			return
		}
	}
}

// startBody sets the headers of a metrics answer in format and returns
// where to write its body, gzipped when the client accepts gzip; done
// flushes it.
func startBody(w http.ResponseWriter, r *http.Request, format expfmt.Format) (out io.Writer, done func()) {
	h := w.Header()
	h.Set("Content-Type", string(format))
	h.Add("Vary", "Accept-Encoding")
	if !acceptsGzip(r.Header.Get("Accept-Encoding")) {
		return w, func() {}
	}
	h.Set("Content-Encoding", "gzip")
	gz := gzipWriters.Get().(*gzip.Writer)
	gz.Reset(w)
	return gz, func() {
		_ = gz.Close()
		gz.Reset(nil)
		gzipWriters.Put(gz)
	}
}

// gzipWriters are reused: each holds a few hundred KiB of compressor state.
var gzipWriters = sync.Pool{New: func() any {
	gz, _ := gzip.NewWriterLevel(nil, gzip.BestSpeed)
	return gz
}}

func acceptsGzip(header string) bool {
	for part := range strings.SplitSeq(header, ",") {
		enc, params, _ := strings.Cut(part, ";")
		if strings.TrimSpace(enc) != "gzip" {
			continue
		}
		q := strings.ReplaceAll(strings.TrimSpace(params), " ", "")
		return q != "q=0" && q != "q=0.0" && q != "q=0.00" && q != "q=0.000"
	}
	return false
}

// writeMetrics writes gathered, then the Monitor's families, merged by name
// (gathered is sorted by name, as registries return it).
func (m *Monitor) writeMetrics(w io.Writer, gathered []*dto.MetricFamily) error {
	bw := bufio.NewWriterSize(w, 32<<10)
	tw := &textWriter{w: bw, buf: make([]byte, 0, 256)}
	sc := m.scrape(m.clock.Now())
	i := 0
	writeGathered := func(until string) error {
		for ; i < len(gathered) && (until == "" || gathered[i].GetName() < until); i++ {
			mf := gathered[i]
			if familyNames[mf.GetName()] {
				if m.registeredTwice.CompareAndSwap(false, true) {
					m.log.Warn("the Monitor is registered in the registry its MetricsHandler serves: its metrics are gathered twice, once in vain; unregister it", "metric", mf.GetName())
				}
				continue
			}
			if len(mf.Metric) == 0 {
				continue
			}
			if _, err := expfmt.MetricFamilyToText(bw, mf); err != nil {
				return err
			}
		}
		return nil
	}
	for _, f := range families {
		if err := writeGathered(f.name); err != nil {
			return err
		}
		f.write(sc, f, tw)
	}
	if err := writeGathered(""); err != nil {
		return err
	}
	return bw.Flush()
}

// textWriter writes series in the text format; the HELP and TYPE lines of
// a family come with its first series, so an empty family is left out as
// client_golang leaves it out. Write errors stick in the bufio.Writer.
type textWriter struct {
	w   *bufio.Writer
	buf []byte
	cur *family
}

func (t *textWriter) begin(f *family) {
	if t.cur == f {
		return
	}
	t.cur = f
	b := append(t.buf[:0], "# HELP "...)
	b = append(b, f.name...)
	b = append(b, ' ')
	b = appendEscaped(b, f.help, false)
	b = append(b, "\n# TYPE "...)
	b = append(b, f.name...)
	b = append(b, ' ')
	b = append(b, f.kind.String()...)
	b = append(b, '\n')
	t.flush(b)
}

func (t *textWriter) flush(b []byte) {
	_, _ = t.w.Write(b)
	t.buf = b
}

func (t *textWriter) sample(f *family, v float64, l0, l1 string) {
	t.begin(f)
	b := append(t.buf[:0], f.name...)
	switch len(f.labels) {
	case 0:
	case 1:
		b = append(b, '{')
		b = appendLabel(b, f.labels[0], l0)
		b = append(b, '}')
	default:
		b = append(b, '{')
		b = appendLabel(b, f.labels[0], l0)
		b = append(b, ',')
		b = appendLabel(b, f.labels[1], l1)
		b = append(b, '}')
	}
	b = append(b, ' ')
	b = appendValue(b, v)
	t.flush(append(b, '\n'))
}

func (t *textWriter) sample3(f *family, v float64, l0, l1, l2 string) {
	t.begin(f)
	b := append(t.buf[:0], f.name...)
	b = append(b, '{')
	b = appendLabel(b, f.labels[0], l0)
	b = append(b, ',')
	b = appendLabel(b, f.labels[1], l1)
	b = append(b, ',')
	b = appendLabel(b, f.labels[2], l2)
	b = append(b, '}', ' ')
	b = appendValue(b, v)
	t.flush(append(b, '\n'))
}

func (t *textWriter) histogram(f *family, h *rttHistogram, l0, l1 string) {
	t.begin(f)
	labels := func(b []byte, suffix string) []byte {
		b = append(b, f.name...)
		b = append(b, suffix...)
		b = append(b, '{')
		b = appendLabel(b, f.labels[0], l0)
		b = append(b, ',')
		return appendLabel(b, f.labels[1], l1)
	}
	var cum uint64
	for i, ub := range rttBuckets {
		cum += h.counts[i]
		b := labels(t.buf[:0], "_bucket")
		b = append(b, `,le="`...)
		b = appendValue(b, ub)
		b = append(b, `"} `...)
		b = strconv.AppendUint(b, cum, 10)
		t.flush(append(b, '\n'))
	}
	b := labels(t.buf[:0], "_bucket")
	b = append(b, `,le="+Inf"} `...)
	b = strconv.AppendUint(b, h.count, 10)
	b = append(b, '\n')
	b = labels(b, "_sum")
	b = append(b, "} "...)
	b = appendValue(b, h.sum)
	b = append(b, '\n')
	b = labels(b, "_count")
	b = append(b, "} "...)
	b = strconv.AppendUint(b, h.count, 10)
	t.flush(append(b, '\n'))
}

func (t *textWriter) fleetHistogram(f *family, h *fleetHistogram) {
	t.begin(f)
	var cum uint64
	b := t.buf[:0]
	for i, ub := range h.bounds {
		cum += h.counts[i]
		b = append(b, f.name...)
		b = append(b, `_bucket{le="`...)
		b = appendValue(b, ub)
		b = append(b, `"} `...)
		b = strconv.AppendUint(b, cum, 10)
		b = append(b, '\n')
	}
	b = append(b, f.name...)
	b = append(b, `_bucket{le="+Inf"} `...)
	b = strconv.AppendUint(b, h.count, 10)
	b = append(b, '\n')
	b = append(b, f.name...)
	b = append(b, "_sum "...)
	b = appendValue(b, h.sum)
	b = append(b, '\n')
	b = append(b, f.name...)
	b = append(b, "_count "...)
	b = strconv.AppendUint(b, h.count, 10)
	t.flush(append(b, '\n'))
}

func (t *textWriter) info(f *family, names, values []string) {
	t.begin(f)
	b := append(t.buf[:0], f.name...)
	for i, n := range names {
		if i == 0 {
			b = append(b, '{')
		} else {
			b = append(b, ',')
		}
		b = appendLabel(b, n, values[i])
	}
	if len(names) > 0 {
		b = append(b, '}')
	}
	t.flush(append(b, " 1\n"...))
}

func appendLabel(b []byte, name, value string) []byte {
	b = append(b, name...)
	b = append(b, `="`...)
	b = appendEscaped(b, value, true)
	return append(b, '"')
}

// appendEscaped escapes as the text format wants: backslash and newline,
// and in label values the double quote. Label values are valid UTF-8: the
// UE checks make sure of it.
func appendEscaped(b []byte, s string, quote bool) []byte {
	if !strings.ContainsAny(s, "\\\n\"") {
		return append(b, s...)
	}
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '\\':
			b = append(b, `\\`...)
		case c == '\n':
			b = append(b, `\n`...)
		case c == '"' && quote:
			b = append(b, `\"`...)
		default:
			b = append(b, c)
		}
	}
	return b
}

// appendValue formats v as client_golang's text encoder does.
func appendValue(b []byte, v float64) []byte {
	switch {
	case v == 0:
		return append(b, '0')
	case v == 1:
		return append(b, '1')
	case math.IsNaN(v):
		return append(b, "NaN"...)
	case math.IsInf(v, +1):
		return append(b, "+Inf"...)
	case math.IsInf(v, -1):
		return append(b, "-Inf"...)
	}
	return strconv.AppendFloat(b, v, 'g', -1, 64)
}
