package probe

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"runtime"
	"slices"
	"sync"

	"github.com/capsel/capsel/theory"
)

// FormatVersion is the version of the report's JSON layout.
const FormatVersion = 1

// CILevel is the coverage of mean_p_ci.
const CILevel = 0.95

// MinCISequences is the fewest sequences for which the report gives a
// bootstrap CI of mean p. A percentile bootstrap over n sequences has the
// spread of the plug-in estimate, √((n−1)/n)·s/√n, and normal-like
// quantiles, so next to Student's t interval (exact for normal per-sequence
// means) its width is about z₀.₉₇₅·√((n−1)/n)/t₀.₉₇₅,ₙ₋₁: 0 at n = 1 (one
// sequence resamples to itself), 0.63 at n = 5, 0.82 at n = 10, 0.91 at
// n = 20, 0.94 at n = 30 (TestMinCISequences computes these). From 18
// sequences on the interval is less than a tenth too narrow; the minimum is
// the round number above that. Below it the report says the CI is
// undefined and gives the whole range [0, 1].
const MinCISequences = 20

// Report is the probe's result. Its JSON field names are stable; see the
// README's "Probe" section.
type Report struct {
	FormatVersion int   `json:"format_version"`
	Sequences     int64 `json:"sequences"`
	Tokens        int64 `json:"tokens"`
	// MeanP is the paper's capability statistic (Eq. 5): the micro-average
	// of p over all scored tokens, Σp / N.
	MeanP float64 `json:"mean_p"`
	// MeanPCI is a percentile bootstrap CI of MeanP that resamples whole
	// sequences (Bootstrap resamples). With fewer than MinCISequences
	// sequences it is undefined: MeanPCIDefined is false and MeanPCI is
	// [0, 1], the range that holds any mean p.
	MeanPCI        [2]float64 `json:"mean_p_ci"`
	MeanPCIDefined bool       `json:"mean_p_ci_defined"`
	CIMinSequences int        `json:"ci_min_sequences"`
	CILevel        float64    `json:"ci_level"`
	Bootstrap      int        `json:"bootstrap_resamples"`
	// MeanLogP is the mean of log p over the tokens with p > 0; ZeroPTokens
	// counts the others (log-probs ≤ −9999, vLLM's −∞). null when all are 0.
	MeanLogP    *float64 `json:"mean_logp"`
	ZeroPTokens int64    `json:"zero_p_tokens"`
	// Quantiles of p over tokens, exact to the fine histogram's bin (see
	// QuantileResolution).
	Quantiles          Quantiles `json:"quantiles"`
	QuantileResolution float64   `json:"quantile_resolution"`
	Histogram          Histogram `json:"histogram"`
	// ShareGT055 is the share of tokens with p > 0.55 (the paper's Table 6
	// proxy of the theory's model-strong condition); ShareGE02 with p ≥ 0.2
	// (the threshold of −log p·1{p ≥ 0.2}).
	ShareGT055 float64 `json:"share_p_gt_055"`
	ShareGE02  float64 `json:"share_p_ge_02"`
	// TopKTokens counts the scored tokens that came with a top-k list.
	// Over them: Top1Agreement is the share whose target has the largest
	// listed log-prob; MeanQSqNorm the mean of Σ q_i² over the listed tokens
	// (the top list and the target), a lower bound of ‖q‖² that misses at
	// most the square of the unlisted mass. Both null without top-k.
	TopKTokens    int64    `json:"top_k_tokens"`
	Top1Agreement *float64 `json:"top1_agreement"`
	MeanQSqNorm   *float64 `json:"mean_q_sq_norm"`
	// SeqMeanPQuantiles are quantiles of the per-sequence mean p (exact).
	SeqMeanPQuantiles Quantiles `json:"seq_mean_p_quantiles"`
	Placement         Placement `json:"placement"`
	Region            Region    `json:"region"`
	// Vocab is the vocabulary size given to theory contexts (0: unknown).
	Vocab     int          `json:"vocab,omitempty"`
	Reservoir Reservoir    `json:"reservoir"`
	Sources   []SourceInfo `json:"sources"`
	Skipped   *Skipped     `json:"skipped,omitempty"`
	// NoiseAware tells a model that does not know its targets from targets
	// that are wrong (Config.NoiseAware; see NoiseAware). MeanP stays the
	// paper's statistic on the data as given.
	NoiseAware *NoiseAware `json:"noise_aware,omitempty"`
	// State holds the exact sums behind the statistics, so that reports
	// merge exactly. It is not meant for reading.
	State *State `json:"state"`
}

