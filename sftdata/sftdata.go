package sftdata

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"unicode/utf8"
)

// Kind says which shape a line had.
type Kind int

// The shapes of SFT data.
const (
	PromptResponse   Kind = iota // {"prompt", "response"}
	PromptCompletion             // TRL's {"prompt", "completion"} with strings
	Chat                         // {"messages"}, or TRL's prompt-completion with turns
	Text                         // {"text"}: a pretraining document
	Plain                        // a line of a plain-text file: a pretraining document
)

func (k Kind) String() string {
	switch k {
	case PromptResponse:
		return "prompt/response"
	case PromptCompletion:
		return "prompt/completion"
	case Chat:
		return "chat"
	case Text:
		return "text"
	case Plain:
		return "plain text"
	}
	return fmt.Sprintf("Kind(%d)", int(k))
}

// Message is one turn of a chat.
type Message struct {
	Role    string `json:"role"`
	Content string `json:"content"`
}

// Example is one example: the model is scored (or trained) on Response
// given what precedes it.
type Example struct {
	Kind Kind
	// Prompt precedes the response for PromptResponse and
	// PromptCompletion; it is empty for chats and documents.
	Prompt string
	// Context holds a chat's turns before the response (Kind Chat only).
	Context []Message
	// Response is the response, the completion, the last assistant turn or
	// the whole document. It is never empty.
	Response string
	Source   string // the file's name
	Line     int    // 1-based line in Source
}

// ChatTemplate describes how the project's own models read a chat: each
// turn of the context as its role, ": ", its content and a newline, then
// the assistant's header "assistant: ", after which the response follows.
const ChatTemplate = `{role}: {content}\n for each turn of the context, then "assistant: "`

// RenderChat renders a chat's context as ChatTemplate says.
func RenderChat(context []Message) string {
	var b strings.Builder
	for _, m := range context {
		b.WriteString(m.Role)
		b.WriteString(": ")
		b.WriteString(m.Content)
		b.WriteByte('\n')
	}
	b.WriteString("assistant: ")
	return b.String()
}

// PromptText is the text that precedes the response for the project's own
// models: the prompt, or the chat's context rendered by RenderChat.
func (ex Example) PromptText() string {
	if ex.Kind == Chat {
		return RenderChat(ex.Context)
	}
	return ex.Prompt
}

// Reader reads examples one at a time.
type Reader struct {
	r     *bufio.Reader
	name  string
	line  int
	jsonl int // −1 until the first non-blank line tells; then 0 or 1
	err   error
}

// NewReader reads the examples of r; name is used in errors.
func NewReader(r io.Reader, name string) *Reader {
	return &Reader{r: bufio.NewReaderSize(r, 1<<16), name: name, jsonl: -1}
}

// Next returns the next example, io.EOF after the last, or an error naming
// the file and line. After an error about one line (a *LineError) the
// reader goes on with the next line; any other error ends it.
func (rd *Reader) Next() (Example, error) {
	for rd.err == nil {
		b, err := rd.r.ReadBytes('\n')
		if err != nil && !errors.Is(err, io.EOF) {
			rd.err = fmt.Errorf("%s:%d: %w", rd.name, rd.line+1, err)
			return Example{}, rd.err
		}
		if errors.Is(err, io.EOF) {
			rd.err = io.EOF
			if len(b) == 0 {
				break
			}
		}
		rd.line++
		if rd.line == 1 {
			b = bytes.TrimPrefix(b, []byte("\xef\xbb\xbf"))
		}
		if !utf8.Valid(b) {
			return Example{}, rd.lineErr("not valid UTF-8")
		}
		trimmed := bytes.TrimSpace(b)
		if len(trimmed) == 0 {
			continue
		}
		if rd.jsonl < 0 {
			rd.jsonl = 0
			if trimmed[0] == '{' {
				rd.jsonl = 1
			}
		}
		if rd.jsonl == 0 {
			return Example{Kind: Plain, Response: strings.TrimRight(string(b), "\r\n"), Source: rd.name, Line: rd.line}, nil
		}
		ex, err := parseLine(trimmed)
		if err != nil {
			return Example{}, rd.lineErr("%v", err)
		}
		ex.Source, ex.Line = rd.name, rd.line
		return ex, nil
	}
	return Example{}, rd.err
}

