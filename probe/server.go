package probe

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/capsel/capsel/sftdata"
)

// Server scores SFT examples on live inference servers (vLLM, SGLang or
// TGI), placing the prompt/response boundary by token index: each
// example's prompt is tokenized with the server's special tokens (a chat's
// context through its chat template) and its response without, the token
// ids go back concatenated, and the positions from the prompt's length on
// are scored. This is how SFT trainers build their label masks. (TGI takes
// no token ids: it gets the text, and the boundary is where /tokenize
// places the prompt's last byte.)
//
// Requests are spread over the replicas with an adaptive number in flight
// per replica (see limiter). Each reply is appended to a cache file in the
// format of the server's replies with "response_start", so an interrupted
// run resumes without rescoring, and the cache is itself a --logprobs input.
type Server struct {
	// URLs are the base URLs of the replicas, e.g. http://localhost:8000.
	URLs []string
	// Kind is the kind of server; "" or KindAuto detects it.
	Kind ServerKind
	// Model is the served model's name; "" takes the one model the server
	// lists.
	Model string
	// TopK is the number of top log-probs per token to request (0: the
	// target's alone); TGI gives none for prompt tokens.
	TopK int
	// Concurrency, when positive, fixes the requests in flight per replica;
	// 0 adapts it between 1 and MaxConcurrency (default 512), starting at
	// StartConcurrency (default 32).
	Concurrency, MaxConcurrency, StartConcurrency int
	// Timeout bounds each request (default 60 s); the preflight's requests
	// get PreflightTimeout (default 5 s).
	Timeout, PreflightTimeout time.Duration
	// Attempts is how often one example is tried (default 8).
	Attempts int
	// Backoff is the first wait after a failed attempt (default 0.5 s); it
	// doubles with each failure up to MaxBackoff (default 30 s), with
	// jitter: the wait is uniform between half of it and all of it. A
	// Retry-After header, capped at MaxBackoff·4, overrides a shorter wait.
	Backoff, MaxBackoff time.Duration
	// Grace is how long requests in flight may still finish, and be cached,
	// once the run is cancelled (default 1 s); then they are abandoned.
	Grace time.Duration
	// HTTP is the client to use (default one with a connection pool sized
	// for MaxConcurrency).
	HTTP *http.Client
	// Progress, when set, is called after each example is scored or fails,
	// from one goroutine.
	Progress func(ServerProgress)

	sleep func(ctx context.Context, d time.Duration) error // tests replace it
}

// ServerProgress counts a run's examples.
type ServerProgress struct {
	Total    int // examples in the data
	Cached   int // found in the cache before the run
	Scored   int // scored in this run
	Failed   int // given up on
	Tokens   int // response tokens scored in this run
	Retries  int // failed attempts that were retried
	Requests int // requests sent (tokenize and score)
	InFlight int // examples being scored now
	Limit    int // the replicas' concurrency limits, summed
}

// ServerResult is the outcome of Score.
type ServerResult struct {
	ServerProgress
	Kind  ServerKind // the servers' kind
	Model string     // the served model
	Cache string     // the cache file
	// Replicas holds what each server did.
	Replicas []ReplicaResult
	// Failures holds the examples given up on, as line errors of the data
	// file (the last attempt's error).
	Failures []error
}

// ReplicaResult is one server's share of a run.
type ReplicaResult struct {
	URL    string
	Scored int
	Limit  int // its concurrency limit at the end
}

// Defaults of Server.
const (
	DefaultMaxConcurrency   = 512
	DefaultStartConcurrency = 32
)

