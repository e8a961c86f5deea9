"""The kernel mechanism, one module per mm/ source file.

Each class is a mixin of ``Backend``: it holds the code paths (fault handling,
fork, GUP, reclaim) and calls the backend's named decision rules where the
kernel's behaviour changed between eras.
"""
