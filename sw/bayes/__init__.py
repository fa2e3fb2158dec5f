"""Bayesian tensorized neural networks with SGHMC (thesis chapter 2); see README.md in this folder."""

from .tensor_formats import (TTCores, TTLinear, TTConv2d, TuckerLinear, CPLinear, tt_full, tt_matrix_full,
                             tucker_full, cp_full, tt_svd, hosvd, tensorized_layers)
from .priors import pruning_threshold, pruning_mask
from .likelihoods import classification_nll, regression_nll, model_neg_log_prior, potential, stochastic_potential
from .sghmc import SGHMC, autograd_gradient

__all__ = ["TTCores", "TTLinear", "TTConv2d", "TuckerLinear", "CPLinear", "tt_full", "tt_matrix_full",
           "tucker_full", "cp_full", "tt_svd", "hosvd", "tensorized_layers", "pruning_threshold", "pruning_mask",
           "classification_nll", "regression_nll", "model_neg_log_prior", "potential", "stochastic_potential",
           "SGHMC", "autograd_gradient"]
