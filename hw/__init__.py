"""The accelerator RTL in Amaranth HDL (thesis section 3.5); see README.md and docs/hardware.md."""
