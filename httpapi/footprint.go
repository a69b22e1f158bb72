package httpapi

import (
	"encoding/json"
	"strconv"
	"time"

	"github.com/guichet/guichet"
	"github.com/guichet/guichet/carbon"
	"github.com/guichet/guichet/openai"
	"github.com/guichet/guichet/routing"
	"github.com/guichet/guichet/tokens"
)

// usageExtras are the members guichet adds to an answer's usage object,
// as OpenGateLLM does: cost, in the currency of the model's prices (the
// same number the budget is charged), and carbon, the EcoLogits estimate
// of energy and emissions ({kWh, kgCO2eq}; null when the model's
// parameters are unknown, or for models that do not generate text).
func usageExtras(x *exchange, m *routing.Model) []openai.Member {
	cost := m.Costs.Of(x.usage.PromptTokens, x.usage.CompletionTokens)
	raw := []byte("null")
	if impact, ok := footprint(x, m, x.usage.CompletionTokens); ok {
		raw, _ = json.Marshal(impact)
	}
	return []openai.Member{
		{Key: "cost", Raw: strconv.AppendFloat(nil, cost.Units(), 'f', -1, 64)},
		{Key: "carbon", Raw: raw},
	}
}

// footprint is the EcoLogits estimate of a generation; false when there
// is none (a model without parameters, or one that does not generate).
func footprint(x *exchange, m *routing.Model, completion int64) (carbon.Impact, bool) {
	if m.Type != guichet.TextGeneration && m.Type != guichet.ImageTextToText {
		return carbon.Impact{}, false
	}
	// The latency is taken once, so the answer's usage and the ledger line
	// show the same estimate.
	if x.generation == 0 {
		x.generation = time.Since(x.start)
	}
	cm := carbon.Model{TotalParams: m.Carbon.TotalParams, ActiveParams: m.Carbon.ActiveParams, Zone: m.Carbon.Zone, KWhPerToken: x.kwhPerToken}
	impact, ok, err := carbon.Estimate(cm, completion, x.generation)
	return impact, ok && err == nil
}

// countUsage counts a chat or completion answer's tokens offline, for a
// provider that reported none: the input as estimated at admission (or
// now), the output from the choices' text and tool calls.
func countUsage(x *exchange, payload []byte) (openai.TokenUsage, bool) {
	if x.countInput == nil || (x.endpoint != guichet.EndpointChat && x.endpoint != guichet.EndpointCompletions) {
		return openai.TokenUsage{}, false
	}
	var answer struct {
		Choices []struct {
			Text    string `json:"text"`
			Message struct {
				Content   string          `json:"content"`
				ToolCalls json.RawMessage `json:"tool_calls"`
			} `json:"message"`
		} `json:"choices"`
	}
	if json.Unmarshal(payload, &answer) != nil || answer.Choices == nil {
		return openai.TokenUsage{}, false
	}
	var u openai.TokenUsage
	for _, c := range answer.Choices {
		u.CompletionTokens += tokens.Text(c.Text) + tokens.Text(c.Message.Content)
		if len(c.Message.ToolCalls) > 0 && string(c.Message.ToolCalls) != "null" && string(c.Message.ToolCalls) != "[]" {
			u.CompletionTokens += tokens.Text(string(c.Message.ToolCalls))
		}
	}
	u.PromptTokens = x.inputTokens()
	u.TotalTokens = u.PromptTokens + u.CompletionTokens
	return u, true
}

// withCountedUsage adds a usage object to an answer that had none.
func withCountedUsage(payload []byte, u openai.TokenUsage, extras []openai.Member) []byte {
	o, err := openai.ParseObject(payload)
	if err != nil {
		return payload
	}
	raw, _ := json.Marshal(u)
	counted, _ := openai.ParseObject(raw)
	usage := counted.AppendWith(nil, append(extras, openai.Member{Key: "counted_by_guichet", Raw: []byte("true")})...)
	return o.AppendWith(make([]byte, 0, len(payload)+len(usage)+16), openai.Member{Key: "usage", Raw: usage})
}
