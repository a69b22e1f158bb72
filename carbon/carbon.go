// Package carbon estimates the energy and the greenhouse-gas emissions of
// a text generation request with EcoLogits' LLM inference method
// (genai-impact/ecologits, impacts/llm.py), from what guichet knows: the
// model's active and total parameters, the output tokens, the request's
// latency and the provider's zone.
//
// The method, with its constants:
//
//	GPU energy (kWh)     = tokens × (8.91e-8 × P_active + 1.43e-6)      P in billions
//	generation time (s)  = min(tokens × (8.02e-4 × P_active + 2.23e-2), measured latency)
//	model memory (GB)    = 1.2 × P_total × 4 bits / 8                   4-bit weights
//	GPUs                 = ceil(memory / 80 GB)
//	server energy (kWh)  = time / 3600 × 1 kW × GPUs / 8                8 GPUs a server
//	energy (kWh)         = PUE 1.2 × (server energy + GPUs × GPU energy)
//	usage (kgCO2eq)      = energy × the zone's electricity mix (kgCO2eq/kWh)
//	embodied (kgCO2eq)   = time / 5 years × (GPUs/8 × 3000 + GPUs × 143)
//	emissions (kgCO2eq)  = usage + embodied
//
// EcoLogits gives a 95% interval; guichet reports the central value, as
// OpenGateLLM has since 2026. A provider may instead give a measured
// energy per output token, which replaces the GPU and server energy.
package carbon

import (
	"fmt"
	"math"
	"sort"
	"strings"
	"time"
)

// Constants of the method (EcoLogits' names in comments).
const (
	gpuEnergyAlpha    = 8.91e-8               // GPU_ENERGY_ALPHA, kWh per token per billion active parameters
	gpuEnergyBeta     = 1.43e-6               // GPU_ENERGY_BETA, kWh per token
	gpuLatencyAlpha   = 8.02e-4               // GPU_LATENCY_ALPHA, s per token per billion active parameters
	gpuLatencyBeta    = 2.23e-2               // GPU_LATENCY_BETA, s per token
	quantizationBits  = 4                     // MODEL_QUANTIZATION_BITS
	gpuMemoryGB       = 80                    // GPU_MEMORY
	gpuEmbodiedGWP    = 143                   // GPU_EMBODIED_IMPACT_GWP, kgCO2eq
	serverGPUs        = 8                     // SERVER_GPUS
	serverPowerKW     = 1                     // SERVER_POWER
	serverEmbodiedGWP = 3000                  // SERVER_EMBODIED_IMPACT_GWP, kgCO2eq
	hardwareLifespan  = 5 * 365 * 24 * 3600.0 // HARDWARE_LIFESPAN, s
	datacenterPUE     = 1.2                   // DATACENTER_PUE
)

// Mix is an electricity mix's impact per kWh.
type Mix struct {
	GWP  float64 // kgCO2eq per kWh
	PE   float64 // MJ per kWh
	ADPe float64 // kgSbeq per kWh
}

// MixOf returns the electricity mix of zone (ISO 3166-1 alpha-3, EUR or
// WOR).
func MixOf(zone string) (Mix, bool) {
	m, ok := mixes[strings.ToUpper(zone)]
	return m, ok
}

// Zones lists the zones with a mix, sorted (for messages).
func Zones() []string {
	zs := make([]string, 0, len(mixes))
	for z := range mixes {
		zs = append(zs, z)
	}
	sort.Strings(zs)
	return zs
}

// Model is what the estimate needs to know of a model and where it runs.
type Model struct {
	TotalParams  float64 // billions; 0: unknown, no estimate
	ActiveParams float64 // billions; 0: the same as TotalParams
	Zone         string  // electricity mix zone; "" = WOR
	// KWhPerToken, when set, is a measured energy per output token
	// (servers and cooling included) that replaces the GPU and server
	// model.
	KWhPerToken float64
}

// Impact is a request's footprint.
type Impact struct {
	KWh     float64 `json:"kWh"`
	KgCO2eq float64 `json:"kgCO2eq"`
}

// Estimate is the footprint of generating outputTokens in latency. ok is
// false when the model's parameters are unknown (the answer is then null,
// not 0). An unknown zone is an error (the configuration checks zones).
func Estimate(m Model, outputTokens int64, latency time.Duration) (impact Impact, ok bool, err error) {
	mix, found := MixOf(orWorld(m.Zone))
	if !found {
		return Impact{}, false, fmt.Errorf("carbon: no electricity mix for zone %q", m.Zone)
	}
	if m.TotalParams <= 0 && m.KWhPerToken <= 0 {
		return Impact{}, false, nil
	}
	if outputTokens <= 0 {
		return Impact{}, true, nil
	}
	tokens := float64(outputTokens)
	active := m.ActiveParams
	if active <= 0 {
		active = m.TotalParams
	}
	genTime := math.Min(tokens*(gpuLatencyAlpha*active+gpuLatencyBeta), latency.Seconds())
	gpus := math.Ceil(1.2 * m.TotalParams * quantizationBits / 8 / gpuMemoryGB)

	if m.KWhPerToken > 0 {
		impact.KWh = tokens * m.KWhPerToken
	} else {
		gpuEnergy := tokens * (gpuEnergyAlpha*active + gpuEnergyBeta)
		serverEnergy := genTime / 3600 * serverPowerKW * gpus / serverGPUs
		impact.KWh = datacenterPUE * (serverEnergy + gpus*gpuEnergy)
	}
	embodied := genTime / hardwareLifespan * (gpus/serverGPUs*serverEmbodiedGWP + gpus*gpuEmbodiedGWP)
	impact.KgCO2eq = impact.KWh*mix.GWP + embodied
	return impact, true, nil
}

func orWorld(zone string) string {
	if zone == "" {
		return "WOR"
	}
	return zone
}
