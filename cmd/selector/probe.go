package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"github.com/capsel/capsel/continuum"
	"github.com/capsel/capsel/internal/atomicfile"
	"github.com/capsel/capsel/internal/plots"
	"github.com/capsel/capsel/labelnoise"
	"github.com/capsel/capsel/probe"
	"github.com/capsel/capsel/probe/ckprobe"
	"github.com/capsel/capsel/sftdata"
	"github.com/capsel/capsel/train"
)

var cmdProbe = &command{
	name:  "probe",
	usage: "selector probe (--logprobs FILE|GLOB... [--format F] [--null FILE...] | --server URL... [--served-model NAME] --data SFT.jsonl | --model CKPT --data SFT.jsonl) [--out REPORT.json] [--plot DIR] [--json]",
	short: "measure a base model's token probabilities on held-out SFT data",
	long: `Measures how much a base model already believes its fine-tuning targets and
places it on the capability continuum of Li et al. (ICML 2026). The input is
the model's log-probability of every response token of held-out SFT data
(teacher forcing); the headline is the paper's Eq. 5, the mean of p over all
scored tokens, with a bootstrap CI over sequences:

  selector probe --logprobs scores.jsonl                 any script's output
  selector probe shard-*.jsonl --out report.json         shards merge into one report
  selector probe --server http://localhost:8000 --served-model Qwen/Qwen2.5-7B \
                 --data heldout.jsonl                    score on a live server
  selector probe --server http://gpu1:8000 --server http://gpu2:8000 \
                 --data heldout.jsonl --out report.json  replicas share the work
  selector probe --model runs/base/final --data heldout.jsonl   a capsel checkpoint
  selector probe a.report.json b.report.json --json      merge saved reports

Inputs are read in constant memory; several files or globs (and saved
reports) merge into one report equal to the report over their concatenation;
a file named twice is read once. The format of each file is detected from
its first line unless --format names it. Where the response starts is a
token index, "response_start": printed token texts do not add up to the
prompt's characters when a BOS token, SentencePiece, split multi-byte
characters or token_id:N tokens are involved. Formats:

` + probe.NativeFormat + `

` + probe.VLLMEchoFormat + `

` + probe.VLLMPromptFormat + `

` + probe.SGLangFormat + `

` + probe.TGIFormat + `

Live server mode (--server, repeatable for replicas) scores --data on vLLM,
SGLang or TGI. It tokenizes each prompt with the server's special tokens (a
chat's turns through the server's chat template) and the response without,
sends the token ids, and scores the positions from the prompt's length on,
as SFT trainers build their label masks. The requests, per server:

` + probe.ServerRequests + `

` + probe.ServerDetection + `

Before the first example a preflight asks each server what it is and
serves: a closed port, a URL that is no inference server and a wrong
--served-model (the message lists the served names) fail within seconds.
--served-model may be left out when the server serves one model.

Requests spread over the replicas. With --concurrency 0 (the default) the
requests in flight per server adapt: from 32, they double while throughput
grows, settle with headroom when it stops growing, halve on 429 or 503,
and back off when latency rises without throughput to show for it, up to
--max-concurrency. 429, 5xx, timeouts, dropped connections and replies
that do not hold what was asked are retried (--attempts, exponential
backoff with jitter, honouring Retry-After); an example the server refuses
(too long, say) is reported by line and the run goes on. Each reply is
appended to --cache (default DATA.<model>.<kind>.jsonl) in that server's
format with response_start: the cache is a --logprobs input, an
interrupted run resumes without rescoring, and a second probe on the same
cache refuses. Ctrl-C stops within about a second, keeping every reply
that came in; a second Ctrl-C stops at once.

` + sftdata.DataFormat + `

The report: sequences, tokens, mean_p and mean_p_ci (undefined, and [0, 1],
below 20 sequences), mean_logp, quantiles
of p (exact to 10⁻⁴), a histogram, share_p_gt_055 (the theory's
model-strong condition wants ≥ 70 %), share_p_ge_02, top1_agreement and
mean_q_sq_norm (with top-k), per-sequence quantiles, and the placement:
region model-weak below --weak-below (0.30), model-strong from --strong-at
(0.675), the cuts midway between the paper's anchor clusters (0.01–0.07,
0.50–0.59, 0.76–0.81, Table 5), borderline when the CI crosses a cut, and
the nearest of the paper's twelve anchors. A seeded sample of --reservoir
token records travels in the report for 'selector theory' and 'selector
recommend'. Bad lines stop the probe with their file and line, or are
counted with --skip-bad.

The noise-aware probe (--noise-aware, on by default) tells a model that does
not know its targets from targets that are wrong, which pull mean p down
alike. Per example it takes the label's agreement with the model and the
model's confidence in its own answer (the least probability of its
tokens): a label the model does not reproduce while it answers as
confidently as the labels it does reproduce is likely wrong (flagged); one
it is unsure of is likely unknown to it. The report's noise_aware section
(package labelnoise) gives the capability Ĉ with the flagged labels
replaced by the model's answers, the noise rate Ê among the examples the
model knows, the known share and the token noise rate, each with a
bootstrap CI over examples, the null check, the flagged examples and notes
that say why a figure is undefined. mean_p stays the paper's Eq. 5 on the
data as given. 'selector clean' writes the data without the flagged
examples.

The own answers: with --server and --model the model's greedy answer to
each prompt (method greedy; on a server one more request per example,
cached like the scoring); with --greedy=false, or log-prob files without
"own_answer", the
teacher-forced approximation from the top-k lists (method teacher-forced):
the label up to its first token that is not the model's first choice, then
that first choice. Every scored token needs a top-k list (the first choice
where the label is not it): TGI gives none for prompt tokens, and
sequences without lists are left out, counted, with the reason.

` + labelnoise.NullRecipe + ` With --server and --model the
probe builds and scores up to --null-prompts of them itself; for log-prob
files, score them as you scored the data and pass the replies with --null
(docs/probe.md has a Python version of the shuffle). Without a null set
the analysis runs and says so.

` + probe.OwnAnswerFormat + `

Memory: the per-example data of the analysis costs 17 bytes per scored
token and about 130 per sequence (a million tokens of vLLM replies with
top-5 lists: 84 MB peak instead of 64 MB); --noise-aware=
false keeps the probe in constant memory. Merged saved reports cannot
recompute the section: it is dropped with a note.`,
}

