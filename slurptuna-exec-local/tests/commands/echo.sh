#!/bin/sh
# A trivial command loss in POSIX sh, without forks: answers each seed of a request with the
# seed itself as the value. Requests look like {"trial":0,...,"seeds":[0,1,2]} (seeds last).
# With PID_DIR set it writes PID_DIR/pid-<pid> first.
[ -n "$PID_DIR" ] && echo $$ > "$PID_DIR/pid-$$"
while IFS= read -r line; do
    seeds=${line##*\"seeds\":[}
    seeds=${seeds%%]*}
    IFS=,
    for seed in $seeds; do
        printf '{"seed":%s,"value":%s}\n' "$seed" "$seed"
    done
    unset IFS
done
