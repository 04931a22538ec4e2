"""``collbench run``: real collectives under mpiexec.  The algorithms themselves live in
``collbench.algorithms`` (one module per family, beside their cost plans); this package is
the harness around them: configuration, the run loop, checks, the watchdog, the local
probe, and the Cython reduction (``_reduce``, built from ``cext/runtime/_reduce.pyx``)."""
