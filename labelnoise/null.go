package labelnoise

import (
	"hash/fnv"
	"math/rand/v2"
	"unicode"
)

// NullPrompt returns prompt with its letters and digits shuffled among
// their own positions (spaces, punctuation and any template around them stay
// where they are): a prompt of the same shape that the model cannot know the
// answer to, for the null set. The shuffle is a function of the prompt and
// seed, so a null set is reproducible.
//
// Where every input has an answer (a rule that applies to any word), the
// shuffled prompts are answerable too; Analyze sees that and does not use
// them (see NullCheck).
func NullPrompt(prompt string, seed uint64) string {
	r := []rune(prompt)
	var pos []int
	for i, c := range r {
		if unicode.IsLetter(c) || unicode.IsDigit(c) {
			pos = append(pos, i)
		}
	}
	h := fnv.New64a()
	h.Write([]byte(prompt))
	rng := rand.New(rand.NewPCG(seed, h.Sum64()))
	vals := make([]rune, len(pos))
	for i, p := range pos {
		vals[i] = r[p]
	}
	rng.Shuffle(len(vals), func(i, j int) { vals[i], vals[j] = vals[j], vals[i] })
	for i, p := range pos {
		r[p] = vals[i]
	}
	return string(r)
}
