package probe

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"gonum.org/v1/gonum/stat/distuv"
)

// writeFile writes lines to dir/name and returns the path.
func writeFile(t testing.TB, dir, name string, lines ...string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(strings.Join(lines, "\n")+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// reportOf runs the files through an accumulator.
func reportOf(t testing.TB, cfg Config, opt Options, paths ...string) (*Report, error) {
	t.Helper()
	acc := NewAccumulator(cfg)
	fs, err := OpenFiles(paths, opt, func(file, format string, _ bool) { acc.AddSource(file, format) })
	if err != nil {
		return nil, err
	}
	defer fs.Close()
	if err := acc.Consume(fs); err != nil {
		return nil, err
	}
	return acc.Report()
}

func lp(p float64) string { return fmt.Sprint(math.Log(p)) }

func near(got, want, tol float64) bool { return math.Abs(got-want) <= tol }

// TestReportByHand checks every statistic on a sample small enough to work
// out by hand. Scored probabilities: 0.91, 0.52, 0.13 (sequence a) and 0.83,
// 0 (log-prob -9999), 0.64 (sequence b; its fourth token is masked).
func TestReportByHand(t *testing.T) {
	dir := t.TempDir()
	a := fmt.Sprintf(`{"id":"a","logprobs":[%s,%s,%s],"tokens":["x","y","t"],"top_logprobs":[{"x":%s,"w":%s},{"y2":%s,"z":%s},[["t",%s],["u",%s]]]}`,
		lp(0.91), lp(0.52), lp(0.13), lp(0.91), lp(0.05), lp(0.3), lp(0.1), lp(0.13), lp(0.8))
	b := fmt.Sprintf(`{"id":"b","logprobs":[%s,-9999,%s,%s],"mask":[1,1,1,0]}`, lp(0.83), lp(0.64), lp(0.99))
	path := writeFile(t, dir, "hand.jsonl", a, "", b)
	rep, err := reportOf(t, Config{}, Options{}, path)
	if err != nil {
		t.Fatal(err)
	}
	const tol = 1e-12
	checks := []struct {
		name      string
		got, want float64
		tol       float64
	}{
		{"sequences", float64(rep.Sequences), 2, 0},
		{"tokens", float64(rep.Tokens), 6, 0},
		// Eq. 5: (0.91 + 0.52 + 0.13 + 0.83 + 0 + 0.64)/6 = 3.03/6.
		{"mean_p", rep.MeanP, 3.03 / 6, tol},
		// Mean of log p over the five tokens with p > 0.
		{"mean_logp", *rep.MeanLogP, math.Log(0.91*0.52*0.13*0.83*0.64) / 5, tol},
		{"zero_p_tokens", float64(rep.ZeroPTokens), 1, 0},
		{"share_p_gt_055", rep.ShareGT055, 3.0 / 6, 0}, // 0.91, 0.83, 0.64
		{"share_p_ge_02", rep.ShareGE02, 4.0 / 6, 0},   // and 0.52
		// Sorted p: 0, 0.13, 0.52, 0.64, 0.83, 0.91; the ⌈q·6⌉-th smallest,
		// exact to half a bin (5·10⁻⁵).
		{"p05", rep.Quantiles.P05, 0, 0},
		{"p10", rep.Quantiles.P10, 0, 0},
		{"p25", rep.Quantiles.P25, 0.13, 5e-5},
		{"p50", rep.Quantiles.P50, 0.52, 5e-5},
		{"p75", rep.Quantiles.P75, 0.83, 5e-5},
		{"p90", rep.Quantiles.P90, 0.91, 5e-5},
		{"p95", rep.Quantiles.P95, 0.91, 5e-5},
		// Top-k on sequence a only. Position 0 lists the target (x) and w;
		// position 1 lacks the target (y, 0.52), which is added; position 2
		// lists t and u = 0.8 > 0.13, so only positions 0 and 1 agree.
		{"top_k_tokens", float64(rep.TopKTokens), 3, 0},
		{"top1_agreement", *rep.Top1Agreement, 2.0 / 3, 0},
		{"mean_q_sq_norm", *rep.MeanQSqNorm, ((0.91*0.91 + 0.05*0.05) + (0.3*0.3 + 0.1*0.1 + 0.52*0.52) + (0.13*0.13 + 0.8*0.8)) / 3, tol},
		// Per-sequence means: a 1.56/3 = 0.52, b 1.47/3 = 0.49.
		{"seq p05", rep.SeqMeanPQuantiles.P05, 0.49, tol},
		{"seq p50", rep.SeqMeanPQuantiles.P50, 0.49, tol},
		{"seq p75", rep.SeqMeanPQuantiles.P75, 0.52, tol},
	}
	for _, c := range checks {
		if !near(c.got, c.want, c.tol) {
			t.Errorf("%s = %v, want %v ± %v", c.name, c.got, c.want, c.tol)
		}
	}
	// Two sequences are too few for a CI (MinCISequences): the report says
	// so and gives [0, 1].
	if rep.MeanPCIDefined || rep.MeanPCI != [2]float64{0, 1} || rep.CIMinSequences != MinCISequences {
		t.Errorf("mean_p_ci = %v (defined %v), want undefined [0, 1]", rep.MeanPCI, rep.MeanPCIDefined)
	}
	// The bootstrap itself resamples the two sequences: every resample's
	// mean lies between the per-sequence means 0.49 and 0.52.
	if ci := bootstrapCI([]float64{1.47, 1.56}, []uint32{3, 3}, 1000, 1, CILevel); !(0.49-tol <= ci[0] && ci[0] <= rep.MeanP && rep.MeanP <= ci[1] && ci[1] <= 0.52+tol) {
		t.Errorf("bootstrap CI = %v, want within [0.49, 0.52] around %v", ci, rep.MeanP)
	}
	wantHist := make([]uint64, 20) // bins of 0.05: 0 → 0, 0.13 → 2, 0.52 → 10, 0.64 → 12, 0.83 → 16, 0.91 → 18
	for _, b := range []int{0, 2, 10, 12, 16, 18} {
		wantHist[b]++
	}
	if !reflect.DeepEqual(rep.Histogram.Counts, wantHist) || len(rep.Histogram.Edges) != 21 {
		t.Errorf("histogram %v, want %v", rep.Histogram.Counts, wantHist)
	}
	pl := rep.Placement
	if pl.Region != Intermediate || rep.Region != Intermediate || pl.NearestAnchor.MeanP != 0.50 || !pl.Borderline || pl.TheoryStrongCondition {
		t.Errorf("placement %+v", pl)
	}
	if len(rep.Reservoir.Records) != 6 || rep.Sources[0].Format != Native || rep.Sources[0].Tokens != 6 {
		t.Errorf("reservoir %d records, sources %+v", len(rep.Reservoir.Records), rep.Sources)
	}
	for _, r := range rep.Reservoir.Records {
		if r.Seq == "a" && r.Pos == 2 && (r.Token != "t" || len(r.Top) != 2 || r.Top[1].Token != "u") {
			t.Errorf("record %+v lost its tokens", r)
		}
		if r.Seq == "b" && r.Pos == 3 {
			t.Errorf("masked token in the reservoir: %+v", r)
		}
	}
}

// TestMinCISequences computes the width ratios that MinCISequences' comment
// quotes: the percentile bootstrap's interval over n sequences against
// Student's t interval, z₀.₉₇₅·√((n−1)/n)/t₀.₉₇₅,ₙ₋₁, and checks that the
// ratio passes 0.9 at 18, below the minimum of 20.
func TestMinCISequences(t *testing.T) {
	z := distuv.UnitNormal.Quantile(0.975)
	ratio := func(n int) float64 {
		st := distuv.StudentsT{Mu: 0, Sigma: 1, Nu: float64(n - 1)}
		return z * math.Sqrt(float64(n-1)/float64(n)) / st.Quantile(0.975)
	}
	for n, want := range map[int]float64{5: 0.63, 10: 0.82, 20: 0.91, 30: 0.94} {
		if got := ratio(n); !near(got, want, 0.005) {
			t.Errorf("ratio(%d) = %.4f, the comment says %.2f", n, got, want)
		}
	}
	first := 2
	for ratio(first) <= 0.9 {
		first++
	}
	if first != 18 || MinCISequences < first {
		t.Errorf("the first n with a ratio above 0.9 is %d, MinCISequences is %d", first, MinCISequences)
	}
}

// TestBadInput: each bad line is an error naming the file and line, and
// --skip-bad counts it instead.
func TestBadInput(t *testing.T) {
	good := `{"logprobs":[-0.1,-0.2]}`
	for _, c := range []struct {
		name, line, want string
	}{
		{"malformed JSON", `{"logprobs":[-0.1,}`, "bad JSON"},
		{"not an object", `[1,2]`, "want an object"},
		{"NaN", `{"logprobs":[-0.1,NaN]}`, "NaN"},
		{"positive", `{"logprobs":[0.5]}`, "positive"},
		{"mask length", `{"logprobs":[-0.1,-0.2],"mask":[1]}`, "lengths disagree"},
		{"top length", `{"logprobs":[-0.1,-0.2],"top_logprobs":[null]}`, "lengths disagree"},
		{"tokens length", `{"logprobs":[-0.1],"tokens":["a","b"]}`, "lengths disagree"},
		{"no scored tokens", `{"logprobs":[-0.1,-0.2],"mask":[0,0]}`, "no scored tokens"},
		{"empty", `{"logprobs":[]}`, "no log-probs"},
		{"missing logprobs", `{"id":"x"}`, `missing "logprobs"`},
		{"unknown field", `{"logprobs":[-0.1],"masks":[1]}`, `unknown field "masks"`},
		{"duplicate field", `{"logprobs":[-0.1],"logprobs":[-0.2]}`, "appears twice"},
		{"null scored", `{"logprobs":[null,-0.2],"mask":[1,1]}`, "null"},
		{"bad mask", `{"logprobs":[-0.1],"mask":[2]}`, "want 0, 1"},
		{"top NaN", `{"logprobs":[-0.1],"top_logprobs":[{"a":NaN}]}`, "not a log-probability"},
		{"top mass", `{"logprobs":[-0.1],"top_logprobs":[{"a":-0.1,"b":-0.2}]}`, "summing to"},
		{"truncated", `{"logprobs":[-0.1`, "bad JSON"},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			path := writeFile(t, dir, "in.jsonl", good, c.line, good)
			_, err := reportOf(t, Config{}, Options{Format: Native}, path)
			wantLoc := path + ":2:"
			if err == nil || !strings.Contains(err.Error(), wantLoc) || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error %v, want %q and %q", err, wantLoc, c.want)
			}
			rep, err := reportOf(t, Config{SkipBad: true}, Options{Format: Native}, path)
			if err != nil || rep.Sequences != 2 || rep.Skipped == nil || rep.Skipped.Lines != 1 || rep.Sources[0].Skipped != 1 ||
				!strings.Contains(rep.Skipped.First[0], wantLoc) {
				t.Fatalf("--skip-bad: %v, %+v", err, rep)
			}
		})
	}
	// Empty input and all-bad input fail even with SkipBad.
	dir := t.TempDir()
	empty := writeFile(t, dir, "empty.jsonl", "")
	if _, err := reportOf(t, Config{}, Options{}, empty); err == nil || !strings.Contains(err.Error(), "no scored tokens") {
		t.Errorf("empty input: %v", err)
	}
	bad := writeFile(t, dir, "bad.jsonl", `{"logprobs":[1]}`)
	if _, err := reportOf(t, Config{SkipBad: true}, Options{}, bad); err == nil || !strings.Contains(err.Error(), "skipped") {
		t.Errorf("all-bad input: %v", err)
	}
	undetectable := writeFile(t, dir, "what.jsonl", `{"hello":1}`)
	if _, err := reportOf(t, Config{}, Options{}, undetectable); err == nil || !strings.Contains(err.Error(), "what.jsonl:1: cannot tell the format") {
		t.Errorf("undetectable input: %v", err)
	}
}

