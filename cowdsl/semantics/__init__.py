"""The state model and the kernel-era backends."""
