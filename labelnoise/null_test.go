package labelnoise

import (
	"slices"
	"testing"
	"unicode"

	"github.com/capsel/capsel/sftdata"
)

// ShuffleText permutes letters and digits among their positions and leaves
// everything else; the same seed gives the same text.
func TestShuffleText(t *testing.T) {
	in := "Q: the capital of Fr4nce?\n<|eot_id|> é 7"
	out := ShuffleText(in, 1)
	if out == in || ShuffleText(in, 1) != out || ShuffleText(in, 2) == out {
		t.Errorf("shuffle %q → %q: want a change, the same for the same seed, another for another", in, out)
	}
	ri, ro := []rune(in), []rune(out)
	count := map[rune]int{}
	for i := range ri {
		isAlnum := unicode.IsLetter(ri[i]) || unicode.IsDigit(ri[i])
		if isAlnum != (unicode.IsLetter(ro[i]) || unicode.IsDigit(ro[i])) || !isAlnum && ri[i] != ro[i] {
			t.Errorf("position %d: %q became %q", i, ri[i], ro[i])
		}
		count[ri[i]]++
		count[ro[i]]--
	}
	for r, c := range count {
		if c != 0 {
			t.Errorf("%q: %d more in the input than in the output", r, c)
		}
	}
	if ShuffleText("a", 1) != "a" || ShuffleText("", 1) != "" {
		t.Error("nothing to shuffle, yet the text changed")
	}
}

// A chat's null prompt shuffles its turns' contents and keeps the roles; a
// pretraining document has none.
func TestNullExample(t *testing.T) {
	chat := sftdata.Example{Kind: sftdata.Chat, Context: []sftdata.Message{{Role: "system", Content: "Be brief."}, {Role: "user", Content: "Capital of Italy?"}}, Response: "Rome"}
	n, ok := NullExample(chat, 3)
	if !ok || n.Response != "Rome" || n.Context[0].Role != "system" || n.Context[1].Role != "user" || n.Context[1].Content == chat.Context[1].Content || chat.Context[1].Content != "Capital of Italy?" {
		t.Errorf("chat null %+v (original %+v)", n, chat)
	}
	if _, ok := NullExample(sftdata.Example{Kind: sftdata.Text, Response: "a document"}, 3); ok {
		t.Error("a pretraining document got a null prompt")
	}
	p := sftdata.Example{Kind: sftdata.PromptResponse, Prompt: "mhdp=", Response: "ebzx"}
	n, ok = NullExample(p, 3)
	if !ok || n.Prompt == p.Prompt || n.Prompt[4] != '=' || n.Response != p.Response {
		t.Errorf("null %+v", n)
	}
}

// PickNull takes all examples up to the cap, else the cap's worth by hash,
// the same every time and not the first ones.
func TestPickNull(t *testing.T) {
	key := func(i int) string { return string(rune('a'+i%26)) + string(rune('A'+i/26)) }
	all := PickNull(50, 100, key)
	some := PickNull(500, 100, key)
	again := PickNull(500, 100, key)
	none := PickNull(50, -1, key)
	count := func(b []bool) (n int) {
		for _, x := range b {
			if x {
				n++
			}
		}
		return n
	}
	first := 0
	for _, x := range some[:100] {
		if x {
			first++
		}
	}
	if count(all) != 50 || count(some) != 100 || count(none) != 0 || !slices.Equal(some, again) || first == 100 {
		t.Errorf("picked %d of 50, %d of 500 (%d among the first 100), %d with none", count(all), count(some), first, count(none))
	}
}
