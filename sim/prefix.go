package sim

import (
	"sync"
	"time"
)

// A replica's prefix cache, after vLLM's automatic prefix caching: a
// prompt's tokens are cut into blocks of BlockTokens; each full block is
// keyed by a hash of its tokens chained on the key of the block before it,
// so a block can only hit when every block before it hits too. Only full
// blocks are cached, and, like vLLM, at least the prompt's last token is
// always computed (its logits give the first output token): the hit stops
// short of the last block when the prompt is an exact number of blocks.
//
// Tokens are the simulator's (see tokens.go), identified by a hash of
// their text, so the cache agrees with CountTokens and usage.prompt_tokens:
//
//   - completions: the prompt's tokens, or its token ids;
//   - chat: the messages rendered in order, each as a start token, its
//     role, a separator, its text parts' tokens, 64 tokens per image
//     (derived from the image's URL) and an end token: the 4 template
//     tokens the chat usage counts per message.
//
// Block keys start from a hash of the served name: two names served by one
// simulator share its slots but not their cached blocks, as if they were
// LoRA adapters of one base model.

// blockHasher turns a token stream into chained block keys.
type blockHasher struct {
	size   int
	cur    uint64 // the hash of the block being filled, seeded by its parent's key
	n      int    // tokens in the block being filled
	tokens int    // tokens seen
	blocks []uint64
}

func newBlockHasher(size int, model string) blockHasher {
	return blockHasher{size: size, cur: splitmix64(fnv64(fnv64(fnvOffset, "guichet-sim prefix\x00"), model))}
}

func (h *blockHasher) add(tok uint64) {
	h.cur = fnv64Uint(h.cur, tok)
	h.n++
	h.tokens++
	if h.n == h.size {
		h.blocks = append(h.blocks, h.cur)
		h.cur = splitmix64(h.cur) // the next block chains this one
		h.n = 0
	}
}

// text adds text's tokens, as CountTokens cuts them.
func (h *blockHasher) text(s string) {
	for i := 0; ; {
		end, ok := scanToken(s, i)
		if !ok {
			return
		}
		h.add(fnv64(fnvOffset, s[i:end]))
		i = end
	}
}

// Token identities outside text.
var (
	tokChatStart = fnv64(fnvOffset, "\x00<|start|>")
	tokChatSep   = fnv64(fnvOffset, "\x00<|sep|>")
	tokChatEnd   = fnv64(fnvOffset, "\x00<|end|>")
	tokImageSalt = fnv64(fnvOffset, "\x00<|image|>")
	tokIDSalt    = fnv64(fnvOffset, "\x00<|id|>")
)

func (h *blockHasher) tokenID(id int64) { h.add(fnv64Uint(tokIDSalt, uint64(id))) }

// image adds an image's imageTokens tokens, derived from its URL.
func (h *blockHasher) image(url string) {
	base := fnv64(tokImageSalt, url)
	for k := range imageTokens {
		h.add(splitmix64(base + uint64(k)))
	}
}

// promptBlocks are one prompt's full block keys and its token count.
type promptBlocks struct {
	blocks []uint64
	tokens int
}

func (h *blockHasher) result() promptBlocks {
	return promptBlocks{blocks: h.blocks, tokens: h.tokens}
}

// prefixCache is an LRU set of block keys, bounded by a number of blocks.
// Entries live in a slice linked by indices: no allocation once full.
type prefixCache struct {
	mu    sync.Mutex
	cap   int
	index map[uint64]int32
	nodes []cacheNode // nodes[0] is the sentinel: its next is the most recent
}

type cacheNode struct {
	key        uint64
	prev, next int32
}

func newPrefixCache(blocks int) *prefixCache {
	return &prefixCache{
		cap:   blocks,
		index: make(map[uint64]int32, min(blocks, 1<<16)),
		nodes: make([]cacheNode, 1, min(blocks, 1<<16)+1),
	}
}

func (c *prefixCache) unlink(i int32) {
	n := &c.nodes[i]
	c.nodes[n.prev].next = n.next
	c.nodes[n.next].prev = n.prev
}

func (c *prefixCache) pushFront(i int32) {
	n := &c.nodes[i]
	n.prev, n.next = 0, c.nodes[0].next
	c.nodes[n.next].prev = i
	c.nodes[0].next = i
}

// touch makes key the most recently used block, inserting it (and
// evicting the least recently used block when full) if it is absent.
func (c *prefixCache) touch(key uint64) {
	if i, ok := c.index[key]; ok {
		c.unlink(i)
		c.pushFront(i)
		return
	}
	var i int32
	if len(c.nodes)-1 < c.cap {
		c.nodes = append(c.nodes, cacheNode{})
		i = int32(len(c.nodes) - 1)
	} else {
		i = c.nodes[0].prev // the least recently used
		c.unlink(i)
		delete(c.index, c.nodes[i].key)
	}
	c.nodes[i].key = key
	c.index[key] = i
	c.pushFront(i)
}

// lookup counts the leading blocks of p that are cached (at most
// maxHit), then caches all of p's blocks. They are touched last block
// first, so a prompt's head outlives its tail, as in vLLM, which frees a
// request's blocks in reverse order.
func (c *prefixCache) lookup(blocks []uint64, maxHit int) (hits int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for hits < len(blocks) && hits < maxHit {
		if _, ok := c.index[blocks[hits]]; !ok {
			break
		}
		hits++
	}
	for i := len(blocks) - 1; i >= 0; i-- {
		c.touch(blocks[i])
	}
	return hits
}

// prefillTime looks job's prompts up in the prefix cache when it is on (the
// moment the request is scheduled, as vLLM does), accounts the queried and
// hit tokens, and returns the time to first token: TTFT plus
// PrefillPerToken for every prompt token not found in the cache.
func (s *Server) prefillTime(job *genJob) (ttft time.Duration) {
	uncached := job.prompt
	if s.cache != nil {
		m := job.model
		bt := s.cfg.BlockTokens
		queried, hit := 0, 0
		for _, p := range job.prefix {
			h := s.cache.lookup(p.blocks, (p.tokens-1)/bt) * bt
			queried += p.tokens
			hit += h
			// Like vLLM, a completions request with several prompts
			// reports the cached tokens of its last one.
			job.cached = h
		}
		uncached = max(job.prompt-hit, 0)
		m.cacheQueries.Add(int64(queried))
		m.cacheHits.Add(int64(hit))
		s.cacheQueries.Add(int64(queried))
		s.cacheHits.Add(int64(hit))
	}
	return s.cfg.TTFT + time.Duration(uncached)*s.cfg.PrefillPerToken
}
