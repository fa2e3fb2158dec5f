"""Allen-Zhu & Li, "What can ResNet learn efficiently, going beyond kernels?" (seed 003) at laptop scale.

Modules: :mod:`.concept` (the concept class H = F + alpha G(F), section 5, and the parity instance of
section 8.1), :mod:`.learners` (three-layer ResNet of eq. 2.1, fully connected nets, SGD training),
:mod:`.kernels` (NTK and random-feature / conjugate-kernel baselines), :mod:`.exp_resnet_vs_kernels`.
"""
