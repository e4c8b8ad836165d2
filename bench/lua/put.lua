-- 100% PUT over the preloaded keys (KEYS env, default 10000), uniformly at random.
local keys = tonumber(os.getenv("KEYS") or "10000")
local body = '{"value":"benchmark value of about fifty bytes, fixed size."}'
local put_headers = {["Content-Type"] = "application/json"}
math.randomseed(os.time())

request = function()
  return wrk.format("POST", "/put?key=bench:" .. math.random(1, keys), put_headers, body)
end

dofile(os.getenv("REPORT_LUA"))
