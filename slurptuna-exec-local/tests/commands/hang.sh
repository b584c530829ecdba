#!/bin/sh
# Starts a child that sleeps (same process group), notes both pids in PID_DIR, then never
# answers: for the batch timeout tests.
echo $$ > "$PID_DIR/pid-$$"
sleep 300 &
echo $! > "$PID_DIR/child-$!"
echo "about to hang" >&2
wait
