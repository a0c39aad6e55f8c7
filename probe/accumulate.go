package probe

import (
	"errors"
	"fmt"
	"io"
	"math"
	"slices"

	"github.com/capsel/capsel/labelnoise"
)

// Config sets up an Accumulator. The zero value means the defaults.
type Config struct {
	// Reservoir is the number of token records kept for theory (default
	// DefaultReservoir; negative: none).
	Reservoir int
	// Seed seeds the reservoir's sample and the bootstrap.
	Seed uint64
	// Bootstrap is the number of resamples for the CI of mean p (default
	// DefaultBootstrap).
	Bootstrap int
	// Cuts place the model on the continuum (zero: DefaultCuts).
	Cuts Cuts
	// Vocab is the vocabulary size V, passed to theory contexts built from
	// top-k records (0: unknown).
	Vocab int
	// SkipBad counts bad lines and goes on instead of stopping at the first.
	SkipBad bool
	// Progress, when set, is called after every sequence.
	Progress func(Progress)
	// NoiseAware keeps each sequence's label path (and the model's own
	// answer, where the source has one) and adds the noise-aware analysis
	// to the report (Report.NoiseAware). It keeps 17 bytes per scored token
	// and about 130 per sequence, so memory grows with the input.
	NoiseAware bool
	// TeacherForced uses the teacher-forced approximation (method
	// teacher-forced) even where the sequences carry the model's own
	// answers.
	TeacherForced bool
	// NullPrompts caps the null prompts scored by the sources that build a
	// null set from the data (package ckprobe; Server has its own field):
	// 0 means labelnoise.DefaultNullPrompts, negative none.
	NullPrompts int
	// Noise tunes the analysis; its Seed and Resamples default to Seed and
	// Bootstrap.
	Noise labelnoise.Options
}

// Defaults of Config.
const (
	DefaultReservoir = 2000
	DefaultBootstrap = 1000
)

// Progress is what an Accumulator has consumed so far.
type Progress struct {
	Sequences int64
	Tokens    int64
	Skipped   int64
}

func (c Config) withDefaults() Config {
	if c.Reservoir == 0 {
		c.Reservoir = DefaultReservoir
	}
	if c.Reservoir < 0 {
		c.Reservoir = 0
	}
	if c.Bootstrap <= 0 {
		c.Bootstrap = DefaultBootstrap
	}
	if c.Cuts == (Cuts{}) {
		c.Cuts = DefaultCuts
	}
	return c
}

// Validate checks the configuration.
func (c Config) Validate() error {
	c = c.withDefaults()
	if c.Vocab < 0 {
		return fmt.Errorf("probe: vocab %d < 0", c.Vocab)
	}
	if err := c.Cuts.Validate(); err != nil {
		return fmt.Errorf("probe: %w", err)
	}
	return nil
}

// Tolerances of the input checks.
const (
	// PositiveTolerance is how far above 0 a log-prob may be (rounding in
	// a low-precision log-softmax); such values count as 0.
	PositiveTolerance = 1e-6
	// NegInf is vLLM's stand-in for log 0: log-probs at or below it are
	// p = 0, and records store p = 0 with this log-prob.
	NegInf = -9999.0
	// maxListedMass bounds the sum of the listed probabilities at one
	// position; more means the input is not log-probabilities.
	maxListedMass = 1.01
)

// Accumulator turns sequences into a Report. Every statistic is kept in a
// form that merges exactly (see Merge), so shards may be accumulated apart.
// An Accumulator is not safe for concurrent use.
type Accumulator struct {
	cfg Config

	tally
	sumP, sumNegLogP u128 // Σp, and Σ(−log p) over tokens with p > 0, fixed point
	sumQ2            u128 // Σ over tokens with top-k of Σ listed q², fixed point
	hist             []uint64
	seqSum           []float64 // per sequence: Σp over its scored tokens
	seqN             []uint32  // per sequence: number of scored tokens
	res              reservoir
	sb               sumBufs         // scratch: the per-token data of the sequence being added
	noise            *noiseCollector // nil unless Config.NoiseAware
	skipped          int64
	skipNotes        []string
	sources          []SourceInfo
	sourceIdx        map[string]int
}

