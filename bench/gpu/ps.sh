#!/usr/bin/env bash
# Every few seconds until killed: the busiest processes (CPU %, the core each last ran on), and the
# cores each vLLM engine process may run on. To see where a host-bound engine's time goes.
#   bash bench/gpu/ps.sh > ps.log &
while true; do
  echo "== $(date +%T)"
  ps -eo pid,ppid,psr,pcpu,nlwp,args --sort=-pcpu | head -12 | cut -c1-160
  for p in $(pgrep -f EngineCore); do echo "EngineCore $p $(grep Cpus_allowed_list /proc/"$p"/status)"; done
  sleep 3
done
