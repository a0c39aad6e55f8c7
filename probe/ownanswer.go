package probe

import (
	"errors"
	"strings"

	"github.com/capsel/capsel/labelnoise"
)

// OwnAnswerFormat documents the "own_answer" field that every format's lines
// may carry; the command line prints it in its help.
const OwnAnswerFormat = `own_answer: any line of one sequence may carry the model's own greedy
  answer to the example's prompt, as a top-level field (the server caches
  of selector probe --server write it):
    "own_answer": {"text": " Paris.", "logprobs": [-0.51, -1.2, -0.02],
                   "agree": false, "token_ids": [12366, 13, 128001],
                   "finish_reason": "stop"}
  logprobs   required: the log-prob of each generated token (the end token
             included when the model stopped), in order
  agree      required: the answer begins with the label's tokens, token for
             token (a capsel checkpoint also needs its end token)
  text, token_ids, finish_reason   optional, for people
  With own answers the noise-aware analysis uses method greedy; --greedy=false
  (or lines without them) the teacher-forced approximation from top-k lists.`

// ownAnswer is an "own_answer" read from a line, its log-probs in the
// parser's buffers.
type ownAnswer struct {
	present  bool
	text     string
	lp0, lp1 int // the log-probs are b.own[lp0:lp1]
	agree    bool
}

// readOwnAnswer reads the "own_answer" object at the scanner's position.
func readOwnAnswer(s *scanner, ar *arena, b *bufs, oa *ownAnswer) {
	if oa.present {
		s.fail(`field "own_answer" appears twice`)
		return
	}
	if s.null() {
		return
	}
	oa.present = true
	if !s.beginObject() {
		return
	}
	haveLP, haveAgree := false, false
	for s.nextKey() {
		switch string(s.key) {
		case "text":
			if !s.null() {
				oa.text = strings.Clone(ar.str(s))
			}
		case "logprobs":
			oa.lp0 = len(b.own)
			nulls := false
			b.own = s.floats(b.own, func(int) { nulls = true })
			oa.lp1 = len(b.own)
			if nulls && s.err == nil {
				s.fail("own_answer.logprobs holds a null: every generated token has a log-prob")
			}
			haveLP = true
		case "agree":
			oa.agree, haveAgree = s.boolOrBit(), true
		default:
			s.skip()
		}
	}
	if s.err == nil && (!haveLP || !haveAgree) {
		s.fail(`own_answer needs "logprobs" and "agree"`)
	}
}

// answer returns the own answer for a sequence of the line (nil when the
// line has none), or an error when the line holds n sequences, which one
// answer cannot stand for.
func (oa *ownAnswer) answer(b *bufs, n int) (*labelnoise.Answer, error) {
	if !oa.present {
		return nil, nil
	}
	if n != 1 {
		return nil, errors.New(`"own_answer" on a line of several sequences: save one sequence per line`)
	}
	if oa.lp1 == oa.lp0 {
		return nil, errors.New("own_answer.logprobs is empty")
	}
	return &labelnoise.Answer{Text: oa.text, LogP: b.own[oa.lp0:oa.lp1:oa.lp1], Agree: oa.agree}, nil
}
