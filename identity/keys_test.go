package identity

import (
	"strings"
	"testing"
)

func TestNewKey(t *testing.T) {
	seen := map[string]bool{}
	for i := 0; i < 200; i++ {
		secret, prefix, hash := NewKey()
		if !strings.HasPrefix(secret, "sk-") || len(secret) != 3+43 {
			t.Fatalf("key %q: want sk- and 43 base62 characters", secret)
		}
		if strings.Trim(secret[3:], base62) != "" {
			t.Fatalf("key %q has characters outside base62", secret)
		}
		if !strings.HasPrefix(secret, prefix) || len(prefix) != 11 {
			t.Fatalf("prefix %q of %q", prefix, secret)
		}
		if hash != HashKey(secret) {
			t.Fatal("hash differs from HashKey(secret)")
		}
		if seen[secret] {
			t.Fatal("duplicate key")
		}
		seen[secret] = true
	}
}