// randomLines makes n native lines with random lengths, masks, top lists
// and p = 0 tokens, from a fixed seed; withIDs decides whether they carry ids.
func randomLines(n int, seed uint64, withIDs bool) []string {
	rng := newTestRand(seed)
	var lines []string
	for i := range n {
		k := 1 + rng.IntN(40)
		var b strings.Builder
		b.WriteString("{")
		if withIDs {
			fmt.Fprintf(&b, `"id":"seq-%d",`, i)
		}
		b.WriteString(`"logprobs":[`)
		lps := make([]float64, k)
		for j := range lps {
			lps[j] = math.Log(rng.Float64())
			if rng.IntN(50) == 0 {
				lps[j] = -9999
			}
			if j > 0 {
				b.WriteString(",")
			}
			fmt.Fprint(&b, lps[j])
		}
		b.WriteString(`],"mask":[1`)
		for range k - 1 {
			fmt.Fprint(&b, ",", rng.IntN(4)/3^1)
		}
		b.WriteString("]")
		if rng.IntN(2) == 0 {
			b.WriteString(`,"top_logprobs":[`)
			for j := range lps {
				if j > 0 {
					b.WriteString(",")
				}
				rest := 1 - math.Exp(lps[j])
				fmt.Fprintf(&b, `{"t%d":%v,"o%d":%v}`, j, lps[j], j, math.Log(rest*rng.Float64()+1e-300))
			}
			b.WriteString("]")
		}
		b.WriteString("}")
		lines = append(lines, b.String())
	}
	return lines
}

