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
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/capsel/capsel/labelnoise"
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
	// Greedy also asks for the model's own greedy answer to every prompt
	// (a second request per example; see ServerRequests) and keeps it in
	// the cache line as "own_answer" (OwnAnswerFormat), for the
	// noise-aware analysis's method greedy.
	Greedy bool
	// Null also scores a null set (labelnoise.NullRecipe): the prompts of up to
	// NullPrompts examples (0: labelnoise.DefaultNullPrompts; labelnoise.PickNull chooses them)
	// with their letters and digits shuffled by a shuffle seeded with Seed,
	// each like a real example, into the cache NullCache(cache).
	Null        bool
	NullPrompts int
	Seed        uint64
	// Progress, when set, is called after each example is scored or fails,
	// from one goroutine.
	Progress func(ServerProgress)

	sleep func(ctx context.Context, d time.Duration) error // tests replace it
}

// ServerProgress counts a run's examples: the data's and, with
// Server.Null, the null prompts.
type ServerProgress struct {
	Total    int // examples in the data, and null prompts
	Null     int // null prompts among them
	Cached   int // found in the caches before the run
	Scored   int // scored in this run
	Failed   int // given up on
	Tokens   int // response tokens scored in this run
	Retries  int // failed attempts that were retried
	Requests int // requests sent (tokenize, score and generate)
	InFlight int // examples being scored now
	Limit    int // the replicas' concurrency limits, summed
}