func init() { cmdProbe.run = runProbe }

// stringList is a repeatable flag whose values may also be comma lists.
type stringList []string

func (s *stringList) String() string { return strings.Join(*s, ",") }
func (s *stringList) Set(v string) error {
	*s = append(*s, splitList(v)...)
	return nil
}

// probeInputs are the flags that say where token probabilities come from
// and how to summarise them; 'selector recommend' takes the same.
type probeInputs struct {
	logprobs       stringList
	format         *string
	scoreAll       *bool
	servers        stringList
	serverKind     *string
	servedModel    *string
	data           *string
	cache          *string
	concurrency    *int
	maxConcurrency *int
	topK           *int
	timeout        *time.Duration
	attempts       *int
	model          *string
	skipBad        *bool
	seed           *uint64
	reservoir      *int
	bootstrap      *int
	vocab          *int
	weakBelow      *float64
	strongAt       *float64
	noiseAware     *bool
	greedy         *bool
	null           stringList
	nullPrompts    *int

	// What report read, for selector clean.
	records      int // non-blank lines of the log-prob files
	savedReports int // saved reports merged
}

func addProbeInputs(f *flags) *probeInputs {
	pi := &probeInputs{}
	f.Var(&pi.logprobs, "logprobs", "log-prob `file`s or globs (repeatable, comma-separated; also positional)")
	pi.format = f.String("format", "", "input `format`: "+strings.Join(probe.Formats, ", ")+" (default: detect per file)")
	pi.scoreAll = f.Bool("score-all", false, "score every token of inputs that do not say where the response starts")
	f.Var(&pi.servers, "server", "base `URL` of a vLLM, SGLang or TGI server to score --data on (repeatable: replicas)")
	pi.serverKind = f.String("server-kind", "auto", "the server: auto, vllm, sglang or tgi (auto asks it; see below)")
	pi.servedModel = f.String("served-model", "", "the served model's `name` (with --server; default: the one it serves)")
	pi.data = f.String("data", "", "SFT data `file` (with --server or --model; shapes below)")
	pi.cache = f.String("cache", "", "resumable cache `file` of server replies (default DATA.<model>.<kind>.jsonl)")
	pi.concurrency = f.Int("concurrency", 0, "requests in flight per server (with --server; 0: adapt)")
	pi.maxConcurrency = f.Int("max-concurrency", probe.DefaultMaxConcurrency, "most requests in flight per server when adapting")
	pi.topK = f.Int("top-k", 5, "top log-probs per token to request (with --server; 0: none)")
	pi.timeout = f.Duration("timeout", time.Minute, "timeout of each request (with --server)")
	pi.attempts = f.Int("attempts", 8, "tries per example before giving up on it (with --server)")
	pi.model = f.String("model", "", "a capsel `checkpoint` to score --data with")
	pi.skipBad = f.Bool("skip-bad", false, "count and report bad lines instead of stopping at the first")
	pi.seed = f.Uint64("seed", 1, "seed of the reservoir sample and the bootstrap")
	pi.reservoir = f.Int("reservoir", probe.DefaultReservoir, "token records kept for theory (0: none)")
	pi.bootstrap = f.Int("bootstrap", probe.DefaultBootstrap, "bootstrap resamples for the CI of mean p")
	pi.vocab = f.Int("vocab", 0, "vocabulary size V, recorded for theory's top-k contexts (0: unknown)")
	pi.weakBelow = f.Float64("weak-below", continuum.DefaultCuts.WeakBelow, "capability below which a model is model-weak")
	pi.strongAt = f.Float64("strong-at", continuum.DefaultCuts.StrongAt, "capability from which a model is model-strong")
	pi.noiseAware = f.Bool("noise-aware", true, "also tell a model that does not know from labels that are wrong (memory grows with the input)")
	pi.greedy = f.Bool("greedy", true, "noise-aware: the model's own greedy answers (servers and checkpoints generate them); false: the teacher-forced approximation from top-k lists")
	f.Var(&pi.null, "null", "noise-aware: log-prob `file`s of the null set, scored on shuffled prompts (with --logprobs; repeatable)")
	pi.nullPrompts = f.Int("null-prompts", labelnoise.DefaultNullPrompts, "noise-aware: at most this many null prompts (with --server and --model; 0: none)")
	return pi
}

