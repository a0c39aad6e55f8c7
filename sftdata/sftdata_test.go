package sftdata

import (
	"errors"
	"io"
	"reflect"
	"strings"
	"testing"
)

func TestShapes(t *testing.T) {
	in := "\xef\xbb\xbf" + `{"prompt": "Q: 2+2?\n", "response": "4", "id": 7}
{"prompt": "Capital of France?", "completion": " Paris"}

{"messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello!"}]}
{"prompt": [{"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]}], "completion": [{"role": "assistant", "content": "ab"}]}
{"text": "a pretraining document"}
`
	got, err := ReadAll(strings.NewReader(in), "d.jsonl")
	if err != nil {
		t.Fatal(err)
	}
	want := []Example{
		{Kind: PromptResponse, Prompt: "Q: 2+2?\n", Response: "4", Source: "d.jsonl", Line: 1},
		{Kind: PromptCompletion, Prompt: "Capital of France?", Response: " Paris", Source: "d.jsonl", Line: 2},
		{Kind: Chat, Context: []Message{{"system", "Be brief."}, {"user", "Hi"}}, Response: "Hello!", Source: "d.jsonl", Line: 4},
		{Kind: Chat, Context: []Message{{"user", "ab"}}, Response: "ab", Source: "d.jsonl", Line: 5},
		{Kind: Text, Response: "a pretraining document", Source: "d.jsonl", Line: 6},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got\n%+v\nwant\n%+v", got, want)
	}
	if p := got[2].PromptText(); p != "system: Be brief.\nuser: Hi\nassistant: " {
		t.Errorf("chat prompt %q", p)
	}
	if p := got[0].PromptText(); p != "Q: 2+2?\n" {
		t.Errorf("prompt %q", p)
	}
}

func TestPlainText(t *testing.T) {
	got, err := ReadAll(strings.NewReader("\xef\xbb\xbfline one\n\n  line two \r\nlast"), "t.txt")
	if err != nil {
		t.Fatal(err)
	}
	want := []Example{
		{Kind: Plain, Response: "line one", Source: "t.txt", Line: 1},
		{Kind: Plain, Response: "  line two ", Source: "t.txt", Line: 3},
		{Kind: Plain, Response: "last", Source: "t.txt", Line: 4},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %+v", got)
	}
}

func TestBadLines(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{`{"prompt":"a","response":""}`, "d:1: empty response"},
		{"{\"prompt\":\"a\",\"response\":\"b\"}\n{\"prompt\":1}", "d:2: bad JSON"},
		{`{"prompt":"a"}`, `d:1: need "prompt" and "response"`},
		{`{"response":"b"}`, `d:1: "response" needs a "prompt"`},
		{`{"prompt":"a","response":"b","completion":"c"}`, `d:1: give "response" or "completion", not both`},
		{`{"text":"a","prompt":"b"}`, `d:1: "text" is a pretraining document`},
		{`{"messages":[{"role":"user","content":"a"}]}`, `d:1: the last turn of "messages" is the user's`},
		{`{"messages":[{"role":"assistant","content":"a"}]}`, `d:1: "messages" holds only the response`},
		{`{"messages":[]}`, `d:1: "messages" is empty`},
		{`{"messages":[{"role":"user","content":null},{"role":"assistant","content":"b"}]}`, `d:1: messages[0] (user): no "content"`},
		{`{"messages":[{"role":"user","content":[{"type":"image_url"}]},{"role":"assistant","content":"b"}]}`, `only text parts`},
		{`{"messages":[{"content":"a"},{"role":"assistant","content":"b"}]}`, `messages[0] has no "role"`},
		{`{"prompt":"a","completion":[{"role":"assistant","content":"b"}]}`, `needs a "prompt" list of turns`},
		{`{"prompt":[{"role":"user","content":"a"}],"completion":[{"role":"assistant","content":"b"},{"role":"user","content":"c"}]}`, `holds 2 turns`},
		{`{"prompt":[{"role":"user","content":"a"}],"completion":"b"}`, `"prompt" must be a string`},
		{"", "d: no examples"},
		{"\xff\xfe", "d:1: not valid UTF-8"},
		{"{\"prompt\":\"a\",\"response\":\"\xff\"}", "d:1: not valid UTF-8"},
	} {
		if _, err := ReadAll(strings.NewReader(c.in), "d"); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%q: err %v, want %q", c.in, err, c.want)
		}
	}
}

// After a bad line the reader goes on with the next.
func TestReaderContinues(t *testing.T) {
	rd := NewReader(strings.NewReader("{\"prompt\":\"a\"}\n{\"prompt\":\"a\",\"response\":\"b\"}\n"), "d")
	_, err := rd.Next()
	var le *LineError
	if !errors.As(err, &le) || le.Line != 1 {
		t.Fatalf("first: %v", err)
	}
	ex, err := rd.Next()
	if err != nil || ex.Response != "b" || ex.Line != 2 {
		t.Fatalf("second: %+v %v", ex, err)
	}
	if _, err := rd.Next(); !errors.Is(err, io.EOF) {
		t.Fatalf("third: %v", err)
	}
}

func TestKindNames(t *testing.T) {
	for k, want := range map[Kind]string{PromptResponse: "prompt/response", PromptCompletion: "prompt/completion", Chat: "chat", Text: "text", Plain: "plain text", 9: "Kind(9)"} {
		if k.String() != want {
			t.Errorf("%d: %q", int(k), k.String())
		}
	}
}