// comparable returns the report without the fields that name the inputs.
func comparable(r *Report) Report {
	c := *r
	c.Sources, c.Skipped = nil, nil
	return c
}

// TestShardsMerge: the report over shards, merged as accumulators or as
// report files read back, equals the report over the concatenated input in
// every field but the list of sources, the reservoir included (its sample
// is keyed on sequence ids, or on content when there are none).
func TestShardsMerge(t *testing.T) {
	for _, withIDs := range []bool{true, false} {
		t.Run(fmt.Sprint("ids=", withIDs), func(t *testing.T) {
			dir := t.TempDir()
			lines := randomLines(300, 7, withIDs)
			cfg := Config{Reservoir: 50, Seed: 11, Bootstrap: 200}
			all := writeFile(t, dir, "all.jsonl", lines...)
			want, err := reportOf(t, cfg, Options{}, all)
			if err != nil {
				t.Fatal(err)
			}
			cuts := []int{0, 37, 38, 200, 300} // uneven shards, one of a single line
			var shards []string
			for i := range len(cuts) - 1 {
				shards = append(shards, writeFile(t, dir, fmt.Sprintf("shard%d.jsonl", i), lines[cuts[i]:cuts[i+1]]...))
			}
			// One accumulator over all shards as one input list.
			got, err := reportOf(t, cfg, Options{}, shards...)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(comparable(got), comparable(want)) {
				t.Errorf("shards as one input list differ from the concatenation:\n%s", diffJSON(got, want))
			}
			// Shards reported apart, written, read back and merged in reverse order.
			merged := NewAccumulator(cfg)
			for i := len(shards) - 1; i >= 0; i-- {
				rep, err := reportOf(t, cfg, Options{}, shards[i])
				if err != nil {
					t.Fatal(err)
				}
				var buf bytes.Buffer
				if err := rep.WriteJSON(&buf); err != nil {
					t.Fatal(err)
				}
				back, err := ReadReport(&buf, shards[i])
				if err != nil {
					t.Fatal(err)
				}
				if err := merged.AddReport(back); err != nil {
					t.Fatal(err)
				}
			}
			got, err = merged.Report()
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(comparable(got), comparable(want)) {
				t.Errorf("merged report files differ from the concatenation:\n%s", diffJSON(got, want))
			}
			if len(got.Sources) != len(shards) {
				t.Errorf("sources %+v", got.Sources)
			}
		})
	}
}

