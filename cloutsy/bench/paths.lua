-- GET a random path from a file (one path a line): ids, niche pages, searches, cursors.
-- Usage: wrk -s threads.lua+paths.lua+report.lua URL -- PATHS_FILE (as `load.Wrk` runs it)
local paths = {}

function init(args)
  for line in io.lines(args[1]) do
    if #line > 0 then paths[#paths + 1] = line end
  end
  -- Deterministic but different per thread, so both threads do not walk in step.
  math.randomseed(1000 + (thread_number or 0))
end

function request()
  return wrk.format("GET", paths[math.random(#paths)])
end
