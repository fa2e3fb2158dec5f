"""NTK of binary-weight neural networks (thesis ch. 4): BinaryConnect network, quasi network, analytic and
empirical NTKs, Mercer eigenvalues on the sphere, and the chapter's experiments (``exp_*.py``).

See sw/ntk/README.md and docs/theory/chapter4_ntk_bwnn.md.
"""

from .networks import (BinaryWeightNet, binaryconnect_gradients, monte_carlo_outputs, quasi_gradients,
                       relu_gaussian_moments, sigma_tilde, sigma_tilde_grad, stochastic_binarize, train_network)
from .kernels import (empirical_ntk, gaussian_kernel, laplace_kernel, ntk_bwnn, ntk_bwnn_gram, ntk_relu,
                      ntk_relu_gram, random_scale_gaussian_on_sphere)
from .mercer import (fit_exponential_decay, fit_polynomial_decay, mercer_coefficients_quadrature,
                     mercer_coefficients_taylor)

__all__ = ["BinaryWeightNet", "binaryconnect_gradients", "monte_carlo_outputs", "quasi_gradients",
           "relu_gaussian_moments", "sigma_tilde", "sigma_tilde_grad", "stochastic_binarize", "train_network",
           "empirical_ntk", "gaussian_kernel", "laplace_kernel", "ntk_bwnn", "ntk_bwnn_gram", "ntk_relu",
           "ntk_relu_gram", "random_scale_gaussian_on_sphere", "fit_exponential_decay", "fit_polynomial_decay",
           "mercer_coefficients_quadrature", "mercer_coefficients_taylor"]
