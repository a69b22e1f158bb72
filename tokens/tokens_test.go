package tokens

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/guichet/guichet/openai"
)

func TestText(t *testing.T) {
	// cl100k_base counts, as OpenAI's cookbook gives them ("tiktoken is
	// great!" is [83 1609 5963 374 2294 0]).
	for _, c := range []struct {
		s    string
		want int64
	}{
		{"", 0},
		{"hello world", 2},
		{"tiktoken is great!", 6},
	} {
		if got := Text(c.s); got != c.want {
			t.Errorf("Text(%q) = %d, want %d", c.s, got, c.want)
		}
	}
}

func TestTextLongIsExtrapolated(t *testing.T) {
	s := strings.Repeat("the quick brown fox jumps over the lazy dog. ", 10000) // 450 kB
	exact := int64(10 * 10000)                                                  // 10 tokens a sentence
	got := Text(s)
	if got < exact*95/100 || got > exact*105/100 {
		t.Fatalf("Text(450 kB) = %d, want within 5%% of %d", got, exact)
	}
}

func TestChat(t *testing.T) {
	var msgs []openai.ChatMessage
	json.Unmarshal([]byte(`[{"role":"system","content":"hello world"},{"role":"user","content":[{"type":"text","text":"hello world"},{"type":"image_url","image_url":{"url":"data:"}}]}]`), &msgs)
	got := Chat(msgs, nil)
	want := int64(perReply + 2*perMessage + 2 + 2 + perImage)
	if got != want {
		t.Fatalf("Chat = %d, want %d", got, want)
	}
}

func TestInput(t *testing.T) {
	for _, c := range []struct {
		raw  string
		want int64
	}{
		{`"hello world"`, 2},
		{`["hello world","hello world"]`, 4},
		{`[1,2,3]`, 3},
		{`[[1,2],[3]]`, 3},
		{`null`, 0},
	} {
		if got := Input(json.RawMessage(c.raw)); got != c.want {
			t.Errorf("Input(%s) = %d, want %d", c.raw, got, c.want)
		}
	}
}

func BenchmarkChatShort(b *testing.B) {
	var msgs []openai.ChatMessage
	json.Unmarshal([]byte(`[{"role":"user","content":"Explain the fair sharing of GPUs between public services in one sentence."}]`), &msgs)
	Warm()
	for b.Loop() {
		Chat(msgs, nil)
	}
}

func TestCachedCountsAreTheSame(t *testing.T) {
	s := strings.Repeat("Réponds en français, avec des sources. ", 20)
	first, second := Text(s), Text(s)
	if first != second || first != count(s) {
		t.Fatalf("cached %d, then %d; counted %d", first, second, count(s))
	}
}