// diffJSON names the first fields in which two reports differ.
func diffJSON(a, b *Report) string {
	var out []string
	deepDiff(reflect.ValueOf(comparable(a)), reflect.ValueOf(comparable(b)), "", &out)
	return strings.Join(out, "\n")
}

func deepDiff(a, b reflect.Value, path string, out *[]string) {
	if len(*out) > 5 {
		return
	}
	if a.Kind() != b.Kind() {
		*out = append(*out, path+": kind")
		return
	}
	switch a.Kind() {
	case reflect.Struct:
		for i := 0; i < a.NumField(); i++ {
			deepDiff(a.Field(i), b.Field(i), path+"."+a.Type().Field(i).Name, out)
		}
	case reflect.Slice, reflect.Array:
		if a.Kind() == reflect.Slice && a.IsNil() != b.IsNil() {
			*out = append(*out, path+": nil vs non-nil")
		}
		if a.Len() != b.Len() {
			*out = append(*out, fmt.Sprintf("%s: len %d vs %d", path, a.Len(), b.Len()))
			return
		}
		for i := 0; i < a.Len(); i++ {
			deepDiff(a.Index(i), b.Index(i), fmt.Sprintf("%s[%d]", path, i), out)
		}
	case reflect.Pointer:
		if a.IsNil() || b.IsNil() {
			if a.IsNil() != b.IsNil() {
				*out = append(*out, path+": nil ptr")
			}
			return
		}
		deepDiff(a.Elem(), b.Elem(), path, out)
	case reflect.Float64:
		if a.Float() != b.Float() {
			*out = append(*out, fmt.Sprintf("%s: %v vs %v", path, a.Float(), b.Float()))
		}
	case reflect.Int, reflect.Int64, reflect.Int32:
		if a.Int() != b.Int() {
			*out = append(*out, fmt.Sprintf("%s: %v vs %v", path, a.Int(), b.Int()))
		}
	case reflect.Uint64, reflect.Uint32:
		if a.Uint() != b.Uint() {
			*out = append(*out, fmt.Sprintf("%s: %v vs %v", path, a.Uint(), b.Uint()))
		}
	case reflect.String:
		if a.String() != b.String() {
			*out = append(*out, fmt.Sprintf("%s: %q vs %q", path, a.String(), b.String()))
		}
	}
}