// SourceInfo describes one input of a report.
type SourceInfo struct {
	File      string `json:"file"`
	Format    string `json:"format"`
	Sequences int64  `json:"sequences"`
	Tokens    int64  `json:"tokens"`
	Skipped   int64  `json:"skipped,omitempty"`
}

// maxSkipNotes is how many skipped-line messages a report keeps.
const maxSkipNotes = 20

// NewAccumulator returns an empty accumulator. It panics on an invalid
// configuration; check it with Config.Validate first.
func NewAccumulator(cfg Config) *Accumulator {
	if err := cfg.Validate(); err != nil {
		panic(err)
	}
	cfg = cfg.withDefaults()
	a := &Accumulator{cfg: cfg, hist: make([]uint64, histBins), res: reservoir{size: cfg.Reservoir},
		sourceIdx: map[string]int{}}
	if cfg.NoiseAware {
		a.noise = newNoiseCollector()
	}
	return a
}

// SetProgress replaces the progress callback of the configuration.
func (a *Accumulator) SetProgress(f func(Progress)) { a.cfg.Progress = f }

// AddSource registers an input with its format, so that the report lists
// it even if it yields nothing. Sequences whose Source is not registered are
// listed under their Source with an empty format.
func (a *Accumulator) AddSource(file, format string) {
	if i, ok := a.sourceIdx[file]; ok {
		a.sources[i].Format = format
		return
	}
	a.sourceIdx[file] = len(a.sources)
	a.sources = append(a.sources, SourceInfo{File: file, Format: format})
}

func (a *Accumulator) source(file string) *SourceInfo {
	i, ok := a.sourceIdx[file]
	if !ok {
		a.AddSource(file, "")
		i = a.sourceIdx[file]
	}
	return &a.sources[i]
}

// Consume reads src to the end. A bad line stops it with the line's error,
// unless the configuration says SkipBad: then the line is counted and
// consumption goes on. Errors that are not about a line always stop it.
func (a *Accumulator) Consume(src Source) error {
	return a.consume(src, a.Add, a.skip)
}

// consume reads src to the end, handing each sequence to add; a bad line
// stops it with the line's error unless SkipBad, when skip counts it.
// Progress is reported after every sequence.
func (a *Accumulator) consume(src Source, add func(Sequence) error, skip func(*LineError)) error {
	for {
		seq, err := src.Next()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err == nil {
			err = add(seq)
		}
		if err != nil {
			var le *LineError
			if !a.cfg.SkipBad || !errors.As(err, &le) {
				return err
			}
			skip(le)
		}
		if a.cfg.Progress != nil {
			a.cfg.Progress(Progress{Sequences: a.sequences, Tokens: a.tokens, Skipped: a.skipped})
		}
	}
}

func (a *Accumulator) skip(le *LineError) {
	a.skipped++
	a.source(le.File).Skipped++
	if len(a.skipNotes) < maxSkipNotes {
		a.skipNotes = append(a.skipNotes, le.Error())
	}
}

// stats returns seq's statistics: those a parallel reader computed (pre),
// or s, computed here.
func (a *Accumulator) stats(seq *Sequence, s *seqStats) *seqStats {
	if seq.pre != nil {
		return seq.pre
	}
	a.sb.reset()
	summarize(s, seq, &a.sb)
	return s
}

