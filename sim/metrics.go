package sim

import (
	"net/http"
	"strconv"
	"strings"
)

// metrics serves the vLLM Prometheus metrics that gateways scrape for
// load-aware routing, in the text exposition format.
func (s *Server) metrics(w http.ResponseWriter, _ *http.Request) {
	var b []byte
	family := func(name, typ, help string, value func(m *modelCounters) float64) {
		b = append(b, "# HELP "+name+" "+help+"\n# TYPE "+name+" "+typ+"\n"...)
		for _, m := range s.models {
			b = append(b, name...)
			b = append(b, `{model_name="`...)
			b = append(b, escapeLabel(m.name)...)
			b = append(b, `"} `...)
			b = appendMetricValue(b, value(m))
			b = append(b, '\n')
		}
	}
	family("vllm:num_requests_running", "gauge", "Number of requests in model execution batches.",
		func(m *modelCounters) float64 { return float64(m.running.Load()) })
	family("vllm:num_requests_waiting", "gauge", "Number of requests waiting to be processed.",
		func(m *modelCounters) float64 { return float64(m.waiting.Load()) })
	// KV-cache usage is the share of slots in use: a running sequence holds
	// its blocks. The prefix cache's fill is not counted, as in vLLM, where
	// cached blocks that no running request holds are free (evictable).
	family("vllm:gpu_cache_usage_perc", "gauge", "GPU KV-cache usage. 1 means 100 percent usage.",
		func(*modelCounters) float64 {
			if s.cfg.MaxConcurrency == 0 {
				return 0
			}
			return float64(s.running.Load()) / float64(s.cfg.MaxConcurrency)
		})
	family("vllm:prompt_tokens_total", "counter", "Number of prefill tokens processed.",
		func(m *modelCounters) float64 { return float64(m.promptToks.Load()) })
	family("vllm:generation_tokens_total", "counter", "Number of generation tokens processed.",
		func(m *modelCounters) float64 { return float64(m.genToks.Load()) })
	family("vllm:prefix_cache_queries_total", "counter", "Prefix cache queries, in terms of number of queried tokens.",
		func(m *modelCounters) float64 { return float64(m.cacheQueries.Load()) })
	family("vllm:prefix_cache_hits_total", "counter", "Prefix cache hits, in terms of number of cached tokens.",
		func(m *modelCounters) float64 { return float64(m.cacheHits.Load()) })

	const success = "vllm:request_success_total"
	b = append(b, "# HELP "+success+" Count of successfully processed requests.\n# TYPE "+success+" counter\n"...)
	for _, m := range s.models {
		for _, fr := range [...]struct {
			reason string
			n      int64
		}{{"length", m.okLength.Load()}, {"stop", m.okStop.Load()}} {
			b = append(b, success+`{finished_reason="`+fr.reason+`",model_name="`...)
			b = append(b, escapeLabel(m.name)...)
			b = append(b, `"} `...)
			b = appendMetricValue(b, float64(fr.n))
			b = append(b, '\n')
		}
	}
	w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(b)
}

// appendMetricValue writes values the way prometheus_client does (1.0).
func appendMetricValue(b []byte, v float64) []byte {
	if v == float64(int64(v)) {
		return append(strconv.AppendInt(b, int64(v), 10), ".0"...)
	}
	return strconv.AppendFloat(b, v, 'g', -1, 64)
}

var labelEscaper = strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`)

func escapeLabel(s string) string { return labelEscaper.Replace(s) }
