#!/bin/bash
# E1 (psim reproduce tradeoff) in 3 shards as a Slurm job array, then the merge.
#   sbatch examples/cluster/slurm-array.sh            # the shards
#   sbatch --dependency=afterok:JOBID --wrap 'psim merge e1-shard-0 e1-shard-1 e1-shard-2 --out e1'
# A retried array element continues its own directory (finished points are kept).
#SBATCH --job-name=psim-e1
#SBATCH --array=0-2
#SBATCH --ntasks=1
#SBATCH --cpus-per-task=1
#SBATCH --output=psim-e1-%a.log
set -euo pipefail
PSIM=${PSIM:-psim}
# --shard auto reads SLURM_ARRAY_TASK_ID (minus SLURM_ARRAY_TASK_MIN) and SLURM_ARRAY_TASK_COUNT.
"$PSIM" reproduce tradeoff --shard auto --quiet --threads "${SLURM_CPUS_PER_TASK:-1}" \
    --out "${OUT_PREFIX:-e1-shard-}${SLURM_ARRAY_TASK_ID}"