// describe names the input of a report for people.
func (pi *probeInputs) describe(pos []string) string {
	switch {
	case *pi.model != "":
		return "checkpoint " + *pi.model + " on " + *pi.data
	case len(pi.servers) > 0:
		m := *pi.servedModel
		if m == "" {
			m = "the served model"
		}
		return m + " at " + strings.Join(pi.servers, ", ") + " on " + *pi.data
	}
	return strings.Join(append(append([]string(nil), pos...), pi.logprobs...), ", ")
}

// config checks the summary flags.
func (pi *probeInputs) config(f *flags) (probe.Config, error) {
	cfg := probe.Config{Seed: *pi.seed, Reservoir: *pi.reservoir, Bootstrap: *pi.bootstrap, Vocab: *pi.vocab,
		Cuts: continuum.Cuts{WeakBelow: *pi.weakBelow, StrongAt: *pi.strongAt}, SkipBad: *pi.skipBad,
		NoiseAware: *pi.noiseAware, TeacherForced: !*pi.greedy, NullPrompts: *pi.nullPrompts}
	if *pi.nullPrompts < 0 {
		return cfg, f.usagef("--null-prompts: %d < 0", *pi.nullPrompts)
	}
	if *pi.nullPrompts == 0 {
		cfg.NullPrompts = -1
	}
	switch {
	case *pi.reservoir < 0:
		return cfg, f.usagef("--reservoir: %d < 0", *pi.reservoir)
	case *pi.reservoir == 0:
		cfg.Reservoir = -1
	}
	if *pi.bootstrap < 1 {
		return cfg, f.usagef("--bootstrap: need at least one resample, got %d", *pi.bootstrap)
	}
	if err := cfg.Validate(); err != nil {
		return cfg, f.usagef("--weak-below/--strong-at: %v", errors.Unwrap(err))
	}
	return cfg, nil
}

// report runs the probe on the inputs the flags and positional arguments
// name.
func (pi *probeInputs) report(e *env, f *flags, pos []string) (*probe.Report, error) {
	cfg, err := pi.config(f)
	if err != nil {
		return nil, err
	}
	inputs := append(append([]string(nil), pi.logprobs...), pos...)
	modes := 0
	for _, on := range []bool{len(inputs) > 0, len(pi.servers) > 0, *pi.model != ""} {
		if on {
			modes++
		}
	}
	if modes != 1 {
		return nil, f.usagef("give one input: --logprobs FILE..., --server URL or --model CKPT")
	}
	if *pi.format != "" {
		if err := (probe.Options{Format: *pi.format}).Validate(); err != nil {
			return nil, f.usagef("--format: %v", err)
		}
	}
	if (len(pi.servers) > 0 || *pi.model != "") && *pi.data == "" {
		return nil, f.usagef("--data SFT.jsonl is required with --server and --model")
	}
	if len(pi.null) > 0 && !*pi.noiseAware {
		return nil, f.usagef("--null is the noise-aware analysis's null set; it makes no sense with --noise-aware=false")
	}
	if len(pi.null) > 0 && len(inputs) == 0 {
		return nil, f.usagef("--null names the null set's log-prob files, with --logprobs; --server and --model build their null set themselves (--null-prompts)")
	}
	if *pi.model != "" {
		return checkpointReport(e, *pi.model, *pi.data, cfg)
	}
	acc := probe.NewAccumulator(cfg)
	switch {
	case len(pi.servers) > 0:
		if err := pi.fromServer(e, f, acc); err != nil {
			return nil, err
		}
	default:
		if err := pi.fromFiles(e, f, acc, inputs); err != nil {
			return nil, err
		}
	}
	return acc.Report()
}