// Quantiles of a distribution, named by their percentage.
type Quantiles struct {
	P05 float64 `json:"p05"`
	P10 float64 `json:"p10"`
	P25 float64 `json:"p25"`
	P50 float64 `json:"p50"`
	P75 float64 `json:"p75"`
	P90 float64 `json:"p90"`
	P95 float64 `json:"p95"`
}

// QuantileLevels are the levels of Quantiles, in field order.
var QuantileLevels = [7]float64{0.05, 0.10, 0.25, 0.50, 0.75, 0.90, 0.95}

// Values returns the quantiles in the order of QuantileLevels.
func (q Quantiles) Values() [7]float64 {
	return [7]float64{q.P05, q.P10, q.P25, q.P50, q.P75, q.P90, q.P95}
}

func quantilesFrom(f func(level float64) float64) Quantiles {
	var v [7]float64
	for i, l := range QuantileLevels {
		v[i] = f(l)
	}
	return Quantiles{v[0], v[1], v[2], v[3], v[4], v[5], v[6]}
}

// Histogram counts tokens in bins of p: Counts[i] holds p in
// [Edges[i], Edges[i+1]), the last bin also p = 1.
type Histogram struct {
	Edges  []float64 `json:"edges"`
	Counts []uint64  `json:"counts"`
}

// Reservoir is the sample of token records that travels with the report.
type Reservoir struct {
	Size    int      `json:"size"`
	Seed    uint64   `json:"seed"`
	Records []Record `json:"records"`
}

// Skipped reports the lines left out with SkipBad.
type Skipped struct {
	Lines int64    `json:"lines"`
	First []string `json:"first"` // the first few messages
}

// State is the exact, mergeable form of the statistics.
type State struct {
	Seed          uint64      `json:"seed"`
	ReservoirSize int         `json:"reservoir_size"`
	SumP          u128        `json:"sum_p"`        // Σp in units of 2⁻⁶⁰ (summed per sequence)
	SumNegLogP    u128        `json:"sum_neg_logp"` // Σ(−log p), p > 0, in units of 2⁻⁴⁴
	SumQSq        u128        `json:"sum_q_sq"`     // Σ listed q², in units of 2⁻⁶⁰
	GT055         int64       `json:"count_p_gt_055"`
	GE02          int64       `json:"count_p_ge_02"`
	Top1          int64       `json:"count_top1"`
	Hist          [][2]uint64 `json:"hist"`      // sparse fine histogram: [bin, count]
	SeqSumP       []float64   `json:"seq_sum_p"` // per sequence Σp, in canonical order
	SeqTokens     []uint32    `json:"seq_tokens"`
}

