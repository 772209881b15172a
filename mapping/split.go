package mapping

import "unicode/utf8"

// SplitUTF8 splits body into parts of at most limit bytes each, cutting only
// between UTF-8 characters (IM-12c), for the local chunking mode of large
// X->S messages (D1, IM-12). The parts alias body, none is empty, and their
// concatenation is body. A limit below utf8.UTFMax is raised to it so that
// every part holds at least one character. Where body is not valid UTF-8 the
// cut falls at limit. An empty body gives no parts.
func SplitUTF8(body []byte, limit int) [][]byte {
	if len(body) == 0 {
		return nil
	}
	if limit < utf8.UTFMax {
		limit = utf8.UTFMax
	}
	parts := make([][]byte, 0, (len(body)+limit-1)/limit)
	for len(body) > limit {
		// A byte that is not a continuation byte starts a character, so
		// cutting before it is safe. A valid character has at most
		// UTFMax-1 continuation bytes.
		cut := limit
		for cut > limit-utf8.UTFMax+1 && !utf8.RuneStart(body[cut]) {
			cut--
		}
		if !utf8.RuneStart(body[cut]) {
			cut = limit
		}
		parts = append(parts, body[:cut:cut])
		body = body[cut:]
	}
	return append(parts, body)
}
