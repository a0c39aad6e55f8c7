package labelnoise

import (
	"hash/fnv"
	"math/rand/v2"
	"slices"
	"strconv"
	"unicode"

	"github.com/capsel/capsel/sftdata"
)

// NullRecipe documents how the null set is built; the command line prints
// it in its help and docs/probe.md repeats it with a Python version.
// Where every input has an answer (a rule that applies to any word), the
// shuffled prompts are answerable too; Analyze sees that and does not use
// them (see NullCheck).
const NullRecipe = `The null set is the model on prompts it cannot know: each prompt with its
letters and digits shuffled among their positions (spaces, punctuation,
special tokens and the chat template untouched; a chat's turns are
shuffled inside their contents, roles kept), scored and answered exactly
like the real examples, with the real responses as labels. Examples with
nothing to shuffle (pretraining text, a prompt of one letter) have no null
prompt.`

// ShuffleText returns text with its letters and digits (Unicode letters and
// decimal digits) permuted among their positions by a seeded shuffle;
// every other character stays where it was.
func ShuffleText(text string, seed uint64) string {
	rs := []rune(text)
	var pos []int
	for i, r := range rs {
		if unicode.IsLetter(r) || unicode.IsDigit(r) {
			pos = append(pos, i)
		}
	}
	if len(pos) < 2 {
		return text
	}
	vals := make([]rune, len(pos))
	for k, i := range pos {
		vals[k] = rs[i]
	}
	rng := rand.New(rand.NewPCG(seed, 0x6e756c6c))
	rng.Shuffle(len(vals), func(a, b int) { vals[a], vals[b] = vals[b], vals[a] })
	for k, i := range pos {
		rs[i] = vals[k]
	}
	return string(rs)
}

// textSeed derives the shuffle's seed of one example from the run's seed
// and the example's text, so that an example's null prompt is the same in
// every run (a resumed server run finds it in its cache).
func textSeed(seed uint64, parts ...string) uint64 {
	h := fnv.New64a()
	h.Write([]byte(strconv.FormatUint(seed, 10)))
	for _, p := range parts {
		h.Write([]byte{0})
		h.Write([]byte(p))
	}
	return h.Sum64()
}

// NullExample returns the null version of ex (see NullRecipe): its prompt,
// or each turn of a chat's context, shuffled by ShuffleText with a seed
// from seed and the example's text, the response unchanged. ok is false
// when ex has no prompt to shuffle or the shuffle changes nothing.
func NullExample(ex sftdata.Example, seed uint64) (null sftdata.Example, ok bool) {
	null = ex
	switch ex.Kind {
	case sftdata.Chat:
		null.Context = slices.Clone(ex.Context)
		for i, m := range null.Context {
			null.Context[i].Content = ShuffleText(m.Content, textSeed(seed, m.Role, m.Content, strconv.Itoa(i)))
			ok = ok || null.Context[i].Content != m.Content
		}
	case sftdata.PromptResponse, sftdata.PromptCompletion:
		null.Prompt = ShuffleText(ex.Prompt, textSeed(seed, ex.Prompt))
		ok = null.Prompt != ex.Prompt
	}
	return null, ok
}

// PickNull chooses which of n examples get a null prompt when at most max
// may: all of them when n ≤ max, else the max whose key hashes lowest, so
// that the choice does not follow the data's order and is the same every
// run. key(i) names example i (its line, say). max < 0 picks none.
func PickNull(n, max int, key func(i int) string) []bool {
	pick := make([]bool, n)
	if max < 0 {
		return pick
	}
	if n <= max {
		for i := range pick {
			pick[i] = true
		}
		return pick
	}
	type hk struct {
		h uint64
		i int
	}
	hs := make([]hk, n)
	for i := range hs {
		hs[i] = hk{textSeed(0, key(i)), i}
	}
	slices.SortFunc(hs, func(a, b hk) int {
		switch {
		case a.h < b.h:
			return -1
		case a.h > b.h:
			return 1
		}
		return a.i - b.i
	})
	for _, x := range hs[:max] {
		pick[x.i] = true
	}
	return pick
}

// DefaultNullPrompts is how many null prompts the sources that build a null
// set from the data (live servers, capsel checkpoints) score by default: the
// null set only estimates a share (the false-positive rate α), which 1,000
// prompts pin to within ±1.4 points at α = 5 %.
const DefaultNullPrompts = 1000
