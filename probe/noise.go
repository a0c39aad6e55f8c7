package probe

import (
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/capsel/capsel/labelnoise"
)

// NoiseAware is the noise-aware section of a report: the analysis of package
// labelnoise over the sequences that could be analysed, beside the paper's
// raw mean p. Its JSON names are labelnoise.Result's (method, examples,
// agree, cut, capability, raw_mean_p, noise, known, token_noise, token_cut,
// null, flags, notes) and the fields below.
type NoiseAware struct {
	*labelnoise.Result
	// Unavailable says why there is no analysis; Result is nil then.
	Unavailable string `json:"unavailable,omitempty"`
	// Sequences counts the sequences seen and LeftOut those that could not
	// be analysed, by reason; NullSequences and NullLeftOut the same for
	// the null set.
	Sequences     int64     `json:"sequences"`
	LeftOut       []LeftOut `json:"left_out"`
	NullSequences int64     `json:"null_sequences"`
	NullLeftOut   []LeftOut `json:"null_left_out"`
	// Confidence is the histogram of the model's confidence in its own
	// answers (labelnoise.Confidence) for the examples that reproduce their
	// label, the others and the null prompts; the cut separates them.
	Confidence *ConfidenceHistogram `json:"confidence,omitempty"`
	// FlagRefs locates each of Result.Flags in its input, for selector
	// clean; it is not written to JSON (a saved report cannot be cleaned
	// from: it does not say which data file its inputs came from).
	FlagRefs []ExampleRef `json:"-"`
}

// ConfidenceHistogram counts answers by confidence: Agree[i] examples that
// reproduce their label, Disagree[i] the others and Null[i] the null
// prompts have a confidence in [Edges[i], Edges[i+1]) (the last bin holds
// 1 too).
type ConfidenceHistogram struct {
	Edges    []float64 `json:"edges"`
	Agree    []int     `json:"agree"`
	Disagree []int     `json:"disagree"`
	Null     []int     `json:"null"`
}

// confidenceBins is the number of bins of ConfidenceHistogram.
const confidenceBins = 20

func confidenceHistogram(ex, null []labelnoise.Example) *ConfidenceHistogram {
	h := &ConfidenceHistogram{Agree: make([]int, confidenceBins), Disagree: make([]int, confidenceBins), Null: make([]int, confidenceBins)}
	for i := range confidenceBins + 1 {
		h.Edges = append(h.Edges, float64(i)/confidenceBins)
	}
	bin := func(e labelnoise.Example) int {
		return min(int(labelnoise.Confidence(e)*confidenceBins), confidenceBins-1)
	}
	for _, e := range ex {
		agree := !slices.Contains(e.Match, false)
		if e.Own != nil {
			agree = e.Own.Agree
		}
		if agree {
			h.Agree[bin(e)]++
		} else {
			h.Disagree[bin(e)]++
		}
	}
	for _, e := range null {
		h.Null[bin(e)]++
	}
	return h
}

// LeftOut counts the sequences left out of the analysis for one reason.
type LeftOut struct {
	Reason string `json:"reason"`
	Count  int64  `json:"count"`
	First  string `json:"first"` // where the first of them is, file:line
}

// ExampleRef says where an analysed sequence came from: its file and line
// (the data file's, for servers and checkpoints) and its Record (see
// Sequence.Record).
type ExampleRef struct {
	Source string
	Line   int
	Record int
	// Multi is set when the line held several sequences (n > 1 choices,
	// batch replies): such a line cannot stand for one SFT line.
	Multi bool
}

// Reasons a sequence is left out of the noise-aware analysis.
const (
	reasonNoTop     = "no top-k lists: the first choice at each target token is unknown (request top log-probs: logprobs ≥ 1, top_logprobs_num ≥ 1)"
	reasonNoTopTGI  = "TGI gives no top-k lists for prompt tokens: the first choice at each target token is unknown, and the analysis needs it where the model does not reproduce the label"
	reasonSomeNoTop = "a scored position without a top-k list"
	reasonNoOwn     = "no own answer, where the other sequences have one (method greedy)"
	reasonBadLine   = "a bad line (--skip-bad)"
)