// Line returns the number of the line read last.
func (rd *Reader) Line() int { return rd.line }

func (rd *Reader) lineErr(format string, args ...any) error {
	return &LineError{File: rd.name, Line: rd.line, Err: fmt.Errorf(format, args...)}
}

// LineError is a problem with one line of a file.
type LineError struct {
	File string
	Line int
	Err  error
}

func (e *LineError) Error() string { return fmt.Sprintf("%s:%d: %v", e.File, e.Line, e.Err) }

func (e *LineError) Unwrap() error { return e.Err }

// ReadAll reads every example of r; name is used in errors. It stops at the
// first bad line, and an input without examples is an error.
func ReadAll(r io.Reader, name string) ([]Example, error) {
	rd := NewReader(r, name)
	var out []Example
	for {
		ex, err := rd.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, err
		}
		out = append(out, ex)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%s: no examples", name)
	}
	return out, nil
}

// line is what a JSONL line may hold.
type line struct {
	Prompt     json.RawMessage `json:"prompt"`
	Response   *string         `json:"response"`
	Completion json.RawMessage `json:"completion"`
	Messages   json.RawMessage `json:"messages"`
	Text       *string         `json:"text"`
}

const shapes = `need "prompt" and "response" (or "completion"), "messages", or "text"`

func parseLine(b []byte) (Example, error) {
	var v line
	if err := json.Unmarshal(b, &v); err != nil {
		return Example{}, fmt.Errorf("bad JSON: %v", err)
	}
	has := func(r json.RawMessage) bool { return len(r) > 0 && string(r) != "null" }
	var ex Example
	for _, f := range []struct {
		name string
		raw  json.RawMessage
	}{{"prompt", v.Prompt}, {"completion", v.Completion}, {"messages", v.Messages}} {
		if has(f.raw) && f.raw[0] != '"' && f.raw[0] != '[' {
			return ex, fmt.Errorf("bad JSON: %q must be a string or a list of turns, found %.20s", f.name, f.raw)
		}
	}
	switch {
	case v.Text != nil:
		if has(v.Prompt) || v.Response != nil || has(v.Completion) || has(v.Messages) {
			return ex, errors.New(`"text" is a pretraining document: give it alone, without "prompt", "response", "completion" or "messages"`)
		}
		ex.Kind, ex.Response = Text, *v.Text
	case has(v.Messages):
		if has(v.Prompt) || v.Response != nil || has(v.Completion) {
			return ex, errors.New(`"messages" holds the whole chat: give it without "prompt", "response" or "completion"`)
		}
		turns, err := readTurns(v.Messages, "messages")
		if err != nil {
			return ex, err
		}
		if err := lastIsAssistant(turns, "messages"); err != nil {
			return ex, err
		}
		ex.Kind, ex.Context, ex.Response = Chat, turns[:len(turns)-1], turns[len(turns)-1].Content
	case v.Response != nil && has(v.Completion):
		return ex, errors.New(`give "response" or "completion", not both`)
	case v.Response != nil:
		p, err := promptString(v.Prompt, "response")
		if err != nil {
			return ex, err
		}
		ex.Kind, ex.Prompt, ex.Response = PromptResponse, p, *v.Response
	case has(v.Completion) && v.Completion[0] == '[':
		// TRL's conversational prompt-completion: turns before, one
		// assistant turn after.
		if !has(v.Prompt) || v.Prompt[0] != '[' {
			return ex, errors.New(`a "completion" list of turns needs a "prompt" list of turns`)
		}
		ctx, err := readTurns(v.Prompt, "prompt")
		if err != nil {
			return ex, err
		}
		comp, err := readTurns(v.Completion, "completion")
		if err != nil {
			return ex, err
		}
		if len(comp) != 1 {
			return ex, fmt.Errorf(`"completion" holds %d turns; want one assistant turn`, len(comp))
		}
		if err := lastIsAssistant(append(ctx, comp[0]), "completion"); err != nil {
			return ex, err
		}
		ex.Kind, ex.Context, ex.Response = Chat, ctx, comp[0].Content
	case has(v.Completion):
		var c string
		if err := json.Unmarshal(v.Completion, &c); err != nil {
			return ex, errors.New(`"completion" must be a string or a list of turns`)
		}
		p, err := promptString(v.Prompt, "completion")
		if err != nil {
			return ex, err
		}
		ex.Kind, ex.Prompt, ex.Response = PromptCompletion, p, c
	default:
		return ex, errors.New(shapes)
	}
	if ex.Response == "" {
		return ex, errors.New("empty response: there is nothing to score or train on")
	}
	return ex, nil
}