func (sv *Server) defaults() Server {
	c := *sv
	if c.Kind == "" {
		c.Kind = KindAuto
	}
	if c.MaxConcurrency <= 0 {
		c.MaxConcurrency = DefaultMaxConcurrency
	}
	if c.StartConcurrency <= 0 {
		c.StartConcurrency = DefaultStartConcurrency
	}
	if c.Timeout <= 0 {
		c.Timeout = 60 * time.Second
	}
	if c.PreflightTimeout <= 0 {
		c.PreflightTimeout = 5 * time.Second
	}
	if c.Attempts <= 0 {
		c.Attempts = 8
	}
	if c.Backoff <= 0 {
		c.Backoff = 500 * time.Millisecond
	}
	if c.MaxBackoff <= 0 {
		c.MaxBackoff = 30 * time.Second
	}
	if c.Grace <= 0 {
		c.Grace = time.Second
	}
	if c.HTTP == nil {
		tr := http.DefaultTransport.(*http.Transport).Clone()
		tr.DialContext = (&net.Dialer{Timeout: c.PreflightTimeout, KeepAlive: 30 * time.Second}).DialContext
		per := c.MaxConcurrency
		if c.Concurrency > 0 {
			per = c.Concurrency
		}
		tr.MaxIdleConns = per * max(len(c.URLs), 1)
		tr.MaxIdleConnsPerHost = per
		c.HTTP = &http.Client{Transport: tr}
	}
	if c.sleep == nil {
		c.sleep = sleepCtx
	}
	for i, u := range c.URLs {
		c.URLs[i] = strings.TrimRight(u, "/")
	}
	return c
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// DefaultCache is the cache of a run on data with a model on a kind of
// server, when --cache does not name one: next to the data.
func DefaultCache(data, model string, kind ServerKind) string {
	safe := strings.Map(func(r rune) rune {
		if r == '/' || r == '\\' || r == ':' || r == ' ' {
			return '_'
		}
		return r
	}, model)
	return data + "." + safe + "." + string(kind) + ".jsonl"
}

// cacheKey identifies one example's scoring: the kind of server, the model,
// k, the data line and the example. The data line is part of it so that a
// duplicated example counts twice, as it does in training.
func (sv *Server) cacheKey(ex sftdata.Example) string {
	h := sha256.New()
	fmt.Fprintf(h, "%s\x00%s\x00%d\x00%d\x00%d\x00", sv.Kind, sv.Model, sv.TopK, ex.Line, ex.Kind)
	if ex.Kind == sftdata.Chat {
		json.NewEncoder(h).Encode(ex.Context)
	}
	fmt.Fprintf(h, "%d\x00%s%s", len(ex.Prompt), ex.Prompt, ex.Response)
	return "capsel-" + hex.EncodeToString(h.Sum(nil)[:16])
}

// Score scores every example of the data file that the cache does not
// hold yet, appending each reply to the cache, and returns a Source over
// the cached replies of exactly the data's examples, each once, named by
// their data file and line; close it (it holds the cache's lock).
// cachePath "" means DefaultCache. Cancelling ctx stops the run within
// Grace; what was scored stays in the cache for the next one.
//
// Before the first example a preflight asks every server what it is and
// what it serves, and fails at once on a server that does not answer, is
// not vLLM, SGLang or TGI, or does not serve the model. An example is
// retried on a network error, a timeout, HTTP 429 or 5xx, and a reply that
// does not hold what was asked; an example the server refuses (HTTP 400,
// say, for one that is too long) is given up at once, and a run whose
// first examples are all refused stops.
func (sv *Server) Score(ctx context.Context, dataPath, cachePath string, opt Options) (Source, ServerResult, error) {
	c := sv.defaults()
	var res ServerResult
	if len(c.URLs) == 0 {
		return nil, res, errors.New("probe: no server URL")
	}
	if _, err := ParseServerKind(string(c.Kind)); err != nil {
		return nil, res, err
	}
	keysFor := func() (map[string]int, error) { return c.dataKeys(dataPath) }
	var reps []*replica
	preflighted := false
	preflight := func() error {
		var err error
		if reps, err = c.preflight(ctx); err != nil {
			return err
		}
		c.Kind, c.Model = reps[0].kind, reps[0].model
		preflighted = true
		return nil
	}
	if cachePath == "" && (c.Kind == KindAuto || c.Model == "") {
		if err := preflight(); err != nil {
			return nil, res, err
		}
	}
	if cachePath == "" {
		cachePath = DefaultCache(dataPath, c.Model, c.Kind)
	}
	res.Cache = cachePath
	ch, err := openCache(cachePath)
	if err != nil {
		return nil, res, err
	}
	fail := func(err error) (Source, ServerResult, error) {
		if cerr := ch.close(); cerr != nil {
			err = errors.Join(err, cerr)
		}
		return nil, res, err
	}
	keys, err := keysFor()
	if err != nil {
		return fail(err)
	}
	res.Total = len(keys)
	for k := range keys {
		if ch.done[k] {
			res.Cached++
		}
	}
	if res.Cached < res.Total {
		if !preflighted {
			if err := preflight(); err != nil {
				return fail(err)
			}
			// The model or kind the servers report may differ from the
			// flags only where the flags were empty; keys made before the
			// preflight used the flags.
			if keys, err = keysFor(); err != nil {
				return fail(err)
			}
			res.Cached = 0
			for k := range keys {
				if ch.done[k] {
					res.Cached++
				}
			}
		}
		if ch.format != "" && ch.format != c.Kind.Format() {
			return fail(fmt.Errorf("%s holds %s replies and the server is %s: give this run its own --cache", cachePath, ch.format, c.Kind))
		}
		if err := c.fill(ctx, reps, dataPath, ch, &res); err != nil {
			res.Kind, res.Model = c.Kind, c.Model
			return fail(err)
		}
	}
	res.Kind, res.Model = c.Kind, c.Model
	format := ch.format
	if format == "" {
		format = c.Kind.Format()
	}
	opt.Format, opt.ScoreAll = format, false
	fs, err := OpenFiles([]string{cachePath}, opt, nil)
	if err != nil {
		return fail(err)
	}
	failed := map[int]string{}
	for _, f := range res.Failures {
		var le *LineError
		if errors.As(f, &le) {
			failed[le.Line] = le.Err.Error()
		}
	}
	return &cacheSource{c: ch, files: fs, want: keys, seen: make(map[string]bool, len(keys)), failed: failed, data: dataPath}, res, nil
}

// dataKeys reads the data file and returns the cache key of every example
// with its line.
func (sv *Server) dataKeys(path string) (map[string]int, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	rd := sftdata.NewReader(f, path)
	keys := map[string]int{}
	for {
		ex, err := rd.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, err
		}
		keys[sv.cacheKey(ex)] = ex.Line
	}
	if len(keys) == 0 {
		return nil, fmt.Errorf("%s: no examples", path)
	}
	return keys, nil
}