// ServerResult is the outcome of Score.
type ServerResult struct {
	ServerProgress
	Kind  ServerKind // the servers' kind
	Model string     // the served model
	Cache string     // the cache file
	// NullCache is the null set's cache file (with Server.Null).
	NullCache string
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

// NullCache is the cache of the null set of a run whose cache is cache.
func NullCache(cache string) string {
	return strings.TrimSuffix(cache, ".jsonl") + ".null.jsonl"
}

// greedySuffix ends the cache IDs of lines that carry an own answer.
const greedySuffix = "-g"

// cacheIDs are the IDs of cache lines that hold what this run needs of an
// example with cache key key: a line with an own answer when the run asks
// for one, else either kind.
func (sv *Server) cacheIDs(key string) []string {
	if sv.Greedy {
		return []string{key + greedySuffix}
	}
	return []string{key, key + greedySuffix}
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

// ServerSource is what Score returns: the cached replies of the data's
// examples, each once, named by their data file and line, then (Null) the
// null set's. Close it (it holds the caches' locks).
type ServerSource interface {
	Source
	// Bytes reports progress through the cache.
	Bytes() (done, total int64)
	// Null returns the null set's sequences (none without Server.Null),
	// each named by the data line of the example it was made from. Read it
	// after the source's own sequences.
	Null() Source
	Close() error
}

// plan is what a run must hold in its caches: the cache IDs of the data's
// examples and of the null prompts, with their data lines.
type plan struct {
	want, nullWant map[string]int
	examples       int
	nulls          int
	null           map[int]bool // data lines whose example has a null prompt
}

// done counts the examples (and null prompts) the caches hold.
func (p *plan) done(ch, nullCh *cache) (n int) {
	count := func(want map[string]int, c *cache) {
		seen := map[int]bool{}
		for id, line := range want {
			if c != nil && c.done[id] && !seen[line] {
				seen[line] = true
				n++
			}
		}
	}
	count(p.want, ch)
	count(p.nullWant, nullCh)
	return n
}

// Score scores every example of the data file that the cache does not
// hold yet, appending each reply to the cache, and returns a Source over
// the cached replies of exactly the data's examples, each once, named by
// their data file and line; close it (it holds the cache's lock).
// cachePath "" means DefaultCache. With Greedy each reply carries the
// model's own greedy answer; with Null the null prompts are scored too,
// into NullCache(cachePath). Cancelling ctx stops the run within Grace;
// what was scored stays in the cache for the next one.
//
// Before the first example a preflight asks every server what it is and
// what it serves, and fails at once on a server that does not answer, is
// not vLLM, SGLang or TGI, or does not serve the model. An example is
// retried on a network error, a timeout, HTTP 429 or 5xx, and a reply that
// does not hold what was asked; an example the server refuses (HTTP 400,
// say, for one that is too long) is given up at once, and a run whose
// first examples are all refused stops.
func (sv *Server) Score(ctx context.Context, dataPath, cachePath string, opt Options) (ServerSource, ServerResult, error) {
	c := sv.defaults()
	var res ServerResult
	if len(c.URLs) == 0 {
		return nil, res, errors.New("probe: no server URL")
	}
	if _, err := ParseServerKind(string(c.Kind)); err != nil {
		return nil, res, err
	}
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
	var nullCh *cache
	fail := func(err error) (ServerSource, ServerResult, error) {
		if cerr := ch.close(); cerr != nil {
			err = errors.Join(err, cerr)
		}
		if nullCh != nil {
			if cerr := nullCh.close(); cerr != nil {
				err = errors.Join(err, cerr)
			}
		}
		return nil, res, err
	}
	if c.Null {
		res.NullCache = NullCache(cachePath)
		if nullCh, err = openCache(res.NullCache); err != nil {
			return fail(err)
		}
	}
	pl, err := c.plan(dataPath)
	if err != nil {
		return fail(err)
	}
	res.Total, res.Null = pl.examples+pl.nulls, pl.nulls
	res.Cached = pl.done(ch, nullCh)
	if res.Cached < res.Total {
		if !preflighted {
			if err := preflight(); err != nil {
				return fail(err)
			}
			// The model or kind the servers report may differ from the
			// flags only where the flags were empty; keys made before the
			// preflight used the flags.
			if pl, err = c.plan(dataPath); err != nil {
				return fail(err)
			}
			res.Cached = pl.done(ch, nullCh)
		}
		for _, x := range []*cache{ch, nullCh} {
			if x != nil && x.format != "" && x.format != c.Kind.Format() {
				return fail(fmt.Errorf("%s holds %s replies and the server is %s: give this run its own --cache", x.path, x.format, c.Kind))
			}
		}
		if err := c.fill(ctx, reps, dataPath, pl, ch, nullCh, &res); err != nil {
			res.Kind, res.Model = c.Kind, c.Model
			return fail(err)
		}
	}
	res.Kind, res.Model = c.Kind, c.Model
	open := func(x *cache, want map[string]int, null bool) (*cacheSource, error) {
		format := x.format
		if format == "" {
			format = c.Kind.Format()
		}
		o := opt
		o.Format, o.ScoreAll = format, false
		fs, err := OpenFiles([]string{x.path}, o, nil)
		if err != nil {
			return nil, err
		}
		failed := map[int]string{}
		for _, f := range res.Failures {
			var le *LineError
			if errors.As(f, &le) && strings.HasPrefix(le.Err.Error(), nullFailure) == null {
				failed[le.Line] = strings.TrimPrefix(le.Err.Error(), nullFailure)
			}
		}
		return &cacheSource{c: x, files: fs, want: want, seen: make(map[int]bool, len(want)), failed: failed, data: dataPath, null: null}, nil
	}
	src, err := open(ch, pl.want, false)
	if err != nil {
		return fail(err)
	}
	if nullCh != nil {
		if src.nullSrc, err = open(nullCh, pl.nullWant, true); err != nil {
			src.files.Close()
			return fail(err)
		}
	}
	return src, res, nil
}

// nullFailure starts the message of a null prompt's failure.
const nullFailure = "null prompt: "

// plan reads the data file and works out the cache IDs of its examples and
// null prompts.
func (sv *Server) plan(path string) (*plan, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	rd := sftdata.NewReader(f, path)
	p := &plan{want: map[string]int{}, nullWant: map[string]int{}, null: map[int]bool{}}
	var exs []sftdata.Example
	for {
		ex, err := rd.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, err
		}
		for _, id := range sv.cacheIDs(sv.cacheKey(ex)) {
			p.want[id] = ex.Line
		}
		exs = append(exs, ex)
	}
	if len(exs) == 0 {
		return nil, fmt.Errorf("%s: no examples", path)
	}
	p.examples = len(exs)
	if sv.Null {
		max := sv.NullPrompts
		if max == 0 {
			max = labelnoise.DefaultNullPrompts
		}
		pick := labelnoise.PickNull(len(exs), max, func(i int) string { return strconv.Itoa(exs[i].Line) })
		for i, ex := range exs {
			if !pick[i] {
				continue
			}
			if nex, ok := labelnoise.NullExample(ex, sv.Seed); ok {
				p.null[ex.Line] = true
				p.nulls++
				for _, id := range sv.cacheIDs(sv.cacheKey(nex)) {
					p.nullWant[id] = ex.Line
				}
			}
		}
	}
	return p, nil
}

// job is one example (or null prompt) to score.
type job struct {
	ex      sftdata.Example
	id      string // the cache line's ID
	null    bool   // ex is a null prompt, for the null cache
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

// fill scores the examples (and null prompts) missing from the caches.
func (sv *Server) fill(ctx context.Context, reps []*replica, dataPath string, pl *plan, ch, nullCh *cache, res *ServerResult) error {
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

	// Feed the examples and null prompts not in the caches.
	var feedErr error
	feedDone := make(chan struct{})
	go func() {
		defer close(feedDone)
		rd := sftdata.NewReader(f, dataPath)
		feed := func(ex sftdata.Example, c *cache, null bool) bool {
			ids := sv.cacheIDs(sv.cacheKey(ex))
			for _, id := range ids {
				if c.done[id] {
					return true
				}
			}
			pending.Add(1)
			select {
			case jobs <- &job{ex: ex, id: ids[0], null: null}:
				return true
			case <-runCtx.Done():
				pending.Done()
				return false
			}
		}
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
			if !feed(ex, ch, false) {
				return
			}
			if pl.null[ex.Line] {
				nex, _ := labelnoise.NullExample(ex, sv.Seed)
				if !feed(nex, nullCh, true) {
					return
				}
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
			if r.j.null {
				res.Failures = append(res.Failures, lineErr(r.j.ex.Source, r.j.ex.Line, "%s%v", nullFailure, r.err))
			} else {
				res.Failures = append(res.Failures, lineErr(r.j.ex.Source, r.j.ex.Line, "%v", r.err))
			}
			if refusedErr(r.err) {
				refused++
				if scored == 0 && refused >= 5 {
					werr = fmt.Errorf("the server refused the first %d examples; the last: %s:%d: %w", refused, r.j.ex.Source, r.j.ex.Line, r.err)
					stopRun(werr)
				}
			}
		default:
			c := ch
			if r.j.null {
				c = nullCh
			}
			if err := c.append(r.line); err != nil {
				werr = err
				stopRun(err)
				break
			}
			scored++
			res.Scored++
			res.Tokens += r.tokens
			r.rep.scored.Add(1)
			if time.Since(lastSync) > 2*time.Second {
				if err := syncAll(ch, nullCh); err != nil {
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
	if err := syncAll(ch, nullCh); err != nil && werr == nil {
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

func syncAll(cs ...*cache) error {
	for _, c := range cs {
		if c != nil {
			if err := c.sync(); err != nil {
				return err
			}
		}
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
