package probe

// span is a byte range of the line being parsed; start < 0 means none.
type span struct{ start, end int32 }

// topObject reads a top-k object {"token": logprob, …}, appending one entry
// per member to flat and the member name's place in the line to spans. The
// names are not copied: an entry's Token stays empty and fillNames makes it
// from the span later, for the few entries that are kept. A name with
// escapes is decoded into the arena at once (and its span is empty).
func (s *scanner) topObject(ar *arena, flat []TopToken, spans []span) ([]TopToken, []span) {
	if s.peek() != '{' {
		s.failAt("want an object")
		return flat, spans
	}
	s.i++
	if s.peek() == '}' {
		s.i++
		return flat, spans
	}
	b := s.b
	for {
		if s.peek() != '"' {
			s.failAt("want a string")
			return flat, spans
		}
		j := s.i + 1
		for j < len(b) && b[j] != '"' && b[j] != '\\' {
			j++
		}
		var t TopToken
		sp := span{-1, -1}
		if j+1 < len(b) && b[j] == '"' && b[j+1] == ':' { // the usual "name":
			sp = span{int32(s.i + 1), int32(j)}
			s.i = j + 2
		} else {
			if j < len(b) && b[j] == '"' {
				sp = span{int32(s.i + 1), int32(j)}
				s.i = j + 1
			} else {
				t.Token = ar.str(s)
			}
			if s.peek() != ':' {
				s.failAt("want ':'")
				return flat, spans
			}
			s.i++
		}
		t.LogProb = s.num()
		if s.err != nil {
			return flat, spans
		}
		flat = append(flat, t)
		spans = append(spans, sp)
		c := byte(0)
		if s.i < len(b) {
			c = b[s.i]
		}
		if c != ',' && c != '}' {
			c = s.peek()
		}
		switch c {
		case ',':
			s.i++
		case '}':
			s.i++
			return flat, spans
		default:
			s.failAt("want ',' or '}'")
			return flat, spans
		}
	}
}

// lazyString reads a string: one without escapes is left in the line and
// its span returned (with ""), one with escapes is decoded into the arena.
func (s *scanner) lazyString(ar *arena) (string, span) {
	if s.peek() != '"' {
		s.failAt("want a string")
		return "", span{-1, -1}
	}
	b := s.b
	j := s.i + 1
	for j < len(b) && b[j] != '"' && b[j] != '\\' {
		j++
	}
	if j < len(b) && b[j] == '"' {
		sp := span{int32(s.i + 1), int32(j)}
		s.i = j + 1
		return "", sp
	}
	return ar.str(s), span{-1, -1}
}

// fillNames sets the Token of the entries of list whose names topObject
// left in the line.
func fillNames(list []TopToken, spans []span, line []byte) {
	for j := range list {
		if sp := spans[j]; list[j].Token == "" && sp.start >= 0 {
			list[j].Token = string(line[sp.start:sp.end])
		}
	}
}
