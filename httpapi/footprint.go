package httpapi

import (
	"encoding/json"
	"strconv"
	"time"

	"github.com/guichet/guichet"
	"github.com/guichet/guichet/carbon"
	"github.com/guichet/guichet/openai"
	"github.com/guichet/guichet/routing"
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
	cm := carbon.Model{TotalParams: m.Carbon.TotalParams, ActiveParams: m.Carbon.ActiveParams, Zone: m.Carbon.Zone, KWhPerToken: x.kwhPerToken}
	impact, ok, err := carbon.Estimate(cm, completion, time.Since(x.start))
	return impact, ok && err == nil
}
