package httpapi

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"sort"

	"github.com/guichet/guichet"
	"github.com/guichet/guichet/openai"
	"github.com/guichet/guichet/routing"
	"github.com/guichet/guichet/tokens"
	"github.com/guichet/guichet/upstream"
)

// RerankResult is one ranked document (Cohere shape).
type RerankResult struct {
	Index          int     `json:"index"`
	RelevanceScore float64 `json:"relevance_score"`
}

// RerankResponse is the /v1/rerank answer (Cohere shape).
type RerankResponse struct {
	ID      string         `json:"id"`
	Object  string         `json:"object" enum:"list"`
	Model   string         `json:"model"`
	Results []RerankResult `json:"results"`
	Usage   RerankUsage    `json:"usage"`
}

// RerankUsage counts the tokens a rerank used, when the provider says.
type RerankUsage struct {
	PromptTokens int64 `json:"prompt_tokens"`
	TotalTokens  int64 `json:"total_tokens"`
}

// legacyRerank is OpenGateLLM 0.1's answer, for its {prompt, input} shape.
type legacyRerank struct {
	ID     string         `json:"id"`
	Object string         `json:"object"`
	Data   []legacyResult `json:"data"`
	Usage  RerankUsage    `json:"usage"`
}

type legacyResult struct {
	Object string  `json:"object"`
	Score  float64 `json:"score"`
	Index  int     `json:"index"`
}

// handleRerank translates between the public shapes and each server's
// rerank API: TEI's /rerank {query, texts}, vLLM's /v1/rerank.
func (s *Server) handleRerank() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		x := s.begin(w, r, guichet.EndpointRerank)
		body, gerr := s.readBody(w, r)
		if gerr != nil {
			s.fail(w, x, gerr)
			return
		}
		req, gerr := openai.DecodeRerank(body)
		if gerr != nil {
			s.fail(w, x, gerr)
			return
		}
		model, gerr := s.resolve(x, req.Model)
		if gerr != nil {
			s.fail(w, x, gerr)
			return
		}
		estimate := func() int64 {
			n := tokens.Text(req.Query)
			for _, d := range req.Documents {
				n += tokens.Text(d)
			}
			return n
		}
		x.countInput = estimate
		if gerr := s.admit(r.Context(), w.Header(), x, model, 0); gerr != nil {
			s.fail(w, x, gerr)
			return
		}
		if gerr := s.schedule(r.Header, x, model, openai.Object{}); gerr != nil {
			s.fail(w, x, gerr)
			return
		}
		defer x.unschedule() // after the upstream answer is closed: its slot is free
		var payload []byte
		call := routing.Call{
			Build: func(ctx context.Context, p *upstream.Provider) (*http.Request, error) {
				var v any
				if p.Type == guichet.ProviderTEI {
					v = map[string]any{"query": req.Query, "texts": req.Documents, "raw_scores": false}
				} else {
					v = map[string]any{"model": p.ModelName, "query": req.Query, "documents": req.Documents}
				}
				b, _ := json.Marshal(v)
				return x.upstreamRequest(ctx, p, guichet.EndpointRerank, bytes.NewReader(b), "application/json")
			},
			Check: func(resp *http.Response) (err error) {
				payload, err = readAnswer(resp.Body)
				return err
			},
		}
		ans := s.send(w, r, x, model, call)
		if ans == nil {
			return
		}
		defer ans.Close()
		results, usage, ok := parseRerank(ans.Provider.Type, payload, len(req.Documents))
		if !ok {
			s.fail(w, x, errorf(http.StatusBadGateway, "upstream_bad_answer", "the model server's rerank answer could not be read"))
			return
		}
		sort.SliceStable(results, func(i, j int) bool { return results[i].RelevanceScore > results[j].RelevanceScore })
		if req.TopN > 0 && req.TopN < len(results) {
			results = results[:req.TopN]
		}
		x.usage.PromptTokens, x.usage.TotalTokens = usage.PromptTokens, usage.TotalTokens
		id := "rerank-" + x.id
		if req.Legacy {
			out := legacyRerank{ID: id, Object: "list", Usage: usage, Data: make([]legacyResult, len(results))}
			for i, r := range results {
				out.Data[i] = legacyResult{Object: "rerank", Score: r.RelevanceScore, Index: r.Index}
			}
			writeJSON(w, http.StatusOK, out)
		} else {
			writeJSON(w, http.StatusOK, RerankResponse{ID: id, Object: "list", Model: model.Name, Results: results, Usage: usage})
		}
		s.settle(x, http.StatusOK)
	})
}

// parseRerank reads TEI's [{index, score}] or vLLM's {results, usage}.
func parseRerank(t guichet.ProviderType, payload []byte, docs int) ([]RerankResult, RerankUsage, bool) {
	var usage RerankUsage
	var results []RerankResult
	if t == guichet.ProviderTEI {
		var tei []struct {
			Index int     `json:"index"`
			Score float64 `json:"score"`
		}
		if json.Unmarshal(payload, &tei) != nil {
			return nil, usage, false
		}
		for _, r := range tei {
			results = append(results, RerankResult{Index: r.Index, RelevanceScore: r.Score})
		}
	} else {
		var v struct {
			Results []RerankResult `json:"results"`
			Usage   struct {
				PromptTokens int64 `json:"prompt_tokens"`
				TotalTokens  int64 `json:"total_tokens"`
			} `json:"usage"`
		}
		if json.Unmarshal(payload, &v) != nil {
			return nil, usage, false
		}
		results = v.Results
		usage.TotalTokens = v.Usage.TotalTokens
		usage.PromptTokens = max(v.Usage.PromptTokens, v.Usage.TotalTokens)
	}
	for _, r := range results {
		if r.Index < 0 || r.Index >= docs {
			return nil, usage, false
		}
	}
	if results == nil {
		results = []RerankResult{}
	}
	return results, usage, true
}