// checkpointReport probes a capsel checkpoint on an SFT file.
func checkpointReport(e *env, ckpt, data string, cfg probe.Config) (*probe.Report, error) {
	ck, err := readCheckpointFile(ckpt)
	if err != nil {
		return nil, err
	}
	fh, err := os.Open(data)
	if err != nil {
		return nil, err
	}
	sft, err := sftdata.ReadAll(fh, data)
	fh.Close()
	if err != nil {
		return nil, err
	}
	ex := make([]train.Example, len(sft))
	for i, x := range sft {
		ex[i] = train.Example{Prompt: x.PromptText(), Response: x.Response, Source: x.Source, Line: x.Line}
	}
	var opt ckprobe.Options
	if cfg.NoiseAware {
		// The null set from the SFT examples, so that a chat's roles and
		// template stay as they are.
		opt.Null = train.NullSFT(sft, cfg.NullPrompts, cfg.Seed)
		if opt.Null == nil {
			opt.Null = []train.Example{}
		}
	}
	// One bar over the stages: the answers (greedy decoding, the slow
	// part), then the scoring, of the examples and then of the null set.
	var prog *progress
	stage := ""
	opt.Progress = func(p ckprobe.Progress) {
		if p.Stage != stage {
			if prog != nil {
				prog.finish()
			}
			stage, prog = p.Stage, newProgress(e, p.Stage, "examples")
		}
		prog.update(float64(p.Done)/float64(max(p.Total, 1)), int64(p.Done))
	}
	defer func() {
		if prog != nil {
			prog.finish()
		}
	}()
	rep, err := ckprobe.ReportWith(e.ctx, ck, ckpt, ex, data, cfg, opt)
	if err != nil && e.ctx.Err() != nil {
		return nil, fmt.Errorf("interrupted: %w", e.ctx.Err())
	}
	return rep, err
}

var globMeta = regexp.MustCompile(`[*?\[]`)

// fromFiles reads log-prob files and merges saved reports.
func (pi *probeInputs) fromFiles(e *env, f *flags, acc *probe.Accumulator, inputs []string) error {
	paths, err := expandGlobs(f, inputs)
	if err != nil {
		return err
	}
	paths, twice := uniqueFiles(paths)
	for _, p := range twice {
		e.log.Warn().Str("file", p).Msg("named more than once: read once")
	}
	var raw []string
	for _, p := range paths {
		isRep, err := probe.IsReport(p)
		if err != nil {
			return err
		}
		if !isRep {
			raw = append(raw, p)
			continue
		}
		fh, err := os.Open(p)
		if err != nil {
			return err
		}
		rep, err := probe.ReadReport(fh, p)
		fh.Close()
		if err != nil {
			return err
		}
		if err := acc.AddReport(rep); err != nil {
			return fmt.Errorf("%s: %w", p, err)
		}
		pi.savedReports++
		e.log.Info().Str("file", p).Int64("tokens", rep.Tokens).Msg("merged report")
	}
	if len(raw) == 0 {
		return nil
	}
	opt := probe.Options{Format: *pi.format, ScoreAll: *pi.scoreAll}
	fs, err := probe.OpenFiles(raw, opt, func(file, format string, detected bool) {
		acc.AddSource(file, format)
		switch {
		case format == "":
			e.log.Warn().Str("file", file).Msg("empty file")
		case detected:
			e.log.Info().Str("file", file).Str("format", format).Msg("detected format")
		}
	})
	if err != nil {
		return err
	}
	defer fs.Close()
	if err := consume(e, acc, fs, fs.Bytes); err != nil {
		return err
	}
	pi.records = fs.Records()
	if len(pi.null) == 0 || !*pi.noiseAware {
		return nil
	}
	nullPaths, err := expandGlobs(f, pi.null)
	if err != nil {
		return err
	}
	nullPaths, _ = uniqueFiles(nullPaths)
	for _, p := range nullPaths {
		if isRep, err := probe.IsReport(p); err != nil {
			return err
		} else if isRep {
			return fmt.Errorf("--null %s is a probe report: the null set must be log-prob lines (scored on the shuffled prompts)", p)
		}
	}
	ns, err := probe.OpenFiles(nullPaths, opt, func(file, format string, detected bool) {
		if detected && format != "" {
			e.log.Info().Str("file", file).Str("format", format).Msg("null set: detected format")
		}
	})
	if err != nil {
		return err
	}
	defer ns.Close()
	return consumeNull(e, acc, ns, ns.Bytes)
}

