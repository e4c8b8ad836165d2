-- Writes bench:1 .. bench:KEYS once each, in order, then stops (one wrk thread).
local keys = tonumber(os.getenv("KEYS") or "10000")
local body = '{"value":"benchmark value of about fifty bytes, fixed size."}'
local put_headers = {["Content-Type"] = "application/json"}
local i = 0
local failed = 0

request = function()
  if i < keys then i = i + 1 end
  return wrk.format("POST", "/put?key=bench:" .. i, put_headers, body)
end

response = function(status)
  if status ~= 200 then failed = failed + 1 end
  if i >= keys then wrk.thread:stop() end
end

dofile(os.getenv("REPORT_LUA"))
