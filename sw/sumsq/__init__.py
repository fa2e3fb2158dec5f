"""Zhang, Zepeda-Nunez, Yao, Lin, "Learning the mapping x -> sum_i x_i^2" (seed 004) at laptop scale.

Modules: :mod:`.networks` (dense GN, sparse LCN / LN, path norm eq. 22, LN -> GN embedding),
:mod:`.train` (data, Adam training with validation early stopping and explicit regularizers),
:mod:`.exp_sample_complexity` (sample complexity vs d with fitted exponents).
"""
