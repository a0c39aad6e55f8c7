package probe

import (
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
	"strings"
	"sync/atomic"
)

// Input formats.
const (
	Native     = "native"
	VLLMEcho   = "vllm-echo"
	VLLMPrompt = "vllm-prompt"
	SGLang     = "sglang"
	TGI        = "tgi"
	// ReportFormat is a report written by this package (pretty-printed
	// JSON); reports are merged, not read as sequences.
	ReportFormat = "report"
)

// Formats lists the sequence formats.
var Formats = []string{Native, VLLMEcho, VLLMPrompt, SGLang, TGI}

// Options say how to read inputs.
type Options struct {
	// Format of every input; empty: detect each file's from its first line.
	Format string
	// ScoreAll scores every token that has a log-prob in inputs that do not
	// say where the response starts (vLLM, SGLang), instead of rejecting
	// them.
	ScoreAll bool
	// Workers is the number of goroutines that parse a file's lines
	// (0: GOMAXPROCS); with 1 a file is read on the caller's goroutine.
	Workers int
}

// Validate checks the format name.
func (o Options) Validate() error {
	if o.Format == "" {
		return nil
	}
	for _, f := range Formats {
		if f == o.Format {
			return nil
		}
	}
	return fmt.Errorf("unknown format %q (want %s)", o.Format, strings.Join(Formats, ", "))
}

// NewReader returns the Source for one input in the given format. It reads
// on the calling goroutine.
func NewReader(r io.Reader, name, format string, opt Options) (Source, error) {
	np, err := parserFor(format, opt)
	if err != nil {
		return nil, err
	}
	return newLineSource(newLineReader(r, name), np()), nil
}

// parserFor returns a constructor of parsers of format.
func parserFor(format string, opt Options) (func() lineParser, error) {
	switch format {
	case Native:
		return func() lineParser { return &nativeParser{} }, nil
	case VLLMEcho:
		return func() lineParser { return &echoParser{scoreAll: opt.ScoreAll} }, nil
	case VLLMPrompt:
		return func() lineParser { return &idParser{scoreAll: opt.ScoreAll, format: VLLMPrompt} }, nil
	case SGLang, TGI:
		return func() lineParser { return &idParser{scoreAll: opt.ScoreAll, format: format} }, nil
	}
	return nil, fmt.Errorf("unknown format %q", format)
}

// Detect names the format of a line: native (a top-level "logprobs" list),
// vllm-echo (choices with a logprobs object), vllm-prompt (prompt_logprobs
// at the top level or in choices), sglang (meta_info, or a batch reply: an
// array of such objects), tgi (details, as TGI's /generate writes them) or
// report (the first line of a pretty-printed JSON object).
func Detect(line []byte) (string, error) {
	var s scanner
	s.reset(line)
	if s.peek() == '{' && len(trimSpace(line)) == 1 {
		return ReportFormat, nil
	}
	if s.peek() == '[' {
		s.beginArray()
		if s.more() {
			if f, err := detectObject(&s); err == nil && f == SGLang {
				return SGLang, nil
			}
		}
		return "", errors.New("a JSON array, but not an SGLang batch reply (objects with \"meta_info\")")
	}
	return detectObject(&s)
}

func detectObject(s *scanner) (string, error) {
	found := ""
	if !s.beginObject() {
		return "", s.err
	}
	for s.nextKey() {
		switch string(s.key) {
		case "logprobs":
			if s.peek() == '[' {
				found = Native
			}
			s.skip()
		case "meta_info":
			found = SGLang
			s.skip()
		case "details":
			if !s.null() {
				s.skip()
				if found == "" {
					found = TGI
				}
			}
		case "prompt_logprobs":
			if !s.null() {
				s.skip()
				if found == "" {
					found = VLLMPrompt
				}
			}
		case "choices":
			if s.beginArray() {
				for s.more() {
					s.beginObject()
					for s.nextKey() {
						switch string(s.key) {
						case "logprobs":
							if !s.null() {
								s.skip()
								found = VLLMEcho
							}
						case "prompt_logprobs":
							if !s.null() {
								s.skip()
								if found == "" {
									found = VLLMPrompt
								}
							}
						default:
							s.skip()
						}
					}
				}
			}
		case "format_version":
			s.skip()
			found = ReportFormat
		default:
			s.skip()
		}
		if s.err != nil {
			return "", s.err
		}
	}
	if s.err != nil {
		return "", s.err
	}
	if found == "" {
		return "", errors.New("no known format: want a native line (\"logprobs\"), a vLLM response (\"choices\" with \"logprobs\" or \"prompt_logprobs\"), vLLM \"prompt_logprobs\", an SGLang response (\"meta_info\") or a TGI response (\"details\")")
	}
	return found, nil
}

