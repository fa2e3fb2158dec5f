"""PyTorch reference modules: the algorithms of thesis chapter 3 and the theory chapters and papers.

Each subpackage reproduces one text's experiments at laptop scale; experiment scripts are modules named
``exp_*.py`` with ``main(argv=None)`` taking ``--quick`` and ``--out DIR`` (see ``run_experiments``).
"""
