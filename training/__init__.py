"""Training-side tools for gansynth-live: datasets, the training loop, postprocessing.

Depends on the core package `gansynth_live`; the core never imports this package.
"""
