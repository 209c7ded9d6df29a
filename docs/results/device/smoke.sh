#!/usr/bin/env bash
# One-epoch smoke stacks of a preset, resumed from the committed records: SMOKE="FAMILY:D FAMILY:D ..."
source docs/results/device/common.sh
F=smoke_${PRESET//-/_}_1epoch.jsonl
cp docs/results/$F $OUT/r/$F
for fd in $SMOKE; do
  step smoke_${fd%%:*}_${fd##*:} 600 mqarkit frontier run --preset $PRESET --families ${fd%%:*} --d-models ${fd##*:} --epochs 1 --no-progress --out $OUT/r/$F
done
finish
