// Package identity is the authenticate step: API keys, and the in-memory
// directory that turns a key into a Principal without a database round
// trip in steady state.
package identity

import (
	"crypto/rand"
	"crypto/sha256"
	"strings"

	"github.com/guichet/guichet"
)

const (
	keyScheme     = "sk-"
	keyChars      = 43 // base62: 62^43 > 2^256, so a key carries 256 random bits
	keyPrefixSize = len(keyScheme) + 8
	base62        = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
)

// NewKey makes a fresh API key: the secret (shown once), the public
// prefix lists display, and the hash that is all the store keeps.
func NewKey() (secret, prefix string, hash guichet.KeyHash) {
	var b strings.Builder
	b.Grow(len(keyScheme) + keyChars)
	b.WriteString(keyScheme)
	buf := make([]byte, 64)
	for n := 0; n < keyChars; {
		rand.Read(buf)
		for _, c := range buf {
			// 248 = 4×62: rejecting larger bytes keeps every digit uniform.
			if c < 248 && n < keyChars {
				b.WriteByte(base62[c%62])
				n++
			}
		}
	}
	secret = b.String()
	return secret, secret[:keyPrefixSize], HashKey(secret)
}

// HashKey is how a key is stored and looked up.
func HashKey(secret string) guichet.KeyHash { return sha256.Sum256([]byte(secret)) }

// Masked is how lists show a key: its prefix, never the secret.
func Masked(prefix string) string { return prefix + "…" }