// promptString reads the string prompt that goes with a response or a
// string completion.
func promptString(raw json.RawMessage, with string) (string, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return "", fmt.Errorf(`%q needs a "prompt" (use "" for none)`, with)
	}
	var p string
	if err := json.Unmarshal(raw, &p); err != nil {
		return "", fmt.Errorf(`"prompt" must be a string when it goes with a string %q`, with)
	}
	return p, nil
}

// turn is a chat turn as files hold it: content is a string or a list of
// {"type": "text", "text": ...} parts.
type turn struct {
	Role    string          `json:"role"`
	Content json.RawMessage `json:"content"`
}

func readTurns(raw json.RawMessage, field string) ([]Message, error) {
	var turns []turn
	if err := json.Unmarshal(raw, &turns); err != nil {
		return nil, fmt.Errorf(`%q must be a list of {"role", "content"} turns: %v`, field, err)
	}
	if len(turns) == 0 {
		return nil, fmt.Errorf("%q is empty", field)
	}
	out := make([]Message, len(turns))
	for i, t := range turns {
		if t.Role == "" {
			return nil, fmt.Errorf(`%s[%d] has no "role"`, field, i)
		}
		c, err := content(t.Content)
		if err != nil {
			return nil, fmt.Errorf("%s[%d] (%s): %v", field, i, t.Role, err)
		}
		out[i] = Message{Role: t.Role, Content: c}
	}
	return out, nil
}

// content reads a turn's content: a string, or text parts joined.
func content(raw json.RawMessage) (string, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return "", errors.New(`no "content" (tool calls and other non-text turns are not supported)`)
	}
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s, nil
	}
	var parts []struct {
		Type string  `json:"type"`
		Text *string `json:"text"`
	}
	if err := json.Unmarshal(raw, &parts); err != nil {
		return "", errors.New(`"content" must be a string or a list of {"type": "text", "text": ...} parts`)
	}
	var b strings.Builder
	for _, p := range parts {
		if p.Type != "text" || p.Text == nil {
			return "", fmt.Errorf("a content part of type %q: only text parts are supported", p.Type)
		}
		b.WriteString(*p.Text)
	}
	return b.String(), nil
}

func lastIsAssistant(turns []Message, field string) error {
	last := turns[len(turns)-1]
	switch {
	case last.Role != "assistant":
		return fmt.Errorf(`the last turn of %q is the %s's: the response must be an assistant turn`, field, last.Role)
	case len(turns) < 2:
		return fmt.Errorf(`%q holds only the response: the chat needs a turn before it`, field)
	}
	return nil
}

// DataFormat documents SFT data files; the command line prints it in its
// help.
const DataFormat = `SFT data (--data): JSONL, one example per line, in any of the shapes
  {"prompt": "...", "response": "..."}
  {"prompt": "...", "completion": "..."}                (TRL)
  {"messages": [{"role": "user", "content": "..."}, ...,
                {"role": "assistant", "content": "..."}]}
  {"prompt": [turns], "completion": [{"role": "assistant", ...}]}   (TRL)
  {"text": "..."}                                       (a document: all scored)
  or plain text, one document per line; a UTF-8 byte-order mark is skipped
  and other fields are ignored. A chat's last turn, an assistant's, is the
  response; a server renders the turns before it with its chat template
  (with the generation prompt), capsel's own models as "role: content"
  lines followed by "assistant: ". On a server the end-of-turn token after
  the response is not scored; capsel's own models score their end token,
  which they are trained on.`
