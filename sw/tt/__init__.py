"""PyTorch reference of thesis chapter 3 (sections 3.3-3.4): TT-matrix layers, the low-rank prior
(eq. 3.3-3.4) with rank pruning, float training with Adam, and a fake-quantized model that matches the
fixed-point device bit for bit. See README.md."""
