-- POST wrong-password brand logins (each one costs the server a full Argon2 verification).
-- Usage: wrk -s login_flood.lua URL/auth/brands/login ; prints the 401/503/other counts.
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
local threads = {}
counter, c401, c503, cother = 0, 0, 0, 0

function setup(thread)
  table.insert(threads, thread)
end

function request()
  counter = counter + 1
  local body = string.format(
    '{"email":"flood%d@example.com","password":"wrong-password-%d"}', counter % 1000, counter)
  return wrk.format(nil, nil, nil, body)
end

function response(status, headers, body)
  if status == 401 then c401 = c401 + 1
  elseif status == 503 then c503 = c503 + 1
  else cother = cother + 1 end
end

done = function(summary, latency, requests)
  local a, b, c = 0, 0, 0
  for _, t in ipairs(threads) do
    a, b, c = a + t:get("c401"), b + t:get("c503"), c + t:get("cother")
  end
  local s = summary.errors
  io.write(string.format("FLOOD requests=%d s401=%d s503=%d other=%d sockerr=%d\n",
    summary.requests, a, b, c, s.connect + s.read + s.write + s.timeout))
end
