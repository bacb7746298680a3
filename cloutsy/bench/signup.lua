-- POST sign-ups with a unique username, email and phone on every request.
-- Usage: wrk -s threads.lua+signup.lua+report.lua URL -- KIND NONCE NICHE_IDS (`load.Wrk`)
--   KIND: influencers | brands; NONCE: two digits unique to this run (keeps runs apart);
--   NICHE_IDS: comma-separated ids, each request links three of them.
-- Phones are +91 P NONCE THREAD COUNTER (10 national digits, valid Indian mobiles), with
-- P outside the range seed.demo gives that table: influencers 6-7 (so 9 here), brands 8-9
-- (so 6 here).
local kind, nonce
local niches = {}
local counter = 0

function init(args)
  kind, nonce = args[1], args[2]
  for id in string.gmatch(args[3], "%d+") do niches[#niches + 1] = id end
end

function request()
  counter = counter + 1
  local serial = string.format("%s%d%06d", nonce, thread_number, counter)
  local a = (counter % #niches) + 1
  local b = ((counter + 1) % #niches) + 1
  local c = ((counter + 2) % #niches) + 1
  local picked = "[" .. niches[a] .. "," .. niches[b] .. "," .. niches[c] .. "]"
  local body
  if kind == "brands" then
    body = '{"brandName":"Bench Brand ' .. serial .. '","username":"bb' .. serial ..
      '","email":"bb' .. serial .. '@bench.example.com","phone":"+916' .. serial ..
      '","password":"bench-password-' .. serial .. '","nicheIds":' .. picked .. '}'
  else
    body = '{"name":"Bench Influencer ' .. serial .. '","username":"bi' .. serial ..
      '","email":"bi' .. serial .. '@bench.example.com","phone":"+919' .. serial ..
      '","nicheIds":' .. picked .. '}'
  end
  return wrk.format("POST", "/" .. kind, {["Content-Type"] = "application/json"}, body)
end
