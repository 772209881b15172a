package sipside

import (
	"encoding/base32"
	"encoding/binary"
	"math/rand/v2"
)

var tokenEncoding = base32.StdEncoding.WithPadding(base32.NoPadding)

// token returns 128 random bits as 26 base32 characters, for tags (RFC 3261
// §19.3: at least 32 random bits), branches and Call-IDs. They must be
// unique and not guessable from outside, but they protect nothing secret:
// they come from math/rand/v2's runtime generator (ChaCha8, seeded from the
// operating system), which costs no system call, where crypto/rand made a
// getrandom call for each (three per MESSAGE) on kernels without its vDSO.
func token() string {
	var b [16]byte
	binary.LittleEndian.PutUint64(b[:8], rand.Uint64())
	binary.LittleEndian.PutUint64(b[8:], rand.Uint64())
	var out [26]byte // tokenEncoding.EncodedLen(16); one allocation, not EncodeToString's two
	tokenEncoding.Encode(out[:], b[:])
	return string(out[:])
}
