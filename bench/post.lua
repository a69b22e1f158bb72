-- wrk script of bench/run.sh: POST a small non-streaming chat request with
-- the gateway's bearer token (BENCH_KEY: the master key, or for guichet-limits
-- and guichet-cluster a user's key; the simulator and nginx ignore it)
-- and print one machine-readable line at the end.
wrk.method = "POST"
wrk.body = '{"model":"bench-chat","messages":[{"role":"user","content":"Say hello to the benchmark."}],"max_tokens":16}'
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer " .. (os.getenv("BENCH_KEY") or "none")

done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRK_JSON {"requests":%d,"duration_us":%d,"bytes":%d,"connect_errors":%d,"read_errors":%d,' ..
    '"write_errors":%d,"status_errors":%d,"timeouts":%d,"p50_us":%.0f,"p90_us":%.0f,"p99_us":%.0f,' ..
    '"p999_us":%.0f,"max_us":%.0f,"mean_us":%.1f}\n',
    summary.requests, summary.duration, summary.bytes, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency:percentile(99.9),
    latency.max, latency.mean))
end
