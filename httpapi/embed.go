package httpapi

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"strings"

	"github.com/guichet/guichet"
	"github.com/guichet/guichet/openai"
	"github.com/guichet/guichet/routing"
	"github.com/guichet/guichet/tokens"
	"github.com/guichet/guichet/upstream"
)

// embedder calls the configured embedding model for the RAG service
// (documents being ingested, search queries) on behalf of a caller,
// through the same steps as POST /v1/embeddings: admit, schedule, send,
// settle. So the caller's limits and budget apply, the fair share holds
// (ingestion is batch work), and every call is a line in the ledger.
type embedder struct{ s *Server }

func (e embedder) Embed(ctx context.Context, caller *guichet.Principal, texts []string, background bool) ([][]float32, int64, error) {
	s := e.s
	x := s.beginFor(ctx, newRequestID(), caller, guichet.EndpointEmbeddings)
	model, gerr := s.resolve(x, s.cfg.RAG.EmbeddingModel)
	if gerr != nil {
		if gerr.Status == http.StatusNotFound {
			gerr = errorf(http.StatusForbidden, "model_forbidden", "your role may not use the embedding model %q that documents are searched with: ask your administrator", s.cfg.RAG.EmbeddingModel)
		}
		s.settle(x, gerr.Status)
		return nil, 0, gerr
	}
	x.countInput = func() int64 {
		var n int64
		for _, t := range texts {
			n += tokens.Uncached(t)
		}
		return n
	}
	h := http.Header{}
	if background {
		h.Set("X-Guichet-Class", "batch")
	}
	if gerr := s.admit(ctx, h, x, model, 0); gerr != nil {
		s.settle(x, gerr.Status)
		return nil, 0, gerr
	}
	if gerr := s.schedule(h, x, model, openai.Object{}); gerr != nil {
		s.settle(x, gerr.Status)
		return nil, 0, gerr
	}
	defer x.unschedule()

	var payload []byte
	call := routing.Call{
		Build: func(ctx context.Context, p *upstream.Provider) (*http.Request, error) {
			b, _ := json.Marshal(map[string]any{"model": p.ModelName, "input": texts, "encoding_format": "float"})
			return x.upstreamRequest(ctx, p, guichet.EndpointEmbeddings, bytes.NewReader(b), "application/json")
		},
		Check: func(resp *http.Response) (err error) {
			payload, err = readAnswer(resp.Body)
			return err
		},
	}
	ans, gerr := x.dispatch(model, call)
	if gerr != nil {
		s.settle(x, gerr.Status)
		return nil, 0, gerr
	}
	defer ans.Close()
	if ans.StatusCode >= 300 {
		body, _ := readAnswer(ans.Body)
		s.settle(x, ans.StatusCode)
		return nil, 0, errorf(http.StatusBadGateway, "embedding_failed", "the embedding model answered %d: %s", ans.StatusCode, upstreamMessage(body))
	}
	var out struct {
		Data []struct {
			Index     int       `json:"index"`
			Embedding []float32 `json:"embedding"`
		} `json:"data"`
	}
	if json.Unmarshal(payload, &out) != nil || len(out.Data) != len(texts) {
		s.settle(x, http.StatusBadGateway)
		return nil, 0, errorf(http.StatusBadGateway, "upstream_bad_answer", "the embedding model's answer could not be read")
	}
	vecs := make([][]float32, len(texts))
	for _, d := range out.Data {
		if d.Index < 0 || d.Index >= len(texts) || vecs[d.Index] != nil || len(d.Embedding) == 0 {
			s.settle(x, http.StatusBadGateway)
			return nil, 0, errorf(http.StatusBadGateway, "upstream_bad_answer", "the embedding model's answer has a missing or repeated vector")
		}
		vecs[d.Index] = d.Embedding
	}
	if u, ok := openai.UsageOf(payload); ok {
		x.usage = u
	} else {
		x.usage.PromptTokens = x.inputTokens()
		x.usage.TotalTokens = x.usage.PromptTokens
	}
	s.settle(x, http.StatusOK)
	return vecs, x.usage.PromptTokens, nil
}

// upstreamMessage is the error message of a model server's answer, short.
func upstreamMessage(body []byte) string {
	var v struct {
		Error struct {
			Message string `json:"message"`
		} `json:"error"`
		Message string `json:"message"`
		Detail  string `json:"detail"`
	}
	json.Unmarshal(body, &v)
	msg := strings.TrimSpace(v.Error.Message + v.Message + v.Detail)
	if msg == "" {
		msg = "no message"
	}
	if len(msg) > 300 {
		msg = msg[:300] + "…"
	}
	return msg
}
