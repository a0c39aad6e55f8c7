package probe

import (
	"io"
	"sync"
)

// lineParser turns one input line into sequences, appended to out. Its
// sequences point into buffers that only grow until reset (see bufs), so
// they stay valid until the next reset. On error the caller drops what was
// appended.
type lineParser interface {
	reset()
	parse(line []byte, out []Sequence) ([]Sequence, error)
}

// lineSource reads a stream line by line with one parser.
type lineSource struct {
	lr    *lineReader
	p     lineParser
	queue []Sequence
	k     int
}

func newLineSource(lr *lineReader, p lineParser) *lineSource {
	return &lineSource{lr: lr, p: p}
}

func (ls *lineSource) Next() (Sequence, error) {
	for ls.k >= len(ls.queue) {
		line, err := ls.lr.next()
		if err != nil {
			return Sequence{}, err
		}
		ls.p.reset()
		ls.k = 0
		ls.queue, err = ls.p.parse(line, ls.queue[:0])
		if err != nil {
			ls.queue = ls.queue[:0]
			return Sequence{}, &LineError{File: ls.lr.name, Line: ls.lr.line, Err: err}
		}
		for i := range ls.queue {
			ls.queue[i].Source, ls.queue[i].Line, ls.queue[i].Record = ls.lr.name, ls.lr.line, ls.lr.base+ls.lr.rec
		}
	}
	ls.k++
	return ls.queue[ls.k-1], nil
}

// Batches of the parallel reader: lines are read in batches of about
// batchBytes, parsed by workers, and handed out in order.
const (
	batchBytes = 1 << 20
	batchLines = 1024
)

// batch is a run of lines, their parser and what it made of them.
type batch struct {
	stats []seqStats // computed ahead for each sequence
	sb    sumBufs
	buf   []byte // the lines, one after the other
	ends  []int  // end of each line in buf
	nos   []int  // line numbers
	recs  []int  // record numbers (Sequence.Record)
	pos   int64  // bytes of the stream consumed after this batch
	p     lineParser
	out   []Sequence
	items []item
	err   error // a read error that ends the stream after these lines
	done  chan struct{}
}

// item is one result of a batch: a sequence or a line's error.
type item struct {
	seq Sequence
	err error
}

// parallelSource parses the lines of one stream on several goroutines and
// returns the sequences in input order. Memory is bounded by the batches in
// flight (workers + 2), whatever the length of the stream.
type parallelSource struct {
	name  string
	order chan *batch // batches in input order
	free  chan *batch
	stop  chan struct{}
	once  sync.Once
	cur   *batch
	k     int
	pos   int64 // bytes consumed by the batches handed out
}

// newParallelSource starts a reader goroutine and workers goroutines, each
// batch parsed with its own parser from newParser.
func newParallelSource(lr *lineReader, workers int, newParser func() lineParser) *parallelSource {
	inFlight := workers + 2
	ps := &parallelSource{name: lr.name, order: make(chan *batch, inFlight), free: make(chan *batch, inFlight), stop: make(chan struct{})}
	for range inFlight {
		ps.free <- &batch{p: newParser()}
	}
	work := make(chan *batch, inFlight)
	for range workers {
		go func() {
			for b := range work {
				b.parse(lr.name)
				close(b.done)
			}
		}()
	}
	go func() {
		defer close(work)
		defer close(ps.order)
		for {
			var b *batch
			select {
			case b = <-ps.free:
			case <-ps.stop:
				return
			}
			more := b.fill(lr)
			b.done = make(chan struct{})
			select {
			case ps.order <- b:
			case <-ps.stop:
				return
			}
			work <- b
			if !more {
				return
			}
		}
	}()
	return ps
}

// fill reads lines into b and reports whether the stream has more.
func (b *batch) fill(lr *lineReader) bool {
	b.buf, b.ends, b.nos, b.recs, b.err = b.buf[:0], b.ends[:0], b.nos[:0], b.recs[:0], nil
	for len(b.buf) < batchBytes && len(b.ends) < batchLines {
		line, err := lr.next()
		if err != nil {
			if err != io.EOF {
				b.err = err
			}
			b.pos = lr.n
			return false
		}
		b.buf = append(b.buf, line...)
		b.ends = append(b.ends, len(b.buf))
		b.nos = append(b.nos, lr.line)
		b.recs = append(b.recs, lr.base+lr.rec)
	}
	b.pos = lr.n
	return true
}

// parse parses the batch's lines.
func (b *batch) parse(name string) {
	b.p.reset()
	b.out, b.items = b.out[:0], b.items[:0]
	start := 0
	for k, end := range b.ends {
		line := b.buf[start:end:end]
		start = end
		n0 := len(b.out)
		var err error
		b.out, err = b.p.parse(line, b.out)
		if err != nil {
			b.out = b.out[:n0]
			b.items = append(b.items, item{err: &LineError{File: name, Line: b.nos[k], Err: err}})
			continue
		}
		for i := n0; i < len(b.out); i++ {
			b.out[i].Source, b.out[i].Line, b.out[i].Record = name, b.nos[k], b.recs[k]
			b.items = append(b.items, item{seq: b.out[i]})
		}
	}
	if b.err != nil {
		b.items = append(b.items, item{err: b.err})
	}
	// Check and summarise the sequences here, on the worker, so that the
	// accumulator's own work per sequence is small.
	if cap(b.stats) < len(b.out) {
		b.stats = make([]seqStats, len(b.out))
	}
	b.stats = b.stats[:len(b.out)]
	b.sb.reset()
	k := 0
	for i := range b.items {
		if b.items[i].err != nil {
			continue
		}
		st := &b.stats[k]
		*st = seqStats{}
		summarize(st, &b.items[i].seq, &b.sb)
		b.items[i].seq.pre = st
		k++
	}
}

func (ps *parallelSource) Next() (Sequence, error) {
	for {
		if ps.cur != nil {
			if ps.k < len(ps.cur.items) {
				it := ps.cur.items[ps.k]
				ps.k++
				return it.seq, it.err
			}
			ps.pos = ps.cur.pos
			ps.free <- ps.cur // the caller is done with its last sequence
			ps.cur = nil
		}
		b, ok := <-ps.order
		if !ok {
			return Sequence{}, io.EOF
		}
		<-b.done
		ps.cur, ps.k = b, 0
	}
}

// close stops the goroutines; the source must not be used afterwards.
func (ps *parallelSource) close() {
	ps.once.Do(func() {
		close(ps.stop)
		for range ps.order { // let the reader finish a pending send
		}
	})
}
