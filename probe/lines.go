package probe

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"unsafe"
)

// MaxLineBytes bounds one input line; a reader's memory is a small multiple
// of its longest line, whatever the number of lines. A variable so that
// tests can lower it.
var MaxLineBytes = 1 << 30

// lineReader yields the non-blank lines of a stream with their numbers.
type lineReader struct {
	r    *bufio.Reader
	name string
	line int    // number of the line last returned
	rec  int    // non-blank lines returned (a line too long counts too)
	base int    // added to rec in Sequence.Record (lines of earlier files)
	n    int64  // bytes consumed
	buf  []byte // holds a line longer than the bufio buffer
	last []byte // the line last returned
	back bool   // next returns last again
}

// unread makes next return the line it returned last once more.
func (lr *lineReader) unread() { lr.back = true }

func newLineReader(r io.Reader, name string) *lineReader {
	return &lineReader{r: bufio.NewReaderSize(r, 1<<20), name: name}
}

// next returns the next non-blank line without its line ending. The slice is
// valid until the next call. It returns io.EOF at the end.
func (lr *lineReader) next() ([]byte, error) {
	if lr.back {
		lr.back = false
		return lr.last, nil
	}
	for {
		b, err := lr.r.ReadSlice('\n')
		if errors.Is(err, bufio.ErrBufferFull) {
			lr.buf = append(lr.buf[:0], b...)
			for errors.Is(err, bufio.ErrBufferFull) {
				if len(lr.buf) > MaxLineBytes {
					// Pass over the rest of the line, so that reading can
					// go on with the next one.
					for errors.Is(err, bufio.ErrBufferFull) {
						b, err = lr.r.ReadSlice('\n')
						lr.n += int64(len(b))
					}
					lr.n += int64(len(lr.buf))
					lr.line++
					lr.rec++
					lr.buf = nil
					if err != nil && !errors.Is(err, io.EOF) {
						return nil, fmt.Errorf("%s: %w", lr.name, err)
					}
					return nil, &LineError{File: lr.name, Line: lr.line, Err: fmt.Errorf("line longer than %d bytes", MaxLineBytes)}
				}
				b, err = lr.r.ReadSlice('\n')
				lr.buf = append(lr.buf, b...)
			}
			b = lr.buf
		}
		lr.n += int64(len(b))
		if len(b) == 0 && err != nil {
			if errors.Is(err, io.EOF) {
				return nil, io.EOF
			}
			return nil, fmt.Errorf("%s: %w", lr.name, err)
		}
		if err != nil && !errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("%s: %w", lr.name, err)
		}
		lr.line++
		b = bytes.TrimRight(b, "\r\n")
		if len(bytes.TrimSpace(b)) == 0 {
			continue
		}
		lr.last = b
		lr.rec++
		return b, nil
	}
}

// arena holds the decoded strings of one line. Strings handed out point into
// it; it is never written below its length and a new one is allocated for
// every line, so the strings stay valid and unchanged after the line is
// done: one allocation per line instead of one per token.
type arena struct {
	buf  []byte
	last int // capacity used by the previous line, to size the next
}

func (a *arena) reset() {
	a.last = max(len(a.buf), a.last*3/4)
	a.buf = make([]byte, 0, a.last+64)
}

// str decodes the next JSON string of s into the arena.
func (a *arena) str(s *scanner) string {
	start := len(a.buf)
	a.buf = s.str(a.buf)
	b := a.buf[start:]
	if len(b) == 0 {
		return ""
	}
	return unsafe.String(&b[0], len(b))
}