// Report computes the report. It fails when no token was scored.
func (a *Accumulator) Report() (*Report, error) {
	if a.tokens == 0 {
		if a.skipped > 0 {
			return nil, fmt.Errorf("probe: no scored tokens: all %d input lines were skipped as bad (first: %s)", a.skipped, a.skipNotes[0])
		}
		return nil, errors.New("probe: no scored tokens in the input")
	}
	n := float64(a.tokens)
	sums, counts := a.sortedPairs()
	rep := &Report{
		FormatVersion:      FormatVersion,
		Sequences:          a.sequences,
		Tokens:             a.tokens,
		MeanP:              a.sumP.float(pShift) / n,
		CILevel:            CILevel,
		Bootstrap:          a.cfg.Bootstrap,
		ZeroPTokens:        a.zeroP,
		QuantileResolution: QuantileResolution,
		Histogram:          Histogram{Edges: coarseEdges(), Counts: coarse(a.hist)},
		ShareGT055:         float64(a.gt055) / n,
		ShareGE02:          float64(a.ge02) / n,
		TopKTokens:         a.topTokens,
		Vocab:              a.cfg.Vocab,
		Reservoir:          Reservoir{Size: a.res.size, Seed: a.cfg.Seed, Records: a.res.sorted()},
		Sources:            slices.Clone(a.sources),
	}
	if a.tokens > a.zeroP {
		m := -a.sumNegLogP.float(logpShift) / float64(a.tokens-a.zeroP)
		rep.MeanLogP = &m
	}
	rep.Quantiles = quantilesFrom(func(l float64) float64 { return histQuantile(a.hist, a.tokens, l) })
	if a.topTokens > 0 {
		t1 := float64(a.top1) / float64(a.topTokens)
		q2 := a.sumQ2.float(pShift) / float64(a.topTokens)
		rep.Top1Agreement, rep.MeanQSqNorm = &t1, &q2
	}
	means := make([]float64, len(sums))
	for i := range sums {
		means[i] = sums[i] / float64(counts[i])
	}
	rep.SeqMeanPQuantiles = quantilesFrom(func(l float64) float64 { return sortedQuantile(means, l) })
	rep.CIMinSequences = MinCISequences
	if len(sums) >= MinCISequences {
		rep.MeanPCI = bootstrapCI(sums, counts, a.cfg.Bootstrap, a.cfg.Seed, CILevel)
		rep.MeanPCIDefined = true
	} else {
		rep.MeanPCI = [2]float64{0, 1}
	}
	rep.Placement = Place(rep.MeanP, rep.MeanPCI, rep.ShareGT055, a.cfg.Cuts)
	rep.Region = rep.Placement.Region
	if a.skipped > 0 {
		rep.Skipped = &Skipped{Lines: a.skipped, First: slices.Clone(a.skipNotes)}
	}
	if a.noise != nil {
		na, err := a.noise.analyze(a.cfg)
		if err != nil {
			return nil, err
		}
		rep.NoiseAware = na
	}
	rep.State = &State{Seed: a.cfg.Seed, ReservoirSize: a.res.size, SumP: a.sumP, SumNegLogP: a.sumNegLogP, SumQSq: a.sumQ2,
		GT055: a.gt055, GE02: a.ge02, Top1: a.top1, SeqSumP: sums, SeqTokens: counts}
	for b, x := range a.hist {
		if x > 0 {
			rep.State.Hist = append(rep.State.Hist, [2]uint64{uint64(b), x})
		}
	}
	return rep, nil
}

// sortedQuantile is the inverse empirical distribution function of sorted
// values: the ⌈q·n⌉-th smallest.
func sortedQuantile(sorted []float64, q float64) float64 {
	k := int(math.Ceil(q*float64(len(sorted)))) - 1
	return sorted[min(max(k, 0), len(sorted)-1)]
}

// bootstrapChunks is the fixed number of independent random streams the
// bootstrap is split into, so that its result does not depend on the number
// of CPUs.
const bootstrapChunks = 8

// bootstrapCI returns the percentile bootstrap interval of Σs/Σn at the given
// level: b resamples, each drawing len(s) sequences with replacement.
func bootstrapCI(s []float64, n []uint32, b int, seed uint64, level float64) [2]float64 {
	// The pairs side by side, counts as floats (exact below 2⁵³), so that
	// a draw is one load of 16 bytes.
	type pair struct{ s, n float64 }
	ps := make([]pair, len(s))
	for i := range s {
		ps[i] = pair{s[i], float64(n[i])}
	}
	stats := make([]float64, b)
	var wg sync.WaitGroup
	sem := make(chan struct{}, runtime.GOMAXPROCS(0))
	m := uint64(len(ps))
	for c := range bootstrapChunks {
		lo, hi := c*b/bootstrapChunks, (c+1)*b/bootstrapChunks
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			// SplitMix64 (Steele, Lea and Flood 2014): a counter run
			// through mix, one stream per chunk. Each 64-bit draw gives
			// two indices in [0, m), the high words of its halves times m
			// (Lemire 2019; m < 2³² here, and the bias, below m/2³², is
			// nil in practice).
			state := mix(seed ^ mix(uint64(c)+1))
			for r := lo; r < hi; r++ {
				var ss, nn float64
				k := uint64(0)
				for ; k+1 < m; k += 2 {
					state += golden
					x := mix(state)
					p, q := ps[(x>>32)*m>>32], ps[(x&0xffffffff)*m>>32]
					ss += p.s + q.s
					nn += p.n + q.n
				}
				if k < m {
					state += golden
					p := ps[(mix(state)>>32)*m>>32]
					ss += p.s
					nn += p.n
				}
				stats[r] = ss / nn
			}
		}()
	}
	wg.Wait()
	slices.Sort(stats)
	alpha := (1 - level) / 2
	return [2]float64{interpolated(stats, alpha), interpolated(stats, 1-alpha)}
}