// expandGlobs expands the globs among inputs.
func expandGlobs(f *flags, inputs []string) ([]string, error) {
	var paths []string
	for _, in := range inputs {
		if !globMeta.MatchString(in) {
			paths = append(paths, in)
			continue
		}
		m, err := filepath.Glob(in)
		if err != nil {
			return nil, f.usagef("%q: %v", in, err)
		}
		if len(m) == 0 {
			return nil, fmt.Errorf("no file matches %q", in)
		}
		paths = append(paths, m...)
	}
	return paths, nil
}

// uniqueFiles drops the paths that name a file named before (the same
// file by another path too), and returns them apart.
func uniqueFiles(paths []string) (unique, twice []string) {
	var seen []os.FileInfo
	for _, p := range paths {
		st, err := os.Stat(p)
		if err != nil {
			unique = append(unique, p) // the error comes when it is opened
			continue
		}
		dup := false
		for _, s := range seen {
			if os.SameFile(s, st) {
				dup = true
				break
			}
		}
		if dup {
			twice = append(twice, p)
			continue
		}
		seen = append(seen, st)
		unique = append(unique, p)
	}
	return unique, twice
}

// fromServer scores --data on live servers and reads the replies.
func (pi *probeInputs) fromServer(e *env, f *flags, acc *probe.Accumulator) error {
	kind, err := probe.ParseServerKind(*pi.serverKind)
	switch {
	case err != nil:
		return f.usagef("--server-kind: %v", err)
	case *pi.concurrency < 0:
		return f.usagef("--concurrency: %d < 0", *pi.concurrency)
	case *pi.maxConcurrency < 1:
		return f.usagef("--max-concurrency: need at least 1, got %d", *pi.maxConcurrency)
	case *pi.topK < 0:
		return f.usagef("--top-k: %d < 0", *pi.topK)
	case *pi.timeout <= 0:
		return f.usagef("--timeout: %v is not positive", *pi.timeout)
	case *pi.attempts < 1:
		return f.usagef("--attempts: need at least 1, got %d", *pi.attempts)
	}
	for _, u := range pi.servers {
		if !strings.HasPrefix(u, "http://") && !strings.HasPrefix(u, "https://") {
			return f.usagef("--server: %q is not an http(s) URL", u)
		}
	}
	e.log.Info().Strs("servers", pi.servers).Str("kind", string(kind)).Str("data", *pi.data).Msg("scoring on the server")
	prog := newProgress(e, "server", "examples")
	sv := probe.Server{URLs: pi.servers, Kind: kind, Model: *pi.servedModel, TopK: *pi.topK, Concurrency: *pi.concurrency,
		MaxConcurrency: *pi.maxConcurrency, Timeout: *pi.timeout, Attempts: *pi.attempts,
		Greedy: *pi.noiseAware && *pi.greedy, Null: *pi.noiseAware && *pi.nullPrompts > 0, NullPrompts: *pi.nullPrompts, Seed: *pi.seed,
		Progress: func(p probe.ServerProgress) {
			done := p.Cached + p.Scored + p.Failed
			prog.update(float64(done)/float64(p.Total), int64(p.Scored))
		}}
	src, res, err := sv.Score(e.ctx, *pi.data, *pi.cache, probe.Options{})
	prog.finish()
	ev := e.log.Info()
	if err != nil {
		ev = e.log.Warn()
	}
	ev.Str("kind", string(res.Kind)).Str("model", res.Model).Str("cache", res.Cache).Int("examples", res.Total-res.Null).Int("null_prompts", res.Null).
		Int("cached", res.Cached).Int("scored", res.Scored).Int("failed", res.Failed).Int("requests", res.Requests).Int("retries", res.Retries).Msg("server run")
	for _, r := range res.Replicas {
		e.log.Info().Str("server", r.URL).Int("scored", r.Scored).Int("concurrency", r.Limit).Msg("replica")
	}
	if err != nil {
		if e.ctx.Err() != nil && errors.Is(err, e.ctx.Err()) {
			return fmt.Errorf("interrupted after scoring %d examples; run the same command again to resume from %s", res.Scored, res.Cache)
		}
		return err
	}
	for i, fe := range res.Failures {
		if i == 3 {
			break
		}
		e.log.Warn().Err(fe).Msg("gave up on an example")
	}
	acc.AddSource(*pi.data, res.Kind.Format()+" via "+strings.Join(pi.servers, ", "))
	err = consume(e, acc, src, src.Bytes)
	if err == nil {
		err = consumeNull(e, acc, src.Null(), nil)
	}
	if cerr := src.Close(); err == nil {
		err = cerr
	}
	return err
}

