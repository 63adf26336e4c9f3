"""Reports of an ablation sweep: tables (md/tex/csv), seed statistics, the paper's findings
checked against the numbers, figures, and one ``report.md`` page per experiment.

Entry points: ``build_report(exp_dir)`` and ``write_index(results_dir)``.
"""

from ablations.report.page import build_report, write_index

__all__ = ["build_report", "write_index"]