// TestWorkersAgree: the parallel reader gives the same report as the
// sequential one, with batches that split the input.
func TestWorkersAgree(t *testing.T) {
	dir := t.TempDir()
	lines := randomLines(3000, 5, false)
	for i := 0; i < len(lines); i += 97 {
		lines[i] = `{"logprobs":[0.5]}` // bad lines, counted in order
	}
	path := writeFile(t, dir, "in.jsonl", lines...)
	cfg := Config{SkipBad: true, Bootstrap: 100}
	want, err := reportOf(t, cfg, Options{Workers: 1}, path)
	if err != nil {
		t.Fatal(err)
	}
	for _, w := range []int{2, 3} {
		got, err := reportOf(t, cfg, Options{Workers: w}, path)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%d workers differ:\n%s", w, diffJSON(got, want))
		}
	}
}

func TestReadReportRejects(t *testing.T) {
	dir := t.TempDir()
	path := writeFile(t, dir, "in.jsonl", randomLines(5, 1, true)...)
	rep, err := reportOf(t, Config{}, Options{}, path)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(rep)
	for name, edit := range map[string]func(*Report){
		"no state": func(r *Report) { r.State = nil },
		"tokens":   func(r *Report) { r.Tokens++ },
		"version":  func(r *Report) { r.FormatVersion = 99 },
		"seq list": func(r *Report) { r.State.SeqTokens = r.State.SeqTokens[1:] },
		"counts":   func(r *Report) { r.State.GT055 = r.Tokens + 1 },
	} {
		var r Report
		json.Unmarshal(b, &r)
		edit(&r)
		eb, _ := json.Marshal(&r)
		if _, err := ReadReport(bytes.NewReader(eb), "x.json"); err == nil {
			t.Errorf("%s: edited report accepted", name)
		}
	}
	if _, err := ReadReport(strings.NewReader("{"), "x.json"); err == nil {
		t.Error("truncated report accepted")
	}
	acc := NewAccumulator(Config{Seed: 99})
	if err := acc.AddReport(rep); err == nil || !strings.Contains(err.Error(), "seed") {
		t.Errorf("merging a report of another seed: %v", err)
	}
}