// interpolated is the q-quantile of sorted values with linear interpolation
// between order statistics (Hyndman and Fan's type 7).
func interpolated(sorted []float64, q float64) float64 {
	h := q * float64(len(sorted)-1)
	i := int(math.Floor(h))
	if i+1 >= len(sorted) {
		return sorted[len(sorted)-1]
	}
	return sorted[i] + (h-float64(i))*(sorted[i+1]-sorted[i])
}

// Contexts turns the reservoir into theory contexts (see Record.Context),
// leaving out records that do not make a valid context.
func (rep *Report) Contexts() []theory.Context {
	out := make([]theory.Context, 0, len(rep.Reservoir.Records))
	for _, r := range rep.Reservoir.Records {
		if c, ok := r.Context(rep.Vocab); ok {
			out = append(out, c)
		}
	}
	return out
}

// ReadReport reads a report written as JSON (by the command line's --out or
// --json) and checks that its state is consistent. name is used in errors.
func ReadReport(r io.Reader, name string) (*Report, error) {
	var rep Report
	dec := json.NewDecoder(r)
	if err := dec.Decode(&rep); err != nil {
		return nil, fmt.Errorf("%s: not a probe report: %w", name, err)
	}
	if rep.FormatVersion != FormatVersion {
		return nil, fmt.Errorf("%s: report format_version %d, this build reads %d", name, rep.FormatVersion, FormatVersion)
	}
	if rep.State == nil {
		return nil, fmt.Errorf("%s: the report has no \"state\": it cannot be merged or checked", name)
	}
	if err := rep.State.check(&rep); err != nil {
		return nil, fmt.Errorf("%s: inconsistent report state: %w", name, err)
	}
	return &rep, nil
}

func (st *State) check(rep *Report) error {
	if int64(len(st.SeqSumP)) != rep.Sequences || len(st.SeqTokens) != len(st.SeqSumP) {
		return fmt.Errorf("%d sequences but %d/%d per-sequence entries", rep.Sequences, len(st.SeqSumP), len(st.SeqTokens))
	}
	var toks int64
	for i, c := range st.SeqTokens {
		if c == 0 || !(st.SeqSumP[i] >= 0 && st.SeqSumP[i] <= float64(c)) {
			return fmt.Errorf("per-sequence entry %d: Σp %v over %d tokens", i, st.SeqSumP[i], c)
		}
		toks += int64(c)
	}
	if toks != rep.Tokens {
		return fmt.Errorf("%d tokens but the sequences hold %d", rep.Tokens, toks)
	}
	var h int64
	for _, e := range st.Hist {
		if e[0] >= histBins {
			return fmt.Errorf("histogram bin %d out of range", e[0])
		}
		h += int64(e[1])
	}
	if h != rep.Tokens {
		return fmt.Errorf("%d tokens but the histogram holds %d", rep.Tokens, h)
	}
	if st.GT055 > rep.Tokens || st.GE02 > rep.Tokens || rep.ZeroPTokens > rep.Tokens || rep.TopKTokens > rep.Tokens || st.Top1 > rep.TopKTokens {
		return errors.New("a count exceeds the number of tokens")
	}
	if st.ReservoirSize < 0 || len(rep.Reservoir.Records) > st.ReservoirSize {
		return fmt.Errorf("%d reservoir records for a reservoir of %d", len(rep.Reservoir.Records), st.ReservoirSize)
	}
	return nil
}

