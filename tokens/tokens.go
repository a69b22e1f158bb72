// Package tokens estimates a request's input tokens before it is sent,
// offline (the cl100k_base vocabulary is compiled into the binary), for
// token limits and budget reservations. Open-weights models have their own
// tokenizers, so this is an estimate; the provider's real usage corrects it
// when the request settles.
package tokens

import (
	"encoding/json"
	"hash/maphash"
	"sync"

	"github.com/tiktoken-go/tokenizer"

	"github.com/guichet/guichet/openai"
)

// exactBytes is how much text is tokenized exactly; longer text is
// extrapolated from that part, so a huge prompt costs bounded CPU.
const exactBytes = 32 << 10

// Per-message framing, as OpenAI counts it for chat models.
const (
	perMessage = 3
	perReply   = 3
	perImage   = 85 // a low-detail image tile; vision models vary widely
)

var codec = sync.OnceValue(func() tokenizer.Codec {
	c, err := tokenizer.Get(tokenizer.Cl100kBase)
	if err != nil {
		panic("tokens: the embedded cl100k_base vocabulary failed to load: " + err.Error())
	}
	return c
})

// Warm loads the vocabulary now (about 20 ms) rather than on the first
// request that needs it.
func Warm() { codec() }

// Counts of recent texts: system prompts and conversation histories come
// back with every request of a chat, and tokenizing is the costly part of
// admission (about 1 µs per 10 bytes).
var (
	cacheSeed = maphash.MakeSeed()
	cacheMu   sync.Mutex
	cache     = make(map[uint64]int64, cacheSize)
)

const (
	cacheSize     = 8192
	cacheMinBytes = 64 // shorter texts cost less to count than to hash and look up
)

// Text estimates the tokens of s.
func Text(s string) int64 {
	if len(s) < cacheMinBytes {
		return count(s)
	}
	h := maphash.String(cacheSeed, s)
	cacheMu.Lock()
	n, ok := cache[h]
	cacheMu.Unlock()
	if ok {
		return n
	}
	n = count(s)
	cacheMu.Lock()
	if len(cache) >= cacheSize {
		for k := range cache { // evict an arbitrary tenth: cheap, and enough for an estimate
			delete(cache, k)
			if len(cache) < cacheSize*9/10 {
				break
			}
		}
	}
	cache[h] = n
	cacheMu.Unlock()
	return n
}

// Uncached estimates the tokens of s without the cache: for one-off
// texts in bulk (documents being chunked and embedded), which would
// otherwise evict the prompts that do come back.
func Uncached(s string) int64 { return count(s) }

func count(s string) int64 {
	if len(s) == 0 {
		return 0
	}
	head := s
	if len(s) > exactBytes {
		head = s[:exactBytes]
	}
	n, err := codec().Count(head)
	if err != nil {
		n = len(head) // every token is at least one byte: an upper bound
	}
	if len(head) < len(s) {
		return int64(float64(n) * float64(len(s)) / float64(len(head)))
	}
	return int64(n)
}

// Chat estimates the input tokens of a chat request: messages (text parts,
// images, tool calls) and tool definitions.
func Chat(messages []openai.ChatMessage, tools json.RawMessage) int64 {
	n := int64(perReply)
	for _, m := range messages {
		n += perMessage + content(m.Content) + Text(m.Name)
		if len(m.ToolCalls) > 0 {
			n += Text(string(m.ToolCalls))
		}
	}
	if len(tools) > 0 && string(tools) != "null" {
		n += Text(string(tools))
	}
	return n
}

func content(raw json.RawMessage) int64 {
	if len(raw) == 0 {
		return 0
	}
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return Text(s)
	}
	var parts []struct {
		Type string `json:"type"`
		Text string `json:"text"`
	}
	if json.Unmarshal(raw, &parts) != nil {
		return Text(string(raw))
	}
	var n int64
	for _, p := range parts {
		switch p.Type {
		case "text":
			n += Text(p.Text)
		case "image_url", "input_image":
			n += perImage
		default:
			n += perImage // audio and files: a token floor, corrected by the real usage
		}
	}
	return n
}

// Input estimates an embeddings input or completions prompt: a string, a
// list of strings, a list of token ids or a list of such lists.
func Input(raw json.RawMessage) int64 {
	if len(raw) == 0 {
		return 0
	}
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return Text(s)
	}
	var list []json.RawMessage
	if json.Unmarshal(raw, &list) != nil {
		return Text(string(raw))
	}
	var n int64
	for _, item := range list {
		switch {
		case len(item) > 0 && item[0] == '"':
			n += Input(item)
		case len(item) > 0 && item[0] == '[':
			n += Input(item)
		default:
			n++ // a token id
		}
	}
	return n
}
