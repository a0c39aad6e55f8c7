// Command saturate measures how much of a server's capacity the probe's live
// client uses with its default flags, for one server and for several
// replicas, side by side with the client of the previous release (four
// requests in flight).
//
// Each server is a stand-in (probe/probetest) that tokenizes like vLLM and
// serves at most -capacity scoring or generation requests at once, each
// taking -latency; the rest queue. Its capacity is capacity/latency such
// requests per second, so a run's rate of them divided by that is the share
// of the capacity used. With the command line's defaults (-greedy, -null)
// each example costs a scoring and a greedy request, and so does each of
// its null prompts (up to labelnoise.DefaultNullPrompts).
//
//	go run ./bench/probe/saturate                      # 1 and 3 servers, 3 runs each
//	go run ./bench/probe/saturate -servers 1 -runs 5
//
// It prints one line per run and the medians, and with -json the runs as
// JSON.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"log"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/capsel/capsel/labelnoise"
	"github.com/capsel/capsel/probe"
	"github.com/capsel/capsel/probe/probetest"
)

type result struct {
	Client     string  `json:"client"`
	Servers    int     `json:"servers"`
	Examples   int     `json:"examples"`
	Jobs       int     `json:"jobs"`     // examples and null prompts
	Requests   int64   `json:"requests"` // scoring and generation requests the stand-ins served
	Seconds    float64 `json:"seconds"`
	PerSecond  float64 `json:"requests_per_second"`
	Capacity   float64 `json:"capacity_per_second"`
	Share      float64 `json:"share_of_capacity"`
	PeakInFlow []int64 `json:"peak_in_flight"`
	Limits     []int   `json:"final_limits"`
}

func main() {
	serversFlag := flag.String("servers", "1,3", "numbers of servers to run, comma-separated")
	capacity := flag.Int("capacity", 32, "scoring requests each server runs at once")
	latency := flag.Duration("latency", 200*time.Millisecond, "time each scoring request takes")
	seconds := flag.Float64("seconds", 30, "length of a run at full capacity (sets the number of examples)")
	anchorSeconds := flag.Float64("anchor-seconds", 10, "length of a run of the previous client")
	runs := flag.Int("runs", 3, "runs of each client per number of servers")
	asJSON := flag.Bool("json", false, "print the runs as JSON")
	trace := flag.Bool("trace", false, "print each second the examples scored and the summed concurrency limit")
	greedy := flag.Bool("greedy", true, "ask for the greedy answers, as selector probe does by default")
	null := flag.Bool("null", true, "score the null prompts, as selector probe does by default")
	flag.Parse()
	log.SetFlags(0)

	dir, err := os.MkdirTemp("", "capsel-saturate")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)

	var all []result
	for _, f := range strings.Split(*serversFlag, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 {
			log.Fatalf("-servers: %q", f)
		}
		full := float64(n*(*capacity)) / latency.Seconds()
		// Requests per example: the scoring, the greedy answer, and the
		// same for its null prompt while there are fewer than the cap.
		per := 1.0
		if *greedy {
			per = 2
		}
		examplesFor := func(requests float64) int {
			if !*null {
				return int(requests / per)
			}
			if x := requests / (2 * per); x <= labelnoise.DefaultNullPrompts {
				return int(x)
			}
			return int(requests/per) - labelnoise.DefaultNullPrompts
		}
		examples := examplesFor(full * *seconds)
		anchorExamples := examplesFor(float64(4*n) / latency.Seconds() * *anchorSeconds)
		var adaptive, anchor []float64
		for r := range *runs {
			// Alternate the two clients so that a change in the machine's
			// load hits both alike.
			for _, c := range []struct {
				name     string
				fixed    int
				examples int
			}{{"default (adaptive)", 0, examples}, {"previous (4 in flight)", 4, anchorExamples}} {
				res, err := runOnce(dir, fmt.Sprintf("r%d-%d-%d", n, r, c.fixed), n, *capacity, *latency, c.examples, c.fixed, *trace, *greedy, *null)
				if err != nil {
					log.Fatal(err)
				}
				res.Client = c.name
				all = append(all, res)
				if c.fixed == 0 {
					adaptive = append(adaptive, res.Share)
				} else {
					anchor = append(anchor, res.Share)
				}
				if !*asJSON {
					fmt.Printf("%d server(s), %-22s %6d examples (%6d jobs, %6d requests) in %6.2f s: %7.1f/s of %7.1f/s = %5.1f %%  peak in flight %v, final limits %v\n",
						n, c.name, res.Examples, res.Jobs, res.Requests, res.Seconds, res.PerSecond, res.Capacity, 100*res.Share, res.PeakInFlow, res.Limits)
				}
			}
		}
		if !*asJSON {
			ma, mb := median(adaptive), median(anchor)
			fmt.Printf("%d server(s): median share of capacity %.1f %% (default) vs %.1f %% (previous), ratio %.1f×\n\n", n, 100*ma, 100*mb, ma/mb)
		}
	}
	if *asJSON {
		enc := json.NewEncoder(os.Stdout)
		enc.SetIndent("", "  ")
		enc.Encode(all)
	}
}

