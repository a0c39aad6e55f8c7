package probe

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	"github.com/capsel/capsel/labelnoise"
)

// Clean copies every line that is not flagged byte for byte (a BOM, CRLF
// endings, a blank line and a last line without a newline included) and
// writes each flagged one with its reason.
func TestClean(t *testing.T) {
	data := "\xef\xbb\xbf{\"prompt\": \"a\", \"response\": \"b\"}\r\n" +
		"{\"prompt\": \"c\", \"response\": \"d\"}\n" +
		"\n" +
		"{\"prompt\": \"e\",   \"response\": \"f\"}\r\n" +
		"{\"prompt\": \"g\", \"response\": \"h\"}"
	flags := map[int]labelnoise.Flag{
		1: {ID: "s.jsonl:1", Reason: "r1", Own: "x", Confidence: 0.9},
		4: {ID: "s.jsonl:4", Reason: "r4", Confidence: 0.8},
	}
	var clean, flagged bytes.Buffer
	st, err := Clean(strings.NewReader(data), "s.jsonl", flags, &clean, &flagged)
	if err != nil {
		t.Fatal(err)
	}
	want := "{\"prompt\": \"c\", \"response\": \"d\"}\n\n{\"prompt\": \"g\", \"response\": \"h\"}"
	if clean.String() != want || st != (CleanStats{Lines: 5, Kept: 3, Flagged: 2}) {
		t.Errorf("clean %q, stats %+v; want %q", clean.String(), st, want)
	}
	var recs []FlaggedRecord
	for _, l := range strings.Split(strings.TrimSpace(flagged.String()), "\n") {
		var r FlaggedRecord
		if err := json.Unmarshal([]byte(l), &r); err != nil {
			t.Fatal(err)
		}
		recs = append(recs, r)
	}
	if len(recs) != 2 || recs[0].DataLine != 1 || recs[0].Reason != "r1" || recs[0].OwnAnswer != "x" || recs[0].Confidence != 0.9 ||
		string(recs[0].Example) != `{"prompt":"a","response":"b"}` || recs[1].DataLine != 4 || recs[1].ID != "s.jsonl:4" {
		t.Errorf("flagged %+v", recs)
	}
	// Plain text lines go in as strings.
	flagged.Reset()
	clean.Reset()
	if _, err := Clean(strings.NewReader("doc one\ndoc two\n"), "p.txt", map[int]labelnoise.Flag{2: {Reason: "r"}}, &clean, &flagged); err != nil ||
		clean.String() != "doc one\n" || !strings.Contains(flagged.String(), `"example":"doc two"`) {
		t.Errorf("plain text: %v, clean %q, flagged %q", err, clean.String(), flagged.String())
	}
	// A flag on a blank or missing line: the data changed.
	for line, msg := range map[int]string{3: "s.jsonl:3 is blank", 9: "has 5 lines, but the probe flagged line 9"} {
		_, err := Clean(strings.NewReader(data), "s.jsonl", map[int]labelnoise.Flag{line: {}}, &clean, &flagged)
		if err == nil || !strings.Contains(err.Error(), msg) {
			t.Errorf("flag on line %d: %v, want %q", line, err, msg)
		}
	}
}

func TestFlagLines(t *testing.T) {
	na := &NoiseAware{Result: &labelnoise.Result{Flags: []labelnoise.Flag{{ID: "a"}, {ID: "b"}}},
		FlagRefs: []ExampleRef{{Source: "lp.jsonl", Line: 2, Record: 2}, {Source: "lp2.jsonl", Line: 1, Record: 4}}}
	got, err := FlagLines(na, "sft.jsonl", true, 4, []int{1, 3, 4, 7})
	if err != nil || len(got) != 2 || got[3].ID != "a" || got[7].ID != "b" {
		t.Errorf("by record: %v, %v; want lines 3 and 7", got, err)
	}
	if _, err := FlagLines(na, "sft.jsonl", true, 5, []int{1, 3, 4, 7}); err == nil || !strings.Contains(err.Error(), "hold 5 lines and sft.jsonl 4 examples") {
		t.Errorf("count mismatch: %v", err)
	}
	na.FlagRefs[1].Multi = true
	if _, err := FlagLines(na, "sft.jsonl", true, 4, []int{1, 3, 4, 7}); err == nil || !strings.Contains(err.Error(), "several sequences") {
		t.Errorf("multi: %v", err)
	}
	srv := &NoiseAware{Result: &labelnoise.Result{Flags: []labelnoise.Flag{{ID: "sft.jsonl:5"}}}, FlagRefs: []ExampleRef{{Source: "sft.jsonl", Line: 5}}}
	if got, err := FlagLines(srv, "sft.jsonl", false, 0, nil); err != nil || got[5].ID != "sft.jsonl:5" {
		t.Errorf("by line: %v, %v", got, err)
	}
	if _, err := FlagLines(srv, "other.jsonl", false, 0, nil); err == nil {
		t.Error("flags of another file were taken")
	}
	saved := &NoiseAware{Result: &labelnoise.Result{Flags: []labelnoise.Flag{{ID: "x"}}}}
	if _, err := FlagLines(saved, "sft.jsonl", false, 0, nil); err == nil || !strings.Contains(err.Error(), "saved report") {
		t.Errorf("saved report: %v", err)
	}
}
