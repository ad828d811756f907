#!/bin/bash
# E1 in 3 shards as a HyperQueue task array (HQ_TASK_ID = 0..2), then the merge.
# Needs a running server and worker: `hq server start &` and `hq worker start &`.
set -euo pipefail
PSIM=${PSIM:-psim}
hq submit --array 0-2 --wait -- bash -c \
    "'$PSIM' reproduce tradeoff --shard auto --shard-count 3 --quiet --out e1-shard-\$HQ_TASK_ID"
"$PSIM" merge e1-shard-0 e1-shard-1 e1-shard-2 --out e1
