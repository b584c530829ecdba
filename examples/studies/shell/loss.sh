#!/bin/sh
# The loss of study.toml as a shell program: for each request line on stdin, one reply per seed,
# value = (alpha - 0.3)^2 + seed * 1e-4. slurptuna keeps it running; end of input ends it.
# mawk (Debian's awk) reads line by line only with `-W interactive`.
if awk -W version 2>/dev/null | grep -q mawk; then set -- -W interactive; fi
exec awk "$@" '{
  match($0, /"alpha":[-0-9.eE+]+/); alpha = substr($0, RSTART + 8, RLENGTH - 8)
  match($0, /"seeds":\[[0-9,]*\]/); n = split(substr($0, RSTART + 9, RLENGTH - 10), s, ",")
  for (i = 1; i <= n; i++)
    printf "{\"seed\": %s, \"value\": %.17g}\n", s[i], (alpha - 0.3) ^ 2 + s[i] * 1e-4
  fflush()
}'