// ctxSource stops a source when the command is interrupted.
type ctxSource struct {
	probe.Source
	e *env
}

func (c ctxSource) Next() (probe.Sequence, error) {
	if err := c.e.ctx.Err(); err != nil {
		return probe.Sequence{}, fmt.Errorf("interrupted: %w", err)
	}
	return c.Source.Next()
}

// consume feeds src to acc with progress; bytes, when set, gives the
// fraction read.
func consume(e *env, acc *probe.Accumulator, src probe.Source, bytes func() (int64, int64)) error {
	prog := newProgress(e, "probe", "tokens")
	defer prog.finish()
	acc.SetProgress(func(p probe.Progress) {
		frac := -1.0
		if bytes != nil {
			if done, total := bytes(); total > 0 {
				frac = float64(done) / float64(total)
			}
		}
		prog.update(frac, p.Tokens)
	})
	defer acc.SetProgress(nil)
	return acc.Consume(ctxSource{src, e})
}

// consumeNull feeds a null set to acc with progress.
func consumeNull(e *env, acc *probe.Accumulator, src probe.Source, bytes func() (int64, int64)) error {
	prog := newProgress(e, "null set", "sequences")
	defer prog.finish()
	n := int64(0)
	return acc.ConsumeNull(probe.SourceFunc(func() (probe.Sequence, error) {
		seq, err := ctxSource{src, e}.Next()
		n++
		frac := -1.0
		if bytes != nil {
			if done, total := bytes(); total > 0 {
				frac = float64(done) / float64(total)
			}
		}
		prog.update(frac, n)
		return seq, err
	}))
}

func runProbe(e *env, args []string) error {
	f := newFlags(e, "probe", cmdProbe.usage, cmdProbe.long)
	pi := addProbeInputs(f)
	asJSON := f.Bool("json", false, "print the report as JSON")
	out := f.String("out", "", "write the JSON report to this `file` (atomically)")
	plotDir := f.String("plot", "", "write probe-histogram.png, probe-continuum.png and (noise-aware) probe-confidence.png to this `directory`")
	pos, err := f.parse(args)
	if err != nil {
		return err
	}
	rep, err := pi.report(e, f, pos)
	if err != nil {
		return err
	}
	if *out != "" {
		if err := atomicfile.Write(*out, func(w io.Writer) error { return rep.WriteJSON(w) }); err != nil {
			return err
		}
		e.log.Info().Str("file", *out).Msg("wrote report")
	}
	if *plotDir != "" {
		if err := plotProbe(*plotDir, rep); err != nil {
			return err
		}
		e.log.Info().Str("dir", *plotDir).Msg("wrote plots")
	}
	if *asJSON {
		return rep.WriteJSON(e.stdout)
	}
	printReport(e.stdout, rep)
	return nil
}

// plotProbe draws the histogram of p and the model among the paper's anchors.
func plotProbe(dir string, rep *probe.Report) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	if err := plots.ProbeHistogram(filepath.Join(dir, "probe-histogram.png"), plots.Histogram{
		Edges: rep.Histogram.Edges, Counts: rep.Histogram.Counts, MeanP: rep.MeanP,
		Marks: []plots.Mark{{X: 0.2, Label: "p = 0.2"}, {X: 0.55, Label: "p = 0.55"}},
	}); err != nil {
		return err
	}
	if na := rep.NoiseAware; na != nil && na.Result != nil && na.Confidence != nil {
		if err := plotConfidence(filepath.Join(dir, "probe-confidence.png"), na); err != nil {
			return err
		}
	}
	var anchors []plots.Anchor
	for _, a := range probe.Anchors {
		anchors = append(anchors, plots.Anchor{Label: a.Model + " (" + a.Domain + ")", MeanP: a.MeanP, Region: a.Region.Index()})
	}
	return plots.Continuum(filepath.Join(dir, "probe-continuum.png"), plots.Placement{
		MeanP: rep.MeanP, CI: rep.MeanPCI, NoCI: !rep.MeanPCIDefined, Region: rep.Region.Index(),
		Cuts: [2]float64{rep.Placement.Cuts.WeakBelow, rep.Placement.Cuts.StrongAt}, Anchors: anchors,
	})
}

