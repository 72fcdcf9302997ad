"""``mpiexec -n N python -m labkit.backends.mpi JOB.json``: one rank of a launched run."""

from labkit.backends.mpi.launcher import main

raise SystemExit(main())