// Add checks one sequence and adds it. A bad sequence (lengths that
// disagree, NaN or positive log-probs, top-k probabilities summing above 1,
// no scored token) is rejected whole with a *LineError and leaves the
// accumulator unchanged.
func (a *Accumulator) Add(seq Sequence) error {
	var s seqStats
	st := a.stats(&seq, &s)
	if st.err != nil {
		return st.err
	}
	a.sumP.addU(st.sumP)
	a.sumNegLogP.addU(st.sumNegLogP)
	a.sumQ2.addU(st.sumQ2)
	a.tally.add(st.t)
	for _, b := range st.bins {
		a.hist[b]++
	}
	if a.res.size > 0 {
		key := seedKey(st.hash, a.cfg.Seed)
		for i, lp := range seq.LogProbs {
			if seq.Mask != nil && !seq.Mask[i] {
				continue
			}
			if pr := priority(key, i); a.res.wants(pr) {
				a.res.offer(makeRecord(seq, i, clampLP(lp), pr))
			}
		}
	}
	a.seqSum = append(a.seqSum, st.sum)
	a.seqN = append(a.seqN, uint32(st.t.tokens))
	si := a.source(seq.Source)
	si.Sequences++
	si.Tokens += st.t.tokens
	if a.noise != nil {
		a.noise.add(&seq, st, si.Format, false)
	}
	return nil
}

// seqStats is what one sequence adds to an accumulator. summarize computes
// it without touching the accumulator, so the parallel reader's workers can
// do it ahead of Add.
type seqStats struct {
	err                     error // a *LineError: the sequence is rejected
	t                       tally
	sum                     float64 // Σp, for the bootstrap
	sumP, sumNegLogP, sumQ2 u128    // the sequence's sums in fixed point
	bins                    []int32 // fine-histogram bin of each scored token
	hash                    uint64  // the sequence's key before the seed (seqHash)
	path                    labelPath
}

// labelPath is a sequence's label path for the noise-aware analysis: per
// scored position the label's log-prob, the first choice's probability and
// whether the label is the first choice.
type labelPath struct {
	lps   []float64
	first []float64
	match []bool
	// missing is the first scored position (an index into lps) without a
	// first choice, or −1; noTop says no position had one.
	missing int
	noTop   bool
}

// sumBufs are the buffers summarize appends a sequence's per-token data
// to; a batch of sequences shares them.
type sumBufs struct {
	bins  []int32
	lps   []float64
	first []float64
	match []bool
}

func (b *sumBufs) reset() {
	b.bins, b.lps, b.first, b.match = b.bins[:0], b.lps[:0], b.first[:0], b.match[:0]
}