// job is one example to score.
type job struct {
	ex      sftdata.Example
	key     string
	attempt int
	last    error // the last attempt's error
}

// result is what scoring one example came to.
type result struct {
	j      *job
	line   []byte // the cache line, when scored
	tokens int
	rep    *replica
	err    error // the example's failure, when given up on
	fatal  error // an error that ends the run
}

// fill scores the examples missing from the cache.
func (sv *Server) fill(ctx context.Context, reps []*replica, dataPath string, ch *cache, res *ServerResult) error {
	f, err := os.Open(dataPath)
	if err != nil {
		return err
	}
	defer f.Close()

	// Requests get their own context: when the run is cancelled, those in
	// flight may still finish within Grace, and their replies are cached.
	reqCtx, cancelReqs := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelReqs()
	runCtx, stopRun := context.WithCancelCause(ctx)
	defer stopRun(nil)
	go func() {
		select {
		case <-runCtx.Done():
		case <-reqCtx.Done():
			return
		}
		t := time.NewTimer(sv.Grace)
		defer t.Stop()
		select {
		case <-t.C:
			cancelReqs()
		case <-reqCtx.Done():
		}
	}()

	jobs := make(chan *job)
	retries := make(chan *job, 64)
	results := make(chan result)
	var pending sync.WaitGroup // examples not yet scored or given up on
	var counters sync.Mutex
	count := func(retry bool) {
		counters.Lock()
		res.Requests++
		if retry {
			res.Retries++
		}
		counters.Unlock()
	}

	// Feed the examples not in the cache.
	var feedErr error
	feedDone := make(chan struct{})
	go func() {
		defer close(feedDone)
		rd := sftdata.NewReader(f, dataPath)
		for {
			ex, err := rd.Next()
			if errors.Is(err, io.EOF) {
				return
			}
			if err != nil {
				feedErr = err
				stopRun(err)
				return
			}
			key := sv.cacheKey(ex)
			if ch.done[key] {
				continue
			}
			pending.Add(1)
			select {
			case jobs <- &job{ex: ex, key: key}:
			case <-runCtx.Done():
				pending.Done()
				return
			}
		}
	}()
	// No more work once the feeder is done and nothing is pending.
	allDone := make(chan struct{})
	go func() {
		<-feedDone
		pending.Wait()
		close(allDone)
	}()

	var workers sync.WaitGroup
	for _, rp := range reps {
		n := sv.MaxConcurrency
		if sv.Concurrency > 0 {
			n = sv.Concurrency
		}
		for range n {
			workers.Add(1)
			go func() {
				defer workers.Done()
				sv.work(runCtx, reqCtx, rp, jobs, retries, results, allDone, &pending, count)
			}()
		}
	}
	go func() {
		workers.Wait()
		close(results)
	}()

	lastSync := time.Now()
	var werr error
	refused, scored := 0, 0
	for r := range results {
		if werr != nil {
			continue
		}
		counters.Lock()
		switch {
		case r.fatal != nil:
			werr = r.fatal
			stopRun(werr)
		case r.err != nil:
			res.Failed++
			res.Failures = append(res.Failures, lineErr(r.j.ex.Source, r.j.ex.Line, "%v", r.err))
			if refusedErr(r.err) {
				refused++
				if scored == 0 && refused >= 5 {
					werr = fmt.Errorf("the server refused the first %d examples; the last: %s:%d: %w", refused, r.j.ex.Source, r.j.ex.Line, r.err)
					stopRun(werr)
				}
			}
		default:
			if err := ch.append(r.line); err != nil {
				werr = err
				stopRun(err)
				break
			}
			scored++
			res.Scored++
			res.Tokens += r.tokens
			r.rep.scored.Add(1)
			if time.Since(lastSync) > 2*time.Second {
				if err := ch.sync(); err != nil {
					werr = err
					stopRun(err)
				}
				lastSync = time.Now()
			}
		}
		p := res.ServerProgress
		counters.Unlock()
		for _, rp := range reps {
			l, in := rp.lim.current()
			p.Limit += l
			p.InFlight += in
		}
		if sv.Progress != nil {
			sv.Progress(p)
		}
	}
	for _, rp := range reps {
		l, _ := rp.lim.current()
		res.Replicas = append(res.Replicas, ReplicaResult{URL: rp.url, Scored: int(rp.scored.Load()), Limit: l})
	}
	if err := ch.sync(); err != nil && werr == nil {
		werr = err
	}
	<-feedDone // the feeder stops with the run, or has ended
	// Retries queued when the run stopped will not be taken.
	for {
		select {
		case <-retries:
			pending.Done()
			continue
		default:
		}
		break
	}
	switch {
	case werr != nil:
		return werr
	case feedErr != nil:
		return feedErr
	case ctx.Err() != nil:
		return ctx.Err()
	}
	return nil
}

