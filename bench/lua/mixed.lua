-- 90% GET / 10% PUT over the preloaded keys (KEYS env, default 10000), uniformly at random.
local keys = tonumber(os.getenv("KEYS") or "10000")
local body = '{"value":"benchmark value of about fifty bytes, fixed size."}'
local put_headers = {["Content-Type"] = "application/json"}
math.randomseed(os.time())

request = function()
  local k = "bench:" .. math.random(1, keys)
  if math.random(1, 10) == 1 then
    return wrk.format("POST", "/put?key=" .. k, put_headers, body)
  end
  return wrk.format("GET", "/get?key=" .. k)
end

dofile(os.getenv("REPORT_LUA"))
