#!/usr/bin/env bash
# Regenerate every committed file in results/ (run from the repository root after
# pip install ".[mpi,plot]"). Each step is the command results/README.md lists next to its file.
set -euo pipefail
cd "$(dirname "$0")/.."
rm -f results/*.csv results/*.png results/report.md results/local-2ranks.toml results/calibrate-2ranks.txt
collbench sweep -b 8 -e 16G -f 2 --algo auto,all --nranks domain,full -o results/model-presets.csv
mpiexec -n 2 collbench run -b 8 -e 64M -f 2 --algo mpi,ring,binomial,rhd,rd,hier --ranks-per-node 1 \
    --csv results/run-2ranks.csv
mpiexec -n 4 collbench run -b 8 -e 4M -f 4 -n 5 -w 1 --algo mpi,ring,binomial,rhd,rd,hier \
    --ranks-per-node 2 --csv results/run-4ranks.csv
for i in 1 2 3; do
    mpiexec -n 2 collbench run --algo mpi,ring,binomial,rhd,rd -b 8 -e 64M -f 2 -n 40 \
        --csv results/calib-2ranks-$i.csv
done
collbench calibrate results/calib-2ranks-{1,2,3}.csv -o results/local-2ranks.toml --name local-2ranks \
    --cross-validate > results/calibrate-2ranks.txt
mpiexec -n 2 collbench run -b 8 -e 64M -f 2 -n 40 --algo mpi,ring,binomial,rhd,rd \
    --predict results/local-2ranks.toml --csv results/run-2ranks-predicted.csv
collbench report results/model-presets.csv results/run-2ranks-predicted.csv results/run-4ranks.csv \
    -o results --crossover dgx-h100,gb200-nvl72,cloudmatrix384,atlas-950-supercluster
collbench compare-systems gb200-nvl72 cloudmatrix384 --nranks 8,64,72,384,1024 --step 14G \
    --plot results/versus-nvl72-cm384.png > results/versus-nvl72-cm384.txt
collbench validate --all --csv results/validate.csv > results/validate.txt