// plotConfidence draws the share of answers per bin of the model's
// confidence in them, for the examples that reproduce their label, the
// others and the null prompts, with the cut that flags the others.
func plotConfidence(path string, na *probe.NoiseAware) error {
	h := na.Confidence
	var curves []plots.Curve
	ymax := 0.0
	for _, s := range []struct {
		name   string
		counts []int
	}{{"reproduce their label", h.Agree}, {"do not", h.Disagree}, {"null prompts", h.Null}} {
		total := 0
		for _, c := range s.counts {
			total += c
		}
		if total == 0 {
			continue
		}
		c := plots.Curve{Name: fmt.Sprintf("%s (%d)", s.name, total)}
		for i, n := range s.counts {
			share := float64(n) / float64(total)
			c.X, c.Y = append(c.X, (h.Edges[i]+h.Edges[i+1])/2), append(c.Y, share)
			ymax = math.Max(ymax, share)
		}
		curves = append(curves, c)
	}
	if cut := na.Result.Cut; cut != nil {
		curves = append(curves, plots.Curve{Name: fmt.Sprintf("cut %.3f", *cut), X: []float64{*cut, *cut}, Y: []float64{0, ymax}})
	}
	return plots.Lines(path, fmt.Sprintf("confidence in the own answer (method %s)", na.Result.Method), "confidence (least p of the answer's tokens)", "share of answers", curves)
}

// printReport writes the report for people.
func printReport(w io.Writer, rep *probe.Report) {
	var b bytes.Buffer
	files := map[string]bool{}
	var formats []string
	for _, s := range rep.Sources {
		files[s.File] = true
		if s.Format != "" && !contains(formats, s.Format) {
			formats = append(formats, s.Format)
		}
	}
	fmt.Fprintf(&b, "probe: %s sequences, %s scored tokens from %d input(s) (%s)\n\n",
		group(rep.Sequences), group(rep.Tokens), len(files), strings.Join(formats, ", "))
	pl := rep.Placement
	if rep.MeanPCIDefined {
		fmt.Fprintf(&b, "  mean p (Eq. 5)        %.4f   95%% CI %.4f – %.4f (bootstrap over sequences, %d resamples)\n",
			rep.MeanP, rep.MeanPCI[0], rep.MeanPCI[1], rep.Bootstrap)
	} else {
		fmt.Fprintf(&b, "  mean p (Eq. 5)        %.4f   95%% CI undefined: %d sequence(s), a CI needs at least %d\n",
			rep.MeanP, rep.Sequences, rep.CIMinSequences)
	}
	if rep.MeanLogP != nil {
		fmt.Fprintf(&b, "  mean log p            %.4f", *rep.MeanLogP)
		if rep.ZeroPTokens > 0 {
			fmt.Fprintf(&b, "   (over tokens with p > 0; %s have p = 0)", group(rep.ZeroPTokens))
		}
		fmt.Fprintln(&b)
	}
	met := "not met"
	if pl.TheoryStrongCondition {
		met = "met"
	}
	fmt.Fprintf(&b, "  p > 0.55              %5.1f %%  the theory's model-strong condition (≥ %.0f %%): %s\n", 100*rep.ShareGT055, 100*pl.StrongShare, met)
	fmt.Fprintf(&b, "  p ≥ 0.2               %5.1f %%\n", 100*rep.ShareGE02)
	fmt.Fprintf(&b, "  quantiles of p        %s\n", fmtQuantiles(rep.Quantiles))
	fmt.Fprintf(&b, "  per-sequence mean p   %s\n", fmtQuantiles(rep.SeqMeanPQuantiles))
	if rep.Top1Agreement != nil {
		fmt.Fprintf(&b, "  top-1 agreement       %5.1f %%   mean ‖q‖² %.3f over the listed tokens (%s tokens with top-k)\n",
			100**rep.Top1Agreement, *rep.MeanQSqNorm, group(rep.TopKTokens))
	}
	fmt.Fprintf(&b, "\n  placement             %s   (model-weak < %.3g ≤ model-intermediate < %.3g ≤ model-strong)\n",
		rep.Region, pl.Cuts.WeakBelow, pl.Cuts.StrongAt)
	if pl.Borderline {
		fmt.Fprintf(&b, "                        borderline: the CI of mean p crosses a cut\n")
	}
	a := pl.NearestAnchor
	fmt.Fprintf(&b, "  nearest paper anchor  %s on %s, mean p %.2f (%s; Table 5)\n", a.Model, a.Domain, a.MeanP, a.Region)
	fmt.Fprintf(&b, "  reservoir             %d token records for theory (seed %d)\n", len(rep.Reservoir.Records), rep.Reservoir.Seed)
	if rep.Skipped != nil {
		fmt.Fprintf(&b, "  skipped               %s bad lines (--skip-bad); first: %s\n", group(rep.Skipped.Lines), rep.Skipped.First[0])
	}
	if rep.NoiseAware != nil {
		printNoiseAware(&b, rep.NoiseAware)
	}
	fmt.Fprintf(&b, "\n  histogram of p (share of tokens)\n")
	var total uint64
	for _, c := range rep.Histogram.Counts {
		total += c
	}
	const width = 40
	for i := 0; i+1 < len(rep.Histogram.Counts); i += 2 {
		c := rep.Histogram.Counts[i] + rep.Histogram.Counts[i+1]
		share := float64(c) / float64(max(total, 1))
		bar := strings.Repeat("█", int(math.Round(share*width)))
		fmt.Fprintf(&b, "    %.1f–%.1f  %5.1f %%  %s\n", rep.Histogram.Edges[i], rep.Histogram.Edges[i+2], 100*share, bar)
	}
	w.Write(b.Bytes())
}

