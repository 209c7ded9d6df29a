#!/usr/bin/env bash
# Sourced by the device scripts (docs/results/device/README.md): the wheels, the package, the carried compile
# caches (.gpu/cache.part*), a step runner under a budget.
set -u
T0=$(date +%s)
BUDGET=${BUDGET:-300}
export PYTHONUNBUFFERED=1
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl > /dev/null 2>&1 || { echo "wheels failed"; exit 1; }
export PYTHONPATH=/tmp/site
python3 -m pip install -q --no-deps --no-build-isolation -e . > $OUT/install.log 2>&1 || { tail $OUT/install.log; exit 1; }
export TRITON_CACHE_DIR=/tmp/cache/triton TORCHINDUCTOR_CACHE_DIR=/tmp/cache/inductor
mkdir -p /tmp/cache $OUT/r $OUT/logs
if ls .gpu/cache.part* > /dev/null 2>&1; then cat .gpu/cache.part* | tar xzf - -C /tmp/cache; fi
echo "setup $(( $(date +%s) - T0 ))s; cache files: $(find /tmp/cache -type f | wc -l)" | tee -a $OUT/steps.txt
left() { echo $(( BUDGET - ($(date +%s) - T0) )); }
step() { # step NAME LIMIT command...: the command under min(LIMIT, what the budget leaves), its rc and wall time
  local name=$1 lim=$2; shift 2
  local l=$(( $(left) - ${RESERVE:-25} )); (( lim > l )) && lim=$l
  if (( lim < 10 )); then echo "$name skipped: no time left" | tee -a $OUT/steps.txt; return; fi
  local s=$(date +%s)
  timeout -k 5 $lim "$@" > $OUT/logs/$name.log 2>&1; local rc=$?
  echo "$name rc=$rc wall=$(( $(date +%s) - s ))s limit=${lim}s" | tee -a $OUT/steps.txt
  grep -E "PASSED|FAILED|ERROR|passed|failed|model-epochs|epoch 1/1|Error|error:" $OUT/logs/$name.log | tail -n ${TAILN:-14} | cut -c1-400
}
finish() { # the results and logs as one archive; the compile caches in parts if small enough to come back
  tar czf $OUT/r.tgz -C $OUT r logs steps.txt install.log
  (cd /tmp/cache && tar czf - .) > /tmp/cache.tgz
  local sz=$(stat -c %s /tmp/cache.tgz)
  if (( sz < ${CACHE_MAX:-45000000} )); then split -b 15000000 -d /tmp/cache.tgz $OUT/cache.part; fi
  echo "cache ${sz} bytes; total $(( $(date +%s) - T0 ))s"
}
paper_sweep() { # issue 17's paper-budget sweep (paper.sh's header): PRESET, SEEDS, MAXR, SEL; records on the device
  PRESET=${PRESET:-based-fig2}; local name=${PRESET//-/_}_paper
  local r=/tmp/mq/$name.jsonl
  mkdir -p /tmp/mq
  if [ ! -f $r ] && [ -f docs/results/$name.jsonl ]; then cp docs/results/$name.jsonl $r; fi
  # since the twenty-first session no stack projected past the step's limit starts; since the twenty-second the
  # projection counts the compilation its speed row measured, so the margin MARGIN_S (default 30; the twenty-first
  # session's COMPILE_S was 100) covers only a projection's error; SKIP_UNPROJECTED=1 starts no stack without a row;
  # GATE=0 passes no speed table, so a stack longer than one command starts (to be resumed by the next, warm, command)
  local lim=$(( $(left) - 30 ))
  local gate="--speed-table ${SPEED_JSON:-docs/results/frontier_speed_families.json} ${SKIP_UNPROJECTED:+--skip-unprojected}"
  [ "${GATE:-1}" = 0 ] && gate=""
  step paper $lim mqarkit frontier run --preset $PRESET --seeds ${SEEDS:-0 1 2} --max-stack-runs ${MAXR:-4} \
    ${SEL:-} --no-progress --out $r --time-budget-s $(( lim > ${MARGIN_S:-30} + 10 ? lim - ${MARGIN_S:-30} : 10 )) $gate
  cp $r $OUT/r/ 2>/dev/null
}
