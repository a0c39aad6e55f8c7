package probe

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sort"

	"github.com/capsel/capsel/labelnoise"
)

// FlaggedRecord is one line of selector clean's flagged file: a flagged SFT
// line with why it was flagged.
type FlaggedRecord struct {
	// DataLine is the line in the SFT file (1-based).
	DataLine int `json:"data_line"`
	// ID names the scored sequence (file:line of the probe's input).
	ID     string `json:"id"`
	Reason string `json:"reason"`
	// OwnAnswer is the model's own answer (method greedy; empty with the
	// teacher-forced approximation) and Confidence its confidence in it.
	OwnAnswer  string  `json:"own_answer,omitempty"`
	Confidence float64 `json:"confidence"`
	// Example is the SFT line as it was: its JSON object, or a string for a
	// line of plain text.
	Example json.RawMessage `json:"example"`
}

// CleanStats counts what Clean did.
type CleanStats struct {
	Lines   int `json:"lines"`   // lines of the SFT file
	Kept    int `json:"kept"`    // lines written to the clean file (blank ones included)
	Flagged int `json:"flagged"` // lines written to the flagged file
}

// FlagLines maps the flags of a report's noise-aware section to the lines
// of the SFT file they came from. For a server or checkpoint run the flags
// name the data file and line; dataName must be that file. For log-prob
// files (byRecord), the n-th line of the files (Sequence.Record) belongs to
// the n-th example of the data, whose line is exampleLines[n−1]; records
// is the number of lines the files held, which must equal the examples'.
func FlagLines(na *NoiseAware, dataName string, byRecord bool, records int, exampleLines []int) (map[int]labelnoise.Flag, error) {
	if na == nil || na.Result == nil {
		return nil, errors.New("probe: no noise-aware analysis to clean with")
	}
	if len(na.FlagRefs) != len(na.Flags) {
		return nil, errors.New("probe: the report does not say where its flagged examples came from (a saved report): clean from the probe's inputs")
	}
	if byRecord && records != len(exampleLines) {
		return nil, fmt.Errorf("the log-prob files hold %d lines and %s %d examples: clean matches them line by line (the n-th log-prob line scores the n-th example), so they must be the same data in the same order", records, dataName, len(exampleLines))
	}
	out := make(map[int]labelnoise.Flag, len(na.Flags))
	for k, f := range na.Flags {
		ref := na.FlagRefs[k]
		var line int
		switch {
		case byRecord && ref.Multi:
			return nil, fmt.Errorf("%s holds several sequences on one line (n > 1 or a batch reply): clean matches log-prob lines to SFT lines one to one; save one sequence per line", f.ID)
		case byRecord && (ref.Record < 1 || ref.Record > len(exampleLines)):
			return nil, fmt.Errorf("%s: line %d of the log-prob files has no example in %s", f.ID, ref.Record, dataName)
		case byRecord:
			line = exampleLines[ref.Record-1]
		case ref.Source != dataName:
			return nil, fmt.Errorf("%s: flagged in %s, not in %s", f.ID, ref.Source, dataName)
		default:
			line = ref.Line
		}
		if _, dup := out[line]; dup {
			return nil, fmt.Errorf("%s: line %d of %s is flagged twice", f.ID, line, dataName)
		}
		out[line] = f
	}
	return out, nil
}

// Clean copies the SFT data r (named name in errors) to clean byte for byte,
// except the flagged lines (keyed by their 1-based line number), which go
// to flagged as FlaggedRecord JSON lines instead. Every flagged line must be
// an example line of r: a line that is blank or missing means the data
// changed since it was probed.
func Clean(r io.Reader, name string, flags map[int]labelnoise.Flag, clean, flagged io.Writer) (CleanStats, error) {
	var st CleanStats
	br := bufio.NewReaderSize(r, 1<<16)
	cw, fw := bufio.NewWriterSize(clean, 1<<16), bufio.NewWriter(flagged)
	enc := json.NewEncoder(fw)
	enc.SetEscapeHTML(false)
	found := 0
	for {
		b, err := br.ReadBytes('\n')
		if len(b) > 0 {
			st.Lines++
			f, bad := flags[st.Lines]
			if !bad {
				if _, err := cw.Write(b); err != nil {
					return st, err
				}
				st.Kept++
			} else {
				body := bytes.TrimRight(b, "\r\n")
				if st.Lines == 1 {
					body = bytes.TrimPrefix(body, []byte("\xef\xbb\xbf"))
				}
				if len(bytes.TrimSpace(body)) == 0 {
					return st, fmt.Errorf("%s:%d is blank, but the probe flagged an example there: the file changed since it was probed", name, st.Lines)
				}
				ex := json.RawMessage(bytes.TrimSpace(body))
				if !json.Valid(ex) {
					q, _ := json.Marshal(string(body))
					ex = q
				}
				rec := FlaggedRecord{DataLine: st.Lines, ID: f.ID, Reason: f.Reason, OwnAnswer: f.Own, Confidence: f.Confidence, Example: ex}
				if err := enc.Encode(rec); err != nil {
					return st, err
				}
				st.Flagged++
				found++
			}
		}
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return st, fmt.Errorf("%s: %w", name, err)
		}
	}
	if found != len(flags) {
		var missing []int
		for l := range flags {
			if l > st.Lines {
				missing = append(missing, l)
			}
		}
		sort.Ints(missing)
		return st, fmt.Errorf("%s has %d lines, but the probe flagged line %d: the file changed since it was probed", name, st.Lines, missing[0])
	}
	if err := cw.Flush(); err != nil {
		return st, err
	}
	return st, fw.Flush()
}
