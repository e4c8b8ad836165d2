-- 100% GET over the preloaded keys: for kvnode straight on, against nginx's fixed answer.
local keys = tonumber(os.getenv("KEYS") or "10000")
math.randomseed(os.time())

request = function()
  return wrk.format("GET", "/get?key=bench:" .. math.random(1, keys))
end

dofile(os.getenv("REPORT_LUA"))
