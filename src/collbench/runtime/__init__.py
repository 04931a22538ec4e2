"""The measurement half: real collectives under mpiexec (``collbench run``)."""
