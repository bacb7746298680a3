-- Put in front of every bench script: each thread gets its own `thread_number` (1, 2, ...),
-- which the scripts use to seed their choices or to keep generated values apart.
local next_thread = 1

function setup(thread)
  thread:set("thread_number", next_thread)
  next_thread = next_thread + 1
end