// summarize checks seq and computes its statistics into st, appending the
// histogram bins and the label path to sb (st's slices are the appended
// parts).
func summarize(st *seqStats, seq *Sequence, sb *sumBufs) {
	n := len(seq.LogProbs)
	bad := func(format string, args ...any) {
		st.err = lineErr(seq.Source, seq.Line, format, args...)
	}
	switch {
	case seq.Mask != nil && len(seq.Mask) != n:
		bad("lengths disagree: %d log-probs, %d mask entries", n, len(seq.Mask))
		return
	case seq.Top != nil && len(seq.Top) != n:
		bad("lengths disagree: %d log-probs, %d top_logprobs entries", n, len(seq.Top))
		return
	case seq.Tokens != nil && len(seq.Tokens) != n:
		bad("lengths disagree: %d log-probs, %d tokens", n, len(seq.Tokens))
		return
	case seq.First != nil && (len(seq.First) != n || len(seq.FirstMatch) != n):
		bad("lengths disagree: %d log-probs, %d first choices, %d first-choice matches", n, len(seq.First), len(seq.FirstMatch))
		return
	case n == 0:
		bad("no log-probs")
		return
	}
	if seq.Own != nil {
		if len(seq.Own.LogP) == 0 {
			bad("the own answer has no tokens")
			return
		}
		for k, lp := range seq.Own.LogP {
			if math.IsNaN(lp) || lp > PositiveTolerance {
				bad("own answer token %d: log-prob %v is not a log-probability", k, lp)
				return
			}
		}
	}
	b0, l0 := len(sb.bins), len(sb.lps)
	t := &st.t
	path := &st.path
	path.missing, path.noTop = -1, true
	var negLogP, q2s float64
	for i, lp := range seq.LogProbs {
		if seq.Mask != nil && !seq.Mask[i] {
			continue
		}
		switch {
		case math.IsNaN(lp):
			bad("log-prob at position %d is NaN", i)
			return
		case lp > PositiveTolerance:
			bad("log-prob %v at position %d is positive: not a log-probability", lp, i)
			return
		case lp > 0:
			lp = 0
		}
		var p float64
		if lp <= NegInf {
			lp = NegInf
			t.zeroP++
		} else {
			p = expNeg(lp)
			negLogP -= lp
		}
		st.sum += p
		t.tokens++
		if p > 0.55 {
			t.gt055++
		}
		if p >= 0.2 {
			t.ge02++
		}
		sb.bins = append(sb.bins, int32(histBin(p, lp)))
		first, match := math.NaN(), false
		switch {
		case seq.First != nil:
			first, match = seq.First[i], seq.FirstMatch[i]
			if !(first >= p-1e-6 && first <= 1+1e-6) {
				bad("the first choice's probability %v at position %d is below the target's %v or above 1", first, i, p)
				return
			}
			first = min(max(first, p), 1)
		case seq.Top != nil && len(seq.Top[i]) > 0:
			q2, best, err := topStats(seq, i, lp, p)
			if err != nil {
				bad("%v", err)
				return
			}
			q2s += q2
			t.topTokens++
			if lp >= best {
				t.top1++
			}
			// math.Exp, as labelnoise turns the label's log-prob into p:
			// a label that is the first choice gets exactly its own p.
			first, match = math.Exp(max(lp, best)), lp >= best
			if max(lp, best) <= NegInf {
				first = 0
			}
		}
		if math.IsNaN(first) {
			if path.missing < 0 {
				path.missing = len(sb.lps) - l0
			}
		} else {
			path.noTop = false
		}
		sb.lps = append(sb.lps, lp)
		sb.first = append(sb.first, first)
		sb.match = append(sb.match, match)
	}
	if t.tokens == 0 {
		bad("no scored tokens (the mask excludes all %d positions)", n)
		return
	}
	t.sequences = 1
	st.sumP, st.sumNegLogP, st.sumQ2 = fix128(st.sum, pShift), fix128(negLogP, logpShift), fix128(q2s, pShift)
	st.bins = sb.bins[b0:]
	path.lps, path.first, path.match = sb.lps[l0:], sb.first[l0:], sb.match[l0:]
	st.hash = seqHash(*seq)
}

// tally holds the integer counts of an accumulator.
type tally struct {
	sequences, tokens int64 // tokens: scored tokens
	zeroP             int64
	gt055, ge02       int64
	topTokens, top1   int64
}

func (t *tally) add(u tally) {
	t.sequences += u.sequences
	t.tokens += u.tokens
	t.zeroP += u.zeroP
	t.gt055 += u.gt055
	t.ge02 += u.ge02
	t.topTokens += u.topTokens
	t.top1 += u.top1
}

// topStats checks position i's top list and returns Σ q² over the listed
// tokens (the list plus the target when the list lacks it) and the largest
// listed log-prob (clamped at NegInf): the target has the first choice
// (top-1 agreement) when its log-prob is at least that.
func topStats(seq *Sequence, i int, lp, p float64) (q2, best float64, err error) {
	best = math.Inf(-1)
	found := false
	tok := ""
	if seq.Tokens != nil {
		tok = seq.Tokens[i]
	}
	var mass float64
	for _, t := range seq.Top[i] {
		l := t.LogProb
		if math.IsNaN(l) || l > PositiveTolerance {
			return 0, 0, fmt.Errorf("top log-prob %v of token %q at position %d is not a log-probability", l, t.Token, i)
		}
		l = clampLP(l)
		q := p // the target's own entry: p is known
		if l != lp {
			q = expNeg(l)
		}
		mass += q
		q2 += q * q
		if l > best {
			best = l
		}
		if !found && sameToken(t, tok, l, lp) {
			found = true
		}
	}
	if mass > maxListedMass {
		return 0, 0, fmt.Errorf("the top tokens at position %d have probabilities summing to %.4g > 1", i, mass)
	}
	if !found {
		q2 += p * p
	}
	return q2, best, nil
}

