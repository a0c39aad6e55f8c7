package theory

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"sort"
)

// ContextsFormat documents the JSONL that ReadContexts accepts; the command
// line prints it in its help.
const ContextsFormat = `One JSON object per line, either a full distribution:
  {"q": [0.7, 0.2, 0.1], "label": 0, "truth": 1}
  {"logq": [-0.36, -1.61, -2.30], "label": 0}
where label and the optional truth are indices into q; or a top-k list:
  {"top": {"A": -0.1, "B": -2.5}, "label": "A", "truth": "C", "vocab": 50000}
  {"top": {"A": -0.1}, "label": "Z", "label_logprob": -4.2}
where top maps the model's most likely tokens to their log-probs, label
(and the optional truth) are tokens, label_logprob is required when the
label is not listed, a truth that is not listed lies in the unlisted
remainder, and vocab (V) is needed for --u uniform and --posterior. With V
the unlisted mass is spread evenly over the V − k unlisted tokens, without
it treated as one outcome. EAFT's gate reads the entropy of the top 20
tokens (Axolotl's form: top k), so its contexts need a top list that long.
Blank lines are skipped.`

type contextLine struct {
	Q            []float64          `json:"q"`
	LogQ         []float64          `json:"logq"`
	Top          map[string]float64 `json:"top"`
	Label        json.RawMessage    `json:"label"`
	Truth        json.RawMessage    `json:"truth"`
	LabelLogprob *float64           `json:"label_logprob"`
	Vocab        int                `json:"vocab"`
}

// ReadContexts reads the JSONL of ContextsFormat from r. name is used in
// errors, which give the line number. At most limit contexts are read
// (limit ≤ 0: no limit).
func ReadContexts(r io.Reader, name string, limit int) ([]Context, error) {
	br := bufio.NewReaderSize(r, 1<<16)
	var out []Context
	for line := 1; ; line++ {
		b, err := br.ReadBytes('\n')
		if len(bytes.TrimSpace(b)) > 0 {
			c, perr := parseContext(b)
			if perr != nil {
				return nil, fmt.Errorf("%s:%d: %w", name, line, perr)
			}
			out = append(out, c)
			if limit > 0 && len(out) >= limit {
				return out, nil
			}
		}
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("%s:%d: %w", name, line, err)
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%s: no contexts", name)
	}
	return out, nil
}

func parseContext(b []byte) (Context, error) {
	var cl contextLine
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&cl); err != nil {
		return Context{}, fmt.Errorf("bad JSON: %w", err)
	}
	if len(cl.Label) == 0 {
		return Context{}, errors.New(`missing "label"`)
	}
	forms := 0
	for _, present := range []bool{cl.Q != nil, cl.LogQ != nil, cl.Top != nil} {
		if present {
			forms++
		}
	}
	if forms != 1 {
		return Context{}, errors.New(`give exactly one of "q", "logq" or "top"`)
	}
	var c Context
	if cl.Top == nil {
		q := cl.Q
		if cl.LogQ != nil {
			q = make([]float64, len(cl.LogQ))
			for i, lp := range cl.LogQ {
				if math.IsNaN(lp) || lp > 1e-9 {
					return Context{}, fmt.Errorf("logq[%d] = %v is not a log-probability", i, lp)
				}
				q[i] = math.Exp(lp)
			}
		}
		c = Context{Q: q, Truth: Unknown, Vocab: cl.Vocab}
		if err := json.Unmarshal(cl.Label, &c.Label); err != nil {
			return Context{}, errors.New(`"label" must be an index into q`)
		}
		if len(cl.Truth) > 0 && string(cl.Truth) != "null" {
			if err := json.Unmarshal(cl.Truth, &c.Truth); err != nil {
				return Context{}, errors.New(`"truth" must be an index into q`)
			}
		}
	} else {
		var label string
		if err := json.Unmarshal(cl.Label, &label); err != nil {
			return Context{}, errors.New(`with "top", "label" must be a token string`)
		}
		toks := make([]string, 0, len(cl.Top)+1)
		for t := range cl.Top {
			toks = append(toks, t)
		}
		sort.Strings(toks)
		lps := make(map[string]float64, len(toks)+1)
		for t, lp := range cl.Top {
			lps[t] = lp
		}
		if _, ok := lps[label]; !ok {
			if cl.LabelLogprob == nil {
				return Context{}, fmt.Errorf(`label %q is not in "top"; give "label_logprob"`, label)
			}
			lps[label] = *cl.LabelLogprob
			toks = append(toks, label)
		} else if cl.LabelLogprob != nil && math.Abs(*cl.LabelLogprob-lps[label]) > 1e-6 {
			return Context{}, fmt.Errorf(`"label_logprob" %v disagrees with top[%q] = %v`, *cl.LabelLogprob, label, lps[label])
		}
		listed := make([]float64, len(toks))
		li, ti := -1, Unknown
		var truth string
		hasTruth := len(cl.Truth) > 0 && string(cl.Truth) != "null"
		if hasTruth {
			if err := json.Unmarshal(cl.Truth, &truth); err != nil {
				return Context{}, errors.New(`with "top", "truth" must be a token string`)
			}
			ti = len(toks) // unlisted unless found below
		}
		for i, t := range toks {
			lp := lps[t]
			if math.IsNaN(lp) || lp > 1e-9 {
				return Context{}, fmt.Errorf("log-prob %v of token %q is not a log-probability", lp, t)
			}
			listed[i] = math.Exp(lp)
			if t == label {
				li = i
			}
			if hasTruth && t == truth {
				ti = i
			}
		}
		c = NewTopK(listed, li, ti, cl.Vocab)
		if c.Bucket {
			c.TopK = len(cl.Top)
		}
	}
	if err := c.Validate(); err != nil {
		return Context{}, err
	}
	return c, nil
}
