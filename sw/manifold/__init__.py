"""Thesis chapter 6: weight-decayed (Conv)ResNeXt for functions on low-dimensional manifolds.

See README.md in this folder for the module map and ``exp_resnext_manifold`` for the experiment.
"""
