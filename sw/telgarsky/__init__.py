"""Constructions and checks from M. Telgarsky, "Deep learning theory" lecture notes (seed 001).

Modules: :mod:`.piecewise` (exact piecewise-affine propagation, N_A counting), :mod:`.constructions`
(triangle map, parity, squaring, universal approximation), :mod:`.depth_separation` (Theorem 4.4),
:mod:`.barron` (Maurey sampling of infinite-width networks), :mod:`.ntk` (linearization, NTK, Theorem 3.10),
:mod:`.exp_telgarsky` (the experiment script).
"""