// noiseCollector keeps the label paths (and own answers) of the sequences
// an accumulator sees, compactly: their floats and booleans sit in shared
// slabs: 17 bytes per scored token (two float64 and a bool) and about 130
// per sequence (its labelnoise.Example and key).
type noiseCollector struct {
	examples []labelnoise.Example
	keys     []exampleKey
	null     []labelnoise.Example
	nullKeys []exampleKey
	ownReal  int // examples with an own answer
	ownNull  int
	leftOut  leftOuts
	nullOut  leftOuts
	nullSeen int64
	srcs     []string
	srcIdx   map[string]int32
	fslab    []float64
	bslab    []bool
	// Saved reports merged in: their per-example data is gone.
	reports int
	carried *NoiseAware
}

type exampleKey struct {
	src, line, rec int32
	multi          bool
	sub            string // the part of the sequence's ID after '#', on lines with several
}

// leftOuts counts left-out sequences by reason, in the order first seen.
type leftOuts []LeftOut

func (l *leftOuts) add(reason, where string) {
	for i := range *l {
		if (*l)[i].Reason == reason {
			(*l)[i].Count++
			return
		}
	}
	*l = append(*l, LeftOut{Reason: reason, Count: 1, First: where})
}

func (l leftOuts) total() int64 {
	var n int64
	for _, x := range l {
		n += x.Count
	}
	return n
}

const slabSize = 1 << 16

func newNoiseCollector() *noiseCollector { return &noiseCollector{srcIdx: map[string]int32{}} }

func (c *noiseCollector) floats(src []float64) []float64 {
	n := len(src)
	if len(c.fslab)+n > cap(c.fslab) {
		c.fslab = make([]float64, 0, max(slabSize, n))
	}
	k := len(c.fslab)
	c.fslab = append(c.fslab, src...)
	return c.fslab[k : k+n : k+n]
}

func (c *noiseCollector) bools(src []bool) []bool {
	n := len(src)
	if len(c.bslab)+n > cap(c.bslab) {
		c.bslab = make([]bool, 0, max(slabSize, n))
	}
	k := len(c.bslab)
	c.bslab = append(c.bslab, src...)
	return c.bslab[k : k+n : k+n]
}

func where(seq *Sequence) string {
	if seq.Line > 0 {
		return seq.Source + ":" + strconv.Itoa(seq.Line)
	}
	return seq.Source
}

// add keeps seq's label path (st.path, from summarize) and own answer, or
// counts it as left out. format is its input's format.
func (c *noiseCollector) add(seq *Sequence, st *seqStats, format string, null bool) {
	out := &c.leftOut
	if null {
		out = &c.nullOut
		c.nullSeen++
	}
	path := &st.path
	switch {
	case path.noTop && strings.HasPrefix(format, TGI):
		out.add(reasonNoTopTGI, where(seq))
		return
	case path.noTop:
		out.add(reasonNoTop, where(seq))
		return
	case path.missing >= 0:
		out.add(reasonSomeNoTop, where(seq))
		return
	}
	e := labelnoise.Example{LogP: c.floats(path.lps), Top1: c.floats(path.first), Match: c.bools(path.match)}
	if seq.Own != nil {
		lp := c.floats(seq.Own.LogP)
		for k := range lp {
			lp[k] = min(lp[k], 0) // summarize let rounding above 0 through
		}
		e.Own = &labelnoise.Answer{Text: seq.Own.Text, LogP: lp, Agree: seq.Own.Agree}
	}
	k := exampleKey{src: c.source(seq.Source), line: int32(seq.Line), rec: int32(seq.Record)}
	if i := strings.LastIndexByte(seq.ID, '#'); i >= 0 {
		k.multi, k.sub = true, seq.ID[i+1:]
	}
	if null {
		c.null = append(c.null, e)
		c.nullKeys = append(c.nullKeys, k)
		if e.Own != nil {
			c.ownNull++
		}
		return
	}
	c.examples = append(c.examples, e)
	c.keys = append(c.keys, k)
	if e.Own != nil {
		c.ownReal++
	}
}

// order returns the indices of keys in a canonical order (by input, then
// line, record and sub-sequence), so that the analysis, its bootstrap
// included, does not depend on the order in which a server's replies came
// in.
func (c *noiseCollector) order(keys []exampleKey) []int {
	idx := make([]int, len(keys))
	for i := range idx {
		idx[i] = i
	}
	sort.SliceStable(idx, func(a, b int) bool {
		x, y := keys[idx[a]], keys[idx[b]]
		switch {
		case x.src != y.src:
			return x.src < y.src
		case x.line != y.line:
			return x.line < y.line
		case x.rec != y.rec:
			return x.rec < y.rec
		}
		return x.sub < y.sub
	})
	return idx
}

