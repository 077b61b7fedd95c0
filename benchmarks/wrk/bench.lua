-- wrk script of benchmarks/bench.py, configured by environment variables:
--   BENCH_HOST        Host header (default svc-0000:8000)
--   BENCH_BODY_BYTES  if > 0: POST a body of that many bytes
--   BENCH_HOSTS       if > 0: round-robin the Host header over svc-0000:8000 .. svc-(N-1):8000
-- done() prints one line "BENCHJSON {...}" with exact percentiles (microseconds).
local host = os.getenv("BENCH_HOST") or "svc-0000:8000"
local body_bytes = tonumber(os.getenv("BENCH_BODY_BYTES") or "0")
local nhosts = tonumber(os.getenv("BENCH_HOSTS") or "0")

wrk.headers["Host"] = host
if body_bytes > 0 then
  wrk.method = "POST"
  wrk.body = string.rep("x", body_bytes)
  wrk.headers["Content-Type"] = "application/octet-stream"
end

if nhosts > 0 then
  local reqs = {}
  for i = 0, nhosts - 1 do
    reqs[i + 1] = wrk.format(nil, nil, {Host = string.format("svc-%04d:8000", i)})
  end
  local n = 0
  request = function()
    n = n % nhosts + 1
    return reqs[n]
  end
end

done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'BENCHJSON {"requests":%d,"duration_us":%d,"bytes":%d,' ..
    '"errors":{"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d},' ..
    '"p50_us":%d,"p90_us":%d,"p99_us":%d,"p999_us":%d,"max_us":%d,"mean_us":%.1f}\n',
    summary.requests, summary.duration, summary.bytes,
    e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency:percentile(99.9), latency.max, latency.mean))
end
