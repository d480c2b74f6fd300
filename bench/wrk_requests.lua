-- wrk script for bench/benchdb.py wrk(): cycles through the requests in the file given
-- after "--" (one per line: METHOD \t PATH \t Name: value \x1f Name: value \t BODY), each
-- connection starting at its own place, and counts answers by status class. wrk itself
-- counts only 4xx/5xx as errors; a redirect must never pass for a success.
dofile(debug.getinfo(1, "S").source:sub(2):match("^(.*/)") .. "wrk_status.lua")

function init(args)
  reqs = {}
  for line in io.lines(args[1]) do
    local method, path, hdrs, body = line:match("^([^\t]*)\t([^\t]*)\t([^\t]*)\t(.*)$")
    local headers = {}
    for k, v in pairs(wrk.headers) do headers[k] = v end
    for name, value in hdrs:gmatch("([^:\31]+):%s*([^\31]*)") do headers[name] = value end
    if body == "" then body = nil end
    table.insert(reqs, wrk.format(method, path, headers, body))
  end
  idx = (tid * 7919) % #reqs
  s1, s2, s3, s4, s5, first_bad = 0, 0, 0, 0, 0, 0
end

request = function()
  idx = idx % #reqs + 1
  return reqs[idx]
end