func (c *noiseCollector) source(name string) int32 {
	i, ok := c.srcIdx[name]
	if !ok {
		i = int32(len(c.srcs))
		c.srcIdx[name] = i
		c.srcs = append(c.srcs, name)
	}
	return i
}

func (c *noiseCollector) ref(i int) ExampleRef {
	k := c.keys[i]
	return ExampleRef{Source: c.srcs[k.src], Line: int(k.line), Record: int(k.rec), Multi: k.multi}
}

func (c *noiseCollector) id(i int) string {
	k := c.keys[i]
	s := c.srcs[k.src]
	if k.line > 0 {
		s += ":" + strconv.Itoa(int(k.line))
	}
	if k.multi {
		s += " #" + k.sub
	}
	return s
}

// merge appends d's data to c (d is not used afterwards).
func (c *noiseCollector) merge(d *noiseCollector) {
	for i := range d.examples {
		c.examples = append(c.examples, d.examples[i])
		k := d.keys[i]
		k.src = c.source(d.srcs[k.src])
		c.keys = append(c.keys, k)
	}
	c.null = append(c.null, d.null...)
	for _, k := range d.nullKeys {
		k.src = c.source(d.srcs[k.src])
		c.nullKeys = append(c.nullKeys, k)
	}
	c.ownReal += d.ownReal
	c.ownNull += d.ownNull
	for _, l := range d.leftOut {
		c.leftOut.merge(l)
	}
	for _, l := range d.nullOut {
		c.nullOut.merge(l)
	}
	c.nullSeen += d.nullSeen
	c.reports += d.reports
	if c.carried == nil {
		c.carried = d.carried
	}
}

func (l *leftOuts) merge(x LeftOut) {
	for i := range *l {
		if (*l)[i].Reason == x.Reason {
			(*l)[i].Count += x.Count
			return
		}
	}
	*l = append(*l, x)
}

func (c *noiseCollector) seen() int64 { return int64(len(c.examples)) + c.leftOut.total() }

// analyze runs the analysis over what was collected.
func (c *noiseCollector) analyze(cfg Config) (*NoiseAware, error) {
	if c.reports > 0 {
		if c.reports == 1 && c.seen() == 0 && c.nullSeen == 0 {
			return c.carried, nil // one saved report, as it was
		}
		return &NoiseAware{Unavailable: fmt.Sprintf("The report merges %d saved report(s)%s: a saved report keeps no per-example data, so the noise-aware analysis cannot be recomputed over the merge. Probe the inputs together (selector probe a.jsonl b.jsonl, with --null for their null sets) for it.",
			c.reports, map[bool]string{true: " with other inputs", false: ""}[c.seen() > 0]),
			Sequences: c.seen(), LeftOut: nonNil(c.leftOut), NullSequences: c.nullSeen, NullLeftOut: nonNil(c.nullOut)}, nil
	}
	na := &NoiseAware{Sequences: c.seen(), NullSequences: c.nullSeen}
	method := labelnoise.TeacherForced
	if !cfg.TeacherForced && c.ownReal > 0 {
		method = labelnoise.Greedy
	}
	leftOut, nullOut := append(leftOuts(nil), c.leftOut...), append(leftOuts(nil), c.nullOut...)
	ex := make([]labelnoise.Example, 0, len(c.examples))
	idx := make([]int, 0, len(c.examples))
	ord := c.order(c.keys)
	pos := make([]int, len(ord)) // an example's place in the canonical order
	for p, i := range ord {
		pos[i] = p
	}
	for _, i := range ord {
		e := c.examples[i]
		switch {
		case method == labelnoise.TeacherForced:
			e.Own = nil
		case e.Own == nil:
			leftOut.add(reasonNoOwn, c.id(i))
			continue
		}
		ex = append(ex, e)
		idx = append(idx, i)
	}
	var null []labelnoise.Example
	for _, i := range c.order(c.nullKeys) {
		e := c.null[i]
		switch {
		case method == labelnoise.TeacherForced:
			e.Own = nil
		case e.Own == nil:
			nullOut.add(reasonNoOwn, "")
			continue
		}
		null = append(null, e)
	}
	na.LeftOut, na.NullLeftOut = nonNil(leftOut), nonNil(nullOut)
	if len(ex) == 0 {
		if na.Sequences == 0 {
			na.Unavailable = "No sequences."
		} else {
			na.Unavailable = fmt.Sprintf("None of the %d sequences can be analysed: %s.", na.Sequences, describeLeftOut(leftOut))
		}
		return na, nil
	}
	opt := cfg.Noise
	if opt.Seed == 0 {
		opt.Seed = cfg.Seed
	}
	if opt.Resamples == 0 {
		opt.Resamples = cfg.Bootstrap
	}
	res, err := labelnoise.Analyze(ex, null, method, opt)
	if err != nil {
		return nil, fmt.Errorf("probe: noise-aware analysis: %w", err)
	}
	for k := range res.Flags {
		i := idx[res.Flags[k].Index]
		res.Flags[k].Index = pos[i]
		res.Flags[k].ID = c.id(i)
		na.FlagRefs = append(na.FlagRefs, c.ref(i))
	}
	if n := leftOut.total(); n > 0 {
		res.Notes = append(res.Notes, fmt.Sprintf("%d of the %d sequences are left out: %s.", n, na.Sequences, describeLeftOut(leftOut)))
	}
	if n := nullOut.total(); n > 0 {
		res.Notes = append(res.Notes, fmt.Sprintf("%d of the %d null sequences are left out: %s.", n, na.NullSequences, describeLeftOut(nullOut)))
	}
	if len(null) == 0 && na.NullSequences == 0 && method == labelnoise.TeacherForced {
		res.Notes = append(res.Notes, "Score the same examples with their prompts' letters and digits shuffled and pass the replies as the null set (selector probe --null; see docs/probe.md).")
	}
	na.Result = res
	na.Confidence = confidenceHistogram(ex, null)
	return na, nil
}

