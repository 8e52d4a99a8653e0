#!/bin/sh
# Prints what a container sees, one fact a line, for the runc-vs-hull comparison.
echo "uid $(id -u) gid $(id -g) groups $(id -G)"
echo "umask $(umask)"
grep -E '^(Cap(Inh|Prm|Eff|Bnd|Amb)|NoNewPrivs|Seccomp):' /proc/self/status
echo "nofile $(ulimit -n) $(ulimit -Hn)"
echo "nproc $(ulimit -u) $(ulimit -Hu)"
echo "oom_score_adj $(cat /proc/self/oom_score_adj)"
echo "hostname $(hostname)"
echo "cwd $(pwd)"
env | grep -v -E '^(PWD|SHLVL|_)=' | sort | sed 's/^/env /'
echo "masked timer_list $(wc -c </proc/timer_list 2>&1)"
echo "masked sys/firmware $(ls /sys/firmware 2>&1 | wc -l)"
( echo x >/proc/sys/kernel/domainname ) 2>&1 | sed 's/^/readonly /'
mkdir /tmp/denied 2>&1 | sed 's/^/seccomp /'
echo "pid1 $(cat /proc/1/comm)"
awk '$2 ~ /^\/(proc|dev|dev\/pts|dev\/shm|dev\/mqueue|sys)$/ {print "mount", $2, $3}' /proc/self/mounts | sort