// printNoiseAware writes the noise-aware section: what the analysis makes
// of the labels, beside the mean p above, which stays the paper's Eq. 5 on
// the data as given.
func printNoiseAware(b *bytes.Buffer, na *probe.NoiseAware) {
	fmt.Fprintf(b, "\n  noise-aware           model that does not know, or labels that are wrong?\n")
	if na.Result == nil {
		fmt.Fprintf(b, "                        %s\n", wrap(na.Unavailable, 54, strings.Repeat(" ", 24)))
		return
	}
	r := na.Result
	how := "the model's own greedy answers"
	if r.Method == labelnoise.TeacherForced {
		how = "approximated from the label path's first choices"
	}
	fmt.Fprintf(b, "  method                %s (%s)\n", r.Method, how)
	fmt.Fprintf(b, "  examples              %s analysed, %s reproduce their label\n", group(int64(r.Examples)), group(int64(r.Agree)))
	est := func(name string, e *labelnoise.Estimate, what string) {
		if e == nil {
			fmt.Fprintf(b, "  %-21s undefined\n", name)
			return
		}
		fmt.Fprintf(b, "  %-21s %.4f   95%% CI %.4f – %.4f  %s\n", name, e.Value, e.CI[0], e.CI[1], what)
	}
	est("capability Ĉ", &r.Capability, "mean p with the wrong labels the model sees replaced")
	fmt.Fprintf(b, "  raw mean p            %.4f   over the analysed examples (Eq. 5, labels as given)\n", r.RawMeanP)
	est("noise rate Ê", r.Noise, "wrong labels among the examples it knows")
	est("known share", r.Known, "examples the model knows")
	est("token noise", r.TokenNoise, "contradicted confident tokens of partly known examples")
	if r.Cut != nil {
		fmt.Fprintf(b, "  cut                   confidence ≥ %.4f flags a disagreeing example (%.0fth percentile of the reproduced labels')\n", *r.Cut, 100*labelnoise.DefaultCutQuantile)
	}
	switch {
	case r.Null == nil:
		fmt.Fprintf(b, "  null set              none\n")
	case r.Null.Used:
		fmt.Fprintf(b, "  null set              %s prompts, %.1f %% reach the cut (false positives subtracted)\n", group(int64(r.Null.Prompts)), 100*r.Null.FalsePositive)
	default:
		fmt.Fprintf(b, "  null set              %s prompts, %.1f %% reach the cut: not used (answerable)\n", group(int64(r.Null.Prompts)), 100*r.Null.FalsePositive)
	}
	fmt.Fprintf(b, "  flagged               %s examples (selector clean writes them apart)\n", group(int64(len(r.Flags))))
	for _, n := range r.Notes {
		fmt.Fprintf(b, "  note                  %s\n", wrap(n, 54, strings.Repeat(" ", 24)))
	}
}

func fmtQuantiles(q probe.Quantiles) string {
	v := q.Values()
	var parts []string
	for i, l := range probe.QuantileLevels {
		parts = append(parts, fmt.Sprintf("p%02.0f %.3g", 100*l, v[i]))
	}
	return strings.Join(parts, "  ")
}

// group writes 1234567 as 1,234,567.
func group(n int64) string {
	s := fmt.Sprint(n)
	if n < 0 {
		return s
	}
	var out []byte
	for i := range len(s) {
		if i > 0 && (len(s)-i)%3 == 0 {
			out = append(out, ',')
		}
		out = append(out, s[i])
	}
	return string(out)
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
