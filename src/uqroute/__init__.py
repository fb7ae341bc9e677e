"""uqroute: uncertainty-based routing from small to large language models.

Reproduces and extends the benchmark of Chuang et al., "Confident or Seek Stronger:
Exploring Uncertainty-Based Small LM Routing From Benchmarking to Generalization"
(arXiv:2502.04428). One subpackage per pipeline stage; none imports Snakemake.
"""

__version__ = "0.1.0"
