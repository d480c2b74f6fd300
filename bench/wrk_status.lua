-- What every wrk script of the benches shares (dofile'd by them): each thread numbered
-- (``tid``), answers counted by status class, and one summary line for bench/benchdb.py.
-- wrk itself counts only 4xx/5xx as errors; a redirect must never pass for a success, so
-- the benches fail on anything but 2xx (s1xx, s3xx, s4xx, s5xx, first_bad).
local threads = {}

function setup(thread)
  thread:set("tid", #threads)
  table.insert(threads, thread)
end

response = function(status, headers, body)
  if status >= 200 and status < 300 then s2 = s2 + 1
  else
    if first_bad == 0 then first_bad = status end
    if status < 200 then s1 = s1 + 1
    elseif status < 400 then s3 = s3 + 1
    elseif status < 500 then s4 = s4 + 1
    else s5 = s5 + 1 end
  end
end

function done(summary, latency, requests)
  local c = {s1 = 0, s2 = 0, s3 = 0, s4 = 0, s5 = 0}
  local first = 0
  for _, t in ipairs(threads) do
    for k, _ in pairs(c) do c[k] = c[k] + t:get(k) end
    if first == 0 then first = t:get("first_bad") end
  end
  local e = summary.errors
  io.write(string.format(
    "WRK requests=%d duration_us=%d s1xx=%d s2xx=%d s3xx=%d s4xx=%d s5xx=%d first_bad=%d errors=%d " ..
    "p50_us=%d p90_us=%d p99_us=%d\n",
    summary.requests, summary.duration, c.s1, c.s2, c.s3, c.s4, c.s5, first,
    e.connect + e.read + e.write + e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99)))
end