func nonNil(l leftOuts) []LeftOut {
	if l == nil {
		return []LeftOut{}
	}
	return l
}

func describeLeftOut(l leftOuts) string {
	s := slicesSortedByCount(l)
	var parts []string
	for _, x := range s {
		p := fmt.Sprintf("%d for %s", x.Count, x.Reason)
		if x.First != "" {
			p += " (first: " + x.First + ")"
		}
		parts = append(parts, p)
	}
	return strings.Join(parts, "; ")
}

func slicesSortedByCount(l leftOuts) leftOuts {
	s := append(leftOuts(nil), l...)
	sort.SliceStable(s, func(i, j int) bool { return s[i].Count > s[j].Count })
	return s
}

// AddNull checks one sequence of the null set (the model on prompts it
// cannot know, scored like the real examples; see the package doc) and
// keeps its label path and own answer for the noise-aware analysis. The
// report's statistics do not see it. Without Config.NoiseAware it only
// checks the sequence.
func (a *Accumulator) AddNull(seq Sequence) error {
	var s seqStats
	st := a.stats(&seq, &s)
	if st.err != nil {
		return st.err
	}
	if a.noise != nil {
		format := ""
		if i, ok := a.sourceIdx[seq.Source]; ok {
			format = a.sources[i].Format
		}
		a.noise.add(&seq, st, format, true)
	}
	return nil
}

// ConsumeNull reads a null set's source to the end, as Consume reads the
// data: a bad line stops it, unless SkipBad counts it among the null
// sequences left out.
func (a *Accumulator) ConsumeNull(src Source) error {
	return a.consume(src, a.AddNull, func(le *LineError) {
		if a.noise == nil {
			return
		}
		a.noise.nullSeen++
		w := le.File
		if le.Line > 0 {
			w += ":" + strconv.Itoa(le.Line)
		}
		a.noise.nullOut.add(reasonBadLine, w)
	})
}

// NoiseExamples returns the examples collected for the noise-aware
// analysis, ordered by input, line and record (the order the analysis sees
// them in, which the report's flags index), with their IDs set (file:line)
// and where each came from, and the null set. Sequences whose label path
// lacks first choices are not among them. They share memory with the
// accumulator. Without Config.NoiseAware all are nil.
func (a *Accumulator) NoiseExamples() (examples []labelnoise.Example, refs []ExampleRef, null []labelnoise.Example) {
	c := a.noise
	if c == nil {
		return nil, nil, nil
	}
	for _, i := range c.order(c.keys) {
		e := c.examples[i]
		e.ID = c.id(i)
		examples = append(examples, e)
		refs = append(refs, c.ref(i))
	}
	for _, i := range c.order(c.nullKeys) {
		null = append(null, c.null[i])
	}
	return examples, refs, null
}
