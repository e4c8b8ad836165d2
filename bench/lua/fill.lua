-- Writes bench:1 .. bench:KEYS once each, in order, then stops (one wrk thread). With DONE_FILE set, it
-- creates that file once the last request is sent, so that whoever started wrk can stop it then
-- (bench/run.py's wrk()): wrk itself sleeps out its whole -d.
local keys = tonumber(os.getenv("KEYS") or "10000")
local body = '{"value":"benchmark value of about fifty bytes, fixed size."}'
local put_headers = {["Content-Type"] = "application/json"}
local i = 0
local failed = 0
local done_file = os.getenv("DONE_FILE")

request = function()
  if i < keys then i = i + 1 end
  return wrk.format("POST", "/put?key=bench:" .. i, put_headers, body)
end

response = function(status)
  if status ~= 200 then failed = failed + 1 end
  if i >= keys then
    if done_file then
      local f = io.open(done_file, "w")
      if f then f:close() end
      done_file = nil
    end
    wrk.thread:stop()
  end
end

dofile(os.getenv("REPORT_LUA"))