// sameToken reports whether listed token t is the target (text tok, log-prob
// lp): by text when both are known, otherwise by equal log-prob.
func sameToken(t TopToken, tok string, l, lp float64) bool {
	if tok != "" && t.Token != "" {
		return t.Token == tok
	}
	return l == lp
}

func clampLP(lp float64) float64 {
	if lp > 0 {
		return 0
	}
	if lp < NegInf {
		return NegInf
	}
	return lp
}

// Merge adds b's statistics to a. The result equals what a would hold had it
// consumed b's input too, in every statistic and in the reservoir (the
// reservoir keeps the records of smallest priority, and priorities depend
// only on each sequence's key and the seed); only the order of the sources
// list depends on the order of merging. Both must use the same seed and
// reservoir size.
func (a *Accumulator) Merge(b *Accumulator) error {
	if a.cfg.Seed != b.cfg.Seed || a.cfg.Reservoir != b.cfg.Reservoir {
		return fmt.Errorf("probe: cannot merge accumulators with different seeds or reservoir sizes (%d/%d vs %d/%d)",
			a.cfg.Seed, a.cfg.Reservoir, b.cfg.Seed, b.cfg.Reservoir)
	}
	a.tally.add(b.tally)
	a.sumP.addU(b.sumP)
	a.sumNegLogP.addU(b.sumNegLogP)
	a.sumQ2.addU(b.sumQ2)
	for i, x := range b.hist {
		a.hist[i] += x
	}
	a.seqSum = append(a.seqSum, b.seqSum...)
	a.seqN = append(a.seqN, b.seqN...)
	for _, r := range b.res.recs {
		if a.res.wants(r.priority) {
			a.res.offer(r)
		}
	}
	if a.noise != nil && b.noise != nil {
		a.noise.merge(b.noise)
	}
	a.skipped += b.skipped
	for _, n := range b.skipNotes {
		if len(a.skipNotes) < maxSkipNotes {
			a.skipNotes = append(a.skipNotes, n)
		}
	}
	for _, s := range b.sources {
		d := a.source(s.File)
		if d.Format == "" {
			d.Format = s.Format
		}
		d.Sequences += s.Sequences
		d.Tokens += s.Tokens
		d.Skipped += s.Skipped
	}
	return nil
}

// Tokens returns the number of scored tokens added so far.
func (a *Accumulator) Tokens() int64 { return a.tokens }

// Sequences returns the number of sequences added so far.
func (a *Accumulator) Sequences() int64 { return a.sequences }

// sortedPairs returns the per-sequence (Σp, n) pairs in a canonical order
// (by mean p, then n, then Σp), so that the bootstrap does not depend on the
// order in which sequences or shards arrived.
func (a *Accumulator) sortedPairs() ([]float64, []uint32) {
	idx := make([]int, len(a.seqSum))
	for i := range idx {
		idx[i] = i
	}
	slices.SortFunc(idx, func(i, j int) int {
		mi := a.seqSum[i] / float64(a.seqN[i])
		mj := a.seqSum[j] / float64(a.seqN[j])
		switch {
		case mi < mj:
			return -1
		case mi > mj:
			return 1
		case a.seqN[i] != a.seqN[j]:
			return int(a.seqN[i]) - int(a.seqN[j])
		case a.seqSum[i] < a.seqSum[j]:
			return -1
		case a.seqSum[i] > a.seqSum[j]:
			return 1
		}
		return 0
	})
	s := make([]float64, len(idx))
	n := make([]uint32, len(idx))
	for k, i := range idx {
		s[k], n[k] = a.seqSum[i], a.seqN[i]
	}
	return s, n
}