// work scores jobs on one replica until there are none left or the run
// stops.
func (sv *Server) work(runCtx, reqCtx context.Context, rp *replica, jobs <-chan *job, retries chan *job, results chan<- result,
	allDone <-chan struct{}, pending *sync.WaitGroup, count func(retry bool)) {
	for {
		tk, err := rp.lim.acquire(runCtx)
		if err != nil {
			return
		}
		var j *job
		select {
		case j = <-retries:
		default:
			select {
			case j = <-retries:
			case j = <-jobs:
			case <-allDone:
			case <-runCtx.Done():
			}
		}
		if j == nil {
			rp.lim.release(tk, cancelled, 0)
			return
		}
		tk.start = time.Now() // the wait for a job is not the server's
		line, tokens, err := sv.scoreOn(reqCtx, rp, j, count)
		how, wait := classify(err)
		if reqCtx.Err() != nil && err != nil {
			how = cancelled
		}
		rp.lim.release(tk, how, wait)
		switch {
		case err == nil:
			results <- result{j: j, line: line, tokens: tokens, rep: rp}
			pending.Done()
		case reqCtx.Err() != nil || runCtx.Err() != nil && how == cancelled:
			pending.Done() // abandoned: the next run scores it
		case isFatal(err):
			results <- result{j: j, fatal: err}
			pending.Done()
		case !retryable(err) || j.attempt+1 >= sv.Attempts:
			if retryable(err) {
				err = fmt.Errorf("gave up after %d attempts: %w", sv.Attempts, err)
			}
			results <- result{j: j, err: err}
			pending.Done()
		default:
			j.attempt++
			j.last = err
			d := sv.backoff(j.attempt-1, wait)
			go func() {
				if sv.sleep(runCtx, d) != nil {
					pending.Done()
					return
				}
				select {
				case retries <- j:
				case <-runCtx.Done():
					pending.Done()
				}
			}()
		}
	}
}
