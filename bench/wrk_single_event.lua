-- One usage event per request, each with a key no other request uses.
-- Used by bench_usage.py: wrk -s bench/wrk_single_event.lua -H "Authorization: Api-Key ..." URL
local counter = 0
local threads = {}

function setup(thread)
  thread:set("tid", #threads)
  table.insert(threads, thread)
end

function init(args)
  prefix = "w" .. tid .. "-" .. tostring(os.time()) .. "-"
end

request = function()
  counter = counter + 1
  local body = '{"events":[{"feature":"quotes","idempotency_key":"' .. prefix .. counter .. '"}]}'
  return wrk.format("POST", "/api/v1/usage/events/", wrk.headers, body)
end

function done(summary, latency, requests)
  io.write(string.format("WRK requests=%d duration_us=%d non2xx=%d errors=%d p50_us=%d p99_us=%d\n",
    summary.requests, summary.duration, summary.errors.status, summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout,
    latency:percentile(50), latency:percentile(99)))
end
