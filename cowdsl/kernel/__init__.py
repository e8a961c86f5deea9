"""Kernels as data: versions, the changes each contains (the timeline), the
eras that name the models, the options and what-if variants, and the spec a
``--backend`` argument or an expect line resolves to.  Nothing here runs a
model; ``cowdsl.semantics.registry`` builds the backend for a spec."""
