-- wrk script: POST JSON bodies read from the file given after `--`, one body per line, in turn (a file of one line:
-- the same request every time). The requests are formatted once, in init.
--   wrk -t2 -c8 -d10s --latency -s post.lua http://127.0.0.1:PORT/predict -- body.json
local requests, i = {}, 0

function init(args)
  for line in io.lines(args[1]) do
    if line ~= "" then
      requests[#requests + 1] = wrk.format("POST", nil, { ["Content-Type"] = "application/json" }, line)
    end
  end
  assert(#requests > 0, "no body in " .. args[1])
end

function request()
  i = i % #requests + 1
  return requests[i]
end
