-- GET one path with If-None-Match: a client revalidating a copy it holds (304 expected).
-- Usage: wrk -s revalidate.lua URL -- PATH ETAG
local path, etag

function init(args)
  path, etag = args[1], args[2]
end

function request()
  return wrk.format("GET", path, {["If-None-Match"] = etag})
end