// AddReport merges a report (for example one read with ReadReport) into
// the accumulator, exactly as Merge merges accumulators. The report must
// have been made with the accumulator's seed and reservoir size.
func (a *Accumulator) AddReport(rep *Report) error {
	st := rep.State
	if st == nil {
		return errors.New("probe: the report has no state to merge")
	}
	if st.Seed != a.cfg.Seed || st.ReservoirSize != a.res.size {
		return fmt.Errorf("probe: the report was made with seed %d and reservoir %d, not %d and %d: merge with the same settings",
			st.Seed, st.ReservoirSize, a.cfg.Seed, a.res.size)
	}
	if err := st.check(rep); err != nil {
		return fmt.Errorf("probe: inconsistent report state: %w", err)
	}
	b := NewAccumulator(a.cfg)
	if b.noise != nil {
		b.noise.reports, b.noise.carried = 1, rep.NoiseAware
	}
	b.sequences, b.tokens = rep.Sequences, rep.Tokens
	b.sumP, b.sumNegLogP, b.sumQ2 = st.SumP, st.SumNegLogP, st.SumQSq
	b.zeroP, b.gt055, b.ge02 = rep.ZeroPTokens, st.GT055, st.GE02
	b.topTokens, b.top1 = rep.TopKTokens, st.Top1
	for _, e := range st.Hist {
		b.hist[e[0]] += e[1]
	}
	b.seqSum, b.seqN = st.SeqSumP, st.SeqTokens
	for _, r := range rep.Reservoir.Records {
		b.res.offer(r)
	}
	if rep.Skipped != nil {
		b.skipped, b.skipNotes = rep.Skipped.Lines, rep.Skipped.First
	}
	for _, s := range rep.Sources {
		b.AddSource(s.File, s.Format)
		*b.source(s.File) = s
	}
	return a.Merge(b)
}

// IsReport reports whether the file at path holds a report (JSON whose first
// member is "format_version") rather than log-prob lines.
func IsReport(path string) (bool, error) {
	f, err := os.Open(path)
	if err != nil {
		return false, err
	}
	defer f.Close()
	buf := make([]byte, 4096)
	n, err := io.ReadFull(f, buf)
	if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, io.EOF) {
		return false, err
	}
	b := trimSpace(buf[:n])
	if len(b) == 0 || b[0] != '{' {
		return false, nil
	}
	return bytes.HasPrefix(trimSpace(b[1:]), []byte(`"format_version"`)), nil
}

// WriteJSON writes the report as indented JSON, except that each reservoir
// record takes one line and the state (for machines) a single one.
func (rep *Report) WriteJSON(w io.Writer) error {
	tmp := *rep
	tmp.Reservoir.Records, tmp.State = nil, nil
	head, err := json.MarshalIndent(&tmp, "", "  ")
	if err != nil {
		return err
	}
	var recs bytes.Buffer
	recs.WriteString("[")
	for i, r := range rep.Reservoir.Records {
		b, err := json.Marshal(r)
		if err != nil {
			return err
		}
		if i > 0 {
			recs.WriteString(",")
		}
		recs.WriteString("\n      ")
		recs.Write(b)
	}
	if len(rep.Reservoir.Records) > 0 {
		recs.WriteString("\n    ")
	}
	recs.WriteString("]")
	st, err := json.Marshal(rep.State)
	if err != nil {
		return err
	}
	// The two placeholders cannot occur inside a string value, where the
	// quotes would be escaped.
	out := bytes.Replace(head, []byte(`"records": null`), append([]byte(`"records": `), recs.Bytes()...), 1)
	out = bytes.Replace(out, []byte(`"state": null`), append([]byte(`"state": `), st...), 1)
	out = append(out, '\n')
	_, err = w.Write(out)
	return err
}
