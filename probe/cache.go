package probe

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
)

// cache is the file of a server run's replies: one line per scored example
// in the format of the server's replies (with "response_start"), keyed by
// "id". It is locked while a probe uses it, so that two probes never
// interleave their lines.
type cache struct {
	path    string
	f       *os.File // open for reading and appending, locked
	done    map[string]bool
	format  string // the format of its lines; "" while it is empty
	created bool   // the file did not exist before
}

// openCache opens (or creates) the cache at path and locks it, cuts a torn
// last line off (a run killed while writing), and reads the keys of its
// lines.
func openCache(path string) (*cache, error) {
	_, serr := os.Stat(path)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	busy, err := lockFile(f)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	if busy {
		f.Close()
		return nil, fmt.Errorf("%s is in use by another selector probe: wait for it to finish, or give this run its own --cache", path)
	}
	c := &cache{path: path, f: f, done: map[string]bool{}, created: errors.Is(serr, os.ErrNotExist)}
	if err := c.load(); err != nil {
		c.close()
		return nil, err
	}
	return c, nil
}

func (c *cache) load() error {
	st, err := c.f.Stat()
	if err != nil {
		return err
	}
	if size := st.Size(); size > 0 {
		last := make([]byte, 1)
		if _, err := c.f.ReadAt(last, size-1); err != nil {
			return err
		}
		if last[0] != '\n' {
			end, err := lastNewline(c.f, size)
			if err != nil {
				return err
			}
			if err := c.f.Truncate(end); err != nil {
				return fmt.Errorf("repair %s: %w", c.path, err)
			}
		}
	}
	lr := newLineReader(io.NewSectionReader(c.f, 0, 1<<62), c.path)
	var s scanner
	for {
		line, err := lr.next()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		if c.format == "" {
			if f, err := Detect(line); err == nil {
				c.format = f
			}
		}
		if id, ok := cacheLineID(&s, line); ok {
			c.done[id] = true
		}
	}
}

// lastNewline returns the offset just past the last '\n' before size.
func lastNewline(f *os.File, size int64) (int64, error) {
	const chunk = 1 << 16
	buf := make([]byte, chunk)
	for end := size; end > 0; {
		start := max(end-chunk, 0)
		n, err := f.ReadAt(buf[:end-start], start)
		if err != nil && !errors.Is(err, io.EOF) {
			return 0, err
		}
		if i := bytes.LastIndexByte(buf[:n], '\n'); i >= 0 {
			return start + int64(i) + 1, nil
		}
		end = start
	}
	return 0, nil
}

// cacheLineID returns the "id" of a well-formed cache line.
func cacheLineID(s *scanner, line []byte) (string, bool) {
	s.reset(line)
	id := ""
	if !s.beginObject() {
		return "", false
	}
	for s.nextKey() {
		if string(s.key) == "id" && s.peek() == '"' {
			id = string(s.str(nil))
			continue
		}
		s.skip()
	}
	s.end()
	return id, s.err == nil && strings.HasPrefix(id, "capsel-")
}

// append writes one line (ending in '\n') at the end of the cache.
func (c *cache) append(line []byte) error {
	if _, err := c.f.Write(line); err != nil {
		return fmt.Errorf("write %s: %w", c.path, err)
	}
	return nil
}

func (c *cache) sync() error {
	if err := c.f.Sync(); err != nil {
		return fmt.Errorf("sync %s: %w", c.path, err)
	}
	return nil
}

// close syncs the cache, releases the lock and closes the file, returning
// the first error. A cache this run created and left empty is removed.
func (c *cache) close() error {
	if c.f == nil {
		return nil
	}
	if st, err := c.f.Stat(); err == nil && st.Size() == 0 && c.created {
		os.Remove(c.path)
	}
	err := c.f.Sync()
	if uerr := unlockFile(c.f); err == nil {
		err = uerr
	}
	if cerr := c.f.Close(); err == nil {
		err = cerr
	}
	c.f = nil
	if err != nil {
		return fmt.Errorf("close %s: %w", c.path, err)
	}
	return nil
}

// cacheSource yields the cached replies of the data's examples (or null
// prompts), each once, named by the data file and line. Lines of the cache
// that are malformed or belong to other data are passed over; after the
// cache, each example of the data that is not in it comes as a line error
// of the data file (counted as skipped with SkipBad). It holds the cache's
// lock until Close.
type cacheSource struct {
	c       *cache
	files   *Files
	want    map[string]int // cache ID → data line
	seen    map[int]bool   // data lines served
	failed  map[int]string // data line → why the server run gave up on it
	data    string
	null    bool  // the null set's
	missing []int // after the cache: the data lines not in it
	ended   bool
	nullSrc *cacheSource
}

func (cs *cacheSource) Next() (Sequence, error) {
	for {
		if cs.ended {
			if len(cs.missing) == 0 {
				return Sequence{}, io.EOF
			}
			line := cs.missing[0]
			cs.missing = cs.missing[1:]
			why := "the server did not score it"
			if r, ok := cs.failed[line]; ok {
				why = r
			}
			what := "not in the cache"
			if cs.null {
				what = "its null prompt is not in the null cache"
			}
			return Sequence{}, lineErr(cs.data, line, "%s (%s); run again to retry it", what, why)
		}
		seq, err := cs.files.Next()
		if errors.Is(err, io.EOF) {
			cs.ended = true
			lines := map[int]bool{}
			for _, line := range cs.want {
				if !cs.seen[line] && !lines[line] {
					lines[line] = true
					cs.missing = append(cs.missing, line)
				}
			}
			slices.Sort(cs.missing)
			continue
		}
		if err != nil {
			if IsLineError(err) {
				continue // a line another run left: not this data's
			}
			return Sequence{}, err
		}
		line, ok := cs.want[seq.ID]
		if !ok || cs.seen[line] {
			continue
		}
		cs.seen[line] = true
		seq.Source, seq.Line, seq.Record = cs.data, line, 0
		return seq, nil
	}
}

// Bytes reports progress through the cache.
func (cs *cacheSource) Bytes() (done, total int64) { return cs.files.Bytes() }

// Null returns the null set's source (an empty one without a null set).
func (cs *cacheSource) Null() Source {
	if cs.nullSrc == nil {
		return &SliceSource{}
	}
	return cs.nullSrc
}

// Close releases the cache (and the null set's).
func (cs *cacheSource) Close() error {
	err := cs.files.Close()
	if cerr := cs.c.close(); err == nil {
		err = cerr
	}
	if cs.nullSrc != nil {
		if nerr := cs.nullSrc.Close(); err == nil {
			err = nerr
		}
	}
	return err
}