// runOnce scores examples on n fresh stand-ins with the probe's defaults
// (fixed > 0: that many requests in flight per server).
func runOnce(dir, name string, n, capacity int, latency time.Duration, examples, fixed int, trace, greedy, null bool) (result, error) {
	var urls []string
	var servers []*probetest.Server
	for range n {
		s := &probetest.Server{Kind: probetest.VLLM, Model: "bench/model-7b", Capacity: capacity, Latency: latency}
		ts := httptest.NewServer(s)
		defer ts.Close()
		servers = append(servers, s)
		urls = append(urls, ts.URL)
	}
	data := filepath.Join(dir, name+".jsonl")
	f, err := os.Create(data)
	if err != nil {
		return result{}, err
	}
	for i := range examples {
		fmt.Fprintf(f, `{"prompt": "Question %d: the capital of France?\n", "response": " Paris, the capital of France %d."}`+"\n", i, i%97)
	}
	if err := f.Close(); err != nil {
		return result{}, err
	}
	sv := probe.Server{URLs: urls, Concurrency: fixed, Greedy: greedy, Null: null}
	start := time.Now()
	if trace {
		next := 1.0
		sv.Progress = func(p probe.ServerProgress) {
			if el := time.Since(start).Seconds(); el >= next {
				fmt.Printf("  %5.1f s  %6d scored  limit %4d  in flight %4d\n", el, p.Scored, p.Limit, p.InFlight)
				next = el + 1
			}
		}
	}
	src, res, err := sv.Score(context.Background(), data, "", probe.Options{})
	el := time.Since(start).Seconds()
	if err != nil {
		return result{}, err
	}
	src.Close()
	if res.Scored != res.Total || res.Total-res.Null != examples {
		return result{}, fmt.Errorf("%d of %d jobs scored (%d examples)", res.Scored, res.Total, examples)
	}
	out := result{Servers: n, Examples: examples, Jobs: res.Total, Seconds: el, Capacity: float64(n*capacity) / latency.Seconds()}
	for i, s := range servers {
		out.Requests += s.Scored.Load() + s.Greedy.Load()
		out.PeakInFlow = append(out.PeakInFlow, s.Peak())
		out.Limits = append(out.Limits, res.Replicas[i].Limit)
	}
	out.PerSecond = float64(out.Requests) / el
	out.Share = out.PerSecond / out.Capacity
	return out, nil
}

func median(x []float64) float64 {
	x = slices.Clone(x)
	slices.Sort(x)
	if len(x)%2 == 1 {
		return x[len(x)/2]
	}
	return (x[len(x)/2-1] + x[len(x)/2]) / 2
}
