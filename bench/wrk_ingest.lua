-- wrk script for bench/bench_ingest.py: one usage event per request, each with an
-- idempotency key no other request of the run uses (<tag>-<thread>-<n>, tag given after
-- "--"), and answers counted by status class. wrk itself counts only 4xx/5xx as errors;
-- a redirect must never pass for a success, so the bench fails on anything but 2xx.
dofile(debug.getinfo(1, "S").source:sub(2):match("^(.*/)") .. "wrk_status.lua")

function init(args)
  prefix = (args[1] or "w") .. "-" .. tid .. "-"
  counter = 0
  s1, s2, s3, s4, s5, first_bad = 0, 0, 0, 0, 0, 0
end

request = function()
  counter = counter + 1
  local body = '{"events":[{"feature":"quotes","idempotency_key":"' .. prefix .. counter .. '"}]}'
  return wrk.format("POST", "/api/v1/usage/events/", wrk.headers, body)
end
