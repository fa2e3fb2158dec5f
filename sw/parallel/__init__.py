"""Thesis chapter 5 / paper 002: weight-decayed parallel ReLU networks are locally adaptive.

See README.md in this folder for the module map and ``exp_fig5_3`` for the Fig. 5.3 experiment.
"""
