#!/usr/bin/env bash
# mk/sweep_ranks.sh FILE -- one rank's share of a sweep's job list: the
# lines i = r (mod P) of FILE (i from 0), each a shell command (a make of
# one sweep target, so a finished target is not redone and an interrupted
# sweep resumes).  r and P come from the launcher: Open MPI's mpirun
# (OMPI_COMM_WORLD_RANK/SIZE), Slurm's srun (SLURM_PROCID/SLURM_NTASKS) or
# another PMI launcher (PMI_RANK/PMI_SIZE); without one, every line.
# Written by mk/sweep.mk for `make sweep MPI_RANKS=P` (README "Running on a
# cluster").  Exits 1 when any of its jobs failed (after running the rest).
set -u
[ $# = 1 ] && [ -r "$1" ] || { echo "usage: mk/sweep_ranks.sh JOBFILE (a readable job list)" >&2; exit 2; }
r=${OMPI_COMM_WORLD_RANK:-${SLURM_PROCID:-${PMI_RANK:-0}}}
p=${OMPI_COMM_WORLD_SIZE:-${SLURM_NTASKS:-${PMI_SIZE:-1}}}
# The jobs are commands of their own, not part of the make that wrote the list.
unset MAKEFLAGS MFLAGS MAKELEVEL
status=0 i=0
while IFS= read -r line; do
  if [ $((i % p)) = "$r" ] && [ -n "$line" ]; then
    bash -c "$line" </dev/null || status=1
  fi
  i=$((i + 1))
done <"$1"
exit $status
