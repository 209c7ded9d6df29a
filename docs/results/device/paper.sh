#!/usr/bin/env bash
# Issue 17's paper-budget sweep (first run in the sixteenth session: attention and Based, gpu_session16_steps.txt),
# spread over the commands of one session. The results file and the stacks' checkpoints live on the device (/tmp/mq,
# kept while the machine stays warm between commands), so a stack cut short by a command's limit resumes from its last
# checkpoint in the next; the first command starts from the committed records. Each command brings the records back
# ($OUT/r), to be merged into docs/results/$NAME.jsonl (`mqarkit frontier merge`). PRESET (based-fig2), SEEDS ("0 1
# 2"), MAXR (4: stacks of at most 4 runs, so that a Mamba d = 256 stack of 32 epochs fits about two commands), SEL
# (e.g. "--families mamba --d-models 256").
source docs/results/device/common.sh
paper_sweep
finish
