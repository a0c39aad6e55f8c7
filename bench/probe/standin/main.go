// Command standin serves a stand-in inference server (probe/probetest) on
// a port, so that `selector probe --server` can be tried and timed without
// a GPU: it answers vLLM's, SGLang's or TGI's requests as that server's
// code does, tokenizing with a BOS and byte tokens, and runs at most
// -capacity scoring requests at once, each taking -latency.
//
//	go run ./bench/probe/standin -kind vllm -addr 127.0.0.1:8000 &
//	selector probe --server http://127.0.0.1:8000 --data sft.jsonl
package main

import (
	"flag"
	"log"
	"net/http"
	"time"

	"github.com/capsel/capsel/probe/probetest"
)

func main() {
	kind := flag.String("kind", "vllm", "the server to stand in for: vllm, sglang or tgi")
	addr := flag.String("addr", "127.0.0.1:8000", "address to listen on")
	model := flag.String("model", "standin/model-7b", "the served model's name")
	capacity := flag.Int("capacity", 32, "scoring requests run at once (0: no limit)")
	latency := flag.Duration("latency", 200*time.Millisecond, "time each scoring request takes")
	flag.Parse()
	switch *kind {
	case probetest.VLLM, probetest.SGLang, probetest.TGI:
	default:
		log.Fatalf("-kind %q: want vllm, sglang or tgi", *kind)
	}
	s := &probetest.Server{Kind: *kind, Model: *model, Capacity: *capacity, Latency: *latency}
	log.Printf("%s stand-in serving %q on http://%s (capacity %d, latency %v)", *kind, *model, *addr, *capacity, *latency)
	log.Fatal(http.ListenAndServe(*addr, s))
}