func trimSpace(b []byte) []byte {
	for len(b) > 0 && (b[0] == ' ' || b[0] == '\t' || b[0] == '\r' || b[0] == '\n') {
		b = b[1:]
	}
	for len(b) > 0 && (b[len(b)-1] == ' ' || b[len(b)-1] == '\t' || b[len(b)-1] == '\r' || b[len(b)-1] == '\n') {
		b = b[:len(b)-1]
	}
	return b
}

// Files reads several files one after the other as one Source, each in
// Options.Format or in the format detected from its first line. Lines are
// parsed on Options.Workers goroutines and come out in input order.
type Files struct {
	paths  []string
	opt    Options
	onOpen func(file, format string, detected bool)
	k      int // index of the next file to open
	cur    Source
	f      *os.File
	pos    func() int64 // bytes of the current file consumed
	lr     *lineReader  // the current file's
	recs   int          // non-blank lines of the files finished
	total  int64
	done   atomic.Int64 // bytes of finished files
	curPos atomic.Int64
}

// OpenFiles returns a Source over the files. onOpen, when set, is called as
// each file is opened, with its format and whether it was detected. The
// total size of the files is read up front for progress.
func OpenFiles(paths []string, opt Options, onOpen func(file, format string, detected bool)) (*Files, error) {
	if err := opt.Validate(); err != nil {
		return nil, err
	}
	if opt.Workers <= 0 {
		opt.Workers = runtime.GOMAXPROCS(0)
	}
	fs := &Files{paths: paths, opt: opt, onOpen: onOpen}
	for _, p := range paths {
		st, err := os.Stat(p)
		if err != nil {
			return nil, err
		}
		if st.IsDir() {
			return nil, fmt.Errorf("%s is a directory", p)
		}
		fs.total += st.Size()
	}
	return fs, nil
}

// Records returns the number of non-blank lines read so far, over all the
// files (Sequence.Record of the last).
func (fs *Files) Records() int {
	if fs.lr != nil {
		return fs.lr.base + fs.lr.rec
	}
	return fs.recs
}

// Bytes returns how many bytes have been consumed and the total size.
func (fs *Files) Bytes() (done, total int64) {
	return fs.done.Load() + fs.curPos.Load(), fs.total
}

// Next returns the next sequence of the current file, opening the next file
// at the end of one.
func (fs *Files) Next() (Sequence, error) {
	for {
		if fs.cur == nil {
			if fs.k >= len(fs.paths) {
				return Sequence{}, io.EOF
			}
			p := fs.paths[fs.k]
			fs.k++
			if err := fs.open(p); err != nil {
				return Sequence{}, err
			}
			if fs.cur == nil { // empty file
				continue
			}
		}
		seq, err := fs.cur.Next()
		fs.curPos.Store(fs.pos())
		if errors.Is(err, io.EOF) {
			fs.closeCurrent()
			continue
		}
		return seq, err
	}
}

// Close releases the current file and stops its goroutines. Next must not
// be called afterwards.
func (fs *Files) Close() error {
	fs.closeCurrent()
	fs.k = len(fs.paths)
	return nil
}

func (fs *Files) closeCurrent() {
	if ps, ok := fs.cur.(*parallelSource); ok {
		ps.close()
	}
	if fs.lr != nil {
		fs.recs = fs.lr.base + fs.lr.rec
		fs.lr = nil
	}
	if fs.f != nil {
		fs.done.Add(fs.pos())
		fs.curPos.Store(0)
		fs.f.Close()
	}
	fs.cur, fs.f = nil, nil
}

// open opens path and detects its format. An empty file is reported to
// onOpen and leaves fs.cur nil.
func (fs *Files) open(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	lr := newLineReader(f, path)
	lr.base = fs.recs
	format, detected := fs.opt.Format, false
	if format == "" {
		line, err := lr.next()
		if errors.Is(err, io.EOF) {
			f.Close()
			if fs.onOpen != nil {
				fs.onOpen(path, "", true)
			}
			return nil
		}
		if err != nil {
			f.Close()
			return err
		}
		if format, err = Detect(line); err != nil {
			f.Close()
			return fmt.Errorf("%s:%d: cannot tell the format (%w); name it with --format", path, lr.line, err)
		}
		if format == ReportFormat {
			f.Close()
			return fmt.Errorf("%s is a probe report: merge it with ReadReport and AddReport", path)
		}
		lr.unread()
		detected = true
	}
	fs.lr = lr
	np, err := parserFor(format, fs.opt)
	if err != nil {
		f.Close()
		return err
	}
	if fs.onOpen != nil {
		fs.onOpen(path, format, detected)
	}
	if fs.opt.Workers > 1 {
		ps := newParallelSource(lr, fs.opt.Workers, np)
		fs.cur, fs.pos = ps, func() int64 { return ps.pos }
	} else {
		fs.cur, fs.pos = newLineSource(lr, np()), func() int64 { return lr.n }
	}
	fs.f = f
	return nil
}
